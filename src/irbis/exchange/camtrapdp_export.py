"""Write a project as a Camtrap DP 1.0.2 package, validated before it appears.

What goes where
---------------
- ``deployments.csv``: one row per deployment; the location is the station
  (``locationName`` = station name, ``locationID`` = the imported ID or the
  station name); fields irbis does not model (``setupBy``, ``cameraHeight``,
  ``baitUse``...) come back from the deployment's ``extra`` when the data was
  imported from a package.
- Malfunctions (periods a deployed camera did not record) split a deployment,
  as the standard's maintainers advise (tdwg/camtrap-dp#53): each period the
  camera recorded is a deployment row of its own (``<code>`` when there is
  one, ``<code>-part1``, ``<code>-part2``... when the camera recorded in
  several), and ``deploymentComments`` names the periods left out and why. So
  effort computed from the package (deploymentEnd - deploymentStart per
  station) equals ``irbis effort``. Media and observations go to the part
  that holds their time (a file taken during a malfunction to the part before
  it, noted).
- ``media.csv``: media with a trusted time (``time_flag == ''``) in a
  deployment; a file without a trusted time cannot carry the required
  ``timestamp`` and is counted in :attr:`ExportResult.media_untimed`.
- ``observations.csv``: every observation not retracted, media and event
  level. The boxes people drew or accepted in the review app (current rows of
  ``reviewed_boxes``; moved-away and deleted rows never) are media-level
  observations of their own: ``classificationMethod`` ``human``, the bbox
  fields, ``classifiedBy``/``classificationTimestamp`` the person and time,
  ``scientificName`` the file's species when its human-classified
  observations name exactly one (``count`` stays on those observations: a
  box is not a count). A
  person's "no animal here" is a ``blank`` observation of the file, and
  "there is an animal here" (no box) an ``animal`` one, each written only
  when the file's human-classified observations do not already say it (a
  ``blank`` against a person's label naming an animal, e.g. the sequence's
  label spread over its files, is left out and named in the notes); a
  machine's classification of the same file stays beside them. A label a
  person accepted from a species classifier's proposal (the review grid's
  ``p``) is the person's: ``human``, ``classifiedBy`` the person, the time of
  acceptance, no probability, and ``observationTags``
  ``classification:machine-proposed-person-confirmed|proposedBy:<model
  version>|proposedProbability:<p>``; the model's proposal stays as its own
  ``machine`` row with its ``classificationProbability``.
  Media whose detector verdict has no human-made observation and no
  reviewed box get the detector's boxes as ``machine`` observations
  (``animal``, ``human``, ``vehicle``, or one ``blank``).

Public packages (the default)
-----------------------------
- Coordinates: when any sensitive species (:class:`irbis.core.sensitivity.
  LocationPolicy`) was observed in the project, *every* deployment's
  coordinates are snapped to the centre of its grid cell, not only those
  where the species was photographed: in a snow-leopard survey the camera
  grid itself sits in leopard habitat, and precise stations next to coarse
  ones would point at exactly where the leopards were. ``coordinatePrecision``
  is set to the grid size and ``coordinateUncertainty`` grows by the cell's
  half diagonal. Generalising is idempotent: a point already at the centre of
  its cell (a public package imported again) is not moved, and its
  uncertainty is kept (at least the half diagonal), so a public import/export
  round trip gives the same coordinates and uncertainty each time. A project
  without a sensitive species keeps its coordinates.
- People: media showing a person (an observation of type ``human`` or a
  ``person`` detection) are left out of ``media.csv`` together with their
  observations, and event-level ``human`` observations are left out too. The
  standard requires ``filePath`` on every media row, so a row "without its
  file" is not possible; ``filePublic = false`` would still publish the
  time, file name and place at which someone was photographed.

``public=False`` (``--precise``) writes exact coordinates and keeps people
(for cleared partners); person images are then copied only through a
``person_writer`` that blurs them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select

from irbis import __version__
from irbis.core.errors import BadInputError, IrbisError
from irbis.core.sensitivity import LocationPolicy
from irbis.exchange.camtrapdp_media_links import (
    check_base_url,
    link_media,
    sensitive_media_ids,
)
from irbis.exchange.camtrapdp_rows import (
    HUMAN_NAMES,
    Progress,
    iso,
    iso_local,
    iso_utc,
    number,
    slug,
    zone,
)
from irbis.exchange.camtrapdp_validate import (
    CAMTRAP_DP_VERSION,
    PROFILE_URL,
    TABLE_SCHEMA_URLS,
    TABLES,
    ValidationResult,
    field_names,
    load_table_schema,
    validate_camtrapdp,
)
from irbis.store.individuals import merge_roots
from irbis.store.project import Project
from irbis.store.schema import (
    Camera,
    Deployment,
    DetectionBox,
    Individual,
    Malfunction,
    Media,
    MediaDetection,
    MediaGroup,
    Observation,
    ReviewedBox,
    Site,
    Station,
    User,
)

__all__ = ["ExportResult", "PersonWriter", "export_camtrapdp", "SCHEMA_FOLDER"]

#: Where packages of earlier irbis versions kept copies of the table schemas (an
#: export may replace such a package; new packages name the official URLs).
SCHEMA_FOLDER = f"schemas/camtrap-dp-{CAMTRAP_DP_VERSION}"

#: ``person_writer(source, destination, boxes)`` writes a copy of the image at
#: ``source`` with the person boxes (``x, y, w, h`` as fractions) blurred and
#: returns True, or returns False when it cannot (a video, an unreadable file).
PersonWriter = Callable[[Path, Path, list[tuple[float, float, float, float]]], bool]

_METRES_PER_DEGREE = 111_320.0
_FEATURE_TYPES = frozenset(
    load_table_schema("deployments")["fields"][field_names("deployments").index("featureType")][
        "constraints"
    ]["enum"]
)
_LIFE_STAGES = {"adult", "subadult", "juvenile"}
_SEXES = {"female", "male"}
_OBS_TYPES = {"animal", "human", "vehicle", "blank", "unknown", "unclassified"}
_DETECTOR_TYPE = {"animal": "animal", "person": "human", "vehicle": "vehicle"}
#: ``reviewed_boxes.category`` -> Camtrap DP ``observationType``.
_REVIEWED_TYPE = {**_DETECTOR_TYPE, "blank": "blank"}


@dataclass
class ExportResult:
    """What :func:`export_camtrapdp` wrote."""

    path: Path
    public: bool
    deployments: int = 0
    media: int = 0
    observations: int = 0
    #: Coordinates were snapped to the grid (a sensitive species was observed).
    generalised: bool = False
    precision_deg: float | None = None
    media_persons_left_out: int = 0
    observations_persons_left_out: int = 0
    media_untimed: int = 0
    machine_observations: int = 0
    #: Observations written from the boxes and marks people made in the review app.
    reviewed_observations: int = 0
    exif_dropped: int = 0
    files_copied: int = 0
    files_blurred: int = 0
    files_not_copied: int = 0
    #: mediaIDs whose file is in the package (``media_files="copy"``).
    copied_ids: set[str] = field(default_factory=set)
    validation: ValidationResult | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        skip = ("validation", "path", "copied_ids")
        d = {k: v for k, v in self.__dict__.items() if k not in skip}
        d["path"] = str(self.path)
        d["valid"] = bool(self.validation and self.validation.valid)
        return d


# --------------------------------------------------------------------------- helpers


def _human_source(source: str) -> bool:
    return not source.startswith("model")


def _method(o: Observation) -> str:
    raw = (o.extra or {}).get("camtrapdp", {}).get("classificationMethod")
    if raw is not None:
        return raw
    if o.source.startswith("model"):
        return "machine"
    return "human" if o.source in ("human", "folder", "xmp") else ""


def _obs_type(o: Observation) -> str:
    t = o.observation_type if o.observation_type in _OBS_TYPES else "unclassified"
    if (o.species or "").strip().lower() in HUMAN_NAMES:
        return "human"
    return t


def _enum(value: str | None, allowed: set[str]) -> str:
    v = (value or "").strip().lower()
    return v if v in allowed else ""


def _box(x: float | None, y: float | None, w: float | None, h: float | None) -> list[str]:
    """A box clipped to the image, or four empty cells."""
    if None in (x, y, w, h):
        return ["", "", "", ""]
    x0, y0 = min(max(float(x), 0.0), 1.0), min(max(float(y), 0.0), 1.0)
    w1, h1 = min(float(w), 1.0 - x0), min(float(h), 1.0 - y0)
    if not (w1 > 0 and h1 > 0):
        return ["", "", "", ""]
    return [number(round(x0, 6)), number(round(y0, 6)), number(round(w1, 6)), number(round(h1, 6))]


def _raw(extra: dict | None, key: str) -> str:
    v = (extra or {}).get("camtrapdp", {}).get(key)
    return "" if v is None else str(v)


def _without_gps(value: Any) -> Any:
    """``value`` with every key naming a GPS field removed, at any depth."""
    if isinstance(value, dict):
        return {k: _without_gps(v) for k, v in value.items() if "gps" not in str(k).lower()}
    if isinstance(value, list):
        return [_without_gps(v) for v in value]
    return value


def _exif(raw: str, public: bool = False) -> tuple[str, bool]:
    """``(cell, dropped)``: the package's text as it came (``exifData`` is of type
    ``any`` in Camtrap DP 1.0.2: truncated or non-object EXIF text is kept).

    A public package never carries the camera's GPS fix: it would undo the
    generalised coordinates. GPS keys are removed from a JSON object; text
    that is not a JSON object and mentions GPS is left out (``dropped``).
    """
    if not raw:
        return "", False
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        if public and "gps" in raw.lower():
            return "", True
        return raw, False
    if public:
        clean = _without_gps(data)
        if clean != data:
            return json.dumps(clean, ensure_ascii=False, separators=(", ", ": ")), False
    return raw, False


#: Covariate names that say where a station is (whole words or prefixes).
_LOCATING = re.compile(
    r"(^|[_\W])(lat|latitude|lon|long|longitude|lng|x|y|utm|easting|northing|east|north|"
    r"coord|coords|coordinates|gps|elev|elevation|alt|altitude|height|wkt|geom|geometry|"
    r"position|location)([_\W\d]|$)",
    re.IGNORECASE,
)


def _locates(key: str) -> bool:
    """Whether a covariate name looks like a coordinate, elevation or position."""
    return bool(_LOCATING.search(key)) or key.lower().startswith(("utm", "gps", "elev", "coord"))


def _half_diagonal_m(lat: float, step: float) -> float:
    """Half the diagonal, in metres, of a ``step``-degree cell centred at ``lat``."""
    widest = math.cos(math.radians(max(0.0, abs(lat) - step / 2)))
    dy = step * _METRES_PER_DEGREE / 2
    dx = step * _METRES_PER_DEGREE * widest / 2
    return math.hypot(dx, dy)


def _lonlat(station: Station, dep: Deployment) -> tuple[float, float]:
    extra = (dep.extra or {}).get("camtrapdp", {})
    if extra.get("latitude") not in (None, "") and extra.get("longitude") not in (None, ""):
        return float(extra["latitude"]), float(extra["longitude"])
    if station.lat is not None and station.lon is not None:
        return station.lat, station.lon
    if station.x is not None and station.y is not None and station.crs:
        from pyproj import Transformer

        t = Transformer.from_crs(station.crs, "EPSG:4326", always_xy=True)
        lon, lat = t.transform(station.x, station.y)
        return round(lat, 6), round(lon, 6)
    raise BadInputError(
        f"station {station.name}",
        "no latitude/longitude, and no CRS for its x/y",
        "Camtrap DP needs WGS84 coordinates: re-import the registry with --crs EPSG:...",
    )


def _final_names(individuals: Iterable[Individual]) -> dict[int, Individual]:
    """Each individual id -> the individual it was finally merged into."""
    by_id = {i.id: i for i in individuals}
    roots = merge_roots({i.id: i.merged_into_id for i in by_id.values()})
    return {i: by_id[r] for i, r in roots.items()}


def _write_csv(path: Path, table: str, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=field_names(table), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


# --------------------------------------------------------------------------- export


def export_camtrapdp(
    project: Project,
    out_dir: Path | str,
    *,
    public: bool = True,
    precision_deg: float | None = None,
    media_files: str = "none",
    media_base_url: str | None = None,
    person_writer: PersonWriter | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write ``project`` as a Camtrap DP 1.0.2 package in ``out_dir``.

    Parameters
    ----------
    project:
        The open project.
    out_dir:
        Package folder. It must not exist, be empty, or hold an earlier
        package (a folder with ``datapackage.json``, which is replaced).
    public:
        Generalise coordinates when a sensitive species was observed and
        leave out media of people (the default); ``False`` for exact data.
    precision_deg:
        Grid size for public coordinates (default: the project's
        ``public_precision_deg`` setting, else 0.1 degree).
    media_files:
        ``none`` (``filePath`` names the original file) or ``copy`` (files
        are copied into ``media/`` and ``filePath`` points there).
        With ``none`` a file is not in the package: ``filePath`` becomes
        ``media_base_url/<deploymentID>/<fileName>`` when that is given (the
        layout ``copy`` writes), else the file's RFC 6920 content name with
        ``filePublic`` false (:mod:`irbis.exchange.camtrapdp_media_links`).
    media_base_url:
        Public http(s) address of a copy of the ``media/`` folder (only with
        ``media_files="none"``).
    person_writer:
        Writes a blurred copy of a person image (see :data:`PersonWriter`);
        without one, person images are never copied.
    progress:
        Called as ``progress(step, done, total)`` while the export runs.

    Returns
    -------
    ExportResult
        Row counts, what was left out and the validation result.

    Raises
    ------
    IrbisError
        When the package would not validate; nothing is left in ``out_dir``.
    """
    if media_files not in ("none", "copy"):
        raise BadInputError("--media-files", f"unknown mode {media_files!r}", "use none or copy")
    base_url = check_base_url(media_base_url) if media_base_url is not None else None
    if base_url is not None and media_files == "copy":
        raise BadInputError(
            "--media-base-url",
            "the files are copied into the package, a base URL would not be used",
            "give --media-base-url with --media-files none",
        )
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not (out / "datapackage.json").exists():
        raise BadInputError(
            str(out), "folder exists and is not a Camtrap DP package", "give a new or empty folder"
        )
    extra = project.settings.extra or {}
    policy = LocationPolicy.from_settings(extra)
    if precision_deg is not None:
        policy = LocationPolicy(policy.sensitive_species, float(precision_deg))

    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        result = ExportResult(path=out, public=public)
        if progress is not None:
            progress("reading the project", 0, None)
        tables, meta = _build(project, policy, public, result)
        unshipped = tables["media"]
        if media_files == "copy":
            _copy_files(project, tmp, tables, meta, person_writer, result, public, progress)
            unshipped = [r for r in tables["media"] if r["mediaID"] not in result.copied_ids]
        if unshipped:
            # A file not in the package: filePath a public URL, or the file's content name.
            links = link_media(
                unshipped,
                base_url=base_url,
                hashes=meta.hashes,
                persons={mid for mid, f in meta.files.items() if f[2]},
                sensitive=sensitive_media_ids(
                    tables["media"], tables["observations"], meta.is_sensitive
                ),
                public=public,
            )
            result.notes += links.notes(base_url)
        for table in TABLES:
            _write_csv(tmp / f"{table}.csv", table, tables[table])
        (tmp / MARKER).write_text(f"written by irbis {__version__}\n", encoding="utf-8")
        descriptor = _descriptor(project, tables, meta, policy, result)
        # Field records and transects (issue 20) as custom resources, generalised as stations.
        from irbis.exchange.field_csv import write_camtrapdp_resources

        descriptor["resources"] += write_camtrapdp_resources(
            project,
            tmp,
            public=public,
            generalise_all=result.generalised,
            precision_deg=policy.precision_deg,
        )
        (tmp / "datapackage.json").write_text(
            json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if progress is not None:
            progress("validating", 0, None)
        result.validation = validate_camtrapdp(tmp)
        if not result.validation.valid:
            errs = result.validation.errors
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise IrbisError(
                f"{out}: not exported, the package would not be valid Camtrap DP: {errs[0]}{more}"
            )
        _move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    result.validation.path = out
    return result


#: Written into every package irbis exports: only such a folder may be replaced.
MARKER = ".irbis-export"


def _check_target(out: Path) -> None:
    """Refuse to overwrite a folder irbis did not write (or that holds more than it wrote)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise IrbisError(f"{out}: exists and is not a folder; choose another output path")
    if not any(out.iterdir()):
        return
    if not (out / MARKER).is_file():
        raise IrbisError(
            f"{out}: folder exists and was not written by `irbis export camtrapdp`; "
            "choose a new or empty folder (nothing was changed)"
        )
    top = PurePosixPath(SCHEMA_FOLDER).parts[0]
    from irbis.exchange.field_csv import CAMTRAPDP_RESOURCES

    ours = {MARKER, "datapackage.json", top, "media", *(f"{t}.csv" for t in TABLES)}
    ours |= {f"{name}.csv" for name in CAMTRAPDP_RESOURCES}
    extra = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if extra:
        raise IrbisError(
            f"{out}: holds files irbis did not write ({', '.join(extra[:3])}); "
            "choose a new or empty folder (nothing was changed)"
        )


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the validated folder to ``out``, replacing an earlier irbis export."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class _Meta:
    """What the descriptor needs from the rows, gathered while building them."""

    coords: list[tuple[float, float]] = field(default_factory=list)
    starts: list[datetime] = field(default_factory=list)
    ends: list[datetime] = field(default_factory=list)
    species: set[str] = field(default_factory=set)
    levels: set[str] = field(default_factory=set)
    capture: set[str] = field(default_factory=set)
    individuals: bool = False
    # mediaID -> (source file, person boxes, is person media)
    files: dict[str, tuple[Path | None, list[tuple[float, float, float, float]], bool]] = field(
        default_factory=dict
    )
    users: list[User] = field(default_factory=list)
    # mediaID -> SHA-256 of files irbis hashed itself; mediaID -> an imported package's filePath.
    hashes: dict[str, str] = field(default_factory=dict)
    package_paths: dict[str, str] = field(default_factory=dict)
    # Whether a name names a sensitive species (the location policy's SensitiveNames.matches).
    is_sensitive: Callable[[str | None], bool] = field(default=lambda name: False)
    # The project's species list by label (``irbis species``): scientific and common names.
    names: dict[str, Any] = field(default_factory=dict)

    def scientific(self, label: str | None) -> str:
        """The scientific name of a label: the list's, else that of the entry of irbis's
        taxa table the label names (``snow leopard``, ``human``), else the label itself."""
        if not label:
            return ""
        sp = self.names.get(label)
        if sp is not None:
            return sp.scientific_name or label
        from irbis.store.taxa import lookup

        t = lookup(label)
        return t.scientific_name if t is not None else label


def _build(
    project: Project, policy: LocationPolicy, public: bool, result: ExportResult
) -> tuple[dict[str, list[dict[str, str]]], _Meta]:
    from irbis.store.sensitivity import sensitive_names, sensitive_station_ids
    from irbis.store.species import listed, scientific_names

    meta = _Meta(names=scientific_names(project))
    # The one location policy (irbis.store.sensitivity): a sensitive species
    # under any of its names, and identified animals of one, count.
    names = sensitive_names(policy, listed(project, reload=False))
    meta.is_sensitive = names.matches
    with project.session() as s:
        sensitive_stations = sensitive_station_ids(s, names)
        stations = {st.id: st for st in s.scalars(select(Station))}
        sites = {si.id: si.name for si in s.scalars(select(Site))}
        cameras = {c.id: c for c in s.scalars(select(Camera))}
        deps = list(s.scalars(select(Deployment).order_by(Deployment.code)))
        dep_by_id = {d.id: d for d in deps}
        groups = {g.id: g for g in s.scalars(select(MediaGroup))}
        media = [
            m
            for m in s.scalars(select(Media).where(Media.deployment_id.is_not(None)))
            if m.deployment_id in dep_by_id
        ]
        obs = list(
            s.scalars(
                select(Observation)
                .where(Observation.retracted_utc.is_(None))
                .order_by(Observation.id)
            )
        )
        inds = _final_names(s.scalars(select(Individual)))
        # The newest detector result of each media file, with its boxes.
        latest: dict[int, MediaDetection] = {}
        for md in s.scalars(select(MediaDetection).order_by(MediaDetection.created_utc)):
            latest[md.media_id] = md
        boxes: dict[int, list[DetectionBox]] = defaultdict(list)
        person_media: set[int] = set()
        for b in s.scalars(select(DetectionBox)):
            if b.category == "person":
                person_media.add(b.media_id)
            md = latest.get(b.media_id)
            if md is not None and b.result_id == md.id:
                boxes[b.media_id].append(b)
        person_media |= {mid for mid, md in latest.items() if md.verdict == "person"}
        reviewed: dict[int, list[ReviewedBox]] = defaultdict(list)
        for r in s.scalars(
            select(ReviewedBox)
            .where(ReviewedBox.retracted_utc.is_(None))
            .order_by(ReviewedBox.media_id, ReviewedBox.frame, ReviewedBox.id)
        ):
            reviewed[r.media_id].append(r)
            if r.category == "person":
                person_media.add(r.media_id)
        meta.users = list(s.scalars(select(User).order_by(User.name)))
        malfunctions: dict[int, list[Malfunction]] = defaultdict(list)
        for mf in s.scalars(select(Malfunction).order_by(Malfunction.start_local)):
            malfunctions[mf.deployment_id].append(mf)

    # Which species were seen, and where people were.
    def species_of(o: Observation) -> str | None:
        if o.species:
            return o.species
        ind = inds.get(o.individual_id) if o.individual_id else None
        return ind.species if ind else None

    # A label of the project's list is sensitive when its scientific name is.
    sensitive = bool(sensitive_stations) or any(
        names.matches(species_of(o)) or names.matches(meta.scientific(species_of(o))) for o in obs
    )
    obs_by_media: dict[int, list[Observation]] = defaultdict(list)
    event_obs: list[Observation] = []
    for o in obs:
        if o.media_id is not None:
            obs_by_media[o.media_id].append(o)
            if _obs_type(o) == "human":
                person_media.add(o.media_id)
        elif o.deployment_id in dep_by_id:
            event_obs.append(o)

    generalise = public and sensitive
    result.generalised = generalise
    result.precision_deg = policy.precision_deg if generalise else None

    # -- deployments
    dep_rows: list[dict[str, str]] = []
    # deployment id -> its parts: (utc start, utc end, deploymentID) in time order.
    parts: dict[int, list[tuple[datetime, datetime, str]]] = {}
    for d in deps:
        st = stations[d.station_id]
        lat, lon = _lonlat(st, d)
        unc_raw = _raw(d.extra, "coordinateUncertainty")
        unc: float | None = float(unc_raw) if unc_raw else None
        if generalise:
            snapped = policy.generalise(lat, lon)
            half = math.ceil(_half_diagonal_m(snapped[0], policy.precision_deg))
            if snapped == (lat, lon):
                # Already a cell centre (e.g. a public package imported again):
                # the point does not move, so its uncertainty does not grow.
                unc = max(math.ceil(unc or 0), half)
            else:
                lat, lon = snapped
                unc = math.ceil((unc or 0) + _half_diagonal_m(lat, policy.precision_deg))
        meta.coords.append((lat, lon))
        tz = zone(d.timezone)
        start = d.start_local.replace(tzinfo=tz)
        end = d.end_local.replace(tzinfo=tz)
        meta.starts.append(start)
        meta.ends.append(end)
        recorded, gaps = _recording(d, malfunctions.get(d.id, []))
        names = (
            [d.code]
            if len(recorded) == 1
            else [f"{d.code}-part{k}" for k in range(1, len(recorded) + 1)]
        )
        parts[d.id] = [
            (_utc(a, tz), _utc(b, tz), code) for (a, b), code in zip(recorded, names, strict=True)
        ]
        cam = cameras.get(d.camera_id) if d.camera_id else None
        model = "-".join(p for p in ((cam.make, cam.model) if cam else ()) if p)
        cov = st.covariates or {}
        feature = _raw(d.extra, "featureType") or (
            str(cov["featureType"]) if cov.get("featureType") in _FEATURE_TYPES else ""
        )
        groups_cell = _raw(d.extra, "deploymentGroups")
        if not groups_cell and st.site_id in sites:
            groups_cell = f"site:{sites[st.site_id]}"
        tags = _raw(d.extra, "deploymentTags")
        if not tags and not d.extra:
            tags = " | ".join(
                f"{k}:{v}"
                for k, v in sorted(cov.items())
                if k not in ("locationID", "featureType", "habitat")
                and v not in (None, "")
                and not (generalise and _locates(k))
            )
        row = {
            "deploymentID": d.code,
            "locationID": str(cov.get("locationID") or st.name),
            "locationName": st.name,
            "latitude": number(lat),
            "longitude": number(lon),
            "coordinateUncertainty": number(int(unc)) if unc is not None else "",
            "deploymentStart": iso(start),
            "deploymentEnd": iso(end),
            "setupBy": _raw(d.extra, "setupBy"),
            "cameraID": (cam.serial if cam else "") or _raw(d.extra, "cameraID"),
            "cameraModel": model or _raw(d.extra, "cameraModel"),
            "cameraDelay": _raw(d.extra, "cameraDelay"),
            "cameraHeight": _raw(d.extra, "cameraHeight"),
            "cameraDepth": _raw(d.extra, "cameraDepth"),
            "cameraTilt": _raw(d.extra, "cameraTilt"),
            "cameraHeading": _raw(d.extra, "cameraHeading"),
            "detectionDistance": _raw(d.extra, "detectionDistance"),
            "timestampIssues": _raw(d.extra, "timestampIssues"),
            "baitUse": _raw(d.extra, "baitUse"),
            "featureType": feature,
            "habitat": _raw(d.extra, "habitat") or str(cov.get("habitat") or ""),
            "deploymentGroups": groups_cell,
            "deploymentTags": tags,
            "deploymentComments": d.comments or "",
        }
        if not gaps:
            dep_rows.append(row)
            continue
        left_out = "; ".join(
            f"{iso(a.replace(tzinfo=tz))} to {iso(b.replace(tzinfo=tz))}"
            + (f" ({reason})" if reason else "")
            for a, b, reason in gaps
        )
        never = recorded == [(d.start_local, d.start_local)]
        for (a, b), code in zip(recorded, names, strict=True):
            whole = (
                f"part of deployment {d.code}, " if len(recorded) > 1 else ""
            ) + f"camera not recording {left_out}"
            if never:
                whole = (
                    f"camera set up {iso(start)} to {iso(end)} but not recording the whole "
                    f"time ({left_out}): no effort, deploymentEnd = deploymentStart"
                )
            dep_rows.append(
                {
                    **row,
                    "deploymentID": code,
                    "deploymentStart": iso(a.replace(tzinfo=tz)),
                    "deploymentEnd": iso(b.replace(tzinfo=tz)),
                    "deploymentComments": " | ".join(
                        c for c in (row["deploymentComments"], whole) if c
                    ),
                }
            )

    # -- media and their observations
    media_rows: list[tuple[tuple, dict[str, str]]] = []
    obs_rows: list[tuple[tuple, dict[str, str]]] = []
    media.sort(
        key=lambda m: (
            dep_by_id[m.deployment_id].code,
            m.timestamp_utc or datetime.min,
            m.file_name,
            m.id,
        )
    )
    for m in media:
        if m.time_flag or m.timestamp_utc is None or m.timestamp_local is None:
            result.media_untimed += 1
            continue
        d = dep_by_id[m.deployment_id]
        code = _part(parts[d.id], m.timestamp_utc, result, m.uid or f"m{m.id}")
        mid = m.uid or f"m{m.id}"
        is_person = m.id in person_media
        mobs = obs_by_media.get(m.id, [])
        if public and is_person:
            result.media_persons_left_out += 1
            result.observations_persons_left_out += len(mobs)
            continue
        exif, dropped = _exif(_raw(m.extra, "exifData"), public)
        result.exif_dropped += dropped
        capture = _raw(m.extra, "captureMethod") or "activityDetection"
        meta.capture.add(capture)
        src = _media_source(project, m)
        person_boxes = (
            [(b.x, b.y, b.width, b.height) for b in boxes.get(m.id, []) if b.category == "person"]
            + [
                (o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h)
                for o in mobs
                if _obs_type(o) == "human" and o.bbox_x is not None
            ]
            + [
                (r.x, r.y, r.width, r.height)
                for r in reviewed.get(m.id, [])
                if r.category == "person" and r.x is not None
            ]
        )
        meta.files[mid] = (src, person_boxes, is_person)
        if _raw(m.extra, "filePath"):
            meta.package_paths[mid] = _raw(m.extra, "filePath")
        if src is not None or mid not in meta.package_paths:
            meta.hashes[mid] = m.sha256
        file_public = _raw(m.extra, "filePublic") or "false"
        key = (code, m.timestamp_utc, m.file_name, mid)
        media_rows.append(
            (
                key,
                {
                    "mediaID": mid,
                    "deploymentID": code,
                    "captureMethod": capture,
                    "timestamp": iso_local(m.timestamp_local, m.utc_offset_min),
                    "filePath": _raw(m.extra, "filePath") or m.source_relpath,
                    "filePublic": file_public,
                    "fileName": m.file_name,
                    "fileMediatype": m.mime or f"{m.mediatype or 'image'}/octet-stream",
                    "exifData": exif,
                    "favorite": _raw(m.extra, "favorite"),
                    "mediaComments": _raw(m.extra, "mediaComments"),
                },
            )
        )
        event = groups.get(m.event_id) if m.event_id else None
        ev_id = f"{code}-e{event.start_utc:%Y%m%dT%H%M%S}" if event else ""
        ev_start = event.start_utc if event else m.timestamp_utc
        ev_end = event.end_utc if event else m.timestamp_utc
        human_made = [o for o in mobs if _human_source(o.source)]
        revs = reviewed.get(m.id, [])
        for o in mobs:
            # An imported observation keeps the event its package gave it.
            row = _obs_row(
                o,
                code,
                mid,
                o.event_uid if o.event_uid is not None else ev_id,
                o.event_start_utc or ev_start,
                o.event_end_utc or o.event_start_utc or ev_end,
                inds,
                meta,
            )
            if (
                row["observationType"] == "animal"
                and row["bboxX"] == ""
                and len(mobs) == 1
                and not revs  # a person's boxes say where the animal is, not the machine's
            ):
                best = max(
                    (b for b in boxes.get(m.id, []) if b.category == "animal"),
                    key=lambda b: b.score,
                    default=None,
                )
                if best is not None:
                    row["bboxX"], row["bboxY"], row["bboxWidth"], row["bboxHeight"] = _box(
                        best.x, best.y, best.width, best.height
                    )
            obs_rows.append(((code, ev_start, 1, m.timestamp_utc, row["observationID"]), row))
        ev = (code, mid, ev_id, ev_start, ev_end)
        for row in _reviewed_rows(revs, mobs, ev, meta, result):
            result.reviewed_observations += 1
            obs_rows.append(((code, ev_start, 1, m.timestamp_utc, row["observationID"]), row))
        md = latest.get(m.id)
        if md is not None and not human_made and not revs and md.verdict != "error":
            for row in _machine_rows(md, boxes.get(m.id, []), code, mid, ev_id, ev_start, ev_end):
                meta.levels.add("media")
                result.machine_observations += 1
                obs_rows.append(((code, ev_start, 1, m.timestamp_utc, row["observationID"]), row))

    for o in event_obs:
        d = dep_by_id[o.deployment_id]
        if public and _obs_type(o) == "human":
            result.observations_persons_left_out += 1
            continue
        start = o.event_start_utc
        end = o.event_end_utc or start
        if start is None:
            raise BadInputError(
                f"observation {o.uid or o.id}",
                "event-level observation without a start time",
                "set its event start and end",
            )
        code = _part(parts[d.id], start, result, o.uid or f"o{o.id}")
        row = _obs_row(o, code, "", o.event_uid or "", start, end, inds, meta)
        obs_rows.append(((code, start, 0, start, row["observationID"]), row))

    media_rows.sort(key=lambda kv: kv[0])
    obs_rows.sort(key=lambda kv: kv[0])
    tables = {
        "deployments": dep_rows,
        "media": [r for _, r in media_rows],
        "observations": [r for _, r in obs_rows],
    }
    result.deployments = len(dep_rows)
    result.media = len(tables["media"])
    result.observations = len(tables["observations"])
    return tables, meta


def _utc(naive_local: datetime, tz: Any) -> datetime:
    """A deployment's naive local time as naive UTC."""
    return naive_local.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def _recording(
    d: Deployment, malfunctions: list[Malfunction]
) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime, str]]]:
    """``(recorded, gaps)``: the periods the camera recorded and those it did not.

    Naive local times of the deployment; a malfunction is clipped to the
    deployment, overlapping ones merge. A deployment that never recorded
    is written as the instant it was set up (``deploymentEnd`` =
    ``deploymentStart``): zero effort for anyone recomputing it from the
    package, as in irbis, and its gaps say why.
    """
    spans = sorted(
        (max(m.start_local, d.start_local), min(m.end_local, d.end_local), m.reason or "")
        for m in malfunctions
        if m.end_local > d.start_local and m.start_local < d.end_local
    )
    gaps: list[tuple[datetime, datetime, str]] = []
    for a, b, why in spans:
        if b <= a:
            continue
        if gaps and a <= gaps[-1][1]:
            pa, pb, pwhy = gaps[-1]
            reasons = "; ".join(r for r in dict.fromkeys((pwhy, why)) if r)
            gaps[-1] = (pa, max(pb, b), reasons)
        else:
            gaps.append((a, b, why))
    recorded: list[tuple[datetime, datetime]] = []
    cursor = d.start_local
    for a, b, _ in gaps:
        if a > cursor:
            recorded.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < d.end_local:
        recorded.append((cursor, d.end_local))
    return (recorded or [(d.start_local, d.start_local)]), gaps


def _part(
    parts: list[tuple[datetime, datetime, str]], utc: datetime, result: ExportResult, what: str
) -> str:
    """The deploymentID of the part holding naive UTC time ``utc``.

    A time in a malfunction goes to the part before it (the first part when
    it precedes them all), noted: the file exists, the camera was said not
    to record.
    """
    if len(parts) == 1:
        a, b, code = parts[0]
        if a == b and utc != a:  # a deployment whose camera never recorded
            result.notes.append(f"{what}: taken while its camera was noted as not recording")
        return code
    before = parts[0][2]
    for a, b, code in parts:
        if a <= utc <= b:
            return code
        if a <= utc:
            before = code
    result.notes.append(f"{what}: taken while its camera was noted as not recording; in {before}")
    return before


def _media_source(project: Project, m: Media) -> Path | None:
    """The original file on this machine, if there is one."""
    p = project.blob_dir / m.stored_path if m.storage == "copy" else Path(m.stored_path)
    return p if p.is_absolute() and p.is_file() else None


def _obs_row(
    o: Observation,
    dep_code: str,
    media_id: str,
    event_id: str,
    ev_start: datetime,
    ev_end: datetime,
    inds: dict[int, Individual],
    meta: _Meta,
) -> dict[str, str]:
    ind = inds.get(o.individual_id) if o.individual_id else None
    individual = ind.name if ind else (o.individual or "")
    sex = _enum(o.sex, _SEXES) or (_enum(ind.sex, _SEXES) if ind else "")
    kind = _obs_type(o)
    level = "event" if o.level == "event" else "media"
    if o.species and kind == "animal":
        meta.species.add(meta.scientific(o.species))
    meta.levels.add(level)
    meta.individuals |= bool(individual)
    cls_ts = _raw(o.extra, "classificationTimestamp")
    imported = "camtrapdp" in (o.extra or {})
    # Folder names and tags were given before ingest: their time is unknown.
    if not imported and (o.source == "human" or o.source.startswith("model")):
        cls_ts = iso_utc(o.created_utc)
    by = o.by or (o.source.split(":", 1)[1] if o.source.startswith("model:") else "")
    return {
        "observationID": o.uid or f"o{o.id}",
        "deploymentID": dep_code,
        "mediaID": media_id,
        "eventID": event_id,
        "eventStart": iso_utc(ev_start),
        "eventEnd": iso_utc(ev_end),
        "observationLevel": level,
        "observationType": kind,
        "cameraSetupType": _raw(o.extra, "cameraSetupType"),
        "scientificName": meta.scientific(o.species),
        "count": number(o.count) if o.count is not None else "",
        "lifeStage": _enum(o.life_stage, _LIFE_STAGES),
        "sex": sex,
        "behavior": o.behavior or "",
        "individualID": individual,
        "individualPositionRadius": _raw(o.extra, "individualPositionRadius"),
        "individualPositionAngle": _raw(o.extra, "individualPositionAngle"),
        "individualSpeed": _raw(o.extra, "individualSpeed"),
        **dict(
            zip(
                ("bboxX", "bboxY", "bboxWidth", "bboxHeight"),
                _box(o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h),
                strict=True,
            )
        ),
        "classificationMethod": _method(o),
        "classifiedBy": by,
        "classificationTimestamp": cls_ts,
        "classificationProbability": number(o.probability),
        "observationTags": _tags(o),
        "observationComments": o.comments or "",
    }


def _tags(o: Observation) -> str:
    """``observationTags``: an imported package's, and for an accepted proposal
    (machine-proposed, person-confirmed) which model proposed it with which
    probability.

    The row itself is the person's (``classificationMethod`` ``human``,
    ``classifiedBy`` the person, the time of the acceptance, no probability);
    the model's own classification of the file is its own ``machine`` row.
    """
    tags = _raw(o.extra, "observationTags")
    prop = (o.extra or {}).get("proposal")
    if not isinstance(prop, dict) or o.source != "human":
        return tags
    said = [
        "classification:machine-proposed-person-confirmed",
        f"proposedBy:{str(prop.get('by') or prop.get('model', '')).replace('|', '/')}",
    ]
    if prop.get("probability") is not None:
        said.append(f"proposedProbability:{number(prop['probability'])}")
    return "|".join([t for t in (tags,) if t] + said)


def _machine_rows(
    md: MediaDetection,
    boxes: list[DetectionBox],
    dep_code: str,
    media_id: str,
    event_id: str,
    ev_start: datetime,
    ev_end: datetime,
) -> list[dict[str, str]]:
    """The detector's verdict on one file as ``machine`` observations."""
    base = {name: "" for name in field_names("observations")}
    base.update(
        deploymentID=dep_code,
        mediaID=media_id,
        eventID=event_id,
        eventStart=iso_utc(ev_start),
        eventEnd=iso_utc(ev_end),
        observationLevel="media",
        classificationMethod="machine",
        classifiedBy=f"{md.model} {md.model_version}".strip(),
        classificationTimestamp=iso_utc(md.created_utc),
    )
    rows = []
    for b in sorted(boxes, key=lambda b: (-b.score, b.id)):
        kind = _DETECTOR_TYPE.get(b.category)
        if kind is None:
            continue
        x, y, w, h = _box(b.x, b.y, b.width, b.height)
        rows.append(
            {
                **base,
                "observationID": f"d{b.id}",
                "observationType": kind,
                "bboxX": x,
                "bboxY": y,
                "bboxWidth": w,
                "bboxHeight": h,
                "classificationProbability": number(round(min(max(b.score, 0.0), 1.0), 6)),
            }
        )
    if not rows and md.verdict == "blank":
        rows.append({**base, "observationID": f"d{md.id}-blank", "observationType": "blank"})
    return rows


def _reviewed_rows(
    revs: list[ReviewedBox],
    mobs: list[Observation],
    ev: tuple[str, str, str, datetime, datetime],
    meta: _Meta,
    result: ExportResult,
) -> list[dict[str, str]]:
    """The boxes and marks people made on one file as ``human`` media-level observations.

    ``mobs``: the file's current observations. A mark ("no animal here",
    "animal here") that a human-classified observation of the file says
    already is not written twice; a "no animal here" that contradicts one
    naming an animal, human or vehicle is left out (noted): the census keeps
    the capture until people agree.
    """
    dep_code, media_id, event_id, ev_start, ev_end = ev
    # What people said of the file (a machine's classification is not a person's:
    # it stands beside theirs, as Camtrap DP allows).
    by_people = [o for o in mobs if _method(o) == "human"]
    said = {_obs_type(o) for o in by_people}
    species = {o.species for o in by_people if o.species and _obs_type(o) == "animal"}
    base = {name: "" for name in field_names("observations")}
    base.update(
        deploymentID=dep_code,
        mediaID=media_id,
        eventID=event_id,
        eventStart=iso_utc(ev_start),
        eventEnd=iso_utc(ev_end),
        observationLevel="media",
        classificationMethod="human",
    )
    rows = []
    for r in revs:
        kind = _REVIEWED_TYPE.get(r.category)
        if kind is None:
            continue
        if r.x is None:
            if kind == "blank" and said & {"animal", "human", "vehicle"}:
                # Another observation of this file names something there: keep it,
                # do not publish two contradicting statements about one file.
                result.notes.append(
                    f"observations: 'no animal here' on {media_id} (by {r.created_by}) "
                    "left out: a person's observation of the file names an animal"
                )
                continue
            if kind in said:
                continue  # the file's observations say it already
            said.add(kind)
        box = _box(r.x, r.y, r.width, r.height)
        if r.x is not None and box[0] == "":
            continue
        name = (
            meta.scientific(next(iter(species))) if kind == "animal" and len(species) == 1 else ""
        )
        if name:
            meta.species.add(name)
        rows.append(
            {
                **base,
                "observationID": f"r{r.id}",
                "observationType": kind,
                "scientificName": name,
                **dict(zip(("bboxX", "bboxY", "bboxWidth", "bboxHeight"), box, strict=True)),
                "classifiedBy": r.created_by,
                "classificationTimestamp": iso_utc(r.created_utc),
                "observationComments": (
                    f"machine box d{r.detection_id} accepted" if r.detection_id else ""
                ),
            }
        )
    if rows:
        meta.levels.add("media")
    return rows


def _copy_files(
    project: Project,
    tmp: Path,
    tables: dict[str, list[dict[str, str]]],
    meta: _Meta,
    person_writer: PersonWriter | None,
    result: ExportResult,
    public: bool = False,
    progress: Progress | None = None,
) -> None:
    """Copy (or blur-copy) each media file into ``media/`` and point ``filePath`` at it."""
    used: set[str] = set()
    total = len(tables["media"])
    for done, row in enumerate(tables["media"], 1):
        if progress is not None:
            progress("copying media", done, total)
        src, person_boxes, is_person = meta.files[row["mediaID"]]
        if src is None:
            result.files_not_copied += 1
            continue
        name = PurePosixPath(row["fileName"] or src.name).name
        rel = f"media/{row['deploymentID']}/{name}"
        own = meta.package_paths.get(row["mediaID"], "")
        if own.startswith("media/") and ".." not in own and "\\" not in own and own not in used:
            rel = own  # the path the imported package gave its file: a lossless round trip
        elif rel in used:
            rel = f"media/{row['deploymentID']}/{row['mediaID']}-{name}"
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if is_person:
            # Never copy a person image as it is; blur or leave it out.
            if person_writer is None or not person_writer(src, dest, person_boxes):
                dest.unlink(missing_ok=True)
                result.files_not_copied += 1
                row["filePublic"] = "false"
                continue
            result.files_blurred += 1
            if public and not _scrub_in_place(dest):
                dest.unlink(missing_ok=True)
                result.files_not_copied += 1
                row["filePublic"] = "false"
                continue
        elif public:
            if not _copy_without_location(src, dest):
                result.files_not_copied += 1
                result.notes.append(
                    f"media: {row['mediaID']} ({name}) not copied: irbis cannot remove the "
                    "location data of its format"
                )
                row["filePublic"] = "false"
                continue
        else:
            shutil.copy2(src, dest)
        used.add(rel)
        result.files_copied += 1
        result.copied_ids.add(row["mediaID"])
        row["filePath"] = rel
        row["filePublic"] = "true"


def _copy_without_location(src: Path, dest: Path) -> bool:
    """Copy a media file without the place it was taken (:func:`irbis.store.scrub.scrub`).

    Exif GPS, XMP, comments, PNG text chunks, MP4/MOV location atoms and GPS
    tracks are removed byte by byte (pixels and samples untouched; the rest of
    the Exif kept). A photo in a format irbis cannot clean is re-encoded
    without any metadata (JPEGs with their own quantisation tables); a video
    it cannot clean is not copied (returns False).
    """
    from irbis.store.scrub import ScrubError, scrub

    data = src.read_bytes()
    try:
        dest.write_bytes(scrub(data))
        return True
    except ScrubError:
        pass
    from PIL import Image

    try:
        with Image.open(src) as im:
            fmt = im.format or "PNG"
            if fmt == "JPEG":
                im.info.clear()
                im.save(dest, format="JPEG", quality="keep")
            else:
                # A plain copy of the pixels: no tags, text or comment of the file's own.
                im.load()
                fresh = im.copy()
                fresh.info = {}
                fresh.save(dest, format=fmt)
    except (OSError, ValueError, SyntaxError, KeyError):
        dest.unlink(missing_ok=True)
        return False
    return True


def _scrub_in_place(path: Path) -> bool:
    """Remove location data from a file this export wrote (a blurred copy)."""
    from irbis.store.scrub import ScrubError, scrub

    try:
        path.write_bytes(scrub(path.read_bytes()))
    except ScrubError:
        return False
    return True


def _descriptor(
    project: Project,
    tables: dict[str, list[dict[str, str]]],
    meta: _Meta,
    policy: LocationPolicy,
    result: ExportResult,
) -> dict[str, Any]:
    """``datapackage.json``: imported metadata where there is some, else derived."""
    from irbis.exchange.package_meta import saved as meta_set

    saved = dict((project.settings.extra or {}).get("camtrapdp", {}).get("package", {}))
    # What the project set with `irbis project meta` wins over an imported package's.
    own = meta_set(project)
    saved.update({k: v for k, v in own.items() if k != "samplingDesign"})
    name = project.settings.name or project.root.name
    resources: list[dict[str, Any]] = [
        {
            "name": t,
            "path": f"{t}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            # The profile requires the URL of the table schema version used.
            "schema": TABLE_SCHEMA_URLS[t],
        }
        for t in TABLES
    ]
    resources += [r for r in saved.pop("extra_resources", []) if "data" in r]
    d: dict[str, Any] = {
        "resources": resources,
        "profile": PROFILE_URL,
        "name": slug(saved.get("name") or name),
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": saved.get("title") or f"{name}: camera-trap census",
    }
    # The team's accounts name people and their organisations: a public
    # package lists them only when the project chose to (saved contributors).
    team = [] if result.public else meta.users
    contributors = (
        saved.get("contributors")
        or [
            {
                "title": u.display_name or u.name,
                "role": "contact" if u.role == "admin" else "contributor",
                **({"organization": u.organisation} if u.organisation else {}),
            }
            for u in team
        ]
        or [{"title": f"{name} census team", "role": "contact"}]
    )
    d["contributors"] = contributors
    for key in (
        "id",
        "description",
        "version",
        "keywords",
        "image",
        "homepage",
        "bibliographicCitation",
        "relatedIdentifiers",
        "references",
    ):
        if key in saved:
            d[key] = saved[key]
    d["sources"] = [s for s in saved.get("sources", []) if s.get("title") != "irbis"] + [
        {"title": "irbis", "version": __version__}
    ]
    d["licenses"] = saved.get("licenses") or [
        {
            "name": "CC-BY-4.0",
            "path": "https://creativecommons.org/licenses/by/4.0/",
            "scope": "data",
        },
        {
            "name": "CC-BY-4.0",
            "path": "https://creativecommons.org/licenses/by/4.0/",
            "scope": "media",
        },
    ]
    proj = dict(saved.get("project") or {})
    proj.setdefault("title", name)
    if own.get("samplingDesign"):
        proj["samplingDesign"] = own["samplingDesign"]
    proj.setdefault("samplingDesign", "targeted")
    proj["captureMethod"] = (
        sorted(meta.capture) or proj.get("captureMethod") or ["activityDetection"]
    )
    proj["individualAnimals"] = bool(meta.individuals or proj.get("individualAnimals"))
    levels = [lv for lv in ("media", "event") if lv in meta.levels]
    proj["observationLevel"] = levels or proj.get("observationLevel") or ["media"]
    d["project"] = proj
    if result.generalised:
        d["coordinatePrecision"] = max(policy.precision_deg, saved.get("coordinatePrecision", 0))
    elif "coordinatePrecision" in saved:
        d["coordinatePrecision"] = saved["coordinatePrecision"]
    d["spatial"] = _spatial(meta.coords)
    d["temporal"] = {
        "start": min(meta.starts).date().isoformat() if meta.starts else "",
        "end": max(meta.ends).date().isoformat() if meta.ends else "",
    }
    used = meta.species | {
        r["scientificName"] for r in tables.get("observations", []) if r.get("scientificName")
    }
    d["taxonomic"] = _taxonomic(sorted(used), saved.get("taxonomic", []), meta.names)
    return d


def _taxonomic(
    names: list[str], imported: list[dict[str, Any]], listed: dict[str, Any]
) -> list[dict[str, Any]]:
    """``taxonomic`` entries of every scientific name used (people and livestock too).

    Each entry takes what irbis's taxa table knows of the name, then what an
    imported package said, then the project's species list (``irbis species``),
    each over the one before; vernacular names are merged by language. A name
    only given without a language (``und``) is left out when a language names
    it already.
    """
    from irbis.store.taxa import lookup

    known = {t.get("scientificName"): t for t in imported if isinstance(t, dict)}
    by_name: dict[str, Any] = {}
    for sp in listed.values():
        by_name.setdefault(sp.scientific_name or sp.label, sp)
    out = []
    for name in names:
        layers: list[dict[str, Any]] = []
        t = lookup(name)
        if t is not None and t.scientific_name == name:
            layers.append(
                {
                    "taxonID": t.taxon_id,
                    "taxonRank": t.rank,
                    "kingdom": t.kingdom,
                    "vernacularNames": t.vernacular_names,
                }
            )
        layers.append(known.get(name) or {})
        if name in by_name:
            layers.append(by_name[name].taxonomic())
        entry: dict[str, Any] = {"scientificName": name}
        vernacular: dict[str, str] = {}
        for layer in layers:
            for k, v in layer.items():
                if k == "vernacularNames" and isinstance(v, dict):
                    vernacular.update({lang: n for lang, n in v.items() if n})
                elif k != "scientificName" and v not in ("", None):
                    entry[k] = v
        und = vernacular.get("und")
        if und and any(n == und for lang, n in vernacular.items() if lang != "und"):
            del vernacular["und"]
        if vernacular:
            entry["vernacularNames"] = vernacular
        out.append(entry)
    return out


def _spatial(coords: list[tuple[float, float]]) -> dict[str, Any]:
    """A GeoJSON box around the exported (possibly generalised) coordinates."""
    if not coords:
        return {"type": "Polygon", "coordinates": []}
    lats = [c[0] for c in coords]
    lons = [c[1] for c in coords]
    s, n, w, e = min(lats), max(lats), min(lons), max(lons)
    if s == n and w == e:
        return {"type": "Point", "coordinates": [w, s]}
    return {
        "type": "Polygon",
        "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
    }
