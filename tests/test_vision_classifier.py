"""The generic ONNX classifier (a tiny model built here) and the optional backends."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from irbis.vision.backends import (
    BackendUnavailable,
    MegaDetectorBackend,
    SpeciesNetBackend,
)
from irbis.vision.boxes import Detection
from irbis.vision.classifier import OnnxClassifier, crop_box, load_classifier
from irbis.vision.registry import ModelError, add_onnx_classifier, list_models, verify

LABELS = ["red-thing", "green-thing", "blue-thing"]


def _colour_model(path: Path, *, channels_last: bool = False, softmax: bool = True) -> None:
    """images -> mean colour per channel -> linear layer -> (softmax): a 3-class colour model.

    The input is ImageNet-normalised, so a pure red image has a high channel-0
    mean and low others; the weights pick the largest channel.
    """
    shape = ["N", 32, 32, 3] if channels_last else ["N", 3, 32, 32]
    nodes = []
    x = "images"
    if channels_last:
        nodes.append(helper.make_node("Transpose", [x], ["nchw"], perm=[0, 3, 1, 2]))
        x = "nchw"
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(np.eye(3, dtype=np.float32) * 4.0, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _solid(rgb: tuple[int, int, int], size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, rgb)


@pytest.mark.parametrize("channels_last,softmax", [(False, True), (True, False)])
def test_user_classifier_installs_verifies_and_classifies(tmp_path, channels_last, softmax):
    onnx_path = tmp_path / "colour.onnx"
    _colour_model(onnx_path, channels_last=channels_last, softmax=softmax)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    root = tmp_path / "models"
    model = add_onnx_classifier("colours", onnx_path, labels, licence="CC0-1.0", root=root)
    assert model.kind == "classifier" and model.labels == tuple(LABELS)
    assert verify("colours", root).licence == "CC0-1.0"
    assert {r["name"]: r["status"] for r in list_models(root)}["colours"] == "ok"

    clf = load_classifier("colours", root)
    res = clf.classify([_solid((250, 10, 10)), _solid((10, 240, 20)), _solid((5, 5, 250))])
    assert [r.label for r in res] == LABELS
    for r in res:
        assert r.score > 0.9 and sum(r.scores) == pytest.approx(1.0, abs=1e-4)
        assert list(r.scores) == sorted(r.scores, reverse=True)

    # Crops of detector boxes: a blue animal on a red background.
    frame = _solid((250, 0, 0), (200, 150))
    frame.paste(_solid((0, 0, 255), (60, 40)), (100, 80))
    det = Detection(100, 80, 160, 120, 0.9, "animal", "mdlite")
    person = Detection(0, 0, 50, 50, 0.9, "person", "mdlite")
    pairs = clf.classify_detections(frame, [det, person])
    assert len(pairs) == 1 and pairs[0][0] is det and pairs[0][1].label == "blue-thing"


def test_classifier_errors_are_clear(tmp_path):
    onnx_path = tmp_path / "colour.onnx"
    _colour_model(onnx_path)
    two = tmp_path / "two.txt"
    two.write_text("a\nb\n")
    with pytest.raises(ModelError, match="3 outputs but the labels file 2 labels"):
        OnnxClassifier(onnx_path, ["a", "b"])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        add_onnx_classifier("bad", bad, two, root=tmp_path / "m")
    root = tmp_path / "m2"
    add_onnx_classifier("c", onnx_path, tmp_path / "two.txt", root=root)
    (root / "c" / "model.onnx").write_bytes(b"swapped")
    with pytest.raises(ModelError, match="irbis models install c --force"):
        load_classifier("c", root)


def test_crop_box_is_square_and_clipped():
    im = _solid((0, 0, 0), (100, 80))
    c = crop_box(im, Detection(10, 20, 50, 30, 0.5), pad=0.1)
    assert c.width == c.height == 48
    edge = crop_box(im, Detection(90, 70, 100, 80, 0.5))
    assert edge.size == (11, 11)  # 12 px square, clipped at the right and bottom edges


def test_megadetector_and_speciesnet_say_how_to_install(monkeypatch, tmp_path):
    weights = tmp_path / "md_v5a.0.0.pt"
    with pytest.raises(BackendUnavailable, match="never downloads weights"):
        MegaDetectorBackend(weights)
    weights.write_bytes(b"x")
    # Make the import fail even where the package happens to be installed.
    monkeypatch.setitem(sys.modules, "megadetector", None)
    monkeypatch.setitem(sys.modules, "megadetector.detection", None)
    monkeypatch.setitem(sys.modules, "megadetector.detection.run_detector", None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'irbis\[megadetector\]'"):
        MegaDetectorBackend(weights)
    monkeypatch.setitem(sys.modules, "speciesnet", None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'irbis\[speciesnet\]'"):
        SpeciesNetBackend(tmp_path)
