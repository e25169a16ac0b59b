"""Field records in and out as CSV: irbis's own layout and a SMART/CyberTracker-style one.

Tables in (``irbis field import``), each row checked with its row and column
named in the error:

- **Records** (irbis layout; ``--kind`` for a table without a ``kind``
  column): ``record_id, kind, date, time, timezone, lat, lon, x, y, crs,
  elevation, sensitive, observer, organisation, species, count, transect,
  photos, notes``, and per kind ``sample_id, lab, genotype, individual, sex``
  (``scat_sample``), ``threat_type, status, target_species, action_taken``
  (``snare``), ``sign_type, sign_age`` (``sign``).
- **SMART/CyberTracker-style patrol exports** (recognised by a ``Waypoint
  ID`` or ``Waypoint Date`` column): one row per waypoint observation, the
  category path in ``Category 0``, ``Category 1``... and attributes in
  columns of their own (see :data:`SMART_ATTRIBUTES`); ``X``/``Y`` are WGS84
  longitude and latitude unless ``--crs`` says they are projected. The kind
  comes from the category path (a snare or trap -> ``snare``, a scat or DNA
  sample or a ``Sample ID`` -> ``scat_sample``, scrape, track, scat, claw
  mark, spray -> ``sign``); other observations (a sighting of ibex) are
  skipped and counted.
- **Transects** (``--kind transect``): ``transect, date, observers,
  organisation, length_m, line`` (``lon lat, lon lat, ...`` or ``x y, ...``
  with ``crs``; ``LINESTRING(...)`` is read too) or ``start_lat, start_lon,
  end_lat, end_lon`` (``start_x``... with ``crs``), ``notes``.
- **Laboratory results** (``--kind lab``): ``sample_id, lab, genotype, sex,
  individual, species``, naming samples imported before.

Out: :func:`export_rows` gives the records in the irbis layout, generalised
for the public (sensitive places snapped to the policy's grid, observers and
notes left out) unless precise; a precise export imported again changes
nothing.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from irbis.core.errors import BadInputError
from irbis.core.sensitivity import LocationPolicy
from irbis.core.text import cell_limit, check_no_nul
from irbis.store.fieldrecords import (
    SIGN_TYPES,
    FieldRecordIn,
    LabResultIn,
    TransectIn,
)
from irbis.store.project import Project

__all__ = [
    "RECORD_COLUMNS",
    "SMART_ATTRIBUTES",
    "FieldTable",
    "blob_writer",
    "export_rows",
    "read_field_table",
    "write_rows",
]

#: The irbis layout of records, in the order exports write it.
RECORD_COLUMNS = (
    "record_id",
    "kind",
    "date",
    "time",
    "timezone",
    "lat",
    "lon",
    "x",
    "y",
    "crs",
    "elevation",
    "sensitive",
    "observer",
    "organisation",
    "species",
    "count",
    "transect",
    "photos",
    "notes",
    "sample_id",
    "lab",
    "genotype",
    "individual",
    "sex",
    "threat_type",
    "status",
    "target_species",
    "action_taken",
    "sign_type",
    "sign_age",
)

#: SMART attribute columns (lower case) -> the record field they fill.
SMART_ATTRIBUTES = {
    "sample id": "sample_id",
    "sample_id": "sample_id",
    "lab": "lab",
    "laboratory": "lab",
    "genotype": "genotype",
    "genotype id": "genotype",
    "individual": "individual",
    "sex": "sex",
    "threat type": "threat_type",
    "status": "status",
    "target species": "target_species",
    "action taken": "action_taken",
    "action": "action_taken",
    "sign type": "sign_type",
    "age": "sign_age",
    "age of sign": "sign_age",
    "transect id": "transect",
    "transect": "transect",
    "species": "species",
    "number": "count",
    "count": "count",
    "comment": "notes",
    "comments": "notes",
    "photos": "photos",
    "attachments": "photos",
    "observer": "observer",
    "patrol leader": "observer",
    "leader": "observer",
    "team": "organisation",
    "organisation": "organisation",
    "organization": "organisation",
    "elevation": "elevation",
    "altitude": "elevation",
}

_NA = ("", "NA", "N/A", "na", "n/a", "-", "null", "NULL", "None")
_KIND_ALIASES = {
    "scat_sample": "scat_sample",
    "scat sample": "scat_sample",
    "scat-sample": "scat_sample",
    "dna": "scat_sample",
    "sample": "scat_sample",
    "snare": "snare",
    "threat": "snare",
    "sign": "sign",
}
_SIGN_ALIASES = {
    "scrape": "scrape",
    "scrapes": "scrape",
    "track": "track",
    "tracks": "track",
    "pugmark": "track",
    "pugmarks": "track",
    "footprint": "track",
    "scat": "scat",
    "faeces": "scat",
    "feces": "scat",
    "dropping": "scat",
    "claw_mark": "claw_mark",
    "claw mark": "claw_mark",
    "claw-mark": "claw_mark",
    "claw marks": "claw_mark",
    "claw": "claw_mark",
    "scratch": "claw_mark",
    "spray": "spray",
    "scent spray": "spray",
    "urine spray": "spray",
    "scent mark": "spray",
}
_SEX_ALIASES = {
    "f": "female",
    "female": "female",
    "m": "male",
    "male": "male",
    "u": "unknown",
    "unknown": "unknown",
    "?": "unknown",
}
_STATUS_ALIASES = {
    "found": "found",
    "active": "found",
    "removed": "removed",
    "destroyed": "removed",
    "confiscated": "removed",
}
_YEARS = (1990, 2100)


@dataclass
class FieldTable:
    """What one table held: records, transects or laboratory results, and rows skipped."""

    path: Path
    layout: str
    kind: str
    records: list[FieldRecordIn] = field(default_factory=list)
    transects: list[TransectIn] = field(default_factory=list)
    lab_results: list[LabResultIn] = field(default_factory=list)
    skipped: int = 0
    skipped_categories: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if path.is_dir():
        raise BadInputError(str(path), "is a folder, not a table", "give the CSV file")
    rows: list[dict[str, str]] = []
    try:
        with cell_limit(), path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise BadInputError(str(path), "the file is empty", "export it with its header")
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise BadInputError(
                    str(path),
                    f"column {dup[0]!r} appears twice in the header",
                    "rename or remove one of them",
                )
            reader.fieldnames = header
            for raw in reader:
                where = f"{path}:row {len(rows) + 2}"
                if None in raw:
                    raise BadInputError(
                        where,
                        "more cells than header columns",
                        "check for an unquoted comma in a cell",
                    )
                row = {k: (v or "").strip() for k, v in raw.items()}
                check_no_nul(((f"column {k!r}", v) for k, v in row.items()), where)
                rows.append(row)
    except FileNotFoundError:
        raise BadInputError(str(path), "file not found", "check the path") from None
    except UnicodeDecodeError:
        raise BadInputError(str(path), "not UTF-8 text", "save the table as CSV UTF-8") from None
    except csv.Error as exc:
        raise BadInputError(
            f"{path}:row {len(rows) + 2}",
            f"not a readable CSV table ({exc})",
            "export the table as CSV again",
        ) from None
    return header, rows


def _blank(v: str | None) -> bool:
    return v is None or v.strip() in _NA


def _cell(row: dict[str, str], col: str | None) -> str:
    if col is None:
        return ""
    v = row.get(col, "")
    return "" if _blank(v) else v


def _number(v: str, where: str, col: str) -> float | None:
    if _blank(v):
        return None
    try:
        x = float(v.replace(",", ".") if v.count(",") == 1 and "." not in v else v)
    except ValueError:
        raise BadInputError(
            where, f"column {col!r}: {v!r} is not a number", "write it like 49.8123"
        ) from None
    return x


def _date(v: str, where: str, col: str, fmt: str | None) -> datetime:
    """A date (and maybe time) cell: ISO 8601, ``fmt``, or a month spelled out."""
    if _blank(v):
        raise BadInputError(
            where, f"column {col!r}: missing date", "give the date, e.g. 2026-03-05"
        )
    tries = [fmt] if fmt else []
    parsed = None
    for f in tries:
        try:
            parsed = datetime.strptime(v, f)
        except ValueError:
            example = datetime(2026, 3, 5, 14, 30).strftime(f)
            raise BadInputError(
                where, f"column {col!r}: bad date {v!r}", f"expected {f}, e.g. {example}"
            ) from None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            for f in ("%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%d-%b-%Y %H:%M:%S", "%d %B %Y"):
                try:
                    parsed = datetime.strptime(v, f)
                    break
                except ValueError:
                    continue
    if parsed is None:
        raise BadInputError(
            where,
            f"column {col!r}: bad date {v!r}",
            "use ISO 8601 (2026-03-05 or 2026-03-05T14:30), 05-Mar-2026, or give --date-format",
        )
    if parsed.tzinfo is not None:
        raise BadInputError(
            where,
            f"column {col!r}: {v!r} carries a UTC offset",
            "give local time and the timezone column",
        )
    if not _YEARS[0] <= parsed.year <= _YEARS[1]:
        raise BadInputError(
            where,
            f"column {col!r}: year {parsed.year} is out of range",
            f"a date between {_YEARS[0]} and {_YEARS[1]}",
        )
    return parsed


def _time(v: str, where: str, col: str) -> time | None:
    if _blank(v):
        return None
    for f in ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p"):
        try:
            return datetime.strptime(v, f).time()
        except ValueError:
            continue
    raise BadInputError(where, f"column {col!r}: bad time {v!r}", "use HH:MM or HH:MM:SS")


def _when(
    row: dict[str, str],
    where: str,
    date_col: str,
    time_col: str | None,
    tz_col: str | None,
    fmt: str | None,
    default_tz: str,
) -> tuple[datetime, datetime, int, str]:
    from irbis.ingest.timing import to_utc

    local = _date(row.get(date_col, ""), where, date_col, fmt)
    t = _time(_cell(row, time_col), where, time_col or "time")
    if t is not None:
        local = datetime.combine(local.date(), t)
    tz = _cell(row, tz_col) or default_tz
    try:
        utc, offset = to_utc(local, tz)
    except BadInputError:
        raise BadInputError(
            where,
            f"column {tz_col or 'timezone'!r}: unknown time zone {tz!r}",
            "an IANA name such as Asia/Barnaul, or +07:00",
        ) from None
    return local, utc, offset, tz


def _choice(v: str, aliases: dict[str, str], where: str, col: str, allowed: str) -> str | None:
    if _blank(v):
        return None
    key = v.strip().lower()
    if key in aliases:
        return aliases[key]
    raise BadInputError(where, f"column {col!r}: unknown value {v!r}", f"use {allowed}")


def _bool(v: str, where: str, col: str) -> bool:
    if _blank(v):
        return True
    key = v.strip().lower()
    if key in ("yes", "y", "true", "1"):
        return True
    if key in ("no", "n", "false", "0"):
        return False
    raise BadInputError(
        where,
        f"column {col!r}: {v!r} is not yes or no",
        "leave it empty: places are sensitive unless a person says no",
    )


def _photos(v: str, base: Path) -> list[int | Path]:
    out: list[int | Path] = []
    for token in re.split(r"[;|]", v):
        token = token.strip()
        if not token:
            continue
        m = re.fullmatch(r"(?:m|media:)?(\d+)", token)
        out.append(int(m.group(1)) if m else (base / token))
    return out


def _int(v: str, where: str, col: str) -> int | None:
    x = _number(v, where, col)
    if x is None:
        return None
    if x != int(x):
        raise BadInputError(where, f"column {col!r}: {v!r} is not a whole number")
    return int(x)


def _uid(kind: str, local: datetime, a: float | None, b: float | None, what: str | None) -> str:
    """The key of a record without an id: its kind, time, place and type."""
    text = f"{kind}|{local.isoformat()}|{a:.6f}|{b:.6f}|{what or ''}"
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _finish(r: FieldRecordIn) -> FieldRecordIn:
    if not r.uid:
        if r.kind == "scat_sample" and r.sample_id:
            r.uid = f"scat:{r.sample_id}"
        else:
            a = r.lat if r.lat is not None else (r.y if r.y is not None else 0.0)
            b = r.lon if r.lon is not None else (r.x if r.x is not None else 0.0)
            r.uid = _uid(r.kind, r.observed_local, a, b, r.sign_type or r.threat_type)
    return r


def _irbis_record(
    row: dict[str, str],
    where: str,
    base: Path,
    kind: str | None,
    crs: str | None,
    fmt: str | None,
    default_tz: str,
    header: list[str],
) -> FieldRecordIn:
    kcell = _cell(row, "kind")
    if not kcell and not kind:
        raise BadInputError(where, "column 'kind': missing", "give a kind column or --kind")
    k = (
        _choice(kcell, _KIND_ALIASES, where, "kind", "scat_sample, snare or sign")
        if kcell
        else kind
    )
    assert k is not None
    local, utc, offset, tz = _when(row, where, "date", "time", "timezone", fmt, default_tz)
    lat_col = "lat" if "lat" in header else "latitude"
    lon_col = "lon" if "lon" in header else "longitude"
    rec = FieldRecordIn(
        where=where,
        uid=_cell(row, "record_id"),
        kind=k,
        observed_local=local,
        observed_utc=utc,
        utc_offset_min=offset,
        timezone=tz,
        lat=_number(_cell(row, lat_col), where, lat_col),
        lon=_number(_cell(row, lon_col), where, lon_col),
        x=_number(_cell(row, "x"), where, "x"),
        y=_number(_cell(row, "y"), where, "y"),
        crs=_cell(row, "crs") or crs,
        elevation=_number(_cell(row, "elevation"), where, "elevation"),
        sensitive=_bool(_cell(row, "sensitive"), where, "sensitive"),
        observer=_cell(row, "observer"),
        organisation=_cell(row, "organisation"),
        species=_cell(row, "species") or None,
        count=_int(_cell(row, "count"), where, "count"),
        transect=_cell(row, "transect") or None,
        sample_id=_cell(row, "sample_id") or None,
        lab=_cell(row, "lab"),
        genotype=_cell(row, "genotype") or None,
        individual=_cell(row, "individual") or None,
        sex=_choice(_cell(row, "sex"), _SEX_ALIASES, where, "sex", "female, male or unknown"),
        threat_type=_cell(row, "threat_type") or ("snare" if k == "snare" else None),
        status=_choice(_cell(row, "status"), _STATUS_ALIASES, where, "status", "found or removed"),
        target_species=_cell(row, "target_species") or None,
        action_taken=_cell(row, "action_taken"),
        sign_type=_choice(
            _cell(row, "sign_type"), _SIGN_ALIASES, where, "sign_type", ", ".join(SIGN_TYPES)
        ),
        sign_age=_choice(
            _cell(row, "sign_age"),
            {"fresh": "fresh", "old": "old"},
            where,
            "sign_age",
            "fresh or old",
        ),
        photos=_photos(_cell(row, "photos"), base),
        notes=_cell(row, "notes"),
        columns={"lat": lat_col, "lon": lon_col},
    )
    return _finish(rec)


def _smart_kind(path: list[str], attrs: dict[str, str]) -> tuple[str | None, str | None]:
    """``(kind, sign type or threat type)`` from a SMART category path, or ``(None, None)``."""
    text = " > ".join(path).lower()
    if attrs.get("sample_id") or "scat sample" in text or "dna" in text or "sample" in text:
        return "scat_sample", None
    if any(w in text for w in ("snare", "trap", "threat", "poach")):
        return "snare", path[-1] if path else "snare"
    for level in reversed(path):
        key = level.strip().lower()
        for alias, sign in _SIGN_ALIASES.items():
            if key == alias or key.startswith(alias + " ") or key.endswith(" " + alias):
                return "sign", sign
    return None, None


def _smart_record(
    row: dict[str, str],
    where: str,
    base: Path,
    kind: str | None,
    crs: str | None,
    fmt: str | None,
    default_tz: str,
    header: list[str],
    table: FieldTable,
) -> FieldRecordIn | None:
    cats = sorted(
        (h for h in header if re.fullmatch(r"category( \d+)?", h.lower())),
        key=lambda h: int(h.split()[-1]) if h.split()[-1].isdigit() else -1,
    )
    path = [_cell(row, c) for c in cats if _cell(row, c)]
    attrs: dict[str, str] = {}
    cols: dict[str, str] = {}
    for h in header:
        name = SMART_ATTRIBUTES.get(h.strip().lower())
        if name and _cell(row, h) and name not in attrs:
            attrs[name], cols[name] = _cell(row, h), h
    k, what = _smart_kind(path, attrs)
    if kind:
        k = kind
    if k is None:
        label = " > ".join(path) or "(no category)"
        table.skipped += 1
        table.skipped_categories[label] = table.skipped_categories.get(label, 0) + 1
        return None
    date_col = "Waypoint Date" if "Waypoint Date" in header else "Date"
    time_col = (
        "Waypoint Time" if "Waypoint Time" in header else ("Time" if "Time" in header else None)
    )
    local, utc, offset, tz = _when(row, where, date_col, time_col, None, fmt, default_tz)
    xcol = "X" if "X" in header else "Longitude"
    ycol = "Y" if "Y" in header else "Latitude"
    a = _number(_cell(row, xcol), where, xcol)
    b = _number(_cell(row, ycol), where, ycol)
    patrol, waypoint = _cell(row, "Patrol ID"), _cell(row, "Waypoint ID")
    sign_type = what if k == "sign" else None
    if k == "sign" and attrs.get("sign_type"):
        sign_type = _choice(
            attrs["sign_type"], _SIGN_ALIASES, where, cols["sign_type"], ", ".join(SIGN_TYPES)
        )
    status = None
    if k == "snare":
        action = attrs.get("action_taken", "").lower()
        status = (
            _choice(attrs["status"], _STATUS_ALIASES, where, cols["status"], "found or removed")
            if attrs.get("status")
            else (
                "removed"
                if any(w in action for w in ("remov", "destroy", "confiscat"))
                else "found"
            )
        )
    species = attrs.get("species")
    if species is None and k in ("sign", "scat_sample") and len(path) >= 3:
        species = path[-2]
    rec = FieldRecordIn(
        where=where,
        uid=f"smart:{patrol}:{waypoint}" if waypoint else "",
        kind=k,
        observed_local=local,
        observed_utc=utc,
        utc_offset_min=offset,
        timezone=tz,
        lon=None if crs else a,
        lat=None if crs else b,
        x=a if crs else None,
        y=b if crs else None,
        crs=crs,
        elevation=_number(attrs.get("elevation", ""), where, cols.get("elevation", "Elevation")),
        observer=attrs.get("observer", ""),
        organisation=attrs.get("organisation", ""),
        species=species,
        count=_int(attrs.get("count", ""), where, cols.get("count", "Number")),
        transect=attrs.get("transect"),
        sample_id=attrs.get("sample_id"),
        lab=attrs.get("lab", ""),
        genotype=attrs.get("genotype"),
        individual=attrs.get("individual"),
        sex=_choice(
            attrs.get("sex", ""),
            _SEX_ALIASES,
            where,
            cols.get("sex", "Sex"),
            "female, male or unknown",
        ),
        threat_type=(attrs.get("threat_type") or what or "snare") if k == "snare" else None,
        status=status,
        target_species=attrs.get("target_species"),
        action_taken=attrs.get("action_taken", ""),
        sign_type=sign_type,
        sign_age=_choice(
            attrs.get("sign_age", ""),
            {"fresh": "fresh", "old": "old"},
            where,
            cols.get("sign_age", "Age"),
            "fresh or old",
        ),
        photos=_photos(attrs.get("photos", ""), base),
        notes=attrs.get("notes", ""),
        columns={
            "lat": ycol,
            "lon": xcol,
            "x": xcol,
            "y": ycol,
            "kind": cats[-1] if cats else "Category",
            "date": date_col,
            **cols,
        },
    )
    return _finish(rec)


def _points(text: str, where: str, col: str) -> list[list[float]]:
    body = text.strip()
    m = re.fullmatch(r"(?i)linestring\s*\((.*)\)", body)
    if m:
        body = m.group(1)
    pts = []
    for part in body.split(","):
        nums = part.split()
        if len(nums) != 2:
            raise BadInputError(
                where,
                f"column {col!r}: {part.strip()!r} is not a point",
                "write the line as 'lon lat, lon lat, ...' (or x y with crs)",
            )
        pts.append([_number(nums[0], where, col), _number(nums[1], where, col)])
    return pts  # type: ignore[return-value]


def _transect(row: dict[str, str], where: str, crs: str | None, fmt: str | None) -> TransectIn:
    code = _cell(row, "transect")
    if not code:
        raise BadInputError(where, "column 'transect': missing transect ID")
    walked = _date(row.get("date", ""), where, "date", fmt).date() if _cell(row, "date") else None
    t_crs = _cell(row, "crs") or crs
    line: list[list[float]] = []
    if _cell(row, "line"):
        line = _points(_cell(row, "line"), where, "line")
    else:
        a, b = ("start_x", "start_y") if t_crs else ("start_lon", "start_lat")
        c, d = ("end_x", "end_y") if t_crs else ("end_lon", "end_lat")
        vals = [_number(_cell(row, k), where, k) for k in (a, b, c, d)]
        if any(v is not None for v in vals):
            missing = [k for k, v in zip((a, b, c, d), vals, strict=True) if v is None]
            if missing:
                raise BadInputError(
                    where,
                    f"column {missing[0]!r}: missing coordinate",
                    "give the start and end points, or a line",
                )
            line = [[vals[0], vals[1]], [vals[2], vals[3]]]  # type: ignore[list-item]
    if not t_crs:
        for lon, lat in line:
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise BadInputError(
                    where,
                    f"column 'line': ({lon}, {lat}) is not lon lat",
                    "give a crs for projected coordinates",
                )
    return TransectIn(
        where=where,
        code=code,
        walked_on=walked,
        observers=_cell(row, "observers"),
        organisation=_cell(row, "organisation"),
        length_m=_number(_cell(row, "length_m"), where, "length_m"),
        line=line,
        crs=t_crs,
        notes=_cell(row, "notes"),
    )


def _lab(row: dict[str, str], where: str) -> LabResultIn:
    sample = _cell(row, "sample_id")
    if not sample:
        raise BadInputError(where, "column 'sample_id': missing sample ID")
    return LabResultIn(
        where=where,
        sample_id=sample,
        lab=_cell(row, "lab"),
        genotype=_cell(row, "genotype") or None,
        sex=_choice(_cell(row, "sex"), _SEX_ALIASES, where, "sex", "female, male or unknown"),
        individual=_cell(row, "individual") or None,
        species=_cell(row, "species") or None,
    )


def read_field_table(
    path: Path | str,
    *,
    kind: str | None = None,
    layout: str = "auto",
    timezone: str | None = None,
    crs: str | None = None,
    date_format: str | None = None,
    default_timezone: str = "UTC",
) -> FieldTable:
    """Read a table of field records, transects or laboratory results.

    Parameters
    ----------
    kind:
        ``scat_sample``, ``snare``, ``sign`` (every row of that kind),
        ``transect``, ``lab``, or None (records, each row's ``kind`` column,
        or the SMART category path).
    layout:
        ``irbis``, ``smart`` or ``auto`` (SMART when a ``Waypoint ID`` or
        ``Waypoint Date`` column is present).
    timezone:
        Zone of rows without a ``timezone`` column (IANA or ``+07:00``).
    crs:
        CRS of projected ``x``/``y`` (for SMART: ``X``/``Y`` are projected).
    date_format:
        strptime format of the dates when they are not ISO 8601.
    default_timezone:
        Zone used when neither the row nor ``timezone`` gives one.

    Raises
    ------
    BadInputError
        The first bad row, naming it and its column (more bad rows counted).
    """
    p = Path(path)
    allowed = (None, "scat_sample", "snare", "sign", "transect", "lab")
    if kind is not None:
        kind = _KIND_ALIASES.get(kind, kind)
    if kind not in allowed:
        raise BadInputError(
            f"--kind {kind}", "unknown kind", "use scat_sample, snare, sign, transect or lab"
        )
    if layout not in ("auto", "irbis", "smart"):
        raise BadInputError(f"--layout {layout}", "unknown layout", "use auto, irbis or smart")
    if timezone:
        from irbis.ingest.timing import parse_timezone

        try:
            parse_timezone(timezone)
        except BadInputError:
            raise BadInputError(
                f"--timezone {timezone}",
                "unknown time zone",
                "an IANA name such as Asia/Barnaul, or +07:00",
            ) from None
    header, rows = _read(p)
    if layout == "auto":
        layout = "smart" if {"Waypoint ID", "Waypoint Date"} & set(header) else "irbis"
    table = FieldTable(p, layout, kind or "records")
    tz = timezone or default_timezone
    base = p.resolve().parent
    need = {"transect": ("transect",), "lab": ("sample_id",)}.get(kind or "", ())
    if layout == "irbis" and kind not in ("transect", "lab"):
        need = ("date",)
        if not ({"lat", "latitude", "x"} & set(header)):
            raise BadInputError(
                str(p),
                "missing column 'lat' (no coordinates at all)",
                f"give lat and lon, or x and y; the header has: {', '.join(header)}",
            )
    if layout == "smart":
        need = ("Waypoint Date",) if "Waypoint Date" in header else ("Date",)
    for col in need:
        if col not in header:
            raise BadInputError(
                str(p), f"missing column {col!r}", f"the header has: {', '.join(header)}"
            )
    errors: list[BadInputError] = []
    for i, row in enumerate(rows):
        where = f"{p}:row {i + 2}"
        try:
            if kind == "transect":
                table.transects.append(_transect(row, where, crs, date_format))
            elif kind == "lab":
                table.lab_results.append(_lab(row, where))
            elif layout == "smart":
                rec = _smart_record(row, where, base, kind, crs, date_format, tz, header, table)
                if rec is not None:
                    table.records.append(rec)
            else:
                table.records.append(
                    _irbis_record(row, where, base, kind, crs, date_format, tz, header)
                )
        except BadInputError as exc:
            errors.append(exc)
    from irbis.store.fieldrecords import _raise_first

    _raise_first(errors)
    return table


def blob_writer(project: Project):
    """A :data:`irbis.store.fieldrecords.FileWriter` storing photos in the project's blobs."""
    from irbis.ingest.blobs import BlobStore

    store = BlobStore(project.blob_dir, project.tmp_dir)

    def write(path: Path) -> dict[str, Any]:
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        rel = store.put_bytes(data, sha, path.suffix)
        return {"name": path.name, "sha256": sha, "size": len(data), "path": rel}

    return write


# --------------------------------------------------------------------------- writing


def generalised_place(row: dict[str, Any], policy: LocationPolicy) -> dict[str, Any]:
    """``row``'s place snapped to the policy's grid (lat/lon in degrees, x/y in metres)."""
    from irbis.core.sensitivity import snap

    out = dict(row)
    if out.get("lat") is not None and out.get("lon") is not None:
        out["lat"], out["lon"] = policy.generalise(out["lat"], out["lon"])
    step = policy.precision_deg * 111_320.0
    if out.get("x") is not None and out.get("y") is not None:
        out["x"], out["y"] = snap(out["x"], step), snap(out["y"], step)
    out["elevation"] = None
    out["generalised"] = True
    return out


def export_rows(
    project: Project,
    *,
    public: bool = True,
    kind: str | None = None,
    precision_deg: float | None = None,
    generalise_all: bool = False,
) -> list[dict[str, Any]]:
    """Field records in the irbis layout (:data:`RECORD_COLUMNS`, plus ``files``).

    Parameters
    ----------
    public:
        Snap sensitive places to the policy's grid and leave out observers
        and the notes of sensitive records; ``False`` for cleared partners.
    generalise_all:
        In a public export, snap every place (the Camtrap DP export does
        when it generalises the stations).
    """
    from sqlalchemy import select

    from irbis.store.fieldrecords import load_records
    from irbis.store.schema import Genotype, GenotypeLink, Individual

    policy = LocationPolicy.from_settings(project.settings.extra)
    if precision_deg is not None:
        policy = LocationPolicy(policy.sensitive_species, float(precision_deg))
    with project.session() as s:
        records = load_records(s, kind)
        linked: dict[str, list[str]] = {}
        for code, name in s.execute(
            select(Genotype.code, Individual.name)
            .join(GenotypeLink, GenotypeLink.genotype_id == Genotype.id)
            .join(Individual, Individual.id == GenotypeLink.individual_id)
            .where(GenotypeLink.retracted_utc.is_(None))
        ):
            linked.setdefault(code, []).append(name)
    out = []
    for r in records:
        hide = public and (r["sensitive"] or generalise_all)
        if hide:
            r = generalised_place(r, policy)
        names = linked.get(r["genotype"] or "", [])
        row = {
            "record_id": r["uid"],
            "kind": r["kind"],
            "date": r["date"],
            "time": r["time"],
            "timezone": r["timezone"],
            "lat": r["lat"],
            "lon": r["lon"],
            "x": r["x"],
            "y": r["y"],
            "crs": r["crs"],
            "elevation": r["elevation"],
            "sensitive": "yes" if r["sensitive"] else "no",
            "observer": "" if public else r["observer"],
            "organisation": r["organisation"],
            "species": r["species"],
            "count": r["count"],
            "transect": r["transect"],
            "photos": ";".join(f"m{m}" for m in r["media_ids"]),
            "notes": "" if hide else r["notes"],
            "sample_id": r["sample_id"],
            "lab": r["lab"],
            "genotype": r["genotype"],
            "individual": names[0] if len(names) == 1 else "",
            "sex": r["sex"],
            "threat_type": r["threat_type"],
            "status": r["status"],
            "target_species": r["target_species"],
            "action_taken": r["action_taken"],
            "sign_type": r["sign_type"],
            "sign_age": r["sign_age"],
            "files": ";".join(r["files"]),
            "generalised": bool(hide),
        }
        out.append(row)
    return out


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, date | datetime):
        return v.isoformat()
    return str(v)


def write_rows(rows: list[dict[str, Any]], path: Path, columns: tuple[str, ...]) -> None:
    """Write ``rows`` as a UTF-8 CSV file with ``columns`` (written whole or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _text(r.get(k)) for k in columns})
    tmp.replace(path)


# --------------------------------------------------------------------------- Camtrap DP

#: Names of the custom resources a Camtrap DP package gets when the project has field records.
CAMTRAPDP_RESOURCES = ("field-records", "transects")
_TRANSECT_COLUMNS = ("transect", "date", "observers", "organisation", "length_m", "line", "crs")
_NUMBERS = {"lat", "lon", "x", "y", "elevation", "length_m"}
_INTEGERS = {"count"}
_ENUMS = {
    "kind": ["scat_sample", "snare", "sign"],
    "sensitive": ["yes", "no"],
    "status": ["found", "removed"],
    "sign_type": list(SIGN_TYPES),
    "sign_age": ["fresh", "old"],
    "sex": ["female", "male", "unknown"],
}


def _schema(columns: tuple[str, ...]) -> dict[str, Any]:
    fields = []
    for c in columns:
        f: dict[str, Any] = {"name": c, "type": "string"}
        if c in _NUMBERS:
            f["type"] = "number"
        elif c in _INTEGERS:
            f["type"] = "integer"
        elif c == "date":
            f["type"] = "date"
        if c in _ENUMS:
            f["constraints"] = {"enum": _ENUMS[c]}
        fields.append(f)
    return {"fields": fields, "missingValues": [""]}


def write_camtrapdp_resources(
    project: Project,
    folder: Path,
    *,
    public: bool,
    generalise_all: bool,
    precision_deg: float | None = None,
) -> list[dict[str, Any]]:
    """Write ``field-records.csv`` and ``transects.csv`` into a package folder.

    Returns the resource descriptors to add to ``datapackage.json`` (none
    when the project has no field records or transects). A public package
    generalises field-record places as it does the stations (every place
    when the stations are generalised, else the sensitive ones), leaves out
    observers, and gives transects without their line.
    """
    from sqlalchemy import select

    from irbis.store.schema import Transect

    rows = export_rows(
        project, public=public, precision_deg=precision_deg, generalise_all=generalise_all
    )
    with project.session() as s:
        transects = list(s.scalars(select(Transect).order_by(Transect.code)))
    if not rows and not transects:
        return []
    columns = (*RECORD_COLUMNS, "files")
    write_rows(rows, folder / "field-records.csv", columns)
    t_rows = [
        {
            "transect": t.code,
            "date": t.walked_on,
            "observers": "" if public else t.observers,
            "organisation": t.organisation,
            "length_m": t.length_m,
            "line": "" if public else ", ".join(f"{a!r} {b!r}" for a, b in (t.line or [])),
            "crs": t.crs,
        }
        for t in transects
    ]
    write_rows(t_rows, folder / "transects.csv", _TRANSECT_COLUMNS)
    common = {
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
    }
    return [
        {
            "name": "field-records",
            "path": "field-records.csv",
            "description": "Scat samples, snares and signs found on foot (irbis field records; "
            "the layout irbis field import reads)."
            + (
                f" Sensitive places are snapped to the centres of a {precision_deg:g}-degree grid."
                if public and precision_deg
                else ""
            ),
            **common,
            "schema": _schema(columns),
        },
        {
            "name": "transects",
            "path": "transects.csv",
            "description": "Sign transects walked (line as 'lon lat, ...' or 'x y, ...' in crs; "
            "left out in public packages).",
            **common,
            "schema": _schema(_TRANSECT_COLUMNS),
        },
    ]
