"""From a camera's clock reading to a trusted local and UTC time.

The camera clock is corrected in two steps, both kept on the deployment so they
can be changed later and re-applied to the untouched raw reading:

1. a calendar shift (camtrapR's ``timeShiftImages``: "-1:0:0 0:0:0" is minus one
   year), for clocks set to the wrong date;
2. a fixed offset in seconds, for drift measured against a reference photo.

The corrected time is local to the deployment's time zone; UTC follows from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from irbis.core.errors import RegistryError
from irbis.ingest.clock import ClockShift, parse_timeshift

FLAG_MISSING = "no_timestamp"
FLAG_IMPLAUSIBLE = "implausible_date"
FLAG_OUTSIDE = "outside_deployment"
FLAG_NO_DEPLOYMENT = "no_deployment"


@lru_cache(maxsize=256)
def parse_timezone(name: str) -> tzinfo:
    """An IANA zone name (``Asia/Barnaul``), ``UTC`` or a fixed offset ``+07:00``."""
    text = (name or "UTC").strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    if text[0] in "+-" and len(text) >= 3:
        sign = 1 if text[0] == "+" else -1
        body = text[1:].replace(":", "")
        try:
            hours, minutes = int(body[:2]), int(body[2:4] or 0)
        except ValueError as exc:
            raise RegistryError(name, "not a time zone", "use an IANA name or +HH:MM") from exc
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RegistryError(
            name, "unknown time zone", "use an IANA name such as Asia/Barnaul, or +07:00"
        ) from exc


def to_utc(local: datetime, tz_name: str) -> tuple[datetime, int]:
    """Naive local time in ``tz_name`` -> (naive UTC, offset in minutes)."""
    aware = local.replace(tzinfo=parse_timezone(tz_name))
    offset = aware.utcoffset() or timedelta(0)
    return (local - offset), int(offset.total_seconds() // 60)


def shift_from_text(text: str | None) -> ClockShift | None:
    """Read a stored shift such as ``-1:0:0 0:0:0`` (sign first)."""
    if not text:
        return None
    text = text.strip()
    sign = "+"
    if text[0] in "+-":
        sign, text = text[0], text[1:].strip()
    return parse_timeshift(text, sign)


@dataclass(frozen=True, slots=True)
class Clock:
    """What is needed to correct one deployment's camera clock."""

    timezone: str
    offset_s: float = 0.0
    shift: str | None = None
    start_local: datetime | None = None
    end_local: datetime | None = None
    earliest: datetime = datetime(2005, 1, 1)

    def correct(
        self, raw: datetime | None
    ) -> tuple[datetime | None, datetime | None, int | None, str]:
        """Return ``(local, utc, utc_offset_min, flag)`` for a raw camera reading.

        ``flag`` is ``""`` for a trusted time, otherwise the reason it is not.
        """
        if raw is None:
            return None, None, None, FLAG_MISSING
        local = raw
        shift = shift_from_text(self.shift)
        if shift is not None:
            local = shift.apply(local)
        if self.offset_s:
            local = local + timedelta(seconds=self.offset_s)
        utc, offset_min = to_utc(local, self.timezone)
        if local < self.earliest or local > datetime.now() + timedelta(days=2):
            return local, utc, offset_min, FLAG_IMPLAUSIBLE
        if (
            self.start_local is not None
            and self.end_local is not None
            and not (self.start_local <= local <= self.end_local)
        ):
            return local, utc, offset_min, FLAG_OUTSIDE
        return local, utc, offset_min, ""
