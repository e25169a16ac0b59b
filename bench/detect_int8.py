"""Would an int8 (static, QDQ) copy of the default detector be worth it? Speed and recall (JSON).

ONNX Runtime's static quantisation needs calibration frames. To keep the
recall honest the 41 snow-leopard encounters are split: every other
encounter's frames (every 5th frame) calibrate, the other encounters measure.
Convolutions are quantised (weights per channel int8, activations uint8,
MinMax calibration); the decode of boxes (grid, stride, exp) and the
prediction convolutions stay float. Reported, in one run on the same cores:

* images/s of ``session.run`` for the float and the int8 graph, alternating;
* on the held-out encounters: frames and encounters found at 0.1 / 0.25 / 0.5
  by each, and how far the int8 best score per frame is from the float one;
* the reference detections of ``mdlite_reference.json`` (score ≥ 0.1) the
  int8 graph reproduces within |Δscore| ≤ 0.01 and IoU ≥ 0.98 (the test the
  default detector must pass).

Dynamic quantisation (``ConvInteger``) is not tried: it ran at 0.6 images/s,
ten times slower than float, on this model.

Usage::

    .venv/bin/python bench/detect_int8.py [--out int8.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from irbis.vision.boxes import iou_matrix
from irbis.vision.detector import YoloxDetector, letterbox
from irbis.vision.registry import verify

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def float_nodes(model: Any) -> list[str]:
    """Nodes kept in float: prediction convs and sigmoids, and everything after them."""
    nodes = list(model.graph.node)
    prod = {o: n for n in nodes for o in n.output}
    keep: set[str] = set()
    flats = [n for n in nodes if n.op_type == "Reshape"]
    for f in flats:
        cat = prod[f.input[0]]
        keep.add(cat.name)
        for i in cat.input:
            n = prod[i]
            keep.add(n.name)
            if n.op_type == "Sigmoid":
                keep.add(prod[n.input[0]].name)
    first = min(nodes.index(f) for f in flats)
    keep |= {n.name for n in nodes[first:] if n.op_type != "Conv"}
    keep |= {n.name for n in nodes if n.op_type in ("Slice", "Add", "Exp", "Transpose")}
    keep.discard("")
    return sorted(keep)


def quantise(src: Path, dest: Path, frames: list[Path]) -> float:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            f = next(self.it, None)
            if f is None:
                return None
            return {"images": letterbox(Image.open(f).convert("RGB"), 640)[0][None]}

    t0 = time.perf_counter()
    quantize_static(
        str(src),
        str(dest),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        nodes_to_exclude=float_nodes(onnx.load(str(src))),
        calibrate_method=CalibrationMethod.MinMax,
    )
    return time.perf_counter() - t0


def speed(dets: dict[str, YoloxDetector], tensors: np.ndarray, rounds: int = 2) -> dict[str, Any]:
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, d in dets.items():
            d.infer(tensors[:1])
            t0 = time.perf_counter()
            for i in range(len(tensors)):
                d.infer(tensors[i : i + 1])
            ips = len(tensors) / (time.perf_counter() - t0)
            best[name] = round(max(ips, best.get(name, 0.0)), 3)
    return best


def recall(det: YoloxDetector, rows: list[dict[str, str]], base: Path) -> tuple[dict, np.ndarray]:
    scores = []
    for r in rows:
        ds = det.detect([Image.open(base / r["path"]).convert("RGB")])[0]
        scores.append(max((d.score for d in ds), default=0.0))
    s = np.array(scores)
    n_enc = len({r["encounter"] for r in rows})
    out = {}
    for t in (0.1, 0.25, 0.5):
        enc = {r["encounter"] for r, v in zip(rows, s, strict=True) if v >= t}
        out[f"@{t}"] = {"frames": round(float((s >= t).mean()), 4), "encounters": len(enc)}
    out["encounters_total"] = n_enc
    return out, s


def reference(det: YoloxDetector, data: Path) -> dict[str, Any]:
    base = data / "cameratrap"
    ref = json.loads((base / "mdlite_reference.json").read_text())
    ok = total = 0
    worst = 0.0
    for rel, entry in ref["images"].items():
        got = det.detect([Image.open(base / rel)])[0]
        gb = np.array([d.xyxy for d in got]).reshape(-1, 4)
        for d in entry["detections"]:
            if d["score"] < 0.1:
                continue
            total += 1
            if not len(got):
                worst = max(worst, d["score"])
                continue
            ious = iou_matrix(np.array(d["box"])[None], gb)[0]
            j = int(np.argmax(ious))
            diff = abs(got[j].score - d["score"])
            worst = max(worst, diff)
            ok += diff <= 0.01 and ious[j] >= 0.98
    return {"reference_boxes": total, "reproduced": ok, "worst_score_difference": round(worst, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    sl = args.data / "reid" / "snowleopard-tajikistan"
    with (sl / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    encs = sorted({r["encounter"] for r in rows})
    calib_enc = set(encs[0::2])
    calib = [sl / r["path"] for r in rows if r["encounter"] in calib_enc][::5]
    held = [r for r in rows if r["encounter"] not in calib_enc]
    src = verify("mdlite").path
    with tempfile.TemporaryDirectory(prefix="irbis-int8-") as tmp:
        q = Path(tmp) / "mdlite-int8.onnx"
        calib_s = quantise(src, q, calib)
        dets = {
            "float": YoloxDetector(src, conf=0.01),
            "int8": YoloxDetector(q, conf=0.01),
        }
        tensors = np.stack(
            [letterbox(Image.open(sl / r["path"]).convert("RGB"), 640)[0] for r in held[:60]]
        )
        result: dict[str, Any] = {
            "calibration_frames": len(calib),
            "calibration_seconds": round(calib_s, 1),
            "held_out_frames": len(held),
            "images_per_s": speed(dets, tensors),
        }
        rec = {name: recall(d, held, sl) for name, d in dets.items()}
        diff = np.abs(rec["float"][1] - rec["int8"][1])
        result["held_out_recall"] = {name: r[0] for name, r in rec.items()}
        result["best_score_abs_difference"] = {
            "median": round(float(np.median(diff)), 4),
            "p90": round(float(np.quantile(diff, 0.9)), 4),
            "max": round(float(diff.max()), 4),
        }
        q_ref = YoloxDetector(q, conf=0.05)
        result["reference_test_int8"] = reference(q_ref, args.data)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
