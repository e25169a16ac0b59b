"""Patrol tracks from GPS files (GPX 1.0/1.1) as walked transects: the patrol effort.

Rangers' GPS units, SMART and CyberTracker all write the route a patrol
walked as a GPX track. irbis stores each track segment as a transect
(:class:`irbis.store.fieldrecords.TransectIn`) with its line in WGS84
longitude/latitude, so snares found are counted per kilometre actually
patrolled, cell by cell (:mod:`irbis.reports.threats`).

- A transect's code is the track's ``<name>`` (else the file name and the
  track's number); a track with several segments (the unit lost its fix or
  was switched off) gives one transect per segment, ``NAME/2``... The gap
  between segments is not counted as walked.
- The day walked is the local date of the segment's first timed point, in
  the zone given (the project's deployments' zone by default).
- Lengths are measured along the ground from the points as recorded. GPS
  noise while a patrol stands still adds a little; the points are kept as
  the unit wrote them so that the figure can be checked against the file.
- Waypoints (``<wpt>``) and routes (``<rte>``, a plan, not a walk) are not
  effort: they are counted and left out.

A document type declaration is refused: GPX never needs one, and entity
expansion is how a hostile XML file exhausts memory.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from irbis.core.errors import BadInputError
from irbis.store.fieldrecords import TransectIn

__all__ = ["GpxTracks", "read_gpx_tracks"]

_NAMESPACES = ("http://www.topografix.com/GPX/1/1", "http://www.topografix.com/GPX/1/0")


@dataclass
class GpxTracks:
    """What one GPX file held."""

    path: Path
    transects: list[TransectIn] = field(default_factory=list)
    waypoints_skipped: int = 0
    routes_skipped: int = 0
    #: Segments with fewer than two points (a unit that got one fix).
    short_segments_skipped: int = 0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _parse_time(text: str, where: str) -> datetime:
    t = text.strip()
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise BadInputError(
            where, f"<time> {t!r} is not an ISO 8601 time", "export the track again as GPX"
        ) from None


def _local_day(when: datetime, zone: str) -> date:
    from irbis.ingest.timing import parse_timezone

    if when.tzinfo is None:  # GPX times are UTC by the standard
        when = when.replace(tzinfo=UTC)
    return when.astimezone(parse_timezone(zone)).date()


def read_gpx_tracks(
    path: Path | str, *, timezone: str = "UTC", observers: str = "", organisation: str = ""
) -> GpxTracks:
    """Read the tracks of a GPX file as transects (one per track segment).

    Parameters
    ----------
    path:
        A ``.gpx`` file.
    timezone:
        Zone in which a segment's first time gives the day walked (IANA or ``+07:00``).
    observers, organisation:
        Written on every transect of the file (GPX does not say who walked).

    Returns
    -------
    GpxTracks
        The transects and what was left out.

    Raises
    ------
    BadInputError
        A file that is not GPX, a point without coordinates or outside
        longitude/latitude, a bad time, or two tracks with the same name.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise BadInputError(str(p), "file not found", "check the path") from None
    except IsADirectoryError:
        raise BadInputError(str(p), "is a folder, not a GPX file", "give the .gpx file") from None
    head = raw[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in raw.upper():
        raise BadInputError(
            str(p), "has a document type declaration, which GPX never needs", "export it again"
        )
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise BadInputError(
            str(p), f"not readable XML ({exc})", "check the file is a whole GPX export"
        ) from None
    if _local(root.tag) != "gpx" or (
        "}" in root.tag and root.tag[1:].split("}")[0] not in _NAMESPACES
    ):
        raise BadInputError(str(p), f"<{_local(root.tag)}> is not a GPX document", "give a .gpx")
    out = GpxTracks(p)
    out.waypoints_skipped = len(_children(root, "wpt"))
    out.routes_skipped = len(_children(root, "rte"))
    seen: dict[str, str] = {}
    for t_no, trk in enumerate(_children(root, "trk"), start=1):
        name_el = _child(trk, "name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        base = name or f"{p.stem}#{t_no}"
        segments = _children(trk, "trkseg")
        for s_no, seg in enumerate(segments, start=1):
            code = base if s_no == 1 else f"{base}/{s_no}"
            where = f"{p}:track {t_no} ({base}) segment {s_no}"
            line: list[list[float]] = []
            first_time: datetime | None = None
            for k, pt in enumerate(_children(seg, "trkpt"), start=1):
                try:
                    lat, lon = float(pt.attrib["lat"]), float(pt.attrib["lon"])
                except (KeyError, ValueError):
                    raise BadInputError(
                        f"{where} point {k}",
                        "no readable lat/lon attributes",
                        "export the track again as GPX",
                    ) from None
                if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90) or not (
                    -180 <= lon <= 180
                ):
                    raise BadInputError(
                        f"{where} point {k}",
                        f"({lat}, {lon}) is not a latitude/longitude",
                        "GPX points are WGS84 degrees",
                    )
                line.append([lon, lat])
                if first_time is None and (t_el := _child(pt, "time")) is not None and t_el.text:
                    first_time = _parse_time(t_el.text, f"{where} point {k}")
            if len(line) < 2:
                out.short_segments_skipped += 1
                continue
            if code in seen:
                raise BadInputError(
                    where,
                    f"track name {code!r} appears twice (also {seen[code]})",
                    "give the tracks distinct names in the GPS unit or SMART",
                )
            seen[code] = where
            out.transects.append(
                TransectIn(
                    where=where,
                    code=code,
                    walked_on=_local_day(first_time, timezone) if first_time else None,
                    observers=observers,
                    organisation=organisation,
                    line=line,
                    notes=f"GPX track from {p.name}",
                )
            )
    if not out.transects:
        raise BadInputError(
            str(p),
            "holds no track with two points or more"
            + (f" ({out.waypoints_skipped} waypoints only)" if out.waypoints_skipped else ""),
            "export the patrol's track (not only its waypoints)",
        )
    return out
