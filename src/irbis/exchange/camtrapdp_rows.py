"""Cell formatting shared by the Camtrap DP export and import.

Camtrap DP writes times as ISO 8601 with a UTC offset (``Z`` for UTC),
numbers in their shortest exact decimal form and booleans as ``true`` /
``false``. The same rules read back give the same values, which is what makes
an export -> import -> export round trip identical.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from irbis.core.errors import BadInputError

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")

#: Names a folder or tag may give people; such observations are of type ``human``.
HUMAN_NAMES = frozenset({"homo sapiens", "human", "humans", "person", "people"})

#: ``progress(step, done, total)``: what is being done and how far (``None``: total unknown).
Progress = Callable[[str, int, int | None], None]


def zone(name: str | None) -> tzinfo:
    """A deployment's time zone: ``UTC``, a fixed offset ``+05:00`` or an IANA name."""
    text = (name or "UTC").strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET_RE.match(text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadInputError(
            f"time zone {name!r}", "unknown time zone", "use an IANA name or +HH:MM"
        ) from exc


def offset_name(minutes: int) -> str:
    """``+02:00`` for 120 minutes."""
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"


def iso(dt: datetime | None) -> str:
    """An aware time as Camtrap DP writes it: seconds, and ``Z`` for UTC."""
    if dt is None:
        return ""
    if dt.tzinfo is None:
        raise ValueError("iso() needs an aware datetime")
    if dt.utcoffset() == timedelta(0):
        return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.replace(microsecond=0).isoformat()


def iso_utc(naive_utc: datetime | None) -> str:
    """A naive UTC time as ``...Z``."""
    return "" if naive_utc is None else iso(naive_utc.replace(tzinfo=UTC))


def iso_local(naive_local: datetime | None, offset_min: int | None) -> str:
    """A naive local time with its UTC offset in minutes."""
    if naive_local is None:
        return ""
    return iso(naive_local.replace(tzinfo=timezone(timedelta(minutes=offset_min or 0))))


def parse_time(text: str, where: str, column: str) -> datetime:
    """An ISO 8601 time with an offset (``Z`` allowed) as an aware datetime."""
    value = text.strip()
    try:
        dt = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError as exc:
        raise BadInputError(
            where, f"{column} {text!r} is not an ISO 8601 time", "write 2020-05-30T04:57:37+02:00"
        ) from exc
    if dt.tzinfo is None:
        raise BadInputError(
            where, f"{column} {text!r} has no UTC offset", "Camtrap DP times carry one, e.g. +02:00"
        )
    return dt


def number(value: float | int | None) -> str:
    """Shortest exact decimal text of a number; empty for None or NaN."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return ""
    return repr(value)


def boolean(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


def slug(text: str) -> str:
    """A package ``name``: lower case letters, digits, ``.``, ``_`` and ``-``."""
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-")
    return s or "irbis-export"
