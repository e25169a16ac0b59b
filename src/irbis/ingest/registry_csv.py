"""Read station and deployment tables from CSV files.

Three layouts are understood (:func:`read_registry_csv` tells them apart by
their header):

- camtrapR's station table (``camtraps.csv``): one row per station, or per
  station and camera, with setup and retrieval dates and optional
  ``ProblemN_from``/``ProblemN_to`` malfunction periods;
- Camtrap DP 1.0 ``deployments.csv``;
- irbis's own simple layout (see :func:`read_registry_csv`).

Every reader returns ``(stations, deployments)`` as plain records from
:mod:`irbis.core.types`, with each deployment's ``source_row`` set to
``"file:row N"`` (the header is row 1, as a spreadsheet shows it) so that
later errors point at the line to fix. :func:`validate_registry` checks the
records against each other.

Pure: standard library and :mod:`irbis.core` only.
"""

from __future__ import annotations

import csv
import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from datetime import timezone as fixed_offset
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from irbis.core.errors import BadInputError, RegistryError
from irbis.core.text import MAX_CELL, cell_limit, check_no_nul
from irbis.core.types import DeploymentRecord, MalfunctionPeriod, StationRecord

__all__ = [
    "IRBIS_COLUMNS",
    "read_camtrapdp_deployments",
    "read_camtrapr_table",
    "read_irbis_table",
    "read_registry_csv",
    "registry_problems",
    "validate_registry",
]

IRBIS_COLUMNS = (
    "station",
    "deployment",
    "start",
    "end",
    "timezone",
    "lon",
    "lat",
    "x",
    "y",
    "crs",
    "elevation",
    "camera_make",
    "camera_model",
    "camera_serial",
    "clock_offset_s",
)
_IRBIS_REQUIRED = ("station", "start", "end")
# Keywords only read_camtrapr_table takes: passing one picks that layout.
_CAMTRAPR_OPTIONS = {
    "date_format",
    "station_col",
    "camera_col",
    "setup_col",
    "retrieval_col",
    "x_col",
    "y_col",
    "crs",
}

_NA = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"}

# camtrapR's ProblemN_from/ProblemN_to, and irbis's malfunction[N]_start/_end.
_PROBLEM_RE = re.compile(
    r"^(?:Problem(\d+)|malfunction(\d*))[_.](from|to|start|end)$", re.IGNORECASE
)
_PROBLEM_SIDE = {"from": "from", "start": "from", "to": "to", "end": "to"}

# strptime directives that carry a time of day.
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%T", "%R", "%X", "%c", "%p")

# camtrapR (>= 2.1) puts a date-only setup or retrieval at noon, so those
# days count half.
_NOON = time(12, 0)

# Coordinates of one station given in several rows may differ by rounding.
_COORD_TOL = 1e-6

# Values outside these are typing slips (or placeholders like 9999-12-31) that
# would make effort and reports overflow.
_LAT = (-90.0, 90.0)
_LON = (-180.0, 180.0)
_YEARS = (1900, 2200)
_MAX_CLOCK_OFFSET_S = 200 * 366 * 86400.0
_RANGE_HINT = {
    "lat": "latitude is -90 to 90 degrees; check that lat and lon are not swapped",
    "latitude": "latitude is -90 to 90 degrees; check that it and longitude are not swapped",
    "lon": "longitude is -180 to 180 degrees",
    "longitude": "longitude is -180 to 180 degrees",
    "clock_offset_s": "seconds to add to the camera clock, within 200 years",
}


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class _Stamp:
    """A parsed date cell: the value and whether the cell gave a time of day."""

    value: datetime
    has_time: bool


def _blank(v: str | None) -> bool:
    return v is None or v.strip() in _NA


def _read_rows(path: str | Path) -> tuple[Path, list[str], list[dict[str, str]]]:
    """Read a CSV file into its header and rows of stripped strings."""
    p = Path(path)
    if p.is_dir():
        raise BadInputError(
            str(p), "is a folder, not a table", "give the CSV file itself, e.g. its deployments.csv"
        )
    reader = None
    rows: list[dict[str, str]] = []
    try:
        with cell_limit(), p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise BadInputError(str(p), "the file is empty", "export the table with its header")
            check_no_nul(((f"column {h!r}", h) for h in header), f"{p}:row 1")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise BadInputError(
                    str(p),
                    f"column {dup[0]!r} appears twice in the header",
                    "rename or remove one of them",
                )
            reader.fieldnames = header
            for raw in reader:
                if None in raw:
                    # csv puts surplus cells under the key None
                    raise BadInputError(
                        f"{p}:row {len(rows) + 2}",
                        "more cells than header columns",
                        "check for an unquoted comma in a cell",
                    )
                row = {k: (v or "").strip() for k, v in raw.items()}
                check_no_nul(
                    ((f"column {k!r}", v) for k, v in row.items()), f"{p}:row {len(rows) + 2}"
                )
                rows.append(row)
    except FileNotFoundError:
        raise BadInputError(str(p), "file not found", "check the path") from None
    except UnicodeDecodeError:
        raise BadInputError(str(p), "not UTF-8 text", "save the table as CSV UTF-8") from None
    except csv.Error as exc:
        line = f":row {len(rows) + 2}" if reader is not None else ""
        if "field larger than field limit" in str(exc):
            reason = f"a cell is longer than {MAX_CELL:,} characters"
            hint = "a table cell holds a name or a date: check for an unclosed quote"
        else:
            reason, hint = f"not a readable CSV table ({exc})", "export the table as CSV again"
        raise BadInputError(f"{p}{line}", reason, hint) from None
    except OSError as exc:
        raise BadInputError(
            str(p), f"cannot be read ({exc.strerror or exc})", "check the path and its permissions"
        ) from None
    return p, header, rows


def _require(p: Path, header: Sequence[str], cols: Iterable[str]) -> None:
    for col in cols:
        if col not in header:
            raise BadInputError(
                str(p),
                f"missing column {col!r}",
                f"add it; the header has: {', '.join(header)}",
            )


def _where(p: Path, i: int) -> str:
    return f"{p}:row {i + 2}"


def _convert(v: str) -> object:
    """Covariate cell to a Python value: None, bool, int, float or the text."""
    if v in _NA:
        return None
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        x = float(v)
    except ValueError:
        return v
    # "inf" stays text: JSON (and PostgreSQL's jsonb) have no infinity.
    return x if math.isfinite(x) else v


def _float(v: str, where: str, col: str, bounds: tuple[float, float] | None = None) -> float | None:
    """A number cell: None when blank; finite and, if given, within ``bounds``."""
    if _blank(v):
        return None
    try:
        x = float(v)
    except ValueError:
        raise BadInputError(where, f"{col} {v!r} is not a number", "write it like 51.496") from None
    if not math.isfinite(x):
        raise BadInputError(where, f"{col} {v!r} is not a finite number", "write it like 51.496")
    if bounds is not None and not bounds[0] <= x <= bounds[1]:
        raise BadInputError(
            where,
            f"{col} {v} is out of range ({bounds[0]:g} to {bounds[1]:g})",
            _RANGE_HINT.get(col, "check the value and its column"),
        )
    return x


def _checked_date(dt: datetime, v: str, where: str, col: str) -> datetime:
    """``dt`` if its year is one a camera-trap survey can have, else a one-line error."""
    if not _YEARS[0] <= dt.year <= _YEARS[1]:
        raise BadInputError(
            where,
            f"{col} {v!r} is out of range (years {_YEARS[0]} to {_YEARS[1]})",
            "give the real date; for a camera still out, the date its card was read",
        )
    return dt


def _format_has_time(fmt: str) -> bool:
    return any(d in fmt for d in _TIME_DIRECTIVES)


def _parse_fmt(v: str, fmt: str, where: str, col: str) -> _Stamp:
    try:
        dt = datetime.strptime(v, fmt)
    except ValueError:
        example = datetime(2009, 4, 2, 12, 30).strftime(fmt)
        raise BadInputError(
            where,
            f"cannot read {col} {v!r} as a date",
            f"expected format {fmt}, e.g. {example}",
        ) from None
    return _Stamp(_checked_date(dt, v, where, col), _format_has_time(fmt))


def _parse_iso(v: str, where: str, col: str) -> _Stamp:
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise BadInputError(
            where,
            f"cannot read {col} {v!r} as a date",
            "expected ISO 8601, e.g. 2009-04-02, 2009-04-02T12:30 or 2020-05-30T04:57:37+02:00",
        ) from None
    # fromisoformat reads "2009-04-02" as midnight; remember it had no time.
    return _Stamp(_checked_date(dt, v, where, col), len(v) > 10)


def _offset_name(tz: tzinfo, dt: datetime) -> str:
    off = tz.utcoffset(dt)
    assert off is not None
    total = int(off.total_seconds() // 60)
    sign = "-" if total < 0 else "+"
    hh, mm = divmod(abs(total), 60)
    return f"{sign}{hh:02d}:{mm:02d}"


def _tz_from_name(name: str, where: str) -> tzinfo:
    """A tzinfo for 'UTC', a fixed offset '+07:00', or an IANA zone name."""
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        offset = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        if int(m.group(3)) >= 60 or offset > timedelta(hours=14):
            # Clocks on Earth run from UTC-12:00 to UTC+14:00; datetime refuses ±24 h.
            raise BadInputError(
                where,
                f"time zone offset {name!r} is not a UTC offset",
                "use an offset within ±14:00 such as +06:00, or an IANA name such as Asia/Bishkek",
            )
        return fixed_offset(sign * offset)
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInputError(
            where,
            f"unknown time zone {name!r}",
            "use an IANA name such as Asia/Bishkek or an offset such as +06:00",
        ) from None


def _problem_columns(p: Path, header: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of (from, to) malfunction column names, by problem number."""
    found: dict[int, dict[str, str]] = {}
    for col in header:
        m = _PROBLEM_RE.match(col)
        if m:
            number = int(m.group(1) or m.group(2) or 1)
            found.setdefault(number, {})[_PROBLEM_SIDE[m.group(3).lower()]] = col
    pairs = []
    for n in sorted(found):
        cols = found[n]
        for side in ("from", "to"):
            if side not in cols:
                raise BadInputError(
                    str(p),
                    f"missing column 'Problem{n}_{side}'",
                    f"every Problem{n}_from needs a Problem{n}_to and back",
                )
        pairs.append((cols["from"], cols["to"]))
    return pairs


def _malfunctions(
    row: dict[str, str],
    pairs: Sequence[tuple[str, str]],
    setup: datetime,
    retrieval: datetime,
    where: str,
    parse: Callable[[str, str, str], _Stamp],
) -> list[MalfunctionPeriod]:
    """Malfunction periods of one row, with camtrapR's date-only semantics.

    A date-only problem runs from the start of its first day to the end of its
    last day: camtrapR marks whole days as lost. On the setup day it cannot
    begin before the camera did, and it cannot outlast the retrieval.
    """
    out = []
    for c_from, c_to in pairs:
        v_from, v_to = row.get(c_from, ""), row.get(c_to, "")
        if _blank(v_from) and _blank(v_to):
            continue
        if _blank(v_from) or _blank(v_to):
            filled, empty = (c_from, c_to) if _blank(v_to) else (c_to, c_from)
            raise BadInputError(
                where,
                f"{filled} is set but {empty} is empty",
                "give both ends of the malfunction period",
            )
        s_from = parse(v_from, where, c_from)
        s_to = parse(v_to, where, c_to)
        start = s_from.value
        if not s_from.has_time:
            start = datetime.combine(start.date(), time())
            if start.date() == setup.date():
                start = max(start, setup)
        end = s_to.value
        if not s_to.has_time:
            last_day = end.date()
            end = datetime.combine(last_day + timedelta(days=1), time())
            if last_day <= retrieval.date():
                # Whole days stop at the retrieval; a later date is a mistake
                # for validation to report, not to hide.
                end = min(end, retrieval)
        reason_col = c_from.rsplit("_", 1)[0].rsplit(".", 1)[0] + "_reason"
        reason = row.get(reason_col, "")
        out.append(
            MalfunctionPeriod(start=start, end=end, reason=reason or c_from.rsplit("_", 1)[0])
        )
    return out


def _setup_time(s: _Stamp) -> datetime:
    return s.value if s.has_time else datetime.combine(s.value.date(), _NOON)


def _same_coords(a: float | None, b: float | None) -> bool:
    return a is None or b is None or abs(a - b) <= _COORD_TOL * max(1.0, abs(a))


def _add_station(
    stations: dict[str, StationRecord], new: StationRecord, where: str, strict: bool
) -> None:
    """Keep one record per station; later rows fill gaps, conflicts are errors if strict."""
    old = stations.get(new.name)
    if old is None:
        stations[new.name] = new
        return
    for attr in ("lon", "lat", "x", "y", "elevation"):
        a, b = getattr(old, attr), getattr(new, attr)
        if strict and not _same_coords(a, b):
            raise RegistryError(
                where,
                f"station {new.name!r} has {attr} {b}, but {a} in an earlier row",
                "give each station one position, or name the two places differently",
            )
        if a is None and b is not None:
            setattr(old, attr, b)
    if old.crs is None:
        old.crs = new.crs
    for k, v in new.covariates.items():
        if old.covariates.get(k) is None:
            old.covariates[k] = v


# --------------------------------------------------------------------------- camtrapR


def read_camtrapr_table(
    path: str | Path,
    *,
    date_format: str = "%d/%m/%Y",
    station_col: str = "Station",
    camera_col: str | None = None,
    setup_col: str = "Setup_date",
    retrieval_col: str = "Retrieval_date",
    x_col: str | None = "utm_x",
    y_col: str | None = "utm_y",
    crs: str | None = None,
    timezone: str | None = None,
) -> tuple[list[StationRecord], list[DeploymentRecord]]:
    """Read a camtrapR station table (``camtraps.csv`` layout).

    Parameters
    ----------
    path:
        The CSV file.
    date_format:
        ``strptime`` format of the setup, retrieval and problem columns.
        Without a time of day, setup and retrieval happen at 12:00 noon and
        a problem covers its first to its last day whole (camtrapR >= 2.1);
        with a time, the times are used as given.
    station_col, camera_col:
        Station and (optional) camera columns. The camera names the physical
        camera and becomes the deployment's ``camera_serial``.
    setup_col, retrieval_col:
        Setup and retrieval columns.
    x_col, y_col:
        Projected coordinates; ignored when absent from the file or None.
    crs:
        Coordinate reference system of ``x``/``y`` (e.g. ``"EPSG:32650"``).
    timezone:
        Time zone of the dates (the deployments' local zone); ``UTC`` when
        not given, and then a re-import keeps the zone a deployment has.

    Returns
    -------
    (stations, deployments)
        One station per distinct station name (other columns become its
        covariates) and one deployment per row, coded ``Station`` or, with a
        camera column, ``Station__CAM_Camera`` as camtrapR names its rows.
        ``ProblemN_from``/``ProblemN_to`` become malfunction periods.

    Raises
    ------
    BadInputError
        For a missing column or an unreadable cell (``file:row N``).
    """
    p, header, rows = _read_rows(path)
    required = [station_col, setup_col, retrieval_col] + ([camera_col] if camera_col else [])
    _require(p, header, required)
    pairs = _problem_columns(p, header)
    xc = x_col if x_col in header else None
    yc = y_col if y_col in header else None
    used = set(required) | {c for pair in pairs for c in pair} | {xc, yc}
    cov_cols = [c for c in header if c not in used]

    def parse(v: str, where: str, col: str) -> _Stamp:
        return _parse_fmt(v, date_format, where, col)

    stations: dict[str, StationRecord] = {}
    deployments: list[DeploymentRecord] = []
    for i, row in enumerate(rows):
        where = _where(p, i)
        name = row[station_col]
        if _blank(name):
            raise BadInputError(where, f"empty {station_col}", "name the station")
        camera = None
        if camera_col:
            camera = row[camera_col]
            if _blank(camera):
                raise BadInputError(where, f"empty {camera_col}", "name the camera")
        for col in (setup_col, retrieval_col):
            if _blank(row[col]):
                raise BadInputError(where, f"empty {col}", f"give the date as {date_format}")
        setup = parse(row[setup_col], where, setup_col)
        retrieval = parse(row[retrieval_col], where, retrieval_col)
        start, end = _setup_time(setup), _setup_time(retrieval)
        malf = _malfunctions(row, pairs, start, end, where, parse)
        x = _float(row[xc], where, xc) if xc else None
        y = _float(row[yc], where, yc) if yc else None
        station = StationRecord(
            name=name,
            x=x,
            y=y,
            crs=crs if (x is not None or y is not None) else None,
            covariates={c: _convert(row[c]) for c in cov_cols},
        )
        _add_station(stations, station, where, strict=True)
        deployments.append(
            DeploymentRecord(
                code=name if camera is None else f"{name}__CAM_{camera}",
                station=name,
                start=start,
                end=end,
                timezone=timezone or "UTC",
                camera_serial=camera,
                malfunctions=malf,
                source_row=where,
                given=frozenset({"timezone"} if timezone else ()),
            )
        )
    return list(stations.values()), deployments


# --------------------------------------------------------------------------- Camtrap DP

_DP_REQUIRED = ("deploymentID", "latitude", "longitude", "deploymentStart", "deploymentEnd")
# Columns consumed into record fields, or about people rather than places.
_DP_NOT_COVARIATES = {
    "deploymentID",
    "locationName",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
    "cameraID",
    "cameraModel",
    "deploymentComments",
    "setupBy",
}


def _parse_aware(v: str, where: str, col: str) -> datetime:
    s = _parse_iso(v, where, col)
    if s.value.tzinfo is None:
        raise BadInputError(
            where,
            f"{col} {v!r} has no UTC offset",
            "Camtrap DP times carry one, e.g. 2020-05-30T04:57:37+02:00",
        )
    return s.value


def read_camtrapdp_deployments(
    path: str | Path,
) -> tuple[list[StationRecord], list[DeploymentRecord]]:
    """Read a Camtrap DP 1.0 ``deployments.csv``.

    Parameters
    ----------
    path:
        The ``deployments.csv`` of a Camtrap DP package.

    Returns
    -------
    (stations, deployments)
        One station per ``locationName`` (or ``locationID`` where the name is
        empty), with ``lat``/``lon`` from its first deployment and the other
        columns (``habitat``, ``featureType``, ``cameraHeight``, ...) as
        covariates, first deployment winning. One deployment per row, coded
        by ``deploymentID``; ``cameraID`` becomes the serial and
        ``cameraModel`` (``manufacturer-model``) is split at its first ``-``.
        ``deploymentStart``/``End`` become naive local times in the start's
        UTC offset, which becomes the deployment's ``timezone`` (``"+02:00"``);
        an end in another offset (a clock change) is converted to it.

    Raises
    ------
    BadInputError
        For a missing column or an unreadable cell (``file:row N``).
    """
    p, header, rows = _read_rows(path)
    _require(p, header, _DP_REQUIRED)
    if "locationName" not in header and "locationID" not in header:
        raise BadInputError(
            str(p),
            "missing column 'locationName'",
            "add locationName or locationID to name the stations",
        )
    cov_cols = [c for c in header if c not in _DP_NOT_COVARIATES]

    stations: dict[str, StationRecord] = {}
    deployments: list[DeploymentRecord] = []
    for i, row in enumerate(rows):
        where = _where(p, i)
        code = row["deploymentID"]
        if _blank(code):
            raise BadInputError(where, "empty deploymentID", "give each deployment an ID")
        name = row.get("locationName", "")
        if _blank(name):
            name = row.get("locationID", "")
        if _blank(name):
            raise BadInputError(
                where,
                "neither locationName nor locationID is set",
                "name the location of the deployment",
            )
        for col in ("deploymentStart", "deploymentEnd"):
            if _blank(row[col]):
                raise BadInputError(where, f"empty {col}", "give it like 2020-05-30T04:57:37+02:00")
        start = _parse_aware(row["deploymentStart"], where, "deploymentStart")
        end = _parse_aware(row["deploymentEnd"], where, "deploymentEnd")
        tz = start.tzinfo
        assert tz is not None
        make = model = None
        cam_model = row.get("cameraModel", "")
        if not _blank(cam_model):
            if "-" in cam_model:
                make, model = (s.strip() for s in cam_model.split("-", 1))
            else:
                model = cam_model
        serial = row.get("cameraID", "")
        station = StationRecord(
            name=name,
            lat=_float(row["latitude"], where, "latitude", _LAT),
            lon=_float(row["longitude"], where, "longitude", _LON),
            covariates={c: _convert(row[c]) for c in cov_cols if not _blank(row[c])},
        )
        # Deployments at one location may carry re-measured coordinates: keep the first.
        _add_station(stations, station, where, strict=False)
        deployments.append(
            DeploymentRecord(
                code=code,
                station=name,
                start=start.replace(tzinfo=None),
                end=end.astimezone(tz).replace(tzinfo=None),
                timezone=_offset_name(tz, start),
                camera_make=make,
                camera_model=model,
                camera_serial=None if _blank(serial) else serial,
                comments=row.get("deploymentComments", ""),
                source_row=where,
                given=frozenset({"timezone"})
                | ({"comments"} if not _blank(row.get("deploymentComments")) else set()),
            )
        )
    return list(stations.values()), deployments


# --------------------------------------------------------------------------- irbis layout


def read_irbis_table(
    path: str | Path, *, timezone: str | None = None
) -> tuple[list[StationRecord], list[DeploymentRecord]]:
    """Read irbis's own deployment table (layout in :func:`read_registry_csv`).

    Parameters
    ----------
    path:
        The CSV file.
    timezone:
        Zone of rows that give neither a ``timezone`` nor a UTC offset
        (``UTC`` when not given, and then a re-import keeps the zone a
        deployment has).

    Returns
    -------
    (stations, deployments)

    Raises
    ------
    BadInputError
        For a missing column, an unreadable cell or an unknown zone
        (``file:row N``); RegistryError for a station given two positions.
    """
    p, header, rows = _read_rows(path)
    _require(p, header, _IRBIS_REQUIRED)
    pairs = _problem_columns(p, header)
    used = set(IRBIS_COLUMNS) | {c for pair in pairs for c in pair}
    used |= {c for c in header if _PROBLEM_RE.match(c.replace("_reason", "_from"))}
    cov_cols = [c for c in header if c not in used]

    counts: dict[str, int] = {}
    for row in rows:
        counts[row["station"]] = counts.get(row["station"], 0) + 1

    stations: dict[str, StationRecord] = {}
    deployments: list[DeploymentRecord] = []
    for i, row in enumerate(rows):
        where = _where(p, i)
        name = row["station"]
        if _blank(name):
            raise BadInputError(where, "empty station", "name the station")
        for col in ("start", "end"):
            if _blank(row[col]):
                raise BadInputError(where, f"empty {col}", "give it like 2024-03-01T14:20")
        s_start = _parse_iso(row["start"], where, "start")
        s_end = _parse_iso(row["end"], where, "end")

        tz_name = row.get("timezone", "")
        tz_given = True
        if _blank(tz_name):
            aware = s_start.value.tzinfo or s_end.value.tzinfo
            tz_name = _offset_name(aware, s_start.value) if aware else timezone
            tz_given = bool(aware or timezone)
            tz_name = tz_name or "UTC"
        tz = _tz_from_name(tz_name, where)

        def local(s: _Stamp, tz: tzinfo = tz) -> _Stamp:
            if s.value.tzinfo is None:
                return s
            return _Stamp(s.value.astimezone(tz).replace(tzinfo=None), s.has_time)

        s_start, s_end = local(s_start), local(s_end)
        start, end = _setup_time(s_start), _setup_time(s_end)

        def parse(v: str, where: str, col: str, local=local) -> _Stamp:
            return local(_parse_iso(v, where, col))

        malf = _malfunctions(row, pairs, start, end, where, parse)
        code = row.get("deployment", "")
        if _blank(code):
            # A station visited once needs no more than its name.
            code = name if counts[name] == 1 else f"{name}_{start:%Y-%m-%d}"
        offset = _float(
            row.get("clock_offset_s", ""),
            where,
            "clock_offset_s",
            (-_MAX_CLOCK_OFFSET_S, _MAX_CLOCK_OFFSET_S),
        )
        x = _float(row.get("x", ""), where, "x")
        y = _float(row.get("y", ""), where, "y")
        crs = row.get("crs", "")
        station = StationRecord(
            name=name,
            lon=_float(row.get("lon", ""), where, "lon", _LON),
            lat=_float(row.get("lat", ""), where, "lat", _LAT),
            x=x,
            y=y,
            crs=None if _blank(crs) else crs,
            elevation=_float(row.get("elevation", ""), where, "elevation"),
            covariates={c: _convert(row[c]) for c in cov_cols},
        )
        _add_station(stations, station, where, strict=True)

        def text(col: str, row: dict[str, str] = row) -> str | None:
            v = row.get(col, "")
            return None if _blank(v) else v

        deployments.append(
            DeploymentRecord(
                code=code,
                station=name,
                start=start,
                end=end,
                timezone=tz_name,
                camera_make=text("camera_make"),
                camera_model=text("camera_model"),
                camera_serial=text("camera_serial"),
                clock_offset_s=offset or 0.0,
                malfunctions=malf,
                source_row=where,
                given=frozenset(
                    ({"timezone"} if tz_given else set())
                    | ({"clock_offset_s"} if offset is not None else set())
                ),
            )
        )
    return list(stations.values()), deployments


# --------------------------------------------------------------------------- dispatch


def read_registry_csv(
    path: str | Path,
    *,
    known_stations: Iterable[str] | None = None,
    validate: bool = True,
    **kw: object,
) -> tuple[list[StationRecord], list[DeploymentRecord]]:
    """Read a station/deployment table, telling its layout from the header.

    Layouts, tried in this order:

    - **Camtrap DP** ``deployments.csv`` (header has ``deploymentID``): see
      :func:`read_camtrapdp_deployments`.
    - **irbis** (header has ``station``, in lower case): one row per
      deployment, columns ``station,deployment,start,end,timezone,lon,lat,x,
      y,crs,elevation,camera_make,camera_model,camera_serial,clock_offset_s``
      in any order; only ``station``, ``start`` and ``end`` are required.
      Times are ISO 8601 (``2024-03-01T14:20``); a date alone means noon, as
      in camtrapR. Times with a UTC offset are converted to the row's
      ``timezone`` (IANA name or ``+06:00``; default: the start's offset,
      else the ``timezone`` keyword, ``"UTC"``). ``deployment`` defaults to
      the station name, or ``station_YYYY-MM-DD`` of the start where the
      station has several rows. ``clock_offset_s`` is what to add to the
      camera clock to get true local time. Optional ``ProblemN_from``/
      ``ProblemN_to`` columns are malfunctions as in camtrapR; any other
      column is a station covariate. A station's coordinates must agree
      across its rows.
    - **camtrapR** station table (header has ``Station``, or ``kw`` holds
      one of its reader's options such as ``station_col`` or
      ``date_format``): see :func:`read_camtrapr_table`.

    Parameters
    ----------
    path:
        The CSV file.
    known_stations:
        If given, every deployment must be at one of these stations (the
        project's registered stations); stations the file itself lists do
        not count. If None, the file's stations are the known ones.
    validate:
        Run :func:`validate_registry` on the result.
    **kw:
        Passed to the reader of the detected layout (``date_format``,
        ``timezone``, column names...).

    Returns
    -------
    (stations, deployments)

    Raises
    ------
    BadInputError
        If the layout cannot be told, a column is missing or a cell cannot
        be read.
    RegistryError
        If validation finds contradicting records.
    """
    p, header, _ = _read_rows(path)
    camtrapr_kw = bool(_CAMTRAPR_OPTIONS & kw.keys())
    if "deploymentID" in header and not camtrapr_kw:
        if kw:
            raise BadInputError(
                str(p),
                f"Camtrap DP deployments take no options ({', '.join(sorted(kw))})",
                "their times carry UTC offsets; leave the options out",
            )
        stations, deployments = read_camtrapdp_deployments(p)
    elif "station" in header and not camtrapr_kw:
        stations, deployments = read_irbis_table(p, **kw)  # type: ignore[arg-type]
    elif camtrapr_kw or "Station" in header:
        stations, deployments = read_camtrapr_table(p, **kw)  # type: ignore[arg-type]
    else:
        raise BadInputError(
            str(p),
            "cannot tell the table's layout from its header",
            "expected Camtrap DP (deploymentID, deploymentStart, ...), irbis "
            "(station, start, end, ...) or camtrapR (Station, Setup_date, Retrieval_date)",
        )
    if validate:
        if known_stations is None:
            validate_registry(stations, deployments)
        else:
            validate_registry([], deployments, known_stations)
    return stations, deployments


# --------------------------------------------------------------------------- validation


def _overlaps(a: DeploymentRecord, b: DeploymentRecord) -> bool:
    # Half-open periods: a camera moved at noon from one place to the next is fine.
    return a.start < b.end and b.start < a.end


def _err(d: DeploymentRecord, reason: str, hint: str) -> RegistryError:
    return RegistryError(d.source_row or f"deployment {d.code}", reason, hint)


def registry_problems(
    stations: Sequence[StationRecord],
    deployments: Sequence[DeploymentRecord],
    known_stations: Iterable[str] = (),
) -> list[RegistryError]:
    """Every contradiction among stations and deployments, in deployment order.

    Parameters
    ----------
    stations:
        Stations defined alongside the deployments.
    deployments:
        Deployments to check; their ``source_row`` locates the errors.
    known_stations:
        Further station names that exist (e.g. already in the project).

    Returns
    -------
    list of RegistryError
        Empty when all is consistent. Checked: end before or at start;
        malfunction outside its deployment or ending before it starts;
        unknown station; duplicate deployment code; two overlapping
        deployments at one station with the same camera (or neither naming
        its camera); one camera serial in two overlapping deployments.
    """
    known = {s.name for s in stations} | set(known_stations)
    per_row: list[list[RegistryError]] = [[] for _ in deployments]
    known_sorted: list[str] = []
    first_code: dict[str, DeploymentRecord] = {}

    for i, d in enumerate(deployments):
        problems = per_row[i]
        if d.end <= d.start:
            word = "before" if d.end < d.start else "when"
            problems.append(
                _err(
                    d,
                    f"deployment {d.code} ends ({d.end:%Y-%m-%d %H:%M}) {word} it starts "
                    f"({d.start:%Y-%m-%d %H:%M})",
                    "check the setup and retrieval dates and the date format",
                )
            )
        for m in d.malfunctions:
            if m.end <= m.start:
                problems.append(
                    _err(
                        d,
                        f"malfunction {m.reason or ''} of {d.code} ends ({m.end}) before it "
                        f"starts ({m.start})".replace("  ", " "),
                        "swap or fix its dates",
                    )
                )
            elif m.start < d.start or m.end > d.end:
                problems.append(
                    _err(
                        d,
                        f"malfunction {m.start:%Y-%m-%d %H:%M}..{m.end:%Y-%m-%d %H:%M} lies "
                        f"outside deployment {d.code} ({d.start:%Y-%m-%d %H:%M}.."
                        f"{d.end:%Y-%m-%d %H:%M})",
                        "a camera can only fail while it is set up: fix the dates",
                    )
                )
        if d.station not in known:
            known_sorted = known_sorted or sorted(known)
            close = difflib.get_close_matches(d.station, known_sorted, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else "register the station first, or fix its name"
            )
            problems.append(_err(d, f"station {d.station!r} of {d.code} is unknown", hint))
        if d.code in first_code:
            other = first_code[d.code]
            problems.append(
                _err(
                    d,
                    f"deployment code {d.code!r} is already used "
                    f"({other.source_row or 'an earlier deployment'})",
                    "give each deployment its own code (a camera column helps)",
                )
            )
        else:
            first_code[d.code] = d

    for i, _earlier, err in sorted(_overlap_problems(deployments), key=lambda t: t[:2]):
        per_row[i].append(err)
    return [err for row in per_row for err in row]


def _overlap_problems(
    deployments: Sequence[DeploymentRecord],
) -> list[tuple[int, int, RegistryError]]:
    """Overlapping deployments as ``(row, earlier row, error)``, in O(n log n).

    Two kinds: the same station with the same camera (or neither naming its
    camera), and one named camera at two stations at once. Each kind's
    deployments are grouped and swept in order of start: a deployment that
    overlaps any earlier-starting one overlaps the one that reaches furthest,
    so every deployment caught in an overlap is reported at least once,
    against that one, at whichever of the two comes later in the table.
    """
    valid = [i for i, d in enumerate(deployments) if d.end > d.start]
    out: list[tuple[int, int, RegistryError]] = []

    def report(a: int, b: int, kind: str) -> None:
        i, j = max(a, b), min(a, b)
        d, o = deployments[i], deployments[j]
        period = f"{o.start:%Y-%m-%d %H:%M}..{o.end:%Y-%m-%d %H:%M} ({o.source_row or o.code})"
        if kind == "station":
            cam = f"camera {d.camera_serial}" if d.camera_serial else "no named camera"
            err = _err(
                d,
                f"deployment {d.code} at {d.station} with {cam} overlaps {o.code} {period}",
                "fix the dates, or name the cameras if two watched at once",
            )
        else:
            err = _err(
                d,
                f"camera {d.camera_serial} is at {d.station} ({d.code}) while also "
                f"at {o.station} ({o.code}) {period}",
                "a camera is in one place at a time: fix the dates or the camera ID",
            )
        out.append((i, j, err))

    def by_start(members: list[int]) -> list[int]:
        return sorted(members, key=lambda i: (deployments[i].start, i))

    at_station: dict[tuple[str, str | None], list[int]] = {}
    for i in valid:
        d = deployments[i]
        at_station.setdefault((d.station, d.camera_serial), []).append(i)
    for members in at_station.values():
        reach: int | None = None  # the earlier-starting deployment ending last
        for i in by_start(members):
            d = deployments[i]
            if reach is not None and d.start < deployments[reach].end:
                report(i, reach, "station")
            if reach is None or d.end > deployments[reach].end:
                reach = i

    of_camera: dict[str, list[int]] = {}
    for i in valid:
        serial = deployments[i].camera_serial
        if serial is not None:
            of_camera.setdefault(serial, []).append(i)
    for members in of_camera.values():
        if len(members) < 2:
            continue
        # The one ending last, and the one ending last at another station than it:
        # between them they hold the furthest reach at any station but d's.
        best: int | None = None
        second: int | None = None
        for i in by_start(members):
            d = deployments[i]
            other = best
            if other is not None and deployments[other].station == d.station:
                other = second
            if other is not None and d.start < deployments[other].end:
                report(i, other, "camera")
            if best is None or d.end > deployments[best].end:
                if best is not None and deployments[best].station != d.station:
                    second = best
                best = i
            elif deployments[best].station != d.station and (
                second is None or d.end > deployments[second].end
            ):
                second = i
    return out


def validate_registry(
    stations: Sequence[StationRecord],
    deployments: Sequence[DeploymentRecord],
    known_stations: Iterable[str] = (),
) -> None:
    """Raise the first contradiction among stations and deployments.

    Parameters
    ----------
    stations, deployments, known_stations:
        As for :func:`registry_problems`.

    Raises
    ------
    RegistryError
        One line, ``file:row N: what is wrong (what to do)``, for the first
        problem in deployment order.
    """
    problems = registry_problems(stations, deployments, known_stations)
    if problems:
        raise problems[0]
