"""A generic ONNX species classifier: the user's model file and labels file.

Many groups train their own species classifier (a regional model, a
snow-leopard / ibex / fox / blank model) and export it to ONNX. irbis runs any
such model on whole frames or on detector crops, given

* the ``.onnx`` file, with one image input (``NCHW`` or ``NHWC``, RGB) and one
  output of ``len(labels)`` scores per image (logits or probabilities);
* a labels file, one label per line, in output order.

The pre-processing is what such exports commonly expect and what the model's
manifest can override: resize to the input size, scale to 0..1, subtract
``mean`` and divide by ``std`` (ImageNet's by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from irbis.vision.boxes import Detection

__all__ = ["Classification", "OnnxClassifier", "crop_box", "load_classifier"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Classification:
    """Top-k labels of one image or crop, best first, with probabilities."""

    labels: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def score(self) -> float:
        return self.scores[0]


def crop_box(image: Image.Image, det: Detection, *, pad: float = 0.1) -> Image.Image:
    """The square crop around a box, grown by ``pad`` of its size on each side.

    Square because classifiers are trained on square inputs and squashing a
    long-bodied cat into one distorts it; the square is clipped to the frame.
    """
    cx, cy = (det.x1 + det.x2) / 2, (det.y1 + det.y2) / 2
    side = max(det.x2 - det.x1, det.y2 - det.y1) * (1 + 2 * pad)
    side = max(side, 8.0)
    x1 = int(max(0, cx - side / 2))
    y1 = int(max(0, cy - side / 2))
    x2 = int(min(image.width, cx + side / 2))
    y2 = int(min(image.height, cy + side / 2))
    return image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))


class OnnxClassifier:
    """Run a user's ONNX classifier on frames or crops.

    Parameters
    ----------
    model_path
        The ``.onnx`` file.
    labels
        One label per model output, in order.
    name, version
        Recorded with every classification.
    input_size
        Square input size when the model's input shape does not fix it.
    mean, std
        Per-channel normalisation after scaling to 0..1.
    threads
        ONNX Runtime intra-op threads (default: the usable CPUs).
    providers
        ONNX Runtime providers (default: CUDA when present, then CPU).
    engine, precision
        Inference engine and OpenVINO precision; see :func:`irbis.vision.runtime.make_session`.
    """

    def __init__(
        self,
        model_path: str | Path,
        labels: Sequence[str],
        *,
        name: str = "classifier",
        version: str = "",
        input_size: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        threads: int | None = None,
        providers: list[str] | None = None,
        engine: str | None = None,
        precision: str | None = None,
    ) -> None:
        from irbis.vision.registry import ModelError
        from irbis.vision.runtime import open_model_session

        self.name, self.version = name, version
        self.labels = tuple(labels)
        self.session = open_model_session(
            name,
            model_path,
            threads=threads,
            providers=providers,
            engine=engine,
            precision=precision,
        )
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ModelError.for_model(
                name, f"input {inp.name} has shape {shape}, expected an image batch", ""
            )
        # NHWC when the last axis is the 3 colour channels, NCHW otherwise.
        self.channels_last = shape[3] == 3 and shape[1] != 3
        h, w = (shape[1], shape[2]) if self.channels_last else (shape[2], shape[3])
        fixed = isinstance(h, int) and isinstance(w, int)
        self.size = (int(w), int(h)) if fixed else (input_size or 224, input_size or 224)
        out = self.session.get_outputs()[0]
        n_out = out.shape[-1] if out.shape else None
        if isinstance(n_out, int) and n_out != len(self.labels):
            raise ModelError.for_model(
                name,
                f"model has {n_out} outputs but the labels file {len(self.labels)} labels",
                "fix the labels file (one label per output, in order)",
            )
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)

    @classmethod
    def from_installed(cls, model, **kwargs: object) -> OnnxClassifier:
        """From a registry entry (see :func:`irbis.vision.registry.add_onnx_classifier`)."""
        meta = model.meta
        opts: dict[str, object] = {"name": model.name, "version": model.version}
        if "input_size" in meta:
            opts["input_size"] = int(meta["input_size"])
        for key in ("mean", "std"):
            if key in meta:
                opts[key] = tuple(meta[key])
        opts.update(kwargs)
        return cls(model.path, model.labels, **opts)  # type: ignore[arg-type]

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One image as the model's input array (without the batch axis)."""
        rgb = image.convert("RGB").resize(self.size, Image.Resampling.BILINEAR)
        arr = (np.asarray(rgb, dtype=np.float32) / 255.0 - self.mean) / self.std
        return arr if self.channels_last else arr.transpose(2, 0, 1)

    def scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``(n, n_labels)`` probabilities for ``images``."""
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        batch = np.ascontiguousarray(np.stack([self.preprocess(im) for im in images]))
        out = np.asarray(self.session.run(None, {self.input_name: batch})[0], dtype=np.float64)
        out = out.reshape(len(images), -1)
        # Exports differ: some end in Softmax, some give logits. Rows that are
        # already a probability distribution are left alone.
        is_prob = np.all((out >= 0) & (out <= 1), axis=1) & np.isclose(out.sum(1), 1, atol=1e-3)
        z = out - out.max(1, keepdims=True)
        soft = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        return np.where(is_prob[:, None], out, soft).astype(np.float32)

    def classify(self, images: Sequence[Image.Image], *, top_k: int = 3) -> list[Classification]:
        """Top-``k`` labels of each image."""
        probs = self.scores(images)
        res = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[:top_k]
            res.append(
                Classification(
                    tuple(self.labels[i] for i in order), tuple(float(row[i]) for i in order)
                )
            )
        return res

    def classify_detections(
        self,
        image: Image.Image,
        detections: Sequence[Detection],
        *,
        top_k: int = 3,
        category: str = "animal",
    ) -> list[tuple[Detection, Classification]]:
        """Classify the crop of every ``category`` box of one frame."""
        boxes = [d for d in detections if d.category == category]
        crops = [crop_box(image, d) for d in boxes]
        return list(zip(boxes, self.classify(crops, top_k=top_k), strict=True))


def load_classifier(name: str, root: Path | None = None, **kwargs: object) -> OnnxClassifier:
    """Verify an installed classifier (sha256) and open it."""
    from irbis.vision.registry import verify

    return OnnxClassifier.from_installed(verify(name, root), **kwargs)
