"""What a team lives with: a season replayed against a simulated reviewer.

The encounters of a labelled season are replayed in time order into a
catalogue that starts empty, as a team would build it. For each encounter the
matcher pools its frames (:func:`irbis.reid.encounter.pool_encounter`) and
ranks the catalogue's individuals; the simulated reviewer then works as a
person on the review page does:

* the candidates are shown ``top_k`` at a time, best first; the first page is
  the matcher's top ``top_k``, later pages continue down its ranking and then
  through the individuals it found no evidence for (most sightings first: the
  order a catalogue browser lists them in);
* every page looked at is one **decision** ("this one" or "none of these");
  the reviewer recognises the right individual when it is on the page
  (``miss_rate`` > 0 makes them overlook it now and then, seeded);
* an encounter whose right individual is not on the first page needs a
  **manual search** (further pages). An individual not in the catalogue is
  declared new after every page was seen (with an empty catalogue: one
  decision);
* with ``auto_accept`` set, an encounter the matcher calls "same as X" at a
  probability of at least ``auto_accept`` (X's strongest frame, and no other
  individual that strong: :func:`~irbis.reid.encounter.pool_encounter` with
  that threshold) is filed as X without a person (no decision): wrong ones
  are **false merges**. ``machine_same``/``machine_same_right`` count the
  matcher's own "same" calls at the default rule either way.

A **false split** is an encounter filed as a new individual although its
animal already was in the catalogue (a missed match). The filed label, right
or wrong, is what later encounters are matched against: mistakes propagate as
they would in a real catalogue. ``minutes`` is decisions times
``seconds_per_decision``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from irbis.reid.annotations import Annotation
from irbis.reid.calibration import DecisionRule
from irbis.reid.catalogue import Catalogue, MatchConfig
from irbis.reid.encounter import pool_encounter
from irbis.reid.features import Features

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Reviewer:
    """How the simulated reviewer works (see the module docstring).

    Attributes
    ----------
    top_k:
        Candidates shown per page.
    seconds_per_decision:
        Time a person spends on one page of candidates (the stated cost).
    auto_accept:
        Probability at or above which a machine "same" is filed without a
        person; ``None`` = a person confirms every encounter.
    miss_rate:
        Probability that the reviewer overlooks the right individual on a page.
    seed:
        Seed of the reviewer's misses.
    """

    top_k: int = 5
    seconds_per_decision: float = 20.0
    auto_accept: float | None = None
    miss_rate: float = 0.0
    seed: int = 0


def encounter_order(anns: Sequence[Annotation]) -> list[list[int]]:
    """Indices of ``anns`` grouped by encounter, encounters in time order.

    An encounter's time is the earliest ``date`` + ``time`` of its frames (the
    ``extra`` columns of :func:`~irbis.reid.annotations.read_labels`); frames
    within one are in time, then id, order. Encounters without a time come
    last, by key.
    """
    groups: dict[str, list[int]] = {}
    for i, a in enumerate(anns):
        groups.setdefault(a.encounter or f"~ann:{a.id}", []).append(i)

    def when(i: int) -> str:
        ex = anns[i].extra
        stamp = f"{ex.get('date', '')} {ex.get('time', '')}".strip()
        return stamp or "~"

    for members in groups.values():
        members.sort(key=lambda i: (when(i), anns[i].id))
    return sorted(groups.values(), key=lambda m: (when(m[0]), anns[m[0]].encounter or ""))


def simulate_review(
    anns: Sequence[Annotation],
    feats: Sequence[Features],
    reviewer: Reviewer | None = None,
    config: MatchConfig | None = None,
    progress: Progress | None = None,
) -> dict:
    """Replay the season (see the module docstring) and count the work and the errors.

    Parameters
    ----------
    anns, feats:
        Labelled annotations (``individual`` is the truth, never shown to the
        matcher) and their features.
    reviewer:
        The reviewer model.
    config:
        Matcher parameters.

    Returns
    -------
    dict
        Totals (``decisions``, ``decisions_per_encounter``,
        ``encounters_manual_search``, ``false_merges``, ``false_splits``,
        ``minutes``...) and one record per encounter (``log``).
    """
    rv = reviewer or Reviewer()
    if rv.top_k < 1:
        raise ValueError("top_k must be at least 1")
    rng = np.random.default_rng(rv.seed)
    cfg = config or MatchConfig()
    auto_rule = (
        None
        if rv.auto_accept is None
        else DecisionRule(same=rv.auto_accept, new=min(cfg.decision.new, rv.auto_accept))
    )
    cat = Catalogue(cfg)
    truth_of: dict[str, str] = {}  # catalogue individual -> the animal it was created for
    sightings: Counter[str] = Counter()
    order = encounter_order(anns)
    log: list[dict] = []
    totals = Counter()
    machine_same = machine_same_right = 0
    for n_done, members in enumerate(order, 1):
        truth = str(Counter(str(anns[i].individual) for i in members).most_common(1)[0][0])
        results = [cat.query(feats[i], side=anns[i].side, camera=anns[i].camera) for i in members]
        er = pool_encounter(results, cfg.decision)
        auto = pool_encounter(results, auto_rule) if auto_rule is not None else None
        ranked = er.individuals
        listed = set(ranked)
        rest = sorted((k for k in truth_of if k not in listed), key=lambda k: (-sightings[k], k))
        shown = ranked + rest
        known = any(t == truth for t in truth_of.values())
        right_rank = next((r for r, k in enumerate(shown, 1) if truth_of[k] == truth), None)
        if er.decision == "same":
            machine_same += 1
            machine_same_right += int(truth_of.get(er.individual or "") == truth)
        filed: str | None = None
        decisions = 0
        how = ""
        if auto is not None and auto.decision == "same" and auto.individual is not None:
            filed, how = auto.individual, "machine"
        else:
            pages = max(1, math.ceil(len(shown) / rv.top_k))
            for page in range(pages):
                decisions += 1
                on_page = shown[page * rv.top_k : (page + 1) * rv.top_k]
                hit = next((k for k in on_page if truth_of[k] == truth), None)
                if hit is not None and not (rv.miss_rate and rng.random() < rv.miss_rate):
                    filed, how = hit, "accepted"
                    break
            if filed is None:
                filed, how = f"ind{len(truth_of) + 1}", "new"
                truth_of[filed] = truth
        false_merge = truth_of[filed] != truth
        false_split = how == "new" and known
        search = how != "machine" and decisions > 1
        totals.update(
            {
                "decisions": decisions,
                "encounters_manual_search": int(search),
                "manual_search_known": int(search and known),
                "false_merges": int(false_merge),
                "false_splits": int(false_split),
                "machine_filed": int(how == "machine"),
                "known_encounters": int(known),
                "known_in_top1": int(known and right_rank == 1),
                "known_in_top_k": int(known and right_rank is not None and right_rank <= rv.top_k),
            }
        )
        sightings[filed] += 1
        for i in members:
            cat.add(replace(anns[i], id=str(i), individual=filed), feats[i])
        log.append(
            {
                "encounter": anns[members[0]].encounter,
                "truth": truth,
                "frames": len(members),
                "catalogue_individuals": len(truth_of) - int(how == "new"),
                "known": known,
                "right_rank": right_rank,
                "machine": er.decision,
                "probability": round(er.probability, 3),
                "filed_as": filed,
                "how": how,
                "decisions": decisions,
                "false_merge": false_merge,
                "false_split": false_split,
            }
        )
        if progress:
            progress("encounters", n_done, len(order))
    n = len(order)
    animals = {str(a.individual) for a in anns}
    by_animal = Counter(truth_of.values())
    known_n = totals["known_encounters"]
    return {
        "reviewer": {
            "top_k": rv.top_k,
            "seconds_per_decision": rv.seconds_per_decision,
            "auto_accept": rv.auto_accept,
            "miss_rate": rv.miss_rate,
            "seed": rv.seed,
        },
        "encounters": n,
        "frames": len(anns),
        "animals": len(animals),
        "catalogue_individuals": len(truth_of),
        "animals_split": sum(1 for v in by_animal.values() if v > 1),
        "decisions": totals["decisions"],
        "decisions_per_encounter": totals["decisions"] / n if n else 0.0,
        "encounters_manual_search": totals["encounters_manual_search"],
        # Of those: the animal was in the catalogue but not on the first page
        # (the matcher's miss), or it was new and the reviewer had to look
        # through more than one page to be sure (the catalogue's size).
        "manual_search_known": totals["manual_search_known"],
        "manual_search_new": totals["encounters_manual_search"] - totals["manual_search_known"],
        "false_merges": totals["false_merges"],
        "false_splits": totals["false_splits"],
        "machine_filed": totals["machine_filed"],
        "machine_same": machine_same,
        "machine_same_right": machine_same_right,
        "known_encounters": known_n,
        "known_top1": totals["known_in_top1"] / known_n if known_n else None,
        "known_top_k": totals["known_in_top_k"] / known_n if known_n else None,
        "minutes": totals["decisions"] * rv.seconds_per_decision / 60.0,
        "log": log,
    }
