"""Camera clock correction.

Camera-trap clocks drift, lose their setting when batteries die, or were set
to the wrong year, month or time zone by a tired ranger. This module holds the
arithmetic to put them right:

- :class:`ClockShift`, a calendar-aware shift in camtrapR's
  ``timeShiftImages`` notation (``"Y:m:d H:M:S"`` plus a sign);
- :func:`read_timeshift_table` for camtrapR's time-shift table;
- :func:`offset_from_reference` for the usual field practice of photographing
  a GPS or phone clock with the camera at setup;
- :func:`is_implausible` to spot timestamps of cameras that reset their clock.

Pure: standard library only.
"""

from __future__ import annotations

import calendar
import csv
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from irbis.core.errors import BadInputError

__all__ = [
    "ClockShift",
    "is_implausible",
    "offset_from_reference",
    "parse_timeshift",
    "read_timeshift_table",
]

# "Y:m:d H:M:S" as camtrapR writes it; seconds may carry a fraction.
_SHIFT_RE = re.compile(r"^\s*(\d+):(\d+):(\d+)\s+(\d+):(\d+):(\d+(?:\.\d+)?)\s*$")

# Mean Gregorian year and month, for the approximate conversion only.
_YEAR_S = 365.2425 * 86400.0
_MONTH_S = _YEAR_S / 12.0

_NA = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"}


def _add_months(dt: datetime, months: int) -> datetime:
    """Move ``dt`` by whole calendar months, keeping the day where it exists.

    A day that the target month lacks (31 March minus one month, 29 February
    minus one year) becomes that month's last day: the clock error is in whole
    months, so landing inside the right month matters more than the day.
    """
    index = dt.year * 12 + (dt.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    if not 1 <= year <= 9999:
        raise OverflowError(f"shifting {dt.isoformat()} by {months} months leaves the calendar")
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class ClockShift:
    """A correction to add to (``sign=1``) or subtract from (``sign=-1``) camera times.

    Years and months are calendar units (applied first, clamping the day to
    the month's length); days, hours, minutes and seconds are exact durations.

    Parameters
    ----------
    years, months, days, hours, minutes:
        Non-negative whole numbers.
    seconds:
        Non-negative seconds, fractions allowed.
    sign:
        ``1`` to move times later, ``-1`` to move them earlier.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0.0
    sign: Literal[1, -1] = 1

    def __post_init__(self) -> None:
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, not {self.sign!r}")
        parts = (self.years, self.months, self.days, self.hours, self.minutes, self.seconds)
        if any(p < 0 for p in parts):
            # The direction lives in ``sign`` only, so that "1 year minus 3 days"
            # cannot be written two ways that apply differently.
            raise ValueError("ClockShift components must be non-negative; use sign for direction")

    @classmethod
    def from_seconds(cls, seconds: float) -> ClockShift:
        """Build an exact shift of ``seconds`` (negative moves times earlier).

        Parameters
        ----------
        seconds:
            Seconds to add to camera times.

        Returns
        -------
        ClockShift
            A shift with no year or month part, split into days, hours,
            minutes and seconds.
        """
        sign: Literal[1, -1] = -1 if seconds < 0 else 1
        rest = abs(float(seconds))
        days, rest = divmod(rest, 86400.0)
        hours, rest = divmod(rest, 3600.0)
        minutes, rest = divmod(rest, 60.0)
        return cls(days=int(days), hours=int(hours), minutes=int(minutes), seconds=rest, sign=sign)

    def _exact_part(self) -> timedelta:
        return timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )

    def apply(self, dt: datetime) -> datetime:
        """Return ``dt`` corrected by this shift.

        Parameters
        ----------
        dt:
            A camera timestamp (naive or aware; the zone is left untouched).

        Returns
        -------
        datetime
            The corrected time. Feb 29 shifted by a whole year becomes Feb 28.
        """
        months = self.sign * (self.years * 12 + self.months)
        shifted = _add_months(dt, months) if months else dt
        return shifted + self.sign * self._exact_part()

    def to_seconds_approx(self) -> float:
        """Length of the shift in seconds, signed.

        Returns
        -------
        float
            Exact for days and shorter units; years and months count as mean
            Gregorian lengths (365.2425 days, a twelfth of that), so use
            :meth:`apply` for real timestamps.
        """
        total = self.years * _YEAR_S + self.months * _MONTH_S + self._exact_part().total_seconds()
        return self.sign * total

    def __str__(self) -> str:
        # Plain decimals only: the text must parse back with parse_timeshift.
        sec = f"{self.seconds:.6f}".rstrip("0").rstrip(".")
        sign = "+" if self.sign == 1 else "-"
        return f"{sign}{self.years}:{self.months}:{self.days} {self.hours}:{self.minutes}:{sec}"


def parse_timeshift(text: str, sign: str, *, where: str = "time shift") -> ClockShift:
    """Parse camtrapR's ``timeShiftImages`` notation.

    Parameters
    ----------
    text:
        ``"Y:m:d H:M:S"``, e.g. ``"1:0:0 0:0:0"`` (one year) or
        ``"0:0:0 12:0:0"`` (twelve hours).
    sign:
        ``"+"`` to move times later, ``"-"`` to move them earlier.
    where:
        File and row (or other place) to name in error messages.

    Returns
    -------
    ClockShift
        The parsed shift.

    Raises
    ------
    BadInputError
        If the text or sign is not in that notation.
    """
    m = _SHIFT_RE.match(text or "")
    if m is None:
        raise BadInputError(
            where,
            f"cannot read time shift {text!r}",
            'write it as "Y:m:d H:M:S", e.g. "0:0:0 12:0:0" for 12 hours',
        )
    s = (sign or "").strip()
    if s not in ("+", "-"):
        raise BadInputError(
            where,
            f"time-shift sign {sign!r} is neither '+' nor '-'",
            "use '+' to move times later, '-' to move them earlier",
        )
    y, mo, d, h, mi = (int(g) for g in m.groups()[:5])
    return ClockShift(
        years=y,
        months=mo,
        days=d,
        hours=h,
        minutes=mi,
        seconds=float(m.group(6)),
        sign=1 if s == "+" else -1,
    )


def read_timeshift_table(
    path: str | Path,
    *,
    station_col: str = "Station",
    camera_col: str = "camera",
    shift_col: str = "timeshift",
    sign_col: str = "sign",
) -> list[tuple[str, str | None, ClockShift]]:
    """Read camtrapR's time-shift table.

    Parameters
    ----------
    path:
        CSV with a station, camera, shift and sign column (camtrapR's names by
        default). The camera column may be absent or ``NA``: the shift then
        applies to every camera at the station.
    station_col, camera_col, shift_col, sign_col:
        Column names.

    Returns
    -------
    list of (station, camera or None, ClockShift)
        One entry per row, in file order.

    Raises
    ------
    BadInputError
        For a missing file or column, or a row whose shift cannot be read;
        messages name ``file:row N`` (the header is row 1).
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            for col in (station_col, shift_col, sign_col):
                if col not in header:
                    raise BadInputError(
                        str(p),
                        f"missing column {col!r}",
                        f"the header has {', '.join(header) or 'nothing'}",
                    )
            has_camera = camera_col in header
            out: list[tuple[str, str | None, ClockShift]] = []
            for i, row in enumerate(reader):
                where = f"{p}:row {i + 2}"
                station = (row.get(station_col) or "").strip()
                if not station:
                    raise BadInputError(where, f"empty {station_col}", "name the station")
                camera: str | None = None
                if has_camera:
                    raw = (row.get(camera_col) or "").strip()
                    camera = None if raw in _NA else raw
                shift = parse_timeshift(
                    row.get(shift_col) or "", row.get(sign_col) or "", where=where
                )
                out.append((station, camera, shift))
            return out
    except FileNotFoundError:
        raise BadInputError(str(p), "file not found", "check the path") from None


def offset_from_reference(camera_showed: datetime, true_time: datetime) -> float:
    """Clock offset from a photo of a reference clock.

    Rangers photograph a GPS or phone clock with the camera at setup: the
    photo's timestamp is what the camera showed when the reference read the
    true time.

    Parameters
    ----------
    camera_showed:
        The camera's timestamp of the reference photo.
    true_time:
        The time the reference clock showed in that photo (same zone).

    Returns
    -------
    float
        Seconds to add to camera times to get true times (a camera running
        five minutes fast gives ``-300``), the convention of
        ``DeploymentRecord.clock_offset_s``.
    """
    if (camera_showed.tzinfo is None) != (true_time.tzinfo is None):
        raise ValueError("compare two naive or two aware datetimes, not one of each")
    return (true_time - camera_showed).total_seconds()


def is_implausible(
    dt: datetime,
    *,
    earliest: datetime = datetime(2005, 1, 1),
    latest: datetime | None = None,
) -> bool:
    """Tell whether a camera timestamp cannot be real.

    Cameras whose battery died restart at their factory epoch (2000-01-01,
    1970-01-01, 2010-01-01 on some models), and badly set clocks land decades
    ahead.

    Parameters
    ----------
    dt:
        The timestamp, naive (camera clocks have no zone).
    earliest:
        Anything before this is a reset clock. The default suits current
        surveys; raise it to the survey's start to also catch later factory
        epochs.
    latest:
        Anything after this is in the future; default: now plus two days, to
        allow for zone differences between the camera and this computer.

    Returns
    -------
    bool
        True when ``dt`` is before ``earliest`` or after ``latest``.
    """
    if latest is None:
        latest = datetime.now() + timedelta(days=2)
    naive = dt.replace(tzinfo=None)
    return naive < earliest or naive > latest
