"""``irbis models train reid|species --ray ADDRESS``: the per-crop work of training on Ray.

Where training spends its time is per crop, and each crop is independent:

* **reid** (:func:`confirmed_matches_ray`): every confirmed crop's rosette
  features, then every confirmed crop matched against the other confirmed
  encounters. The fit on those matches takes a fraction of a second. The
  driver runs :func:`irbis.pipeline.train_reid.confirmed_matches` itself with
  :class:`ReidWorkers` plugged in: the workers first extract the features not
  cached yet into the project's feature cache
  (:func:`irbis.pipeline.cluster_identify.warm_cache`, as ``irbis identify
  --ray`` warms its catalogue), the driver builds the catalogue from that cache
  exactly as one process does and puts it in Ray's object store once; each
  worker process unpickles it once and matches batches of crops with the
  driver's own function (:func:`irbis.pipeline.train_reid.evidence`). The
  evidence comes back in the single-process order, so the fit, the held-out
  figures and the installed ranking are those of one process.
* **species** (:class:`RayEmbedder`): every labelled crop's dinov2-s
  embedding. Workers embed the files whose crops are not in the project's
  embedding cache, one file at a time as one process does
  (:func:`irbis.pipeline.species_stage.embed_file`), and send the vectors
  back; the driver alone writes the cache (one SQLite file, which a second
  machine must not write) and assembles the embeddings in the single-process
  order, so the head is the one process's. Workers run the encoder with one
  thread; OpenVINO and ONNX Runtime gave bit-identical vectors at one and two
  threads here, and ``tests/test_ray_train.py`` checks the equality.

Workers read the originals (and, for reid, the feature cache) from the project
folder, which must be at the same path on every node, as for ``irbis identify
--ray`` — or, with ``blobs`` (``--blobs s3://BUCKET/PREFIX``), fetch the
originals from an S3-compatible mirror into their node's cache (sha256
checked, :mod:`irbis.ingest.blob_mirror`); the reid features they extract then
travel back for the driver to file in the project's cache, and the matching
gets each crop's features with its batch, so no shared filesystem is needed.
A worker that dies mid-batch makes Ray run the batch again
(``max_retries``); its result reaches the driver once and is used once, so
nothing is doubled. The submit-and-collect loop is the detect stage's
(:func:`irbis.pipeline.cluster._in_order`).

``irbis models train detector`` has no ``--ray``: it is PyTorch training on
one machine's cores. Its frames are decoded once before the first step, and a
step's augmentation (resize, crop, flip, colour: 27 ms a frame on the shared
2-core VM) is about a tenth of the forward and backward passes (0.24 s a frame
at 416 px); shipping it to other machines would save at most that tenth, and
Ray workers on the same machine would take cores from PyTorch.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from irbis.core.errors import IrbisError
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
from irbis.pipeline.cluster_identify import _catalogue_for, batch_args, warm_cache
from irbis.pipeline.identify_stage import (
    _by_sequence,
    _Crop,
    _FeatureCache,
    _Photo,
    _Query,
    _variant,
)
from irbis.pipeline.species_stage import CropRef, FileEmbeddings, embed_file
from irbis.pipeline.train_reid import confirmed_matches, evidence
from irbis.reid import Annotation as ReidAnnotation
from irbis.reid import Catalogue, Features
from irbis.reid.ranking import FrameEvidence
from irbis.reid.ranking_eval import SurveyMatches
from irbis.store import Project

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_EMBED_BATCH",
    "EmbedderSpec",
    "RayEmbedder",
    "ReidWorkers",
    "confirmed_matches_ray",
    "embed_batch",
    "evidence_batch",
]

#: Crops per Ray task: matching one takes about a second on one core, so
#: Ray's few milliseconds per task are lost in it even for small batches.
DEFAULT_BATCH = 16

#: Crops per Ray task when embedding (whole files): about 0.2 s each on one core.
DEFAULT_EMBED_BATCH = 16

Progress = Callable[[int, int], None]


# -- reid --------------------------------------------------------------------------------


@dataclass
class EvidenceBatchResult:
    """What a worker sends back for a batch of confirmed crops."""

    frames: list[FrameEvidence]
    pid: int
    node: str
    seconds: float


def evidence_batch(
    catalogue_box: list[Any],
    key: str,
    maps: tuple[dict[str, str], dict[str, list[str]]],
    crops: list[tuple[ReidAnnotation, Features]],
    hook: BatchHook | None = None,
) -> EvidenceBatchResult:
    """Match confirmed crops against the other confirmed encounters (a Ray worker; plain in tests).

    Parameters
    ----------
    catalogue_box
        ``[ref]`` of the driver's catalogue in the object store (or ``[catalogue]``).
    key
        Names the catalogue: a worker process keeps it while the key stays the same.
    maps
        Encounter of each annotation id; annotation ids of each encounter.
    crops
        The crops to match with the features the driver read: they travel with
        the batch (a few MB), so matching reads no file on the worker's node.
    hook
        Called first with the batch's annotation ids (fault-injection tests).

    Returns
    -------
    EvidenceBatchResult
    """
    if hook is not None:
        hook([int(ra.id) for ra, _ in crops])  # a reid annotation's id is the row's
    t0 = time.perf_counter()
    catalogue = _catalogue_for(key, catalogue_box)
    enc, groups = maps
    frames = [evidence(catalogue, ra, feats, enc, groups) for ra, feats in crops]
    return EvidenceBatchResult(frames, os.getpid(), os.uname().nodename, time.perf_counter() - t0)


@dataclass
class ReidWorkers:
    """The Ray side of :func:`irbis.pipeline.train_reid.confirmed_matches`.

    Attributes
    ----------
    project
        The open project (the driver's; workers never touch its database).
    workers
        Worker processes of the cluster.
    batch_size, hook
        Crops per Ray task; called in the worker with each batch's annotation ids.
    stats
        When given, one dict per batch is appended: ``phase`` (``features`` or
        ``match``), crops, worker pid and node, seconds in the worker, and
        seconds since the phase's first submission when it came back.
    blobs
        Workers extracting features read the originals from this object-store
        mirror (``irbis blobs push``) instead of the project folder, and send
        the features back for the driver's cache: no shared filesystem.
    """

    project: Project
    workers: int
    batch_size: int = DEFAULT_BATCH
    hook: BatchHook | None = None
    stats: list[dict[str, Any]] | None = None
    blobs: BlobMirror | None = None

    @property
    def _cache_dir(self) -> Path:
        return (self.project.tmp_dir / "reid").resolve()

    def warm(self, known: Sequence[tuple[Any, Any, Any]]) -> None:
        """Extract the features of the confirmed crops not cached yet, on the workers.

        Parameters
        ----------
        known
            ``(annotation, media, reid annotation)`` of every confirmed crop.
        """
        cache = _FeatureCache(self._cache_dir)
        queries = [_Query(_Crop.of(a), _Photo.of(m), ra) for a, m, ra in known]
        cold = [q for q in queries if not cache.has(q.crop, _variant(q.crop))]
        if not cold:
            return
        stats: list[dict[str, Any]] = []
        warm_cache(
            _by_sequence(cold),
            batch_args(self.project, self.blobs),
            self._cache_dir,
            workers=self.workers,
            batch_size=self.batch_size,
            hook=self.hook,
            stats=stats,
        )
        if self.stats is not None:
            self.stats.extend({**st, "phase": "features"} for st in stats)

    def evidence(
        self,
        catalogue: Catalogue,
        items: Sequence[tuple[Any, Features, float | None]],
        enc: dict[str, str],
        members: dict[str, list[str]],
        progress: Progress | None = None,
    ) -> list[FrameEvidence]:
        """Each confirmed crop matched against the other encounters, in ``items`` order.

        Parameters
        ----------
        catalogue
            Every readable confirmed crop (the driver's, shipped once).
        items
            ``(reid annotation, features, time)`` per crop to match.
        enc, members
            Encounter of each annotation id; annotation ids per encounter.
        progress
            ``progress(done, total)`` as batches come back (in order).

        Returns
        -------
        list of FrameEvidence
        """
        ray = _ray()
        crops = [(ra, feats) for ra, feats, _ in items]
        work = batches(crops, max(1, self.batch_size), weight=lambda _: 1)
        if not work:
            return []
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(evidence_batch)
        catalogue_ref = ray.put(catalogue)
        maps_ref = ray.put((enc, members))
        # A key of this run's own: a worker never reuses an identify run's
        # catalogue, nor an earlier training's (boxes or names may have changed since).
        key = f"{self.project.root.resolve()}:train-reid:{uuid.uuid4().hex}"
        t0 = time.perf_counter()

        def submit(i: int) -> Any:
            return task.remote([catalogue_ref], key, maps_ref, work[i], self.hook)

        out: list[FrameEvidence] = []
        for i, res in _in_order(len(work), 2 * self.workers + 1, submit, ray):
            out.extend(res.frames)
            if progress:
                progress(len(out), len(crops))
            if self.stats is not None:
                self.stats.append(
                    batch_record(
                        i, res, phase="match", crops=len(work[i]), t_done=time.perf_counter() - t0
                    )
                )
        return out


def confirmed_matches_ray(
    project: Project,
    progress: Progress | None = None,
    *,
    address: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    hook: BatchHook | None = None,
    stats: list[dict[str, Any]] | None = None,
    blobs: BlobMirror | None = None,
) -> tuple[SurveyMatches, list[dict[str, Any]]]:
    """:func:`irbis.pipeline.train_reid.confirmed_matches` with Ray workers extracting and matching.

    ``functools.partial(confirmed_matches_ray, address=...)`` is the ``matches``
    of :func:`irbis.pipeline.train_reid.train_reid_ranking`.

    Parameters
    ----------
    project
        An open project; its folder must be at the same path on every node,
        unless ``blobs`` is given.
    progress
        ``progress(done, total)`` confirmed crops matched.
    address
        Ray address (see :mod:`irbis.pipeline.cluster`); default
        ``$IRBIS_RAY_ADDRESS``, else ``local``. Ignored when Ray is already
        initialised in this process.
    batch_size, hook, stats, blobs
        As for :class:`ReidWorkers`.

    Returns
    -------
    matches, errors
        Equal to the single-process run's.

    Raises
    ------
    RayUnavailableError
        Ray missing or the address unreachable (before anything is read).
    BlobFetchError
        With ``blobs``: an original missing from the mirror or corrupt there.
    """
    ray = _ray()
    started = connect(address or os.environ.get(RAY_ENV) or "local")
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pool = ReidWorkers(project, workers, batch_size, hook, stats, blobs)
        return confirmed_matches(project, progress, pool)
    finally:
        if started:
            ray.shutdown()


# -- species -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbedderSpec:
    """How a worker opens the driver's crop encoder (:class:`irbis.vision.embed.CropEmbedder`).

    ``model`` is a registry name; the worker's installed copy must be the
    driver's ``version`` (else the embeddings would differ).
    """

    model: str
    version: str
    side: int
    context: float


class EncoderMismatchError(IrbisError):
    """A worker's installed encoder is not the driver's version."""


# The worker process's encoder: (spec, embedder), opened once per process.
_EMBEDDER: list[tuple[EmbedderSpec, Any]] = []


def _embedder_for(spec: EmbedderSpec) -> Any:
    """The encoder of ``spec``, opened once per worker process, one thread (one core a task)."""
    if _EMBEDDER and _EMBEDDER[0][0] == spec:
        return _EMBEDDER[0][1]
    from irbis.vision.embed import CropEmbedder

    embedder = CropEmbedder(spec.model, side=spec.side, context=spec.context, threads=1)
    if embedder.version != spec.version:
        raise EncoderMismatchError(
            f"{os.uname().nodename} has {spec.model} {embedder.version}, the driver "
            f"{spec.version}: install the same version on every node (irbis models install)"
        )
    _EMBEDDER[:] = [(spec, embedder)]
    return embedder


@dataclass
class EmbedBatchResult:
    """What a worker sends back: per file, the crops embedded, their vectors and counts."""

    files: list[FileEmbeddings]
    pid: int
    node: str
    seconds: float


def embed_batch(
    spec: EmbedderSpec,
    files: list[list[CropRef]],
    hook: BatchHook | None = None,
    blobs: BlobMirror | None = None,
    refs: dict[int, BlobRef] | None = None,
) -> EmbedBatchResult:
    """Embed the crops of a batch of files (runs in a Ray worker; plain for tests).

    Parameters
    ----------
    spec
        The driver's encoder and crop settings.
    files
        Per file, its crops not cached yet (all of one list name the same file).
    hook
        Called first with the batch's media ids (fault-injection tests).
    blobs, refs
        Read each file from this object-store mirror (into the node's cache,
        sha256 checked) instead of its path on the driver; ``refs`` names each
        media's object.

    Returns
    -------
    EmbedBatchResult
    """
    if hook is not None:
        hook([f[0].media_id for f in files])
    t0 = time.perf_counter()
    embedder = _embedder_for(spec)
    if blobs is not None:
        got = refs or {}
        local = blobs.fetch_many([got[f[0].media_id] for f in files])
        files = [[replace(c, path=path) for c in f] for f, path in zip(files, local, strict=True)]
    out = [embed_file(embedder, f) for f in files]
    return EmbedBatchResult(out, os.getpid(), os.uname().nodename, time.perf_counter() - t0)


@dataclass
class RayEmbedder:
    """Embeds files on Ray workers: ``embed_files`` of species training and ``embed_refs``.

    Called with the driver's encoder and the files whose crops are not cached,
    it connects (or joins a running Ray), sends batches of whole files to the
    workers and yields one result per file in the order given, as
    :func:`irbis.pipeline.species_stage.embed_refs` expects; the driver writes
    the cache. Nothing cached to embed: Ray is not started.

    Attributes
    ----------
    address
        Ray address (see :mod:`irbis.pipeline.cluster`); default
        ``$IRBIS_RAY_ADDRESS``, else ``local``.
    batch_size
        Crops per Ray task (whole files).
    hook
        Called in the worker with each batch's media ids.
    stats
        When given, one dict per batch is appended (crops, worker pid and node,
        seconds in the worker, seconds since the first submission when it came back).
    blobs, project
        Workers read the originals from this object-store mirror (``irbis
        blobs push``) instead of the driver's paths, so no shared filesystem
        is needed; ``project`` (the open project) names each media's object.
    """

    address: str | None = None
    batch_size: int = DEFAULT_EMBED_BATCH
    hook: BatchHook | None = None
    stats: list[dict[str, Any]] | None = None
    blobs: BlobMirror | None = None
    project: Project | None = None

    def __post_init__(self) -> None:
        if self.blobs is not None and self.project is None:
            raise ValueError("RayEmbedder: blobs needs the project (it names each media's object)")

    def __call__(self, embedder: Any, files: list[list[CropRef]]) -> Iterator[FileEmbeddings]:
        """One :data:`~irbis.pipeline.species_stage.FileEmbeddings` per file, in order."""
        if not files:
            return
        ray = _ray()
        started = connect(self.address or os.environ.get(RAY_ENV) or "local")
        try:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            spec = EmbedderSpec(embedder.name, embedder.version, embedder.side, embedder.context)
            spec_ref = ray.put(spec)
            work = batches(files, max(1, self.batch_size), weight=len)
            task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(embed_batch)
            t0 = time.perf_counter()

            def submit(i: int) -> Any:
                if self.blobs is None or self.project is None:
                    return task.remote(spec_ref, work[i], self.hook)
                refs = blob_refs(self.project, (f[0].media_id for f in work[i]))
                return task.remote(spec_ref, work[i], self.hook, self.blobs, refs)

            for i, res in _in_order(len(work), 2 * workers + 1, submit, ray):
                if self.stats is not None:
                    self.stats.append(
                        batch_record(
                            i,
                            res,
                            phase="embed",
                            crops=sum(len(f) for f in work[i]),
                            t_done=time.perf_counter() - t0,
                        )
                    )
                yield from res.files
        finally:
            if started:
                ray.shutdown()
