"""The identify stage on a Ray cluster: workers match crops, the driver writes proposals.

``irbis identify PROJECT --ray ADDRESS`` (or ``IRBIS_RAY_ADDRESS``) runs
:func:`run_identify_ray`. It starts and finishes exactly as the laptop run
(:func:`irbis.pipeline.identify_stage.run_identify`) — the same code creates
the annotations, builds the catalogue, lists the crops still to match and
writes each burst's proposals — and only the matching runs on the workers:

* The driver cuts the bursts (sequences) still to match into *batches of whole
  bursts* of about ``batch_size`` crops, since a burst's frames are pooled into
  one encounter and must be matched against the same catalogue together.
* The catalogue's crops whose features are not cached yet are extracted by
  the workers first (into the shared cache); the driver then builds the
  catalogue from the cache once and puts it in Ray's object store;
  each worker process unpickles it once (kept for every later batch of the
  run) and reads the originals and the feature cache (``PROJECT/tmp/reid``)
  from the project folder, which must be at the same path on every node —
  or, with ``blobs`` (``--blobs s3://BUCKET/PREFIX``), fetches the originals
  from an S3-compatible mirror into its node's cache (sha256 checked, see
  :mod:`irbis.ingest.blob_mirror`) and keeps features in a cache on its node;
  the catalogue's features it extracts then travel back to the driver, which
  files them in the project's cache. No shared filesystem is needed.
  Workers never touch the database: the driver sends each batch the burst
  members the motion masks need.
* The driver writes each burst through the stage's own writer, one
  transaction per burst, in the order of the single-process run, so the
  proposal rows (ids, ranks, scores, keypoints) are those a laptop writes, and
  shows one progress bar.
* A worker that dies mid-batch makes Ray run the batch again (``max_retries``);
  its result reaches the driver once, and the writer replaces a burst's machine
  proposals anyway, so nothing is doubled. A killed driver leaves whole bursts
  written; the next run matches only the crops without proposals from the
  current catalogue.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irbis.ingest.blob_mirror import BlobMirror, BlobRef, blob_refs
from irbis.pipeline.cluster import (
    MAX_RETRIES,
    RAY_ENV,
    BatchHook,
    _in_order,
    _ray,
    batch_record,
    batches,
    connect,
)
from irbis.pipeline.detect_stage import media_path
from irbis.pipeline.identify_stage import (
    BurstMatches,
    IdentifySummary,
    _FeatureCache,
    _features,
    _finish_burst,
    _match_burst,
    _MotionMasks,
    _Query,
    _start_identify,
    _variant,
)
from irbis.reid import BadImageError, Catalogue
from irbis.store import Project
from irbis.store.schema import Media

__all__ = [
    "DEFAULT_BATCH",
    "batch_args",
    "extract_batch",
    "identify_batch",
    "run_identify_ray",
    "warm_cache",
]

#: Crops per Ray task. Matching a crop takes a large fraction of a second, so
#: Ray's few milliseconds per task are lost in it even for small batches, and
#: small batches spread a small job over every worker.
DEFAULT_BATCH = 16

#: Burst members per sequence: (media id, original's path as text).
Members = dict[int, list[tuple[int, str]]]

# The worker process's catalogue: (key, catalogue), unpickled once per run.
_CATALOGUE: list[tuple[str, Catalogue]] = []


def _catalogue_for(key: str, box: list[Any]) -> Catalogue:
    """The catalogue named ``key``, fetched from the object store once per worker process.

    ``box`` holds the catalogue's object ref in a list, so Ray does not fetch
    and unpickle it again for every task (or the catalogue itself, in tests).
    """
    if _CATALOGUE and _CATALOGUE[0][0] == key:
        return _CATALOGUE[0][1]
    obj = box[0]
    catalogue = obj if isinstance(obj, Catalogue) else _ray().get(obj)
    _CATALOGUE[:] = [(key, catalogue)]  # one run's catalogue at a time: they are large
    return catalogue


@dataclass
class IdentifyBatchResult:
    """What a worker sends back for one batch: per burst, its matches and errors."""

    bursts: list[BurstMatches]
    pid: int
    node: str
    seconds: float


def identify_batch(
    catalogue_box: list[Any],
    key: str,
    bursts: list[list[_Query]],
    members: Members,
    cache_dir: str,
    hook: BatchHook | None = None,
    blobs: BlobMirror | None = None,
    refs: dict[int, BlobRef] | None = None,
) -> IdentifyBatchResult:
    """Match a batch of bursts against the catalogue (runs in a Ray worker; plain for tests).

    Parameters
    ----------
    catalogue_box
        ``[ref]`` of the driver's catalogue in the object store (or ``[catalogue]``).
    key
        Names the catalogue (project and catalogue version): a worker keeps it
        while the key stays the same.
    bursts
        The bursts to match, each a list of crops.
    members
        Per sequence, its photos in time order (for the motion masks).
    cache_dir
        The project's feature cache (with ``blobs``: a name for this node's own).
    hook
        Called first with the batch's annotation ids (fault-injection tests).
    blobs, refs
        Read the originals from this object-store mirror (``refs``: each media's
        object) instead of the driver's paths.

    Returns
    -------
    IdentifyBatchResult
    """
    if hook is not None:
        hook([q.crop.id for b in bursts for q in b])
    t0 = time.perf_counter()
    catalogue = _catalogue_for(key, catalogue_box)
    cache, motion, bursts = _worker_side(bursts, members, cache_dir, blobs, refs)
    out = [_match_burst(b, catalogue, cache, motion) for b in bursts]
    return IdentifyBatchResult(out, os.getpid(), os.uname().nodename, time.perf_counter() - t0)


@dataclass
class ExtractBatchResult:
    """What a worker sends back for a batch of catalogue crops: only who did it, how long."""

    crops: int
    pid: int
    node: str
    seconds: float
    #: With a mirror: the feature cache files written (name -> bytes), for the driver's cache.
    files: dict[str, bytes] = field(default_factory=dict)


def extract_batch(
    bursts: list[list[_Query]],
    members: Members,
    cache_dir: str,
    hook: BatchHook | None = None,
    blobs: BlobMirror | None = None,
    refs: dict[int, BlobRef] | None = None,
) -> ExtractBatchResult:
    """Extract catalogue crops' features into the shared cache (a Ray worker; plain for tests).

    Nothing else comes back: the driver reads the features from the cache when
    it builds the catalogue, and reports a crop that cannot be read then. With
    ``blobs`` (no shared filesystem) the cache files come back for the driver
    to file in the project's cache.
    """
    if hook is not None:
        hook([q.crop.id for b in bursts for q in b])
    t0 = time.perf_counter()
    cache, motion, bursts = _worker_side(bursts, members, cache_dir, blobs, refs)
    n = 0
    files: dict[str, bytes] = {}
    for burst in bursts:
        for q in burst:
            try:
                _features(cache, q.ra, q.crop, q.photo, motion)
                n += 1
            except BadImageError:
                continue  # named by the driver, which tries it again
            if blobs is not None:
                path = cache._file(q.crop, _variant(q.crop))
                files[path.name] = path.read_bytes()
    return ExtractBatchResult(n, os.getpid(), os.uname().nodename, time.perf_counter() - t0, files)


def _worker_side(
    bursts: list[list[_Query]],
    members: Members,
    cache_dir: str,
    blobs: BlobMirror | None,
    refs: dict[int, BlobRef] | None,
) -> tuple[_FeatureCache, _MotionMasks, list[list[_Query]]]:
    """A worker's feature cache, motion masks and crops: the driver's paths, or the mirror's.

    With a mirror, the cache is this node's own (named after the driver's
    cache), and an original is fetched only when a crop's features are not
    cached yet (the crop's photo, or its burst's photos for the motion mask).
    """
    if blobs is None:
        cache = _FeatureCache(Path(cache_dir))
        motion = _MotionMasks(members=lambda seq: [(i, Path(p)) for i, p in members.get(seq, [])])
        return cache, motion, bursts
    got = refs or {}
    name = hashlib.sha1(cache_dir.encode()).hexdigest()[:16]
    cache = _FeatureCache(blobs.cache_root() / "reid" / name)

    def burst(seq: int) -> list[tuple[int, Path]]:
        ids = [i for i, _ in members.get(seq, [])]
        return list(zip(ids, blobs.fetch_many([got[i] for i in ids]), strict=True))

    motion = _MotionMasks(members=burst)
    cold = [q for b in bursts for q in b if not cache.has(q.crop, _variant(q.crop))]
    paths = dict(
        zip(
            (q.crop.id for q in cold),
            blobs.fetch_many([got[q.crop.media_id] for q in cold]),
            strict=True,
        )
    )

    def local(q: _Query) -> _Query:
        if q.crop.id not in paths:
            return q
        return replace(q, ra=replace(q.ra, image=paths[q.crop.id]))

    return cache, motion, [[local(q) for q in b] for b in bursts]


def _media_of(bursts: list[list[_Query]], members: Members) -> set[int]:
    """Every media a batch may read: its crops' photos and their bursts' photos."""
    ids = {q.crop.media_id for b in bursts for q in b}
    ids.update(i for seq in members.values() for i, _ in seq)
    return ids


def _members(project: Project, bursts: list[list[_Query]]) -> Members:
    """The photos of every sequence in ``bursts``, in time order (one query)."""
    seqs = {q.photo.sequence_id for b in bursts for q in b if q.photo.sequence_id is not None}
    out: Members = {seq: [] for seq in seqs}
    if not seqs:
        return out
    with project.session() as s:
        for m in s.scalars(
            select(Media)
            .where(Media.sequence_id.in_(seqs), Media.mediatype == "image")
            .order_by(Media.timestamp_utc, Media.id)
        ):
            out[m.sequence_id].append((m.id, str(media_path(project, m))))
    return out


def batch_args(
    project: Project, blobs: BlobMirror | None
) -> Callable[[list[list[_Query]]], tuple[Members, str, dict[str, Any]]]:
    """What a batch of bursts needs besides its crops: for :func:`warm_cache` and the matching.

    The burst members (motion masks), the feature cache as the workers name it
    (the project's; with ``blobs``, a name for each node's own cache, after
    the driver's machine and path, which may repeat elsewhere) and the mirror's
    keyword arguments (``{}`` without one: the workers read the project folder).
    """
    cache_dir = str((project.tmp_dir / "reid").resolve())
    cache_name = f"{socket.gethostname()}:{cache_dir}"

    def args(todo: list[list[_Query]]) -> tuple[Members, str, dict[str, Any]]:
        members = _members(project, todo)
        if blobs is None:
            return members, cache_dir, {}
        refs = blob_refs(project, _media_of(todo, members))
        return members, cache_name, {"blobs": blobs, "refs": refs}

    return args


def run_identify_ray(
    project: Project,
    *,
    address: str | None = None,
    top: int = 5,
    min_score: float = 0.1,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = DEFAULT_BATCH,
    hook: BatchHook | None = None,
    stats: list[dict[str, Any]] | None = None,
    blobs: BlobMirror | None = None,
) -> IdentifySummary:
    """Like :func:`irbis.pipeline.identify_stage.run_identify`, with Ray workers matching.

    Parameters
    ----------
    project
        An open project; its folder must be reachable at the same path on every
        node, unless ``blobs`` is given.
    address
        Ray address (see :mod:`irbis.pipeline.cluster`); default
        ``$IRBIS_RAY_ADDRESS``, else ``local``. Ignored when Ray is already
        initialised in this process.
    top, min_score, progress
        As for ``run_identify`` (``progress`` gets ``(done, total)`` crops).
    batch_size
        Crops per Ray task (whole bursts).
    hook
        Called in the worker with each batch's annotation ids before it is matched.
    stats
        When given, one dict per batch is appended: ``phase`` (``catalogue``:
        features of confirmed crops not cached yet; ``match``), crops, worker pid
        and node, seconds in the worker, and for ``match`` seconds from
        submission to result, submission and written times since the first
        submission.
    blobs
        Workers read the originals from this object-store mirror instead of the
        project folder (``irbis blobs push`` fills it).

    Returns
    -------
    IdentifySummary

    Raises
    ------
    BlobFetchError
        With ``blobs``: an original missing from the mirror or corrupt there.
    """
    ray = _ray()
    # Connect first: an unreachable cluster is reported before the catalogue is built.
    started = connect(address or os.environ.get(RAY_ENV) or "local")
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        cache_dir = str((project.tmp_dir / "reid").resolve())
        args = batch_args(project, blobs)

        def warm(cold: list[list[_Query]]) -> None:
            # The catalogue's features not cached yet: extracted by the workers
            # into the shared cache, so the driver only reads them.
            warm_cache(
                cold, args, Path(cache_dir), workers=workers, batch_size=batch_size,
                hook=hook, stats=stats,
            )  # fmt: skip

        run = _start_identify(project, min_score, warm=warm)
        work = batches(run.bursts, max(1, batch_size), weight=len)
        if not work:
            return run.summary
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(identify_batch)
        catalogue_ref = ray.put(run.catalogue)
        key = f"{project.root.resolve()}:{run.version}"
        submitted: dict[int, float] = {}
        t_run = time.perf_counter()

        def submit(i: int) -> Any:
            submitted[i] = time.perf_counter()
            members, cache, kw = args(work[i])
            return task.remote([catalogue_ref], key, work[i], members, cache, hook, **kw)

        done = 0
        for i, res in _in_order(len(work), 2 * workers + 1, submit, ray):
            wall = time.perf_counter() - submitted[i]
            for burst, matched in zip(work[i], res.bursts, strict=True):
                _finish_burst(project, run, matched, top)
                done += len(burst)
                if progress:
                    progress(done, run.total)
            if stats is not None:
                stats.append(
                    batch_record(
                        i,
                        res,
                        phase="match",
                        crops=sum(len(b) for b in work[i]),
                        wall_s=wall,
                        # seconds since the first submission: when it left, when it was written
                        t_submit=submitted[i] - t_run,
                        t_done=time.perf_counter() - t_run,
                    )
                )
    finally:
        if started:
            ray.shutdown()
    return run.summary


def warm_cache(
    cold: list[list[_Query]],
    args: Callable[[list[list[_Query]]], tuple[Members, str, dict[str, Any]]],
    cache_dir: Path,
    *,
    workers: int,
    batch_size: int = DEFAULT_BATCH,
    hook: BatchHook | None = None,
    stats: list[dict[str, Any]] | None = None,
) -> None:
    """Have the Ray workers extract crops' features into the project's feature cache.

    Shared by ``irbis identify --ray`` (the catalogue's crops) and ``irbis models
    train reid --ray`` (every confirmed crop). A killed worker's batch is run
    again (``max_retries``); a cache file is written whole or not at all, so a
    batch done twice leaves the same files.

    Parameters
    ----------
    cold
        Crops whose features are not cached, by burst (a burst's motion mask
        is computed once per batch).
    args
        For a batch: the burst members, the cache folder as the workers name
        it, and the mirror's keyword arguments (``{}`` without one).
    cache_dir
        The project's feature cache (where files a worker sent back go).
    workers
        Worker processes of the cluster (tasks in flight: twice as many, plus one).
    batch_size, hook
        Crops per task (whole bursts); called in the worker with each batch's ids.
    stats
        When given, one dict per batch is appended (``phase`` ``catalogue``).
    """
    ray = _ray()
    todo = batches(cold, max(1, batch_size), weight=len)
    extract = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(extract_batch)
    t_warm = time.perf_counter()

    def submit(i: int) -> Any:
        members, cache, kw = args(todo[i])
        return extract.remote(todo[i], members, cache, hook, **kw)

    for i, res in _in_order(len(todo), 2 * workers + 1, submit, ray):
        _file_features(cache_dir, res.files)
        if stats is not None:
            stats.append(
                batch_record(
                    i,
                    res,
                    phase="catalogue",
                    crops=sum(len(b) for b in todo[i]),
                    t_done=time.perf_counter() - t_warm,
                )
            )


def _file_features(folder: Path, files: dict[str, bytes]) -> None:
    """Put feature files a worker sent back into the project's cache (whole or not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = folder / f".{name}.{os.getpid()}.part"
        tmp.write_bytes(data)
        tmp.replace(folder / name)
