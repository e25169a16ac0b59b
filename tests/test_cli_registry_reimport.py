"""`irbis registry import` run twice: the second import changes only what its table says."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from irbis.store import Project
from irbis.store.schema import Deployment, Media, Station

from .cards import write_card


def _irbis(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irbis", *args],
        capture_output=True,
        text=True,
        timeout=300,
        input=stdin,
    )


HEADER = "station,deployment,start,end,x,y,crs\n"
ROWS = (
    "K1,K1-a,2026-02-01T10:00,2026-03-01T10:00,{x},5000000,EPSG:32646\n"
    "K2,K2-a,2026-02-01T10:00,2026-03-01T10:00,401000,5000000,EPSG:32646\n"
)


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    proj = tmp_path / "p"
    table = tmp_path / "camtraps.csv"
    table.write_text(HEADER + ROWS.format(x=400000))
    assert _irbis("init", str(proj)).returncode == 0
    res = _irbis("registry", "import", str(proj), str(table), "--timezone", "Asia/Barnaul")
    assert res.returncode == 0, res.stderr
    write_card(tmp_path / "card", ["K1", "K2"], start=datetime(2026, 2, 3, 8), events=2)
    res = _irbis("ingest", str(proj), str(tmp_path / "card"))
    assert res.returncode == 0, res.stderr
    return proj, table


def _state(proj: Path) -> tuple[dict, list]:
    with Project.open(proj) as p, p.session() as s:
        tz = {d.code: (d.timezone, d.clock_offset_s) for d in s.scalars(select(Deployment))}
        utc = sorted((m.file_name, m.timestamp_utc) for m in s.scalars(select(Media)))
        return tz, utc


def test_reimport_without_timezone_keeps_zones_and_times(tmp_path):
    proj, table = _setup(tmp_path)
    before = _state(proj)
    assert before[0]["K1-a"] == ("Asia/Barnaul", 0.0)
    res = _irbis("registry", "import", str(proj), str(table), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["deployments_updated"] == 2 and doc["changed"] == []
    assert _state(proj) == before  # zones kept, no photo re-timed


def test_changed_zone_or_coordinate_is_refused_without_yes(tmp_path):
    proj, table = _setup(tmp_path)
    before = _state(proj)
    # the same table imported with another zone, and a moved station
    table.write_text(HEADER + ROWS.format(x=400250))
    res = _irbis("registry", "import", str(proj), str(table), "--timezone", "UTC")
    assert res.returncode == 2
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "deployment K1-a timezone Asia/Barnaul -> UTC" in line
    assert "station K1 x 400000.0 -> 400250.0" in line
    assert "--yes" in line and "nothing was written" in line
    assert _state(proj) == before

    # asked on a terminal-less stdin with --json: refused the same way
    res = _irbis("registry", "import", str(proj), str(table), "--timezone", "UTC", "--json")
    assert res.returncode == 2 and res.stdout == ""

    res = _irbis("registry", "import", str(proj), str(table), "--timezone", "UTC", "--yes")
    assert res.returncode == 0, res.stderr
    assert "changed deployment K1-a timezone Asia/Barnaul -> UTC" in res.stderr
    tz, utc = _state(proj)
    assert tz["K1-a"] == ("UTC", 0.0) and tz["K2-a"] == ("UTC", 0.0)
    # every photo moved by Barnaul's 7 hours
    shifts = {(b[1] - a[1]).total_seconds() for a, b in zip(before[1], utc, strict=True)}
    assert shifts == {7 * 3600.0}
    with Project.open(proj) as p, p.session() as s:
        assert s.scalar(select(Station.x).where(Station.name == "K1")) == 400250.0


def test_clock_offset_set_by_irbis_clock_survives_reimport(tmp_path):
    proj, table = _setup(tmp_path)
    res = _irbis("clock", str(proj), "--deployment", "K1-a", "--offset", "-300")
    assert res.returncode == 0, res.stderr
    res = _irbis("registry", "import", str(proj), str(table))
    assert res.returncode == 0, res.stderr
    assert _state(proj)[0]["K1-a"] == ("Asia/Barnaul", -300.0)
