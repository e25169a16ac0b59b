"""Does a small image make the default detector call a frame blank? (JSON)

Two measurements, same run:

1. *Size sweep on frames known to hold a cat.* A seeded sample of the
   snow-leopard frames of ``reid/snowleopard-tajikistan`` (each has one cat,
   with a box drawn by eye) is shrunk to a longer side of 100, 160, 240, 320,
   480 px and run at full size through the learned default detector at its
   operating point. A frame counts when a box overlaps the drawn cat
   (IoU >= 0.3). Only the size changes between rows, so a drop in the
   rate is the size's doing.
2. *camtrapR sample images* (100x75 thumbnails, every one sorted into a
   species folder by people): how many get any box at the operating point.

Usage::

    .venv/bin/python bench/blank_small_images.py [--n 120] [--seed 15] [--out small.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

from PIL import Image

from irbis.vision.boxes import Detection, box_iou
from irbis.vision.detector import DEFAULT_THRESHOLD, load_detector, open_image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SIDES = (100, 160, 240, 320, 480)


def shrink(image: Image.Image, side: int) -> Image.Image:
    """The image with its longer side ``side`` px (as a camera's thumbnail would be)."""
    k = side / max(image.size)
    if k >= 1:
        return image
    size = (max(1, round(image.width * k)), max(1, round(image.height * k)))
    return image.resize(size, Image.Resampling.LANCZOS)


def on_cat(
    boxes: list[Detection], truth: tuple[float, float, float, float], w: int, h: int
) -> bool:
    x0, y0, x1, y1 = truth
    gt = Detection(x0 * w, y0 * h, x1 * w, y1 * h, 1.0, "animal", "truth")
    return any(box_iou(b, gt) >= 0.3 for b in boxes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="Tajik frames sampled (seeded)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    tajik = DATA / "reid" / "snowleopard-tajikistan"
    camtrapr = DATA / "cameratrap" / "camtrapR" / "pictures" / "sample_images_species_dir"
    if not tajik.exists() or not camtrapr.exists():
        print(f"real data not found under {DATA}", file=sys.stderr)
        return 2
    det = load_detector("mdlite")
    thr = DEFAULT_THRESHOLD
    with (tajik / "boxes.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = {p.name: p for p in tajik.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")}
    rows = [r for r in rows if r["file"] in paths]
    random.Random(args.seed).shuffle(rows)
    rows = rows[: args.n]
    t0 = time.perf_counter()
    found = {"full": 0, **{str(s): 0 for s in SIDES}}
    any_box = dict.fromkeys(found, 0)
    for r in rows:
        im = open_image(paths[r["file"]])
        truth = tuple(float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
        variants = {"full": im, **{str(s): shrink(im, s) for s in SIDES}}
        keys = list(variants)
        results = det.detect([variants[k] for k in keys], conf=thr)
        for k, boxes in zip(keys, results, strict=True):
            v = variants[k]
            found[k] += on_cat(boxes, truth, v.width, v.height)  # type: ignore[arg-type]
            any_box[k] += bool(boxes)
    sweep = [
        {
            "longer_side": k,
            "frames": len(rows),
            "box_on_cat": found[k],
            "box_on_cat_rate": round(found[k] / len(rows), 3),
            "any_box_rate": round(any_box[k] / len(rows), 3),
        }
        for k in found
    ]
    small = sorted(p for p in camtrapr.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    images = [open_image(p) for p in small]
    boxed = det.detect(images, conf=thr)
    per_species: dict[str, list[int]] = {}
    for p, b in zip(small, boxed, strict=True):
        per_species.setdefault(p.parent.name, [0, 0])
        per_species[p.parent.name][0] += 1
        per_species[p.parent.name][1] += bool(b)
    doc = {
        "detector": f"{det.name}@{det.version}",
        "threshold": thr,
        "tajik_size_sweep": sweep,
        "camtrapr": {
            "images": len(images),
            "sizes": sorted({f"{im.width}x{im.height}" for im in images}),
            "with_box": sum(bool(b) for b in boxed),
            "per_species_folder": {
                k: {"images": v[0], "with_box": v[1]} for k, v in sorted(per_species.items())
            },
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
