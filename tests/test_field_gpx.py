"""Patrol tracks from GPX files as the effort behind snares per patrol effort (issue 20).

The tracks are built here along meridians: a step of 0.01° of latitude is
6 371 008.8 m × π/180 × 0.01 = 1111.95 m on the sphere irbis measures on, so
every length below is worked out independently of irbis's haversine code.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.core.errors import BadInputError
from irbis.exchange.gpx_tracks import read_gpx_tracks
from irbis.reports.threats import gather_field

STEP_M = 6_371_008.8 * math.pi / 180 * 0.01
runner = CliRunner()


def _pts(lon: float, lat0: float, n: int, t0: str | None) -> str:
    out = []
    for i in range(n):
        time = f"<time>{t0[:-2]}{i:02d}Z</time>" if t0 else ""
        out.append(f'<trkpt lat="{lat0 + 0.01 * i:.2f}" lon="{lon}"><ele>2500</ele>{time}</trkpt>')
    return "".join(out)


def _gpx(body: str, ns: str = "http://www.topografix.com/GPX/1/1") -> str:
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return f'{head}<gpx version="1.1" creator="t" xmlns="{ns}">{body}</gpx>'


def _patrols(folder: Path) -> Path:
    body = (
        '<wpt lat="49.86" lon="89.05"><name>snare</name></wpt>'
        "<rte><name>plan</name>"
        '<rtept lat="49.8" lon="89.05"/><rtept lat="49.9" lon="89.05"/></rte>'
        # patrol 1: 5 steps in cell A (89.0-89.1) late on 1 May UTC = 2 May at +07:00
        "<trk><name>Kalguty 2026-05-02</name>"
        f"<trkseg>{_pts(89.05, 49.80, 6, '2026-05-01T20:30:00')}</trkseg></trk>"
        # patrol 2: two segments in cell B (the unit lost its fix) and a one-point segment
        f"<trk><name>Tarkhata</name><trkseg>{_pts(89.15, 49.80, 4, '2026-06-10T03:00:00')}</trkseg>"
        f"<trkseg>{_pts(89.15, 49.85, 3, '2026-06-10T05:00:00')}</trkseg>"
        f"<trkseg>{_pts(89.15, 49.89, 1, '2026-06-10T06:00:00')}</trkseg></trk>"
    )
    path = folder / "patrols.gpx"
    path.write_text(_gpx(body), encoding="utf-8")
    return path


def test_tracks_become_transects_with_their_length_and_local_day(project, tmp_path):
    gpx = _patrols(tmp_path)
    res = runner.invoke(
        app, ["field", "import", str(project.root), str(gpx), "--timezone", "+07:00", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["layout"], doc["kind"], doc["new"]) == ("gpx", "transect", 3)
    assert (doc["waypoints_skipped"], doc["routes_skipped"]) == (1, 1)
    assert doc["short_segments_skipped"] == 1
    assert doc["km"] == pytest.approx((5 + 3 + 2) * STEP_M / 1000, rel=1e-9)

    res = runner.invoke(app, ["field", "list", str(project.root), "--transects", "--json"])
    rows = {r["code"]: r for r in json.loads(res.stdout)["transects"]}
    assert set(rows) == {"Kalguty 2026-05-02", "Tarkhata", "Tarkhata/2"}
    kal = rows["Kalguty 2026-05-02"]
    assert str(kal["date"]) == "2026-05-02"  # 20:30 UTC is the next morning at +07:00
    assert kal["length_m"] == pytest.approx(5 * STEP_M, abs=0.1)
    assert rows["Tarkhata/2"]["length_m"] == pytest.approx(2 * STEP_M, abs=0.1)

    # importing the same file again changes nothing
    res = runner.invoke(
        app, ["field", "import", str(project.root), str(gpx), "--timezone", "+07:00", "--json"]
    )
    again = json.loads(res.stdout)
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, 3)

    # the patrol effort is what snares are divided by, cell by cell
    fr = gather_field(project, public=True)
    th = fr["threats"]
    # (lengths are stored to 0.1 m)
    assert th["km"] == pytest.approx(10 * STEP_M / 1000, abs=3e-4)
    cells = {(c["lon"], c["lat"]): c["km"] for c in th["cells"]}
    assert sum(cells.values()) == pytest.approx(10 * STEP_M / 1000, abs=3e-4)
    assert cells[(89.15, 49.85)] + cells.get((89.15, 49.95), 0) + cells[(89.15, 49.75)] == (
        pytest.approx(5 * STEP_M / 1000, abs=3e-4)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<gpx><trk>", "not readable XML"),
        (_gpx("").replace("<gpx", '<!DOCTYPE gpx [<!ENTITY a "b">]><gpx'), "document type"),
        ('<kml xmlns="http://www.opengis.net/kml/2.2"></kml>', "is not a GPX document"),
        (_gpx('<wpt lat="49.8" lon="89.0"/>'), "no track with two points or more (1 waypoints"),
        (_gpx('<trk><trkseg><trkpt lat="x" lon="89"/><trkpt/></trkseg></trk>'), "point 1"),
        (_gpx('<trk><trkseg><trkpt lat="95" lon="89"/></trkseg></trk>'), "not a latitude"),
        (
            _gpx(f"<trk><name>A</name><trkseg>{_pts(89, 49, 2, None)}</trkseg></trk>" * 2),
            "'A' appears twice",
        ),
        (
            _gpx('<trk><trkseg><trkpt lat="49" lon="89"><time>noon</time></trkpt></trkseg></trk>'),
            "not an ISO 8601 time",
        ),
    ],
)
def test_bad_gpx_files_get_one_line_naming_the_place(tmp_path, text, message):
    path = tmp_path / "bad.gpx"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError) as err:
        read_gpx_tracks(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_bad_gpx_stores_nothing_and_says_so_in_one_line(project, tmp_path):
    path = tmp_path / "cut.gpx"
    path.write_text(_patrols(tmp_path).read_text(encoding="utf-8")[:-40], encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "irbis", "field", "import", str(project.root), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not readable XML" in lines[0], res.stderr
    res = runner.invoke(app, ["field", "list", str(project.root), "--transects", "--json"])
    assert json.loads(res.stdout)["transects"] == []
