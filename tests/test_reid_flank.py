"""Flank side proposed from the pose (irbis.reid.flank): travel, mirrored pose, notes."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from irbis.reid.flank import (
    FlankProposal,
    FlankVisible,
    PoseFlank,
    combine,
    follow_track,
    heading_from_note,
    propose_side,
    travel_headings,
)
from tests.conftest import need_data
from tests.test_web_api import client_of  # noqa: F401  (fixture)


def _walk(step: float, n: int = 4, y_step: float = 0.0) -> list[tuple[float, float, float, float]]:
    return [(0.1 + i * step, 0.4 + i * y_step, 0.2, 0.15) for i in range(n)]


def test_travel_moving_right_is_right_flank() -> None:
    props = travel_headings(_walk(0.06), [0, 2, 4, 6])  # 0.3 box widths per frame
    assert all(p is not None and p.side == "right" for p in props)
    assert all(p.reason == "walking right" and p.cue == "travel" for p in props if p)
    assert all(0.7 < p.confidence < 1 for p in props if p)
    left = travel_headings(list(reversed(_walk(0.06))))
    assert all(p is not None and p.side == "left" for p in left)


def test_travel_static_vertical_single_and_gaps_give_nothing() -> None:
    # A standing cat's box jitters a little: no heading.
    jitter = [(0.40, 0.4, 0.2, 0.15), (0.41, 0.4, 0.2, 0.15), (0.395, 0.41, 0.2, 0.15)]
    assert travel_headings(jitter) == [None, None, None]
    # Climbing: more vertical than horizontal motion.
    assert travel_headings(_walk(0.04, y_step=0.12)) == [None] * 4
    # One frame.
    assert travel_headings([(0.1, 0.1, 0.2, 0.2)]) == [None]
    # Two visits a minute apart are not one walk.
    assert travel_headings(_walk(0.1, n=2), [0, 60]) == [None, None]
    # A frame without a box gets nothing; its neighbours still compare across it.
    boxes = _walk(0.06)
    boxes[1] = None  # type: ignore[call-overload]
    props = travel_headings(boxes)
    assert props[1] is None and props[0] is not None and props[0].side == "right"


def test_follow_track_keeps_to_one_animal() -> None:
    mother = _walk(0.06)
    cub = [(0.8 - i * 0.05, 0.7, 0.08, 0.06) for i in range(4)]
    frames = [[c, m] for m, c in zip(mother, cub, strict=True)]
    assert follow_track(frames, 0, mother[0]) == mother
    assert follow_track(frames, 2, cub[2]) == cub


def _toy_embeddings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Crops whose first coordinate is the heading; the mirror flips its sign.

    The other coordinates are noise the mirror leaves alone (like texture).
    """
    rng = np.random.default_rng(seed)
    sides = ["right" if i % 2 else "left" for i in range(n)]
    x = rng.normal(size=(n, 6))
    x[:, 0] = [(1.5 if s == "right" else -1.5) + rng.normal(scale=0.5) for s in sides]
    xm = x.copy()
    xm[:, 0] *= -1
    return x, xm, sides


def test_pose_classifier_is_mirror_consistent(tmp_path) -> None:
    x, xm, sides = _toy_embeddings(40)
    model = PoseFlank(c=1.0).fit(x, xm, sides)
    tx, txm, tsides = _toy_embeddings(20, seed=1)
    p = model.p_right(tx, txm)
    # A mirrored crop gets exactly the opposite answer.
    np.testing.assert_allclose(model.p_right(txm, tx), 1 - p, atol=1e-12)
    props = model.propose(tx, txm)
    assert sum(pr is not None and pr.side == s for pr, s in zip(props, tsides, strict=True)) >= 18
    # Saved and loaded, the same answers.
    model.save(tmp_path / "flank.json")
    again = PoseFlank.load(tmp_path / "flank.json")
    np.testing.assert_allclose(again.p_right(tx, txm), p, atol=1e-5)
    with pytest.raises(ValueError, match="left or right"):
        PoseFlank().fit(x[:2], xm[:2], ["left", "unknown"])


def test_flank_visible_is_mirror_invariant_and_gates() -> None:
    # Second coordinate: how side-on the crop is (the mirror keeps it).
    x, xm, _ = _toy_embeddings(40)
    seen = [i % 3 != 0 for i in range(40)]
    x[:, 1] = [1.5 if s else -1.5 for s in seen]
    xm[:, 1] = x[:, 1]
    gate = FlankVisible(c=1.0).fit(x, xm, seen)
    p = gate.p_visible(x, xm)
    np.testing.assert_allclose(gate.p_visible(xm, x), p, atol=1e-12)
    assert ((p > 0.5) == np.array(seen)).mean() >= 0.95
    travel = FlankProposal("right", 0.9, "travel", "walking right")
    assert propose_side("unknown", travel=travel, p_flank=0.2) is None
    assert propose_side("unknown", travel=travel, p_flank=0.8) == travel
    with pytest.raises(ValueError, match="both"):
        FlankVisible().fit(x[:3], xm[:3], [True, True, True])


def test_combine_and_never_overwrite_a_persons_side() -> None:
    travel = FlankProposal("right", 0.9, "travel", "walking right")
    weak_pose = FlankProposal("left", 0.6, "pose", "pose")
    both = combine(travel, weak_pose)
    assert both is not None and both.side == "right" and 0.6 < both.confidence < 0.9
    assert both.reason == "walking right" and both.cue == "travel+pose"
    agree = combine(travel, FlankProposal("right", 0.7, "pose", "pose"))
    assert agree is not None and agree.confidence > 0.9
    assert combine(None, None) is None
    assert propose_side("left", travel=travel) is None
    assert propose_side("unknown", travel=travel) == travel
    assert propose_side("unknown", pose=weak_pose, min_confidence=0.7) is None


@pytest.mark.parametrize(
    ("note", "heading"),
    [
        ("cat walking right, tail at left", "right"),
        ("walking left-to-right at cave mouth, lower legs cut by frame bottom", "right"),
        ("cat walking right out of left edge, legs behind grass", "right"),
        ("cat entering from right, rear out of frame", "left"),
        ("leaving frame at right; hindquarters visible", "right"),
        ("sitting facing left mouth open in rock shade; cut at bottom", "left"),
        ("walking away left; tail to right", "none"),
        ("cat standing facing left/camera next to rock", "none"),
        ("cat walking toward camera, tail at left", "none"),
        ("motion blurred; walking left of frame; tail at right bottom", None),
        ("sitting in shade looking right; cut at bottom", None),
        ("close blurred cat at lower-left edge", None),
    ],
)
def test_notes_parser_rules(note: str, heading: str | None) -> None:
    assert heading_from_note(note) == heading


def test_notes_parser_on_the_real_notes() -> None:
    data = need_data("reid", "snowleopard-tajikistan")
    with (data / "boxes.csv").open(newline="") as fh:
        notes = {r["file"]: r["note"] for r in csv.DictReader(fh)}
    with (data / "labels.csv").open(newline="") as fh:
        sides = {r["path"].split("/", 1)[-1]: r["side"] for r in csv.DictReader(fh) if r["side"]}
    headings = [heading_from_note(n) for n in notes.values()]
    assert headings.count("left") >= 40 and headings.count("right") >= 40
    assert headings.count("none") >= 100
    # Where both a labelled side and a stated heading exist, they agree.
    stated = {f: heading_from_note(notes[f]) for f in sides}
    checked = [f for f, h in stated.items() if h in ("left", "right")]
    assert len(checked) >= 5
    assert all(stated[f] == sides[f] for f in checked)


def walking_right(project) -> list[int]:
    """The web test project with three unknown-side annotations of a cat walking right.

    The boxes move 0.3 box widths per frame across a real three-photo sequence;
    the third annotation's side is a person's ("left"). Returns their ids.
    """
    from irbis.store.schema import Annotation

    from .test_web_api import _now, build_project, unannotated_sequence

    build_project(project)
    with project.session() as s:
        media = unannotated_sequence(s, 3)[:3]
        ids = []
        for k, mid in enumerate(media):  # the cat walks right, 0.3 box widths per frame
            a = Annotation(
                media_id=mid,
                side="unknown",
                created_utc=_now(),
                x=0.1 + 0.06 * k,
                y=0.4,
                width=0.2,
                height=0.15,
            )
            s.add(a)
            s.flush()
            ids.append(a.id)
        s.get(Annotation, ids[2]).side = "left"  # a person's choice stays unquestioned
        s.commit()
    return ids


def test_review_page_proposes_the_flank_of_an_unknown_side(project, client_of) -> None:  # noqa: F811
    ids = walking_right(project)
    c = client_of(project)
    detail = c.get(f"/api/annotations/{ids[1]}").json()
    assert detail["side"] == "unknown"
    assert detail["proposed_side"]["side"] == "right"
    assert detail["proposed_side"]["reason"] == "walking right"
    assert c.get(f"/api/annotations/{ids[2]}").json()["proposed_side"] is None
    page = c.get(f"/identify/{ids[1]}")
    assert "proposed flank: right (walking right)" in page.text
