"""Camera-trap effort: which station was watching on which day, and how much.

Follows camtrapR's ``cameraOperation`` (version 2.1 and later): a matrix of
stations (rows) by calendar days (columns) whose values are the fraction of
the day the station's cameras were operating. ``NaN`` means no camera was set
up that day; ``0`` means one was set up but not recording (malfunction). A
camera set up at noon contributes 0.5 on its setup day.

Times are the deployments' naive local times; no zone arithmetic happens here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np

from irbis.core.errors import RegistryError
from irbis.core.types import DeploymentRecord

__all__ = ["CameraOperation", "camera_operation", "operating_intervals"]

_DAY_S = 86400.0

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class CameraOperation:
    """Daily operation matrix of camera-trap stations.

    Attributes
    ----------
    stations:
        Row labels.
    days:
        Column labels: the calendar day each column starts on (a day begins
        at ``day_start_hour``).
    values:
        ``float64`` array of shape ``(len(stations), len(days))``: operating
        camera-days per station and day, ``NaN`` where no camera was set up.
    day_start_hour:
        Hour at which each day (column) begins.
    """

    stations: list[str]
    days: list[date]
    values: np.ndarray
    day_start_hour: int = 0

    def trap_nights(self) -> np.ndarray:
        """Total operating camera-days per station.

        Returns
        -------
        numpy.ndarray
            Shape ``(len(stations),)``, in the order of :attr:`stations`;
            ``NaN`` days count as 0.
        """
        return np.nansum(self.values, axis=1)

    def per_occasion(self, occasion_days: int, *, drop_incomplete: bool = False) -> np.ndarray:
        """Sum effort over consecutive blocks of ``occasion_days`` days.

        Blocks start at the first day of the matrix, as camtrapR's
        ``detectionHistory`` occasions do.

        Parameters
        ----------
        occasion_days:
            Days per occasion (at least 1).
        drop_incomplete:
            Leave out a last block shorter than ``occasion_days``.

        Returns
        -------
        numpy.ndarray
            Shape ``(len(stations), n_occasions)``: operating camera-days per
            station and occasion; ``NaN`` where no camera was set up on any
            day of the occasion.
        """
        if occasion_days < 1:
            raise ValueError(f"occasion_days must be >= 1, not {occasion_days}")
        n_st, n_days = self.values.shape
        n_occ = n_days // occasion_days if drop_incomplete else -(-n_days // occasion_days)
        out = np.full((n_st, n_occ), np.nan)
        for k in range(n_occ):
            block = self.values[:, k * occasion_days : (k + 1) * occasion_days]
            set_up = ~np.all(np.isnan(block), axis=1)
            out[set_up, k] = np.nansum(block[set_up], axis=1)
        return out

    def occasion_starts(self, occasion_days: int) -> list[date]:
        """First day of each occasion of :meth:`per_occasion` (all blocks)."""
        if occasion_days < 1:
            raise ValueError(f"occasion_days must be >= 1, not {occasion_days}")
        return self.days[::occasion_days]

    def row(self, station: str) -> np.ndarray:
        """Daily values of one station."""
        return self.values[self.stations.index(station)]


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of half-open intervals, sorted, with touching ones joined."""
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def operating_intervals(dep: DeploymentRecord) -> list[Interval]:
    """Times a deployment was recording: start to end minus malfunctions.

    Parameters
    ----------
    dep:
        The deployment; malfunctions outside its period are ignored.

    Returns
    -------
    list of (start, end)
        Sorted, disjoint, half-open intervals of naive local time.
    """
    gaps = _merge((max(m.start, dep.start), min(m.end, dep.end)) for m in dep.malfunctions)
    out: list[Interval] = []
    cursor = dep.start
    for a, b in gaps:
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < dep.end:
        out.append((cursor, dep.end))
    return out


def camera_operation(
    deployments: Iterable[DeploymentRecord],
    *,
    stations: Sequence[str] | None = None,
    cameras_independent: bool = True,
    first_day: date | None = None,
    last_day: date | None = None,
    day_start_hour: int = 0,
) -> CameraOperation:
    """Build the daily operation matrix of camera-trap stations.

    Parameters
    ----------
    deployments:
        Deployments with naive local ``start``/``end`` and malfunctions.
    stations:
        Row order; stations listed without deployments get an all-``NaN``
        row. Default: stations in order of first appearance.
    cameras_independent:
        If True (camtrapR's ``camerasIndependent``), cameras operating at the
        same station add up: two cameras all day give 2. If False, a station
        counts once however many cameras watch: the value is the fraction of
        the day at least one camera was operating, so at most 1.
    first_day, last_day:
        Column range; default from the first setup to the last retrieval.
        Days outside all deployments are ``NaN``.
    day_start_hour:
        Hour at which a day begins (camtrapR's ``occasionStartTime``); a day
        labelled D runs from D at this hour to D+1 at this hour.

    Returns
    -------
    CameraOperation
        The matrix and its labels.

    Raises
    ------
    RegistryError
        If a deployment's station is not among ``stations``, or a deployment
        ends before it starts (one ending when it starts counts zero).
    """
    if not 0 <= day_start_hour < 24:
        raise ValueError(f"day_start_hour must be within 0..23, not {day_start_hour}")
    deps = list(deployments)
    shift = timedelta(hours=day_start_hour)

    for d in deps:
        # end == start: a deployment that never recorded (a Camtrap DP package
        # writes one so), zero effort; ending before it starts is an error.
        if d.end < d.start:
            raise RegistryError(
                d.source_row or d.code,
                f"deployment {d.code} ends ({d.end}) before it starts ({d.start})",
                "fix its setup or retrieval time",
            )

    names = list(dict.fromkeys(d.station for d in deps)) if stations is None else list(stations)
    row_of = {n: i for i, n in enumerate(names)}
    for d in deps:
        if d.station not in row_of:
            raise RegistryError(
                d.source_row or d.code,
                f"deployment {d.code} is at station {d.station!r}, not among the stations given",
                "add the station or leave the deployment out",
            )

    def day_of(t: datetime) -> date:
        return (t - shift).date()

    if deps:
        d0 = min(day_of(d.start) for d in deps)
        # The retrieval instant itself records nothing, so a retrieval exactly
        # at the start of a day must not open a column for that day.
        d1 = max(day_of(d.end - timedelta(microseconds=1)) for d in deps)
    else:
        d0 = d1 = None
    d0 = first_day or d0
    d1 = last_day or d1
    if d0 is None or d1 is None or d1 < d0:
        return CameraOperation(names, [], np.full((len(names), 0), np.nan), day_start_hour)
    n_days = (d1 - d0).days + 1
    days = [d0 + timedelta(days=k) for k in range(n_days)]

    def spread(row: np.ndarray, a: datetime, b: datetime) -> None:
        """Add the seconds of [a, b) to the day bins they fall in."""
        cursor = a
        while cursor < b:
            day = day_of(cursor)
            day_end = datetime.combine(day + timedelta(days=1), time()) + shift
            stop = min(b, day_end)
            k = (day - d0).days
            if 0 <= k < n_days:
                row[k] += (stop - cursor).total_seconds()
            cursor = stop

    set_up = np.zeros((len(names), n_days))
    operating = np.zeros((len(names), n_days))
    by_station: dict[str, list[DeploymentRecord]] = {}
    for d in deps:
        by_station.setdefault(d.station, []).append(d)

    for name, st_deps in by_station.items():
        i = row_of[name]
        for d in st_deps:
            spread(set_up[i], d.start, d.end)
        if cameras_independent:
            for d in st_deps:
                for a, b in operating_intervals(d):
                    spread(operating[i], a, b)
        else:
            union = _merge(iv for d in st_deps for iv in operating_intervals(d))
            for a, b in union:
                spread(operating[i], a, b)

    values = operating / _DAY_S
    values[set_up <= 0] = np.nan
    return CameraOperation(names, days, values, day_start_hour)
