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
* **species** (:func:`embed_refs_ray`): every labelled crop's dinov2-s
  embedding. Workers embed the files whose crops are not in the project's
  embedding cache, one file at a time as one process does
  (:func:`irbis.pipeline.species_stage.embed_file`), and send the vectors
  back; the driver alone writes the cache (one SQLite file, which a second
  machine must not write) and assembles the embeddings in the single-process
  order, so the head is the one process's.

Workers read the originals (and, for reid, the feature cache) from the project
folder, which must be at the same path on every node, as for ``irbis identify
--ray``. A worker that dies mid-batch makes Ray run the batch again
(``max_retries``); its result reaches the driver once and is used once, so
nothing is doubled. The submit-and-collect loop is the detect stage's
(:func:`irbis.pipeline.cluster._in_order`).

``irbis models train detector`` has no ``--ray``: it is PyTorch training on
one machine's cores, whose data loading (decoding a few hundred frames per
epoch, cached after the first) is a small share of a step's time; shipping
batches from other machines would not shorten the backward passes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irbis.pipeline.cluster import (
    MAX_RETRIES,
    RAY_ENV,
    BatchHook,
    _in_order,
    _ray,
    batches,
    connect,
)
from irbis.pipeline.cluster_identify import (
    Members,
    _catalogue_for,
    _members,
    _worker_side,
    warm_cache,
)
from irbis.pipeline.identify_stage import (
    _by_sequence,
    _Crop,
    _FeatureCache,
    _features,
    _Photo,
    _Query,
    _variant,
)
from irbis.pipeline.train_reid import confirmed_matches, evidence
from irbis.reid import Catalogue, Features
from irbis.reid.ranking import FrameEvidence
from irbis.reid.ranking_eval import SurveyMatches
from irbis.store import Project

__all__ = [
    "DEFAULT_BATCH",
    "ReidWorkers",
    "confirmed_matches_ray",
    "evidence_batch",
]

#: Crops per Ray task: matching one takes about a second on one core, so
#: Ray's few milliseconds per task are lost in it even for small batches.
DEFAULT_BATCH = 16

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
    queries: list[_Query],
    members: Members,
    cache_dir: str,
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
    queries
        The crops to match; their features are in the cache (the driver read them).
    members
        Per sequence, its photos in time order (motion masks, should a cache
        file have gone missing since).
    cache_dir
        The project's feature cache.
    hook
        Called first with the batch's annotation ids (fault-injection tests).

    Returns
    -------
    EvidenceBatchResult
    """
    if hook is not None:
        hook([q.crop.id for q in queries])
    t0 = time.perf_counter()
    catalogue = _catalogue_for(key, catalogue_box)
    enc, groups = maps
    cache, motion, _ = _worker_side([queries], members, cache_dir, None, None)
    frames = [
        evidence(catalogue, q.ra, _features(cache, q.ra, q.crop, q.photo, motion), enc, groups)
        for q in queries
    ]
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
    """

    project: Project
    workers: int
    batch_size: int = DEFAULT_BATCH
    hook: BatchHook | None = None
    stats: list[dict[str, Any]] | None = None
    _queries: dict[str, _Query] = field(default_factory=dict)

    @property
    def _cache_dir(self) -> Path:
        return (self.project.tmp_dir / "reid").resolve()

    def _args(self, todo: list[list[_Query]]) -> tuple[Members, str, dict[str, Any]]:
        return _members(self.project, todo), str(self._cache_dir), {}

    def warm(self, known: Sequence[tuple[Any, Any, Any]]) -> None:
        """Extract the features of the confirmed crops not cached yet, on the workers.

        Parameters
        ----------
        known
            ``(annotation, media, reid annotation)`` of every confirmed crop.
        """
        cache = _FeatureCache(self._cache_dir)
        queries = [_Query(_Crop.of(a), _Photo.of(m), ra) for a, m, ra in known]
        self._queries = {q.ra.id: q for q in queries}
        cold = [q for q in queries if not cache.has(q.crop, _variant(q.crop))]
        if not cold:
            return
        stats: list[dict[str, Any]] = []
        warm_cache(
            _by_sequence(cold),
            self._args,
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
        queries = [self._queries[ra.id] for ra, _, _ in items]
        work = batches(queries, max(1, self.batch_size), weight=lambda _: 1)
        if not work:
            return []
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(evidence_batch)
        catalogue_ref = ray.put(catalogue)
        maps_ref = ray.put((enc, members))
        ids = repr(sorted(int(i) for i in enc)).encode()
        # A key of its own: a worker never reuses an identify run's catalogue.
        key = f"{self.project.root.resolve()}:train-reid:{hashlib.sha1(ids).hexdigest()[:16]}"
        t0 = time.perf_counter()

        def submit(i: int) -> Any:
            seq_members = _members(self.project, [work[i]])
            return task.remote(
                [catalogue_ref], key, maps_ref, work[i], seq_members, str(self._cache_dir),
                self.hook,
            )  # fmt: skip

        out: list[FrameEvidence] = []
        for i, res in _in_order(len(work), 2 * self.workers + 1, submit, ray):
            out.extend(res.frames)
            if progress:
                progress(len(out), len(queries))
            if self.stats is not None:
                self.stats.append(
                    {
                        "phase": "match",
                        "batch": i,
                        "crops": len(work[i]),
                        "pid": res.pid,
                        "node": res.node,
                        "worker_s": round(res.seconds, 4),
                        "t_done": round(time.perf_counter() - t0, 4),
                    }
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
) -> tuple[SurveyMatches, list[dict[str, Any]]]:
    """:func:`irbis.pipeline.train_reid.confirmed_matches` with Ray workers extracting and matching.

    ``functools.partial(confirmed_matches_ray, address=...)`` is the ``matches``
    of :func:`irbis.pipeline.train_reid.train_reid_ranking`.

    Parameters
    ----------
    project
        An open project; its folder must be at the same path on every node.
    progress
        ``progress(done, total)`` confirmed crops matched.
    address
        Ray address (see :mod:`irbis.pipeline.cluster`); default
        ``$IRBIS_RAY_ADDRESS``, else ``local``. Ignored when Ray is already
        initialised in this process.
    batch_size, hook, stats
        As for :class:`ReidWorkers`.

    Returns
    -------
    matches, errors
        Equal to the single-process run's.

    Raises
    ------
    RayUnavailableError
        Ray missing or the address unreachable (before anything is read).
    """
    ray = _ray()
    started = connect(address or os.environ.get(RAY_ENV) or "local")
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pool = ReidWorkers(project, workers, batch_size, hook, stats)
        return confirmed_matches(project, progress, pool)
    finally:
        if started:
            ray.shutdown()
