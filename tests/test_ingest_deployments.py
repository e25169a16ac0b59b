"""Files find their deployment by folder and time; reference photos fix drifting clocks."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

from sqlalchemy import select

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import ingest
from irbis.store.schema import Deployment, Media

from .cards import jpeg_bytes


def test_two_seasons_at_one_station(project, tmp_path):
    save_registry(
        project,
        [StationRecord(name="SLG-05")],
        [
            DeploymentRecord(
                code="SLG-05-2025",
                station="SLG-05",
                start=datetime(2025, 1, 5),
                end=datetime(2025, 4, 1),
                timezone="+07:00",
                camera_serial="A1",
            ),
            DeploymentRecord(
                code="SLG-05-2026",
                station="SLG-05",
                start=datetime(2026, 1, 5),
                end=datetime(2026, 4, 1),
                timezone="+07:00",
                camera_serial="B2",
                clock_offset_s=-60,
            ),
        ],
    )
    st = tmp_path / "card" / "SLG-05"
    st.mkdir(parents=True)
    (st / "a.jpg").write_bytes(jpeg_bytes("2025:02:01 03:00:00", seed=1))
    (st / "b.jpg").write_bytes(jpeg_bytes("2026:02:01 03:00:00", seed=2))
    (st / "c.jpg").write_bytes(jpeg_bytes("2024:06:01 03:00:00", seed=3))
    res = ingest(project, tmp_path / "card")
    assert res.n_new == 3
    with project.session() as s:
        got = {
            m.file_name: (code, m.timestamp_local, m.timestamp_utc, m.time_flag)
            for m, code in s.execute(
                select(Media, Deployment.code).join(
                    Deployment, Media.deployment_id == Deployment.id
                )
            )
        }
    assert got["a.jpg"] == ("SLG-05-2025", datetime(2025, 2, 1, 3), datetime(2025, 1, 31, 20), "")
    # The 2026 camera ran a minute fast.
    assert got["b.jpg"][:2] == ("SLG-05-2026", datetime(2026, 2, 1, 2, 59))
    # A photo from between the seasons belongs to neither: it is flagged.
    assert got["c.jpg"][3] == "outside_deployment"


def test_reference_photo_sets_clock_offset(tmp_path):
    proj = tmp_path / "p"
    reg = tmp_path / "reg.csv"
    reg.write_text(
        "station,deployment,start,end,timezone\n"
        "SLG-09,SLG-09-A,2026-01-01T12:00:00,2026-05-01T12:00:00,Asia/Barnaul\n"
    )
    card = tmp_path / "card" / "SLG-09"
    card.mkdir(parents=True)
    (card / "x.jpg").write_bytes(jpeg_bytes("2026:03:03 10:00:00", seed=4))
    run = [sys.executable, "-m", "irbis"]
    for args in (
        ["init", str(proj)],
        ["registry", "import", str(proj), str(reg)],
        ["ingest", str(proj), str(tmp_path / "card")],
    ):
        subprocess.run([*run, *args], check=True, capture_output=True)
    # At retrieval the ranger photographed a GPS clock: the camera showed
    # 10:00:00 when it was really 10:07:12.
    out = subprocess.run(
        [
            *run,
            "clock",
            str(proj),
            "--deployment",
            "SLG-09-A",
            "--camera-showed",
            "2026-05-01T10:00:00",
            "--true-time",
            "2026-05-01T10:07:12",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    res = json.loads(out.stdout)["deployments"][0]
    assert res["offset_s"] == 432 and res["media_changed"] == 1
    from irbis.store import Project

    with Project.open(proj) as p, p.session() as s:
        m = s.scalars(select(Media)).one()
    assert m.taken_raw == datetime(2026, 3, 3, 10, 0)
    assert m.timestamp_local == datetime(2026, 3, 3, 10, 7, 12)
    assert m.timestamp_utc == datetime(2026, 3, 3, 3, 7, 12)  # Barnaul is UTC+7
