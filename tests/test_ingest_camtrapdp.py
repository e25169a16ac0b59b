"""The Camtrap DP example's JPEGs: times as media.csv states, one burst, one event."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta

from sqlalchemy import select

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.store.schema import Media, MediaGroup

from .conftest import need_data


def test_example_jpegs_times_and_single_event(project):
    pkg = need_data("cameratrap", "camtrap-dp-example")
    imported = import_registry(project, pkg / "deployments.csv")
    assert imported.deployments_new == 4

    res = ingest(project, pkg / "media", deployment="62c200a9")
    assert res.n_new == 10 and res.n_rejected == 0 and res.n_flagged == 0

    with open(pkg / "media.csv") as fh:
        want = {
            r["fileName"]: datetime.fromisoformat(r["timestamp"])
            for r in csv.DictReader(fh)
            if r["deploymentID"] == "62c200a9" and r["filePath"].startswith("media/")
        }
    assert len(want) == 10
    with project.session() as s:
        media = s.scalars(select(Media)).all()
        assert {m.file_name for m in media} == set(want)
        for m in media:
            stated = want[m.file_name]
            assert m.timestamp_local == stated.replace(tzinfo=None)
            assert m.utc_offset_min == 60
            utc = stated.replace(tzinfo=None) - stated.utcoffset()
            assert m.timestamp_utc == utc
        assert len({m.sequence_id for m in media}) == 1
        assert len({m.event_id for m in media}) == 1
        groups = s.scalars(select(MediaGroup)).all()
        assert sorted(g.kind for g in groups) == ["event", "sequence"]

    # observations.csv records exactly one event for these media.
    with open(pkg / "observations.csv") as fh:
        with open(pkg / "media.csv") as mf:
            media_ids = {r["mediaID"] for r in csv.DictReader(mf) if r["fileName"] in want}
        events = {r["eventID"] for r in csv.DictReader(fh) if r["mediaID"] in media_ids}
    assert len(events) == 1
    ev = next(g for g in groups if g.kind == "event")
    first, last = min(want.values()), max(want.values())
    assert ev.start_utc == first.replace(tzinfo=None) - timedelta(hours=1)
    assert ev.end_utc == last.replace(tzinfo=None) - timedelta(hours=1)
