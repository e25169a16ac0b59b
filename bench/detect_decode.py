"""Decoding large camera-trap JPEGs for the detector: full decode vs reduced DCT decode (JSON).

Real cards hold 12-26 megapixel frames; the detector sees 640 px. For each
of a few real frames (the Camtrap DP heron burst and every 60th snow-leopard
frame) this bench builds a 3× larger JPEG (6144×4320 or 3840×2880, quality
92, in a temporary folder), then times, per frame, decode + letterbox with a
full decode (the reference) and with :func:`irbis.vision.detector.open_image`
at ``min_side=1280`` (JPEG decoded at 1/2..1/8 scale, never below 1280 px),
and compares the detections ≥ 0.1 of both: largest score difference and
smallest IoU of matched boxes.

Usage::

    .venv/bin/python bench/detect_decode.py [--out decode.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from irbis.vision.boxes import box_iou
from irbis.vision.detector import load_detector, open_image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--scale", type=int, default=3, help="enlargement of the real frames")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    det = load_detector("mdlite", conf=0.05)
    files = sorted((args.data / "cameratrap" / "camtrap-dp-example" / "media").glob("*.JPG"))
    files += sorted((args.data / "reid" / "snowleopard-tajikistan" / "images").glob("*.JPG"))[::60]
    rows = []
    t_full = t_draft = 0.0
    worst_score, worst_iou, flips = 0.0, 1.0, 0
    with tempfile.TemporaryDirectory(prefix="irbis-decode-") as tmp:
        for f in files:
            with Image.open(f) as im:
                frame = im.convert("RGB")
            big = Path(tmp) / f.name
            frame.resize(
                (frame.width * args.scale, frame.height * args.scale), Image.Resampling.LANCZOS
            ).save(big, quality=92)
            t0 = time.perf_counter()
            full = open_image(big)
            ta, ra = det.preprocess(full)
            t1 = time.perf_counter()
            small = open_image(big, min_side=2 * det.input_size)
            tb, rb = det.preprocess(small)
            t2 = time.perf_counter()
            t_full += t1 - t0
            t_draft += t2 - t1
            preds = det.infer(ta[None])[0], det.infer(tb[None])[0]
            a = det.postprocess(preds[0], ra)
            k = full.width / small.width  # boxes of the reduced frame, in full-frame pixels
            b = [
                d.with_(x1=d.x1 * k, y1=d.y1 * k, x2=d.x2 * k, y2=d.y2 * k)
                for d in det.postprocess(preds[1], rb)
            ]
            pairs = []
            for d in a:
                if d.score < 0.1:
                    continue
                m = max(b, key=lambda e: box_iou(d, e), default=None)
                if m is None:
                    pairs.append(None)
                    continue
                worst_score = max(worst_score, abs(m.score - d.score))
                worst_iou = min(worst_iou, box_iou(d, m))
                pairs.append((round(d.score, 4), round(m.score, 4), round(box_iou(d, m), 4)))
            max_a = max((d.score for d in a), default=0.0)
            max_b = max((d.score for d in b), default=0.0)
            flips += (max_a >= 0.1) != (max_b >= 0.1)
            rows.append(
                {
                    "frame": f.name,
                    "size": list(full.size),
                    "decoded": list(small.size),
                    "ms_full": round(1000 * (t1 - t0), 1),
                    "ms_reduced": round(1000 * (t2 - t1), 1),
                    "matched_boxes": pairs,
                }
            )
    n = len(rows)
    result = {
        "frames": n,
        "ms_per_frame_full_decode_letterbox": round(1000 * t_full / n, 1),
        "ms_per_frame_reduced_decode_letterbox": round(1000 * t_draft / n, 1),
        "speedup": round(t_full / t_draft, 2),
        "worst_score_difference": round(worst_score, 4),
        "worst_iou": round(worst_iou, 4),
        "frames_changing_side_of_0.1": flips,
        "per_frame": rows,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
