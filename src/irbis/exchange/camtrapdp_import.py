"""Read a Camtrap DP 1.0.x package (TRAPPER, Agouti, Timelapse...) into a project.

- ``deployments.csv`` -> stations (one per ``locationName``, else
  ``locationID``; the ``locationID`` is kept in the station's covariates) and
  deployments (``code`` = ``deploymentID``, time zone = the UTC offset of
  ``deploymentStart``). Columns irbis does not model (``setupBy``,
  ``cameraHeight``, ``baitUse``, ``habitat``...) are kept verbatim in the
  deployment's ``extra["camtrapdp"]``, as is a deployment's own
  latitude/longitude where it differs from its station's.
- ``media.csv`` -> media rows with ``storage = 'reference'``, ``uid`` =
  ``mediaID``. A relative ``filePath`` that exists inside the package is
  hashed (sha256) and referenced by its absolute path; URLs and missing files
  get a stable hash of the ``mediaID`` so the unique ``sha256`` still holds.
  Times keep their offset: ``timestamp_local``, ``timestamp_utc`` and
  ``utc_offset_min``.
- ``observations.csv`` -> observations (``uid``, level, event ID/start/end,
  type, box, classification), ``individualID`` -> an individual of that name.

Everything is written in one transaction: a bad row stops the import with
one line naming the file and row, and the project is left as it was.
Package metadata (title, contributors, project, licenses, taxonomy...) is kept
in the project settings so that exporting the project again reproduces it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.core.text import MAX_CELL, NUL_HINT, NUL_REASON, cell_limit, check_no_nul
from irbis.exchange.camtrapdp_rows import Progress, offset_name, parse_time
from irbis.exchange.camtrapdp_validate import TABLES
from irbis.exchange.camtrapdp_versions import start_upgrade
from irbis.store.project import Project
from irbis.store.schema import (
    Camera,
    Deployment,
    Individual,
    IngestBatch,
    Media,
    Observation,
    Station,
)
from irbis.store.sequence_summary import refresh as refresh_summaries

__all__ = ["ImportResult", "import_camtrapdp"]

_REQUIRED = {
    "deployments": ("deploymentID", "latitude", "longitude", "deploymentStart", "deploymentEnd"),
    "media": ("mediaID", "deploymentID", "timestamp", "filePath"),
    "observations": ("observationID", "deploymentID", "observationType"),
}
# Deployment columns stored in irbis's own columns (everything else goes to extra).
_DEP_MODELLED = {
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
    "cameraID",
    "cameraModel",
    "deploymentComments",
}
_MEDIA_MODELLED = {"mediaID", "deploymentID", "timestamp", "fileName", "fileMediatype"}
_OBS_MODELLED = {
    "observationID",
    "deploymentID",
    "mediaID",
    "eventID",
    "eventStart",
    "eventEnd",
    "observationLevel",
    "observationType",
    "scientificName",
    "count",
    "lifeStage",
    "sex",
    "behavior",
    "individualID",
    "bboxX",
    "bboxY",
    "bboxWidth",
    "bboxHeight",
    "classifiedBy",
    "classificationProbability",
    "observationComments",
}
_OBS_TYPES = {"animal", "human", "vehicle", "blank", "unknown", "unclassified"}


@dataclass
class ImportResult:
    """What :func:`import_camtrapdp` stored."""

    path: Path
    stations_new: int = 0
    deployments: int = 0
    media: int = 0
    media_files_found: int = 0
    observations: int = 0
    individuals_new: int = 0
    exif_not_json: int = 0
    #: The Camtrap DP version the package names (``None``: it names none).
    version: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        return d


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _rows(
    root: Path, rel: str, table: str, progress: Progress | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, row)`` for each data row; the header is row 1."""
    path = root / rel
    if not path.is_file():
        raise BadInputError(str(path), f"the {table} table is missing", "check the package folder")
    i = -1
    try:
        with cell_limit(), _open_text(path) as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in _REQUIRED[table] if c not in header]
            if missing:
                raise BadInputError(
                    str(path),
                    f"missing column(s) {', '.join(missing)}",
                    "is this a Camtrap DP 1.0 table?",
                )
            check_no_nul(((f"column {h!r}", h) for h in header), f"{rel}:row 1")
            for i, row in enumerate(reader):  # noqa: B007 - i names the row of a read error
                where = f"{rel}:row {i + 2}"
                cells = {k: (v or "").strip() for k, v in row.items() if k}
                check_no_nul(((f"column {k!r}", v) for k, v in cells.items()), where)
                yield where, cells
                if progress is not None:
                    progress(table, i + 1, None)
    except UnicodeDecodeError:
        # Text is decoded in blocks: find the line itself for the message.
        raise BadInputError(
            f"{rel}:row {_first_line_not_utf8(path)}",
            "not UTF-8 text",
            "save the table as CSV in UTF-8",
        ) from None
    except (csv.Error, gzip.BadGzipFile, EOFError, OSError) as exc:
        if isinstance(exc, csv.Error) and "field larger than field limit" in str(exc):
            reason = f"a cell is longer than {MAX_CELL:,} characters"
        else:
            reason = f"cannot be read ({exc})"
        raise BadInputError(f"{rel}:row {i + 3}", reason, "export the table again") from None


def _first_line_not_utf8(path: Path) -> int:
    """The 1-based number of the first line of ``path`` that is not UTF-8."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return n
    return 1


def _float(v: str, where: str, col: str, lo: float | None = None, hi: float | None = None):
    if v == "":
        return None
    try:
        x = float(v)
    except ValueError as exc:
        raise BadInputError(where, f"{col} {v!r} is not a number", "fix the cell") from exc
    if not math.isfinite(x):
        raise BadInputError(where, f"{col} {v!r} is not a finite number", "fix the cell")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise BadInputError(where, f"{col} {v} is outside {lo}..{hi}", "fix the cell")
    return x


def _kept(row: dict[str, str], modelled: set[str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k not in modelled and v != ""}


def _naive_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None)


def _offset_min(dt: datetime) -> int:
    return int((dt.utcoffset() or timedelta(0)).total_seconds() // 60)


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _resource_paths(root: Path) -> tuple[dict[str, str], dict[str, Any]]:
    dp = root / "datapackage.json"
    paths = {t: f"{t}.csv" for t in TABLES}
    if not dp.is_file():
        raise BadInputError(
            str(root),
            "no datapackage.json: not a Camtrap DP package",
            "give the package's folder, the one holding datapackage.json and its tables",
        )
    try:
        descriptor = json.loads(dp.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(str(dp), f"not valid JSON ({exc})", "fix the descriptor") from None
    except UnicodeDecodeError:
        raise BadInputError(str(dp), "not UTF-8 text", "save it as UTF-8 JSON") from None
    except RecursionError:
        raise BadInputError(
            str(dp), "nested too deeply to read", "a Camtrap DP descriptor is a few levels deep"
        ) from None
    if not isinstance(descriptor, dict):
        raise BadInputError(
            str(dp),
            f"is a JSON {type(descriptor).__name__}, not an object",
            "a Camtrap DP descriptor is an object with a resources list",
        )
    resources = descriptor.get("resources", [])
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        raise BadInputError(
            str(dp),
            "resources is not a list of objects",
            'give each table as {"name": ..., "path": ...}',
        )
    for res in resources:
        if res.get("name") in paths and isinstance(res.get("path"), str):
            if "\x00" in res["path"]:
                raise BadInputError(str(dp), f"the path of {res['name']} {NUL_REASON}", NUL_HINT)
            paths[res["name"]] = res["path"]
    return paths, descriptor


def import_camtrapdp(
    package: Path | str, project: Project, *, progress: Progress | None = None
) -> ImportResult:
    """Import the Camtrap DP package in folder ``package`` into ``project``.

    Parameters
    ----------
    package:
        Folder with ``datapackage.json`` (required: a folder without one is
        not a package) and the three CSV tables (``.csv`` or ``.csv.gz``) at
        the paths its resources name, else ``deployments.csv`` and so on.
    project:
        The open project to add to. Deployment codes and media IDs must be
        new to it.
    progress:
        Called as ``progress(table, rows_read, None)`` for every row read.

    Returns
    -------
    ImportResult
        Counts of what was stored.

    Raises
    ------
    BadInputError
        For the first bad row (``file:row N``); nothing is stored then.
    """
    root = Path(package).resolve()
    if not root.is_dir():
        raise BadInputError(str(root), "no such folder", "give the folder of a Camtrap DP package")
    paths, descriptor = _resource_paths(root)
    # 1.0-rc.1 is read as 1.0.2 (each change noted); 0.x drafts are refused.
    upgrade = start_upgrade(descriptor, str(root / "datapackage.json"))
    result = ImportResult(path=root, version=upgrade.version)
    now = datetime.now(UTC).replace(tzinfo=None)

    with project.session() as s, s.begin():
        stations = {st.name: st for st in s.scalars(select(Station))}
        known_codes = set(s.scalars(select(Deployment.code)))
        known_sha = set(s.scalars(select(Media.sha256)))
        known_uids = set(s.scalars(select(Media.uid).where(Media.uid.is_not(None))))
        cameras = {(c.make, c.model, c.serial): c for c in s.scalars(select(Camera))}
        individuals = {i.name: i for i in s.scalars(select(Individual))}

        # -- deployments
        deps: dict[str, Deployment] = {}
        for where, row in _rows(root, paths["deployments"], "deployments", progress):
            upgrade.row("deployments", row)
            code = row["deploymentID"]
            if not code:
                raise BadInputError(where, "empty deploymentID", "give each deployment an ID")
            if code in deps or code in known_codes:
                raise BadInputError(
                    where,
                    f"deployment {code!r} is already known",
                    "deploymentIDs must be unique and new to the project",
                )
            name = row.get("locationName") or row.get("locationID") or code
            lat = _float(row["latitude"], where, "latitude", -90, 90)
            lon = _float(row["longitude"], where, "longitude", -180, 180)
            if lat is None or lon is None:
                raise BadInputError(where, "latitude/longitude empty", "give WGS84 coordinates")
            extra = _kept(row, _DEP_MODELLED)
            st = stations.get(name)
            if st is None:
                st = Station(name=name, lat=lat, lon=lon, covariates={})
                if row.get("locationID"):
                    st.covariates = {"locationID": row["locationID"]}
                s.add(st)
                stations[name] = st
                result.stations_new += 1
            elif st.lat is None or st.lon is None:
                st.lat, st.lon = lat, lon
            if (st.lat, st.lon) != (lat, lon):
                extra["latitude"], extra["longitude"] = row["latitude"], row["longitude"]
            if not row["deploymentStart"] or not row["deploymentEnd"]:
                raise BadInputError(where, "deploymentStart/End empty", "give both times")
            start = parse_time(row["deploymentStart"], where, "deploymentStart")
            end = parse_time(row["deploymentEnd"], where, "deploymentEnd")
            if end < start:
                raise BadInputError(where, "deploymentEnd is before deploymentStart", "fix them")
            for col, t in (("deploymentStart", start), ("deploymentEnd", end)):
                if not 1900 <= t.year <= 2200:
                    raise BadInputError(
                        where,
                        f"{col} {row[col]!r} is out of range (years 1900 to 2200)",
                        "give the real date the camera was set up or taken down",
                    )
            make, model = "", row.get("cameraModel", "")
            if "-" in model:
                make, model = (p.strip() for p in model.split("-", 1))
            cam = None
            if make or model or row.get("cameraID"):
                key = (make, model, row.get("cameraID", ""))
                cam = cameras.get(key)
                if cam is None:
                    cam = cameras[key] = Camera(make=key[0], model=key[1], serial=key[2])
                    s.add(cam)
            dep = Deployment(
                code=code,
                station=st,
                camera=cam,
                start_local=start.replace(tzinfo=None),
                end_local=end.astimezone(start.tzinfo).replace(tzinfo=None),
                timezone=offset_name(_offset_min(start)),
                clock_offset_s=0.0,
                comments=row.get("deploymentComments", ""),
                extra={"camtrapdp": extra},
            )
            s.add(dep)
            deps[code] = dep
        s.flush()
        result.deployments = len(deps)

        batch = IngestBatch(
            source=str(root),
            started_utc=now,
            finished_utc=now,
            status="done",
            options={"format": "camtrapdp", "profile": descriptor.get("profile", "")},
        )
        s.add(batch)
        s.flush()

        # -- media
        media: dict[str, Media] = {}
        for where, row in _rows(root, paths["media"], "media", progress):
            upgrade.row("media", row)
            mid = row["mediaID"]
            if not mid:
                raise BadInputError(where, "empty mediaID", "give each media file an ID")
            if mid in media or mid in known_uids:
                raise BadInputError(
                    where, f"mediaID {mid!r} is already known", "IDs must be unique"
                )
            dep = deps.get(row["deploymentID"])
            if dep is None:
                raise BadInputError(
                    where,
                    f"deploymentID {row['deploymentID']!r} is not in deployments.csv",
                    "every media row needs a deployment of this package",
                )
            if not row["timestamp"]:
                raise BadInputError(where, "empty timestamp", "give it with its UTC offset")
            ts = parse_time(row["timestamp"], where, "timestamp")
            file_path = row["filePath"]
            sha = size = None
            # Only a file shipped inside the package is stored as a reference;
            # a URL or a path leading elsewhere (``/etc/passwd``, ``../..``) is
            # kept as the package wrote it (``source_relpath``, for the round
            # trip) but never becomes a path irbis would open or serve.
            stored = ""
            if file_path and "://" not in file_path:
                try:
                    local = (root / file_path).resolve()
                    shipped = local.is_file() and local.is_relative_to(root)
                except (OSError, ValueError):
                    # A path the file system cannot even look up (too long, NUL):
                    # not a file of this package.
                    shipped = False
                if shipped:
                    sha, size = _sha256_file(local)
                    stored = str(local)
                    result.media_files_found += 1
            if sha is None or sha in known_sha:
                # No file here (a URL, or not shipped), or the same file twice.
                sha = hashlib.sha256(f"camtrapdp-media:{mid}".encode()).hexdigest()
                if sha in known_sha:
                    raise BadInputError(where, f"mediaID {mid!r} was imported before", "skip it")
            known_sha.add(sha)
            mime = row.get("fileMediatype") or "application/octet-stream"
            extra = _kept(row, _MEDIA_MODELLED)
            exif = extra.get("exifData")
            if exif:
                try:
                    if not isinstance(json.loads(exif), dict):
                        raise ValueError
                except ValueError:
                    result.exif_not_json += 1
            local_ts = ts.replace(tzinfo=None)
            m = Media(
                sha256=sha,
                size=size or 0,
                mediatype=mime.split("/", 1)[0][:10],
                mime=mime[:40],
                storage="reference",
                stored_path=stored,
                file_name=row.get("fileName") or PurePosixPath(file_path).name,
                source_relpath=file_path,
                batch_id=batch.id,
                deployment_id=dep.id,
                taken_raw=local_ts,
                taken_source="camtrapdp",
                file_utc_offset_min=_offset_min(ts),
                timestamp_local=local_ts,
                timestamp_utc=_naive_utc(ts),
                utc_offset_min=_offset_min(ts),
                time_flag="",
                uid=mid,
                tags=[],
                extra={"camtrapdp": extra},
            )
            s.add(m)
            media[mid] = m
        s.flush()
        result.media = len(media)
        batch.n_seen = batch.n_new = len(media)

        # -- observations
        seen_obs: set[str] = set()
        for where, row in _rows(root, paths["observations"], "observations", progress):
            upgrade.row("observations", row)
            oid = row["observationID"]
            if not oid or oid in seen_obs:
                raise BadInputError(where, f"observationID {oid!r} empty or repeated", "fix it")
            seen_obs.add(oid)
            dep = deps.get(row["deploymentID"])
            if dep is None:
                raise BadInputError(
                    where,
                    f"deploymentID {row['deploymentID']!r} is not in deployments.csv",
                    "every observation needs a deployment of this package",
                )
            level = row.get("observationLevel") or ("media" if row.get("mediaID") else "event")
            if level not in ("media", "event"):
                raise BadInputError(where, f"observationLevel {level!r}", "use media or event")
            kind = row["observationType"]
            if kind not in _OBS_TYPES:
                raise BadInputError(
                    where,
                    f"observationType {kind!r}",
                    "use one of " + ", ".join(sorted(_OBS_TYPES)),
                )
            m = None
            if row.get("mediaID"):
                m = media.get(row["mediaID"])
                if m is None:
                    raise BadInputError(
                        where, f"mediaID {row['mediaID']!r} is not in media.csv", "fix the row"
                    )
            elif level == "media":
                raise BadInputError(where, "media-level observation without mediaID", "add it")
            ev_start = ev_end = None
            if row.get("eventStart"):
                ev_start = _naive_utc(parse_time(row["eventStart"], where, "eventStart"))
            if row.get("eventEnd"):
                ev_end = _naive_utc(parse_time(row["eventEnd"], where, "eventEnd"))
            if level == "event" and ev_start is None:
                raise BadInputError(where, "event-level observation without eventStart", "add it")
            count = None
            if row.get("count"):
                try:
                    count = int(row["count"])
                except ValueError as exc:
                    raise BadInputError(
                        where, f"count {row['count']!r}", "give a whole number"
                    ) from exc
            box = [
                _float(row.get(c, ""), where, c, 0, 1)
                for c in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")
            ]
            prob = _float(row.get("classificationProbability", ""), where, "probability", 0, 1)
            method = row.get("classificationMethod", "")
            by = row.get("classifiedBy", "")
            source = (
                "human"
                if method == "human"
                else (f"model:{by}" if by else "model")[:40]
                if method == "machine"
                else "camtrapdp"
            )
            created = now
            if row.get("classificationTimestamp"):
                created = _naive_utc(
                    parse_time(row["classificationTimestamp"], where, "classificationTimestamp")
                )
            ind = None
            name = row.get("individualID", "")
            if name:
                ind = individuals.get(name)
                if ind is None:
                    ind = individuals[name] = Individual(
                        name=name,
                        species=row.get("scientificName", ""),
                        sex=row.get("sex") or "unknown",
                        created_by="camtrapdp import",
                        created_utc=now,
                    )
                    s.add(ind)
                    s.flush()
                    result.individuals_new += 1
            s.add(
                Observation(
                    media_id=m.id if m is not None else None,
                    deployment_id=dep.id if level == "event" else None,
                    level=level,
                    uid=oid,
                    event_uid=row.get("eventID") or None,
                    event_start_utc=ev_start,
                    event_end_utc=ev_end,
                    observation_type=kind,
                    species=row.get("scientificName") or None,
                    count=count,
                    life_stage=row.get("lifeStage") or None,
                    sex=row.get("sex") or None,
                    behavior=row.get("behavior") or None,
                    individual=name or None,
                    individual_id=ind.id if ind is not None else None,
                    bbox_x=box[0],
                    bbox_y=box[1],
                    bbox_w=box[2],
                    bbox_h=box[3],
                    probability=prob,
                    source=source,
                    by=by,
                    created_utc=created,
                    comments=row.get("observationComments", ""),
                    extra={"camtrapdp": _kept(row, _OBS_MODELLED)},
                )
            )
            result.observations += 1
        s.flush()

        # Sequences and events for irbis's own analyses (derived, rebuilt on re-timing).
        from irbis.ingest.grouping import regroup_deployments

        regroup_deployments(
            s,
            [d.id for d in deps.values()],
            burst_gap_s=project.settings.burst_gap_s,
            event_gap_min=project.settings.event_gap_min,
        )

    result.notes += upgrade.finish(descriptor)
    if descriptor:
        saved = {k: v for k, v in descriptor.items() if k not in ("resources", "profile")}
        saved["extra_resources"] = [
            r for r in descriptor.get("resources", []) if r.get("name") not in TABLES
        ]
        extra = dict(project.settings.extra or {})
        if "camtrapdp" in extra:
            result.notes.append("package metadata of an earlier import was replaced")
        extra["camtrapdp"] = {"package": saved, "imported_from": str(root)}
        project.settings.extra = extra
        project.save_settings()
    refresh_summaries(project.engine)  # the review grid's view of the imported sequences
    if result.exif_not_json:
        result.notes.append(
            f"{result.exif_not_json} media rows have exifData that is not a JSON object "
            "(kept as text and exported as it came)"
        )
    return result
