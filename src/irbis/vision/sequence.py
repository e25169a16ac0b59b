"""Detectors as the pipeline sees them: one burst of frames in, final boxes out.

A *sequence detector* splits its work in two so that a pipeline can overlap
them:

``prepare(frames)``
    CPU work that needs only the pixels (letterboxing, the motion detector's
    background model). Thread-safe: the pipeline calls it in a loader thread
    for the next burst while the current one is inferred.
``run(prepared)``
    ONNX Runtime inference, post-processing and fusion; returns, per frame,
    the final boxes at the detector's operating point.

``decode_side`` (optional) tells the pipeline how small a photo may be
decoded: twice the network input, see :func:`irbis.vision.detector.open_image`.

``key`` names the whole configuration (model, version, threshold, fusion) and
is what the database records next to every result, so results of different
configurations never mix and a rerun with the same configuration adds nothing.

Two detectors are provided: :class:`LearnedSequence` (the ONNX detector alone)
and :class:`FusedSequence` (learned + motion, fused per burst, the default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from irbis.vision.boxes import Detection

__all__ = [
    "FusedSequence",
    "LearnedSequence",
    "Prepared",
    "SequenceDetector",
    "load_sequence_detector",
]


class SequenceDetector(Protocol):
    """What :mod:`irbis.pipeline.detect_stage` needs from a detector."""

    key: str
    model: str
    model_version: str
    threshold: float
    params: dict[str, Any]

    def prepare(self, frames: Sequence[Image.Image]) -> Any: ...

    def run(self, prepared: Any) -> list[list[Detection]]: ...


@dataclass
class Prepared:
    """Output of ``prepare``: network tensors, resize ratios, optional motion boxes."""

    tensors: np.ndarray  # (n, 3, S, S) float32
    ratios: list[float]
    motion: list[list[Detection]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _infer_all(detector: Any, prepared: Prepared, conf: float, batch: int) -> list[list[Detection]]:
    out: list[list[Detection]] = []
    n = len(prepared.ratios)
    for i in range(0, n, batch):
        preds = detector.infer(prepared.tensors[i : i + batch])
        for pred, ratio in zip(preds, prepared.ratios[i : i + batch], strict=True):
            out.append(detector.postprocess(pred, ratio, conf))
    return out


def _run_settings(detector: Any) -> tuple[str, int | None, dict[str, Any]]:
    """How the learned model runs: key suffix, decode side and what the run records.

    Float32 engines give the same numbers (within 1e-4), so they share results
    (no key suffix); a reduced-precision run is a different detector run.
    """
    engine = str(getattr(detector, "engine", "onnxruntime"))
    suffix = "" if engine in ("onnxruntime", "openvino-f32") else f":{engine}"
    side = _decode_side(detector)
    recorded: dict[str, Any] = {"engine": engine}
    if side:
        recorded["decode_min_side"] = side
    return suffix, side, recorded


def _decode_side(detector: Any) -> int | None:
    size = getattr(detector, "input_size", None)
    return 2 * int(size) if size else None


def _prepare_tensors(detector: Any, frames: Sequence[Image.Image]) -> Prepared:
    if not frames:
        return Prepared(np.zeros((0, 3, 1, 1), np.float32), [])
    pairs = [detector.preprocess(im) for im in frames]
    return Prepared(np.stack([t for t, _r in pairs]), [r for _t, r in pairs])


class LearnedSequence:
    """The learned (ONNX) detector alone, frame by frame, at ``threshold``.

    Parameters
    ----------
    detector
        An object with ``preprocess(image) -> (chw, ratio)``, ``infer(batch)``,
        ``postprocess(pred, ratio, conf) -> list[Detection]``, ``name`` and
        ``version`` (:class:`irbis.vision.detector.YoloxDetector`).
    threshold
        Operating point: boxes below it are dropped.
    batch
        Frames per ONNX Runtime call.
    """

    kind = "learned"

    def __init__(self, detector: Any, *, threshold: float, batch: int = 4) -> None:
        self.detector = detector
        self.threshold = float(threshold)
        self.batch = batch
        self.model = str(detector.name)
        self.model_version = str(detector.version)
        self.params: dict[str, Any] = {"kind": self.kind, "threshold": self.threshold}
        self.key = f"{self.kind}:{self.model}@{self.model_version}:t{self.threshold:g}"
        suffix, self.decode_side, recorded = _run_settings(detector)
        self.key += suffix
        self.params.update(recorded)

    def prepare(self, frames: Sequence[Image.Image]) -> Prepared:
        return _prepare_tensors(self.detector, frames)

    def run(self, prepared: Prepared) -> list[list[Detection]]:
        return _infer_all(self.detector, prepared, self.threshold, self.batch)


class FusedSequence:
    """Learned detector + motion detector, fused per burst (the default detector).

    Parameters
    ----------
    detector
        As for :class:`LearnedSequence`.
    motion
        An object with ``detect_burst(frames) -> list[list[Detection]]``,
        ``name`` and ``version`` (:class:`irbis.vision.motion.MotionDetector`).
    fuse
        ``fuse(learned, motion) -> list[list[Detection]]`` per frame of a burst
        (:func:`irbis.vision.fusion.fuse_burst` with its parameters bound).
    conf
        Score down to which learned boxes are handed to ``fuse``.
    threshold
        The fused detector's operating point, as recorded (``fuse`` applies it).
    params
        Everything else worth recording about the configuration.
    """

    kind = "fused"

    def __init__(
        self,
        detector: Any,
        motion: Any,
        fuse: Callable[[list[list[Detection]], list[list[Detection]]], list[list[Detection]]],
        *,
        conf: float,
        threshold: float,
        params: dict[str, Any] | None = None,
        batch: int = 4,
    ) -> None:
        self.detector, self.motion, self.fuse = detector, motion, fuse
        self.conf, self.threshold, self.batch = float(conf), float(threshold), batch
        self.model = str(detector.name)
        self.model_version = str(detector.version)
        mname = f"{getattr(motion, 'name', 'motion')}@{getattr(motion, 'version', '')}"
        self.params = {
            "kind": self.kind,
            "threshold": self.threshold,
            "conf": self.conf,
            "motion": mname,
            **(params or {}),
        }
        self.key = f"{self.kind}:{self.model}@{self.model_version}:t{self.threshold:g}+{mname}"
        suffix, self.decode_side, recorded = _run_settings(detector)
        self.key += suffix
        self.params.update(recorded)

    def prepare(self, frames: Sequence[Image.Image]) -> Prepared:
        prepared = _prepare_tensors(self.detector, frames)
        # Motion needs the whole burst; a lone frame gets no motion boxes.
        prepared.motion = self.motion.detect_burst(list(frames)) if frames else []
        return prepared

    def run(self, prepared: Prepared) -> list[list[Detection]]:
        learned = _infer_all(self.detector, prepared, self.conf, self.batch)
        motion = prepared.motion if prepared.motion is not None else [[] for _ in learned]
        return self.fuse(learned, motion)


def load_sequence_detector(
    kind: str = "fused",
    *,
    model: str = "mdlite",
    root: Path | None = None,
    threshold: float | None = None,
    threads: int | None = None,
    engine: str | None = None,
    precision: str | None = None,
) -> SequenceDetector:
    """The installed default detector as a sequence detector.

    Parameters
    ----------
    kind
        ``fused`` (learned + motion, default) or ``learned``.
    model
        Registry name of the learned detector.
    root
        Model cache (default: the user's).
    threshold
        Override of the operating point (learned threshold for ``fused``).
    threads
        Inference threads.
    engine, precision
        Inference engine and OpenVINO precision (:func:`irbis.vision.runtime.make_session`).

    Raises
    ------
    irbis.vision.registry.ModelError
        Model missing, damaged or of the wrong hash (with the command that fixes it).
    """
    from irbis.vision import detector as det_mod

    det = det_mod.load_detector(model, root, threads=threads, engine=engine, precision=precision)
    # A survey-tuned model carries its own operating point (chosen when it was measured).
    if threshold is None and getattr(det, "operating_threshold", None) is not None:
        threshold = det.operating_threshold
    if kind == "learned":
        default = float(getattr(det_mod, "DEFAULT_THRESHOLD", 0.1))
        return LearnedSequence(det, threshold=threshold if threshold is not None else default)
    if kind != "fused":
        raise ValueError(f"unknown detector kind {kind!r} (fused or learned)")
    from dataclasses import asdict, replace

    from irbis.vision import fusion, motion

    fparams = fusion.FusionParams()
    if threshold is not None:
        fparams = replace(fparams, learned_threshold=threshold)

    def fuse(learned: list[list[Detection]], moved: list[list[Detection]]) -> list[list[Detection]]:
        return fusion.fuse_burst(learned, moved, fparams)

    return FusedSequence(
        det,
        motion.MotionDetector(),
        fuse,
        conf=fparams.confirm_threshold,
        threshold=fparams.learned_threshold,
        params={"fusion": asdict(fparams)},
    )
