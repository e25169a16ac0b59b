"""Camera clock correction."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irbis.core.errors import BadInputError
from irbis.ingest.clock import (
    ClockShift,
    is_implausible,
    offset_from_reference,
    parse_timeshift,
    read_timeshift_table,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHIFT_TABLE = DATA / "cameratrap" / "camtrapR" / "oracle" / "timeShiftTable.csv"


def test_camtrapr_timeshift_table() -> None:
    if not SHIFT_TABLE.exists():
        pytest.skip(f"real data not found at {SHIFT_TABLE} (see ../shared/data/README.md)")
    rows = read_timeshift_table(SHIFT_TABLE)
    assert [(s, c) for s, c, _ in rows] == [("StationA", None), ("StationB", None)]
    shifts = {s: sh for s, _, sh in rows}
    assert shifts["StationA"] == ClockShift(years=1, sign=-1)
    assert shifts["StationA"].apply(datetime(2009, 4, 21, 0, 40)) == datetime(2008, 4, 21, 0, 40)
    assert shifts["StationB"] == ClockShift(hours=12)
    assert shifts["StationB"].apply(datetime(2009, 4, 21, 0, 40)) == datetime(2009, 4, 21, 12, 40)


def test_calendar_arithmetic() -> None:
    year_back = parse_timeshift("1:0:0 0:0:0", "-")
    assert year_back.apply(datetime(2024, 2, 29, 23, 0)) == datetime(2023, 2, 28, 23, 0)
    assert parse_timeshift("1:0:0 0:0:0", "+").apply(datetime(2024, 2, 29)) == datetime(2025, 2, 28)
    month = parse_timeshift("0:1:0 0:0:0", "-")
    assert month.apply(datetime(2024, 3, 31, 6)) == datetime(2024, 2, 29, 6)
    assert month.apply(datetime(2024, 1, 15)) == datetime(2023, 12, 15)
    # Calendar part first, then exact part: 31 Jan + 1 month + 1 day = 1 March.
    mixed = parse_timeshift("0:1:1 0:0:0", "+")
    assert mixed.apply(datetime(2023, 1, 31)) == datetime(2023, 3, 1)
    fine = parse_timeshift("0:0:2 3:4:5.5", "+")
    assert fine.apply(datetime(2024, 1, 1)) == datetime(2024, 1, 3, 3, 4, 5, 500000)


def test_seconds_conversions_and_text() -> None:
    s = ClockShift.from_seconds(-93784.25)
    assert (s.days, s.hours, s.minutes, s.seconds, s.sign) == (1, 2, 3, 4.25, -1)
    assert s.to_seconds_approx() == -93784.25
    assert str(s) == "-0:0:1 2:3:4.25"
    assert ClockShift(years=1).to_seconds_approx() == pytest.approx(365.2425 * 86400)
    assert ClockShift(months=12).to_seconds_approx() == pytest.approx(365.2425 * 86400)
    for shift in (s, ClockShift(years=1, sign=-1), ClockShift(hours=12), ClockShift()):
        text = str(shift)
        assert parse_timeshift(text[1:], text[0]) == shift


@given(
    st.floats(min_value=-5e8, max_value=5e8, allow_nan=False),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2080, 1, 1)),
)
def test_from_seconds_is_exact(seconds: float, dt: datetime) -> None:
    shift = ClockShift.from_seconds(seconds)
    expected = dt + timedelta(seconds=seconds)
    assert abs((shift.apply(dt) - expected).total_seconds()) < 1e-5
    assert shift.to_seconds_approx() == pytest.approx(seconds, abs=1e-6)
    back = parse_timeshift(str(shift)[1:], str(shift)[0])
    assert abs(back.to_seconds_approx() - shift.to_seconds_approx()) <= 1e-6


@pytest.mark.parametrize(
    ("text", "sign", "match"),
    [
        ("1:0:0", "+", "cannot read time shift"),
        ("1:0:0 0:0", "+", "cannot read time shift"),
        ("a:0:0 0:0:0", "-", "cannot read time shift"),
        ("0:0:0 1:0:0", "plus", "sign 'plus'"),
        ("0:0:0 1:0:0", "", "sign ''"),
    ],
)
def test_bad_timeshift(text: str, sign: str, match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        parse_timeshift(text, sign)


def test_negative_components_rejected() -> None:
    with pytest.raises(ValueError):
        ClockShift(hours=-1)
    with pytest.raises(ValueError):
        ClockShift(sign=0)  # type: ignore[arg-type]


def test_timeshift_table_errors(tmp_path: Path) -> None:
    p = tmp_path / "shift.csv"
    p.write_text('"Station","camera","timeshift","sign"\n'
                 '"S1","CAM7","0:0:0 1:0:0","+"\n'
                 '"S2",NA,"0:0:0 1:0","+"\n')
    with pytest.raises(BadInputError) as e:
        read_timeshift_table(p)
    assert str(e.value).startswith(f"{p}:row 3: cannot read time shift '0:0:0 1:0'")
    p.write_text('"Station","shift","sign"\n"S1","0:0:0 1:0:0","+"\n')
    with pytest.raises(BadInputError, match=r"missing column 'timeshift'"):
        read_timeshift_table(p)
    p.write_text('"Station","timeshift","sign"\n"S1","0:0:0 1:0:0","+"\n')
    assert read_timeshift_table(p) == [("S1", None, ClockShift(hours=1))]
    with pytest.raises(BadInputError, match="file not found"):
        read_timeshift_table(tmp_path / "missing.csv")


def test_offset_from_reference() -> None:
    # Camera showed 12:05 when the GPS said 12:00: it runs 5 minutes fast.
    assert offset_from_reference(datetime(2024, 3, 1, 12, 5), datetime(2024, 3, 1, 12)) == -300
    assert offset_from_reference(datetime(2000, 1, 1), datetime(2024, 3, 1)) > 7e8
    with pytest.raises(ValueError):
        offset_from_reference(datetime(2024, 1, 1), datetime.now().astimezone())


def test_is_implausible() -> None:
    latest = datetime(2030, 1, 1)
    for reset in (datetime(2000, 1, 1), datetime(1970, 1, 1), datetime(2004, 12, 31)):
        assert is_implausible(reset, latest=latest)
    assert is_implausible(datetime(2099, 1, 1))
    assert not is_implausible(datetime(2009, 4, 21, 0, 40))
    assert not is_implausible(datetime.now())
    assert is_implausible(datetime(2012, 6, 1), earliest=datetime(2015, 1, 1))
