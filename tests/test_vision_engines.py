"""Inference engines: ONNX Runtime and OpenVINO run the same ONNX file alike.

The detector's numbers must not depend on the engine a machine happens to
have: float32 OpenVINO must agree with ONNX Runtime to rounding, and the
default detector must reproduce the reference detections on every engine
(``test_vision_mdlite.py`` holds that check; here the engines themselves).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irbis.vision.runtime import (
    EngineError,
    OpenVinoSession,
    make_session,
    openvino_available,
)

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="OpenVINO not installed")


def _tiny_cnn(path: Path, *, dynamic: bool | str = True) -> Path:
    """Conv 3→4 (3×3, pad 1) + Sigmoid + global mean: N×3×H×W → N×4, seeded weights."""
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.normal(0, 0.05, (4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"]),
    ]
    dims = {True: ["N", 3, "H", "W"], False: [1, 3, 32, 48], "batch": ["N", 3, 32, 48]}[dynamic]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dims[0], 4])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def test_unknown_engine_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    model = _tiny_cnn(tmp_path / "m.onnx")
    with pytest.raises(EngineError, match=r"engine='tpu'.*onnxruntime"):
        make_session(model, engine="tpu")
    monkeypatch.setenv("IRBIS_ENGINE", "cuda-please")
    with pytest.raises(EngineError, match="IRBIS_ENGINE='cuda-please'"):
        make_session(model)
    monkeypatch.setenv("IRBIS_ENGINE", "onnxruntime")
    assert type(make_session(model)).__name__ == "InferenceSession"
    # A typo in the precision is an error whichever engine runs.
    monkeypatch.setenv("IRBIS_PRECISION", "int4")
    with pytest.raises(EngineError, match="IRBIS_PRECISION='int4'"):
        make_session(model)


def test_auto_engine_prefers_openvino_on_cpu(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("IRBIS_ENGINE", raising=False)
    session = make_session(_tiny_cnn(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    expected = "OpenVinoSession" if openvino_available() else "InferenceSession"
    assert type(session).__name__ == expected


@needs_openvino
def test_openvino_f32_equals_onnxruntime_any_batch_and_size(tmp_path: Path) -> None:
    model = _tiny_cnn(tmp_path / "m.onnx")
    ort_s = make_session(model, engine="onnxruntime", threads=1)
    ov_s = make_session(model, engine="openvino", precision="f32", threads=1)
    assert isinstance(ov_s, OpenVinoSession)
    assert ov_s.get_inputs()[0].name == "x"
    assert ov_s.get_inputs()[0].shape == [None, 3, None, None]
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 32, 48), (3, 3, 32, 48), (2, 3, 64, 40)]:
        x = rng.uniform(0, 255, shape).astype(np.float32)
        want = ort_s.run(None, {"x": x})[0]
        got = ov_s.run(None, {"x": x})[0]
        assert got.shape == want.shape == (shape[0], 4)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # One compiled model per image shape, whatever the batch sizes were.
    assert sorted(ov_s._requests) == [(1, 3, 32, 48), (1, 3, 64, 40)]


@needs_openvino
def test_openvino_fixed_shape_model_compiles_at_open(tmp_path: Path) -> None:
    model = _tiny_cnn(tmp_path / "m.onnx", dynamic=False)
    s = OpenVinoSession(model, threads=1, precision="f32")
    assert list(s._requests) == [(1, 3, 32, 48)]
    x = np.full((1, 3, 32, 48), 128, np.float32)
    np.testing.assert_allclose(
        s.run(["y"], {"x": x})[0], make_session(model, engine="onnxruntime").run(None, {"x": x})[0],
        atol=1e-5,
    )  # fmt: skip


@needs_openvino
def test_openvino_open_batch_compiles_one_image_at_open_and_checks_output_names(
    tmp_path: Path,
) -> None:
    model = _tiny_cnn(tmp_path / "m.onnx", dynamic="batch")
    s = OpenVinoSession(model, threads=1, precision="f32")
    assert list(s._requests) == [(1, 3, 32, 48)]  # the precision that runs is known at open
    assert s.precision == "f32"
    x = np.zeros((2, 3, 32, 48), np.float32)
    assert s.run(["y"], {"x": x})[0].shape == (2, 4)
    assert list(s._requests) == [(1, 3, 32, 48)]
    with pytest.raises(ValueError, match="no output named logits"):
        s.run(["logits"], {"x": x})


@needs_openvino
def test_broken_model_file_names_the_file(tmp_path: Path) -> None:
    from irbis.vision.detector import YoloxDetector
    from irbis.vision.registry import ModelError

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf")
    for engine in ("openvino", "onnxruntime"):
        with pytest.raises(ModelError, match=r"cannot load .*model\.onnx"):
            YoloxDetector(bad, engine=engine)


def test_detect_refuses_unknown_engine_before_touching_project(tmp_path: Path) -> None:
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "irbis", "detect", str(tmp_path / "nowhere"), "--engine", "gpu9000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert "engine='gpu9000'" in res.stderr and "onnxruntime" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "nowhere").exists()


@needs_openvino
def test_float_engines_share_results_reduced_precision_does_not() -> None:
    """A census rerun on another machine must not redo (or duplicate) detection for nothing."""
    from irbis.vision.registry import ModelError, install
    from irbis.vision.sequence import load_sequence_detector

    try:
        install("mdlite")
    except ModelError as exc:  # pragma: no cover - depends on the package index
        if "could not download" in str(exc) and os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"mdlite cannot be installed here: {exc}")
        raise
    ort_seq = load_sequence_detector("fused", engine="onnxruntime")
    f32_seq = load_sequence_detector("fused", engine="openvino", precision="f32")
    assert ort_seq.key == f32_seq.key
    assert (ort_seq.params["engine"], f32_seq.params["engine"]) == ("onnxruntime", "openvino-f32")
    bf16 = load_sequence_detector("learned", engine="openvino", precision="bf16")
    # Named for the precision that runs: bf16 where the CPU has the units, f32 elsewhere.
    runs = bf16.detector.session.precision
    assert runs in ("bf16", "f32") and bf16.params["engine"] == f"openvino-{runs}"
    assert bf16.key.endswith(":openvino-bf16") == (runs == "bf16")


@needs_openvino
def test_openvino_session_serves_several_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = _tiny_cnn(tmp_path / "m.onnx")
    s = make_session(model, engine="openvino", precision="f32", threads=1)
    rng = np.random.default_rng(3)
    xs = [rng.uniform(0, 255, (1, 3, 24, 24)).astype(np.float32) for _ in range(24)]
    want = [make_session(model, engine="onnxruntime").run(None, {"x": x})[0] for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: s.run(None, {"x": x})[0], xs))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


@needs_openvino
def test_auto_falls_back_to_onnxruntime_for_an_operator_openvino_lacks(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """A user's classifier with an unusual operator (here Det) still runs; asked-for fails."""
    graph = helper.make_graph(
        [helper.make_node("Det", ["x"], ["y"])],
        "det",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "det.onnx"
    path.write_bytes(model.SerializeToString())
    monkeypatch.delenv("IRBIS_ENGINE", raising=False)
    with caplog.at_level("WARNING", logger="irbis.vision.runtime"):
        session = make_session(path, providers=["CPUExecutionProvider"])
    assert type(session).__name__ == "InferenceSession"
    assert "OpenVINO cannot run" in caplog.text and "det.onnx" in caplog.text
    x = np.stack([np.eye(3, dtype=np.float32) * 2, np.eye(3, dtype=np.float32)])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], [8.0, 1.0], rtol=1e-6)
    with pytest.raises(Exception):  # noqa: B017 - OpenVINO's own error type
        make_session(path, engine="openvino")


@needs_openvino
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_openvino_with_fewer_threads_than_cpus_does_not_pin_them(tmp_path: Path) -> None:
    """Processes sharing a machine (Ray workers, one thread each) must not all be pinned
    to core 0 by OpenVINO's default: on 2 cores that halved two workers' throughput."""
    model = _tiny_cnn(tmp_path / "m.onnx", dynamic=False)
    one = OpenVinoSession(model, threads=1, precision="f32")
    compiled = one._requests[(1, 3, 32, 48)].get_compiled_model()
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    x = np.full((1, 3, 32, 48), 128, np.float32)
    one.run(["y"], {"x": x})
    allowed = set(os.sched_getaffinity(0))
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        assert os.sched_getaffinity(int(task.name)) == allowed, task.name
