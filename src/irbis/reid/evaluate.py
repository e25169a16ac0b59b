"""Evaluation harness: rank individuals for held-out queries, cluster, report.

Protocol ``encounter``: a query is matched against every row of *other*
encounters, never frames of its own burst (which are near-duplicates and would
make any matcher look perfect). With a ``role`` column only ``query`` rows are
scored (all rows remain in the gallery, minus the query's encounter).

Protocol ``station`` is stricter: a query is never matched against any row of
its own station (rows without a station fall back to ``encounter``). A fixed
camera sees the same rocks on every visit, so under ``encounter`` a cat that
keeps returning to one station can be "recognised" by its scene; ``station``
measures what the rosettes alone carry. Its clustering counts only pairs from
different stations, for the same reason.

Queries whose individual has no row in any other encounter (in the Tajik set:
Cat8, Cat12) have no correct gallery answer. They are left out of ``top1``,
``top5`` and ``mAP`` and reported apart: ``open_set_queries`` counts them and
``open_set_new_rate`` is the fraction for which the matcher did *not* say
"same as" someone (the right answer is "new individual").

Top-1 alone flatters a matcher on an unbalanced set (in the Tajik set Cat1 is
over half the queries, so naming Cat1 every time scores about 0.55). The
report therefore adds ``majority_rate`` (top-1 of a guesser that always names
the individual with the most gallery rows), ``per_individual`` top-1/top-5 and
their means over individuals, ``macro_top1``/``macro_top5``: a matcher is only
useful where ``macro_top1`` is well above ``1 / individuals``.

``burst_pooled_top1``/``burst_pooled_top5`` score the burst, not the frame:
each frame is still matched against other encounters only, and the
per-individual scores of a burst's frames are summed into one ranking that
every frame of the burst gets, weighted by frames (the older pooling, kept
for comparison; the identify stage now uses the encounter pooling of
``per_encounter``).

``per_encounter`` makes the encounter the query (:mod:`irbis.reid.encounter`):
the frames of an encounter are matched as above and their evidence pooled into
one ranking of individuals per encounter; ``top1``/``top5``/``mAP``/
``macro_top1`` are then counted once per encounter. Its ``mAP`` ranks the
*gallery encounters* by the pooled evidence (summed over the query's frames of
each gallery encounter's best verified score, then of its best raw votes) and
averages the precision at each encounter of the same individual.

Clustering (``pair_precision``, ``pair_recall``) is catalogue-free, as at a
first census: the queries are matched against each other with every
individual label hidden (:func:`~irbis.reid.cluster.cluster_annotations`),
and only pairs from different encounters are counted (frames of one burst are
joined by construction).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from irbis.core.errors import IrbisError
from irbis.reid.annotations import Annotation
from irbis.reid.baseline import BASELINE_SIDE, baseline_features, baseline_inliers
from irbis.reid.burst import candidate_scores, pool_burst
from irbis.reid.catalogue import Catalogue, MatchConfig, QueryResult
from irbis.reid.cluster import cluster_annotations, cluster_pairs, pair_scores
from irbis.reid.encounter import pool_encounter, pool_rankings
from irbis.reid.features import Features, extract
from irbis.reid.preprocess import BadImageError, burst_masks, prepare, read_image

Progress = Callable[[str, int, int], None]

#: Evaluation protocols: which gallery rows a query may never be matched against.
PROTOCOLS = ("encounter", "station", "image")

#: Baseline clustering edge: at least this many RANSAC inliers (a common rule of thumb).
BASELINE_EDGE_INLIERS = 20


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """Options of :func:`evaluate`.

    Attributes
    ----------
    method:
        ``"default"`` (RootSIFT + LNBNN + verification) or ``"baseline"``.
    protocol:
        ``"encounter"`` (exclude the query's burst), ``"station"`` (exclude the
        query's station) or ``"image"`` (exclude only itself).
    max_side, max_keypoints:
        Working image size and keypoint budget of the default method (the
        baseline uses its own fixed settings, see :mod:`irbis.reid.baseline`).
    max_queries:
        Score an evenly spaced subset of this many queries (``None`` = all); the
        gallery is always complete.
    false_merge_rate:
        Clustering edge threshold of the default method is ``1 - false_merge_rate``.
    cluster:
        Also cluster the queries without labels and report ``pair_precision``
        and ``pair_recall`` (``None`` when off).
    burst_masks:
        Default method: restrict keypoints to what moves within the burst
        (:func:`~irbis.reid.preprocess.burst_masks`) where no mask/box is given.
    """

    method: str = "default"
    protocol: str = "encounter"
    max_side: int = 800
    max_keypoints: int = 800
    max_queries: int | None = None
    false_merge_rate: float = 0.05
    burst_masks: bool = True
    cluster: bool = True
    config: MatchConfig | None = None


def extract_all(
    anns: Sequence[Annotation], opts: EvalOptions, progress: Progress | None = None
) -> tuple[list[Features], list[str]]:
    """Features of every annotation; unusable images get no keypoints and a message."""
    feats: list[Features] = [Features.empty()] * len(anns)
    problems: list[str] = []
    base = opts.method == "baseline"
    groups: dict[str | None, list[int]] = {}
    for i, a in enumerate(anns):
        groups.setdefault(a.encounter, []).append(i)
    done = 0
    for members in groups.values():
        images: list[np.ndarray | None] = []
        for i in members:
            try:
                images.append(read_image(anns[i].image))
            except BadImageError as exc:
                problems.append(f"{anns[i].id}: {exc}")
                images.append(None)
        masks: list[np.ndarray | None] = [None] * len(members)
        if not base and opts.burst_masks:
            ok = [k for k, im in enumerate(images) if im is not None]
            for k, m in zip(ok, burst_masks([images[k] for k in ok]), strict=True):
                masks[k] = m
        for k, i in enumerate(members):
            a, img = anns[i], images[k]
            done += 1
            if img is None:
                continue
            try:
                if base:
                    p = prepare(img, box=a.box, max_side=BASELINE_SIDE, clahe=False)
                    feats[i] = baseline_features(p)
                else:
                    # A person's mask beats the burst's motion mask.
                    mask = a.mask if a.mask is not None else masks[k]
                    p = prepare(img, box=a.box, mask=mask, max_side=opts.max_side)
                    feats[i] = extract(p, max_keypoints=opts.max_keypoints)
            except BadImageError as exc:
                problems.append(f"{a.id}: {exc}")
            if progress:
                progress("features", done, len(anns))
    return feats, problems


def average_precision(relevant_in_rank_order: np.ndarray, n_relevant: int) -> float:
    """AP of a ranked list; relevant items never retrieved contribute precision 0."""
    if n_relevant == 0:
        return 0.0
    rel = np.asarray(relevant_in_rank_order, bool)
    hits = np.cumsum(rel)
    prec = hits[rel] / (np.flatnonzero(rel) + 1)
    return float(prec.sum() / n_relevant)


def evaluate(
    anns: Sequence[Annotation],
    opts: EvalOptions | None = None,
    progress: Progress | None = None,
    feats: Sequence[Features] | None = None,
) -> dict:
    """Run the protocol and return the figures (see the module docstring).

    Returns
    -------
    dict
        ``top1, top5, mAP, ms_per_query, pair_precision, pair_recall`` plus
        counts, the clustering threshold and per-query results (``queries``).
    """
    opts = opts or EvalOptions()
    if opts.method not in ("default", "baseline"):
        raise ValueError(f"unknown method {opts.method!r}: use default or baseline")
    if opts.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {opts.protocol!r}: use {', '.join(PROTOCOLS)}")
    n = len(anns)
    problems: list[str] = []
    if feats is None:
        feats, problems = extract_all(anns, opts, progress)
        if n and len(problems) == n:
            # Every image unreadable is a wrong images folder, not a result of 0. The
            # library is called without the CLI too, so the hint names both.
            raise IrbisError(
                f"none of the {n} images could be read (first: {problems[0]}); check that "
                "the label paths are relative to the images folder (irbis reid evaluate --images)"
            )
    # An annotation without an encounter is its own encounter (as in labels.csv).
    enc = [
        a.encounter if opts.protocol != "image" and a.encounter is not None else a.id for a in anns
    ]
    by_enc: dict[str | None, list[int]] = {}
    for i, e in enumerate(enc):
        by_enc.setdefault(e, []).append(i)
    by_station: dict[str, list[int]] = {}
    if opts.protocol == "station":
        for i, a in enumerate(anns):
            if a.station is not None:
                by_station.setdefault(a.station, []).append(i)

    def excluded(i: int) -> set[int]:
        """Rows query ``i`` may never be matched against (its burst, or its station)."""
        out = set(by_enc[enc[i]])
        station = anns[i].station
        if station is not None and station in by_station:
            out.update(by_station[station])
        return out

    has_roles = any(a.role for a in anns)
    qidx = [i for i, a in enumerate(anns) if (a.role == "query" or not has_roles)]
    if opts.max_queries is not None and len(qidx) > opts.max_queries:
        pick = np.linspace(0, len(qidx) - 1, opts.max_queries).round().astype(int)
        qidx = [qidx[i] for i in sorted(set(pick.tolist()))]
    ids = [str(i) for i in range(n)]
    cat: Catalogue | None = None
    if opts.method == "default":
        cat = Catalogue(opts.config)
        for i, (a, f) in enumerate(zip(anns, feats, strict=True)):
            cat.add(_as(a, ids[i]), f)
    top1 = top5 = 0
    majority_hits = 0
    per_ind: dict[str, list[tuple[bool, bool]]] = {}
    aps: list[float] = []
    open_n = open_new = 0
    times: list[float] = []
    edges: list[tuple[int, int, float]] = []
    qset = set(qidx)
    records: list[dict] = []
    burst_scores: dict[str | None, list[dict[str, float]]] = {}
    frame_out: dict[int, _FrameOut] = {}
    for done, qi in enumerate(qidx):
        a = anns[qi]
        excl = excluded(qi)
        gallery = [j for j in range(n) if j not in excl and a.side.compatible(anns[j].side)]
        t0 = time.perf_counter()
        if cat is not None:
            res = cat.query(feats[qi], side=a.side, exclude=[ids[j] for j in excl], camera=a.camera)
            ranked_inds = [c.individual for c in res.candidates]
            ann_rank = [int(m.annotation) for m in res.annotations if m.score > 0 or m.raw > 0]
            said_same = res.decision == "same"
            ind_scores = candidate_scores(res)
            g_enc: dict[str | None, tuple[float, float]] = {}
            for m in res.annotations:
                e = enc[int(m.annotation)]
                g_enc[e] = max(g_enc.get(e, (0.0, 0.0)), (float(m.score), float(m.raw)))
        else:
            scores = np.zeros(n)
            for j in gallery:
                scores[j] = baseline_inliers(feats[qi], feats[j])[0]
            order = [j for j in np.argsort(-scores, kind="stable") if scores[j] > 0]
            ann_rank = [int(j) for j in order]
            ranked_inds = []
            for j in ann_rank:
                if anns[j].individual not in ranked_inds:
                    ranked_inds.append(anns[j].individual)
            said_same = bool(ann_rank) and scores[ann_rank[0]] >= BASELINE_EDGE_INLIERS
            ind_scores = {}
            for j in ann_rank:  # best inlier count per individual
                ind_scores.setdefault(str(anns[j].individual), float(scores[j]))
            for j in ann_rank:
                if j in qset:
                    edges.append((qi, j, float(scores[j])))
            g_enc = {}
            for j in ann_rank:
                g_enc.setdefault(enc[j], (float(scores[j]), 0.0))
            res = None
        times.append(time.perf_counter() - t0)
        relevant = {j for j in gallery if anns[j].individual == a.individual}
        if not relevant:
            open_n += 1
            open_new += int(not said_same)
        else:
            hit1 = ranked_inds[:1] == [a.individual]
            hit5 = a.individual in ranked_inds[:5]
            top1 += int(hit1)
            top5 += int(hit5)
            per_ind.setdefault(str(a.individual), []).append((hit1, hit5))
            # A guesser that always names the individual with the most gallery rows.
            counts = Counter(anns[j].individual for j in gallery)
            majority_hits += int(counts.most_common(1)[0][0] == a.individual)
            aps.append(
                average_precision(np.array([j in relevant for j in ann_rank]), len(relevant))
            )
        burst_scores.setdefault(enc[qi], []).append(ind_scores)
        frame_out[qi] = _FrameOut(
            ranked_inds,
            ind_scores,
            g_enc,
            res,
            said_same,
            relevant,
            Counter(anns[j].individual for j in gallery),
        )
        records.append(
            {
                "query": a.id,
                "truth": a.individual,
                "ranked": ranked_inds[:5],
                "open_set": not relevant,
            }
        )
        if progress:
            progress("queries", done + 1, len(qidx))
    closed = max(1, len(aps))
    per_encounter = _per_encounter(anns, qidx, enc, frame_out)
    burst_top1, burst_top5 = _burst_pooled(anns, qidx, enc, excluded, burst_scores)
    per_individual = {
        k: {
            "queries": len(v),
            "top1": sum(h1 for h1, _ in v) / len(v),
            "top5": sum(h5 for _, h5 in v) / len(v),
        }
        for k, v in sorted(per_ind.items())
    }
    threshold = (
        1.0 - opts.false_merge_rate if opts.method == "default" else float(BASELINE_EDGE_INLIERS)
    )
    labels = None
    cluster_s = 0.0
    if not opts.cluster:
        pass
    elif opts.method == "default":
        # Catalogue-free: the queries are clustered from their pairwise verified
        # matches alone, with every individual label hidden (a first census).
        t0 = time.perf_counter()
        labels, _ = cluster_annotations(
            [replace(anns[i], encounter=enc[i]) for i in qidx],
            [feats[i] for i in qidx],
            false_merge_rate=opts.false_merge_rate,
            config=opts.config,
        )
        cluster_s = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        pos = {q: k for k, q in enumerate(qidx)}
        sub_edges = [(pos[i], pos[j], w) for i, j, w in edges if i in pos and j in pos]
        labels = cluster_pairs(len(qidx), sub_edges, threshold, [enc[i] for i in qidx])
        cluster_s = time.perf_counter() - t0
    ps: dict = {"pair_precision": None, "pair_recall": None, "clusters": None}
    if labels is not None:
        # Pairs within one burst (or, under ``station``, one station) are not evidence.
        key = [
            anns[i].station if opts.protocol == "station" and anns[i].station else enc[i]
            for i in qidx
        ]
        q_key = np.array([str(k) for k in key], dtype=object)
        cross = q_key[:, None] != q_key[None, :]
        ps = pair_scores(labels, [str(anns[i].individual) for i in qidx], mask=cross)
    return {
        "method": opts.method,
        "protocol": opts.protocol,
        "images": n,
        "queries": len(qidx),
        "closed_set_queries": len(aps),
        "top1": top1 / closed,
        "top5": top5 / closed,
        "mAP": float(np.mean(aps)) if aps else 0.0,
        "macro_top1": float(np.mean([v["top1"] for v in per_individual.values()]))
        if per_individual
        else 0.0,
        "macro_top5": float(np.mean([v["top5"] for v in per_individual.values()]))
        if per_individual
        else 0.0,
        "majority_rate": majority_hits / closed,
        "per_encounter": per_encounter,
        "burst_pooled_top1": burst_top1,
        "burst_pooled_top5": burst_top5,
        "per_individual": per_individual,
        "ms_per_query": 1000.0 * float(np.mean(times)) if times else 0.0,
        "pair_precision": ps["pair_precision"],
        "pair_recall": ps["pair_recall"],
        "clusters": ps["clusters"],
        "cluster_threshold": threshold,
        "cluster_seconds": cluster_s,
        "open_set_queries": open_n,
        "open_set_new_rate": open_new / open_n if open_n else None,
        "unusable_images": problems,
        "per_query": records,
    }


@dataclass(slots=True)
class _FrameOut:
    """What one query frame contributes to its encounter's answer."""

    ranked: list
    scores: dict[str, float]
    gallery_encounters: dict[str | None, tuple[float, float]]
    result: QueryResult | None
    said_same: bool
    relevant: set[int]
    gallery_counts: Counter


def _per_encounter(
    anns: Sequence[Annotation],
    qidx: Sequence[int],
    enc: Sequence[str | None],
    frames: dict[int, _FrameOut],
) -> dict:
    """Figures with the encounter as the query (see the module docstring).

    An encounter is closed-set when any of its frames has a gallery row of its
    individual; its individual is its frames' most frequent label.
    """
    groups: dict[str | None, list[int]] = {}
    for qi in qidx:
        groups.setdefault(enc[qi], []).append(qi)
    hits: dict[str, list[tuple[bool, bool]]] = {}
    aps: list[float] = []
    majority = open_n = open_new = 0
    records: list[dict] = []
    for e, members in groups.items():
        outs = [frames[qi] for qi in members]
        truth = str(Counter(str(anns[qi].individual) for qi in members).most_common(1)[0][0])
        ranked = [k for k, _, _ in pool_rankings((o.ranked, o.scores) for o in outs)]
        relevant_enc = {enc[j] for o in outs for j in o.relevant}
        if all(o.result is not None for o in outs):
            said_same = pool_encounter([o.result for o in outs if o.result is not None]).decision
            said = said_same == "same"
        else:
            said = any(o.said_same for o in outs)
        records.append(
            {
                "encounter": e,
                "truth": truth,
                "frames": len(members),
                "ranked": ranked[:5],
                "ranking": ranked,
            }
        )
        if not relevant_enc:
            open_n += 1
            open_new += int(not said)
            continue
        hit1 = ranked[:1] == [truth]
        hits.setdefault(truth, []).append((hit1, truth in ranked[:5]))
        counts = sum((o.gallery_counts for o in outs), Counter())
        majority += int(str(counts.most_common(1)[0][0]) == truth)
        g: dict[str | None, list[float]] = {}
        for o in outs:
            for ge, (v, r) in o.gallery_encounters.items():
                acc = g.setdefault(ge, [0.0, 0.0])
                acc[0] += v
                acc[1] += r
        order = sorted(g, key=lambda k: (-g[k][0], -g[k][1], str(k)))
        aps.append(
            average_precision(np.array([k in relevant_enc for k in order]), len(relevant_enc))
        )
    n = sum(len(v) for v in hits.values())
    per_ind = {
        k: {
            "encounters": len(v),
            "top1": sum(a for a, _ in v) / len(v),
            "top5": sum(b for _, b in v) / len(v),
        }
        for k, v in sorted(hits.items())
    }
    return {
        "encounters": len(groups),
        "closed_set_encounters": n,
        "top1": sum(a for v in hits.values() for a, _ in v) / max(1, n),
        "top5": sum(b for v in hits.values() for _, b in v) / max(1, n),
        "mAP": float(np.mean(aps)) if aps else 0.0,
        "macro_top1": float(np.mean([v["top1"] for v in per_ind.values()])) if per_ind else 0.0,
        "macro_top5": float(np.mean([v["top5"] for v in per_ind.values()])) if per_ind else 0.0,
        "majority_rate": majority / max(1, n),
        "per_individual": per_ind,
        "open_set_encounters": open_n,
        "open_set_new_rate": open_new / open_n if open_n else None,
        "per_query": records,
    }


def _burst_pooled(
    anns: Sequence[Annotation],
    qidx: Sequence[int],
    enc: Sequence[str | None],
    excluded: Callable[[int], set[int]],
    burst_scores: dict[str | None, list[dict[str, float]]],
) -> tuple[float | None, float | None]:
    """Top-1/top-5 when every frame of a burst gets the burst's answer.

    The per-individual scores of the burst's frames (each matched against
    other encounters only) are summed and the ranking applies to each of its
    frames (:func:`irbis.reid.burst.pool_burst`). Closed-set queries
    only, as ``top1``; None when no query has a match elsewhere.
    """
    pooled: dict[str | None, list[str]] = {}
    for e, per_frame in burst_scores.items():
        total = pool_burst(per_frame)
        pooled[e] = sorted(total, key=lambda k: -total[k])
    hits1 = hits5 = n = 0
    for qi in qidx:
        a, truth = anns[qi], str(anns[qi].individual)
        own = excluded(qi)
        if not any(
            str(anns[j].individual) == truth and a.side.compatible(anns[j].side)
            for j in range(len(anns))
            if j not in own
        ):
            continue  # open set, as in top1
        n += 1
        ranked = pooled.get(enc[qi], [])
        hits1 += int(ranked[:1] == [truth])
        hits5 += int(truth in ranked[:5])
    return (hits1 / n, hits5 / n) if n else (None, None)


def _as(a: Annotation, new_id: str) -> Annotation:
    return replace(a, id=new_id)
