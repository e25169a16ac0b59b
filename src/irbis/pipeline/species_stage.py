"""Species from the survey's own labels: crop embeddings, training, the classify stage.

* **Crops**: a labelled (or to-be-classified) photo's animal boxes: the
  boxes people drew, else the detector's animal boxes of its latest run, else
  the whole frame. The camera's burned-in info bars (date, temperature,
  camera name) are cut off first (:func:`irbis.reid.preprocess.detect_info_bars`),
  so no classifier learns to read them.
* **Embeddings** of crops are cached in the project folder
  (``cache/species-embeddings/<backbone>-<version>-s<side>-c<context>.sqlite``),
  one row per (file sha256, frame, box): retraining or classifying again
  embeds only new crops.
* **Training** (:func:`train_species`): the project's reviewed species labels
  (people's labels in the app, species folders and XMP tags) -> a softmax head
  (:mod:`irbis.vision.species`) evaluated with whole encounters and whole
  stations held out, temperature-calibrated on the encounter-held-out
  predictions, installed in the model registry.
* **Classify** (:func:`run_classify`): every sequence nobody has labelled gets
  a proposal: one observation per file with ``source = "model:<name>"``, the
  species (or ``unknown`` below the model's threshold) and its probability,
  the mean of the calibrated probabilities of the sequence's crops. A
  person's label replaces it as the sequence's current label (provenance
  ``machine`` until then; Camtrap DP ``classificationMethod = machine``,
  ``classifiedBy`` the model and version, ``classificationProbability``).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.pipeline.detect_stage import media_path
from irbis.store.project import Project
from irbis.store.schema import (
    Deployment,
    DetectionBox,
    Media,
    MediaDetection,
    Observation,
    ReviewedBox,
    Station,
)
from irbis.store.sequence_summary import HUMAN, SORTED_BY_PEOPLE

__all__ = [
    "MIN_CROP_PX",
    "MIN_EXAMPLES",
    "ClassifySummary",
    "CropRef",
    "EmbeddingCache",
    "band_and_box",
    "embed_file",
    "embed_refs",
    "labelled_crops",
    "learn_head",
    "review_queue",
    "run_classify",
    "write_proposal",
    "train_species",
]

Box = tuple[float, float, float, float]
#: A crop whose longer side is under this many pixels (in the frame) is not embedded.
MIN_CROP_PX = 12
#: A species needs at least this many labelled crops to be learned.
MIN_EXAMPLES = 2
#: Animal boxes per file used (highest scores first).
MAX_BOXES = 3
#: Bump when the way crops are cut changes: cached embeddings of the old cut are not reused.
CROP_VERSION = "bars1"
SETTING = "species_model"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class CropRef:
    """One crop to embed: a box (fractions x, y, w, h) of one frame of one file."""

    media_id: int
    sha256: str
    path: Path
    box: Box
    source: str  # "reviewed" | "detector" | "frame"
    frame: int = 0

    def key(self) -> str:
        x, y, w, h = self.box
        return f"{self.sha256}:{self.frame}:{x:.4f}:{y:.4f}:{w:.4f}:{h:.4f}:{CROP_VERSION}"


class EmbeddingCache:
    """Crop embeddings of one backbone version, in a SQLite file in the project folder.

    Parameters
    ----------
    project_root : Path
        The project folder.
    backbone, version : str
        The encoder's registry name and version.
    side, context : int, float
        The crop settings (part of the file name: other settings, other embeddings).
    """

    def __init__(
        self, project_root: Path, backbone: str, version: str, side: int, context: float
    ) -> None:
        folder = project_root / "cache" / "species-embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{backbone}-{version}-s{side}-c{context:g}.sqlite"
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
        self._db.commit()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached embeddings of ``keys`` (those not cached are absent)."""
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for k, blob in self._db.execute(
                f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk
            ):
                out[k] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)",
            [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items],
        )
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def band_and_box(
    image: Image.Image, box: Box, bars: tuple[int, int] | None = None
) -> tuple[Image.Image, Box | None, int]:
    """The frame without its info bars, the box in its coordinates and the box's pixel size.

    Returns
    -------
    band : PIL.Image
        The rows between the top and bottom info bars (the whole frame when none).
    box : tuple or None
        ``box`` as fractions of ``band``, clipped to it; None when nothing of
        it is left outside the bars.
    bars : (top, bottom), optional
        Bar heights in pixels when already known.
    longer_side_px : int
        The clipped box's longer side in pixels.
    """
    from irbis.reid.preprocess import detect_info_bars

    w, h = image.size
    top, bottom = bars if bars is not None else detect_info_bars(np.asarray(image.convert("L")))
    band_h = h - top - bottom
    if band_h < 2:
        top, bottom, band_h = 0, 0, h
    band = image.crop((0, top, w, top + band_h)) if (top or bottom) else image
    x, y, bw, bh = box
    x0, x1 = max(0.0, x) * w, min(1.0, x + bw) * w
    y0, y1 = max(0.0, y * h - top), min(float(band_h), (y + bh) * h - top)
    if x1 <= x0 or y1 <= y0:
        return band, None, 0
    side = int(round(max(x1 - x0, y1 - y0)))
    return band, (x0 / w, y0 / band_h, (x1 - x0) / w, (y1 - y0) / band_h), side


#: What embedding one file's crops gives: the positions (in the file's crop
#: list) of the crops embedded, their embeddings, and the counts of
#: ``embedded``, ``too_small``, ``in_bars`` and ``unreadable`` crops.
FileEmbeddings = tuple[list[int], np.ndarray, Counter]
#: ``(embedder, files) -> one FileEmbeddings per file, in order``: who embeds
#: the files whose crops are not cached (this process, or Ray workers:
#: :func:`irbis.pipeline.cluster_train.RayEmbedder`).
FilesEmbedder = Callable[[Any, list[list[CropRef]]], Iterable[FileEmbeddings]]


def embed_file(embedder: Any, refs: Sequence[CropRef]) -> FileEmbeddings:
    """Embed the crops of one file (all of ``refs`` name the same file).

    Parameters
    ----------
    embedder : CropEmbedder
    refs : sequence of CropRef
        The file's crops not cached yet.

    Returns
    -------
    FileEmbeddings
    """
    from irbis.reid.preprocess import detect_info_bars

    counts: Counter = Counter()
    try:
        with Image.open(refs[0].path) as im:
            image = im.convert("RGB")
    except (OSError, ValueError):
        counts["unreadable"] += len(refs)
        return [], np.zeros((0, embedder.dim), np.float32), counts
    bars = detect_info_bars(np.asarray(image.convert("L")))
    kept, boxes = [], []
    band = image
    for k, ref in enumerate(refs):
        band, box, px = band_and_box(image, ref.box, bars)
        if box is None:
            counts["in_bars"] += 1
        elif px < MIN_CROP_PX:
            counts["too_small"] += 1
        else:
            kept.append(k)
            boxes.append(box)
    if not kept:
        return [], np.zeros((0, embedder.dim), np.float32), counts
    counts["embedded"] += len(kept)
    return kept, embedder.embed(band, boxes), counts


def _embed_here(embedder: Any, files: list[list[CropRef]]) -> Iterable[FileEmbeddings]:
    return (embed_file(embedder, f) for f in files)


def embed_refs(
    project: Project,
    embedder: Any,
    refs: Sequence[CropRef],
    *,
    progress: Callable[[int, int], None] | None = None,
    embed_files: FilesEmbedder | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Embeddings of crops, from the cache where possible.

    Parameters
    ----------
    project, embedder, refs
        The project (its cache), the encoder and the crops.
    progress
        ``progress(done, total)`` crops not cached, as their files are embedded.
    embed_files
        Who embeds the files not cached (default: this process, one file at a
        time); results come back in file order, and only this process writes
        the cache.

    Returns
    -------
    emb : ndarray of shape (n_ok, 768)
    ok : ndarray of int
        Indices into ``refs`` of the crops embedded (a crop of a few pixels,
        one entirely inside an info bar or of an unreadable file is left out).
    counts : dict
        ``cached``, ``embedded``, ``too_small``, ``in_bars``, ``unreadable``.
    """
    cache = EmbeddingCache(
        project.root, embedder.name, embedder.version, embedder.side, embedder.context
    )
    counts = Counter(cached=0, embedded=0, too_small=0, in_bars=0, unreadable=0)
    try:
        have = cache.get([r.key() for r in refs])
        vecs: dict[int, np.ndarray] = {}
        todo: dict[int, list[int]] = defaultdict(list)
        for i, r in enumerate(refs):
            v = have.get(r.key())
            if v is not None:
                vecs[i] = v
                counts["cached"] += 1
            else:
                todo[r.media_id].append(i)
        jobs = list(todo.values())
        total = sum(len(v) for v in jobs)
        files = [[refs[i] for i in idxs] for idxs in jobs]
        done = 0
        results = (embed_files or _embed_here)(embedder, files)
        for idxs, (kept, emb, n) in zip(jobs, results, strict=True):
            counts.update(n)
            crops_i = [idxs[k] for k in kept]
            if crops_i:
                cache.put((refs[i].key(), e) for i, e in zip(crops_i, emb, strict=True))
                for i, e in zip(crops_i, emb, strict=True):
                    vecs[i] = e
            done += len(idxs)
            if progress:
                progress(done, total)
    finally:
        cache.close()
    ok = np.asarray(sorted(vecs), dtype=np.int64)
    emb = np.stack([vecs[i] for i in ok]) if len(ok) else np.zeros((0, embedder.dim), np.float32)
    return emb.astype(np.float32), ok, dict(counts)


# -- which crops --------------------------------------------------------------------------


def _boxes_of(s: Any, media_ids: Sequence[int]) -> dict[int, tuple[str, list[Box]]]:
    """Per file: people's animal boxes, else the latest detector run's animal boxes."""
    out: dict[int, tuple[str, list[Box]]] = {}
    for i in range(0, len(media_ids), 500):
        chunk = list(media_ids[i : i + 500])
        for r in s.execute(
            select(
                ReviewedBox.media_id,
                ReviewedBox.x,
                ReviewedBox.y,
                ReviewedBox.width,
                ReviewedBox.height,
            )
            .where(
                ReviewedBox.media_id.in_(chunk),
                ReviewedBox.category == "animal",
                ReviewedBox.retracted_utc.is_(None),
                ReviewedBox.x.is_not(None),
                ReviewedBox.frame == 0,
            )
            .order_by(ReviewedBox.id)
        ):
            out.setdefault(r.media_id, ("reviewed", []))[1].append((r.x, r.y, r.width, r.height))
        latest = dict(
            s.execute(
                select(MediaDetection.media_id, MediaDetection.id)
                .where(MediaDetection.media_id.in_(chunk))
                .order_by(MediaDetection.id)
            ).all()
        )
        det: dict[int, list[tuple[float, Box]]] = defaultdict(list)
        if latest:
            for r in s.execute(
                select(DetectionBox).where(
                    DetectionBox.result_id.in_(list(latest.values())),
                    DetectionBox.category == "animal",
                    DetectionBox.frame == 0,
                )
            ).scalars():
                det[r.media_id].append((r.score, (r.x, r.y, r.width, r.height)))
        for mid, rows in det.items():
            if mid not in out:
                rows.sort(key=lambda t: -t[0])
                out[mid] = ("detector", [b for _, b in rows[:MAX_BOXES]])
        for mid in chunk:
            if mid in latest and mid not in out:
                out[mid] = ("blank", [])
    return out


def _refs_for(s: Any, project: Project, media: Sequence[Media]) -> dict[int, list[CropRef]]:
    boxes = _boxes_of(s, [m.id for m in media])
    refs: dict[int, list[CropRef]] = {}
    for m in media:
        source, bxs = boxes.get(m.id, ("frame", [(0.0, 0.0, 1.0, 1.0)]))
        if source == "blank":
            source, bxs = "frame", [(0.0, 0.0, 1.0, 1.0)]
        path = media_path(project, m)
        refs[m.id] = [CropRef(m.id, m.sha256, path, b, source) for b in bxs]
    return refs


@dataclass
class LabelledCrops:
    """The crops of a project's reviewed species labels, with their groups."""

    refs: list[CropRef]
    species: list[str]
    station: list[str]
    encounter: list[str]
    skipped_mixed: int = 0
    skipped_video: int = 0


def labelled_crops(project: Project) -> LabelledCrops:
    """Crops of every photo with a reviewed species label (people's, folders', tags').

    A person's labels in the app win over folders and tags; a photo with two
    species is left out (which box is which is unknown); videos are left out.

    Raises
    ------
    BadInputError
        The project has no reviewed species label.
    """
    with project.session() as s:
        rows = s.execute(
            select(Observation.media_id, Observation.species, Observation.source)
            .where(
                Observation.media_id.is_not(None),
                Observation.retracted_utc.is_(None),
                Observation.source.in_((HUMAN, *SORTED_BY_PEOPLE)),
            )
            .order_by(Observation.id)
        ).all()
        per: dict[int, dict[str, set[str | None]]] = defaultdict(lambda: defaultdict(set))
        for r in rows:
            per[r.media_id][HUMAN if r.source == HUMAN else "sorted"].add(r.species)
        chosen: dict[int, str] = {}
        mixed = 0
        for mid, by in per.items():
            names = by.get(HUMAN) or by.get("sorted") or set()
            names = {n.strip() for n in names if n and n.strip()}
            if len(names) == 1:
                chosen[mid] = names.pop()
            elif len(names) > 1:
                mixed += 1
        if not chosen:
            raise BadInputError(
                str(project.root),
                "no reviewed species labels to learn from",
                "label some sequences in `irbis serve` (or ingest species folders) first",
            )
        media = list(
            s.scalars(select(Media).where(Media.id.in_(list(chosen))).order_by(Media.id)).all()
        )
        video = sum(1 for m in media if m.mediatype != "image")
        media = [m for m in media if m.mediatype == "image"]
        stations = dict(
            s.execute(
                select(Deployment.id, Station.name).join(
                    Station, Deployment.station_id == Station.id
                )
            ).all()
        )
        refs = _refs_for(s, project, media)
    out = LabelledCrops([], [], [], [], skipped_mixed=mixed, skipped_video=video)
    for m in media:
        for ref in refs[m.id]:
            out.refs.append(ref)
            out.species.append(chosen[m.id])
            out.station.append(stations.get(m.deployment_id, "?"))
            out.encounter.append(f"e{m.event_id}" if m.event_id else f"s{m.sequence_id or m.id}")
    return out


# -- training -------------------------------------------------------------------------------


def _evaluate(
    x: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    folds: list[np.ndarray],
    *,
    temperature: float | None,
    threshold: float,
    l2: float,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    from irbis.vision.species import classification_metrics, held_out_probabilities

    logits, seen = held_out_probabilities(x, y, len(labels), folds, l2=l2)
    done = ~np.isnan(logits[:, 0])
    z = logits[done] / (temperature or 1.0)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    yt = y[done]
    best = p.argmax(axis=1)
    res = classification_metrics(yt, best, labels)
    accept = p.max(axis=1) >= threshold
    gated = np.where(accept, best, -1)
    res["at_threshold"] = {
        "threshold": threshold,
        "coverage": float(accept.mean()) if len(accept) else float("nan"),
        "accuracy_of_proposed": float((best[accept] == yt[accept]).mean())
        if accept.any()
        else float("nan"),
        "confusion": classification_metrics(yt, gated, labels)["confusion"],
    }
    counts = np.bincount(yt, minlength=len(labels))
    res["majority_rate"] = float(counts.max() / counts.sum()) if counts.sum() else float("nan")
    res["folds"] = len(folds)
    res["species_not_in_training_fold"] = int((~seen[done]).sum())
    return res, logits, done & seen


@dataclass
class LearnedHead:
    """What :func:`learn_head` made of labelled embeddings."""

    weights: np.ndarray
    bias: np.ndarray
    centre: np.ndarray
    temperature: float
    evaluation: dict[str, Any]
    learning_curve: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def learn_head(
    x: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    stations: Sequence[str],
    encounters: Sequence[str],
    *,
    threshold: float = 0.5,
    l2: float = 1e-3,
    encounter_folds: int = 5,
    target_accuracy: float = 0.9,
) -> LearnedHead:
    """The head, its temperature, its held-out evaluations and its learning curve.

    Everything :func:`train_species` does after the crops are embedded (and
    what ``bench/species_train_speed.py`` times on synthetic embeddings).

    Parameters
    ----------
    x : ndarray of shape (n, d)
        Embeddings.
    y : ndarray of shape (n,)
        Label indices into ``labels``.
    labels : sequence of str
    stations, encounters : sequence of str
        Groups held out whole (per row).
    threshold, l2, encounter_folds, target_accuracy
        As :func:`train_species`.

    Returns
    -------
    LearnedHead
    """
    from irbis.vision.species import (
        expected_labels,
        fit_head,
        fit_temperature,
        grouped_folds,
        nested_subset_outcomes,
    )

    notes: list[str] = []
    # Encounter-held-out predictions calibrate the temperature; the report at
    # that temperature is then slightly optimistic about calibration (not accuracy).
    # Returned mask: rows predicted by a head that knew their species.
    enc_folds = grouped_folds(encounters, encounter_folds)
    by_enc, logits, usable = _evaluate(
        x, y, labels, enc_folds, temperature=None, threshold=threshold, l2=l2
    )
    # Rows of a species the training folds lacked say nothing about calibration.
    temperature = fit_temperature(logits[usable], y[usable])
    by_enc, _, _ = _evaluate(
        x, y, labels, enc_folds, temperature=temperature, threshold=threshold, l2=l2
    )
    evaluation: dict[str, Any] = {"by_encounter": by_enc}
    if len(set(stations)) >= 2:
        evaluation["by_station"], _, _ = _evaluate(
            x,
            y,
            labels,
            grouped_folds(stations),
            temperature=temperature,
            threshold=threshold,
            l2=l2,
        )
    else:
        notes.append("one station only: no station-held-out evaluation (new places untested)")
    n_enc = len(set(encounters))
    if n_enc < 10:
        notes.append(f"only {n_enc} encounters: the evaluation is a rough guide at best")
    w, b, c = fit_head(x, y, len(labels), l2=l2)
    # Three orders steady the curve of a few hundred labels (cheap fits); from
    # 500 crops on one is steady enough, and the fits are what the user waits
    # for (1,000 crops: 150 s with three orders on a loaded 2-core machine).
    repeats = 3 if len(y) < 500 else 1
    sizes, outcomes = nested_subset_outcomes(x, y, len(labels), enc_folds, l2=l2, repeats=repeats)
    curve = expected_labels(sizes, outcomes, target_accuracy, have=len(y))
    return LearnedHead(w, b, c, temperature, evaluation, curve, notes)


@dataclass
class TrainOutcome:
    """What :func:`train_species` did: the model and the training summary."""

    name: str
    version: str
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, **self.summary, "notes": self.notes}


def train_species(
    project: Project,
    *,
    name: str | None = None,
    backbone: str = "dinov2-s",
    side: int = 168,
    context: float = 0.15,
    threshold: float = 0.5,
    l2: float = 1e-3,
    encounter_folds: int = 5,
    target_accuracy: float = 0.9,
    install: bool = True,
    models_root: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    embed_files: FilesEmbedder | None = None,
) -> TrainOutcome:
    """Train a species head on the project's reviewed labels and install it.

    Parameters
    ----------
    project : Project
    name : str, optional
        Registry name (default ``<project>-species-vN``, the next free N).
    backbone, side, context : str, int, float
        Encoder and crop settings (:class:`irbis.vision.embed.CropEmbedder`).
    threshold : float
        Below this calibrated probability a proposal is ``unknown``.
    l2 : float
        Weight penalty of the logistic regression.
    encounter_folds : int
        Folds of the encounter-held-out evaluation (whole encounters per fold).
    target_accuracy : float
        The learning curve (heads trained on nested subsets of the labels,
        judged on held-out encounters, an inverse power law fitted) says how
        many more labelled crops reach this accuracy
        (:func:`irbis.vision.species.expected_labels`).
    install : bool
        Install the head and make it the project's species model.
    models_root : Path, optional
        Registry folder (default: the user's model cache).
    progress : callable, optional
        ``progress(done, total)`` while crops are embedded.
    embed_files : callable, optional
        Who embeds the crops not cached (:func:`embed_refs`; Ray workers:
        :class:`irbis.pipeline.cluster_train.RayEmbedder`, the same embeddings).

    Returns
    -------
    TrainOutcome

    Raises
    ------
    BadInputError
        No labels, or fewer than two species with :data:`MIN_EXAMPLES` crops.
    ModelError
        The backbone is not installed (or damaged).
    """
    from irbis.vision.embed import CropEmbedder
    from irbis.vision.registry import installed
    from irbis.vision.species import SpeciesHead, install_species_head

    if not 0.0 <= threshold < 1.0:
        raise BadInputError("--threshold", f"{threshold} is not a probability below 1", "use 0..1")
    if not 0.0 < target_accuracy < 1.0:
        raise BadInputError(
            "--target-accuracy", f"{target_accuracy} is not between 0 and 1", "e.g. 0.9"
        )
    data = labelled_crops(project)
    embedder = CropEmbedder(backbone, side=side, context=context)
    t0 = time.perf_counter()
    emb, ok, counts = embed_refs(
        project, embedder, data.refs, progress=progress, embed_files=embed_files
    )
    embed_s = time.perf_counter() - t0
    notes: list[str] = []
    if data.skipped_mixed:
        notes.append(f"{data.skipped_mixed} photos with two species left out (which box is which?)")
    if data.skipped_video:
        notes.append(f"{data.skipped_video} videos left out (photos only for now)")
    if counts["too_small"]:
        notes.append(
            f"{counts['too_small']} crops of fewer than {MIN_CROP_PX} pixels left out "
            "(too small to tell a species)"
        )
    if counts["unreadable"]:
        notes.append(f"{counts['unreadable']} crops of unreadable files left out")
    species = [data.species[i] for i in ok]
    n_per = Counter(species)
    rare = sorted(sp for sp, c in n_per.items() if c < MIN_EXAMPLES)
    for sp in rare:
        notes.append(
            f"species {sp!r} has {n_per[sp]} labelled crop(s): left out "
            f"(label at least {MIN_EXAMPLES} to learn it)"
        )
    keep = np.asarray([sp not in rare for sp in species], dtype=bool)
    labels = tuple(sorted((sp for sp in n_per if sp not in rare), key=lambda sp: (-n_per[sp], sp)))
    if len(labels) < 2:
        have = ", ".join(f"{sp} ({c})" for sp, c in n_per.most_common()) or "none"
        raise BadInputError(
            str(project.root),
            f"a species classifier needs at least two species with {MIN_EXAMPLES}+ labelled "
            f"crops; labelled crops: {have}",
            "label more sequences of other species",
        )
    idx = {sp: i for i, sp in enumerate(labels)}
    x = emb[keep].astype(np.float64)
    y = np.asarray([idx[sp] for sp, k in zip(species, keep, strict=True) if k], dtype=np.int64)
    sel = ok[keep]
    stations = [data.station[i] for i in sel]
    encounters = [data.encounter[i] for i in sel]
    t1 = time.perf_counter()
    learned = learn_head(
        x,
        y,
        labels,
        stations,
        encounters,
        threshold=threshold,
        l2=l2,
        encounter_folds=encounter_folds,
        target_accuracy=target_accuracy,
    )
    train_s = time.perf_counter() - t1
    notes += learned.notes
    w, b, c, temperature = learned.weights, learned.bias, learned.centre, learned.temperature
    evaluation, curve = learned.evaluation, learned.learning_curve
    n_stations, n_enc = len(set(stations)), len(set(encounters))
    summary: dict[str, Any] = {
        "labels": list(labels),
        "crops": int(len(y)),
        "crops_per_species": {sp: int(n_per[sp]) for sp in labels},
        "crop_sources": dict(Counter(data.refs[i].source for i in sel)),
        "stations": n_stations,
        "encounters": n_enc,
        "temperature": temperature,
        "threshold": threshold,
        "l2": l2,
        "backbone": {
            "name": embedder.name,
            "version": embedder.version,
            "side": side,
            "context": context,
        },
        "embedding": {**counts, "seconds": round(embed_s, 3)},
        "training_seconds": round(train_s, 3),
        "evaluation": evaluation,
        "learning_curve": curve,
    }
    if not install:
        return TrainOutcome("", "", summary, notes)
    if name is None:
        base = f"{project.settings.name or project.root.name}-species"
        n = 1
        while installed(f"{base}-v{n}", models_root) is not None:
            n += 1
        name = f"{base}-v{n}"
    head = SpeciesHead(
        labels=labels,
        weights=w,
        bias=b,
        centre=c,
        temperature=temperature,
        threshold=threshold,
        meta={"side": side, "context": context},
    )
    from irbis.vision.registry import require

    model = install_species_head(
        name, head, require(backbone, models_root), summary=summary, root=models_root
    )
    project.settings.extra[SETTING] = name
    project.save_settings()
    return TrainOutcome(model.name, model.version, summary, notes)


# -- classify -------------------------------------------------------------------------------


@dataclass
class ClassifySummary:
    """What one classify run did."""

    model: str
    version: str
    sequences: int = 0
    proposed: int = 0
    unknown: int = 0
    already: int = 0
    reviewed: int = 0
    blank: int = 0
    no_crop: int = 0
    crops: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    by_species: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["images_per_s"] = (
            round(self.crops.get("embedded", 0) / self.seconds, 3) if self.seconds else None
        )
        return out


def project_model(project: Project, model: str | None) -> str:
    """The species model to use: ``model`` or the project's (set by training)."""
    name = model or project.settings.extra.get(SETTING)
    if not name:
        raise BadInputError(
            str(project.root),
            "no species model for this project",
            f"train one with `irbis models train species {project.root}` or pass --model",
        )
    return str(name)


def write_proposal(
    s: Any,
    media_ids: Sequence[int],
    probabilities: np.ndarray,
    labels: Sequence[str],
    *,
    model: str,
    version: str,
    threshold: float,
    sequence_id: int,
    crops: int = 1,
    now: datetime | None = None,
) -> tuple[str | None, float]:
    """Record a model's proposal for one sequence: one observation per file.

    The model's earlier proposals on these files are retracted first. The
    species is None (type ``unknown``) below ``threshold``; ``extra`` keeps
    the three best species, the *margin* (best minus second-best probability:
    the review queue's "what would teach the model most") and the model version.

    Parameters
    ----------
    s : Session
        Open session (the caller commits).
    media_ids : sequence of int
        The sequence's files.
    probabilities : ndarray of shape (n_labels,)
        Calibrated probabilities of the sequence, in ``labels`` order.
    labels : sequence of str
        The model's species.
    model, version : str
        Registry name and version of the model (source ``model:<name>``).
    threshold : float
        Below this best probability the proposal is ``unknown``.
    sequence_id : int
    crops : int
        Crops the probabilities were averaged over.
    now : datetime, optional
        Time of the proposal (naive UTC).

    Returns
    -------
    (species or None, probability)
    """
    now = now or _now()
    source = f"model:{model}"
    p = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-p)
    prob = float(p[order[0]])
    margin = prob - float(p[order[1]]) if len(order) > 1 else prob
    species = labels[order[0]] if prob >= threshold else None
    for o in s.scalars(
        select(Observation).where(
            Observation.media_id.in_(list(media_ids)),
            Observation.source == source,
            Observation.retracted_utc.is_(None),
        )
    ).all():
        o.retracted_utc = now
        o.retracted_by = source
    extra = {
        "model_version": version,
        "sequence_id": sequence_id,
        "top": [[labels[j], round(float(p[j]), 4)] for j in order[:3]],
        "margin": round(margin, 4),
        "crops": crops,
    }
    for m in media_ids:
        s.add(
            Observation(
                media_id=m,
                level="media",
                species=species,
                count=None,
                observation_type="animal" if species else "unknown",
                source=source,
                by=f"{model} {version}",
                created_utc=now,
                probability=round(prob, 4),
                extra=extra,
            )
        )
    return species, prob


def run_classify(
    project: Project,
    *,
    model: str | None = None,
    models_root: Path | None = None,
    batch: int = 50,
    progress: Callable[[int, int], None] | None = None,
) -> ClassifySummary:
    """Propose a species for every sequence no person has labelled.

    Sequences whose every photo the detector judged blank are skipped; a
    sequence already proposed by this model version is not redone (rerunning
    adds nothing). A new version's proposal retracts the old one's.

    Parameters
    ----------
    project : Project
    model : str, optional
        Registry name of a species head (default: the project's, from training).
    models_root : Path, optional
        Registry folder.
    batch : int
        Sequences written per transaction.
    progress : callable, optional
        ``progress(done, total)`` per sequence.
    """
    from irbis.vision.embed import CropEmbedder
    from irbis.vision.registry import ModelError, require
    from irbis.vision.species import UNKNOWN, load_species_head

    name = project_model(project, model)
    head = load_species_head(name, models_root)
    parent = head.meta.get("parent", {})
    backbone = require(parent.get("name", "dinov2-s"), models_root)
    if backbone.version != parent.get("version"):
        raise ModelError.for_model(
            name,
            f"trained on {backbone.name} {parent.get('version')}, installed is {backbone.version}",
            "train it again with `irbis models train species`",
        )
    embedder = CropEmbedder(
        backbone.name,
        side=int(head.meta.get("side", 168)),
        context=float(head.meta.get("context", 0.15)),
    )
    source = f"model:{name}"
    version = str(head.meta["version"])
    summary = ClassifySummary(name, version)
    t0 = time.perf_counter()
    with project.session() as s:
        seqs = list(
            s.execute(
                select(Media.sequence_id, Media.id)
                .where(Media.sequence_id.is_not(None), Media.mediatype == "image")
                .order_by(Media.sequence_id, Media.id)
            ).all()
        )
        members: dict[int, list[int]] = defaultdict(list)
        for seq_id, mid in seqs:
            members[seq_id].append(mid)
        current = s.execute(
            select(Observation.media_id, Observation.source, Observation.extra).where(
                Observation.media_id.is_not(None), Observation.retracted_utc.is_(None)
            )
        ).all()
    reviewed_media = {r.media_id for r in current if r.source in (HUMAN, *SORTED_BY_PEOPLE)}
    done_media = {
        r.media_id
        for r in current
        if r.source == source and (r.extra or {}).get("model_version") == version
    }
    todo: list[int] = []
    for seq_id, mids in members.items():
        if any(m in reviewed_media for m in mids):
            summary.reviewed += 1
        elif all(m in done_media for m in mids):
            summary.already += 1
        else:
            todo.append(seq_id)
    summary.sequences = len(members)
    totals: Counter[str] = Counter()
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        with project.session() as s:
            media = list(
                s.scalars(
                    select(Media).where(Media.id.in_([m for q in chunk for m in members[q]]))
                ).all()
            )
            by_id = {m.id: m for m in media}
            boxes = _boxes_of(s, list(by_id))
            refs: list[CropRef] = []
            ref_seq: list[int] = []
            for q in chunk:
                mids = members[q]
                if mids and all(boxes.get(m, ("", []))[0] == "blank" for m in mids):
                    summary.blank += 1
                    continue
                for m in mids:
                    src, bxs = boxes.get(m, ("frame", [(0.0, 0.0, 1.0, 1.0)]))
                    if src == "blank":
                        continue
                    mm = by_id[m]
                    for b in bxs:
                        refs.append(CropRef(m, mm.sha256, media_path(project, mm), b, src))
                        ref_seq.append(q)
        emb, ok, counts = embed_refs(project, embedder, refs)
        totals.update(counts)
        probs = head.predict_proba(emb) if len(ok) else np.zeros((0, len(head.labels)))
        per_seq: dict[int, list[np.ndarray]] = defaultdict(list)
        for row, i in zip(probs, ok, strict=True):
            per_seq[ref_seq[i]].append(row)
        now = _now()
        with project.session() as s:
            for q in chunk:
                if q not in per_seq:
                    if q in set(ref_seq):
                        summary.no_crop += 1
                    continue
                p = np.mean(per_seq[q], axis=0)
                species, prob = write_proposal(
                    s,
                    members[q],
                    p,
                    head.labels,
                    model=name,
                    version=version,
                    threshold=head.threshold,
                    sequence_id=q,
                    crops=len(per_seq[q]),
                    now=now,
                )
                summary.proposed += 1
                key = species or UNKNOWN
                summary.by_species[key] = summary.by_species.get(key, 0) + 1
                if species is None:
                    summary.unknown += 1
            s.commit()
        if progress:
            progress(min(start + batch, len(todo)), len(todo))
    summary.crops = dict(totals)
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def review_queue(project: Project, limit: int = 50) -> list[dict[str, Any]]:
    """The sequences nobody has labelled whose label would teach the classifier most.

    Smallest margin (best minus second-best probability) first: a label
    there moves the decision boundary; a confident proposal's label mostly
    confirms it (uncertainty sampling).

    Returns
    -------
    list of dict
        ``sequence_id``, ``species`` (None: unsure), ``best``, ``probability``, ``margin``.
    """
    from irbis.store.proposals import margin_queue
    from irbis.store.sequence_summary import ensure_fresh

    ensure_fresh(project.engine)
    with project.engine.connect() as conn:
        return margin_queue(conn, limit)
