"""Clustering a season without a catalogue, with the survey-tuned pair model.

The encounter is the unit: an encounter's frames are matched against every
other encounter, the pair model (:mod:`irbis.reid.ranking`) turns each
(encounter, encounter) pair's match features into a probability of "same
animal", averaged over both directions. Encounters are then joined greedily,
most probable pair first, down to a threshold, under one constraint no
picture can overrule: an animal cannot be at two stations at once, so two
encounters at different stations within ``travel_minutes`` of each other are
never put in one cluster (nor are two clusters holding such a pair).

:func:`evaluate_clustering` judges it leave-individuals-out: each pair's
probability comes from a model fitted without either of its individuals, and
the threshold used for an individual's pairs is the lowest at which the
clustering of the *other* individuals' encounters keeps pair precision at the
target. Pairs are counted over frames of different encounters, as
:func:`irbis.reid.evaluate.evaluate` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irbis.reid.cluster import pair_scores
from irbis.reid.ranking import fit_pair_model
from irbis.reid.ranking_eval import SurveyMatches, training_pairs, unit_queries

__all__ = ["cannot_link", "constrained_clusters", "encounter_probabilities", "evaluate_clustering"]


def encounter_probabilities(sm: SurveyMatches, l2: float = 1.0) -> tuple[list[str], np.ndarray]:
    """Symmetric "same animal" probability of every pair of encounters.

    Each ordered pair (query encounter of cat A, gallery encounter of cat B)
    is scored by a pair model fitted on pairs showing neither A nor B.

    Returns
    -------
    encounters, probabilities:
        Encounter keys (sorted) and the ``(n, n)`` matrix (diagonal 1).
    """
    ind_of = sm.encounter_individual()
    encs = sorted(ind_of)
    pos = {e: i for i, e in enumerate(encs)}
    queries = unit_queries(sm, "encounter")
    models: dict[frozenset[str], object] = {}
    p = np.zeros((len(encs), len(encs)))
    for q in queries:
        qi = pos[q.key]
        for j, g in enumerate(q.gallery):
            key = frozenset({q.truth, ind_of[g]})
            if key not in models:
                x, y = training_pairs(queries, ind_of, set(key))
                try:
                    models[key] = fit_pair_model(x, y, l2=l2)
                except ValueError:
                    models[key] = None
            m = models[key]
            p[qi, pos[g]] = float(m.probability(q.x[j : j + 1])[0]) if m is not None else 0.0
    p = (p + p.T) / 2.0
    np.fill_diagonal(p, 1.0)
    return encs, p


def cannot_link(
    stations: Sequence[str | None],
    spans: Sequence[tuple[float, float] | None],
    travel_minutes: float = 60.0,
) -> np.ndarray:
    """Pairs of encounters no single animal can make: other station, overlapping time.

    Parameters
    ----------
    stations:
        Station per encounter (``None``: unknown, never constrained).
    spans:
        ``(first, last)`` time per encounter in seconds (``None``: unknown).
    travel_minutes:
        Two encounters at different stations closer in time than this are two animals.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` boolean.
    """
    n = len(stations)
    out = np.zeros((n, n), bool)
    for i in range(n):
        for j in range(i + 1, n):
            si, sj, ti, tj = stations[i], stations[j], spans[i], spans[j]
            if si is None or sj is None or si == sj or ti is None or tj is None:
                continue
            gap = max(ti[0] - tj[1], tj[0] - ti[1], 0.0)
            if gap < travel_minutes * 60.0:
                out[i, j] = out[j, i] = True
    return out


def constrained_clusters(
    p: np.ndarray, threshold: float, forbidden: np.ndarray | None = None
) -> np.ndarray:
    """Join encounters most probable pair first, never across a forbidden pair.

    Parameters
    ----------
    p:
        ``(n, n)`` symmetric pair probabilities.
    threshold:
        Pairs below it never join.
    forbidden:
        ``(n, n)`` boolean cannot-link pairs (see :func:`cannot_link`).

    Returns
    -------
    numpy.ndarray
        Cluster label per encounter (``0..k-1``).
    """
    n = p.shape[0]
    parent = list(range(n))
    members = {i: {i} for i in range(n)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    iu, ju = np.triu_indices(n, 1)
    w = p[iu, ju]
    for k in np.argsort(-w, kind="stable"):
        if w[k] < threshold:
            break
        a, b = root(int(iu[k])), root(int(ju[k]))
        if a == b:
            continue
        if (
            forbidden is not None
            and forbidden[np.ix_(sorted(members[a]), sorted(members[b]))].any()
        ):
            continue
        if len(members[a]) < len(members[b]):
            a, b = b, a
        parent[b] = a
        members[a] |= members.pop(b)
    roots = [root(i) for i in range(n)]
    return np.unique(roots, return_inverse=True)[1].astype(np.int64)


def _frame_labels(sm: SurveyMatches, encs: list[str], labels: np.ndarray) -> np.ndarray:
    pos = {e: i for i, e in enumerate(encs)}
    return np.array([labels[pos[e]] for e in sm.encounter])


def _counts(
    sm: SurveyMatches, frame_labels: np.ndarray, pair_mask: np.ndarray
) -> tuple[int, int, int]:
    t = np.unique(np.asarray(sm.individual, dtype=object).astype(str), return_inverse=True)[1]
    same_c = frame_labels[:, None] == frame_labels[None, :]
    same_t = t[:, None] == t[None, :]
    m = pair_mask & np.triu(np.ones_like(pair_mask), 1)
    return (
        int((same_c & same_t & m).sum()),
        int((same_c & ~same_t & m).sum()),
        int((~same_c & same_t & m).sum()),
    )


def _spans(sm: SurveyMatches, encs: list[str]) -> list[tuple[float, float] | None]:
    times: dict[str, list[float]] = {}
    for e, t in zip(sm.encounter, sm.when or [None] * len(sm.encounter), strict=True):
        if t is not None:
            times.setdefault(e, []).append(t)
    return [(min(times[e]), max(times[e])) if e in times else None for e in encs]


def evaluate_clustering(
    sm: SurveyMatches,
    target_precision: float = 0.95,
    travel_minutes: float = 60.0,
    l2: float = 1.0,
) -> dict:
    """Catalogue-free clustering judged leave-individuals-out (module docstring).

    Returns
    -------
    dict
        ``summary`` (pooled pair precision/recall with and without the
        time-place constraint), ``thresholds`` chosen per individual, and the
        clustering of the whole season at the median threshold.
    """
    encs, p = encounter_probabilities(sm, l2=l2)
    ind_of = sm.encounter_individual()
    st = sm.encounter_station()
    forbid = cannot_link([st[e] for e in encs], _spans(sm, encs), travel_minutes)
    enc_arr = np.array(sm.encounter, dtype=object)
    cross = enc_arr[:, None] != enc_arr[None, :]
    inds = np.array(sm.individual, dtype=object)
    names, codes = np.unique(inds.astype(str), return_inverse=True)
    # A pair of frames of cats (a, b) is judged with the threshold of min(a, b): once.
    first_cat = np.minimum.outer(codes, codes)
    grid = np.unique(np.round(p[np.triu_indices(len(encs), 1)], 4))
    grid = grid[grid >= 0.5][::-1]
    out: dict = {"target_precision": target_precision, "travel_minutes": travel_minutes}
    for name, constraint in (("constrained", forbid), ("unconstrained", None)):
        tp = fp = fn = 0
        chosen: dict[str, float] = {}
        for cat in sorted(set(ind_of.values())):
            others = [i for i, e in enumerate(encs) if ind_of[e] != cat]
            sub = p[np.ix_(others, others)]
            sub_forbid = constraint[np.ix_(others, others)] if constraint is not None else None
            sub_encs = [encs[i] for i in others]
            keep = inds != cat
            sub_sm = _subset(sm, keep)
            sub_cross = cross[np.ix_(keep, keep)]
            where = np.array([sub_encs.index(e) for e in enc_arr[keep]], np.int64)
            best = 1.0
            for t in grid:
                lab = constrained_clusters(sub, float(t), sub_forbid)
                a, b, _ = _counts(sub_sm, lab[where], sub_cross)
                if a + b and a / (a + b) >= target_precision:
                    best = float(t)
            chosen[cat] = best
            lab = constrained_clusters(p, best, constraint)
            fl = _frame_labels(sm, encs, lab)
            code = int(np.searchsorted(names, cat))
            a, b, c = _counts(sm, fl, cross & (first_cat == code))
            tp, fp, fn = tp + a, fp + b, fn + c
        med = float(np.median(list(chosen.values())))
        whole = constrained_clusters(p, med, constraint)
        ws = pair_scores(_frame_labels(sm, encs, whole), sm.individual, mask=cross)
        out[name] = {
            "pair_precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "pair_recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
            "thresholds": {k: round(v, 4) for k, v in chosen.items()},
            "whole_season_at_median_threshold": {
                "threshold": round(med, 4),
                **{k: round(v, 3) if isinstance(v, float) else v for k, v in ws.items()},
            },
        }
    out["cannot_link_pairs"] = int(np.triu(forbid, 1).sum())
    out["summary"] = {
        k: (out[k]["pair_precision"], out[k]["pair_recall"])
        for k in ("constrained", "unconstrained")
    }
    return out


def _subset(sm: SurveyMatches, keep: np.ndarray) -> SurveyMatches:
    idx = np.flatnonzero(keep)
    return SurveyMatches(
        [sm.frames[i] for i in idx],
        [sm.encounter[i] for i in idx],
        [sm.individual[i] for i in idx],
        [sm.station[i] for i in idx],
        [sm.when[i] for i in idx] if sm.when else [],
    )
