"""The encounter is the query: one answer from all the frames of a burst.

A burst (an encounter: one camera, one visit) shows one animal in many
frames. Each frame is matched on its own against the catalogue (its keypoints
are the evidence a person checks); the encounter's answer pools them:

* **Verified evidence** adds up: an individual's encounter score is the sum,
  over frames, of that frame's geometrically verified score for it, so a frame
  where the flank is turned away is outvoted by the frames that show it.
* **The unverified tail** is ranked by summed reciprocal ranks: an individual
  that several frames put near the top of their (unverified) lists comes
  before one a single frame put there. Scale-free, so frames of very
  different quality count alike.

Ranking key: verified sum first, then the reciprocal-rank sum. The decision
"same as X" stands only where X's strongest frame alone reaches the rule's
probability and no other individual does (a sequence of a mother and her cub
is left to a person); the probability is that strongest frame's calibrated
probability, never a sum (frames of a burst are not independent evidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from irbis.reid.calibration import DecisionRule
from irbis.reid.catalogue import Match, QueryResult

__all__ = ["EncounterResult", "encounter_candidates", "pool_encounter", "pool_rankings"]


def pool_rankings(
    frames: Iterable[tuple[Sequence[str], Mapping[str, float]]],
) -> list[tuple[str, float, float]]:
    """Pool per-frame rankings into one ranking of individuals.

    Parameters
    ----------
    frames
        Per frame: its ranked individuals (best first) and its verified
        evidence per individual (absent or 0 = none).

    Returns
    -------
    list
        ``(individual, evidence, reciprocal_rank_sum)`` best first (ties by name,
        so the order never depends on the order of the frames).
    """
    evidence: dict[str, float] = {}
    rr: dict[str, float] = {}
    for ranked, scores in frames:
        for r, ind in enumerate(ranked, 1):
            rr[ind] = rr.get(ind, 0.0) + 1.0 / r
            evidence.setdefault(ind, 0.0)
        for ind, s in scores.items():
            evidence[ind] = evidence.get(ind, 0.0) + max(0.0, float(s))
            rr.setdefault(ind, 0.0)
    return sorted(((k, evidence[k], rr[k]) for k in evidence), key=lambda t: (-t[1], -t[2], t[0]))


@dataclass(slots=True)
class EncounterResult:
    """What the catalogue says about one encounter.

    Attributes
    ----------
    decision:
        ``"same"``, ``"new"`` or ``"unsure"`` (see the module docstring).
    individual:
        Best individual of the encounter (a guess unless ``decision == "same"``).
    probability:
        Calibrated probability of the best individual's strongest frame.
    ranking:
        ``(individual, evidence, reciprocal_rank_sum)`` best first.
    evidence:
        Per individual, its strongest frame match (the one a reviewer is shown
        first) and that frame's index.
    frames:
        The per-frame results, in the order given.
    """

    decision: str
    individual: str | None
    probability: float
    ranking: list[tuple[str, float, float]]
    evidence: dict[str, tuple[int, Match]] = field(default_factory=dict)
    frames: list[QueryResult] = field(default_factory=list)

    @property
    def individuals(self) -> list[str]:
        """Ranked individuals, best first."""
        return [k for k, _, _ in self.ranking]


def pool_encounter(
    results: Sequence[QueryResult], rule: DecisionRule | None = None
) -> EncounterResult:
    """One encounter's answer from its frames' query results.

    Parameters
    ----------
    results
        One :class:`~irbis.reid.catalogue.QueryResult` per frame.
    rule
        Decision thresholds (default :class:`~irbis.reid.calibration.DecisionRule`).
    """
    rule = rule or DecisionRule()
    per_frame: list[tuple[list[str], dict[str, float]]] = []
    best: dict[str, tuple[int, Match]] = {}
    top_p: dict[str, float] = {}
    for i, res in enumerate(results):
        names = [c.individual for c in res.candidates if c.individual is not None]
        scores = {c.individual: c.score for c in res.candidates if c.individual is not None}
        per_frame.append((names, scores))
        for c in res.candidates:
            if c.individual is None:
                continue
            top_p[c.individual] = max(top_p.get(c.individual, 0.0), float(c.probability))
            old = best.get(c.individual)
            if old is None or (c.score, c.raw) > (old[1].score, old[1].raw):
                best[c.individual] = (i, c)
    ranking = pool_rankings(per_frame)
    if not ranking:
        return EncounterResult("new", None, 0.0, [], {}, list(results))
    ind, ev, _ = ranking[0]
    p = top_p.get(ind, 0.0)
    if ev <= 0:
        decision = "new"  # nobody verified in any frame: as a single frame says
    else:
        decision = rule.decide(p)
        rivals = [k for k, q in top_p.items() if k != ind and q >= rule.same]
        if decision == "same" and rivals:
            decision = "unsure"
    return EncounterResult(decision, ind, p, ranking, best, list(results))


def encounter_candidates(er: EncounterResult, frame: int) -> list[tuple[Match, int]]:
    """The encounter's ranking as candidates of one of its frames.

    Every individual of the encounter's ranking is listed in the encounter's
    order. Where the frame has its own match for that individual, that match
    (with the frame's own keypoints) is given; otherwise the encounter's
    strongest match for it, from another frame.

    Returns
    -------
    list
        ``(match, frame_index)`` best first; ``frame_index != frame`` marks
        evidence borrowed from another frame of the encounter.
    """
    own: dict[str, Match] = {}
    if 0 <= frame < len(er.frames):
        own = {c.individual: c for c in er.frames[frame].candidates if c.individual is not None}
    out: list[tuple[Match, int]] = []
    for ind in er.individuals:
        if ind in own:
            out.append((own[ind], frame))
        elif ind in er.evidence:
            i, m = er.evidence[ind]
            out.append((m, i))
    return out
