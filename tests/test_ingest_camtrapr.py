"""Ingest camtrapR's sample cards and reproduce what camtrapR computed from them."""

from __future__ import annotations

import csv
from datetime import datetime

import pytest
from sqlalchemy import select

from irbis.ingest.clockfix import apply_shift_table
from irbis.ingest.effort import project_effort
from irbis.ingest.records import record_table
from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.store.schema import Deployment, Media, Station

from .conftest import need_data

CAMTRAPR = ("cameratrap", "camtrapR")


def _registry(project):
    table = need_data(*CAMTRAPR, "oracle", "camtraps.csv")
    import_registry(project, table, date_format="%d/%m/%Y")


def test_species_dir_reproduces_camtrapr_record_table(project):
    _registry(project)
    card = need_data(*CAMTRAPR, "pictures", "sample_images_species_dir")
    result = ingest(project, card, layout="station/species")
    # 68 JPEGs and one phone video whose clock says 2025: flagged, not counted.
    assert result.n_new == 69 and result.n_rejected == 0
    assert [(f["file"], f["flag"]) for f in result.flagged] == [
        ("StationA/PBE/20251112_100312.mp4", "outside_deployment")
    ]

    got = record_table(project, min_delta_min=60, exclude=["UNID"])
    with open(need_data(*CAMTRAPR, "oracle", "recordTableSample.csv")) as fh:
        want = list(csv.DictReader(fh))
    assert len(got) == len(want) == 39
    for g, w in zip(got, want, strict=True):
        assert (g["station"], g["species"], g["time"]) == (
            w["Station"],
            w["Species"],
            w["DateTimeOriginal"],
        )
        assert g["delta_s"] == pytest.approx(float(w["delta.time.secs"]))
        assert g["file"] == w["FileName"]


def test_reingest_adds_nothing(project):
    _registry(project)
    card = need_data(*CAMTRAPR, "pictures", "sample_images_species_dir")
    first = ingest(project, card, layout="station/species")
    again = ingest(project, card, layout="station/species")
    assert first.n_new == 69
    assert again.n_new == 0 and again.n_duplicate == 69
    with project.session() as s:
        assert len(s.scalars(select(Media.id)).all()) == 69


def test_camera_operation_matches_camtrapr(project):
    _registry(project)
    op = project_effort(project)
    nights = dict(zip(op.stations, op.trap_nights(), strict=True))
    # camtrapR >= 2.1: setup and retrieval at noon (half days); StationC's
    # problem period 12/05-17/05/2009 is excluded.
    assert nights == {
        "StationA": pytest.approx(42.0),
        "StationB": pytest.approx(43.0),
        "StationC": pytest.approx(37.5),
    }
    row_c = op.row("StationC")
    days = [d.isoformat() for d in op.days]
    assert row_c[days.index("2009-04-04")] == pytest.approx(0.5)
    assert row_c[days.index("2009-05-11")] == pytest.approx(1.0)
    for d in ("2009-05-12", "2009-05-15", "2009-05-17"):
        assert row_c[days.index(d)] == 0.0


def test_time_shift_table_moves_stations(project):
    _registry(project)
    card = need_data(*CAMTRAPR, "pictures", "sample_images_species_dir")
    ingest(project, card, layout="station/species")
    with project.session() as s:
        before = {m.sha256: (m.taken_raw, m.timestamp_local) for m in s.scalars(select(Media))}

    res = apply_shift_table(project, need_data(*CAMTRAPR, "oracle", "timeShiftTable.csv"))
    assert {d["deployment"] for d in res["deployments"]} == {"StationA", "StationB"}

    with project.session() as s:
        rows = s.execute(
            select(
                Media.sha256, Station.name, Media.taken_raw, Media.timestamp_local, Media.time_flag
            )
            .join(Deployment, Media.deployment_id == Deployment.id)
            .join(Station, Deployment.station_id == Station.id)
        ).all()
    seen = set()
    for sha, station, raw, local, flag in rows:
        assert raw == before[sha][0], "raw camera readings are never changed"
        if station == "StationA":
            assert local == raw.replace(year=raw.year - 1)
            # A year earlier lies before the deployment: flagged, not kept silently.
            assert flag == "outside_deployment"
        elif station == "StationB":
            assert (local - raw).total_seconds() == 12 * 3600
        else:
            assert local == before[sha][1] and flag == ""
        seen.add(station)
    assert seen == {"StationA", "StationB", "StationC"}
    # Applying the same table twice changes nothing more.
    again = apply_shift_table(project, need_data(*CAMTRAPR, "oracle", "timeShiftTable.csv"))
    assert all(d["media_changed"] == 0 for d in again["deployments"])


def test_tagged_samples_give_species_and_individuals(project):
    _registry(project)
    card = need_data(*CAMTRAPR, "pictures", "sample_images_species_tag")
    res = ingest(project, card, layout="station")
    assert res.n_new > 0 and res.n_rejected == 0
    # The same pictures, named by XMP tags (full names) instead of folders
    # (codes): the same 39 independent records once "unidentified" is left out.
    rows = record_table(project, min_delta_min=60, exclude=["unidentified"])
    assert len(rows) == 39
    assert "Leopard Cat" in {r["species"] for r in rows}
    with open(need_data(*CAMTRAPR, "oracle", "recordTableSample.csv")) as fh:
        want = sorted((w["Station"], w["DateTimeOriginal"]) for w in csv.DictReader(fh))
    assert sorted((r["station"], r["time"]) for r in rows) == want


def test_raw_card_times_are_exif_times(project):
    _registry(project)
    card = need_data(*CAMTRAPR, "pictures", "raw_images")
    res = ingest(project, card, layout="station")
    assert res.n_new == 6
    with project.session() as s:
        for m in s.scalars(select(Media)):
            assert m.taken_source == "exif"
            assert m.taken_raw is not None and m.taken_raw > datetime(2009, 1, 1)
