"""A burst's frames show one animal: identify them together.

Each frame is matched on its own (its keypoints are the evidence a person
checks); the burst's answer sums the frames' per-individual scores, so a frame
where the flank is turned away is outvoted by the frames that show it. On the
Tajik set (``irbis reid evaluate``): top-1 0.517 per frame, 0.639 per burst.

The identify stage and ``per_encounter`` evaluation use
:mod:`irbis.reid.encounter` instead (verified evidence summed, the unverified
tail ranked by reciprocal ranks, every candidate of the encounter given to
each frame); this module stays for ``burst_pooled_top1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from irbis.reid.catalogue import Match, QueryResult

__all__ = ["burst_ranking", "candidate_scores", "pool_burst"]


def candidate_scores(result: QueryResult) -> dict[str, float]:
    """A frame's best score per candidate individual."""
    return {c.individual: float(c.score) for c in result.candidates if c.individual is not None}


def pool_burst(frames: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per-individual score of a burst: each frame's score for that individual, summed.

    Parameters
    ----------
    frames
        One mapping individual -> score per frame (see :func:`candidate_scores`).

    Returns
    -------
    dict
        Individual -> summed score (individuals no frame proposed are absent).
    """
    total: dict[str, float] = {}
    for scores in frames:
        for individual, score in scores.items():
            total[individual] = total.get(individual, 0.0) + float(score)
    return total


def burst_ranking(result: QueryResult, pooled: Mapping[str, float]) -> tuple[str, list[Match]]:
    """One frame's decision and candidates, ranked by its burst's evidence.

    The frame keeps its own matches, ordered by the burst's pooled score.
    "Same as X" stands only when X is also the burst's best individual;
    otherwise a person decides (``"unsure"``). A sequence showing a mother
    and her cubs pools them together: that can reorder a cub frame's
    candidates and send it to a person, never make a "same" out of a doubt.

    Returns
    -------
    decision, candidates
    """
    ranked = sorted(
        result.candidates,
        key=lambda c: (-pooled.get(c.individual or "", 0.0), -float(c.score)),
    )
    burst_best = min(pooled, key=lambda k: (-pooled[k], k)) if pooled else None
    decision = result.decision
    if decision == "same" and result.individual != (burst_best or result.individual):
        decision = "unsure"
    return decision, ranked
