"""Recall of the learned, motion and fused detectors on real snow leopards (JSON).

Every one of the 478 frames of ``reid/snowleopard-tajikistan`` shows a snow
leopard. ``box_level`` is the honest figure: a frame counts when a box at the
operating point lies ON the cat (IoU >= 0.3 with the box drawn by eye in
``boxes.csv``), a box with IoU < 0.1 to the cat is false; given per lighting
(day / night_ir / flash), per visible part and per encounter. ``recall`` is the
old frame figure next to it: a frame is *found* when a detector returns any
box at its default operating point, wherever that box is; an encounter is found
when any of its frames is. The same run
checks precision where it matters for fusion: on the camtrapR sample images and
the Camtrap DP heron burst, every fused box that the learned detector alone
(score ≥ 0.1) does not make is listed, with whether it lies on the annotated
animal (Camtrap DP has boxes).

Reference (PyTorch implementation of the default detector, 2026-11-23):
92.3 % of frames at score ≥ 0.1, 76.2 % at ≥ 0.25, 38.9 % at ≥ 0.5.

Usage::

    .venv/bin/python bench/detect_recall.py [--limit N] [--out recall.json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from PIL import Image

from irbis.vision.boxes import Detection, box_iou
from irbis.vision.boxeval import fractions, judge_frame, summarize
from irbis.vision.detector import YoloxDetector, load_detector
from irbis.vision.fusion import FusionParams, fuse_burst
from irbis.vision.motion import MotionDetector

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
REFERENCE = {"0.1": 0.923, "0.25": 0.762, "0.5": 0.389}
BURST_GAP_S = 30.0  # the ingest default for sequences


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def bursts_by_gap(items: Sequence[tuple[str, datetime]], gap_s: float) -> list[list[int]]:
    """Indices of ``items`` (key, time) grouped: same key, consecutive gaps ≤ ``gap_s``."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, (key, _t) in enumerate(items):
        by_key[key].append(i)
    groups: list[list[int]] = []
    for idx in by_key.values():
        idx.sort(key=lambda i: items[i][1])
        cur = [idx[0]]
        for a, b in zip(idx, idx[1:], strict=False):
            if (items[b][1] - items[a][1]).total_seconds() > gap_s:
                groups.append(cur)
                cur = []
            cur.append(b)
        groups.append(cur)
    return groups


def run_bursts(
    paths: Sequence[Path],
    groups: Sequence[Sequence[int]],
    detector: YoloxDetector,
    motion: MotionDetector,
    fusion: FusionParams,
) -> tuple[list[list[Detection]], list[list[Detection]], list[list[Detection]]]:
    """Learned (at the fusion's confirm threshold), motion and fused boxes per path."""
    n = len(paths)
    learned: list[list[Detection]] = [[] for _ in range(n)]
    moved: list[list[Detection]] = [[] for _ in range(n)]
    fused: list[list[Detection]] = [[] for _ in range(n)]
    for group in groups:
        frames = [Image.open(paths[i]) for i in group]
        for im in frames:
            im.load()
        lg = detector.detect(frames, conf=fusion.confirm_threshold)
        mg = motion.detect_burst(frames)
        fg = fuse_burst(lg, mg, fusion)
        for k, i in enumerate(group):
            learned[i], moved[i], fused[i] = lg[k], mg[k], fg[k]
    return learned, moved, fused


def _exif_time(path: Path) -> datetime:
    exif = Image.open(path).getexif()
    raw = exif.get_ifd(0x8769).get(36867) or exif.get(306)
    try:
        return datetime.strptime(str(raw).strip(), "%Y:%m:%d %H:%M:%S")
    except (TypeError, ValueError):
        return datetime.fromtimestamp(path.stat().st_mtime)


def _new_boxes(
    learned: list[Detection], fused: list[Detection], threshold: float
) -> list[Detection]:
    base = [d for d in learned if d.score >= threshold]
    return [f for f in fused if not any(box_iou(f, b) >= 0.5 for b in base)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit", type=int, default=0, help="first N encounters only (0: all)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", default="mdlite", help="learned detector (e.g. a tuned model)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    fusion = FusionParams()
    detector = load_detector(args.model, threads=args.threads, conf=fusion.confirm_threshold)
    motion = MotionDetector()
    t0 = time.perf_counter()

    # -- snow leopards ---------------------------------------------------------------
    sl = args.data / "reid" / "snowleopard-tajikistan"
    rows = _rows(sl / "labels.csv")
    if args.limit:
        keep = sorted({r["encounter"] for r in rows})[: args.limit]
        rows = [r for r in rows if r["encounter"] in keep]
    paths = [sl / r["path"] for r in rows]
    stamps = [(r["encounter"], datetime.fromisoformat(f"{r['date']}T{r['time']}")) for r in rows]
    groups = bursts_by_gap(stamps, BURST_GAP_S)
    learned, moved, fused = run_bursts(paths, groups, detector, motion, fusion)
    n = len(rows)
    enc = sorted({r["encounter"] for r in rows})

    def rates(found: list[bool]) -> dict[str, float]:
        by_enc: dict[str, bool] = defaultdict(bool)
        for r, f in zip(rows, found, strict=True):
            by_enc[r["encounter"]] |= f
        return {
            "frames": round(sum(found) / n, 4),
            "encounters": round(sum(by_enc.values()) / len(enc), 4),
            "frames_found": int(sum(found)),
            "encounters_found": int(sum(by_enc.values())),
        }

    table: dict[str, dict[str, float]] = {}
    for t in (0.1, 0.25, 0.5):
        table[f"learned@{t}"] = rates([any(d.score >= t for d in ds) for ds in learned])
    table["learned (default 0.1)"] = table["learned@0.1"]
    table["motion (default)"] = rates([bool(ds) for ds in moved])
    table["fused (default)"] = rates([bool(ds) for ds in fused])

    # Box level: a frame counts only when a box is ON the cat (IoU >= 0.3 with the
    # box drawn by eye in boxes.csv); a box with IoU < 0.1 to the cat is false.
    truth = {r["file"]: r for r in _rows(sl / "boxes.csv")}
    sizes = [Image.open(p).size for p in paths]

    def box_level(per_frame: list[list[Detection]], min_score: float = 0.0) -> dict:
        judged = []
        for r, ds, (w, h) in zip(rows, per_frame, sizes, strict=True):
            t = truth[Path(r["path"]).name]
            x0, y0, x1, y1 = (float(t[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            pred = fractions(ds, w, h, min_score)
            judged.append(
                judge_frame(
                    r["path"],
                    pred,
                    [(x0, y0, x1 - x0, y1 - y0)],
                    groups={
                        "encounter": r["encounter"],
                        "lighting": t["lighting"],
                        "visible": t["visible_part"],
                    },
                )
            )
        return summarize(judged).as_dict()

    boxes_table = {
        "learned (default 0.1)": box_level(learned, 0.1),
        "learned@0.25": box_level(learned, 0.25),
        "motion (default)": box_level(moved),
        "fused (default)": box_level(fused),
    }
    missed = [r["path"] for r, ds in zip(rows, fused, strict=True) if not ds]
    sl_seconds = time.perf_counter() - t0

    # -- precision guard: camtrapR + Camtrap DP --------------------------------------
    guard: dict[str, object] = {}
    dp = args.data / "cameratrap" / "camtrap-dp-example"
    if dp.exists():
        ids = {r["fileName"]: r["mediaID"] for r in _rows(dp / "media.csv")}
        gt = {r["mediaID"]: r for r in _rows(dp / "observations.csv") if r["bboxX"]}
        files = sorted((dp / "media").glob("*.JPG"))
        lg, _mg, fg = run_bursts(files, [list(range(len(files)))], detector, motion, fusion)
        new_off, new_on = [], 0
        for f, ls, fs in zip(files, lg, fg, strict=True):
            o = gt.get(ids.get(f.name, ""))
            w, h = Image.open(f).size
            for d in _new_boxes(ls, fs, 0.1):
                if o is None:
                    new_off.append(f.name)
                    continue
                x, y = float(o["bboxX"]) * w, float(o["bboxY"]) * h
                animal = (x, y, x + float(o["bboxWidth"]) * w, y + float(o["bboxHeight"]) * h)
                if box_iou(d, animal) >= 0.3:
                    new_on += 1
                else:
                    new_off.append(f.name)
        guard["camtrap-dp"] = {
            "frames": len(files),
            "new_boxes_on_animal": new_on,
            "new_boxes_off_animal": new_off,
        }
    ct = args.data / "cameratrap" / "camtrapR" / "pictures"
    if ct.exists():
        # The same photos appear in several sorted copies (tags differ): keep one of each.
        seen: dict[str, Path] = {}
        for p in sorted(ct.rglob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg"):
                seen.setdefault(hashlib.sha256(Image.open(p).tobytes()).hexdigest(), p)
        files = sorted(seen.values())
        items = [
            (next((s for s in p.parts if s.startswith("Station")), p.parent.name), _exif_time(p))
            for p in files
        ]
        groups_ct = bursts_by_gap(items, BURST_GAP_S)
        lg, mg, fg = run_bursts(files, groups_ct, detector, motion, fusion)
        new = [
            {"file": str(f.relative_to(ct)), "box": [round(v, 1) for v in d.xyxy], "src": d.source}
            for f, ls, fs in zip(files, lg, fg, strict=True)
            for d in _new_boxes(ls, fs, 0.1)
        ]
        guard["camtrapR"] = {
            "frames": len(files),
            "bursts_with_3_or_more": sum(len(g) >= 3 for g in groups_ct),
            "motion_boxes": sum(len(m) for m in mg),
            "new_boxes": new,
        }

    result = {
        "dataset": str(sl),
        "frames": n,
        "encounters": len(enc),
        "bursts": len(groups),
        "reference_pytorch_frames": REFERENCE,
        "operating_points": {
            "learned": "score >= 0.1",
            "motion": "any motion box (MotionDetector defaults)",
            "fused": str(fusion),
        },
        "recall": table,
        "box_level": boxes_table,
        "fused_missed_frames": missed,
        "precision_guard": guard,
        "seconds_snowleopard": round(sl_seconds, 1),
        "seconds_per_frame": round(sl_seconds / max(n, 1), 3),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
