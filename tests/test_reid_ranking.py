"""The survey-tuned pair ranking and its clustering, on seasons the tests build.

The matched seasons here are made up as numbers (no images): each encounter's
frames carry evidence into gallery encounters, with a weak signal the
untrained ranking uses (verified scores) and one it ignores (raw votes of a
frame's best gallery encounter). A pair model fitted on other individuals must
learn the second and rank better on cats it never saw.
"""

from __future__ import annotations

import numpy as np
import pytest

from irbis.reid.catalogue import Match, QueryResult
from irbis.reid.pair_cluster import cannot_link, constrained_clusters, evaluate_clustering
from irbis.reid.ranking import (
    FEATURES,
    FrameEvidence,
    PairModel,
    fit_pair_model,
    frame_evidence,
    pair_features,
    rank_individuals,
)
from irbis.reid.ranking_eval import SurveyMatches, evaluate_rankings, unit_queries


def _season(seed: int = 0, cats: int = 8, per_cat: int = 3, frames: int = 3) -> SurveyMatches:
    """Encounters whose raw votes point at the right cat; verified scores are noise."""
    rng = np.random.default_rng(seed)
    encs = [(f"C{c}", f"C{c}_e{k}") for c in range(cats) for k in range(per_cat)]
    out = SurveyMatches([], [], [], [], [])
    for t, (cat, enc) in enumerate(encs):
        for f in range(frames):
            keys = [e for _, e in encs if e != enc]
            truth = np.array([e.startswith(cat + "_") for e in keys])
            # The untrained ranking trusts verified scores: here they are noise
            # that favours a decoy cat (C0), as Cat1 drew the Tajik rankings.
            score = rng.exponential(1.0, len(keys)) * (rng.random(len(keys)) < 0.3)
            score += 3.0 * np.array([e.startswith("C0_") for e in keys])
            raw = rng.random(len(keys)) + 1.5 * truth
            inl = np.where(score > 0, 8, 0).astype(float)
            by_ind: dict[str, float] = {}
            for e, s in zip(keys, score, strict=True):
                c = e.split("_")[0]
                by_ind[c] = max(by_ind.get(c, 0.0), float(s))
            ranked = tuple(sorted(by_ind, key=lambda c: -by_ind[c]))
            verified = {c: v for c, v in by_ind.items() if v > 0}
            out.frames.append(FrameEvidence(tuple(keys), score, inl, raw, ranked, verified))
            out.encounter.append(enc)
            out.individual.append(cat)
            out.station.append("S1" if t % 2 else "S2")
            out.when.append(1e9 + 86400.0 * t + 10.0 * f)
    return out


def test_pair_model_learns_what_the_untrained_ranking_ignores() -> None:
    sm = _season()
    res = evaluate_rankings(sm)
    enc = res["encounter"]
    # C0 is the decoy: the default names it for everyone and loses elsewhere.
    assert enc["default"]["top1"] < 0.3
    assert enc["tuned"]["top1"] >= 0.8
    assert enc["tuned"]["mAP"] > enc["default"]["mAP"]
    assert enc["tuned"]["macro_top1"] > enc["default"]["macro_top1"]
    assert res["frame"]["tuned"]["top1"] > res["frame"]["default"]["top1"]
    assert enc["tuned"]["queries"] == 8 * 3 and res["frame"]["tuned"]["queries"] == 8 * 3 * 3
    assert set(enc["tuned"]["per_individual"]) == {f"C{c}" for c in range(8)}


def test_features_and_model_round_trip() -> None:
    f = FrameEvidence(
        ("a", "b", "c"),
        np.array([4.0, 0.0, 1.0]),
        np.array([9.0, 0.0, 6.0]),
        np.array([2.0, 3.0, 1.0]),
        ("X", "Y"),
        {"X": 4.0},
    )
    x = pair_features([f, f], ["a", "b", "c", "d"], "S1", {"a": "S1", "d": "S2"})
    assert x.shape == (4, len(FEATURES))
    assert np.allclose(x[:, 0], np.log1p([8.0, 0.0, 2.0, 0.0]))  # summed over frames
    assert np.allclose(x[:, 3], [1.0, 0.0, 1.0, 0.0])  # verified in both frames
    assert np.allclose(x[:, 4], [2 / 3, 1.0, 1 / 3, 0.0])  # raw relative to the best
    assert np.allclose(x[:, 5], [1.0, 1 / 3, 0.5, 0.0])  # a, then c, then b
    assert np.allclose(x[:, 6], [1.0, 0.0, 0.0, 0.0])
    y = np.array([True, False, True, False] * 5)
    m = fit_pair_model(np.vstack([x] * 5), y)
    again = PairModel.from_dict(m.as_dict())
    assert np.allclose(again.logit(x), m.logit(x))
    inds, encs = rank_individuals(
        m.logit(x), ["a", "b", "c", "d"], dict(a="P", b="Q", c="P", d="R")
    )
    assert inds[0] == "P" and set(inds) == {"P", "Q", "R"} and len(encs) == 4
    with pytest.raises(ValueError, match="both"):
        fit_pair_model(x, np.zeros(4, bool))
    bad = m.as_dict() | {"features": ["evidence"]}
    with pytest.raises(ValueError, match="train it again"):
        PairModel.from_dict(bad)


def test_frame_evidence_keeps_the_best_match_per_encounter() -> None:
    z = np.zeros((0, 2), np.float32)
    ms = [
        Match("1", "X", 5.0, 0.9, 10, 7.0, z, z),
        Match("2", "X", 2.0, 0.5, 7, 9.0, z, z),
        Match("3", "Y", 0.0, 0.0, 0, 3.0, z, z),
    ]
    res = QueryResult("same", "X", 0.9, [ms[0], ms[2]], ms)
    fe = frame_evidence(res, {"1": "e1", "2": "e1", "3": "e2"}.__getitem__)
    assert fe.keys == ("e1", "e2")
    assert fe.score.tolist() == [5.0, 0.0] and fe.inliers.tolist() == [10.0, 0.0]
    assert fe.raw.tolist() == [9.0, 3.0]
    assert fe.ranked == ("X", "Y") and fe.verified == {"X": 5.0}
    assert FrameEvidence.from_dict(fe.as_dict()).keys == fe.keys


def test_no_animal_is_at_two_stations_at_once() -> None:
    forbid = cannot_link(["A", "B", "A", None], [(0, 60), (600, 700), (9e5, 9e5), (0, 1)], 30)
    assert forbid[0, 1] and forbid[1, 0]
    assert not forbid[0, 2] and not forbid[1, 2]  # far apart in time
    assert not forbid[0, 3]  # unknown station: never constrained
    p = np.array(
        [
            [1.0, 0.99, 0.98, 0.1],
            [0.99, 1.0, 0.97, 0.1],
            [0.98, 0.97, 1.0, 0.1],
            [0.1, 0.1, 0.1, 1.0],
        ]
    )
    free = constrained_clusters(p, 0.9)
    assert len(set(free[:3].tolist())) == 1 and free[3] != free[0]
    held = constrained_clusters(p, 0.9, forbid)
    # 0-1 is forbidden: the most probable pair loses, 0 and 2 join, 1 stays out.
    assert held[0] == held[2] and held[1] != held[0]


def test_clustering_threshold_is_chosen_on_other_cats() -> None:
    sm = _season(seed=1, cats=6)
    res = evaluate_clustering(sm, target_precision=0.95)
    assert set(res["constrained"]["thresholds"]) == {f"C{c}" for c in range(6)}
    for k in ("constrained", "unconstrained"):
        assert 0.0 <= res[k]["pair_precision"] <= 1.0 and 0.0 <= res[k]["pair_recall"] <= 1.0
    # Raw votes separate the cats here, so the pair model clusters most pairs right.
    assert res["unconstrained"]["pair_recall"] > 0.5
    assert res["unconstrained"]["pair_precision"] >= 0.9


def test_unit_queries_never_hold_their_own_encounter() -> None:
    sm = _season(cats=3, per_cat=2)
    for unit in ("encounter", "frame"):
        for q in unit_queries(sm, unit):
            own = {e for e, i in zip(sm.encounter, range(len(sm.encounter)), strict=True)}
            assert q.gallery and all(g in own for g in q.gallery)
            assert q.truth.startswith("C")
    encs = unit_queries(sm, "encounter")
    assert all(q.key not in q.gallery for q in encs)
    with pytest.raises(ValueError, match="unit"):
        unit_queries(sm, "burst")


@pytest.mark.slow
def test_on_real_tajik_frames_the_untrained_rows_match_reid_evaluate() -> None:
    """Real photos: the ranking bench's default rows are ``irbis reid evaluate``'s figures."""
    from collections import defaultdict
    from dataclasses import replace

    from irbis.reid import EvalOptions, evaluate, read_labels
    from irbis.reid.evaluate import extract_all
    from irbis.reid.ranking_eval import collect_matches

    from .conftest import need_data

    root = need_data("reid", "snowleopard-tajikistan")
    by_enc = defaultdict(list)
    for a in read_labels(root / "labels.csv"):
        by_enc[a.encounter].append(replace(a, mask=None))
    anns = [a for m in by_enc.values() for a in sorted(m, key=lambda a: a.id)[:2]]
    opts = EvalOptions(cluster=False)
    feats, _ = extract_all(anns, opts)
    reference = evaluate(anns, opts, feats=feats)["per_encounter"]
    res = evaluate_rankings(collect_matches(anns, feats))
    enc = res["encounter"]["default"]
    assert enc["queries"] == reference["closed_set_encounters"]
    assert enc["top1"] == round(reference["top1"], 3)
    assert enc["top5"] == round(reference["top5"], 3)
    assert enc["macro_top1"] == round(reference["macro_top1"], 3)
    # Every closed-set encounter is also ranked by a model that never saw its cat.
    assert res["encounter"]["tuned"]["queries"] == enc["queries"]
    assert set(res["encounter"]["tuned"]["per_individual"]) == set(enc["per_individual"])
