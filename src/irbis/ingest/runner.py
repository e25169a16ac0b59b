"""Pour one memory card (a folder or a zip) into a project.

The work is split so that a crash or Ctrl-C at any moment leaves the project as
it was before the last unfinished batch:

* files are read, hashed and parsed by a small thread pool (hashing and file
  reads release the GIL, so two cores are used);
* originals are written to the blob store by atomic rename before their rows
  are committed, so a committed row always points at a complete blob;
* rows are committed in batches, one transaction each;
* sequences and events are recomputed per deployment from the stored rows at
  the end, so a rerun after an interruption converges to the same state.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError
from irbis.core.types import MediaMetadata
from irbis.ingest.blobs import BlobStore
from irbis.ingest.grouping import regroup_deployments, retime_deployments
from irbis.ingest.layout import fields_from_path, parse_layout
from irbis.ingest.metadata import media_kind, read_metadata, read_video_metadata
from irbis.ingest.sources import Rejected, SourceFile, iter_source
from irbis.ingest.stamp import TESSERACT_MISSING
from irbis.ingest.timealign import align_to_stamps
from irbis.ingest.timesource import TimeFallback, TimeReading
from irbis.ingest.timing import FLAG_NO_DEPLOYMENT, Clock
from irbis.store.project import Project
from irbis.store.schema import (
    Deployment,
    IngestBatch,
    Media,
    Observation,
    Rejection,
    Station,
)
from irbis.store.sequence_summary import refresh as refresh_summaries

BATCH_SIZE = 64
CHUNK = 1 << 20
# PostgreSQL advisory lock keys (two-int form; the summaries' refresher uses
# the one-bigint form). Ingests write their batches one at a time, and regroup
# a deployment one at a time.
_PG_WRITE_LOCK = 0x69726267
_PG_DEPLOYMENT_LOCK = 0x69726268
# Held (session level) by the run of each running batch, keyed by its id.
_PG_RUNNING_LOCK = 0x6972626A

ProgressFn = Callable[[int, int, str], None]


@dataclass
class IngestResult:
    """What one ingest run did."""

    batch_id: int
    source: str
    n_seen: int = 0
    n_new: int = 0
    n_duplicate: int = 0
    n_rejected: int = 0
    n_flagged: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    rejected: list[dict] = field(default_factory=list)
    flagged: list[dict] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)
    # New files per time source: exif, video, stamp, filename, none.
    time_sources: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "batch_id": self.batch_id,
            "source": self.source,
            "seen": self.n_seen,
            "new": self.n_new,
            "duplicates": self.n_duplicate,
            "rejected": self.n_rejected,
            "flagged": self.n_flagged,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.bytes_read / 1e6 / self.seconds, 2) if self.seconds else None,
            "deployments": self.deployments,
            "time_sources": self.time_sources,
            "warnings": self.warnings,
            "rejected_files": self.rejected,
            "flagged_files": self.flagged,
        }


@dataclass
class _Read:
    """A file read, hashed and parsed by a worker thread."""

    source: SourceFile
    sha256: str = ""
    size: int = 0
    meta: MediaMetadata | None = None
    stored_path: str = ""
    storage: str = "copy"
    error: BadInputError | None = None
    time: TimeReading | None = None


class _DeploymentResolver:
    """Finds the deployment a file belongs to from its folder and its time."""

    def __init__(self, session: Session, project: Project, fixed: str | None) -> None:
        self.by_code: dict[str, Deployment] = {
            d.code: d for d in session.scalars(select(Deployment))
        }
        self.by_station: dict[str, list[Deployment]] = {}
        stations = {s.id: s.name for s in session.scalars(select(Station))}
        for d in self.by_code.values():
            self.by_station.setdefault(stations[d.station_id], []).append(d)
        self.earliest = datetime.fromisoformat(project.settings.earliest_plausible)
        self.fixed = fixed
        if fixed is not None and fixed not in self.by_code:
            raise BadInputError(
                f"--deployment {fixed}",
                "unknown deployment",
                "import the registry first (`irbis registry import`) or check the code",
            )

    def clock(self, d: Deployment) -> Clock:
        return Clock(
            timezone=d.timezone,
            offset_s=d.clock_offset_s,
            shift=d.clock_shift,
            start_local=d.start_local,
            end_local=d.end_local,
            earliest=self.earliest,
        )

    def resolve(self, fields: dict[str, str], raw: datetime | None) -> Deployment | None:
        if self.fixed is not None:
            return self.by_code[self.fixed]
        if "deployment" in fields:
            return self.by_code.get(fields["deployment"])
        station = fields.get("station")
        candidates = self.by_station.get(station or "", [])
        if "camera" in fields and len(candidates) > 1:
            cam = fields["camera"]
            narrowed = [
                d for d in candidates if d.camera and cam in (d.camera.serial, d.camera.model)
            ]
            candidates = narrowed or candidates
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        # Several deployments at the station: the one whose window holds the
        # corrected time, else the nearest (the time will be flagged).
        best, best_gap = candidates[0], None
        for d in candidates:
            local, _, _, flag = self.clock(d).correct(raw)
            if local is None:
                continue
            if not flag:
                return d
            gap = min(
                abs((local - d.start_local).total_seconds()),
                abs((local - d.end_local).total_seconds()),
            )
            if best_gap is None or gap < best_gap:
                best, best_gap = d, gap
        return best


def _read_one(
    sf: SourceFile, store: BlobStore, storage: str, known: set[str], times: TimeFallback
) -> _Read:
    out = _Read(source=sf)
    kind = media_kind(sf.relpath)
    try:
        if kind == "video":
            _read_video(sf, store, storage, known, out)
            _time_without_metadata(out, None, times)
            return out
        data = sf.read()
        out.size = len(data)
        out.sha256 = hashlib.sha256(data).hexdigest()
        if out.sha256 in known:
            return out
        out.meta = read_metadata(data, sf.relpath)
        # In the worker thread: OCR of an info bar is the slow part of a card
        # whose EXIF was lost, and Tesseract runs outside the GIL.
        _time_without_metadata(out, data, times)
        if storage == "reference" and sf.local_path is not None:
            out.storage, out.stored_path = "reference", str(sf.local_path.resolve())
        else:
            out.stored_path = store.put_bytes(data, out.sha256, PurePosixPath(sf.relpath).suffix)
    except BadInputError as exc:
        out.error = exc
    except OSError as exc:
        out.error = BadInputError(
            sf.relpath, f"unreadable ({exc.strerror or exc})", "copy it off the card again"
        )
    return out


def _time_without_metadata(out: _Read, data: bytes | None, times: TimeFallback) -> None:
    """Fill ``out.meta.taken`` from the info bar or the file name when it has none."""
    if out.meta is None or out.meta.taken is not None or not times.order:
        return
    out.time = times.read(out.source.relpath, data)
    if out.time.taken is not None:
        out.meta.taken, out.meta.taken_source = out.time.taken, out.time.source


def _read_video(
    sf: SourceFile, store: BlobStore, storage: str, known: set[str], out: _Read
) -> _Read:
    # Videos can be gigabytes: stream them through the hash into a temp file
    # instead of holding them in memory.
    h = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=store.tmp, prefix="video-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as dst, sf.open() as src:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                dst.write(chunk)
                out.size += len(chunk)
        out.sha256 = h.hexdigest()
        if out.sha256 in known:
            tmp.unlink()
            return out
        out.meta = read_video_metadata(tmp, sf.relpath)
        if storage == "reference" and sf.local_path is not None:
            out.storage, out.stored_path = "reference", str(sf.local_path.resolve())
            tmp.unlink()
        else:
            out.stored_path = store.put_file(tmp, out.sha256, PurePosixPath(sf.relpath).suffix)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _tag_observations(tags: list[str]) -> tuple[list[str], list[str]]:
    """Species and individuals from XMP HierarchicalSubject tags like ``Species|PBE``."""
    species, individuals = [], []
    for tag in tags:
        parts = [p.strip() for p in tag.split("|")]
        if len(parts) < 2 or not parts[-1]:
            continue
        key = parts[0].lower()
        if key in ("species", "art", "spp"):
            species.append(parts[-1])
        elif key in ("individual", "individuals", "indiv", "id", "individualid"):
            individuals.append(parts[-1])
    return species, individuals


def _bounded_map(fn, items: list, workers: int) -> Iterator:
    """Like ``executor.map`` but with at most ``2*workers`` files in memory."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        it = iter(items)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def ingest(
    project: Project,
    source: Path | str,
    *,
    deployment: str | None = None,
    layout: str | None = "station",
    storage: str | None = None,
    create_stations: bool = False,
    progress: ProgressFn | None = None,
    workers: int | None = None,
    time_from: str | list[str] | None = None,
    time_patterns: list[str] | None = None,
) -> IngestResult:
    """Ingest every media file of a card into ``project``.

    Parameters
    ----------
    project:
        The open project.
    source:
        A folder, a zip file or a single media file.
    deployment:
        Put every file into this deployment (code), ignoring folder names.
    layout:
        Folder roles of the card, e.g. ``station`` or ``station/species``
        (see :mod:`irbis.ingest.layout`). Ignored when ``deployment`` is given.
    storage:
        ``copy`` or ``reference``; the project's setting by default. Files
        inside a zip are always copied.
    create_stations:
        Create stations and open deployments for unknown station folders
        instead of refusing the card.
    progress:
        Called as ``progress(done, total, relpath)`` after each file.
    time_from:
        Where to take a time from when a file has no EXIF/video time, in
        order: ``"stamp,filename"`` (the project's setting ``time_from``, by
        default exactly this), ``"filename"``, ``"stamp"`` or ``"none"``.
        See :mod:`irbis.ingest.timesource`.
    time_patterns:
        File-name time patterns (``%Y-%m-%d %H-%M-%S``...) tried before the
        project's and the built-in ones.

    Returns
    -------
    IngestResult
        Counts of new, duplicate, rejected and flagged files.
    """
    import time

    t0 = time.perf_counter()
    source = Path(source).resolve()
    if not source.exists():
        raise BadInputError(str(source), "no such file or folder", "check the path to the card")
    storage = storage or project.settings.storage
    roles = parse_layout(layout) if (layout and deployment is None) else []
    # Checked before anything is written: a bad pattern is a one-line error.
    times = TimeFallback.from_settings(
        project.settings.extra, order=time_from, filename_patterns=time_patterns
    )
    store = BlobStore(project.blob_dir, project.tmp_dir)
    store.begin_run()  # a temp folder of its own: other runs may be writing theirs
    workers = workers or min(4, (os.cpu_count() or 2) + 1)

    # Listing a card is cheap next to reading it: list first so unknown
    # stations stop the run before anything is written.
    entries = list(iter_source(source))
    files = [e for e in entries if isinstance(e, SourceFile)]
    rejected_early = [e for e in entries if isinstance(e, Rejected)]

    with project.session() as session, _running_marker(project) as mark_running:
        # Runs that died (Ctrl-C, kill -9) left their batch "running"; another
        # run still going on a PostgreSQL project keeps it.
        _mark_interrupted(session)
        batch = IngestBatch(
            source=str(source),
            started_utc=datetime.now(UTC).replace(tzinfo=None),
            status="running",
            options={
                "deployment": deployment,
                "layout": layout,
                "storage": storage,
                "time_from": list(times.order),
                "time_patterns": list(time_patterns or []),
            },
        )
        session.add(batch)
        session.flush()
        mark_running(batch.id)  # before the batch is visible to other runs
        session.commit()
        result = IngestResult(batch_id=batch.id, source=str(source))

        if deployment is None:
            _ensure_stations(project, session, files, roles, create_stations)
        resolver = _DeploymentResolver(session, project, deployment)
        known = set(session.scalars(select(Media.sha256)))

        rejected_before = set(
            session.scalars(select(Rejection.relpath).where(Rejection.source == str(source)))
        )
        for rej in rejected_early:
            _reject(session, result, str(source), rej.relpath, rej.reason, rej.hint)
        session.commit()

        touched: set[int] = set()
        missing_ocr = 0
        total = len(files)
        pending_rows = 0
        for done, read in enumerate(
            _bounded_map(lambda f: _read_one(f, store, storage, known, times), files, workers),
            1,
        ):
            result.n_seen += 1
            result.bytes_read += read.size
            rel = read.source.relpath
            if pending_rows == 0:
                # A new batch transaction: one ingest writes at a time.
                _lock_writes(session)
            if read.error is None and rel in rejected_before:
                # refused by an earlier run, read now: no longer a rejected file
                session.execute(
                    delete(Rejection).where(
                        Rejection.source == str(source), Rejection.relpath == rel
                    )
                )
                rejected_before.discard(rel)
            if read.error is not None:
                _reject(session, result, str(source), rel, read.error.reason, read.error.hint)
            elif read.sha256 in known or _stored(session, read.sha256):
                # Known when this run started, or stored since by another one.
                known.add(read.sha256)
                result.n_duplicate += 1
            else:
                known.add(read.sha256)
                source_name = (read.meta.taken_source if read.meta else None) or "none"
                result.time_sources[source_name] = result.time_sources.get(source_name, 0) + 1
                if read.time is not None and read.time.tesseract_missing:
                    missing_ocr += 1
                dep_id = _add_media(session, result, resolver, roles, read, batch.id)
                if dep_id is not None:
                    touched.add(dep_id)
                result.n_new += 1
            pending_rows += 1
            if pending_rows >= BATCH_SIZE:
                session.commit()
                pending_rows = 0
            if progress:
                progress(done, total, rel)
        session.commit()
        if missing_ocr:
            result.warnings.append(f"{TESSERACT_MISSING}; {missing_ocr} files affected")

        # Sequences for every deployment that got files, plus any left
        # ungrouped by an earlier interrupted run.
        stale = session.scalars(
            select(Media.deployment_id)
            .where(
                Media.sequence_id.is_(None), Media.time_flag == "", Media.deployment_id.is_not(None)
            )
            .distinct()
        )
        touched |= {d for d in stale if d is not None}
        # Another ingest may be regrouping the same deployments: wait for it.
        _lock_deployments(session, touched)
        # Before bursts are formed: name-only and misread-stamp frames are put
        # on the info bar's clock where the deployment shows the offset.
        align_to_stamps(session, touched, resolver.clock)
        if create_stations:
            _fit_open_deployments(session, touched)
        # Files that came in inside a file-range clock fix (`irbis clock
        # --reference`) take that fix's clock.
        ranged = [
            d.id
            for d in session.scalars(select(Deployment).where(Deployment.id.in_(touched)))
            if (d.extra or {}).get("clock_fixes")
        ]
        if ranged:
            retime_deployments(
                session,
                ranged,
                earliest=resolver.earliest,
                burst_gap_s=project.settings.burst_gap_s,
                event_gap_min=project.settings.event_gap_min,
            )
        regroup_deployments(
            session,
            sorted(touched),
            burst_gap_s=project.settings.burst_gap_s,
            event_gap_min=project.settings.event_gap_min,
        )
        result.deployments = sorted(
            session.scalars(select(Deployment.code).where(Deployment.id.in_(touched)))
        )
        result.seconds = time.perf_counter() - t0
        batch.status = "done"
        batch.finished_utc = datetime.now(UTC).replace(tzinfo=None)
        batch.n_seen, batch.n_new = result.n_seen, result.n_new
        batch.n_duplicate, batch.n_rejected = result.n_duplicate, result.n_rejected
        batch.bytes_read = result.bytes_read
        session.commit()
    store.end_run()
    # The review grid's summaries of the new sequences, now rather than on its first page.
    refresh_summaries(project.engine)
    return result


@contextmanager
def _running_marker(project: Project) -> Iterator[Callable[[int], None]]:
    """A function that marks a batch as this process's own while the context lasts.

    PostgreSQL: a session-level advisory lock keyed by the batch id, on a
    connection of its own that is closed (not pooled) at the end, so the
    lock goes when the run ends or its process dies. SQLite: nothing.
    """
    if project.engine.dialect.name != "postgresql":
        yield lambda batch_id: None
        return
    conn = project.engine.connect()

    def hold(batch_id: int) -> None:
        conn.execute(
            text("SELECT pg_advisory_lock(:a, :b)"), {"a": _PG_RUNNING_LOCK, "b": batch_id}
        )
        conn.commit()

    try:
        yield hold
    finally:
        conn.invalidate()  # closes the database session and with it the lock
        conn.close()


def _mark_interrupted(session: Session) -> None:
    """Mark "running" batches whose run is gone as "interrupted".

    On PostgreSQL a batch whose run still holds its lock (another ingest at
    work now) stays "running"; SQLite cannot tell, so every one is marked.
    """
    running = list(session.scalars(select(IngestBatch.id).where(IngestBatch.status == "running")))
    if _postgres(session):
        running = [
            b
            for b in running
            if session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:a, :b)"),
                {"a": _PG_RUNNING_LOCK, "b": b},
            )
        ]
    if running:
        session.execute(
            update(IngestBatch).where(IngestBatch.id.in_(running)).values(status="interrupted")
        )


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _lock_writes(session: Session) -> None:
    """PostgreSQL: wait until no other ingest writes, until this transaction ends.

    Concurrent runs then never insert the same file twice (each checks
    :func:`_stored` under the lock) nor the same rejection or station.
    """
    if _postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:a, 0)"), {"a": _PG_WRITE_LOCK})


def _stored(session: Session, sha256: str) -> bool:
    """Whether a file with this content is stored (by this run or another)."""
    return session.scalar(select(Media.id).where(Media.sha256 == sha256)) is not None


def _lock_deployments(session: Session, dep_ids: set[int]) -> None:
    """PostgreSQL: take the deployments' regrouping locks and their media rows.

    Advisory locks in deployment order, so two ingests touching the same
    deployments regroup them one after the other; the media rows in id order,
    the order label writers take them in, so a reviewer labelling meanwhile
    waits instead of deadlocking. Both are held until the transaction ends.
    """
    if not dep_ids or not _postgres(session):
        return
    for dep_id in sorted(dep_ids):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _PG_DEPLOYMENT_LOCK, "b": dep_id}
        )
    session.execute(
        select(Media.id)
        .where(Media.deployment_id.in_(sorted(dep_ids)))
        .order_by(Media.id)
        .with_for_update(key_share=True)
    ).all()


def _reject(
    session: Session, result: IngestResult, source: str, relpath: str, reason: str, hint: str
) -> None:
    result.n_rejected += 1
    result.rejected.append({"file": relpath, "reason": reason, "hint": hint})
    existing = session.scalar(
        select(Rejection).where(Rejection.source == source, Rejection.relpath == relpath)
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    if existing is None:
        session.add(
            Rejection(
                batch_id=result.batch_id,
                source=source,
                relpath=relpath,
                reason=reason,
                hint=hint,
                created_utc=now,
            )
        )
    else:
        existing.batch_id, existing.reason, existing.hint = result.batch_id, reason, hint


def _add_media(session, result, resolver, roles, read: _Read, batch_id: int) -> int | None:
    meta = read.meta
    assert meta is not None
    rel = read.source.relpath
    fields = fields_from_path(rel, roles)
    dep = resolver.resolve(fields, meta.taken)
    if dep is None:
        local = utc = offset = None
        flag = FLAG_NO_DEPLOYMENT
    else:
        local, utc, offset, flag = resolver.clock(dep).correct(meta.taken)
    media = Media(
        sha256=read.sha256,
        size=read.size,
        mediatype=meta.mediatype,
        mime=meta.mime,
        storage=read.storage,
        stored_path=read.stored_path,
        file_name=PurePosixPath(rel).name,
        source_relpath=rel,
        batch_id=batch_id,
        deployment_id=dep.id if dep else None,
        width=meta.width,
        height=meta.height,
        duration_s=meta.duration_s,
        make=meta.make,
        model=meta.model,
        serial=meta.serial,
        tags=list(meta.tags),
        taken_raw=meta.taken,
        taken_source=meta.taken_source,
        file_utc_offset_min=meta.utc_offset_min,
        timestamp_local=local,
        timestamp_utc=utc,
        utc_offset_min=offset,
        time_flag=flag,
        # What was read and from where, beside the chosen raw time.
        extra={"time_read": read.time.record} if read.time and read.time.record else {},
    )
    session.add(media)
    session.flush()
    now = datetime.now(UTC).replace(tzinfo=None)
    if "species" in fields or "individual" in fields:
        session.add(
            Observation(
                media_id=media.id,
                species=fields.get("species"),
                individual=fields.get("individual"),
                source="folder",
                created_utc=now,
            )
        )
    species, individuals = _tag_observations(meta.tags)
    for i, sp in enumerate(species or [None]):
        ind = individuals[i] if i < len(individuals) else None
        if sp is None and ind is None:
            continue
        session.add(
            Observation(
                media_id=media.id, species=sp, individual=ind, source="xmp", created_utc=now
            )
        )
    if flag:
        result.n_flagged += 1
        result.flagged.append(
            {
                "file": rel,
                "flag": flag,
                "camera_time": meta.taken.isoformat() if meta.taken else None,
            }
        )
    return dep.id if dep else None


def _ensure_stations(project, session, files, roles, create: bool) -> None:
    if "station" not in roles and "deployment" not in roles:
        return
    _lock_writes(session)  # two runs creating the same station: one does
    names: dict[str, str] = {}
    for f in files:
        fields = fields_from_path(f.relpath, roles)
        for role in ("deployment", "station"):
            if role in fields:
                names.setdefault(fields[role], role)
                break
    known_st = set(session.scalars(select(Station.name)))
    known_dep = set(session.scalars(select(Deployment.code)))
    missing = sorted(
        n
        for n, role in names.items()
        if (n not in known_st if role == "station" else n not in known_dep)
    )
    if not missing:
        return
    if not create:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise BadInputError(
            str(files[0].relpath.split("/")[0]) if len(missing) == 1 else "card",
            f"unknown station(s) {shown}",
            "import the registry first with `irbis registry import`, or pass --create-stations",
        )
    for name in missing:
        st = session.scalar(select(Station).where(Station.name == name))
        if st is None:
            st = Station(name=name, covariates={})
            session.add(st)
            session.flush()
        # An open deployment whose window is fitted to its files afterwards.
        session.add(
            Deployment(
                code=name,
                station_id=st.id,
                start_local=datetime(1900, 1, 1),
                end_local=datetime(2999, 1, 1),
                timezone="UTC",
                comments="created by ingest; window fitted to its files",
            )
        )
    session.commit()


def _fit_open_deployments(session: Session, dep_ids: set[int]) -> None:
    from sqlalchemy import func

    for dep in session.scalars(select(Deployment).where(Deployment.id.in_(dep_ids))):
        if not dep.comments.startswith("created by ingest"):
            continue
        lo, hi = session.execute(
            select(func.min(Media.timestamp_local), func.max(Media.timestamp_local)).where(
                Media.deployment_id == dep.id, Media.time_flag == ""
            )
        ).one()
        if lo is not None:
            dep.start_local, dep.end_local = lo, hi
    session.flush()
