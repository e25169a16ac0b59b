"""Blank means blank in the review app: grid, neighbours, overview and spot-check links.

One definition of "set aside as blank" (irbis.store.blanks): the grid's
``verdict=blank`` and ``verdict=unjudged`` filters, the previous/next
sequence under them, the tile states and the overview's counts must pick
exactly the sequences :func:`irbis.store.blanks.gather_blanks` picks, on
SQLite and PostgreSQL.

The project is real frames: five bursts of snow-leopard frames from Tajik
Station 26 (1280 x 960) and six of camtrapR's 100 x 75 thumbnails (too small
for the detector to judge). The detector's results are written as
``irbis detect`` writes them (one row per media file, one verdict per burst),
chosen so that every rule of the definition decides one burst; people's
labels and marks go through the app's own API.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from irbis.store.blanks import gather_blanks, sequence_url, spot_check_sample
from irbis.store.schema import (
    DetectionBox,
    Media,
    MediaDetection,
    Observation,
    SequenceVerdict,
)
from irbis.web import cache, sequences

from .conftest import need_data
from .test_web_api import client_of  # noqa: F401 - the fixture

DETECTOR = "test-detector"
TAJIK = ("reid", "snowleopard-tajikistan", "images")
THUMBS = ("cameratrap", "camtrapR", "pictures", "sample_images_species_dir", "StationA", "PBE")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _judge(s, media: list[Media], verdicts: list[str | None], seq_verdict: str | None) -> None:
    """Store the detector's results: per media (None: not run) and for its burst."""
    now = _now()
    for m, v in zip(media, verdicts, strict=True):
        if v is None:
            continue
        res = MediaDetection(
            media_id=m.id,
            detector=DETECTOR,
            model="t",
            model_version="1",
            threshold=0.2,
            verdict=v,
            max_score=0.9 if v == "animal" else 0.0,
            n_boxes=int(v == "animal"),
            created_utc=now,
        )
        s.add(res)
        s.flush()
        if v == "animal":
            s.add(
                DetectionBox(
                    result_id=res.id,
                    media_id=m.id,
                    category="animal",
                    score=0.9,
                    x=0.1,
                    y=0.2,
                    width=0.3,
                    height=0.4,
                    source="t",
                )
            )
    if seq_verdict is not None:
        s.add(
            SequenceVerdict(
                sequence_id=media[0].sequence_id,
                detector=DETECTOR,
                model="t",
                model_version="1",
                threshold=0.2,
                verdict=seq_verdict,
                best_media_id=media[0].id,
                best_score=0.9 if seq_verdict == "animal" else 0.0,
                n_media=len(media),
                created_utc=now,
            )
        )


def build_blank_project(project, tmp_path: Path) -> dict[str, int]:
    """Ingest the frames and store results; the burst ids by the rule that decides each.

    Tajik bursts (large frames): ``aside`` (every frame blank), ``stale``
    (the burst's verdict says blank, one frame has a box), ``labelled`` (a
    person will name a species), ``tagged`` (a tag names a species, no
    person's label), ``overruled`` (a tag names a species, a person labels it
    blank: the person wins, set aside). Thumbnails (too small): ``unjudged``
    (the detector said so), ``old_small`` (stored as blank before the size
    rule), ``not_run`` (a frame not yet run), ``animal`` (a box), and two
    ``undetected`` ones.
    """
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    cards = {"tj": tmp_path / "tj", "cr": tmp_path / "cr"}
    for name, parts, pattern in (("tj", TAJIK, "*Station26*"), ("cr", THUMBS, "*.JPG")):
        cards[name].mkdir()
        for f in sorted(need_data(*parts).glob(pattern)):
            shutil.copyfile(f, cards[name] / f.name)
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "station,deployment,start,end,timezone\n"
        "TJ26,TJ26-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
        "CRA,CRA-2009,2009-04-01T00:00:00,2009-06-01T00:00:00,Asia/Dushanbe\n"
    )
    import_registry(project, registry)
    ingest(project, cards["tj"], deployment="TJ26-2012", workers=1)
    ingest(project, cards["cr"], deployment="CRA-2009", workers=1)
    with project.session() as s:
        media = list(s.scalars(select(Media).order_by(Media.timestamp_utc, Media.id)))
        bursts: dict[int, list[Media]] = {}
        for m in media:
            assert m.sequence_id is not None, m.file_name
            bursts.setdefault(m.sequence_id, []).append(m)
        big = [b for b in bursts.values() if b[0].width >= 1000]
        small = [b for b in bursts.values() if b[0].width < 320]
        assert (len(big), len(small)) == (5, 6), [(b[0].file_name, len(b)) for b in bursts.values()]
        big.sort(key=len)  # 1, 1, 4, 6, 8 frames
        roles = dict(zip(("tagged", "labelled", "aside", "stale", "overruled"), big, strict=True))
        roles.update(
            zip(
                ("unjudged", "old_small", "not_run", "animal", "undetected", "undetected2"),
                small,
                strict=True,
            )
        )
        for name in ("aside", "tagged", "labelled", "overruled"):
            _judge(s, roles[name], ["blank"] * len(roles[name]), "blank")
        stale = roles["stale"]
        _judge(s, stale, ["blank"] * (len(stale) - 1) + ["animal"], "blank")
        _judge(s, roles["unjudged"], ["unjudged"], "unjudged")
        _judge(s, roles["old_small"], ["blank"], "blank")
        _judge(s, roles["not_run"], [None], "blank")
        _judge(s, roles["animal"], ["animal"], "animal")
        for name in ("tagged", "overruled"):
            s.add(
                Observation(
                    media_id=roles[name][-1].id,
                    species="Panthera uncia",
                    source="xmp",
                    by="",
                    created_utc=_now(),
                )
            )
        s.commit()
        ids = {name: b[0].sequence_id for name, b in roles.items()}
    cache.clear(project.root)
    return ids


def _label(c, sid: int, body: dict) -> None:
    d = c.get(f"/api/sequences/{sid}").json()
    versions = {str(m["id"]): m["review_version"] for m in d["media"]}
    r = c.post(f"/api/sequences/{sid}/label", json={**body, "versions": versions})
    assert r.status_code == 200, r.text


def _grid(c, verdict: str) -> list[int]:
    """Every sequence id under ``verdict``, page after page of 2 (the cursor too)."""
    out: list[int] = []
    params = {"verdict": verdict, "limit": 2}
    while True:
        r = c.get("/api/sequences", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out += [i["id"] for i in page["items"]]
        if not page["next"]:
            return out
        params["after"] = page["next"]


def _blanks(project):
    with project.session() as s:
        return gather_blanks(s)


def _flat(by_station: dict[str, set[int]]) -> set[int]:
    return {sid for v in by_station.values() for sid in v}


def _order(c) -> list[int]:
    return [i["id"] for i in c.get("/api/sequences", params={"limit": 500}).json()["items"]]


@pytest.fixture
def blank_project(project, tmp_path, client_of):  # noqa: F811
    ids = build_blank_project(project, tmp_path)
    c = client_of(project)
    _label(c, ids["labelled"], {"species": "Panthera uncia", "count": 1})
    _label(c, ids["overruled"], {"blank": True})
    return project, ids, c


def test_grid_and_neighbours_set_aside_exactly_what_gather_blanks_does(blank_project):
    project, ids, c = blank_project
    b = _blanks(project)
    assert b.detector == DETECTOR
    aside, unjudged, kept = (
        _flat(b.sequences),
        _flat(b.unjudged_sequences),
        _flat(b.kept_by_review),
    )
    # The definition decides each burst as its role says (the premise).
    assert aside == {ids["aside"], ids["overruled"]}
    assert unjudged == {ids["unjudged"], ids["old_small"], ids["not_run"]}
    assert kept == {ids["labelled"], ids["tagged"]}
    order = _order(c)
    blank, small = _grid(c, "blank"), _grid(c, "unjudged")
    assert blank == [i for i in order if i in aside]
    assert small == [i for i in order if i in unjudged]
    assert ids["stale"] not in blank + small and ids["labelled"] not in blank
    # A burst's verdict says blank while a frame of it has a box: neither blank nor too small.
    assert _grid(c, "animal") == [ids["animal"]]
    assert _grid(c, "none") == [i for i in order if i in {ids["undetected"], ids["undetected2"]}]
    # Each tile says what the definition made of it.
    states = {i["id"]: i["state"] for i in c.get("/api/sequences?limit=500").json()["items"]}
    assert {i for i, st in states.items() if st == "set_aside"} == aside
    assert {i for i, st in states.items() if st == "unjudged"} == unjudged
    assert {i for i, st in states.items() if st == "kept"} == kept
    assert states[ids["stale"]] is None and states[ids["animal"]] is None
    assert c.get(f"/api/sequences/{ids['old_small']}").json()["state"] == "unjudged"
    # Previous/next under a filter walk the same sequences.
    for verdict, members in (("blank", blank), ("unjudged", small)):
        q = sequences.SequenceQuery(verdict=verdict)
        for k, sid in enumerate(members):
            assert sequences.neighbours(project, q, sid) == {
                "previous": members[k - 1] if k else None,
                "next": members[k + 1] if k + 1 < len(members) else None,
            }

    # A person says "animal here" on a set-aside frame: kept, listed as animal, and
    # the neighbours skip it; "no animal here" sets it aside again.
    frame = c.get(f"/api/sequences/{ids['aside']}").json()["media"][0]
    r = c.post(f"/api/media/{frame['id']}/animal-here", json={"seen": []})
    assert r.status_code == 200, r.text
    (mark,) = r.json()["reviewed_boxes"]
    assert ids["aside"] not in _grid(c, "blank") and ids["aside"] in _grid(c, "animal")
    assert _flat(_blanks(project).sequences) == {ids["overruled"]}
    q = sequences.SequenceQuery(verdict="blank")
    assert sequences.neighbours(project, q, ids["overruled"]) == {"previous": None, "next": None}
    r = c.post(f"/api/media/{frame['id']}/no-animal", json={"seen": [mark["id"]]})
    assert r.status_code == 200, r.text
    assert set(_grid(c, "blank")) == aside == _flat(_blanks(project).sequences)
    # A person's species label on a too-small burst: no longer "too small to judge".
    _label(c, ids["not_run"], {"species": "Vulpes vulpes", "count": 1})
    assert ids["not_run"] not in _grid(c, "unjudged")
    assert set(_grid(c, "unjudged")) == _flat(_blanks(project).unjudged_sequences)


def test_unjudged_is_a_filter_and_a_tile_state_in_words(blank_project):
    project, ids, c = blank_project
    r = c.get("/api/sequences", params={"verdict": "unjudged"})
    assert r.status_code == 200
    page = c.get("/sequences", params={"verdict": "unjudged"})
    assert page.status_code == 200 and "No sequence matches" not in page.text
    tiles = re.findall(r'<article class="tile[^"]*"[^>]*data-id="(\d+)"', page.text)
    assert set(map(int, tiles)) == {ids["unjudged"], ids["old_small"], ids["not_run"]}
    assert page.text.count(">too small to judge</span>") == 3
    assert '<option value="unjudged" selected>too small to judge</option>' in page.text
    blank = c.get("/sequences", params={"verdict": "blank"}).text
    assert blank.count(">set aside as blank</span>") == 2
    assert '<option value="blank" selected>set aside as blank</option>' in blank
    # The detail page says why a burst is not set aside.
    detail = c.get(f"/sequences/{ids['old_small']}").text
    assert "too small (or unreadable) for the detector to judge" in detail
    # A value that is not a filter is still refused, naming the good ones.
    bad = c.get("/api/sequences", params={"verdict": "maybe"})
    assert bad.status_code == 422 and "unjudged" in bad.text


def test_overview_counts_what_is_set_aside_and_too_small(blank_project):
    project, ids, c = blank_project
    cache.clear(project.root)
    data = c.get("/api/overview").json()
    b = _blanks(project).as_dict()
    assert "blanks_removed" not in data
    assert data["set_aside"]["sequences"] == b["sequences"] == 2
    assert data["set_aside"]["frames"] == b["frames"]
    assert data["set_aside"]["too_small_frames"] == b["too_small_frames"] == 2
    assert data["set_aside"]["kept_by_review"] == b["kept_by_review"] == 2
    assert data["detections"]["set_aside"]["sequences"] == 2
    html = c.get("/").text
    assert "removed" not in html
    assert re.search(
        r'id="set-aside"><b>2</b><span><a href="/sequences\?verdict=blank">'
        r"sequences set aside as blank</a> \(" + str(b["frames"]) + " frames\\)",
        html,
    )
    assert re.search(
        r'id="too-small"><b>2</b><span><a href="/sequences\?verdict=unjudged">'
        r"frames too small to judge</a>",
        html,
    )
    # Every link on the overview opens a grid page (none errors).
    for href in sorted(set(re.findall(r'href="(/sequences\?verdict=[a-z]+)"', html))):
        assert c.get(href).status_code == 200, href
    assert len(_grid(c, "blank")) == data["set_aside"]["sequences"]
    assert len(_grid(c, "unjudged")) == data["set_aside"]["unjudged_sequences"]


def test_spot_check_links_open_the_exact_frame(blank_project, tmp_path):
    project, ids, c = blank_project
    b = _blanks(project)
    picked = spot_check_sample(b, n=20)
    assert picked and {f.sequence_id for f in picked} <= {ids["aside"], ids["overruled"]}
    for f in picked:
        url = sequence_url(f.sequence_id, f.media_id)
        assert url == f"/sequences/{f.sequence_id}?media={f.media_id}"
        page = c.get(url)
        assert page.status_code == 200
        view = re.search(r'type="application/json" id="view-data">(.*?)</script>', page.text)
        assert view and json.loads(view.group(1))["start_media_id"] == f.media_id
    # Frames other than the burst's first are offered and opened as such.
    first = c.get(f"/api/sequences/{ids['aside']}").json()["media"][0]["id"]
    assert len({f.media_id for f in picked} - {first}) == 3
    # The command line gives the same links.
    from typer.testing import CliRunner

    from irbis.cli.app import app

    res = CliRunner().invoke(
        app,
        ["blanks", "sample", str(project.root), "--n", "20", "--json", "--app-url", "http://a:1/"],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["frames"]
    assert [(r["media_id"], r["url"]) for r in rows] == [
        (f.media_id, f"http://a:1/sequences/{f.sequence_id}?media={f.media_id}") for f in picked
    ]


def test_grid_filters_walk_indexes_only(tmp_path):
    """SQLite's plan for a page of ``blank`` / ``unjudged``: the grid's index walk in time
    order, and every part of the definition an index probe per sequence (no table scan)."""
    from sqlalchemy import text

    from irbis.store import Project

    with Project.init(tmp_path / "p") as p:
        for verdict in ("blank", "unjudged"):
            stmt, start, sid = sequences._filtered(
                sequences.SequenceQuery(verdict=verdict), DETECTOR
            )
            sql = str(
                stmt.order_by(start, sid)
                .limit(49)
                .compile(p.engine, compile_kwargs={"literal_binds": True})
            )
            with p.engine.connect() as conn:
                plan = [r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
            assert plan[0].startswith("SEARCH media_groups USING INDEX ix_media_groups_kind_start")
            assert not [line for line in plan if line.startswith("SCAN")], plan
            assert "USE TEMP B-TREE FOR ORDER BY" not in " ".join(plan), plan
            probed = " ".join(plan)
            for table in ("media_detections", "reviewed_boxes", "observations", "media"):
                assert f"SEARCH {table}_" in probed, (table, plan)
