"""The learned detector (YOLOX on ONNX Runtime) with the reference pre/post-processing.

Pre- and post-processing reproduce the reference MegadetectorLite pipeline
exactly (see ``mdlite_reference.json``): Pillow ``ImageOps.pad`` to a square
(bicubic, image at the top-left, black padding), float 0..255 CHW without
normalisation; score = objectness × class probability; class-agnostic greedy
NMS at IoU 0.45; boxes mapped back to original pixels by dividing by the
resize ratio (not clipped, as in the reference).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from irbis.vision.boxes import Detection, nms, suppress_inside
from irbis.vision.registry import InstalledModel, ModelError, reinstall_hint, verify

__all__ = [
    "DEFAULT_THRESHOLD",
    "REFERENCE_CONF",
    "YoloxDetector",
    "letterbox",
    "letterbox_reference",
    "load_detector",
    "open_image",
]

#: Operating point of the learned detector alone (a frame "has an animal" at this score).
DEFAULT_THRESHOLD = 0.1
#: Lowest score the reference keeps (``mdlite_reference.json``); the constructor default.
REFERENCE_CONF = 0.05


def _contained_size(width: int, height: int, size: int) -> tuple[int, int]:
    """Size ``ImageOps.contain`` gives an image fitted into ``size``×``size`` (same rounding)."""
    if width == height:
        return size, size
    if width > height:
        return size, round(height / width * size)
    return round(width / height * size), size


def letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float]:
    """Pad-resize an image to ``size``×``size`` as the reference does.

    Pixel for pixel the reference's ``ImageOps.pad(image, (size, size),
    BICUBIC, color=None, centering=(0, 0))`` (bicubic resize to fit, image at
    the top-left, zero padding), but written straight into the float CHW
    array: no padded Pillow image and no full-size transpose copy.

    Returns
    -------
    tensor, ratio
        float32 CHW array in 0..255 RGB, and the resize ratio (network pixels per
        original pixel) that maps boxes back.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    nw, nh = _contained_size(rgb.width, rgb.height, size)
    fitted = rgb if (nw, nh) == rgb.size else rgb.resize((nw, nh), Image.Resampling.BICUBIC)
    out = np.zeros((3, size, size), dtype=np.float32)
    # Transposing the bytes first and widening them in one contiguous pass is
    # about three times faster than writing floats through the strided view.
    out[:, :nh, :nw] = np.ascontiguousarray(np.asarray(fitted).transpose(2, 0, 1))
    ratio = min(size / rgb.width, size / rgb.height)
    return out, ratio


def open_image(path: str | Path, *, min_side: int | None = None) -> Image.Image:
    """Decode a photo to RGB, cheaply when it is much larger than the detector needs.

    A JPEG can be decoded at 1/2, 1/4 or 1/8 scale in the DCT domain, several
    times faster than a full decode followed by a resize: a 12-megapixel
    frame is mostly decoding time. With ``min_side`` the decoder reduces
    the frame only while its longer side stays at least ``min_side`` pixels;
    passing twice the network input (1280 for a 640 px detector) keeps a
    bicubic downscale of at least 2× after it, so the network sees nearly the
    same pixels. Frames smaller than ``2 * min_side`` (every frame of the
    reference set) are decoded exactly as before.

    Parameters
    ----------
    path
        Image file.
    min_side
        Smallest acceptable longer side of the decoded frame; None: full size.

    Returns
    -------
    PIL.Image.Image
        RGB image, loaded; its size is the decoded size, to which boxes refer.
    """
    with Image.open(path) as im:
        if min_side and im.format == "JPEG" and max(im.size) >= 2 * min_side:
            w, h = im.size
            k = min_side / max(w, h)
            im.draft(im.mode, (math.ceil(w * k), math.ceil(h * k)))
        im.load()
        return im.convert("RGB") if im.mode != "RGB" else im.copy()


def letterbox_reference(image: Image.Image, size: int) -> tuple[np.ndarray, float]:
    """The reference pre-processing written as the reference writes it (for tests)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    padded = ImageOps.pad(
        rgb, (size, size), method=Image.Resampling.BICUBIC, color=None, centering=(0, 0)
    )
    arr = np.asarray(padded, dtype=np.float32)
    ratio = min(size / rgb.width, size / rgb.height)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), ratio


class YoloxDetector:
    """A YOLOX ONNX model as written by :func:`irbis.vision.registry.install`.

    Parameters
    ----------
    model_path
        The ``.onnx`` file (input ``images`` N×3×S×S, output ``predictions``
        N×A×(5+C) decoded centre/size, objectness, class probabilities).
    name, version
        Recorded as each detection's ``source`` and by the pipeline.
    input_size
        Square network input.
    conf
        Minimum score kept (objectness × class probability).
    nms_iou
        IoU above which a lower-scoring box is suppressed (class-agnostic).
    labels
        Class names of the head (mdlite: ``animal``).
    threads, providers, engine, precision
        Passed to :func:`irbis.vision.runtime.make_session`.
    inside_suppression
        When set, a box with this share of its area inside a higher-scoring
        box is dropped after NMS (survey-tuned models record it in their
        manifest; the shipped model keeps the reference post-processing).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str = "mdlite",
        version: str = "",
        input_size: int = 640,
        conf: float = REFERENCE_CONF,
        nms_iou: float = 0.45,
        labels: Sequence[str] = ("animal",),
        threads: int | None = None,
        providers: list[str] | None = None,
        engine: str | None = None,
        precision: str | None = None,
        inside_suppression: float | None = None,
    ) -> None:
        from irbis.vision.runtime import open_model_session

        self.inside_suppression = inside_suppression
        #: The model's own operating point (a tuned model's manifest), if any.
        self.operating_threshold: float | None = None

        self.name, self.version = name, version
        self.input_size, self.conf, self.nms_iou = input_size, conf, nms_iou
        self.labels = tuple(labels)
        self.session = open_model_session(
            name,
            model_path,
            threads=threads,
            providers=providers,
            engine=engine,
            precision=precision,
        )
        self.input_name = self.session.get_inputs()[0].name
        #: Which engine runs the graph: ``onnxruntime`` or ``openvino-f32``/``openvino-bf16``.
        self.engine = _engine_name(self.session)

    @classmethod
    def from_installed(cls, model: InstalledModel, **kwargs: object) -> YoloxDetector:
        """Open a verified registry entry."""
        if "inside_suppression" in model.meta and "inside_suppression" not in kwargs:
            kwargs["inside_suppression"] = float(model.meta["inside_suppression"])
        det = cls(
            model.path,
            name=model.name,
            version=model.version,
            input_size=model.input_size,
            labels=model.labels,
            **kwargs,  # type: ignore[arg-type]
        )
        if model.meta.get("threshold") is not None:
            det.operating_threshold = float(model.meta["threshold"])
        return det

    def preprocess(self, image: Image.Image) -> tuple[np.ndarray, float]:
        """Letterbox one image; see :func:`letterbox`."""
        return letterbox(image, self.input_size)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Raw predictions (N, A, 5 + C) for pre-processed tensors (N, 3, S, S)."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]

    def postprocess(
        self, pred: np.ndarray, ratio: float, conf: float | None = None
    ) -> list[Detection]:
        """Threshold, NMS and map one image's predictions back to original pixels."""
        conf = self.conf if conf is None else conf
        cls_prob = pred[:, 5:]
        cls_idx = cls_prob.argmax(1)
        scores = pred[:, 4] * cls_prob[np.arange(len(pred)), cls_idx]
        sel = np.nonzero(scores >= conf)[0]
        if sel.size == 0:
            return []
        p = pred[sel]
        half = p[:, 2:4] / 2
        boxes = np.concatenate([p[:, :2] - half, p[:, :2] + half], axis=1)
        keep = nms(boxes, scores[sel], self.nms_iou)
        out = []
        for k in keep:
            x1, y1, x2, y2 = (float(v) / ratio for v in boxes[k])
            label = self.labels[int(cls_idx[sel[k]])] if self.labels else "animal"
            out.append(Detection(x1, y1, x2, y2, float(scores[sel[k]]), label, self.name))
        if self.inside_suppression is not None:
            out = suppress_inside(out, self.inside_suppression)
        return out

    def detect(
        self,
        images: Iterable[Image.Image],
        *,
        batch_size: int = 4,
        conf: float | None = None,
    ) -> list[list[Detection]]:
        """Detect on images of any size and mode, in batches.

        Returns one list of :class:`~irbis.vision.boxes.Detection` per image, in
        input order, highest score first.
        """
        results: list[list[Detection]] = []
        tensors: list[np.ndarray] = []
        ratios: list[float] = []

        def flush() -> None:
            if tensors:
                preds = self.infer(np.stack(tensors))
                results.extend(
                    self.postprocess(p, r, conf) for p, r in zip(preds, ratios, strict=True)
                )
                tensors.clear()
                ratios.clear()

        for image in images:
            t, r = self.preprocess(image)
            tensors.append(t)
            ratios.append(r)
            if len(tensors) >= batch_size:
                flush()
        flush()
        return results


def _engine_name(session: object) -> str:
    precision = getattr(session, "precision", None)
    return f"openvino-{precision}" if precision else "onnxruntime"


def load_detector(
    name: str = "mdlite", root: Path | None = None, **kwargs: object
) -> YoloxDetector:
    """Verify an installed detector's sha256 and open it (never downloads).

    Raises
    ------
    ModelError
        Missing, damaged or wrong-hash model, naming the command that fixes it.
    """
    model = verify(name, root)
    if model.kind != "detector":
        raise ModelError.for_model(name, f"is a {model.kind}, not a detector", reinstall_hint(name))
    return YoloxDetector.from_installed(model, **kwargs)
