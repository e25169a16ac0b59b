"""The detect stage on a Ray cluster: many machines (or cores) look, one driver writes.

``irbis detect PROJECT --ray ADDRESS`` (or ``IRBIS_RAY_ADDRESS``) runs
:func:`run_detect_ray`. The laptop path (:func:`irbis.pipeline.detect_stage.run_detect`)
is unchanged; this module reuses its work units, verdicts and writer.

How the work is split and kept safe:

* The driver (the machine running ``irbis detect``) finds the pending work
  exactly as the laptop run does: every sequence with a media file that has no
  result for this detector key (model, version, threshold, fusion), and loose
  media without a result. It cuts that list into *batches of whole sequences*
  of about ``batch_size`` media (a long sequence is never split, so the motion
  detector compares the same frames as on a laptop).
* Each batch is one Ray task. A worker process opens the model once (it is
  cached in the process for every later batch), reads the originals, decodes,
  detects and returns the boxes. Workers never touch the database. Originals
  are read from the project's blob store by path — the project folder (or the
  referenced originals) on a filesystem every node mounts at the same path —
  or, with ``blobs`` (``--blobs s3://BUCKET/PREFIX``), from an S3-compatible
  mirror of it (:mod:`irbis.ingest.blob_mirror`): each worker fetches an
  original by its sha256 into its node's cache and checks the hash, so no
  shared filesystem is needed.
* The driver writes each sequence through the detect stage's own writer, one
  transaction per sequence, in the order of the single-process run, so the rows
  (ids included) are those a laptop run writes, and shows one progress bar.
* A worker that dies mid-batch (killed, out of memory, node lost) makes Ray run
  the batch again elsewhere (``max_retries``); its result reaches the driver
  once, and the writer replaces a sequence's rows anyway, so nothing is doubled.
* A driver that dies leaves only whole sequences written; the next run's
  pending list is what still has no result, so it finishes the job.

Addresses: ``local`` starts a Ray instance on this machine with one worker per
core, ``local:N`` with N workers (127.0.0.1 only, no dashboard); anything else
is passed to :func:`ray.init` (``auto``, ``ray://head:10001``, ``head:6379``).
Ray is an optional extra: ``pip install 'irbis[ray]'``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irbis.core.errors import IrbisError
from irbis.ingest.blob_mirror import BlobMirror, BlobRef, blob_refs
from irbis.pipeline.detect_stage import (
    DetectSummary,
    Progress,
    _Burst,
    _chunks,
    _load_chunk,
    _Loaded,
    _prefetch,
    _start_run,
    _Unit,
    _write_unit,
)
from irbis.store.project import Project
from irbis.vision.boxes import Detection

__all__ = [
    "RAY_ENV",
    "DetectorSpec",
    "RayUnavailableError",
    "batches",
    "check_reachable",
    "connect",
    "run_detect_ray",
]

_log = logging.getLogger(__name__)

#: Environment variable naming the Ray address when ``--ray`` is not given.
RAY_ENV = "IRBIS_RAY_ADDRESS"
#: Media per batch: large enough that Ray's per-task overhead is small.
DEFAULT_BATCH = 64
#: Times a batch is run again after its worker died.
MAX_RETRIES = 3

#: A worker-side hook called with the media ids of each batch before it is
#: processed (fault-injection tests, instrumentation); must be picklable.
BatchHook = Callable[[list[int]], None]


class RayUnavailableError(RuntimeError):
    """Ray is not installed or the cluster cannot be reached (the message says what to do)."""


@dataclass(frozen=True)
class DetectorSpec:
    """How to open the detector: what a worker needs to load the driver's model.

    The fields are those of :func:`irbis.vision.sequence.load_sequence_detector`.
    ``root`` is the model cache the driver used; a worker uses it when that path
    exists on its node, else its own cache (the key check catches a different
    model there).
    """

    kind: str = "fused"
    model: str = "mdlite"
    threshold: float | None = None
    threads: int | None = None
    engine: str | None = None
    precision: str | None = None
    root: str | None = None

    def load(self) -> Any:
        """Open and verify the detector (sha256 checked by the registry)."""
        from irbis.vision.sequence import load_sequence_detector

        root = Path(self.root) if self.root and Path(self.root).is_dir() else None
        return load_sequence_detector(
            self.kind,
            model=self.model,
            root=root,
            threshold=self.threshold,
            threads=self.threads,
            engine=self.engine,
            precision=self.precision,
        )


# -- connecting ---------------------------------------------------------------------


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RayUnavailableError(
            "Ray is not installed: pip install 'irbis[ray]' (or run without --ray)"
        ) from exc
    return ray


def connect(address: str) -> bool:
    """Connect to (or start) the Ray cluster at ``address``.

    Returns True when this call started or joined Ray (the caller shuts it
    down when done), False when Ray was already initialised in this process.

    Raises
    ------
    RayUnavailableError
        Ray missing or the address unreachable.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    check_reachable(address)
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    try:
        if address == "local" or address.startswith("local:"):
            n = int(address.split(":", 1)[1]) if ":" in address else (os.cpu_count() or 1)
            if n < 1:
                raise ValueError("local:N needs N >= 1")
            # address="local": a new instance even where `ray start` left a
            # cluster address for plain ray.init() to join.
            ray.init(address="local", num_cpus=n, include_dashboard=False, **kwargs)
        else:
            _use_token_if_any()
            _init_retrying(ray, address, kwargs)
    except Exception as exc:
        if type(exc).__name__ == "AuthenticationError":
            raise RayUnavailableError(
                f"the Ray cluster at {address!r} wants its token: set RAY_AUTH_MODE=token "
                "and give this machine the head's token (its ~/.ray/auth_token, or "
                "RAY_AUTH_TOKEN)"
            ) from exc
        if not isinstance(exc, ConnectionError | ValueError | RuntimeError):
            raise
        first = _one_line(exc)
        token = (
            "; a cluster with token authentication also needs RAY_AUTH_MODE=token and "
            "its token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
            if os.environ.get("RAY_AUTH_MODE") != "token"
            else ""
        )
        raise RayUnavailableError(
            f"cannot start or reach the Ray cluster at {address!r}: {first} ({_WHAT_TO_DO}{token})"
        ) from exc
    return True


#: Connections a ``ray://`` address gets when the head fails to start this client's server.
CLIENT_TRIES = 3


def _init_retrying(ray: Any, address: str, kwargs: dict[str, Any]) -> None:
    """:func:`ray.init`, tried again where a Ray client's head could not serve this client.

    A ``ray://`` head (Ray's client proxy) starts a server process for every
    client that connects. Now and then that process dies as it starts or
    misses the proxy's deadline, on a busy head more often, and the client
    gets "Initialization failure from server" although the cluster is fine; a
    new connection gets a new server process, so it is tried again (after a
    warning on the ``irbis.pipeline.cluster`` logger) before giving up. Other
    failures are not retried.
    """
    for attempt in range(1, CLIENT_TRIES + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except ConnectionAbortedError as exc:
            if not address.startswith("ray://") or attempt == CLIENT_TRIES:
                raise
            ray.shutdown()  # the half-made client connection
            _log.warning(
                "the Ray head at %s could not start a server for this client (%s); "
                "connecting again (%d of %d)",
                address,
                _one_line(exc),
                attempt + 1,
                CLIENT_TRIES,
            )
            time.sleep(2.0)


def _one_line(exc: BaseException) -> str:
    """The line of a Ray error that says what went wrong.

    Ray's client wraps a head's failure as "Initialization failure from
    server:" followed by the head's traceback, whose last line is the cause.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[-1]}"
    return lines[0]


def _use_token_if_any() -> None:
    """Send this user's Ray token to an explicitly named cluster, as Ray does for ``auto``.

    Clusters started by ``ray start`` (and ``scripts/ray-local``) require token
    authentication; Ray's client only sends the token (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) when ``RAY_AUTH_MODE=token``,
    and otherwise retries for many seconds before failing. An explicit
    ``RAY_AUTH_MODE`` is left as set.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:  # Ray's own rule (it also refreshes the config Ray read at import)
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication: nothing to send
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


_WHAT_TO_DO = (
    "start one with `scripts/ray-local start` or `ray start --head`, check the address "
    f"given to --ray or in {RAY_ENV}, or use --ray local"
)
#: Seconds to wait for the head node to accept a connection before giving up.
CONNECT_TIMEOUT_S = 3.0


#: HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113, 3.4).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4


def _host_port(address: str) -> tuple[str, int] | None:
    """The head's host and port in a Ray address, or None where Ray finds it itself."""
    if address == "auto" or address == "local" or address.startswith("local:"):
        return None
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://").split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        # Ray's defaults: the client server on 10001, the GCS on 6379.
        return rest.strip("[]"), 10001 if client else 6379
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast when nothing answers at a Ray head's address.

    :func:`ray.init` retries an unreachable head for a long time; a plain TCP
    connection to its port tells in seconds whether anyone listens there.

    Raises
    ------
    RayUnavailableError
        One line naming the address, why, and what to do.
    """
    target = _host_port(address)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            # Ray's head speaks gRPC (HTTP/2): it answers a client preface with
            # a SETTINGS frame. A firewall or proxy that accepts any connection,
            # or another service on the port, does not.
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        if len(head) < 9 or head[3] != _H2_SETTINGS:
            raise ConnectionError("something answers, but not a Ray head (no gRPC)")
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise RayUnavailableError(
            f"no Ray cluster at {address!r} ({host}:{port}: {why}): {_WHAT_TO_DO}"
        ) from exc


# -- the worker side ----------------------------------------------------------------

_DETECTORS: dict[DetectorSpec, Any] = {}


def _detector_for(spec: DetectorSpec, key: str) -> Any:
    """The worker process's detector for ``spec``: opened once, then reused."""
    det = _DETECTORS.get(spec)
    if det is None:
        det = spec.load()
        if det.key != key:
            raise RuntimeError(
                f"worker {os.uname().nodename} has detector {det.key}, the driver {key}: "
                "install the same model version on every node"
            )
        _DETECTORS[spec] = det
    return det


@dataclass
class BatchResult:
    """What a worker sends back for one batch: per unit, frame metadata and boxes."""

    units: list[tuple[list[_Burst], list[list[list[Detection]]], dict[int, str]]]
    pid: int
    node: str
    seconds: float


def detect_batch(
    spec: DetectorSpec,
    key: str,
    units: list[_Unit],
    video_every_s: float,
    video_max_frames: int,
    max_burst: int,
    hook: BatchHook | None = None,
    blobs: BlobMirror | None = None,
    refs: dict[int, BlobRef] | None = None,
    overlap: bool = True,
) -> BatchResult:
    """Decode and detect a batch of units (runs in a Ray worker; plain function for tests).

    With ``overlap``, decoding of the next chunk overlaps inference on this one,
    as on a laptop; without, the worker decodes and infers in turn and so keeps
    to the one core Ray gave it. The chunks and bursts are the laptop run's,
    so the boxes are the same either way.
    With ``blobs``, each original is fetched from the mirror by its ``refs``
    entry (into this node's cache) instead of read at the driver's path.
    """
    if hook is not None:
        hook([it.media_id for u in units for it in u.items])
    t0 = time.perf_counter()
    det = _detector_for(spec, key)
    jobs = [(k, chunk) for k, u in enumerate(units) for chunk in _chunks(u, max_burst)]

    def load(job: tuple[int, list[int]]) -> tuple[list[_Burst], dict[int, str]]:
        k, chunk = job
        unit = units[k] if blobs is None else _fetched(units[k], chunk, blobs, refs or {})
        return _load_chunk(
            unit, chunk, det, video_every_s=video_every_s, video_max_frames=video_max_frames
        )

    out: list[tuple[list[_Burst], list[list[list[Detection]]], dict[int, str]]] = [
        ([], [], {}) for _ in units
    ]
    loaded = _prefetch(jobs, load) if overlap else ((job, load(job)) for job in jobs)
    for (k, _chunk), (bursts, errors) in loaded:
        for b in bursts:
            out[k][1].append(det.run(b.prepared))
            b.prepared = None  # tensors stay on the worker
        out[k][0].extend(bursts)
        out[k][2].update(errors)
    return BatchResult(out, os.getpid(), os.uname().nodename, time.perf_counter() - t0)


def _fetched(unit: _Unit, chunk: list[int], blobs: BlobMirror, refs: dict[int, BlobRef]) -> _Unit:
    """``unit`` with the originals of ``chunk`` fetched from the mirror into this node's cache."""
    from dataclasses import replace

    paths = blobs.fetch_many([refs[unit.items[i].media_id] for i in chunk])
    items = list(unit.items)
    for i, path in zip(chunk, paths, strict=True):
        items[i] = replace(items[i], path=path)
    return replace(unit, items=items)


# -- the driver side ----------------------------------------------------------------


def batches(
    units: list[Any],
    size: int,
    weight: Callable[[Any], int] | None = None,
    *,
    parts: int = 1,
) -> list[list[Any]]:
    """Cut units (whole sequences) into consecutive batches of about ``size`` media.

    With ``parts`` = 1 a batch closes once it holds ``size`` media or more. With
    ``parts`` > 1 (the number of workers) the run is cut into a multiple of
    ``parts`` batches of nearly equal weight, each about ``size`` media or more,
    so that the workers finish together: 7 batches on 2 workers leave one idle
    for a whole batch at the end (about 1/8 of a 478-photo run). A sequence is
    never split. ``weight`` counts a unit's media (default: a detect unit's
    ``items``; the identify run passes ``len`` for its bursts of crops).
    """
    count = weight or (lambda u: len(u.items))
    sizes = [count(u) for u in units]
    total = sum(sizes)
    n = max(1, total // max(1, size))
    if parts > 1 and n > parts:
        n -= n % parts
    if parts <= 1 or n <= 1:
        out: list[list[Any]] = []
        cur: list[Any] = []
        got = 0
        for u, w in zip(units, sizes, strict=True):
            cur.append(u)
            got += w
            if got >= size:
                out.append(cur)
                cur, got = [], 0
        if cur:
            out.append(cur)
        return out
    # Cut at the sequence boundary nearest each k/n of the run's media.
    bounds: list[int] = []
    acc = 0
    k = 1
    for i, w in enumerate(sizes):
        before, acc = acc, acc + w
        while k < n and acc >= k * total / n:
            ideal = k * total / n
            cut = (
                i
                if (ideal - before) < (acc - ideal) and i > (bounds[-1] if bounds else 0)
                else i + 1
            )
            if not bounds or cut > bounds[-1]:
                bounds.append(cut)
            k += 1
    edges = [0, *bounds, len(units)]
    return [units[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


def batch_record(i: int, res: Any, **fields: Any) -> dict[str, Any]:
    """One batch's entry for a run's ``stats``: its index, the worker's pid, node and seconds.

    ``fields`` add what the stage counts (``media``, ``crops``, ``phase``) and
    its own clocks (seconds, rounded to 0.1 ms like the worker's).
    """
    rec: dict[str, Any] = {"batch": i, "pid": res.pid, "node": res.node}
    rec["worker_s"] = round(res.seconds, 4)
    rec.update({k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()})
    return rec


def _in_order(
    n: int, window: int, submit: Callable[[int], Any], ray: Any
) -> Iterator[tuple[int, Any]]:
    """Submit ``n`` batches keeping ``window`` in flight; yield results in submission order.

    Interrupted (an exception or a closed generator), it cancels what is still running.
    """
    ready: dict[int, Any] = {}
    pending: dict[Any, int] = {}
    nxt = 0
    want = 0
    try:
        while want < n:
            while nxt < n and len(pending) < window:
                pending[submit(nxt)] = nxt
                nxt += 1
            if want in ready:
                yield want, ready.pop(want)
                want += 1
                continue
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                ready[pending.pop(ref)] = _get(ray, ref)
    finally:
        for ref in pending:  # interrupted: stop what is still running
            ray.cancel(ref, force=True)


def _get(ray: Any, ref: Any) -> Any:
    """A task's result; an irbis error raised in the worker comes out as itself.

    Ray wraps a task's exception with the worker's traceback; an
    :class:`~irbis.core.errors.IrbisError` is meant for a person as one line.
    """
    try:
        return ray.get(ref)
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, IrbisError):
            raise cause from None
        raise


def run_detect_ray(
    project: Project,
    spec: DetectorSpec,
    *,
    address: str | None = None,
    detector: Any | None = None,
    progress: Progress | None = None,
    video_every_s: float = 1.0,
    video_max_frames: int = 30,
    max_burst: int = 24,
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    hook: BatchHook | None = None,
    stats: list[dict[str, Any]] | None = None,
    blobs: BlobMirror | None = None,
    worker_cpus: int = 1,
) -> DetectSummary:
    """Like :func:`irbis.pipeline.detect_stage.run_detect`, with Ray workers doing the looking.

    Parameters
    ----------
    project
        An open project; its folder must be reachable at the same path on every
        node, unless ``blobs`` is given.
    spec
        How workers open the detector (:class:`DetectorSpec`).
    address
        Ray address (see the module doc); default ``$IRBIS_RAY_ADDRESS``, else
        ``local``. Ignored when Ray is already initialised in this process.
    detector
        The driver's own copy of the detector (default: ``spec.load()``): it
        names the results and is verified before anything is read or written.
    progress, video_every_s, video_max_frames, max_burst, limit
        As for ``run_detect``.
    batch_size
        Media per Ray task (whole sequences; see :func:`batches`).
    hook
        Called in the worker with each batch's media ids before it is processed.
    stats
        When given, one dict per batch is appended (media, worker pid and node,
        seconds in the worker, seconds from submission to result).
    blobs
        Workers read the originals from this object-store mirror instead of the
        project folder (``irbis blobs push`` fills it).
    worker_cpus
        Cores Ray reserves for each task. With one (the default: one worker per
        core) a worker runs one inference thread and decodes between its
        inferences, so it never takes a second core from its neighbour. With
        two or more it runs that many inference threads (unless ``spec`` says)
        and decodes the next chunk in a thread of its own, as a laptop does.

    Returns
    -------
    DetectSummary

    Raises
    ------
    BlobFetchError
        With ``blobs``: an original missing from the mirror or corrupt there
        (what was written before stays; rerun after pushing it again).
    """
    ray = _ray()
    if detector is None:
        detector = spec.load()
    t0 = time.perf_counter()
    units, summary, progressed = _start_run(project, detector, limit, progress)
    total = summary.media_total
    if not units:
        summary.seconds = round(time.perf_counter() - t0, 3)
        return summary

    started = connect(address or os.environ.get(RAY_ENV) or "local")
    try:
        cpus = max(1, int(worker_cpus))
        widest = max(
            (int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0
        )
        if cpus > widest:
            # Ray would queue such a task forever; say so instead.
            raise RayUnavailableError(
                f"--worker-cpus {cpus}: no node of this Ray cluster has more than {widest} "
                "cores; ask for fewer cores per worker"
            )
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)
        work = batches(units, max(1, batch_size), parts=workers)
        # A task keeps to the cores Ray reserved for it: as many inference threads,
        # and a decoding thread beside them only when there is a core to spare for
        # it. A one-core worker that also decoded in a second thread took 1.1
        # cores, which N workers on N cores cannot each have (bench/README.md).
        wspec = spec if spec.threads is not None else _with_threads(spec, cpus)
        overlap = cpus >= 2
        task = ray.remote(num_cpus=cpus, max_retries=MAX_RETRIES)(detect_batch)
        spec_ref = ray.put(wspec)
        submitted: dict[int, float] = {}
        refs = blob_refs(project, _media_ids(units)) if blobs is not None else {}

        def submit(i: int) -> Any:
            submitted[i] = time.perf_counter()
            return task.remote(
                spec_ref,
                detector.key,
                work[i],
                video_every_s,
                video_max_frames,
                max_burst,
                hook,
                blobs=blobs,
                refs={m: refs[m] for m in _media_ids(work[i])} if blobs is not None else None,
                overlap=overlap,
            )

        for i, res in _in_order(len(work), 2 * workers + 1, submit, ray):
            wall = time.perf_counter() - submitted[i]
            for unit, (bursts, per_frame, errors) in zip(work[i], res.units, strict=True):
                _write_unit(project, detector, _Loaded(unit, bursts, errors), per_frame, summary)
                progressed += len(unit.items)
                if progress:
                    progress(min(progressed, total), total, unit.items[-1].file_name)
            if stats is not None:
                stats.append(
                    batch_record(i, res, media=sum(len(u.items) for u in work[i]), wall_s=wall)
                )
    finally:
        if started:
            ray.shutdown()
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def _media_ids(units: list[_Unit]) -> list[int]:
    return [it.media_id for u in units for it in u.items]


def _with_threads(spec: DetectorSpec, threads: int) -> DetectorSpec:
    from dataclasses import replace

    return replace(spec, threads=threads)
