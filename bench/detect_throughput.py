"""Detection throughput: the ``irbis detect`` stage next to bare inference and PyTorch.

In one run, on the same frames and the same CPU cores (``--cores``, pinned
with the affinity mask so the reference inherits it), for each engine of
``--engines`` (ONNX Runtime; OpenVINO float32 and bfloat16 where installed):

a. ``bare``: the engine's ``session.run`` alone on the frames' already
   letterboxed tensors, one image per call: the floor of any pipeline on
   this model and engine;
b. ``pipeline_learned`` / ``pipeline_fused``: the whole stage
   (:func:`irbis.pipeline.detect_stage.run_detect`) on a fresh project that
   references the frames in place: reading, decoding, letterboxing, inference,
   NMS, (motion + fusion,) verdicts and database writes;
   ``overhead_vs_onnxruntime_bare`` is its time over bare ONNX Runtime's minus
   one (the issue's measure, goal ≤ 0.15) and ``overhead_vs_own_bare`` over
   the same engine's floor;
c. ``torch``: the reference PyTorch implementation (pixeltable-yolox on
   torch, run from a separate Python given by ``--torch-python``, never
   irbis's own environment): ``forward_only`` on the same tensors, and
   ``end_to_end`` with the reference pre/post-processing (Pillow decode,
   ``ImageOps.pad``, forward, NMS) per image; ``speedup_vs_torch_*`` is
   irbis over it (goal ≥ 2 per image on 2 cores). The reference runs with
   ``OMP_WAIT_POLICY=PASSIVE`` (irbis's engines do not spin either) and
   with the better of ``--cores`` and 1 threads;
d. on a machine whose ONNX Runtime has the CUDA provider: bare and the
   learned pipeline on the GPU;
e. ``preprocess_ms_per_frame``: decode + letterbox alone, the reference's
   ``ImageOps.pad`` next to irbis's letterbox (the same pixels, written
   straight into the network tensor).

Frames: the first ``--frames`` photos of ``../shared/data/reid/snowleopard-
tajikistan`` (real camera-trap frames, 1280 px), read in place, never copied.
Prints one JSON object on stdout; progress on stderr. Run::

    .venv/bin/python bench/detect_throughput.py --frames 300 --cores 2 \\
        --torch-python /tmp/torchref/bin/python

Each column is the best of ``--repeats`` alternating rounds (others' load on
a shared machine hits all columns alike); ``load_average_*`` and the CPU
features the engines' kernels depend on (``cpu_flags``: AVX-512, AMX) are
recorded, since they decide the float32/bfloat16 figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

try:
    import irbis  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FRAMES_DIR = DATA / "reid" / "snowleopard-tajikistan" / "images"
OVERHEAD_GOAL = 0.15
SPEEDUP_GOAL = 2.0


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def pin_cores(n: int | None) -> list[int]:
    """Restrict this process (and its children) to ``n`` of its CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if n:
        cpus = cpus[:n]
        os.sched_setaffinity(0, set(cpus))
    os.environ["IRBIS_THREADS"] = str(len(cpus))
    return cpus


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- (a) bare ONNX Runtime --------------------------------------------------------------


def bare_run(detector: Any, tensors: np.ndarray, repeats: int = 1) -> dict[str, Any]:
    """Time ``session.run`` alone over every tensor, one image per call."""
    detector.infer(tensors[:1])  # warm-up: graph optimisation, memory arena
    t0 = time.perf_counter()
    for _ in range(repeats):
        for i in range(len(tensors)):
            detector.infer(tensors[i : i + 1])
    s = time.perf_counter() - t0
    n = len(tensors) * repeats
    return {"images": n, "seconds": round(s, 3), "images_per_s": round(n / s, 3)}


def preprocess_compare(detector: Any, files: list[Path]) -> dict[str, Any]:
    """ms per frame of decode + letterbox, reference (``ImageOps.pad``) vs irbis (same pixels)."""
    from irbis.vision.detector import letterbox, letterbox_reference, open_image

    out: dict[str, float] = {}
    size = detector.input_size
    for _rep in range(2):  # alternate, keep each one's best
        for name, fn in (("reference", letterbox_reference), ("irbis", letterbox)):
            t0 = time.perf_counter()
            for f in files:
                fn(open_image(f, min_side=2 * size), size)
            ms = 1000 * (time.perf_counter() - t0) / len(files)
            out[name] = round(min(ms, out.get(name, ms)), 2)
    out["frames"] = len(files)
    return out


def _engine_kwargs(engine: str) -> dict[str, str]:
    name, _, precision = engine.partition("-")
    return (
        {"engine": name, "precision": precision or "f32"}
        if name == "openvino"
        else {"engine": name}
    )


def _engine_label(detector: Any) -> str:
    return str(getattr(detector, "engine", "onnxruntime"))


def cpu_flags() -> list[str]:
    """The CPU features that decide which kernels the engines use (AVX-512, VNNI, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
    )
    keep = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")
    return [f for f in keep if f in flags]


# -- (b) the stage ------------------------------------------------------------------------


def make_project(root: Path, frames: list[Path]) -> Any:
    """A project referencing ``frames`` in place, in one open deployment."""
    from irbis.core.types import DeploymentRecord, StationRecord
    from irbis.ingest.registry import save_registry
    from irbis.ingest.runner import ingest
    from irbis.store import Project

    p = Project.init(root, storage="reference")
    save_registry(
        p,
        [StationRecord(name="BENCH")],
        [
            DeploymentRecord(
                code="BENCH-A",
                station="BENCH",
                start=datetime(2000, 1, 1),
                end=datetime(2030, 1, 1),
            )
        ],
    )
    every = sorted(FRAMES_DIR.glob("*.JPG"))
    if frames == every:
        ingest(p, FRAMES_DIR, deployment="BENCH-A", storage="reference")
    else:  # a subset: file by file (ingest refuses links that leave the card)
        for f in frames:
            ingest(p, f, deployment="BENCH-A", storage="reference")
    return p


def pipeline(workdir: Path, frames: list[Path], detector: Any, tag: str) -> dict[str, Any]:
    import shutil

    from irbis.pipeline.detect_stage import run_detect

    root = workdir / f"project-{tag}"
    shutil.rmtree(root, ignore_errors=True)
    p = make_project(root, frames)
    try:
        t0 = time.perf_counter()
        res = run_detect(p, detector)
        s = time.perf_counter() - t0
    finally:
        p.close()
    return {
        "detector": res.detector,
        "images": res.frames,
        "seconds": round(s, 3),
        "images_per_s": round(res.frames / s, 3),
        "verdicts": res.verdicts,
        "errors": len(res.errors),
    }


# -- (c) PyTorch reference ------------------------------------------------------------------

TORCH_SCRIPT = textwrap.dedent(
    '''
    """Reference: pixeltable-yolox YoloxTiny(num_classes=1) on torch, zamba pre/post."""
    import json, sys, time, types
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    def _nms(boxes, scores, thr):  # torchvision.ops.nms semantics, pure torch
        order = torch.argsort(scores, descending=True)
        x1, y1, x2, y2 = boxes.unbind(1)
        area = (x2 - x1) * (y2 - y1)
        keep, dead = [], torch.zeros(len(boxes), dtype=torch.bool)
        for i in order.tolist():
            if dead[i]:
                continue
            keep.append(i)
            iw = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
            ih = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
            inter = iw * ih
            dead |= inter / (area[i] + area - inter) > thr
        return torch.tensor(keep, dtype=torch.long)

    # torchvision's compiled ops are not needed for this model; its NMS is replaced.
    tv = types.ModuleType("torchvision")
    tv.ops = types.SimpleNamespace(nms=_nms, batched_nms=lambda b, s, c, t: _nms(b, s, t))
    sys.modules.setdefault("torchvision", tv)
    from yolox.config import YoloxTiny
    from yolox.utils.boxes import postprocess

    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    cfg = YoloxTiny()
    cfg.num_classes = 1
    model = cfg.get_model()
    model.load_state_dict(torch.load(args["ckpt"], map_location="cpu", weights_only=False)["model"])
    model.eval()
    tensors = np.load(args["tensors"], mmap_mode="r")
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with torch.inference_mode():
        # The reference gets its best thread count: with others' load on the
        # machine, OpenMP's team of 2 can be slower than 1 thread.
        tried = {}
        for n in dict.fromkeys([args["threads"], 1]):
            torch.set_num_threads(n)
            model(torch.from_numpy(np.array(tensors[:1])))
            t0 = time.perf_counter()
            for i in range(len(tensors)):
                model(torch.from_numpy(np.array(tensors[i : i + 1])))
            s = time.perf_counter() - t0
            tried[n] = {"images": len(tensors), "seconds": round(s, 3),
                        "images_per_s": round(len(tensors) / s, 3), "threads": n}
        best = max(tried.values(), key=lambda r: r["images_per_s"])
        out["forward_only"] = best
        out["forward_only_by_threads"] = {str(k): v["images_per_s"] for k, v in tried.items()}
        torch.set_num_threads(best["threads"])
        out["threads"] = best["threads"]
        files = args["files"]
        t0 = time.perf_counter()
        for f in files:
            im = Image.open(f).convert("RGB")
            arr = np.asarray(ImageOps.pad(im, (640, 640), method=Image.BICUBIC, color=None,
                                          centering=(0, 0)), dtype=np.float32)
            x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, 2, 0)))[None]
            postprocess(model(x), 1, 0.05, 0.45, class_agnostic=True)
        s = time.perf_counter() - t0
        out["end_to_end"] = {"images": len(files), "seconds": round(s, 3),
                             "images_per_s": round(len(files) / s, 3)}
    print(json.dumps(out))
    '''
)


def checkpoint(workdir: Path) -> Path:
    """The reference ``.pth``, extracted from the zamba wheel (downloaded once with pip)."""
    from irbis.vision.registry import MDLITE_MEMBER, ZAMBA_REQUIREMENT

    pth = workdir / Path(MDLITE_MEMBER).name
    if pth.exists():
        return pth
    wheels = sorted(workdir.glob("zamba-*.whl"))
    if not wheels:
        log(f"downloading {ZAMBA_REQUIREMENT} for the reference checkpoint")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", ZAMBA_REQUIREMENT, "--no-deps",
             "--only-binary=:all:", "--ignore-requires-python", "-q", "-d", str(workdir)],
            check=True,
        )  # fmt: skip
        wheels = sorted(workdir.glob("zamba-*.whl"))
    with zipfile.ZipFile(wheels[0]) as whl:
        pth.write_bytes(whl.read(MDLITE_MEMBER))
    return pth


def torch_reference(
    python: str, workdir: Path, tensors_file: Path, files: list[Path], threads: int
) -> dict[str, Any]:
    script = workdir / "torch_reference.py"
    script.write_text(TORCH_SCRIPT)
    args = {
        "ckpt": str(checkpoint(workdir)),
        "tensors": str(tensors_file),
        "files": [str(f) for f in files],
        "threads": threads,
    }
    # OpenMP threads that spin while waiting collapse when the cores are shared
    # (measured: 0.3 images/s instead of 4); ONNX Runtime runs with spinning
    # off, so the reference gets the same courtesy.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(
        [python, str(script), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=7200,
        env=env,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="number of real frames")
    ap.add_argument("--cores", type=int, default=2, help="CPUs to pin to (0: all)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: temp)")
    ap.add_argument(
        "--torch-python",
        default=os.environ.get("IRBIS_TORCH_PYTHON"),
        help="a Python with torch + pixeltable-yolox for the reference column",
    )
    ap.add_argument("--skip-fused", action="store_true", help="only the learned pipeline")
    ap.add_argument(
        "--engines",
        default="onnxruntime,openvino-f32,openvino-bf16",
        help="comma-separated: onnxruntime, openvino-f32, openvino-bf16 (OpenVINO ones are "
        "skipped when it is not installed)",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="alternate bare/pipeline runs this many times and keep each one's best "
        "(a shared machine's other load hits every column alike)",
    )
    args = ap.parse_args(argv)

    if not FRAMES_DIR.is_dir():
        raise SystemExit(f"frames not found at {FRAMES_DIR} (see ../shared/data/README.md)")
    cpus = pin_cores(args.cores or None)
    threads = len(cpus)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="irbis-detect-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    files = sorted(FRAMES_DIR.glob("*.JPG"))[: args.frames]
    log(f"{len(files)} frames, {threads} cores {cpus}, workdir {workdir}")

    from irbis.vision import registry
    from irbis.vision.detector import load_detector
    from irbis.vision.sequence import LearnedSequence, load_sequence_detector

    registry.install("mdlite", log=log)
    from irbis.vision.runtime import openvino_available

    engines = [e for e in args.engines.split(",") if e]
    if not openvino_available():
        skipped = [e for e in engines if e.startswith("openvino")]
        engines = [e for e in engines if not e.startswith("openvino")]
        if skipped:
            log(f"OpenVINO not installed: skipping {', '.join(skipped)}")
    default_engine = _engine_label(load_detector("mdlite", threads=threads))
    from PIL import Image

    if not engines:
        raise SystemExit("no engine left to time (see --engines)")
    dets = {e: load_detector("mdlite", threads=threads, **_engine_kwargs(e)) for e in engines}
    det = next(iter(dets.values()))
    log("letterboxing every frame (untimed) for the bare runs")
    tensors = np.stack([det.preprocess(Image.open(f).convert("RGB"))[0] for f in files])
    tensors_file = workdir / "tensors.npy"
    np.save(tensors_file, tensors)

    result: dict[str, Any] = {
        "frames": len(files),
        "frame_sizes": sorted({Image.open(f).size for f in files}),
        "cores": threads,
        "machine": platform.machine(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "load_average_start": load_average(),
        "default_engine": default_engine,
    }
    import onnxruntime as ort

    result["onnxruntime"] = ort.__version__
    if openvino_available():
        import openvino

        result["openvino"] = openvino.__version__
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {e: {} for e in engines}
    for rep in range(args.repeats):
        for e in engines:
            d = dets[e]
            log(f"round {rep + 1}/{args.repeats}, {e}: bare session.run")
            runs[e].setdefault("bare", []).append(bare_run(d, tensors))
            log(f"  {runs[e]['bare'][-1]['images_per_s']} images/s; pipeline, learned alone")
            runs[e].setdefault("pipeline_learned", []).append(
                pipeline(workdir, files, LearnedSequence(d, threshold=0.1), f"learned-{e}-{rep}")
            )
            log(f"  {runs[e]['pipeline_learned'][-1]['images_per_s']} images/s")
            if not args.skip_fused:
                log("  pipeline, fused default detector")
                fused = load_sequence_detector("fused", threads=threads, **_engine_kwargs(e))
                runs[e].setdefault("pipeline_fused", []).append(
                    pipeline(workdir, files, fused, f"fused-{e}-{rep}")
                )
                log(f"  {runs[e]['pipeline_fused'][-1]['images_per_s']} images/s")
    log("pre-processing alone: decode + reference letterbox vs decode + irbis letterbox")
    result["preprocess_ms_per_frame"] = preprocess_compare(det, files[:120])
    result["engines"] = {}
    for e, by_key in runs.items():
        section: dict[str, Any] = {}
        for key, rs in by_key.items():
            best = max(rs, key=lambda r: r["images_per_s"])
            section[key] = {**best, "all_images_per_s": [r["images_per_s"] for r in rs]}
        result["engines"][e] = section
    del tensors
    ort_base = result["engines"].get("onnxruntime", {}).get("bare", {}).get("images_per_s")
    for section in result["engines"].values():
        own = section["bare"]["images_per_s"]
        for key in ("pipeline_learned", "pipeline_fused"):
            if key in section:
                ips = section[key]["images_per_s"]
                # The measure: the stage next to bare ONNX Runtime on the same tensors.
                if ort_base:
                    section[key]["overhead_vs_onnxruntime_bare"] = round(ort_base / ips - 1, 4)
                section[key]["overhead_vs_own_bare"] = round(own / ips - 1, 4)
    result["overhead_goal"] = OVERHEAD_GOAL

    if args.torch_python:
        log(f"PyTorch reference with {args.torch_python}")
        ref = torch_reference(args.torch_python, workdir, tensors_file, files, threads)
        result["torch"] = ref
        if "forward_only" in ref:
            fwd = ref["forward_only"]["images_per_s"]
            e2e = ref["end_to_end"]["images_per_s"]
            for section in result["engines"].values():
                section["bare"]["speedup_vs_torch_forward"] = round(
                    section["bare"]["images_per_s"] / fwd, 3
                )
                for key in ("pipeline_learned", "pipeline_fused"):
                    if key in section:
                        section[key]["speedup_vs_torch_end_to_end"] = round(
                            section[key]["images_per_s"] / e2e, 3
                        )
        result["speedup_goal"] = SPEEDUP_GOAL
    else:
        result["torch"] = {"skipped": "give --torch-python (a separate venv with torch)"}

    if "CUDAExecutionProvider" in ort.get_available_providers():
        log("GPU: bare ONNX Runtime and the learned pipeline on CUDA")
        gdet = load_detector(
            "mdlite",
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
            engine="onnxruntime",
        )
        gt = np.load(tensors_file)
        result["gpu"] = {
            "bare": bare_run(gdet, gt),
            "pipeline_learned": pipeline(
                workdir, files, LearnedSequence(gdet, threshold=0.1), "gpu"
            ),
        }
    result["load_average_end"] = load_average()
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
