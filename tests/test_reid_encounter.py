"""The encounter as the query, drawn boxes, and the simulated review of a season."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from irbis.cli.reid_cmd import reid_app
from irbis.core.errors import IrbisError
from irbis.reid import Annotation, extract, prepare
from irbis.reid.annotations import attach_boxes, read_boxes, read_labels
from irbis.reid.catalogue import Match, QueryResult
from irbis.reid.encounter import pool_encounter, pool_rankings
from irbis.reid.review_sim import Reviewer, encounter_order, simulate_review

from .conftest import need_data
from .test_reid_synthetic import frame, pattern

NONE = np.zeros((0, 2), np.float32)


def _m(ind: str, score: float, prob: float, raw: float = 1.0) -> Match:
    return Match(f"a-{ind}-{score}", ind, score, prob, 8 if score else 0, raw, NONE, NONE)


def _res(*cands: Match) -> QueryResult:
    verified = [c for c in cands if c.score > 0]
    top = verified[0] if verified else None
    decision = "new" if top is None else ("same" if top.probability >= 0.9 else "unsure")
    return QueryResult(
        decision, cands[0].individual, top.probability if top else 0.0, list(cands), list(cands)
    )


def test_frames_pool_verified_evidence_then_reciprocal_ranks() -> None:
    # Frame 1 alone says Zara; frames 2 and 3 verify Khan: the encounter says Khan.
    frames = [
        (["Zara", "Khan", "Nova"], {"Zara": 3.0}),
        (["Khan", "Nova"], {"Khan": 2.5}),
        (["Khan", "Nova", "Zara"], {"Khan": 1.0}),
    ]
    ranked = pool_rankings(frames)
    assert [k for k, _, _ in ranked] == ["Khan", "Zara", "Nova"]
    assert ranked[0][1] == pytest.approx(3.5)
    # Without verified evidence the tail goes by summed reciprocal ranks:
    # Nova is second in two frames (1/2 + 1/2), Pia first in one (1) and absent
    # elsewhere, Ola third in two (2/3): a tie by name, then Ola.
    tail = pool_rankings([(["Pia", "Nova", "Ola"], {}), (["Rex", "Nova", "Ola"], {})])
    assert [k for k, _, _ in tail] == ["Nova", "Pia", "Rex", "Ola"]
    # Frame order never changes the answer.
    assert pool_rankings(frames[::-1]) == ranked


def test_encounter_decision_needs_one_strong_frame_and_no_strong_rival() -> None:
    weak = _res(_m("Khan", 2.0, 0.6), _m("Zara", 0.0, 0.0))
    strong = _res(_m("Khan", 9.0, 0.97))
    er = pool_encounter([weak, strong])
    assert er.decision == "same" and er.individual == "Khan" and er.probability == 0.97
    assert er.evidence["Khan"][0] == 1  # the strongest frame is shown first
    # Many weak frames add up in the ranking, never to a "same".
    er = pool_encounter([weak, weak, weak])
    assert er.individual == "Khan" and er.decision == "unsure" and er.probability == 0.6
    # A strong rival in another frame (a mother and her cub): a person decides.
    rival = _res(_m("Zara", 5.0, 0.95))
    er = pool_encounter([strong, strong, rival])
    assert er.individual == "Khan" and er.decision == "unsure"
    # Nothing verified anywhere: "new", with the votes' best guess.
    er = pool_encounter([_res(_m("Zara", 0.0, 0.0)), _res(_m("Khan", 0.0, 0.0, raw=3))])
    assert er.decision == "new" and er.individuals[:2] in (["Khan", "Zara"], ["Zara", "Khan"])
    assert pool_encounter([]).decision == "new"


def test_boxes_file_becomes_pixel_crops(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((200, 400, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.jpg"), np.zeros((100, 100, 3), np.uint8))
    (tmp_path / "labels.csv").write_text(
        "path,individual_id,encounter,date,time\n"
        "a.jpg,Khan,e1,2012-07-01,10:00:00\nb.jpg,Khan,e2,,\n"
    )
    (tmp_path / "boxes.csv").write_text(
        "file,x_min,y_min,x_max,y_max,note\na.jpg,0.25,0.5,0.75,1.0,cat\n"
    )
    anns = read_labels(tmp_path / "labels.csv")
    assert anns[0].extra == {"date": "2012-07-01", "time": "10:00:00"} and anns[1].extra == {}
    boxed, n = attach_boxes(anns, read_boxes(tmp_path / "boxes.csv"))
    assert n == 1
    assert boxed[0].box == pytest.approx((100.0, 100.0, 200.0, 100.0))
    assert boxed[1].box is None and anns[0].box is None  # the input is not changed
    (tmp_path / "bad.csv").write_text("file,x_min,y_min,x_max,y_max\na.jpg,0.5,0.2,0.4,0.9\n")
    with pytest.raises(IrbisError, match=r"bad.csv:2: not a box"):
        read_boxes(tmp_path / "bad.csv")
    (tmp_path / "other.csv").write_text("file,x_min,y_min,x_max,y_max\nz.jpg,0,0,1,1\n")
    with pytest.raises(IrbisError, match="no image of the labels has a box"):
        attach_boxes(anns, read_boxes(tmp_path / "other.csv"))


def test_every_tajik_frame_gets_its_drawn_box() -> None:
    root = need_data("reid", "snowleopard-tajikistan")
    anns = read_labels(root / "labels.csv")
    boxed, n = attach_boxes(anns, read_boxes(root / "boxes.csv"))
    assert n == len(anns) == 478
    for a in boxed[::25]:
        h, w = cv2.imread(str(a.image)).shape[:2]
        x, y, bw, bh = a.box
        assert x >= 0 and y >= 0 and x + bw <= w + 1 and y + bh <= h + 1 and bw > 10 and bh > 10
    assert len({a.extra["date"] for a in boxed}) > 20  # dates travel along for the replay


def _season(root: Path) -> Path:
    """Three cats over six encounters of three frames, and a lone cat; in time order."""
    lines = ["path,individual_id,encounter,date,time"]
    plan = [("Cat0", 0), ("Cat1", 1), ("Cat0", 2), ("Cat2", 3), ("Cat1", 4), ("Cat2", 5)]
    for day, (cat, e) in enumerate(plan, 1):
        k = int(cat[-1])
        for f in range(3):
            name = f"e{e}_f{f}.png"
            cv2.imwrite(str(root / name), frame(pattern(40 + k), 31 * e + f))
            lines.append(f"{name},{cat},enc{e},2012-07-{day:02d},10:00:0{f}")
    cv2.imwrite(str(root / "lone.png"), frame(pattern(99), 3))
    lines.append("lone.png,Lone,encX,2012-07-09,10:00:00")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def test_evaluate_reports_per_encounter_and_per_frame(tmp_path: Path) -> None:
    labels = _season(tmp_path)
    args = ["evaluate", "--images", str(tmp_path), "--labels", str(labels), "--json"]
    r = CliRunner().invoke(reid_app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    enc = doc["per_encounter"]
    assert enc["encounters"] == 7 and enc["closed_set_encounters"] == 6
    assert enc["open_set_encounters"] == 1 and enc["open_set_new_rate"] == 1.0
    assert enc["top1"] == 1.0 and enc["mAP"] == 1.0 and enc["macro_top1"] == 1.0
    assert set(enc["per_individual"]) == {"Cat0", "Cat1", "Cat2"}
    assert "per_query" not in enc
    assert doc["closed_set_queries"] == 18 and doc["top1"] == 1.0  # per frame still there
    table = CliRunner().invoke(reid_app, args[:-1])
    assert table.exit_code == 0 and "per encounter" in table.stdout


#: Inside the coat in every synthetic frame: the coat's straight edges and corners
#: are alike on every "cat" and would match across cats.
COAT = (160.0, 100.0, 240.0, 120.0)


def _features(labels: Path) -> tuple[list[Annotation], list]:
    anns = [replace(a, box=COAT) for a in read_labels(labels)]
    return anns, [extract(prepare(a.image, box=a.box)) for a in anns]


def test_simulated_review_of_a_season_from_an_empty_catalogue(tmp_path: Path) -> None:
    anns, feats = _features(_season(tmp_path))
    order = encounter_order(anns)
    assert [anns[m[0]].encounter for m in order] == [f"enc{e}" for e in range(6)] + ["encX"]
    r = simulate_review(anns, feats, Reviewer(top_k=1, seconds_per_decision=30))
    assert r["encounters"] == 7 and r["catalogue_individuals"] == 4
    assert r["false_merges"] == 0 and r["false_splits"] == 0
    assert r["known_encounters"] == 3 and r["known_top1"] == 1.0
    # First sightings: enc0 on an empty catalogue (1 page), enc1 (1 page of 1),
    # enc3 (2 pages), encX (3 pages); the known cats are found first: 1 each.
    assert [x["decisions"] for x in r["log"]] == [1, 1, 1, 2, 1, 1, 3]
    assert r["decisions"] == 10 and r["minutes"] == pytest.approx(5.0)
    assert r["encounters_manual_search"] == 2
    assert r["manual_search_known"] == 0 and r["manual_search_new"] == 2
    # A reviewer who never spots the cat splits every returning animal.
    blind = simulate_review(anns, feats, Reviewer(miss_rate=1.0))
    assert blind["false_splits"] == 3 and blind["catalogue_individuals"] == 7
    assert blind["animals_split"] == 3


def test_auto_accepted_machine_matches_can_merge_two_animals(tmp_path: Path) -> None:
    # Two "animals" with one coat: the matcher is sure, the labels disagree.
    anns, feats = _features(_season(tmp_path))
    twins = [a if a.encounter != "enc2" else replace(a, individual="Twin") for a in anns]
    person = simulate_review(twins, feats, Reviewer())
    assert person["false_merges"] == 0 and person["machine_filed"] == 0
    machine = simulate_review(twins, feats, Reviewer(auto_accept=0.95))
    assert machine["machine_filed"] >= 1 and machine["false_merges"] == 1
    assert [x["encounter"] for x in machine["log"] if x["false_merge"]] == ["enc2"]
    assert machine["decisions"] < person["decisions"]


def test_simulate_review_cli(tmp_path: Path) -> None:
    labels = _season(tmp_path)
    r = CliRunner().invoke(
        reid_app,
        [
            "simulate-review",
            "--images",
            str(tmp_path),
            "--labels",
            str(labels),
            "--seconds-per-decision",
            "12",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["encounters"] == 7 and doc["false_merges"] == 0
    assert doc["minutes"] == pytest.approx(doc["decisions"] * 12 / 60)
    assert "log" not in doc
    bad = CliRunner().invoke(
        reid_app,
        ["simulate-review", "--images", str(tmp_path), "--labels", str(labels), "--top-k", "0"],
    )
    assert bad.exit_code == 2 and "top-k" in bad.output


def test_every_frame_gets_the_encounters_candidates_with_its_own_keypoints_where_it_has_them():
    from irbis.pipeline.identify_stage import _proposals
    from irbis.reid.encounter import encounter_candidates
    from irbis.store.schema import Annotation as AnnotationRow

    xy = np.array([[10.0, 20.0]], np.float32)
    khan_1 = Match("101", "Khan", 6.0, 0.97, 9, 6.0, xy, xy)
    zara_2 = Match("102", "Zara", 1.0, 0.3, 6, 2.0, xy + 1, xy)
    khan_2 = Match("103", "Khan", 2.0, 0.5, 6, 2.0, xy + 2, xy)
    f1 = QueryResult("same", "Khan", 0.97, [khan_1], [khan_1])
    f2 = QueryResult("unsure", "Zara", 0.3, [khan_2, zara_2], [khan_2, zara_2])
    er = pool_encounter([f1, f2])
    assert er.individuals == ["Khan", "Zara"] and er.decision == "same"
    c1 = encounter_candidates(er, 0)
    assert [(m.annotation, j) for m, j in c1] == [("101", 0), ("102", 1)]  # Zara borrowed
    c2 = encounter_candidates(er, 1)
    assert [(m.annotation, j) for m, j in c2] == [("103", 1), ("102", 1)]  # its own Khan
    a1, a2 = AnnotationRow(id=11, side="left"), AnnotationRow(id=12, side="left")
    frames = [a1, a2]
    rows = _proposals(
        a1, er.probability, er.decision, [(m, frames[j]) for m, j in c1], "v1", {"Khan": 1}
    )
    assert [r.rank for r in rows] == [1, 2] and rows[0].individual_id == 1
    assert rows[0].matches["query_xy"] == [[10.0, 20.0]]
    assert rows[0].matches["machine_decision"] == "same"
    assert "via_annotation_id" not in rows[0].matches
    assert rows[1].matches["via_annotation_id"] == 12 and rows[1].matches["query_xy"] == []
    assert rows[1].matches["via_query_xy"] == [[11.0, 21.0]]
