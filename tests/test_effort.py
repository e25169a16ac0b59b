"""Camera effort with camtrapR cameraOperation (>= 2.1) semantics."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from irbis.core.errors import RegistryError
from irbis.core.types import DeploymentRecord, MalfunctionPeriod
from irbis.ingest.registry_csv import read_registry_csv
from irbis.stats.effort import camera_operation, operating_intervals

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAMTRAPS = DATA / "cameratrap" / "camtrapR" / "oracle" / "camtraps.csv"


def dep(code: str, station: str, start: datetime, end: datetime, *malf: MalfunctionPeriod,
        serial: str | None = None) -> DeploymentRecord:
    return DeploymentRecord(code=code, station=station, start=start, end=end,
                            camera_serial=serial, malfunctions=list(malf))


def test_camtraps_csv_matches_camtrapr_operation() -> None:
    if not CAMTRAPS.exists():
        pytest.skip(f"real data not found at {CAMTRAPS} (see ../shared/data/README.md)")
    _, deps = read_registry_csv(CAMTRAPS)
    op = camera_operation(deps)
    assert op.stations == ["StationA", "StationB", "StationC"]
    assert op.days[0] == date(2009, 4, 2) and op.days[-1] == date(2009, 5, 17)
    assert len(op.days) == 46 and op.values.shape == (3, 46)
    np.testing.assert_allclose(op.trap_nights(), [42.0, 43.0, 37.5])

    def col(d: date) -> int:
        return op.days.index(d)

    a, b, c = op.values
    # Setup and retrieval at noon: half days; whole days between; NaN outside.
    assert a[col(date(2009, 4, 2))] == 0.5 and a[col(date(2009, 5, 14))] == 0.5
    assert np.all(a[col(date(2009, 4, 3)) : col(date(2009, 5, 14))] == 1.0)
    assert np.all(np.isnan(a[col(date(2009, 5, 15)) :]))
    assert np.isnan(b[0]) and b[col(date(2009, 4, 3))] == 0.5 and b[col(date(2009, 5, 16))] == 0.5
    assert np.isnan(b[-1])
    # StationC: set up 4 April at noon, Problem1 12-17 May kills the rest.
    assert np.all(np.isnan(c[:2])) and c[col(date(2009, 4, 4))] == 0.5
    assert np.all(c[col(date(2009, 4, 5)) : col(date(2009, 5, 12))] == 1.0)
    assert np.all(c[col(date(2009, 5, 12)) :] == 0.0)  # set up but not working: 0, not NaN

    weeks = op.per_occasion(7)
    assert weeks.shape == (3, 7)  # 46 days: six full weeks and a 4-day rest
    np.testing.assert_allclose(np.nansum(weeks, axis=1), op.trap_nights())
    # Last block 14-17 May: A's retrieval half day; B two days and a half; C broken.
    np.testing.assert_allclose(weeks[:, -1], [0.5, 2.5, 0.0])
    np.testing.assert_allclose(weeks[:, 0], [6.5, 5.5, 4.5])
    assert np.isnan(op.per_occasion(1)[0, -1])  # A gone on 17 May: no camera, NaN
    assert op.per_occasion(7, drop_incomplete=True).shape == (3, 6)
    assert op.occasion_starts(7)[1] == date(2009, 4, 9)


def test_cameras_independent_adds_up_or_counts_once() -> None:
    d1 = dep("a", "S", datetime(2024, 3, 1, 0), datetime(2024, 3, 3, 0), serial="c1")
    d2 = dep("b", "S", datetime(2024, 3, 1, 12), datetime(2024, 3, 2, 12), serial="c2")
    both = camera_operation([d1, d2])
    np.testing.assert_allclose(both.values, [[1.5, 1.5]])
    once = camera_operation([d1, d2], cameras_independent=False)
    np.testing.assert_allclose(once.values, [[1.0, 1.0]])
    # Two half-day cameras in the same half-day are still half a day of watching.
    d3 = dep("c", "T", datetime(2024, 3, 1, 0), datetime(2024, 3, 1, 12), serial="c3")
    d4 = dep("d", "T", datetime(2024, 3, 1, 6), datetime(2024, 3, 1, 12), serial="c4")
    np.testing.assert_allclose(
        camera_operation([d3, d4], cameras_independent=False).values, [[0.5]]
    )
    np.testing.assert_allclose(camera_operation([d3, d4]).values, [[0.75]])


def test_retrieval_at_midnight_opens_no_column() -> None:
    op = camera_operation([dep("a", "S", datetime(2024, 3, 1), datetime(2024, 3, 3))])
    assert op.days == [date(2024, 3, 1), date(2024, 3, 2)]
    np.testing.assert_allclose(op.values, [[1.0, 1.0]])


def test_malfunctions_overlapping_and_outside() -> None:
    d = dep(
        "a", "S", datetime(2024, 3, 1, 12), datetime(2024, 3, 5, 12),
        MalfunctionPeriod(datetime(2024, 3, 2, 6), datetime(2024, 3, 2, 18)),
        MalfunctionPeriod(datetime(2024, 3, 2, 12), datetime(2024, 3, 3, 0)),
        MalfunctionPeriod(datetime(2024, 2, 1), datetime(2024, 3, 1, 18)),
    )
    assert operating_intervals(d) == [
        (datetime(2024, 3, 1, 18), datetime(2024, 3, 2, 6)),
        (datetime(2024, 3, 3, 0), datetime(2024, 3, 5, 12)),
    ]
    op = camera_operation([d])
    np.testing.assert_allclose(op.values, [[0.25, 0.25, 1.0, 1.0, 0.5]])


def test_station_order_range_and_day_start() -> None:
    d = dep("a", "S", datetime(2024, 3, 1, 12), datetime(2024, 3, 2, 12))
    op = camera_operation([d], stations=["R", "S"], first_day=date(2024, 2, 29),
                          last_day=date(2024, 3, 3))
    assert op.stations == ["R", "S"]
    assert np.all(np.isnan(op.row("R")))
    np.testing.assert_allclose(op.row("S"), [np.nan, 0.5, 0.5, np.nan])
    assert list(op.trap_nights()) == [0.0, 1.0]
    # Days from noon to noon: the deployment fills exactly one of them.
    noon = camera_operation([d], day_start_hour=12)
    assert noon.days == [date(2024, 3, 1)]
    np.testing.assert_allclose(noon.values, [[1.0]])


def test_errors_and_empty() -> None:
    d = dep("a", "S", datetime(2024, 3, 1), datetime(2024, 3, 2))
    with pytest.raises(RegistryError, match="not among the stations given"):
        camera_operation([d], stations=["T"])
    bad = dep("b", "S", datetime(2024, 3, 2), datetime(2024, 3, 1))
    with pytest.raises(RegistryError, match="ends"):
        camera_operation([bad])
    empty = camera_operation([], stations=["S"])
    assert empty.values.shape == (1, 0) and empty.days == []
    with pytest.raises(ValueError):
        camera_operation([d]).per_occasion(0)


def test_long_deployment_sums_to_its_length() -> None:
    start = datetime(2023, 12, 30, 7, 45)
    d = dep("a", "S", start, start + timedelta(days=100, hours=3))
    op = camera_operation([d])
    assert op.trap_nights()[0] == pytest.approx(100.125)
    assert len(op.days) == 101
