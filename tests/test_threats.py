"""Threat maps (issue 20 item 4): snares per patrol effort by cell, valley and season.

A season in the Sailyugem range built by the test: two camera stations (one
per valley) and a snow leopard photographed at the first, three transects
walked in spring and summer and nine snares found, imported with ``irbis
field import`` as a team would. Cells are the location policy's 0.1° grid:
A = [89.0, 89.1) x [49.8, 49.9), B = [89.1, 89.2) x [49.8, 49.9). Every
figure below is worked out here from the tables written.
"""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.reports.census import gather_census
from irbis.reports.html import render_html
from irbis.reports.threats import line_cells, season_of
from irbis.stats.rates import rate_trend
from irbis.store.schema import IngestBatch, Media, Observation

runner = CliRunner()
LAT = 49.85
# transect, day walked, from lon, to lon (along 49.85 N), length_m
TRANSECTS = [
    ("T1", "2026-03-10", 89.02, 89.08, 5000),  # all in A
    ("T2", "2026-04-05", 89.06, 89.14, 8000),  # half in A, half in B
    ("T3", "2026-07-01", 89.12, 89.18, 10000),  # all in B
]
# record id, day, lon, lat, count, transect
SNARES = [
    ("SN1", "2026-03-10", 89.0437, 49.8613, 2, "T1"),
    ("SN2", "2026-04-05", 89.0712, 49.8521, "", "T2"),
    ("SN3", "2026-04-05", 89.1288, 49.8477, "", "T2"),
    ("SN4", "2026-07-01", 89.1391, 49.8566, "", "T3"),
    ("SN5", "2026-07-01", 89.1642, 49.8432, 4, "T3"),
]


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


def cli(*args) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.stdout


def build(project, folder: Path) -> None:
    t0 = datetime(2026, 3, 1)
    stations = [
        StationRecord(name="S1", lon=89.03, lat=49.86, elevation=2600.0,
                      covariates={"valley": "Kalguty"}),
        StationRecord(name="S2", lon=89.17, lat=49.86, elevation=2700.0,
                      covariates={"valley": "Tarkhata"}),
    ]  # fmt: skip
    deps = [
        DeploymentRecord(code=f"D{i}", station=f"S{i}", start=t0, end=t0 + timedelta(days=120))
        for i in (1, 2)
    ]
    save_registry(project, stations, deps)
    from sqlalchemy import select

    from irbis.store.schema import Deployment

    with project.session() as s, s.begin():
        batch = IngestBatch(source="test", started_utc=t0)
        s.add(batch)
        s.flush()
        dep = {d.code: d.id for d in s.scalars(select(Deployment))}
        t = t0 + timedelta(days=20, hours=3)
        m = Media(
            sha256="a" * 64, size=1, mediatype="image", mime="image/jpeg", storage="copy",
            stored_path="x/a", file_name="a.jpg", source_relpath="a.jpg", batch_id=batch.id,
            deployment_id=dep["D1"], timestamp_local=t, timestamp_utc=t, time_flag="",
        )  # fmt: skip
        s.add(m)
        s.flush()
        s.add(Observation(media_id=m.id, species="snow leopard", source="human", created_utc=t0))
    # the length walked is given (a GPS track is longer than the straight line drawn)
    tr = write_csv(
        folder / "transects.csv",
        ["transect", "date", "observers", "line", "length_m"],
        [
            {"transect": c, "date": d, "observers": "Ranger patrol 3",
             "line": f"{a} {LAT}, {b} {LAT}", "length_m": n}
            for c, d, a, b, n in TRANSECTS
        ],
    )  # fmt: skip
    header = ["record_id", "kind", "date", "time", "lat", "lon", "count", "transect",
              "species", "threat_type", "status", "target_species", "sign_type", "sign_age",
              "sample_id"]  # fmt: skip
    records = [
        {"record_id": uid, "kind": "snare", "date": d, "time": "08:00", "lat": la, "lon": lo,
         "count": n, "transect": tc, "threat_type": "wire snare",
         "status": "removed" if uid != "SN4" else "found", "target_species": "musk deer"}
        for uid, d, lo, la, n, tc in SNARES
    ]  # fmt: skip
    records += [
        # musk deer tracks on T3 (cell B), a leopard scat sample in cell A
        {"record_id": "SG1", "kind": "sign", "date": "2026-07-01", "time": "10:00",
         "lat": 49.851, "lon": 89.151, "transect": "T3", "species": "Moschus moschiferus",
         "sign_type": "track", "sign_age": "fresh"},
        {"record_id": "SG2", "kind": "sign", "date": "2026-03-10", "time": "10:00",
         "lat": 49.852, "lon": 89.031, "transect": "T1", "species": "snow leopard",
         "sign_type": "scrape", "sign_age": "old"},
        {"record_id": "SC1", "kind": "scat_sample", "date": "2026-03-10", "time": "11:00",
         "lat": 49.853, "lon": 89.071, "species": "Panthera uncia", "sample_id": "SLG-S001"},
    ]  # fmt: skip
    rec = write_csv(folder / "records.csv", header, records)
    cli("field", "import", project.root, tr, "--kind", "transect")
    cli("field", "import", project.root, rec, "--timezone", "Asia/Barnaul")


def test_line_cells_and_seasons():
    pieces = line_cells([(89.06, LAT), (89.14, LAT)], 0.1)
    assert [p[0] for p in pieces] == [(89.05, 49.85), (89.15, 49.85)]
    assert pieces[0][1] == pytest.approx(pieces[1][1], rel=1e-9)
    # a diagonal crossing a lon and a lat edge is cut twice
    diag = line_cells([(89.05, 49.75), (89.15, 49.95)], 0.1)
    assert [p[0] for p in diag] == [(89.05, 49.75), (89.05, 49.85), (89.15, 49.85), (89.15, 49.95)]
    assert season_of(date(2025, 12, 5)) == season_of(date(2026, 2, 28))
    assert season_of(date(2026, 2, 28))[1] == "2025/26 winter"
    assert season_of(date(2026, 3, 1))[0] == season_of(date(2026, 2, 28))[0] + 1
    assert season_of(date(2026, 9, 1))[1] == "2026 autumn"
    # the trend of two seasons is the ratio of their rates
    tr = rate_trend([4, 5], [13.0, 10.0])
    assert tr.ratio == pytest.approx((5 / 10) / (4 / 13), rel=1e-9)
    se = math.sqrt(1 / 4 + 1 / 5)  # Poisson: var(log ratio) = 1/n1 + 1/n2
    assert tr.se == pytest.approx(se, rel=1e-6)
    assert rate_trend([0, 3], [10, 10]).reason.startswith("at boundary")
    assert rate_trend([0, 0], [10, 10]).reason == "nothing was found in any period"


def test_snares_per_effort_in_census(project, tmp_path):
    build(project, tmp_path)
    precise = gather_census(project, public=False, detectfns=("HHN",))
    th = precise.field_records["threats"]
    assert th["snares"] == 9 and th["status"] == {"removed": 8, "found": 1}
    assert th["km"] == pytest.approx(23.0)
    assert th["rate"] == pytest.approx(10 * 9 / 23)
    lo, hi = stats.chi2.ppf(0.025, 18) / 2, stats.chi2.ppf(0.975, 20) / 2
    assert (th["lcl"], th["ucl"]) == pytest.approx((10 * lo / 23, 10 * hi / 23))
    cells = {(c["lon"], c["lat"]): c for c in th["cells"]}
    a, b = cells[(89.05, 49.85)], cells[(89.15, 49.85)]
    # A: T1 5 km + half of T2; B: half of T2 + T3 10 km
    assert a["km"] == pytest.approx(9.0) and b["km"] == pytest.approx(14.0)
    assert a["snares"] == 3 and b["snares"] == 6
    assert a["rate"] == pytest.approx(10 * 3 / 9) and b["rate"] == pytest.approx(10 * 6 / 14)
    assert a["leopard"] and not a["musk_deer"] and b["musk_deer"] and not b["leopard"]
    ov = th["overlap"]
    assert ov["snare_cells"] == 2
    assert (ov["leopard_cells"], ov["leopard_snares"]) == (1, 3)
    assert (ov["musk_deer_cells"], ov["musk_deer_snares"]) == (1, 6)
    assert ov["both_cells"] == 0
    # valleys from the stations' covariate, each place to the nearest station
    assert th["region_key"] == "valley"
    regions = {r["region"]: r for r in th["regions"]}
    assert regions["Kalguty"]["km"] == pytest.approx(9.0) and regions["Kalguty"]["snares"] == 3
    assert regions["Tarkhata"]["km"] == pytest.approx(14.0)
    assert regions["Tarkhata"]["snares"] == 6
    # spring: T1 + T2 = 13 km, 4 snares; summer: T3 = 10 km, 5 snares
    seasons = {r["season"]: r for r in th["seasons"]}
    assert list(seasons) == ["2026 spring", "2026 summer"]
    assert seasons["2026 spring"]["snares"] == 4 and seasons["2026 spring"]["km"] == 13.0
    assert seasons["2026 summer"]["rate"] == pytest.approx(5.0)
    assert th["trend"]["ratio"] == pytest.approx((5 / 10) / (4 / 13), rel=1e-9)
    # signs per km and samples
    trs = {t["transect"]: t for t in precise.field_records["transects"]}
    assert trs["T3"]["signs"] == 1 and trs["T3"]["per_km"] == pytest.approx(0.1)
    assert precise.field_records["samples"]["samples"] == 1
    assert len(th["points"]) == 5
    assert "89.0437" in json.dumps(precise.to_json(), default=str)  # precise keeps the places

    # the report shows the same figures
    html_pre = render_html(precise)
    cell_rows = re.findall(r'<tr data-lon="([\d.]+)" data-lat="([\d.]+)" data-snares="(\d+)"'
                           r' data-km="([\d.e+-]+)"', html_pre)  # fmt: skip
    assert {(float(x), float(y)): (int(n), float(k)) for x, y, n, k in cell_rows} == {
        (89.05, 49.85): (3, pytest.approx(9.0)),
        (89.15, 49.85): (6, pytest.approx(14.0)),
    }
    assert 'id="snare-trend"' in html_pre and "2026 summer" in html_pre

    # public: the same figures, cells only, no snare place
    public = gather_census(project, public=True, detectfns=("HHN",))
    pth = public.field_records["threats"]
    assert "points" not in pth
    assert [(c["lon"], c["lat"], c["snares"]) for c in pth["cells"]] == [
        (c["lon"], c["lat"], c["snares"]) for c in th["cells"]
    ]
    html_pub = render_html(public)
    strip = lambda h: re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", h)  # noqa: E731
    pub_text = strip(html_pub) + json.dumps(public.to_json(), default=str)
    for _uid, _d, lon, lat, _n, _t in SNARES:
        for v in (lon, lat):
            for fmt in (f"{v}", f"{v:.3f}", f"{v:.2f}"):
                if fmt in ("89.05", "89.15", "49.85"):  # a cell centre, on the grid
                    continue
                assert fmt not in pub_text, fmt
    assert "no snare place finer than a cell" in html_pub
    assert 'id="threat_map"' not in html_pub  # (figures are images without ids)
    assert "Snares per patrol effort" in html_pub


def test_the_pdf_without_a_browser_has_the_field_section(project, tmp_path):
    """The matplotlib PDF engine lays out sections 9 and 10 as the HTML does, public cells only."""
    import shutil
    import subprocess

    from irbis.reports.pdf import write_pdf

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (Debian package poppler-utils)")
    build(project, tmp_path)
    texts = {}
    for public in (True, False):
        census = gather_census(project, public=public, detectfns=("HHN",))
        pdf = tmp_path / f"{public}.pdf"
        assert write_pdf(census, pdf, engine="matplotlib")["engine"] == "matplotlib"
        res = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True
        )
        texts[public] = res.stdout
    pub = texts[True]
    assert "10. Scat samples, signs and snares" in pub and "11. Methods" in pub
    assert "9. Occupancy and activity overlap" in pub
    assert "Snares: 9 found (1 found, 8 removed) over 23.0 km" in " ".join(pub.split())
    assert "89.05, 49.85" in pub and "89.15, 49.85" in pub and "2026 summer" in pub
    assert "no snare place finer than a cell" in " ".join(pub.split())
    assert "no snare place finer" not in " ".join(texts[False].split())
    for _uid, _d, lon, lat, _n, _t in SNARES:
        for v in (lon, lat):
            if f"{v:.2f}" not in ("89.05", "89.15", "49.85"):
                assert f"{v:.3f}" not in pub, v
