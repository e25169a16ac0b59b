"""Boxes people draw in the review app, through its JSON API, on the real camtrapR card.

On SQLite and PostgreSQL: drawing, accepting a machine box, moving, deleting,
"no animal here" and "there is an animal here" each leave rows with who and
when; moved and deleted rows stay (retracted) as history; the machine's boxes
are never touched; stale clients get a 409 and write nothing; viewers cannot
write; a sequence set aside as blank (on real Tajik frames: camtrapR's
thumbnails are too small to be) stops counting as blank in the grid once a
person says an animal is there.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from irbis.store.boxes import frame_truth
from irbis.store.schema import DetectionBox, Media, ReviewedBox
from irbis.web import boxes as web_boxes
from irbis.web import sequences
from irbis.web.auth import create_user
from irbis.web.errors import ConflictError

from .test_web_api import build_project, client_of  # noqa: F401 - the fixture
from .test_web_blanks import build_blank_project


def _machine_boxes(project) -> list[tuple]:
    with project.session() as s:
        return [
            (b.id, b.media_id, b.category, b.x, b.y, b.width, b.height)
            for b in s.scalars(select(DetectionBox).order_by(DetectionBox.id))
        ]


def _rows(project, media_id: int) -> list[ReviewedBox]:
    with project.session() as s:
        return list(
            s.scalars(
                select(ReviewedBox).where(ReviewedBox.media_id == media_id).order_by(ReviewedBox.id)
            )
        )


def _current_ids(res: dict) -> list[int]:
    return [b["id"] for b in res["reviewed_boxes"] if b["current"]]


def _sequence_with_machine_boxes(c) -> tuple[int, dict]:
    """A sequence the test detector boxed, and its first photo as the detail shows it."""
    seqs = c.get("/api/sequences", params={"verdict": "animal", "limit": 500}).json()["items"]
    for item in seqs:
        d = c.get(f"/api/sequences/{item['id']}").json()
        for m in d["media"]:
            if m["mediatype"] == "image" and m["boxes"]:
                return item["id"], m
    raise AssertionError("no photo with a machine box")


def test_draw_move_delete_accept_no_animal_keep_history(project, client_of):  # noqa: F811
    build_project(project)
    machine_before = _machine_boxes(project)
    c = client_of(project)
    sid, m = _sequence_with_machine_boxes(c)
    mid = m["id"]
    assert m["reviewed_boxes"] == []
    assert c.get(f"/api/media/{mid}/boxes").json() == {"media_id": mid, "reviewed_boxes": []}

    # Draw: one current row, who and when; a box past the edge is clipped to the frame.
    r = c.post(
        f"/api/media/{mid}/boxes",
        json={"x": 0.5, "y": 0.25, "width": 0.75, "height": 0.5, "seen": []},
    )
    assert r.status_code == 200, r.text
    drawn = r.json()
    b1 = drawn["changed"]
    (row,) = drawn["reviewed_boxes"]
    assert row["id"] == b1 and row["current"] and row["by"] == "local"
    assert row["kind"] == "box" and row["category"] == "animal" and row["created_utc"]
    assert (row["x"], row["y"], row["width"], row["height"]) == pytest.approx((0.5, 0.25, 0.5, 0.5))
    assert row["detection_id"] is None

    # A client that loaded the frame before the box was drawn: 409, nothing written.
    r = c.post(
        f"/api/media/{mid}/boxes",
        json={"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2, "seen": []},
    )
    assert r.status_code == 409 and "by local" in r.json()["detail"], r.text
    r = c.post(f"/api/media/{mid}/no-animal", json={"seen": []})
    assert r.status_code == 409
    assert len(_rows(project, mid)) == 1

    # Move (and resize): the old row stays, retracted by whom and when; a new row holds it.
    r = c.put(f"/api/boxes/{b1}", json={"x": 0.45, "y": 0.2, "width": 0.3, "height": 0.35})
    assert r.status_code == 200, r.text
    b2 = r.json()["changed"]
    assert b2 != b1 and _current_ids(r.json()) == [b2]
    old = next(b for b in r.json()["reviewed_boxes"] if b["id"] == b1)
    assert not old["current"] and old["retracted_by"] == "local" and old["retracted_utc"]
    # Moving the old row again: someone (here, we) changed it already.
    r = c.put(f"/api/boxes/{b1}", json={"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2})
    assert r.status_code == 409 and "was changed by local" in r.json()["detail"]

    # Delete: nothing current, both rows kept.
    r = c.delete(f"/api/boxes/{b2}")
    assert r.status_code == 200 and r.json()["changed"] is None
    assert _current_ids(r.json()) == [] and len(r.json()["reviewed_boxes"]) == 2
    assert c.delete(f"/api/boxes/{b2}").status_code == 409
    rows = _rows(project, mid)
    assert [(x.id, x.retracted_by) for x in rows] == [(b1, "local"), (b2, "local")]
    assert rows[1].x == pytest.approx(0.45) and rows[1].height == pytest.approx(0.35)

    # Accept the machine box: a reviewed box naming it, at the machine's place.
    det = m["boxes"][0]
    r = c.post(f"/api/media/{mid}/boxes/accept", json={"detection_id": det["id"], "seen": []})
    assert r.status_code == 200, r.text
    acc = next(b for b in r.json()["reviewed_boxes"] if b["id"] == r.json()["changed"])
    assert acc["detection_id"] == det["id"] and acc["category"] == det["category"]
    assert (acc["x"], acc["y"], acc["width"], acc["height"]) == pytest.approx(
        (det["x"], det["y"], det["width"], det["height"])
    )
    seen = _current_ids(r.json())
    r = c.post(f"/api/media/{mid}/boxes/accept", json={"detection_id": det["id"], "seen": seen})
    assert r.status_code == 422 and "already accepted" in r.json()["detail"]
    other = next(b for b in _machine_boxes(project) if b[1] != mid)
    r = c.post(f"/api/media/{mid}/boxes/accept", json={"detection_id": other[0], "seen": seen})
    assert r.status_code == 404

    # "No animal here": the accepted box is retracted, one blank row stands.
    r = c.post(f"/api/media/{mid}/no-animal", json={"frame": 0, "seen": seen})
    assert r.status_code == 200, r.text
    (cur,) = [b for b in r.json()["reviewed_boxes"] if b["current"]]
    assert cur["kind"] == "no_animal" and cur["category"] == "blank" and cur["x"] is None
    with project.session() as s:
        (truth,) = frame_truth(s, [mid])
    assert truth.blank and truth.boxes == ()
    # Drawing again retracts the "no animal" (the box says more).
    r = c.post(
        f"/api/media/{mid}/boxes",
        json={"x": 0.2, "y": 0.2, "width": 0.2, "height": 0.2, "seen": [cur["id"]]},
    )
    assert r.status_code == 200 and [
        b["kind"] for b in r.json()["reviewed_boxes"] if b["current"]
    ] == ["box"]

    # The viewer's detail carries every row (history), and the machine's boxes unchanged.
    d = c.get(f"/api/sequences/{sid}").json()
    shown = next(x for x in d["media"] if x["id"] == mid)
    assert (
        len(shown["reviewed_boxes"]) == 5
        and sum(b["current"] for b in shown["reviewed_boxes"]) == 1
    )
    assert _machine_boxes(project) == machine_before


def test_bad_boxes_are_client_errors(project, client_of):  # noqa: F811
    build_project(project)
    c = client_of(project)
    _, m = _sequence_with_machine_boxes(c)
    mid = m["id"]
    good = {"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2, "seen": []}
    for body, status, word in (
        ({**good, "width": 0}, 422, "width"),
        ({**good, "x": 5}, 422, "x"),
        ({**good, "x": 1.0}, 422, "outside the frame"),  # nothing of it on the frame
        ({**good, "category": "blank"}, 422, "category"),
        ({**good, "frame": 3}, 422, "frame"),
        ({**good, "colour": "red"}, 422, "colour"),
        ({k: v for k, v in good.items() if k != "seen"}, 422, "seen"),
    ):
        r = c.post(f"/api/media/{mid}/boxes", json=body)
        assert r.status_code == status and word in r.json()["detail"], (body, r.text)
    assert c.post("/api/media/999999/boxes", json=good).status_code == 404
    assert c.get("/api/media/999999/boxes").status_code == 404
    assert (
        c.put(
            "/api/boxes/999999", json={k: good[k] for k in "xy"} | {"width": 0.1, "height": 0.1}
        ).status_code
        == 404
    )
    assert c.delete("/api/boxes/999999").status_code == 404
    assert c.post("/api/media/999999/animal-here", json={"seen": []}).status_code == 404
    assert _rows(project, mid) == []
    # A mark is not a box: it cannot be moved.
    r = c.post(f"/api/media/{mid}/animal-here", json={"seen": []})
    mark = r.json()["changed"]
    r = c.put(f"/api/boxes/{mark}", json={"x": 0.1, "y": 0.1, "width": 0.1, "height": 0.1})
    assert r.status_code == 422 and "not a box" in r.json()["detail"]


def test_viewers_see_reviewers_draw(project, client_of):  # noqa: F811
    build_project(project)
    local = client_of(project)
    sid, m = _sequence_with_machine_boxes(local)
    mid = m["id"]
    viewer = client_of(project, create_user(project, "ranger", "viewer"))
    reviewer = client_of(project, create_user(project, "alice", "reviewer"))
    admin = client_of(project, create_user(project, "boss", "admin"))
    box = {"x": 0.1, "y": 0.1, "width": 0.3, "height": 0.3, "seen": []}
    for method, path, body in (
        ("POST", f"/api/media/{mid}/boxes", box),
        (
            "POST",
            f"/api/media/{mid}/boxes/accept",
            {"detection_id": m["boxes"][0]["id"], "seen": []},
        ),
        ("POST", f"/api/media/{mid}/no-animal", {"seen": []}),
        ("POST", f"/api/media/{mid}/animal-here", {"seen": []}),
    ):
        r = viewer.request(method, path, json=body)
        assert r.status_code == 403 and "needs the reviewer role" in r.json()["detail"], path
    assert _rows(project, mid) == []

    r = reviewer.post(f"/api/media/{mid}/boxes", json=box)
    assert r.status_code == 200
    bid = r.json()["changed"]
    for r in (
        viewer.put(f"/api/boxes/{bid}", json={k: box[k] for k in ("x", "y", "width", "height")}),
        viewer.delete(f"/api/boxes/{bid}"),
    ):
        assert r.status_code == 403
    # The viewer sees the box and who drew it; the admin moves it, the row says so.
    seen = viewer.get(f"/api/media/{mid}/boxes").json()["reviewed_boxes"]
    assert [(b["id"], b["by"], b["current"]) for b in seen] == [(bid, "alice", True)]
    r = admin.put(f"/api/boxes/{bid}", json={"x": 0.2, "y": 0.1, "width": 0.3, "height": 0.3})
    assert r.status_code == 200
    rows = _rows(project, mid)
    assert [(x.created_by, x.retracted_by) for x in rows] == [("alice", "boss"), ("boss", "")]
    # The page offers the box tools to reviewers only.
    assert 'id="no-animal"' not in viewer.get(f"/sequences/{sid}").text
    assert 'id="no-animal"' in reviewer.get(f"/sequences/{sid}").text
    assert "there is an animal here" in viewer.get(f"/sequences/{sid}").text  # the key help


def test_animal_here_on_a_set_aside_sequence_unblanks_it_in_the_grid(
    project,
    client_of,  # noqa: F811
    tmp_path,
):
    # camtrapR's thumbnails are too small to be set aside: real Tajik frames are
    # (see tests/test_web_blanks.py for the project and the whole definition).
    ids = build_blank_project(project, tmp_path)
    c = client_of(project)

    def grid(verdict: str) -> list[int]:
        items = c.get("/api/sequences", params={"verdict": verdict, "limit": 500}).json()["items"]
        return [i["id"] for i in items]

    blank_ids = grid("blank")
    assert set(blank_ids) == {ids["aside"], ids["labelled"]}  # no person labelled yet
    assert not set(blank_ids) & set(grid("animal"))
    sid = ids["aside"]
    d = c.get(f"/api/sequences/{sid}").json()
    assert d["verdict"] == "blank" and d["people_found"] == [] and d["state"] == "set_aside"
    frame = d["media"][-1]
    # One key on a set-aside frame: "there is an animal here".
    r = c.post(f"/api/media/{frame['id']}/animal-here", json={"seen": []})
    assert r.status_code == 200
    (mark,) = r.json()["reviewed_boxes"]
    assert mark["kind"] == "animal_here" and mark["by"] == "local" and mark["x"] is None
    assert grid("blank") == [i for i in blank_ids if i != sid]
    assert sid in grid("animal")
    item = next(
        i for i in c.get("/api/sequences", params={"limit": 500}).json()["items"] if i["id"] == sid
    )
    assert item["verdict"] == "blank" and item["people_found"] == ["animal"]  # the machine's, kept
    assert item["state"] == "kept"
    assert c.get(f"/api/sequences/{sid}").json()["people_found"] == ["animal"]
    tile = c.get("/sequences", params={"verdict": "animal"}).text.split(f'data-id="{sid}"')[1]
    assert "animal (person)" in tile.split("</article>")[0]
    # Filtered neighbours follow the same rule.
    q = sequences.SequenceQuery(verdict="blank")
    assert grid("blank") == [ids["labelled"]]
    assert sequences.neighbours(project, q, ids["labelled"]) == {"previous": None, "next": None}
    # Saying it twice adds nothing.
    r = c.post(f"/api/media/{frame['id']}/animal-here", json={"seen": [mark["id"]]})
    assert (
        r.status_code == 200
        and r.json()["changed"] is None
        and len(r.json()["reviewed_boxes"]) == 1
    )
    with project.session() as s:
        (truth,) = frame_truth(s, [frame["id"]])
    assert truth.animal_unboxed and not truth.blank
    # A person who then confirms the frame empty makes the sequence blank again.
    r = c.post(f"/api/media/{frame['id']}/no-animal", json={"seen": [mark["id"]]})
    assert r.status_code == 200
    assert sid in grid("blank") and sid not in grid("animal")
    # The review grid page shows it too.
    page = c.get("/sequences", params={"verdict": "blank"}).text
    assert f'data-id="{sid}"' in page


def test_two_reviewers_drawing_at_once_one_wins(project):
    """Both loaded an empty frame; both draw at the same moment: one box, one conflict."""
    build_project(project)
    with project.session() as s:
        mid = s.scalar(select(func.min(Media.id)).where(Media.mediatype == "image"))
    barrier = threading.Barrier(2)
    outcome: list[str] = []

    def draw(user: str) -> None:
        barrier.wait()
        try:
            web_boxes.draw(
                project, mid, (0.1, 0.1, 0.2, 0.2), category="animal", frame=0, seen=[], user=user
            )
            outcome.append("ok")
        except ConflictError as exc:
            outcome.append(str(exc))

    threads = [threading.Thread(target=draw, args=(u,)) for u in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcome, key=len)[0] == "ok" and len(outcome) == 2
    assert "were changed by" in sorted(outcome, key=len)[1]
    assert len(_rows(project, mid)) == 1
