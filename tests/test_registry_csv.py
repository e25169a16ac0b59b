"""Station and deployment tables: camtrapR, Camtrap DP and irbis layouts."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from irbis.core.errors import BadInputError, RegistryError
from irbis.core.types import DeploymentRecord, MalfunctionPeriod, StationRecord
from irbis.ingest.registry_csv import (
    read_camtrapdp_deployments,
    read_camtrapr_table,
    read_irbis_table,
    read_registry_csv,
    registry_problems,
    validate_registry,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAMTRAPS = DATA / "cameratrap" / "camtrapR" / "oracle" / "camtraps.csv"
DP_DEPLOYMENTS = DATA / "cameratrap" / "camtrap-dp-example" / "deployments.csv"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (see ../shared/data/README.md)")
    return path


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg, msg
    return msg


def rewrite_csv(src: Path, dst: Path, edit) -> Path:
    """Copy a CSV through ``edit(header, rows)``, which changes them in place."""
    with src.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    edit(header, body)
    with dst.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *body])
    return dst


# --------------------------------------------------------------------------- camtrapR


def test_camtrapr_table_noon_semantics_and_problem_period() -> None:
    stations, deps = read_camtrapr_table(need(CAMTRAPS))
    assert [s.name for s in stations] == ["StationA", "StationB", "StationC"]
    a = stations[0]
    assert (a.x, a.y) == (526000.0, 604000.0)
    assert a.covariates == {}  # utm columns are coordinates, problems are malfunctions
    by = {d.code: d for d in deps}
    assert by["StationA"].start == datetime(2009, 4, 2, 12)
    assert by["StationA"].end == datetime(2009, 5, 14, 12)
    assert by["StationA"].malfunctions == []
    assert by["StationA"].source_row.endswith("camtraps.csv:row 2")
    # Problem1 12/05..17/05: from the start of the 12th to the end of the 17th,
    # clamped to the noon retrieval on the 17th.
    assert by["StationC"].malfunctions == [
        MalfunctionPeriod(datetime(2009, 5, 12), datetime(2009, 5, 17, 12), "Problem1")
    ]
    validate_registry(stations, deps)


def test_camtrapr_problem_on_setup_day_starts_at_setup(tmp_path: Path) -> None:
    p = tmp_path / "ct.csv"
    p.write_text(
        "Station,Setup_date,Retrieval_date,Problem1_from,Problem1_to,Problem2_from,Problem2_to,"
        "Habitat\n"
        "S1,01/03/2024,20/03/2024,01/03/2024,02/03/2024,10/03/2024,10/03/2024,scree\n"
    )
    stations, deps = read_camtrapr_table(p, crs="EPSG:32643", timezone="Asia/Bishkek")
    assert stations[0].covariates == {"Habitat": "scree"}
    assert stations[0].crs is None  # no coordinates in this file
    (d,) = deps
    assert d.timezone == "Asia/Bishkek"
    assert d.malfunctions == [
        MalfunctionPeriod(datetime(2024, 3, 1, 12), datetime(2024, 3, 3), "Problem1"),
        MalfunctionPeriod(datetime(2024, 3, 10), datetime(2024, 3, 11), "Problem2"),
    ]


def test_camtrapr_with_times_and_cameras(tmp_path: Path) -> None:
    p = tmp_path / "ct.csv"
    p.write_text(
        "Station,Camera,utm_x,utm_y,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
        "S1,c1,1,2,2024-03-01 09:30,2024-03-20 16:00,2024-03-05 06:00,2024-03-05 18:00\n"
        "S1,c2,1,2,2024-03-01 10:00,2024-03-20 16:10,,\n"
    )
    stations, deps = read_camtrapr_table(
        p, date_format="%Y-%m-%d %H:%M", camera_col="Camera", crs="EPSG:32643"
    )
    assert len(stations) == 1 and stations[0].crs == "EPSG:32643"
    assert [d.code for d in deps] == ["S1__CAM_c1", "S1__CAM_c2"]
    assert [d.camera_serial for d in deps] == ["c1", "c2"]
    assert deps[0].start == datetime(2024, 3, 1, 9, 30)
    assert deps[0].malfunctions == [
        MalfunctionPeriod(datetime(2024, 3, 5, 6), datetime(2024, 3, 5, 18), "Problem1")
    ]
    validate_registry(stations, deps)  # two named cameras may watch at once


def test_camtrapr_bad_date_names_row_and_format(tmp_path: Path) -> None:
    def edit(header, rows):
        rows[1][header.index("Retrieval_date")] = "31/02/2009"

    p = rewrite_csv(need(CAMTRAPS), tmp_path / "camtraps.csv", edit)
    with pytest.raises(BadInputError) as e:
        read_registry_csv(p)
    msg = one_line(e.value)
    assert "camtraps.csv:row 3" in msg
    assert "31/02/2009" in msg and "%d/%m/%Y" in msg


def test_camtrapr_missing_column_names_file_and_column(tmp_path: Path) -> None:
    def edit(header, rows):
        k = header.index("Retrieval_date")
        for r in (header, *rows):
            del r[k]

    p = rewrite_csv(need(CAMTRAPS), tmp_path / "camtraps.csv", edit)
    with pytest.raises(BadInputError) as e:
        read_registry_csv(p)
    msg = one_line(e.value)
    assert str(p) in msg and "'Retrieval_date'" in msg


def test_camtrapr_half_problem_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "ct.csv"
    p.write_text("Station,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
                 "S1,01/03/2024,20/03/2024,05/03/2024,\n")
    with pytest.raises(BadInputError, match=r"ct.csv:row 2: Problem1_from is set"):
        read_camtrapr_table(p)


def test_camtrapr_problem_after_retrieval_is_caught(tmp_path: Path) -> None:
    p = tmp_path / "ct.csv"
    p.write_text("Station,Setup_date,Retrieval_date,Problem1_from,Problem1_to\n"
                 "S1,01/03/2024,20/03/2024,25/03/2024,26/03/2024\n")
    with pytest.raises(RegistryError, match=r"ct.csv:row 2: malfunction .* outside"):
        read_registry_csv(p)


def test_camtrapr_duplicate_station_without_camera_column(tmp_path: Path) -> None:
    p = tmp_path / "ct.csv"
    p.write_text("Station,Setup_date,Retrieval_date\n"
                 "S1,01/03/2024,20/03/2024\n"
                 "S1,01/04/2024,20/04/2024\n")
    with pytest.raises(RegistryError) as e:
        read_registry_csv(p)
    msg = one_line(e.value)
    assert "ct.csv:row 3" in msg and "already used" in msg and "row 2" in msg


# --------------------------------------------------------------------------- Camtrap DP


def test_camtrapdp_deployments() -> None:
    stations, deps = read_registry_csv(need(DP_DEPLOYMENTS))
    assert len(deps) == 4 and len(stations) == 4
    by = {d.code: d for d in deps}
    d = by["00a2c20d"]
    assert d.station == "B_HS_val 2_processiepark"
    assert d.start == datetime(2020, 5, 30, 4, 57, 37)
    assert d.end == datetime(2020, 7, 1, 11, 41, 41)
    assert d.timezone == "+02:00"
    assert (d.camera_make, d.camera_model, d.camera_serial) == ("Reconyx", "HF2X", "320")
    assert d.source_row.endswith("deployments.csv:row 2")
    assert by["29b7d356"].comments == "from 29/07/2020 to 08/08/2020, 120 photos"
    # Still on winter time after the 2021-03-28 clock change: the file says so.
    assert by["62c200a9"].timezone == "+01:00"
    assert by["62c200a9"].end == datetime(2021, 4, 18, 22, 25)
    assert [d.timezone for d in deps] == ["+02:00", "+02:00", "+02:00", "+01:00"]
    s = {s.name: s for s in stations}["B_HS_val 2_processiepark"]
    assert (s.lat, s.lon) == (51.496, 4.774)
    assert s.covariates["habitat"].startswith("Campine area")
    assert s.covariates["featureType"] == "trailGame"
    assert s.covariates["cameraHeight"] == 1.3
    assert s.covariates["baitUse"] is False
    assert "setupBy" not in s.covariates


def test_camtrapdp_end_in_other_offset_is_converted(tmp_path: Path) -> None:
    p = tmp_path / "deployments.csv"
    p.write_text(
        "deploymentID,locationID,latitude,longitude,deploymentStart,deploymentEnd,cameraModel\n"
        "d1,loc1,51,4,2021-03-20T12:00:00+01:00,2021-04-10T12:00:00+02:00,Browning\n"
        "d2,loc2,51,4,2021-03-20T12:00:00Z,2021-04-10T12:00:00Z,\n"
    )
    stations, deps = read_camtrapdp_deployments(p)
    assert [s.name for s in stations] == ["loc1", "loc2"]
    assert deps[0].end == datetime(2021, 4, 10, 11)
    assert (deps[0].camera_make, deps[0].camera_model) == (None, "Browning")
    assert deps[1].timezone == "+00:00"


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        pytest.param(
            lambda h, r: r[1].__setitem__(h.index("deploymentEnd"), "2020-07-01T11:41:41+02:00"),
            r"deployments\.csv:row 3: deployment 29b7d356 ends .* before it starts",
            id="end-before-start",
        ),
        pytest.param(
            lambda h, r: r[2].__setitem__(h.index("cameraID"), "320"),
            r"deployments\.csv:row 4: camera 320 is at B_DL_val 3_dikke boom .* also at "
            r"B_HS_val 2_processiepark .*deployments\.csv:row 2",
            id="same-camera-overlap",
        ),
        pytest.param(
            lambda h, r: r[3].__setitem__(h.index("deploymentStart"), "2021-03-27 9 pm"),
            r"deployments\.csv:row 5: cannot read deploymentStart '2021-03-27 9 pm'.*ISO 8601",
            id="bad-date",
        ),
        pytest.param(
            lambda h, r: r[3].__setitem__(h.index("deploymentEnd"), "2021-04-18T22:25:00"),
            r"deployments\.csv:row 5: deploymentEnd .* has no UTC offset",
            id="no-offset",
        ),
    ],
)
def test_camtrapdp_broken_copies(tmp_path: Path, edit, expect: str) -> None:
    p = rewrite_csv(need(DP_DEPLOYMENTS), tmp_path / "deployments.csv", edit)
    with pytest.raises(BadInputError) as e:
        read_registry_csv(p)
    assert e.match(expect)
    one_line(e.value)


def test_camtrapdp_missing_column(tmp_path: Path) -> None:
    def edit(header, rows):
        k = header.index("deploymentStart")
        for r in (header, *rows):
            del r[k]

    p = rewrite_csv(need(DP_DEPLOYMENTS), tmp_path / "deployments.csv", edit)
    with pytest.raises(BadInputError) as e:
        read_registry_csv(p)
    msg = one_line(e.value)
    assert msg.startswith(f"{p}: missing column 'deploymentStart'")


def test_camtrapdp_unknown_station(tmp_path: Path) -> None:
    def edit(header, rows):
        rows[3][header.index("locationName")] = "B_HS_val 2_procesiepark"  # typo

    p = rewrite_csv(need(DP_DEPLOYMENTS), tmp_path / "deployments.csv", edit)
    registered = [
        "B_HS_val 2_processiepark", "B_DL_val 5_beek kleine vijver", "B_DL_val 3_dikke boom",
    ]
    with pytest.raises(RegistryError) as e:
        read_registry_csv(p, known_stations=registered)
    msg = one_line(e.value)
    assert "deployments.csv:row 5: station 'B_HS_val 2_procesiepark' of 62c200a9 is unknown" in msg
    assert "did you mean 'B_HS_val 2_processiepark'" in msg


def test_camtrapdp_rejects_options() -> None:
    with pytest.raises(BadInputError, match="take no options"):
        read_registry_csv(need(DP_DEPLOYMENTS), timezone="UTC")


# --------------------------------------------------------------------------- irbis layout


def test_irbis_layout(tmp_path: Path) -> None:
    p = tmp_path / "registry.csv"
    p.write_text(
        "station,deployment,start,end,timezone,lon,lat,x,y,crs,elevation,camera_make,"
        "camera_model,camera_serial,clock_offset_s,aspect\n"
        "K01,,2024-03-01,2024-04-01,Asia/Bishkek,74.5,42.1,,,,3400,Reconyx,HF2X,H500,-300,N\n"
        "K01,,2024-04-01,2024-05-01T08:15,Asia/Bishkek,74.5,42.1,,,,3400,Reconyx,HF2X,H500,,N\n"
        "K02,K02-a,2024-03-02T10:00+06:00,2024-04-02T09:00:00+06:00,,,,1,2,EPSG:32643,,,,,,\n"
        "K03,,2024-03-02T04:00Z,2024-03-03T04:00Z,+06:00,,,,,,,,,,,S\n"
    )
    stations, deps = read_registry_csv(p)
    assert [s.name for s in stations] == ["K01", "K02", "K03"]
    k01 = stations[0]
    assert (k01.lon, k01.lat, k01.elevation) == (74.5, 42.1, 3400.0)
    assert k01.covariates == {"aspect": "N"}
    assert stations[1].crs == "EPSG:32643"
    a, b, c, d = deps
    assert (a.code, b.code) == ("K01_2024-03-01", "K01_2024-04-01")
    assert a.start == datetime(2024, 3, 1, 12) and a.end == datetime(2024, 4, 1, 12)
    assert b.start == datetime(2024, 4, 1, 12) and b.end == datetime(2024, 5, 1, 8, 15)
    assert a.clock_offset_s == -300.0 and b.clock_offset_s == 0.0
    assert (a.camera_make, a.camera_model, a.camera_serial) == ("Reconyx", "HF2X", "H500")
    assert c.code == "K02-a" and c.timezone == "+06:00"
    assert c.start == datetime(2024, 3, 2, 10)
    assert d.code == "K03" and d.timezone == "+06:00"
    assert d.start == datetime(2024, 3, 2, 10)  # 04:00 UTC is 10:00 at +06:00


def test_irbis_layout_only_required_columns(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("start,end,station\n2024-03-01T10:00,2024-03-05T10:00,K1\n")
    stations, deps = read_irbis_table(p, timezone="Asia/Almaty")
    assert deps[0].code == "K1" and deps[0].timezone == "Asia/Almaty"
    assert stations == [StationRecord(name="K1")]


@pytest.mark.parametrize(
    ("rows", "expect"),
    [
        pytest.param(
            "K1,,2024-03-01,2024-04-01,S1\nK2,,2024-03-15,2024-04-15,S1\n",
            r"r\.csv:row 3: camera S1 is at K2 .* while also at K1 .*r\.csv:row 2",
            id="serial-in-two-places",
        ),
        pytest.param(
            "K1,d,2024-03-01,2024-04-01,S1\nK2,d,2024-05-01,2024-06-01,S2\n",
            r"r\.csv:row 3: deployment code 'd' is already used \(.*r\.csv:row 2\)",
            id="duplicate-code",
        ),
        pytest.param(
            "K1,a,2024-03-01,2024-04-01,\nK1,b,2024-03-20,2024-04-20,\n",
            r"r\.csv:row 3: deployment b at K1 with no named camera overlaps a",
            id="unnamed-cameras-overlap",
        ),
        pytest.param(
            "K1,a,2024-03-01,2024-04-01,S1\nK1,b,2024-03-20,2024-04-20,S1\n",
            r"r\.csv:row 3: deployment b at K1 with camera S1 overlaps a",
            id="same-camera-same-station",
        ),
        pytest.param(
            "K1,a,2024-03-01,2024-03-01,S1\n",
            r"r\.csv:row 2: deployment a ends .* when it starts",
            id="end-equals-start",
        ),
        pytest.param(
            "K1,a,2024-03-01,1/4/2024,S1\n",
            r"r\.csv:row 2: cannot read end '1/4/2024' as a date \(expected ISO 8601",
            id="bad-date",
        ),
    ],
)
def test_irbis_layout_errors(tmp_path: Path, rows: str, expect: str) -> None:
    p = tmp_path / "r.csv"
    p.write_text("station,deployment,start,end,camera_serial\n" + rows)
    with pytest.raises(BadInputError) as e:
        read_registry_csv(p)
    assert e.match(expect)
    one_line(e.value)


def test_irbis_layout_consecutive_deployments_are_fine(tmp_path: Path) -> None:
    # The camera moves from K1 to K2 at noon the same day: no overlap.
    p = tmp_path / "r.csv"
    p.write_text("station,start,end,camera_serial\n"
                 "K1,2024-03-01,2024-04-01,S1\nK2,2024-04-01,2024-05-01,S1\n")
    _, deps = read_registry_csv(p)
    assert registry_problems([], deps, ["K1", "K2"]) == []


def test_irbis_layout_conflicting_station_position(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("station,start,end,lon,lat\n"
                 "K1,2024-03-01,2024-04-01,74.5,42.1\nK1,2024-05-01,2024-06-01,74.6,42.1\n")
    with pytest.raises(RegistryError, match=r"r\.csv:row 3: station 'K1' has lon 74\.6"):
        read_registry_csv(p)


def test_irbis_layout_unknown_zone(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("station,start,end,timezone\nK1,2024-03-01,2024-04-01,Asia/Atlantis\n")
    with pytest.raises(BadInputError, match=r"r\.csv:row 2: unknown time zone 'Asia/Atlantis'"):
        read_registry_csv(p)


# --------------------------------------------------------------------------- dispatch


def test_unknown_layout(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(BadInputError, match="cannot tell the table's layout"):
        read_registry_csv(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="file not found"):
        read_registry_csv(tmp_path / "nope.csv")


def test_validate_without_source_rows_names_the_code() -> None:
    d = DeploymentRecord(code="X1", station="S", start=datetime(2024, 1, 2),
                         end=datetime(2024, 1, 1))
    with pytest.raises(RegistryError, match=r"^deployment X1: deployment X1 ends"):
        validate_registry([StationRecord("S")], [d])
    problems = registry_problems([], [d])
    assert len(problems) == 2  # ends before start, and station unknown


def test_irbis_layout_malfunction_columns(tmp_path):
    from irbis.ingest.registry_csv import read_registry_csv

    path = tmp_path / "reg.csv"
    path.write_text(
        "station,deployment,start,end,timezone,malfunction_start,malfunction_end,"
        "malfunction_reason,habitat\n"
        "SLG-01,SLG-01-A,2026-02-01T12:00:00,2026-03-01T12:00:00,Asia/Barnaul,"
        "2026-02-10T08:00:00,2026-02-12T18:30:00,snow on lens,scree\n"
        "SLG-02,SLG-02-A,2026-02-01T12:00:00,2026-03-01T12:00:00,Asia/Barnaul,,,,cliff\n"
    )
    stations, deps = read_registry_csv(path)
    (m,) = deps[0].malfunctions
    assert (m.start, m.end, m.reason) == (
        datetime(2026, 2, 10, 8), datetime(2026, 2, 12, 18, 30), "snow on lens"
    )
    assert deps[1].malfunctions == []
    assert stations[0].covariates == {"habitat": "scree"}


# --------------------------------------------------------------------------- hostile tables

_IRBIS_HEADER = "station,deployment,start,end,timezone,lat,lon,clock_offset_s\n"


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("K1,a,2024-01-01,9999-12-31,UTC,40,70,", "end"),
        ("K1,a,0001-01-01,2024-02-01,UTC,40,70,", "start"),
        ("K1,a,2024-01-01,2024-02-01,UTC,-999,70,", "lat"),
        ("K1,a,2024-01-01,2024-02-01,UTC,40,181,", "lon"),
        ("K1,a,2024-01-01,2024-02-01,UTC,inf,70,", "lat"),
        ("K1,a,2024-01-01,2024-02-01,UTC,40,-Infinity,", "lon"),
        ("K1,a,2024-01-01,2024-02-01,UTC,40,70,1e300", "clock_offset_s"),
        ("K1,a,2024-01-01,2024-02-01,UTC,40,70,inf", "clock_offset_s"),
    ],
)
def test_out_of_range_values_are_refused(tmp_path, row, column):
    p = tmp_path / "r.csv"
    p.write_text(_IRBIS_HEADER + "K0,z,2024-01-01,2024-02-01,UTC,41,71,\n" + row + "\n")
    with pytest.raises(BadInputError) as exc:
        read_registry_csv(p)
    msg = one_line(exc.value)
    assert msg.startswith(f"{p}:row 3: {column} ") and ("range" in msg or "finite" in msg), msg


def test_out_of_range_in_camtrapr_and_camtrapdp_tables(tmp_path):
    r = tmp_path / "camtraps.csv"
    r.write_text("Station,Setup_date,Retrieval_date\nK1,01/01/2024,31/12/9999\n")
    with pytest.raises(BadInputError, match=r"camtraps\.csv:row 2: Retrieval_date '31/12/9999'"):
        read_registry_csv(r, date_format="%d/%m/%Y")
    dp = tmp_path / "deployments.csv"
    dp.write_text(
        "deploymentID,locationName,latitude,longitude,deploymentStart,deploymentEnd\n"
        "d1,K1,-999,70,2024-01-01T00:00:00Z,2024-02-01T00:00:00Z\n"
    )
    with pytest.raises(BadInputError, match=r"deployments\.csv:row 2: latitude -999 is out"):
        read_registry_csv(dp)


def test_unreadable_tables_get_one_line_errors(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text(_IRBIS_HEADER + "K1,a,2024-01-01,2024-02-01,UTC,40,70,\nK2," + "x" * 200_000)
    with pytest.raises(BadInputError) as exc:
        read_registry_csv(big)
    assert one_line(exc.value).startswith(f"{big}:row 3: a cell is longer than 131,072")
    folder = tmp_path / "table.csv"
    folder.mkdir()
    with pytest.raises(BadInputError) as exc:
        read_registry_csv(folder)
    assert one_line(exc.value).startswith(f"{folder}: is a folder, not a table")
    nul = tmp_path / "nul.csv"
    nul.write_text(
        _IRBIS_HEADER
        + "K1,a,2024-01-01,2024-02-01,UTC,40,70,\nK\x002,b,2024-01-01,2024-02-01,UTC,40,70,\n"
    )
    with pytest.raises(BadInputError) as exc:
        read_registry_csv(nul)
    assert one_line(exc.value).startswith(f"{nul}:row 3: column 'station' contains a NUL")


def _overlaps_brute(deps):
    pairs = set()
    for i, d in enumerate(deps):
        for j in range(i):
            o = deps[j]
            if not (d.end > d.start and o.end > o.start and d.start < o.end and o.start < d.end):
                continue
            if o.camera_serial == d.camera_serial and (
                o.station == d.station or d.camera_serial is not None
            ):
                pairs.add((i, j))
    return pairs


def test_overlap_check_reports_every_deployment_in_an_overlap():
    """The sorted sweep names only true overlaps and every deployment caught in one."""
    import random
    from datetime import timedelta

    from irbis.ingest.registry_csv import _overlap_problems

    rng = random.Random(19)
    for _ in range(2000):
        deps = []
        for i in range(rng.randint(0, 9)):
            a = rng.randint(0, 10)
            deps.append(
                DeploymentRecord(
                    code=f"d{i}",
                    station=rng.choice("AB"),
                    start=datetime(2024, 1, 1) + timedelta(days=a),
                    end=datetime(2024, 1, 1) + timedelta(days=a + rng.randint(-1, 5)),
                    camera_serial=rng.choice([None, "1", "2"]),
                )
            )
        got = {(i, j) for i, j, _ in _overlap_problems(deps)}
        true = _overlaps_brute(deps)
        assert got <= true
        assert {k for p in got for k in p} == {k for p in true for k in p}


def _big_registry(path: Path, n: int, *, clash: bool = False) -> Path:
    """``n`` deployments, two per station (its camera moved on), like a large survey."""
    with path.open("w") as fh:
        fh.write("station,deployment,start,end,timezone,lat,lon,camera_serial\n")
        for i in range(n):
            st, k = divmod(i, 2)
            start, end = ("2024-01-01", "2024-03-01") if k == 0 else ("2024-03-01", "2024-06-01")
            fh.write(
                f"S{st:05d},S{st:05d}-{k},{start},{end},Asia/Bishkek,"
                f"{40 + st * 1e-4:.5f},{70 + st * 1e-4:.5f},C{st:05d}\n"
            )
        if clash:  # the first camera, already at S00000, also at the last station
            fh.write(f"S{n // 2 - 1:05d},late,2024-02-01,2024-02-10,Asia/Bishkek,,,C00000\n")
    return path


def test_eight_thousand_row_registry_imports(tmp_path):
    """8,000 rows went through a quadratic overlap check (> 300 s); sorted, it is quick.

    Run as the irbis command under a generous time limit (no wall-clock
    assertion: the limit only stops a run that went quadratic again).
    """
    import json
    import os
    import subprocess
    import sys

    table = _big_registry(tmp_path / "big.csv", 8000)
    proj = tmp_path / "proj"
    exe = [sys.executable, "-m", "irbis"]
    env = {**os.environ, "COLUMNS": "120"}
    subprocess.run([*exe, "init", str(proj)], check=True, capture_output=True, env=env)
    proc = subprocess.run(
        [*exe, "registry", "import", str(proj), str(table), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["stations_new"] == 4000 and out["deployments_new"] == 8000
    # The sweep still finds a single clash among the 8,000.
    _stations, deps = read_registry_csv(
        _big_registry(tmp_path / "clash.csv", 8000, clash=True), validate=False
    )
    problems = registry_problems(_stations, deps)
    assert [one_line(p) for p in problems] == [
        f"{tmp_path / 'clash.csv'}:row 8002: camera C00000 is at S03999 (late) while also at "
        f"S00000 (S00000-0) 2024-01-01 12:00..2024-03-01 12:00 ({tmp_path / 'clash.csv'}:row 2) "
        "(a camera is in one place at a time: fix the dates or the camera ID)"
    ]


def test_nul_and_out_of_range_tables_store_nothing(project, tmp_path):
    """On SQLite and PostgreSQL: refused in one line before anything is written."""
    from sqlalchemy import func, select

    from irbis.ingest.registry import import_registry
    from irbis.store.schema import Deployment, Station

    good = "K1,a,2024-01-01,2024-02-01,UTC,40,70,\n"
    for bad, start in (
        ("K2,b,2024-01-01,2024-02-01,UTC,40,70,\x00\n", "row 3: column 'clock_offset_s' contains"),
        ("K2,b\x00,2024-01-01,2024-02-01,UTC,40,70,\n", "row 3: column 'deployment' contains"),
        ("K2,b,2024-01-01,9999-12-31,UTC,40,70,\n", "row 3: end '9999-12-31' is out of range"),
        ("K2,b,2024-01-01,2024-02-01,UTC,-999,70,\n", "row 3: lat -999 is out of range"),
    ):
        table = tmp_path / "r.csv"
        table.write_text(_IRBIS_HEADER + good + bad)
        with pytest.raises(BadInputError) as exc:
            import_registry(project, table)
        assert one_line(exc.value).startswith(f"{table}:{start}")
        with project.session() as s:
            assert s.scalar(select(func.count()).select_from(Station)) == 0
            assert s.scalar(select(func.count()).select_from(Deployment)) == 0


def test_cli_registry_import_refuses_out_of_range_in_one_line(tmp_path):
    """`irbis effort` and `irbis report` overflowed on a stored 9999-12-31: it is never stored."""
    import os
    import subprocess
    import sys

    proj = tmp_path / "proj"
    table = tmp_path / "r.csv"
    table.write_text(_IRBIS_HEADER + "K1,a,2024-01-01,9999-12-31,UTC,40,70,\n")
    exe = [sys.executable, "-m", "irbis"]
    env = {**os.environ, "COLUMNS": "200"}
    subprocess.run([*exe, "init", str(proj)], check=True, capture_output=True, env=env)
    proc = subprocess.run(
        [*exe, "registry", "import", str(proj), str(table)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "end '9999-12-31' is out of range" in proc.stderr.replace("\n", " ")
    effort = subprocess.run(
        [*exe, "effort", str(proj)], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in effort.stderr and "OverflowError" not in effort.stderr
