"""The detect stage: every media file gets boxes and a verdict, every sequence a verdict.

Input: the project's ``media`` rows (photos and videos) grouped into
sequences (bursts) by ingest. Output:

* ``media_detections``: one row per media file and detector configuration
  (``detector`` key: model, version, threshold, fusion) with the verdict
  (``blank`` / ``animal`` / ``person`` / ``vehicle``, or ``error`` for a file
  that cannot be decoded), the best score and frame;
* ``detections``: the boxes above the operating point (normalised like
  Camtrap DP's bbox columns), with the source that made each one;
* ``sequence_verdicts``: per sequence, the verdict and its best frame.

The unit of work is a sequence, because the motion detector compares the
frames of one burst; each video is a burst of its own sampled frames. One
sequence is written in one transaction, so an interrupted run leaves only
whole sequences behind and the next run continues with the first sequence
that has no result: rerunning adds nothing, interrupting and rerunning
equals one run. The model is loaded and verified before anything is read or
written, so a broken model writes nothing.

Verdict of a media file: the first of ``animal``, ``person``, ``vehicle``
that one of its frames has a box of at the operating point; with no box,
``unjudged`` when the frame is too small for the detector to judge (longer
side under :data:`irbis.store.blanks.MIN_JUDGE_SIDE` pixels: camtrapR's
100x75 thumbnails), else ``blank``.

Verdict of a sequence: ``animal`` when any frame has an animal box, else
``person``, else ``vehicle``; with no box anywhere, ``unjudged`` when one of
its media is unjudged or unreadable, else ``blank``. Animal first because a
blank filter that drops a sequence with a cat in it because a herder walked
past is worse than one more sequence to look at; people are still counted
per media and blurred in exports. A single frame with a box keeps the whole
burst, and a burst the detector could not fully judge is never blank. What
is finally set aside as blank also weighs people's boxes and labels
(:mod:`irbis.store.blanks`).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import aliased

from irbis.core.errors import BadInputError
from irbis.store.blanks import MIN_JUDGE_SIDE, blank_status
from irbis.store.project import Project
from irbis.store.schema import (
    Deployment,
    DetectionBox,
    Media,
    MediaDetection,
    MediaGroup,
    SequenceVerdict,
    Station,
)
from irbis.vision.boxes import Detection

__all__ = [
    "DetectSummary",
    "Progress",
    "detection_status",
    "media_path",
    "run_detect",
]

Progress = Callable[[int, int, str], None]
VERDICT_ORDER = ("animal", "person", "vehicle")
#: No box, but the detector could not judge (too small) or read (error) a media file.
UNJUDGED = "unjudged"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def media_path(project: Project, media: Media) -> Path:
    """Where the bytes of ``media`` are: the blob store (copy) or the original (reference)."""
    if media.storage == "copy":
        return project.blob_dir / media.stored_path
    return Path(media.stored_path)


@dataclass
class DetectSummary:
    """What one run of the stage did (``--json`` output of ``irbis detect``)."""

    detector: str
    model: str
    model_version: str
    threshold: float
    media_total: int = 0
    media_done_before: int = 0
    media_processed: int = 0
    frames: int = 0
    sequences_processed: int = 0
    sequences_rebuilt: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["images_per_s"] = round(self.frames / self.seconds, 3) if self.seconds > 0 else None
        return d


# -- work units ---------------------------------------------------------------------


@dataclass
class _Item:
    media_id: int
    file_name: str
    mediatype: str
    path: Path


@dataclass
class _Unit:
    """One sequence (or one media file without a sequence).

    ``rebuild``: every media file already has a result from a run that judged
    exactly these media together; only the sequence verdict is missing (ingest
    rebuilt the sequences), so it is recomputed from the stored results.
    """

    sequence_id: int | None
    items: list[_Item]
    rebuild: bool = False

    @property
    def burst(self) -> str:
        return burst_digest(it.media_id for it in self.items)


def burst_digest(media_ids: Any) -> str:
    """A short digest of a set of media ids (what was judged together)."""
    text = ",".join(str(i) for i in sorted(media_ids))
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@dataclass
class _Burst:
    """Frames that the motion detector compares: a sequence's photos, or one video."""

    item: list[int]  # index into the unit's items, per frame
    frame_no: list[int]  # frame number within its media file (0 for a photo)
    time_s: list[float | None]  # offset in the video (None for a photo)
    size: list[tuple[int, int]]  # decoded frame width, height
    prepared: Any


@dataclass
class _Loaded:
    """A unit with its frames decoded and prepared (done in the loader thread)."""

    unit: _Unit
    bursts: list[_Burst]
    errors: dict[int, str]

    @property
    def n_frames(self) -> int:
        return sum(len(b.item) for b in self.bursts)


def _pending_units(project: Project, key: str) -> tuple[list[_Unit], int, int]:
    """Units to process for detector ``key``.

    A sequence is a unit when one of its media files has no result for
    ``key`` (it is then judged as a whole), or when it has no verdict for
    ``key`` (ingest rebuilt it); a media file without a sequence is a unit
    when it has no result. Returns the units (in deployment and time order),
    the total number of media and the number already done.
    """

    def undone(m: Any) -> Any:
        return ~exists().where(MediaDetection.media_id == m.id, MediaDetection.detector == key)

    inner = aliased(Media)
    pending_seq = select(inner.sequence_id).where(undone(inner), inner.sequence_id.is_not(None))
    no_verdict = select(MediaGroup.id).where(
        MediaGroup.kind == "sequence",
        ~exists().where(
            SequenceVerdict.sequence_id == MediaGroup.id, SequenceVerdict.detector == key
        ),
    )
    with project.session() as s:
        total = s.scalar(select(func.count()).select_from(Media)) or 0
        todo = s.scalar(select(func.count()).select_from(Media).where(undone(Media))) or 0
        rows = s.execute(
            select(
                Media.id,
                Media.sequence_id,
                Media.file_name,
                Media.mediatype,
                Media.storage,
                Media.stored_path,
            )
            .where(
                Media.sequence_id.in_(pending_seq)
                | Media.sequence_id.in_(no_verdict)
                | (Media.sequence_id.is_(None) & undone(Media))
            )
            .order_by(Media.deployment_id, Media.timestamp_utc, Media.id)
        ).all()
        units: dict[Any, _Unit] = {}
        for r in rows:
            path = project.blob_dir / r.stored_path if r.storage == "copy" else Path(r.stored_path)
            item = _Item(r.id, r.file_name, r.mediatype, path)
            k = ("s", r.sequence_id) if r.sequence_id is not None else ("m", r.id)
            units.setdefault(k, _Unit(r.sequence_id, [])).items.append(item)
        # Which media were judged together, for sequences that may need only a verdict.
        ids = [it.media_id for u in units.values() if u.sequence_id is not None for it in u.items]
        judged: dict[int, str] = {}
        for chunk in range(0, len(ids), 500):
            judged.update(
                s.execute(
                    select(MediaDetection.media_id, MediaDetection.burst).where(
                        MediaDetection.detector == key,
                        MediaDetection.media_id.in_(ids[chunk : chunk + 500]),
                    )
                ).all()
            )
    for u in units.values():
        if u.sequence_id is not None:
            digest = u.burst
            u.rebuild = all(judged.get(it.media_id) == digest for it in u.items)
    return list(units.values()), total, total - todo


def _open_image(path: Path, min_side: int | None = None) -> Image.Image:
    """Decode a photo (a large JPEG at reduced scale when the detector allows it)."""
    from irbis.vision.detector import open_image

    return open_image(path, min_side=min_side)


def _chunks(unit: _Unit, max_burst: int) -> list[list[int]]:
    """Split a unit's items into loading chunks: videos alone, photos in runs.

    A time-lapse camera can make one "sequence" of a whole day; judging at most
    ``max_burst`` consecutive photos together bounds the memory (a letterboxed
    frame is 4.9 MB) while keeping enough frames for a motion background.
    """
    photos = [i for i, it in enumerate(unit.items) if it.mediatype != "video"]
    videos = [[i] for i, it in enumerate(unit.items) if it.mediatype == "video"]
    n_runs = max(1, -(-len(photos) // max_burst))
    size = -(-len(photos) // n_runs) if photos else 0  # even runs, none tiny
    runs = [photos[k : k + size] for k in range(0, len(photos), size)] if photos else []
    return runs + videos


def _load_chunk(
    unit: _Unit, items: list[int], detector: Any, *, video_every_s: float, video_max_frames: int
) -> tuple[list[_Burst], dict[int, str]]:
    """Decode some of a unit's items and run the detector's ``prepare`` on them."""
    from irbis.vision.video import sample_frames

    errors: dict[int, str] = {}
    photo_idx: list[int] = []
    photos: list[Image.Image] = []
    bursts: list[_Burst] = []
    for i in items:
        item = unit.items[i]
        try:
            if item.mediatype == "video":
                frames = sample_frames(
                    item.path, every_s=video_every_s, max_frames=video_max_frames
                )
                imgs = [f.image for f in frames]
                bursts.append(
                    _Burst(
                        [i] * len(imgs),
                        [f.index for f in frames],
                        [f.time_s for f in frames],
                        [im.size for im in imgs],
                        detector.prepare(imgs),
                    )
                )
            else:
                photos.append(_open_image(item.path, getattr(detector, "decode_side", None)))
                photo_idx.append(i)
        except (BadInputError, OSError, ValueError, Image.DecompressionBombError) as exc:
            errors[i] = f"{item.file_name}: cannot decode ({exc})"
    if photos:
        bursts.insert(
            0,
            _Burst(
                photo_idx,
                [0] * len(photos),
                [None] * len(photos),
                [im.size for im in photos],
                detector.prepare(photos),
            ),
        )
    return bursts, errors


def _prefetch(jobs: Sequence[Any], load: Callable[[Any], Any]) -> Iterator[tuple[Any, Any]]:
    """Yield ``(job, load(job))``, loading the next job while the caller works on this one.

    Pillow, OpenCV and numpy release the GIL while decoding and resizing, so
    one loader thread overlaps decoding with ONNX Runtime.
    """
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="irbis-load") as pool:
        fut: Future[Any] = pool.submit(load, jobs[0])
        for k, job in enumerate(jobs):
            loaded = fut.result()
            if k + 1 < len(jobs):
                fut = pool.submit(load, jobs[k + 1])
            yield job, loaded


# -- verdicts -----------------------------------------------------------------------


def _verdict(boxes: Sequence[Detection], sizes: Sequence[tuple[int, int]]) -> str:
    """A media file's verdict from the boxes of its frames and the frames' sizes.

    No box: ``unjudged`` when no frame was looked at (a video that gave no
    frame) or a frame is too small to judge, else ``blank``.
    """
    cats = {b.category for b in boxes}
    found = next((c for c in VERDICT_ORDER if c in cats), None)
    if found is not None:
        return found
    if not sizes or any(max(wh) < MIN_JUDGE_SIDE for wh in sizes):
        return UNJUDGED
    return "blank"


def _best(
    frames: Sequence[tuple[int, Sequence[Detection]]], verdict: str
) -> tuple[int | None, float]:
    """Frame index and score of the best box of the verdict's category."""
    best: tuple[float, float, int] | None = None
    for idx, boxes in frames:
        for b in boxes:
            if b.category != verdict:
                continue
            cand = (b.score, b.area, -idx)
            if best is None or cand > best:
                best = cand
    if best is None:
        return None, 0.0
    return -best[2], best[0]


def _write_unit(
    project: Project,
    detector: Any,
    loaded: _Loaded,
    per_frame: list[list[list[Detection]]],
    summary: DetectSummary,
) -> None:
    """Write one unit's results in one transaction (replacing partial old ones)."""
    unit = loaded.unit
    key = detector.key
    now = _now()
    # Per item: (frame number, time, (width, height), boxes) of each of its frames.
    by_item: dict[int, list[tuple[int, float | None, tuple[int, int], list[Detection]]]]
    by_item = defaultdict(list)
    for burst, frames in zip(loaded.bursts, per_frame, strict=True):
        for ii, fno, t, size, boxes in zip(
            burst.item, burst.frame_no, burst.time_s, burst.size, frames, strict=True
        ):
            by_item[ii].append((fno, t, size, boxes))
    with project.session() as s, s.begin():
        ids = [it.media_id for it in unit.items]
        # A sequence that gained media since its last run is redone as a whole.
        s.execute(
            delete(MediaDetection).where(
                MediaDetection.media_id.in_(ids), MediaDetection.detector == key
            )
        )
        media_verdicts: list[tuple[int, str, list[tuple[int, list[Detection]]]]] = []
        for i, item in enumerate(unit.items):
            if i in loaded.errors:
                s.add(
                    MediaDetection(
                        media_id=item.media_id,
                        detector=key,
                        model=detector.model,
                        model_version=detector.model_version,
                        threshold=detector.threshold,
                        verdict="error",
                        max_score=0.0,
                        n_boxes=0,
                        n_frames=0,
                        best_frame=None,
                        error=loaded.errors[i],
                        burst=unit.burst,
                        params=detector.params,
                        created_utc=now,
                    )
                )
                summary.errors.append({"file": item.file_name, "error": loaded.errors[i]})
                summary.verdicts["error"] = summary.verdicts.get("error", 0) + 1
                continue
            frames = by_item.get(i, [])
            all_boxes = [b for _f, _t, _wh, bs in frames for b in bs]
            verdict = _verdict(all_boxes, [wh for _f, _t, wh, _bs in frames])
            best_frame, _score = _best([(f, bs) for f, _t, _wh, bs in frames], verdict)
            row = MediaDetection(
                media_id=item.media_id,
                detector=key,
                model=detector.model,
                model_version=detector.model_version,
                threshold=detector.threshold,
                verdict=verdict,
                max_score=max((b.score for b in all_boxes), default=0.0),
                n_boxes=len(all_boxes),
                n_frames=len(frames),
                best_frame=best_frame,
                error="",
                burst=unit.burst,
                params=detector.params,
                created_utc=now,
            )
            s.add(row)
            s.flush()
            normalised: list[tuple[int, list[Detection]]] = []
            for f, t, (w, h), boxes in frames:
                normalised.append((f, []))
                for b in boxes:
                    # Stored rounded; the verdict below uses the stored values so
                    # that a verdict rebuilt from the database is the same.
                    x, y, bw, bh = (round(v, 6) for v in b.normalized(w, h))
                    score = round(float(b.score), 5)
                    source = b.source or detector.model
                    normalised[-1][1].append(
                        Detection(x, y, x + bw, y + bh, score, b.category, source)
                    )
                    s.add(
                        DetectionBox(
                            result_id=row.id,
                            media_id=item.media_id,
                            frame=f,
                            time_s=t,
                            category=b.category,
                            score=score,
                            x=x,
                            y=y,
                            width=bw,
                            height=bh,
                            source=source,
                        )
                    )
            media_verdicts.append((item.media_id, verdict, normalised))
            summary.verdicts[verdict] = summary.verdicts.get(verdict, 0) + 1
        if unit.sequence_id is not None:
            s.execute(
                delete(SequenceVerdict).where(
                    SequenceVerdict.sequence_id == unit.sequence_id, SequenceVerdict.detector == key
                )
            )
            s.add(
                _sequence_verdict(
                    unit.sequence_id, detector, media_verdicts, now, unreadable=len(loaded.errors)
                )
            )
    summary.media_processed += len(unit.items)
    summary.frames += loaded.n_frames
    summary.sequences_processed += unit.sequence_id is not None


def _rebuild_unit(project: Project, detector: Any, unit: _Unit, summary: DetectSummary) -> None:
    """A sequence's verdict from the stored results of its media (no inference)."""
    assert unit.sequence_id is not None
    key = detector.key
    ids = [it.media_id for it in unit.items]
    with project.session() as s, s.begin():
        results = {
            r.media_id: r
            for r in s.scalars(
                select(MediaDetection).where(
                    MediaDetection.detector == key, MediaDetection.media_id.in_(ids)
                )
            )
        }
        boxes: dict[int, dict[int, list[Detection]]] = defaultdict(lambda: defaultdict(list))
        for b in s.scalars(
            select(DetectionBox)
            .where(DetectionBox.result_id.in_([r.id for r in results.values()]))
            .order_by(DetectionBox.id)
        ):
            boxes[b.media_id][b.frame].append(
                Detection(b.x, b.y, b.x + b.width, b.y + b.height, b.score, b.category, b.source)
            )
        media = [
            (mid, results[mid].verdict, sorted(boxes[mid].items()))
            for mid in ids
            if results[mid].verdict != "error"
        ]
        s.execute(
            delete(SequenceVerdict).where(
                SequenceVerdict.sequence_id == unit.sequence_id, SequenceVerdict.detector == key
            )
        )
        unreadable = sum(1 for r in results.values() if r.verdict == "error")
        s.add(_sequence_verdict(unit.sequence_id, detector, media, _now(), unreadable=unreadable))
    summary.sequences_rebuilt += 1


def _sequence_verdict(
    sequence_id: int,
    detector: Any,
    media: list[tuple[int, str, list[tuple[int, list[Detection]]]]],
    now: datetime,
    *,
    unreadable: int = 0,
) -> SequenceVerdict:
    """The sequence's verdict from its judged media (``unreadable``: media that errored)."""
    counts = Counter(v for _m, v, _f in media)
    verdict = next((c for c in VERDICT_ORDER if counts.get(c)), None)
    if verdict is None:
        verdict = UNJUDGED if unreadable or counts.get(UNJUDGED) else "blank"
    best: tuple[float, float, int, int, int] | None = None  # score, area, -order, media, frame
    for order, (mid, _v, frames) in enumerate(media):
        for f, boxes in frames:
            for b in boxes:
                if b.category == verdict:
                    cand = (b.score, b.area, -order, mid, f)
                    if best is None or cand[:3] > best[:3]:
                        best = cand
    return SequenceVerdict(
        sequence_id=sequence_id,
        detector=detector.key,
        model=detector.model,
        model_version=detector.model_version,
        threshold=detector.threshold,
        verdict=verdict,
        best_media_id=best[3] if best else None,
        best_frame=best[4] if best else None,
        best_score=best[0] if best else 0.0,
        n_media=len(media),
        n_blank=counts.get("blank", 0),
        n_animal=counts.get("animal", 0),
        n_person=counts.get("person", 0),
        n_vehicle=counts.get("vehicle", 0),
        created_utc=now,
    )


# -- the stage ----------------------------------------------------------------------


def run_detect(
    project: Project,
    detector: Any | None = None,
    *,
    progress: Progress | None = None,
    video_every_s: float = 1.0,
    video_max_frames: int = 30,
    max_burst: int = 24,
    limit: int | None = None,
) -> DetectSummary:
    """Detect animals, people and vehicles in every media file not yet processed.

    Parameters
    ----------
    project
        An open project.
    detector
        A :class:`irbis.vision.sequence.SequenceDetector`; default: the fused
        default detector from the model registry
        (:func:`irbis.vision.sequence.load_sequence_detector`), loaded and
        verified before anything is read.
    progress
        Called as ``progress(done, total, file_name)`` after each sequence
        (``done`` counts media, including those done by earlier runs).
    video_every_s, video_max_frames
        Video sampling: one frame every so many seconds, at most so many.
    max_burst
        Most photos judged together (longer sequences are judged in runs).
    limit
        Stop after this many sequences (for trials; rerun to continue).

    Returns
    -------
    DetectSummary
    """
    if detector is None:
        from irbis.vision.sequence import load_sequence_detector

        detector = load_sequence_detector()
    t0 = time.perf_counter()
    units, summary, progressed = _start_run(project, detector, limit, progress)
    total = summary.media_total

    jobs = [(u, chunk, k == len(ch) - 1) for u in units for ch in [_chunks(u, max_burst)]
            for k, chunk in enumerate(ch)]  # fmt: skip

    def load(job: tuple[_Unit, list[int], bool]) -> tuple[list[_Burst], dict[int, str]]:
        unit, chunk, _last = job
        return _load_chunk(
            unit, chunk, detector, video_every_s=video_every_s, video_max_frames=video_max_frames
        )

    bursts: list[_Burst] = []
    per_frame: list[list[list[Detection]]] = []
    errors: dict[int, str] = {}
    for (unit, _chunk, last), (chunk_bursts, chunk_errors) in _prefetch(jobs, load):
        for b in chunk_bursts:
            per_frame.append(detector.run(b.prepared))
            b.prepared = None  # the tensors are not needed any more
        bursts += chunk_bursts
        errors.update(chunk_errors)
        if not last:
            continue
        _write_unit(project, detector, _Loaded(unit, bursts, errors), per_frame, summary)
        bursts, per_frame, errors = [], [], {}
        progressed += len(unit.items)
        if progress:
            progress(min(progressed, total), total, unit.items[-1].file_name)
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def _start_run(
    project: Project,
    detector: Any,
    limit: int | None,
    progress: Progress | None,
) -> tuple[list[_Unit], DetectSummary, int]:
    """What a detect run (local or on Ray) does before looking at pixels.

    Finds the pending sequences, rebuilds those whose stored results only need
    regrouping, and reports the starting progress. Returns the sequences left
    to judge (at most ``limit``), the run's summary and the media counted done.
    """
    units, total, done = _pending_units(project, detector.key)
    rebuild = [u for u in units if u.rebuild]
    units = [u for u in units if not u.rebuild]
    if limit is not None:
        units = units[:limit]
    summary = DetectSummary(
        detector=detector.key,
        model=detector.model,
        model_version=detector.model_version,
        threshold=detector.threshold,
        media_total=total,
        media_done_before=done,
    )
    for unit in rebuild:  # cheap: no pixels, only the stored results
        _rebuild_unit(project, detector, unit, summary)
    # Media of a partly done sequence are counted again when it is redone.
    redo = sum(len(u.items) for u in units)
    progressed = total - redo if limit is None else done
    if progress:
        progress(max(progressed, 0), total, "")
    return units, summary, progressed


# -- status -------------------------------------------------------------------------


def detection_status(project: Project, detector: str | None = None) -> dict[str, Any]:
    """Blank/animal/person/vehicle counts per station for one detector configuration.

    Parameters
    ----------
    detector
        A detector key; default: the one with the most results.

    Returns
    -------
    dict
        ``{"detector", "media": {verdict: n}, "sequences": {verdict: n},
        "per_station": [{"station", "media", "blank", "animal", ...}],
        "set_aside": {...}}``; ``detector`` is None when nothing was detected
        yet. ``media`` and ``sequences`` count the detector's verdicts;
        ``set_aside`` is what is set aside as blank once people's boxes and
        labels and the unjudged frames are taken into account
        (:func:`irbis.store.blanks.blank_status`: ``sequences``, ``frames``,
        ``unjudged_frames``, ``too_small_frames``, ``kept_by_review``,
        ``per_station``...).
    """
    with project.session() as s:
        if detector is None:
            detector = s.scalar(
                select(MediaDetection.detector)
                .group_by(MediaDetection.detector)
                .order_by(func.count().desc(), MediaDetection.detector)
                .limit(1)
            )
        if detector is None:
            return {
                "detector": None,
                "media": {},
                "sequences": {},
                "per_station": [],
                "set_aside": blank_status(s, None),
            }
        media = dict(
            s.execute(
                select(MediaDetection.verdict, func.count())
                .where(MediaDetection.detector == detector)
                .group_by(MediaDetection.verdict)
            ).all()
        )
        seqs = dict(
            s.execute(
                select(SequenceVerdict.verdict, func.count())
                .where(SequenceVerdict.detector == detector)
                .group_by(SequenceVerdict.verdict)
            ).all()
        )
        rows = s.execute(
            select(Station.name, MediaDetection.verdict, func.count())
            .select_from(MediaDetection)
            .join(Media, Media.id == MediaDetection.media_id)
            .outerjoin(Deployment, Deployment.id == Media.deployment_id)
            .outerjoin(Station, Station.id == Deployment.station_id)
            .where(MediaDetection.detector == detector)
            .group_by(Station.name, MediaDetection.verdict)
        ).all()
        seq_rows = s.execute(
            select(Station.name, SequenceVerdict.verdict, func.count())
            .select_from(SequenceVerdict)
            .join(MediaGroup, MediaGroup.id == SequenceVerdict.sequence_id)
            .outerjoin(Deployment, Deployment.id == MediaGroup.deployment_id)
            .outerjoin(Station, Station.id == Deployment.station_id)
            .where(SequenceVerdict.detector == detector)
            .group_by(Station.name, SequenceVerdict.verdict)
        ).all()
        set_aside = blank_status(s, detector)
    per: dict[str, dict[str, Any]] = {}
    for station, verdict, n in rows:
        name = station or "(no deployment)"
        d = per.setdefault(name, {"station": name, "media": 0, "sequences": {}})
        d["media"] += n
        d[verdict] = d.get(verdict, 0) + n
    for station, verdict, n in seq_rows:
        name = station or "(no deployment)"
        d = per.setdefault(name, {"station": name, "media": 0, "sequences": {}})
        d["sequences"][verdict] = n
    return {
        "detector": detector,
        "media": media,
        "sequences": seqs,
        "per_station": [per[k] for k in sorted(per)],
        "set_aside": set_aside,
    }
