"""The default detector: registry install, torch-free conversion, reference outputs."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irbis.vision.boxes import iou_matrix, nms
from irbis.vision.detector import load_detector
from irbis.vision.registry import ModelError, install, list_models, models_dir, verify
from irbis.vision.torchpickle import CheckpointError, load_checkpoint

from .conftest import need_data


@pytest.fixture(scope="session")
def mdlite_root() -> Path:
    """Install mdlite into the user cache (fast when already there)."""
    root = models_dir()
    try:
        install("mdlite", root=root)
    except ModelError as exc:
        if "could not download" in str(exc):
            pytest.skip(f"mdlite not installable here: {exc}")
        raise
    return root


def _engines() -> list[object]:
    from irbis.vision.runtime import openvino_available

    ov = pytest.mark.skipif(not openvino_available(), reason="OpenVINO not installed")
    return [
        "onnxruntime",
        pytest.param("openvino-f32", marks=ov),
        pytest.param("openvino-bf16", marks=[ov, pytest.mark.skipif(
            not _cpu_has_bf16(), reason="this CPU has no bfloat16 units (AMX / AVX-512 BF16)")]),
    ]  # fmt: skip


def _cpu_has_bf16() -> bool:
    try:
        import openvino

        hint = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    except Exception:  # noqa: BLE001 - no OpenVINO, no bf16
        return False
    return hint.get_type_name() == "bf16"


@pytest.mark.parametrize("engine", _engines())
def test_reference_detections_reproduced(mdlite_root: Path, engine: str) -> None:
    """Every engine irbis may pick runs the reference detector, within the reference's tolerance."""
    base = need_data("cameratrap")
    ref = json.loads((base / "mdlite_reference.json").read_text())
    name, _, precision = engine.partition("-")
    det = load_detector("mdlite", mdlite_root, engine=name, precision=precision or None)
    assert det.engine == engine
    worst_score, worst_iou, extras, matched = 0.0, 1.0, [], 0
    for rel, entry in ref["images"].items():
        image = Image.open(base / rel)
        assert (image.width, image.height) == (entry["width"], entry["height"])
        got = det.detect([image])[0]
        ref_boxes = np.array([d["box"] for d in entry["detections"]]).reshape(-1, 4)
        ref_scores = np.array([d["score"] for d in entry["detections"]])
        got_boxes = np.array([d.xyxy for d in got]).reshape(-1, 4)
        used: set[int] = set()
        for box, score in zip(ref_boxes, ref_scores, strict=True):
            if score < 0.1:
                continue
            ious = iou_matrix(box[None], got_boxes)[0] if len(got) else np.zeros(0)
            cand = [
                j for j in np.argsort(-ious) if j not in used and abs(got[j].score - score) <= 0.01
            ]
            assert cand, f"{rel}: reference box {box} score {score} not found"
            j = cand[0]
            used.add(j)
            matched += 1
            worst_iou = min(worst_iou, float(ious[j]))
            worst_score = max(worst_score, abs(got[j].score - score))
        for j, d in enumerate(got):
            if j not in used and d.score >= 0.1:
                # An unmatched box is only tolerated if the reference has it just under 0.1.
                near = [s for s in ref_scores if abs(s - d.score) <= 0.01 and s < 0.1]
                if not near:
                    extras.append((rel, d))
    assert matched >= 3
    assert worst_score <= 0.01
    assert worst_iou >= 0.98
    assert not extras


def test_verify_catches_damaged_model(mdlite_root: Path, tmp_path: Path) -> None:
    shutil.copytree(mdlite_root / "mdlite", tmp_path / "mdlite")
    verify("mdlite", tmp_path)
    model = tmp_path / "mdlite" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="irbis models install mdlite --force"):
        load_detector("mdlite", tmp_path)
    rows = {r["name"]: r for r in list_models(tmp_path)}
    assert str(rows["mdlite"]["status"]).startswith("broken")


def test_missing_model_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="irbis models install mdlite"):
        verify("mdlite", tmp_path)
    rows = {r["name"]: r for r in list_models(tmp_path)}
    assert rows["mdlite"]["status"] == "missing"


def _fake_checkpoint(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)


def test_checkpoint_reader_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pth"
    _fake_checkpoint(p, pickle.dumps(Evil(), protocol=2))
    with pytest.raises(CheckpointError, match="refuses"):
        load_checkpoint(p)
    p2 = tmp_path / "notzip.pth"
    p2.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError):
        load_checkpoint(p2)


def test_checkpoint_reader_rebuilds_strided_tensor(tmp_path: Path) -> None:
    """A hand-written torch-style pickle: storage via persistent id, transposed view."""
    storage = np.arange(6, dtype="<f4")

    class _P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", _Storage, "0", "cpu", 6) if obj is storage else None

    class _Rebuild:
        def __reduce__(self):
            return (_rebuild_stub, (storage, 0, (3, 2), (1, 3), False, None))

    buf = io.BytesIO()
    _P(buf, protocol=2).dump({"w": _Rebuild()})
    raw = buf.getvalue()
    # Point the globals at the names torch writes.
    raw = raw.replace(
        f"{__name__}\n_rebuild_stub".encode(), b"torch._utils\n_rebuild_tensor_v2"
    ).replace(f"{__name__}\n_Storage".encode(), b"torch\nFloatStorage")
    p = tmp_path / "t.pth"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("archive/data.pkl", raw)
        zf.writestr("archive/data/0", storage.tobytes())
    out = load_checkpoint(p)
    np.testing.assert_array_equal(out["w"], storage.reshape(2, 3).T)


class _Storage:  # stands in for torch.FloatStorage while pickling
    pass


def _rebuild_stub(*args):  # pragma: no cover - replaced in the pickle bytes
    raise AssertionError


def test_nms_matches_greedy_rule() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    keep = nms(boxes, scores, 0.45)
    assert keep.tolist() == [3, 2]
