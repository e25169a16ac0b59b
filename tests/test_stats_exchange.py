"""Capture histories from a project's records, ``irbis export secr`` and ``secr fit PROJECT``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from irbis.core.errors import BadInputError
from irbis.core.types import DeploymentRecord, MalfunctionPeriod, StationRecord
from irbis.exchange.secr_text import export_secr, project_capthist
from irbis.ingest.registry import save_registry
from irbis.store import Project
from irbis.store.schema import IngestBatch, Media, Observation

T0 = datetime(2024, 3, 1, 0, 0)


def _make_project(tmp_path, *, bad_time: bool = False) -> Project:
    p = Project.init(tmp_path / "proj")
    stations = [
        StationRecord(name=f"S{i}", x=600000.0 + 3000 * (i % 3), y=4700000.0 + 3000 * (i // 3),
                      covariates={"Topo": "Saddle" if i % 2 else "Canyon", "rgd": 0.1 * i})
        for i in range(6)
    ]  # fmt: skip
    deps = [
        DeploymentRecord(code=f"D{i}", station=f"S{i}", start=T0, end=T0 + timedelta(days=20))
        for i in range(6)
    ]
    # S5 broke down for the second 10-day block
    deps[5].malfunctions = [MalfunctionPeriod(T0 + timedelta(days=10), T0 + timedelta(days=20))]
    save_registry(p, stations, deps)
    # (individual, station index, day, sequence)
    recs = [
        ("Agnes", 0, 1.5, 1), ("Agnes", 0, 1.5, 1), ("Agnes", 0, 3.2, 2), ("Agnes", 1, 12.0, 3),
        ("Bold", 2, 4.0, 4), ("Bold", 5, 5.0, 5),
        ("Cat", 3, 15.5, 6),
    ]  # fmt: skip
    from sqlalchemy import select

    from irbis.store.schema import Deployment, MediaGroup

    with p.session() as s, s.begin():
        batch = IngestBatch(source="test", started_utc=T0)
        s.add(batch)
        s.flush()
        dep_ids = {d.code: d.id for d in s.scalars(select(Deployment))}
        groups = {}
        for j, (ind, st, day, seq) in enumerate(recs):
            t = T0 + timedelta(days=day)
            if seq not in groups:
                g = MediaGroup(deployment_id=dep_ids[f"D{st}"], kind="sequence", start_utc=t,
                               end_utc=t, n_media=1)  # fmt: skip
                s.add(g)
                s.flush()
                groups[seq] = g.id
            m = Media(
                sha256=f"{j:064d}", size=1, mediatype="image", mime="image/jpeg",
                storage="copy", stored_path=f"x/{j}", file_name=f"{j}.jpg",
                source_relpath=f"{j}.jpg", batch_id=batch.id, deployment_id=dep_ids[f"D{st}"],
                timestamp_local=t, timestamp_utc=t, time_flag="", sequence_id=groups[seq],
            )  # fmt: skip
            s.add(m)
            s.flush()
            s.add(Observation(media_id=m.id, species="Panthera uncia", individual=ind,
                              source="human", created_utc=T0))  # fmt: skip
        # an untrusted time and an unidentified animal are left out
        m = Media(sha256="f" * 64, size=1, mediatype="image", mime="image/jpeg", storage="copy",
                  stored_path="x/f", file_name="f.jpg", source_relpath="f.jpg", batch_id=batch.id,
                  deployment_id=dep_ids["D4"], timestamp_local=T0 + timedelta(days=2),
                  time_flag="" if bad_time else "no_exif")  # fmt: skip
        s.add(m)
        s.flush()
        s.add(Observation(media_id=m.id, species="Panthera uncia", individual="Ghost",
                          source="human", created_utc=T0))  # fmt: skip
        s.add(Observation(media_id=m.id, species="Panthera uncia", individual=None,
                          source="model:x", created_utc=T0))  # fmt: skip
    return p


def test_project_capthist(tmp_path) -> None:
    p = _make_project(tmp_path)
    ch = project_capthist(p, occasion_days=10)
    assert ch.ids == ["Agnes", "Bold", "Cat"]
    assert ch.traps.ids == [f"S{i}" for i in range(6)]
    assert ch.n_occasions == 2
    k = {t: i for i, t in enumerate(ch.traps.ids)}
    # the burst of two photos is one record; a second sequence is another
    assert ch.counts[0, 0, k["S0"]] == 2
    assert ch.counts[0, 1, k["S1"]] == 1
    assert ch.counts[2, 1, k["S3"]] == 1
    assert ch.counts.sum() == 6
    assert np.allclose(ch.traps.usage[k["S0"]], [10, 10])
    assert np.allclose(ch.traps.usage[k["S5"]], [10, 0])
    assert ch.traps.covariates["Topo"][1] == "Saddle"
    one = project_capthist(p)  # one occasion
    assert one.n_occasions == 1 and one.counts.sum() == 6
    prox = project_capthist(p, occasion_days=10, detector="proximity")
    assert prox.counts.max() == 1
    p.close()


def test_export_secr_files(tmp_path) -> None:
    p = _make_project(tmp_path)
    res = export_secr(p, tmp_path / "out", occasion_days=10)
    p.close()
    capt = (tmp_path / "out" / "capthist.txt").read_text().splitlines()
    rows = [r.split() for r in capt if not r.startswith("#")]
    assert len(rows) == res["detections"] == 6
    assert ["1", "Agnes", "1", "S0"] in rows
    assert rows.count(["1", "Agnes", "1", "S0"]) == 2
    traps = [r.split() for r in (tmp_path / "out" / "traps.txt").read_text().splitlines()]
    s5 = next(r for r in traps if r[0] == "S5")
    assert s5[3:5] == ["10", "0"] and s5[5] == "/"
    assert "binary.usage = FALSE" in res["r_call"] and "trapcovnames" in res["r_call"]


def test_export_cli_and_secr_fit_project(tmp_path) -> None:
    import typer

    from irbis.cli.stats_cmd import export_secr_cmd, secr_app

    p = _make_project(tmp_path)
    p.close()
    app = typer.Typer()
    app.command()(export_secr_cmd)
    res = CliRunner().invoke(
        app, [str(tmp_path / "proj"), str(tmp_path / "o"), "--occasion-days", "10", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["animals"] == 3
    res = CliRunner().invoke(
        secr_app,
        ["fit", str(tmp_path / "proj"), "--occasion-days", "10", "--buffer", "12000",
         "--spacing", "1500", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["n"] == 3 and doc["occasions"] == 2


def test_photo_when_camera_broken_is_clear(tmp_path) -> None:
    p = _make_project(tmp_path)
    from sqlalchemy import select

    from irbis.store.schema import Media

    with p.session() as s, s.begin():
        m = s.scalars(select(Media).where(Media.deployment_id.is_not(None))).all()
        bold_s5 = [x for x in m if x.sha256 == f"{5:064d}"][0]
        bold_s5.timestamp_local = T0 + timedelta(days=15)  # during S5's malfunction
    with pytest.raises(BadInputError, match="no camera was operating"):
        project_capthist(p, occasion_days=10)
    p.close()


def _tagged_leopard_cats(tmp_path) -> Project:
    """camtrapR's XMP-tagged leopard cats, each file put in its station's deployment."""
    from sqlalchemy import select

    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest
    from irbis.store.schema import Deployment, Station

    from .conftest import need_data

    root = need_data("cameratrap", "camtrapR")
    cats = need_data("cameratrap", "camtrapR", "pictures", "sample_images_indiv_tag", "LeopardCat")
    p = Project.init(tmp_path / "p")
    import_registry(p, root / "oracle" / "camtraps.csv", date_format="%d/%m/%Y")
    with p.session() as s:
        deps = {st.name: d.code for d, st in s.execute(select(Deployment, Station).join(Station))}
    for f in sorted(cats.glob("*.JPG")):  # one folder for all stations: station from the name
        ingest(p, f, deployment=deps[f.name.split("__")[0]], workers=1)
    return p


def test_camtrapr_tagged_leopard_cats(tmp_path) -> None:
    """Real XMP-tagged images: who was where (and when) matches camtrapR's own table."""
    import csv

    from irbis.ingest.effort import project_effort

    from .conftest import need_data

    root = need_data("cameratrap", "camtrapR")
    p = _tagged_leopard_cats(tmp_path)
    with (root / "oracle" / "recordTableIndividualSample.csv").open() as fh:
        want = list(csv.DictReader(fh))
    ch = project_capthist(p, detector="proximity")
    got = {(ch.ids[i], ch.traps.ids[k]) for i, _, k in zip(*np.nonzero(ch.counts), strict=True)}
    assert got == {(w["Individual"], w["Station"]) for w in want}
    daily = project_capthist(p, occasion_days=1, detector="proximity")
    days = project_effort(p).days
    got_days = {
        (daily.ids[i], daily.traps.ids[k], days[s].isoformat())
        for i, s, k in zip(*np.nonzero(daily.counts), strict=True)
    }
    assert got_days == {(w["Individual"], w["Station"], w["Date"]) for w in want}
    # usage = camera-days: StationC stopped on 12 May (malfunction)
    assert daily.traps.usage.shape == (3, len(days))
    p.close()


def test_capture_histories_follow_reviews(tmp_path) -> None:
    """Retracted labels drop out; a label naming a merged individual counts for the survivor."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from irbis.exchange.secr_text import project_records
    from irbis.ingest.records import record_table
    from irbis.store.schema import Individual, Observation

    p = _tagged_leopard_cats(tmp_path)
    before = project_records(p)
    n_records = len(record_table(p, min_delta_min=0))
    now = datetime.now(UTC).replace(tzinfo=None)  # after the ingest's tag observations
    with p.session() as s:
        first = s.scalars(
            select(Observation).where(Observation.individual == before[0]["individual"])
        ).first()
        first.retracted_utc, first.retracted_by = now, "reviewer"
        # "1" turns out to be the same cat as a newly named "Khan" (merged into it).
        khan = Individual(name="Khan", created_utc=now)
        one = Individual(name="one", created_utc=now)
        s.add_all([khan, one])
        s.flush()
        one.merged_into_id = khan.id
        other = s.scalars(
            select(Observation).where(
                Observation.individual.is_not(None), Observation.id != first.id
            )
        ).first()
        s.add(
            Observation(
                media_id=other.media_id,
                species=other.species,
                individual_id=one.id,
                source="human",
                by="reviewer",
                created_utc=now,
            )
        )
        s.commit()
        other_media = other.media_id
    after = project_records(p)
    ids = {(r["media_id"], r["individual"]) for r in after}
    assert (first.media_id, before[0]["individual"]) not in ids
    assert (other_media, "Khan") in ids  # the newer label wins, through the merge
    assert len(record_table(p, min_delta_min=0)) == n_records - 1
    p.close()
