"""``irbis models train detector``: tune the detector on the project's reviewed boxes.

The project's reviewed boxes (drawn in the app, imported with ``irbis boxes
import``) and frames confirmed empty become training frames. Whole encounters
(a deployment on one local day; a burst never straddles) are held out; the
detector is fine-tuned on the rest and both the parent and the tuned model are
judged on the held-out frames, box by box (a box ON the animal, false boxes per
frame, per lighting and per encounter), the tuned model at the threshold where
it makes no more false boxes than its parent does. A tuned model that is worse
than its parent is refused; a better or equal one is installed into the model registry
as a new model with its parent, sha256 and training summary, and recorded as
the project's detector so the next ``irbis detect`` uses it (its detections are
keyed by its own name and version, beside the parent's).

Needs the ``train`` extra (PyTorch CPU).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irbis.core.errors import IrbisError
from irbis.pipeline.detect_stage import media_path
from irbis.store import Project
from irbis.store.boxes import frame_truth
from irbis.store.schema import Deployment, Media
from irbis.vision.boxeval import Summary, fractions, judge_frame, summarize

__all__ = [
    "DETECTOR_SETTING",
    "TrainOutcome",
    "is_worse",
    "project_detector",
    "project_training_frames",
    "train_project_detector",
]

#: Key in the project's settings (``irbis.json`` ``extra``) naming its detector.
DETECTOR_SETTING = "detector_model"
#: More false boxes per frame than the parent by this much counts as worse.
FALSE_TOLERANCE = 0.02
#: Tuned models drop a box that lies this much inside a higher-scoring box (a box
#: on a cat's head beside the box on the whole cat); recorded in their manifest.
#: Measured on the Tajik frames it removed true boxes inside larger false ones and
#: almost no false box (false boxes were on rock, not on parts of cats): off.
TUNED_INSIDE_SUPPRESSION: float | None = None
#: Operating points tried for a tuned model (see :func:`operating_point`).
TUNED_THRESHOLDS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
#: Grey frames (all channels within this mean difference) are night infrared.
_GREY_DIFF = 4.0


def project_detector(project: Project | Path, default: str = "mdlite") -> str:
    """The detector the project uses: the last tuned one installed for it, else ``default``.

    ``project`` may be a project folder: its settings file is read without
    opening the database (a folder that is no project gives ``default``, and
    the command fails on the folder later, after checking its other options).
    """
    if isinstance(project, Project):
        extra = project.settings.extra
    else:
        import json

        from irbis.store.project import SETTINGS_FILE

        try:
            extra = json.loads((Path(project) / SETTINGS_FILE).read_text()).get("extra") or {}
        except (OSError, ValueError, AttributeError):
            extra = {}
    return str(extra.get(DETECTOR_SETTING) or default)


def lighting_of(image: Any) -> str:
    """``night_ir`` for a grey (infrared) frame, else ``day`` (flash frames count as day)."""
    import numpy as np

    small = np.asarray(image.convert("RGB").resize((64, 48)), dtype=np.float32)
    diff = (
        np.abs(small[..., 0] - small[..., 1]).mean() + np.abs(small[..., 1] - small[..., 2]).mean()
    )
    return "night_ir" if diff < _GREY_DIFF else "day"


def project_training_frames(project: Project) -> tuple[list[Any], dict[str, int]]:
    """Training frames from the project's current reviewed boxes.

    Photos only (a video frame's box is skipped); frames whose reviewed boxes
    include people or vehicles are skipped (the default detector is one-class
    "animal"), as are frames marked "animal here" without a box.

    Returns
    -------
    frames, skipped
        :class:`~irbis.vision.train.detector.TrainingFrame` list, and counts of
        skipped frames by reason.
    """
    from irbis.vision.train.detector import TrainingFrame

    skipped = {"video": 0, "person_or_vehicle": 0, "animal_without_box": 0, "missing_file": 0}
    frames = []
    with project.session() as s:
        truths = frame_truth(s)
        media = {
            m.id: m
            for m in s.scalars(select(Media).where(Media.id.in_([t.media_id for t in truths])))
        }
        deployments = dict(s.execute(select(Deployment.id, Deployment.code)).all())
        for t in truths:
            m = media[t.media_id]
            if m.mediatype != "image" or t.frame != 0:
                skipped["video"] += 1
                continue
            if t.animal_unboxed:
                skipped["animal_without_box"] += 1
                continue
            if any(b[0] != "animal" for b in t.boxes):
                skipped["person_or_vehicle"] += 1
                continue
            path = media_path(project, m)
            if not path.exists():
                skipped["missing_file"] += 1
                continue
            frames.append(
                TrainingFrame(
                    path=path,
                    boxes=tuple(b[1:] for b in t.boxes),
                    group=_encounter(m, deployments),
                    groups={"media_id": str(m.id), "file": m.file_name},
                )
            )
    return frames, skipped


def _encounter(m: Media, deployments: dict[int, str]) -> str:
    """A deployment on one local day; without a trusted time, the burst; else the card.

    A frame with no time at all cannot be placed in a burst, so all such frames
    of one card (ingest batch) and deployment go together: coarse, but frames
    of one burst never end up on both sides of the split.
    """
    dep = deployments.get(m.deployment_id or -1, "no-deployment")
    when = m.timestamp_local or m.taken_raw
    if when is not None and not m.time_flag:
        return f"{dep}/{when.date().isoformat()}"
    if m.sequence_id is not None:
        return f"{dep}/sequence-{m.sequence_id}"
    return f"{dep}/untimed-card-{m.batch_id}"


def judge_on(
    detector: Any, frames: list[Any], thresholds: list[float]
) -> dict[float, Summary]:
    """Run ``detector`` once on frames; judge its boxes at each threshold.

    Lighting is read from the pixels (grey frames are night infrared).
    """
    from irbis.vision.detector import open_image

    results: dict[float, list[Any]] = {t: [] for t in thresholds}
    lowest = min(thresholds)
    for f in frames:
        im = open_image(f.path, min_side=1280)
        dets = detector.detect([im], conf=lowest)[0]
        w, h = im.size
        groups = {"encounter": f.group, "lighting": lighting_of(im)}
        for t in thresholds:
            pred = fractions(dets, w, h, t)
            results[t].append(judge_frame(str(f.path.name), pred, list(f.boxes), groups=groups))
    return {t: summarize(rs) for t, rs in results.items()}


def operating_point(
    tuned: dict[float, Summary], parent: Summary
) -> tuple[float, Summary]:
    """The tuned model's threshold: the lowest whose false boxes per frame are no more
    than the parent's at its own operating point (else the highest tried).

    Models are compared at the same false-box budget: a reviewer's time spent on
    rock stays what it was, and the question is how many more cats are found.
    """
    for t in sorted(tuned):
        if tuned[t].false_per_frame <= parent.false_per_frame:
            return t, tuned[t]
    top = max(tuned)
    return top, tuned[top]


def is_worse(tuned: Summary, parent: Summary) -> list[str]:
    """Why ``tuned`` is worse than ``parent`` on the same frames (empty: it is not)."""
    why = []
    if tuned.box_recall < parent.box_recall:
        why.append(
            f"box on the animal in {tuned.box_recall:.3f} of frames, parent {parent.box_recall:.3f}"
        )
    if tuned.false_per_frame > parent.false_per_frame + FALSE_TOLERANCE:
        why.append(
            f"{tuned.false_per_frame:.3f} false boxes per frame, "
            f"parent {parent.false_per_frame:.3f}"
        )
    if tuned.encounters_found < parent.encounters_found:
        why.append(
            f"finds the animal in {tuned.encounters_found} held-out encounters, "
            f"parent {parent.encounters_found}"
        )
    return why


@dataclass
class TrainOutcome:
    """What a training run did and measured."""

    name: str
    parent: str
    installed: bool
    refused: list[str]
    threshold: float
    train_frames: int
    held_frames: int
    held_encounters: int
    skipped: dict[str, int]
    before: Summary
    after: Summary
    training: dict[str, Any]
    version: str = ""
    notes: list[str] = field(default_factory=list)
    parent_threshold: float = 0.1

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "parent": self.parent,
            "installed": self.installed,
            "refused": self.refused,
            "threshold": self.threshold,
            "parent_threshold": self.parent_threshold,
            "train_frames": self.train_frames,
            "held_out_frames": self.held_frames,
            "held_out_encounters": self.held_encounters,
            "skipped": self.skipped,
            "held_out_before": self.before.as_dict(),
            "held_out_after": self.after.as_dict(),
            "training": self.training,
            "notes": self.notes,
        }


def default_name(project: Project) -> str:
    """``<project>-detector-vN``, N one more than the tuned models installed for it."""
    from irbis.vision.registry import list_models

    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", project.settings.name or project.root.name).strip("-")
    base = f"{base or 'project'}-detector"
    taken = {r["name"] for r in list_models() if r["status"] != "missing"}
    n = 1
    while f"{base}-v{n}" in taken:
        n += 1
    return f"{base}-v{n}"


def train_project_detector(
    project: Project,
    *,
    parent: str | None = None,
    name: str | None = None,
    config: Any = None,
    holdout: float = 0.25,
    threshold: float | None = None,
    install: bool = True,
    progress: Callable[[Any], None] | None = None,
    models_root: Path | None = None,
) -> TrainOutcome:
    """Fine-tune the project's detector on its reviewed boxes and install it if not worse.

    Parameters
    ----------
    project
        The open project.
    parent
        Registry name of the starting model (default: the project's detector).
    name
        Registry name of the tuned model (default ``<project>-detector-vN``).
    config
        :class:`~irbis.vision.train.detector.TrainConfig`.
    holdout
        Share of encounters held out for the before/after comparison.
    threshold
        The parent's operating point (default: its manifest's, else 0.1). The
        tuned model's is chosen by :func:`operating_point` at the parent's
        false-box rate on the held-out frames, and recorded in its manifest.
    install
        False: train and measure only.
    progress
        Called with each :class:`~irbis.vision.train.detector.EpochReport`.
    models_root
        Model cache (default: the user's).

    Raises
    ------
    IrbisError
        Too few reviewed frames, or none held out.
    """
    import tempfile

    from irbis.vision import registry
    from irbis.vision.detector import DEFAULT_THRESHOLD, YoloxDetector, load_detector
    from irbis.vision.train.detector import TrainConfig, split_by_group, train_detector

    config = config or TrainConfig()
    parent = parent or project_detector(project)
    parent_model = registry.verify(parent, models_root)
    if parent_model.kind != "detector" or parent_model.meta.get("backend") != "yolox":
        raise IrbisError(f"model {parent!r} is not a YOLOX detector irbis can fine-tune")
    frames, skipped = project_training_frames(project)
    with_box = [f for f in frames if f.boxes]
    if len(with_box) < 2 or len({f.group for f in frames}) < 2:
        raise IrbisError(
            f"{len(with_box)} reviewed frames with animal boxes in "
            f"{len({f.group for f in frames})} encounters: draw boxes on frames of at least two "
            "encounters in the app (or `irbis boxes import`) before training"
        )
    train, held = split_by_group(frames, holdout, seed=config.seed)
    if threshold is None:
        threshold = float(parent_model.meta.get("threshold", DEFAULT_THRESHOLD))
    result = train_detector(parent_model.path, train, config, progress=progress)
    parent_det = load_detector(parent, models_root, conf=threshold, threads=config.threads)
    before = judge_on(parent_det, held, [threshold])[threshold]
    with tempfile.TemporaryDirectory(prefix="irbis-train-") as tmp:
        path = Path(tmp) / "model.onnx"
        data = result.model.SerializeToString()
        path.write_bytes(data)
        tuned_det = YoloxDetector(
            path,
            name="tuned",
            conf=min(TUNED_THRESHOLDS),
            threads=config.threads,
            inside_suppression=TUNED_INSIDE_SUPPRESSION,
        )
        curve = judge_on(tuned_det, held, sorted({*TUNED_THRESHOLDS, threshold}))
    thr, after = operating_point(curve, before)
    refused = is_worse(after, before)
    name = name or default_name(project)
    summary = {
        **result.summary(),
        "project": project.settings.name or project.root.name,
        "split": f"{len({f.group for f in held})} of {len({f.group for f in frames})} "
        f"encounters held out (seed {config.seed})",
        "threshold": thr,
        "parent_threshold": threshold,
        "held_out_before": before.as_dict(),
        "held_out_after": after.as_dict(),
        "held_out_curve": {
            str(t): {"box_recall": round(v.box_recall, 4),
                     "false_boxes_per_frame": round(v.false_per_frame, 4)}
            for t, v in curve.items()
        },
    }  # fmt: skip
    outcome = TrainOutcome(
        name=name,
        parent=f"{parent_model.name} {parent_model.version}",
        installed=False,
        refused=refused,
        threshold=thr,
        train_frames=len(train),
        held_frames=len(held),
        held_encounters=len({f.group for f in held}),
        skipped={k: v for k, v in skipped.items() if v},
        before=before,
        after=after,
        training=result.summary(),
        parent_threshold=threshold,
    )
    if result.interrupted:
        outcome.notes.append(
            f"interrupted after {result.epochs_done} of {config.epochs} epochs: "
            "the last completed epoch was kept and measured"
        )
    if refused or not install or result.epochs_done == 0:
        return outcome
    model = registry.install_trained(
        name,
        data,
        parent_model,
        summary=summary,
        threshold=thr,
        inside_suppression=TUNED_INSIDE_SUPPRESSION,
        root=models_root,
    )
    outcome.installed = True
    outcome.version = model.version
    project.settings.extra[DETECTOR_SETTING] = name
    project.save_settings()
    return outcome
