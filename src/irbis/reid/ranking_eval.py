"""Leave-individuals-out judgement of the survey-tuned ranking.

A labelled season (annotations with their individual and encounter) is
matched once: every frame against every *other* encounter
(:func:`collect_matches`, the encounter protocol). From those matches three
rankings are scored, with the encounter as the query and with the frame as
the query:

``default``
    The untrained ranking (:func:`irbis.reid.encounter.pool_rankings`).
``tuned``
    The pair model (:mod:`irbis.reid.ranking`). For the queries of an
    individual, the model is fitted on pairs where *neither* side shows that
    individual: it never saw the cat it is asked about.
``fusion``
    Reciprocal-rank fusion (k = 60) of the two.

Figures per unit: top-1, top-5 and macro top-1 over closed-set queries (the
query's cat has another encounter), mAP over the ranked gallery encounters
(``default`` ranks them by summed verified score, then raw votes), and top-1
per individual.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from irbis.reid.annotations import Annotation
from irbis.reid.catalogue import Catalogue, MatchConfig
from irbis.reid.encounter import pool_rankings
from irbis.reid.evaluate import average_precision
from irbis.reid.features import Features
from irbis.reid.ranking import (
    FrameEvidence,
    PairModel,
    fit_pair_model,
    frame_evidence,
    pair_features,
    rank_individuals,
)

__all__ = [
    "METHODS",
    "SurveyMatches",
    "collect_matches",
    "evaluate_rankings",
    "rrf",
    "unit_queries",
]

#: Rankings compared by :func:`evaluate_rankings`.
METHODS = ("default", "tuned", "fusion")
RRF_K = 60.0


@dataclass(slots=True)
class SurveyMatches:
    """A labelled season, matched once (each frame against the other encounters).

    Attributes
    ----------
    frames:
        Per annotation, its :class:`~irbis.reid.ranking.FrameEvidence`.
    encounter, individual, station:
        Per annotation.
    when:
        Per annotation, its time (seconds since the epoch, ``None`` unknown).
    """

    frames: list[FrameEvidence]
    encounter: list[str]
    individual: list[str]
    station: list[str | None]
    when: list[float | None] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain data (JSON), for caches."""
        return {
            "frames": [f.as_dict() for f in self.frames],
            "encounter": self.encounter,
            "individual": self.individual,
            "station": self.station,
            "when": self.when,
        }

    @staticmethod
    def from_dict(d: dict) -> SurveyMatches:
        """Inverse of :meth:`as_dict`."""
        return SurveyMatches(
            [FrameEvidence.from_dict(f) for f in d["frames"]],
            list(d["encounter"]),
            list(d["individual"]),
            list(d["station"]),
            list(d.get("when") or [None] * len(d["encounter"])),
        )

    def encounter_individual(self) -> dict[str, str]:
        """Each encounter's individual (its frames' most frequent label)."""
        votes: dict[str, Counter] = defaultdict(Counter)
        for e, ind in zip(self.encounter, self.individual, strict=True):
            votes[e][ind] += 1
        return {e: c.most_common(1)[0][0] for e, c in votes.items()}

    def encounter_station(self) -> dict[str, str | None]:
        """Each encounter's station (its first frame's)."""
        out: dict[str, str | None] = {}
        for e, s in zip(self.encounter, self.station, strict=True):
            out.setdefault(e, s)
        return out


def collect_matches(
    anns: Sequence[Annotation],
    feats: Sequence[Features],
    config: MatchConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    query: set[int] | None = None,
) -> SurveyMatches:
    """Match every labelled frame against every other encounter (never its own).

    Parameters
    ----------
    anns:
        Annotations with ``individual`` and ``encounter`` (an annotation without
        an encounter is its own).
    feats:
        Their features.
    config:
        Matcher parameters (default :class:`~irbis.reid.catalogue.MatchConfig`).
    progress:
        Called with ``(done, total)`` after each frame.
    query:
        Row numbers of the frames to match (default all); the gallery is
        always every annotation. Only those frames are in the result.

    Returns
    -------
    SurveyMatches
    """
    enc = [a.encounter or f"~ann:{a.id}" for a in anns]
    cat = Catalogue(config)
    for i, (a, f) in enumerate(zip(anns, feats, strict=True)):
        # Catalogue ids are row numbers, so a match maps back to its encounter.
        cat.add(_renamed(a, str(i), enc[i]), f)
    members: dict[str, list[str]] = defaultdict(list)
    for i, e in enumerate(enc):
        members[e].append(str(i))
    rows = [i for i in range(len(anns)) if query is None or i in query]
    out: list[FrameEvidence] = []
    for done, i in enumerate(rows, 1):
        a = anns[i]
        res = cat.query(feats[i], side=a.side, exclude=members[enc[i]], camera=a.camera)
        out.append(frame_evidence(res, lambda aid: enc[int(aid)]))
        if progress:
            progress(done, len(rows))
    return SurveyMatches(
        out,
        [enc[i] for i in rows],
        [str(anns[i].individual) for i in rows],
        [anns[i].station for i in rows],
        [timestamp(anns[i]) for i in rows],
    )


def timestamp(a: Annotation) -> float | None:
    """Seconds since the epoch of an annotation's ``date`` + ``time`` columns, if any."""
    from datetime import UTC, datetime

    date, clock = a.extra.get("date", ""), a.extra.get("time", "") or "00:00:00"
    if not date:
        return None
    try:
        return datetime.fromisoformat(f"{date}T{clock}").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _renamed(a: Annotation, new_id: str, encounter: str) -> Annotation:
    from dataclasses import replace

    return replace(a, id=new_id, encounter=encounter)


@dataclass(slots=True)
class Query:
    """One query unit (an encounter or a frame) with its feature rows.

    Attributes
    ----------
    key, truth:
        Unit key and its individual.
    gallery:
        Gallery encounter keys (every encounter but its own).
    x:
        Pair features per gallery encounter.
    default_individuals, default_encounters:
        The untrained ranking of individuals and of gallery encounters.
    """

    key: str
    truth: str
    gallery: list[str]
    x: np.ndarray
    default_individuals: list[str]
    default_encounters: list[str]
    closed: bool = field(default=False)


def unit_queries(sm: SurveyMatches, unit: str = "encounter") -> list[Query]:
    """Query units of a matched season, each with its pair features.

    Parameters
    ----------
    sm:
        The matched season.
    unit:
        ``"encounter"`` (frames pooled) or ``"frame"``.
    """
    if unit not in ("encounter", "frame"):
        raise ValueError(f"unknown query unit {unit!r}: use encounter or frame")
    ind_of = sm.encounter_individual()
    st_of = sm.encounter_station()
    encs = sorted(ind_of)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(sm.encounter):
        groups[e if unit == "encounter" else str(i)].append(i)
    out: list[Query] = []
    for key, rows in groups.items():
        own = sm.encounter[rows[0]]
        truth = ind_of[own] if unit == "encounter" else sm.individual[rows[0]]
        gallery = [e for e in encs if e != own]
        frames = [sm.frames[i] for i in rows]
        x = pair_features(frames, gallery, sm.station[rows[0]], st_of)
        default = [k for k, _, _ in pool_rankings((f.ranked, f.verified) for f in frames)]
        # Individuals nobody voted for follow, by name, so every list is complete.
        rest = sorted({ind_of[g] for g in gallery} - set(default))
        # Gallery encounters by summed verified score, then raw votes (as evaluate).
        g_order = sorted(range(len(gallery)), key=lambda j: (-x[j, 0], -x[j, 4], gallery[j]))
        q = Query(key, truth, gallery, x, default + rest, [gallery[j] for j in g_order])
        q.closed = any(ind_of[g] == truth for g in gallery)
        out.append(q)
    return out


def rrf(*rankings: Sequence[str]) -> list[str]:
    """Reciprocal-rank fusion: keys by the sum of ``1 / (RRF_K + rank)``, ties by key."""
    score: dict[str, float] = defaultdict(float)
    for r in rankings:
        for i, k in enumerate(r, 1):
            score[k] += 1.0 / (RRF_K + i)
    return sorted(score, key=lambda k: (-score[k], k))


def training_pairs(
    queries: Sequence[Query], ind_of: dict[str, str], leave_out: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with no side showing an individual of ``leave_out``."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for q in queries:
        if q.truth in leave_out:
            continue
        keep = np.array([ind_of[g] not in leave_out for g in q.gallery], bool)
        if keep.any():
            xs.append(q.x[keep])
            ys.append(np.array([ind_of[g] == q.truth for g in q.gallery])[keep])
    if not xs:
        return np.zeros((0, 0)), np.zeros(0, bool)
    return np.vstack(xs), np.concatenate(ys)


def _figures(
    ranked: dict[str, tuple[list[str], list[str]]],
    queries: Sequence[Query],
    ind_of: dict[str, str],
) -> dict:
    """Top-1/top-5/mAP/macro top-1 of ``ranked`` (individuals, gallery encounters) per query."""
    per: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    aps = []
    for q in queries:
        if not q.closed or q.key not in ranked:
            continue
        inds, order = ranked[q.key]
        per[q.truth].append((inds[:1] == [q.truth], q.truth in inds[:5]))
        rel = np.array([ind_of[g] == q.truth for g in order])
        aps.append(average_precision(rel, int(rel.sum())))
    hits = [h for v in per.values() for h in v]
    n = max(1, len(hits))
    return {
        "queries": len(hits),
        "top1": round(sum(a for a, _ in hits) / n, 3),
        "top5": round(sum(b for _, b in hits) / n, 3),
        "mAP": round(float(np.mean(aps)), 3) if aps else 0.0,
        "macro_top1": round(float(np.mean([np.mean([a for a, _ in v]) for v in per.values()])), 3)
        if per
        else 0.0,
        "macro_top5": round(float(np.mean([np.mean([b for _, b in v]) for v in per.values()])), 3)
        if per
        else 0.0,
        "per_individual": {
            k: {
                "queries": len(v),
                "top1": round(float(np.mean([a for a, _ in v])), 3),
                "top5": round(float(np.mean([b for _, b in v])), 3),
            }
            for k, v in sorted(per.items())
        },
    }


def evaluate_rankings(
    sm: SurveyMatches, units: Sequence[str] = ("encounter", "frame"), l2: float = 1.0
) -> dict:
    """Default, tuned and fused rankings, leave-one-individual-out (module docstring).

    Parameters
    ----------
    sm:
        The matched season.
    units:
        Query units to report.
    l2:
        Ridge penalty of the pair model.

    Returns
    -------
    dict
        Per unit, per method: ``queries, top1, top5, mAP, macro_top1,
        macro_top5, per_individual``; plus ``individuals`` scored and
        ``skipped`` (individuals whose training pairs lacked a 'same').
    """
    ind_of = sm.encounter_individual()
    out: dict = {"protocol": "encounter; pair model fitted without the query's individual"}
    for unit in units:
        queries = unit_queries(sm, unit)
        closed = sorted({q.truth for q in queries if q.closed})
        ranked: dict[str, dict[str, tuple[list[str], list[str]]]] = {m: {} for m in METHODS}
        skipped: list[str] = []
        for cat in closed:
            x, y = training_pairs(queries, ind_of, {cat})
            try:
                model = fit_pair_model(x, y, l2=l2)
            except ValueError:
                skipped.append(cat)
                continue
            for q in queries:
                if q.truth != cat or not q.closed:
                    continue
                tuned = rank_individuals(model.logit(q.x), q.gallery, ind_of)
                ranked["default"][q.key] = (q.default_individuals, q.default_encounters)
                ranked["tuned"][q.key] = tuned
                ranked["fusion"][q.key] = (
                    rrf(q.default_individuals, tuned[0]),
                    rrf(q.default_encounters, tuned[1]),
                )
        out[unit] = {m: _figures(ranked[m], queries, ind_of) for m in METHODS}
        out[unit]["individuals"] = len(closed) - len(skipped)
        out[unit]["skipped"] = skipped
    return out


def fit_on_season(sm: SurveyMatches, unit: str = "encounter", l2: float = 1.0) -> PairModel:
    """The pair model fitted on every labelled pair of the season (the one installed).

    Parameters
    ----------
    sm:
        The matched season.
    unit:
        Query unit whose pairs train it (``"encounter"``: the identify stage's).
    l2:
        Ridge penalty.

    Returns
    -------
    PairModel
    """
    queries = unit_queries(sm, unit)
    x, y = training_pairs(queries, sm.encounter_individual(), set())
    return fit_pair_model(x, y, l2=l2)
