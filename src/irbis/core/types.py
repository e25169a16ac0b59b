"""Plain domain records shared between the rooms of irbis.

They carry no database identity: ``irbis.store`` maps them to rows,
``irbis.ingest`` and ``irbis.stats`` compute with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class MalfunctionPeriod:
    """A period in which a deployed camera did not record (snow, battery, theft).

    ``start`` and ``end`` are naive local times of the deployment (the wall clock
    at the station), end exclusive.
    """

    start: datetime
    end: datetime
    reason: str = ""


@dataclass(slots=True)
class StationRecord:
    """A camera-trap station: one place where cameras are set up.

    Coordinates are either geographic (``lon``/``lat``, WGS84) or projected
    (``x``/``y`` in metres of ``crs``); both may be given.
    """

    name: str
    site: str | None = None
    lon: float | None = None
    lat: float | None = None
    x: float | None = None
    y: float | None = None
    crs: str | None = None
    elevation: float | None = None
    covariates: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class DeploymentRecord:
    """One camera at one station for one period.

    ``start``/``end`` are naive local times in the deployment's ``timezone``
    (an IANA name such as ``Asia/Novosibirsk`` or a fixed offset ``+07:00``).
    ``clock_offset_s`` is what must be added to the camera's clock to get the
    true local time (a camera that runs 5 minutes fast has ``-300``).
    """

    code: str
    station: str
    start: datetime
    end: datetime
    timezone: str = "UTC"
    camera_make: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None
    clock_offset_s: float = 0.0
    malfunctions: list[MalfunctionPeriod] = field(default_factory=list)
    comments: str = ""
    source_row: str = ""  # "file:row" the record came from, for error messages
    # Fields the source actually stated (``timezone``, ``clock_offset_s``,
    # ``comments``); None means all. A re-import leaves the others as they are.
    given: frozenset[str] | None = None


@dataclass(slots=True)
class MediaMetadata:
    """What a media file says about itself (EXIF, XMP, container metadata).

    ``taken`` is the camera's own clock reading, naive (no correction applied).
    ``utc_offset_min`` is set when the file states its offset (EXIF
    OffsetTimeOriginal, or a video's UTC creation time).
    """

    mediatype: str  # "image" or "video"
    mime: str
    width: int | None = None
    height: int | None = None
    taken: datetime | None = None
    taken_source: str | None = None  # "exif", "video", "filename", ...
    utc_offset_min: int | None = None
    make: str | None = None
    model: str | None = None
    serial: str | None = None
    tags: list[str] = field(default_factory=list)  # XMP HierarchicalSubject
    duration_s: float | None = None
    frame_count: int | None = None
