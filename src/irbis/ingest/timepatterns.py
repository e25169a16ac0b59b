"""Read a capture time out of text: a file name, or the info bar of a frame.

Patterns are written the way researchers already write them for camtrapR and
``strftime``: ``%Y-%m-%d %H-%M-%S``. The fields are

======  ==========================================
``%Y``  year, four digits
``%y``  year, two digits (20yy)
``%m``  month, 1-12
``%d``  day of the month
``%H``  hour, 0-23
``%I``  hour, 1-12 (needs ``%p``)
``%p``  AM or PM
``%M``  minute
``%S``  second (optional: 0 when the pattern has none)
``%%``  a literal ``%``
======  ==========================================

Between fields, a run of separators (space, ``-``, ``_``, ``.``, ``:``, ``/``,
``,``) in the pattern matches any run of one to three separators in the text,
so ``%Y-%m-%d %H-%M-%S`` reads ``2012-7-22__1-53-20``, ``2010 01 22 13 22 07``
and ``2012-07-22_01.53.20`` alike; renaming tools and OCR disagree about
separators far more often than about field order. Fields written next to each
other with no separator (``%Y%m%d``) take exactly two digits (four for
``%Y``); a field next to a separator takes one or two, because renamers drop
leading zeros (the Tajik survey's ``2012-7-22__1-53-20``). Other literal text
must match exactly. A pattern is searched anywhere in the text (station names,
prefixes and frame counters around it do not matter) but never inside a longer
run of digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from irbis.core.errors import BadInputError

__all__ = [
    "DEFAULT_FILENAME_PATTERNS",
    "DEFAULT_STAMP_PATTERNS",
    "TimePattern",
    "compile_pattern",
    "compile_patterns",
    "first_time",
]

# Built-in file-name patterns, tried in this order. Camera firmware names its
# files by counter (Reconyx RCNX0001.JPG, Bushnell IMAG0001.JPG / SUNP0001.JPG,
# Browning IMG_0001.JPG, Cuddeback IMG0001.JPG): those names carry no time.
# Times in names come from the renaming step of the survey's workflow:
DEFAULT_FILENAME_PATTERNS: tuple[str, ...] = (
    # camtrapR imageRename (Station__Camera__2012-07-22__01-53-20(1).JPG), the
    # Tajik survey's renamer (same, leading zeros dropped), Sanderson's
    # Renamer ("Arroyo Seco 2010 01 22 13 22 07.jpg"), MapView/Timelapse-style
    # "2012-07-22 01-53-20" exports.
    "%Y-%m-%d %H-%M-%S",
    # Phones and cellular trail cameras: IMG_20230105_142233.JPG,
    # VID_20230105_142233.mp4, 20251112_100312.mp4.
    "%Y%m%d %H%M%S",
    # One 14-digit run, as in the Camtrap DP example card
    # (20210531082538-RCNX0031.JPG) and cameras that append date+time to an id.
    "%Y%m%d%H%M%S",
)

# Built-in info-bar patterns, tried in this order: 12-hour forms first, so a
# stamp with AM/PM is never read as a 24-hour time; year-first before
# month-first. A day-first stamp (23.08.2012) needs its own pattern
# (``%d-%m-%Y %H:%M:%S``): with the year last, 08-09 cannot be told apart.
DEFAULT_STAMP_PATTERNS: tuple[str, ...] = (
    "%Y-%m-%d %I:%M:%S %p",  # Reconyx: 2012-08-23 9:26:15 AM
    "%Y-%m-%d %H:%M:%S",  # Reconyx/others set to 24 h: 2021-04-11 20:43:09
    "%m-%d-%Y %I:%M:%S %p",  # Bushnell, Browning, Stealth Cam, US style
    "%m-%d-%Y %H:%M:%S",
    "%m-%d-%Y %I:%M %p",  # stamps without seconds
    "%m-%d-%Y %H:%M",
)

_FIELDS = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{1,2}",
    "d": r"\d{1,2}",
    "H": r"\d{1,2}",
    "I": r"\d{1,2}",
    "M": r"\d{1,2}",
    "S": r"\d{1,2}",
}
_TIGHT = {"Y": r"\d{4}", "y": r"\d{2}"}  # two digits for the others
_SEPARATORS = frozenset(" -_.:/,")
_SEP_RE = r"[\s\-_.:/,]{1,3}"
# What a stamp's AM/PM looks like, misread or not ("PM", "P.M.", "PN", "AH").
_AMPM_RE = r"(?P<p>[AaPp])\.?\s?[MmNnHh]\.?"
_HINT = "fields are %Y %y %m %d %H %I %p %M %S; e.g. %Y-%m-%d %H-%M-%S"


@dataclass(frozen=True, slots=True)
class TimePattern:
    """One compiled pattern.

    Attributes
    ----------
    text:
        The pattern as written, e.g. ``"%Y-%m-%d %H-%M-%S"``.
    regex:
        The compiled regular expression with one named group per field.
    """

    text: str
    regex: re.Pattern[str]

    def search(self, text: str) -> datetime | None:
        """The first valid time this pattern finds in ``text``.

        Parameters
        ----------
        text:
            A file name (without folders) or the text read from an info bar.

        Returns
        -------
        The naive wall-clock time, or ``None`` when nothing matches or every
        match is an impossible date (month 13, hour 25, 31 February...).
        """
        for m in self.regex.finditer(text):
            taken = _to_datetime(m)
            if taken is not None:
                return taken
        return None


def _to_datetime(m: re.Match[str]) -> datetime | None:
    """Turn a match into a datetime, or ``None`` when the values are impossible."""
    g = m.groupdict()
    year = int(g["Y"]) if g.get("Y") else 2000 + int(g["y"])
    if g.get("I") is not None:
        hour = int(g["I"])
        if not 1 <= hour <= 12:
            return None
        pm = g["p"].upper() == "P"
        hour = hour % 12 + (12 if pm else 0)
    else:
        hour = int(g["H"])
    second = int(g["S"]) if g.get("S") else 0
    try:
        return datetime(year, int(g["m"]), int(g["d"]), hour, int(g["M"]), second)
    except ValueError:
        return None


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """Split a pattern into ``("field", letter)``, ``("sep", run)`` and ``("lit", text)``."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            if i + 1 >= len(pattern):
                raise BadInputError(f"time pattern {pattern!r}", "ends with a lone %", _HINT)
            code = pattern[i + 1]
            if code == "%":
                out.append(("lit", "%"))
            elif code in _FIELDS or code == "p":
                out.append(("field", code))
            else:
                raise BadInputError(f"time pattern {pattern!r}", f"unknown field %{code}", _HINT)
            i += 2
        elif ch in _SEPARATORS:
            j = i
            while j < len(pattern) and pattern[j] in _SEPARATORS:
                j += 1
            out.append(("sep", pattern[i:j]))
            i = j
        else:
            out.append(("lit", ch))
            i += 1
    return out


def compile_pattern(pattern: str, *, stamp: bool = False) -> TimePattern:
    """Check and compile one pattern.

    Parameters
    ----------
    pattern:
        The pattern, e.g. ``"%Y%m%d_%H%M%S"``.
    stamp:
        Compile for OCR text of an info bar: letters around the time are
        matched case-insensitively, and a 24-hour pattern refuses a time
        followed by AM/PM (so a 12-hour stamp whose AM/PM is garbled is not
        read 12 hours off).

    Returns
    -------
    The compiled :class:`TimePattern`.

    Raises
    ------
    BadInputError
        A one-line error naming the pattern: an unknown field, a field given
        twice, no year/month/day/hour/minute, %I without %p or the reverse.
    """
    where = f"time pattern {pattern!r}"
    if not isinstance(pattern, str) or not pattern.strip():
        raise BadInputError(where, "is empty", _HINT)
    toks = _tokens(pattern)
    fields = [v for k, v in toks if k == "field"]
    dup = sorted({f for f in fields if fields.count(f) > 1})
    if dup:
        raise BadInputError(where, f"field %{dup[0]} given twice", _HINT)
    have = set(fields)
    missing = [
        name
        for name, options in (
            ("year (%Y or %y)", {"Y", "y"}),
            ("month (%m)", {"m"}),
            ("day (%d)", {"d"}),
            ("hour (%H or %I)", {"H", "I"}),
            ("minutes (%M)", {"M"}),
        )
        if not have & options
    ]
    if missing:
        raise BadInputError(where, f"has no {missing[0]}", _HINT)
    if {"Y", "y"} <= have or {"H", "I"} <= have:
        raise BadInputError(where, "gives the year or the hour twice", _HINT)
    if ("I" in have) != ("p" in have):
        raise BadInputError(where, "needs %I and %p together (12-hour clock)", _HINT)

    parts: list[str] = []
    for idx, (kind, value) in enumerate(toks):
        if kind == "sep":
            parts.append(_SEP_RE)
        elif kind == "lit":
            parts.append(re.escape(value))
        elif value == "p":
            parts.append(_AMPM_RE)
        else:
            # A field touching another digit field has a fixed width: that is
            # the only way to split "20120722".
            near = [toks[j] for j in (idx - 1, idx + 1) if 0 <= j < len(toks)]
            tight = any(k == "field" and v != "p" for k, v in near)
            body = _TIGHT.get(value, r"\d{2}") if tight else _FIELDS[value]
            parts.append(f"(?P<{value}>{body})")
    body = "".join(parts)
    # Never start or end inside a longer digit run (a counter, a serial).
    body = r"(?<!\d)" + body + r"(?!\d)"
    if stamp and toks[-1][0] == "field" and toks[-1][1] != "p":
        # OCR glues misread characters to the last digits ("9:26:0S"): a
        # time that runs into a letter was cut short, not read.
        body += r"(?![A-Za-z])"
    if stamp and "H" in have:
        body += r"(?!\s?[AaPp](?:\.?\s?[MmNnHh])?\b)"
    flags = re.IGNORECASE if stamp else 0
    return TimePattern(text=pattern, regex=re.compile(body, flags))


def compile_patterns(
    patterns: list[str] | tuple[str, ...], *, stamp: bool = False
) -> list[TimePattern]:
    """Compile several patterns, failing on the first bad one.

    Parameters
    ----------
    patterns:
        Patterns in the order they are to be tried.
    stamp:
        See :func:`compile_pattern`.

    Returns
    -------
    The compiled patterns, in order.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    return [compile_pattern(p, stamp=stamp) for p in patterns]


def first_time(text: str, patterns: list[TimePattern]) -> tuple[datetime, str] | None:
    """The time read by the first pattern that finds one in ``text``.

    Parameters
    ----------
    text:
        File name or OCR text.
    patterns:
        Compiled patterns, tried in order.

    Returns
    -------
    ``(time, pattern text)``, or ``None`` when no pattern reads a valid time.
    """
    for pat in patterns:
        taken = pat.search(text)
        if taken is not None:
            return taken, pat.text
    return None
