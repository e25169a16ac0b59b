"""Sequence ids survive later ingests: links reviewers hold open keep working.

A card adds frames to a deployment that already has sequences: a sequence
that grows keeps its id, new ones get new ids, two sequences joined by new
frames keep the id of the one with the earliest frame, and the id that
vanished redirects (308) to the sequence now holding its first frame.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.grouping import regroup_deployments
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import ingest
from irbis.store.groups import RETIRED, successor
from irbis.store.schema import Media, MediaGroup, SequenceVerdict
from irbis.store.sequence_summary import refresh

from .cards import jpeg_bytes

STATION = "SLG-01"
T0 = datetime(2026, 2, 1, 8, 0, 0)
# Four bursts: 1 and 4 alone; 2 and 3 70 s apart (two sequences, one event).
FIRST_CARD = {
    "b1": [T0 + timedelta(seconds=s) for s in (0, 1, 2)],
    "b2": [T0 + timedelta(hours=2, seconds=s) for s in (0, 1, 2)],
    "b3": [T0 + timedelta(hours=2, seconds=s) for s in (70, 71, 72)],
    "b4": [T0 + timedelta(hours=5, seconds=s) for s in (0, 1, 2)],
}
# One frame grows b1, two join b2 and b3, three make a new burst.
SECOND_CARD = {
    "grow": [T0 + timedelta(seconds=20)],
    "bridge": [T0 + timedelta(hours=2, seconds=s) for s in (25, 50)],
    "new": [T0 + timedelta(hours=10, seconds=s) for s in (0, 1, 2)],
}


def _write(folder: Path, frames: dict[str, list[datetime]], seed: int) -> dict[str, list[str]]:
    """Write one JPEG per time under ``folder/STATION``; file names per burst."""
    (folder / STATION).mkdir(parents=True)
    names: dict[str, list[str]] = {}
    n = 0
    for burst, times in frames.items():
        for t in times:
            n += 1
            name = f"C{seed}_{n:04d}.JPG"
            (folder / STATION / name).write_bytes(jpeg_bytes(t, seed=seed * 1000 + n))
            names.setdefault(burst, []).append(name)
    return names


@pytest.fixture
def two_cards(project, tmp_path: Path):
    """The project with the first card ingested; the second card's folder and file names."""
    save_registry(
        project,
        [StationRecord(name=STATION)],
        [
            DeploymentRecord(
                code=f"{STATION}-A",
                station=STATION,
                start=datetime(2026, 1, 1),
                end=datetime(2026, 6, 1),
                timezone="UTC",
            )
        ],
    )
    first = _write(tmp_path / "card1", FIRST_CARD, seed=1)
    second = _write(tmp_path / "card2", SECOND_CARD, seed=2)
    ingest(project, tmp_path / "card1")
    return project, first, tmp_path / "card2", second


def _sequence_of(project, file_name: str, column: str = "sequence_id") -> int:
    with project.session() as s:
        return s.scalar(select(getattr(Media, column)).where(Media.file_name == file_name))


def _live(project, kind: str = "sequence") -> dict[int, int]:
    with project.session() as s:
        return dict(
            s.execute(
                select(MediaGroup.id, MediaGroup.n_media).where(MediaGroup.kind == kind)
            ).all()
        )


def test_ingest_keeps_ids_and_retires_merged(two_cards) -> None:
    project, first, card2, second = two_cards
    before = {b: _sequence_of(project, names[0]) for b, names in first.items()}
    events_before = {b: _sequence_of(project, names[0], "event_id") for b, names in first.items()}
    assert len(set(before.values())) == 4
    with project.session() as s:
        s.add(
            SequenceVerdict(
                sequence_id=before["b4"],
                detector="d",
                model="m",
                model_version="1",
                threshold=0.5,
                verdict="blank",
                n_media=3,
                created_utc=T0,
            )
        )
        s.commit()

    ingest(project, card2)

    after = {b: _sequence_of(project, names[0]) for b, names in first.items()}
    live = _live(project)
    # Grown and untouched sequences keep their ids.
    assert after["b1"] == before["b1"] and live[before["b1"]] == 4
    assert after["b4"] == before["b4"] and live[before["b4"]] == 3
    assert _sequence_of(project, second["grow"][0]) == before["b1"]
    # b2 and b3 joined: the earlier one's id goes on, b3's is retired, not reused.
    assert after["b2"] == before["b2"] == after["b3"] and live[before["b2"]] == 8
    assert before["b3"] not in live
    # The new burst is a new id, above every id given before.
    new_id = _sequence_of(project, second["new"][0])
    assert new_id not in before.values() and new_id > max(before.values())
    assert len(live) == 4
    with project.session() as s:
        assert (
            s.scalar(select(MediaGroup.kind).where(MediaGroup.id == before["b3"]))
            == (RETIRED["sequence"])
        )
        assert successor(s, before["b3"]) == before["b2"]
        assert successor(s, before["b2"]) is None  # live: nothing to redirect
        # The untouched sequence's detector verdict stays.
        assert (
            s.scalar(
                select(SequenceVerdict.verdict).where(SequenceVerdict.sequence_id == before["b4"])
            )
            == "blank"
        )
    # Events (b2 and b3 were one already) keep their ids too.
    assert {b: _sequence_of(project, n[0], "event_id") for b, n in first.items()} == events_before
    # Ingesting the same card again changes nothing.
    snapshot = _live(project), _live(project, "event")
    ingest(project, card2)
    assert (_live(project), _live(project, "event")) == snapshot


def test_split_keeps_id_on_earliest_part(two_cards) -> None:
    project, first, card2, second = two_cards
    ingest(project, card2)
    merged = _sequence_of(project, first["b2"][0])
    old_b3 = None
    with project.session() as s:
        old_b3 = s.scalar(select(MediaGroup.id).where(MediaGroup.kind == RETIRED["sequence"]))
        # The bridging frames lose their trusted time: b2 and b3 come apart.
        s.execute(
            update(Media).where(Media.file_name.in_(second["bridge"])).values(time_flag="manual")
        )
        dep = s.scalar(select(Media.deployment_id).where(Media.file_name == first["b2"][0]))
        regroup_deployments(
            s,
            [dep],
            burst_gap_s=project.settings.burst_gap_s,
            event_gap_min=project.settings.event_gap_min,
        )
        s.commit()
    refresh(project.engine)
    assert _sequence_of(project, first["b2"][0]) == merged  # the part with the earliest frame
    part = _sequence_of(project, first["b3"][0])
    assert part != merged and part != old_b3 and _live(project)[part] == 3
    assert _sequence_of(project, second["bridge"][0]) is None
    with project.session() as s:
        # b3's old id now leads to the sequence holding its first frame.
        assert successor(s, old_b3) == part


def test_old_links_redirect_after_ingest(two_cards, client_of) -> None:
    project, first, card2, second = two_cards
    refresh(project.engine)
    before = {b: _sequence_of(project, names[0]) for b, names in first.items()}
    c = client_of(project)
    for sid in before.values():
        assert c.get(f"/api/sequences/{sid}").status_code == 200

    ingest(project, card2)

    for b in ("b1", "b2", "b4"):
        assert c.get(f"/api/sequences/{before[b]}").status_code == 200
        page = c.get(f"/sequences/{before[b]}", headers={"Accept": "text/html"})
        assert page.status_code == 200
    old = before["b3"]
    api = c.get(f"/api/sequences/{old}?label=*", follow_redirects=False)
    assert api.status_code == 308
    assert api.headers["location"] == f"/api/sequences/{before['b2']}?label=*"
    page = c.get(f"/sequences/{old}", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 308 and page.headers["location"] == f"/sequences/{before['b2']}"
    followed = c.get(f"/api/sequences/{old}")
    assert followed.status_code == 200 and followed.json()["id"] == before["b2"]
    # A label sent to the old id follows it and is refused: the media differ.
    versions = {str(m["id"]): m["review_version"] for m in followed.json()["media"][:3]}
    res = c.post(
        f"/api/sequences/{old}/label", json={"species": "Panthera uncia", "versions": versions}
    )
    assert res.status_code == 422
    assert c.get("/api/sequences/987654").status_code == 404


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project):
        c = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
