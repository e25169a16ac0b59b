"""Survey-tuned detector vs the shipped one, on encounters the tuned model never saw (JSON).

The 478 Tajik snow-leopard frames (``reid/snowleopard-tajikistan``) carry one
box per frame drawn by eye (``boxes.csv``). Their encounters (one station and
camera on one day: a burst of near-identical frames) are split into K folds;
for each fold the detector is fine-tuned on the other folds' frames (reviewed
boxes, exactly what ``irbis models train detector`` uses) and both models are
judged on the fold's frames: a frame counts when a box at the operating point
lies ON the cat (IoU ≥ 0.3), a box with IoU < 0.1 to the cat is false.
Figures are over all frames (each judged by the model that never trained on
its encounter), per lighting, per encounter. The same run counts boxes on
frames without snow leopards that no one trained on: the camtrapR sample
photos and the Camtrap DP heron burst (a box of the tuned model that the
shipped one does not make there is a new false box, unless it lies on the
annotated heron).

Usage::

    .venv/bin/python bench/detect_train.py [--folds 2] [--epochs 12] [--size 416]
        [--limit N] [--out detect_train.json]

Needs the ``train`` extra (PyTorch CPU) and ``irbis models install mdlite``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)


def tajik_frames(data: Path) -> list[dict[str, object]]:
    """Frames with their drawn box, encounter, lighting and visible part."""
    sl = data / "reid" / "snowleopard-tajikistan"
    with (sl / "labels.csv").open(newline="") as fh:
        labels = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    enc = {k: r["encounter"] for k, r in labels.items()}
    frames = []
    with (sl / "boxes.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            x0, y0, x1, y1 = (float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            frames.append(
                {
                    "key": r["file"],
                    "path": sl / "images" / r["file"],
                    "box": (x0, y0, x1 - x0, y1 - y0),
                    "encounter": enc[r["file"]],
                    "time": f"{labels[r['file']]['date']}T{labels[r['file']]['time']}",
                    "lighting": r["lighting"],
                    "visible": r["visible_part"],
                }
            )
    return frames


def folds_by_encounter(frames: Sequence[dict], k: int, seed: int) -> list[set[str]]:
    """K sets of encounters of about equal frame counts (greedy on shuffled encounters)."""
    sizes: dict[str, int] = defaultdict(int)
    for f in frames:
        sizes[str(f["encounter"])] += 1
    encs = sorted(sizes)
    random.Random(seed).shuffle(encs)
    encs.sort(key=lambda e: -sizes[e])  # stable: big encounters first, ties shuffled
    folds: list[set[str]] = [set() for _ in range(k)]
    load = [0] * k
    for e in encs:
        i = load.index(min(load))
        folds[i].add(e)
        load[i] += sizes[e]
    return folds


def other_frames(data: Path) -> list[tuple[str, Path, list[tuple[float, float, float, float]]]]:
    """camtrapR sample photos (no boxes) and the Camtrap DP heron burst (with its boxes)."""
    out = []
    ctr = data / "cameratrap" / "camtrapR" / "pictures" / "raw_images"
    for p in sorted(p for p in ctr.rglob("*") if p.suffix.lower() == ".jpg"):
        out.append((f"camtrapR/{p.relative_to(ctr)}", p, []))
    dp = data / "cameratrap" / "camtrap-dp-example"
    boxes: dict[str, list] = defaultdict(list)
    media_file: dict[str, str] = {}
    with (dp / "media.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            media_file[r["mediaID"]] = Path(r["filePath"]).name
    with (dp / "observations.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("bboxX") and r.get("mediaID") in media_file:
                boxes[media_file[r["mediaID"]]].append(
                    tuple(float(r[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight"))
                )
    for p in sorted(dp.rglob("*.JPG")) + sorted(dp.rglob("*.jpg")):
        out.append((f"camtrap-dp/{p.name}", p, boxes.get(p.name, [])))
    return out


def judge_all(detector, frames, thresholds) -> dict[float, list]:
    """Run once at the lowest threshold, judge at each (boxes above it)."""
    from irbis.vision.boxeval import fractions, judge_frame
    from irbis.vision.detector import open_image

    lo = min(thresholds)
    out: dict[float, list] = {t: [] for t in thresholds}
    for f in frames:
        im = open_image(f["path"], min_side=1280)
        dets = detector.detect([im], conf=lo)[0]
        w, h = im.size
        for t in thresholds:
            pred = fractions(dets, w, h, t)
            truth = f.get("truth", [f["box"]] if "box" in f else [])
            out[t].append(
                judge_frame(
                    str(f["key"]),
                    pred,
                    truth,
                    groups={k: str(f[k]) for k in ("encounter", "lighting", "visible") if k in f},
                )
            )
    return out


def judge_fused(detector, frames) -> list:
    """The default ``irbis detect`` configuration: learned + motion fused per burst."""
    from datetime import datetime

    from detect_recall import BURST_GAP_S, bursts_by_gap, run_bursts
    from PIL import Image

    from irbis.vision.boxeval import fractions, judge_frame
    from irbis.vision.fusion import FusionParams
    from irbis.vision.motion import MotionDetector

    paths = [Path(f["path"]) for f in frames]
    stamps = [(str(f["encounter"]), datetime.fromisoformat(str(f["time"]))) for f in frames]
    groups = bursts_by_gap(stamps, BURST_GAP_S)
    _learned, _moved, fused = run_bursts(paths, groups, detector, MotionDetector(), FusionParams())
    out = []
    for f, ds, p in zip(frames, fused, paths, strict=True):
        w, h = Image.open(p).size
        pred = fractions(ds, w, h)
        out.append(
            judge_frame(
                str(f["key"]),
                pred,
                [f["box"]],
                groups={k: str(f[k]) for k in ("encounter", "lighting", "visible")},
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--freeze-backbone", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use N frames per fold (smoke runs)")
    ap.add_argument("--only-fold", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write each fold's tuned ONNX here")
    ap.add_argument("--no-fused", action="store_true", help="skip the fused (learned + motion) run")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    from irbis.vision.boxeval import summarize
    from irbis.vision.detector import YoloxDetector, load_detector
    from irbis.vision.registry import verify
    from irbis.vision.train.detector import TrainConfig, TrainingFrame, train_detector

    parent = verify("mdlite")
    frames = tajik_frames(args.data)
    folds = folds_by_encounter(frames, args.folds, args.seed)
    shipped = load_detector("mdlite", threads=args.threads, conf=min(THRESHOLDS))
    cfg = TrainConfig(
        epochs=args.epochs,
        image_size=args.size,
        batch_size=args.batch,
        lr=args.lr,
        freeze_backbone=args.freeze_backbone,
        seed=args.seed,
        threads=args.threads,
    )
    judged: dict[str, dict[float, list]] = {
        "shipped": defaultdict(list),
        "tuned": defaultdict(list),
    }
    fused_judged: dict[str, list] = {"shipped": [], "tuned": []}
    others: dict[str, dict[float, list]] = {"shipped": {}, "tuned": defaultdict(list)}
    other = other_frames(args.data)
    other_items = [{"key": k, "path": p, "truth": b} for k, p, b in other]
    others["shipped"] = judge_all(shipped, other_items, THRESHOLDS)
    training: list[dict] = []
    for i, held_encs in enumerate(folds):
        if args.only_fold is not None and i != args.only_fold:
            continue
        train = [f for f in frames if f["encounter"] not in held_encs]
        held = [f for f in frames if f["encounter"] in held_encs]
        if args.limit:
            train, held = train[: args.limit], held[: args.limit]
        tf = [TrainingFrame(Path(f["path"]), (f["box"],), str(f["encounter"])) for f in train]
        t0 = time.perf_counter()

        def tick(r, i=i) -> None:
            if r.step == r.steps:
                print(
                    f"fold {i} epoch {r.epoch}/{r.epochs} loss {r.loss:.3f} "
                    f"{r.images_per_s:.2f} img/s eta {r.eta_s / 60:.1f} min",
                    file=sys.stderr,
                    flush=True,
                )

        res = train_detector(parent.path, tf, cfg, progress=tick)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tuned.onnx"
            path.write_bytes(res.model.SerializeToString())
            tuned = YoloxDetector(path, name="tuned", conf=min(THRESHOLDS), threads=args.threads)
            for t, rs in judge_all(tuned, held, THRESHOLDS).items():
                judged["tuned"][t].extend(rs)
            for t, rs in judge_all(shipped, held, THRESHOLDS).items():
                judged["shipped"][t].extend(rs)
            for t, rs in judge_all(tuned, other_items, THRESHOLDS).items():
                others["tuned"][t].extend(rs)
            if not args.no_fused:
                for key, det in (("tuned", tuned), ("shipped", shipped)):
                    fused_judged[key].extend(judge_fused(det, held))
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / f"fold{i}.onnx").write_bytes(path.read_bytes())
        training.append(
            {
                "fold": i,
                "train_frames": len(train),
                "train_encounters": len({f["encounter"] for f in train}),
                "held_frames": len(held),
                "held_encounters": len({f["encounter"] for f in held}),
                "wall_s": round(time.perf_counter() - t0, 1),
                **res.summary(),
            }
        )
        print(json.dumps(training[-1]), file=sys.stderr, flush=True)

    def table(by_t: dict[float, list]) -> dict[str, dict]:
        return {str(t): summarize(rs).as_dict() for t, rs in sorted(by_t.items())}

    def other_table(by_t: dict[float, list]) -> dict[str, dict]:
        return {
            str(t): {
                "frames": len(rs),
                "boxes": sum(r.boxes for r in rs),
                "false_boxes": sum(r.false for r in rs),
                "frames_with_false_box": sum(1 for r in rs if r.false),
            }
            for t, rs in sorted(by_t.items())
        }

    report = {
        "benchmark": "detect_train",
        "split": f"{args.folds}-fold by encounter (seed {args.seed}); each frame judged by "
        "a model that never trained on its encounter",
        "cpu_count": os.cpu_count(),
        "config": training[0] if training else {},
        "folds": training,
        "reference": "shipped mdlite on the same frames, same run",
        "shipped": table(judged["shipped"]),
        "tuned": table(judged["tuned"]),
        "fused_default": {
            "what": "irbis detect's default: learned >= 0.1, weaker learned boxes confirmed "
            "by motion, motion boxes in confirmed bursts",
            **{k: summarize(v).as_dict() for k, v in fused_judged.items() if v},
        },
        "other_frames": {
            "what": "camtrapR sample photos + Camtrap DP heron burst (no snow leopards)",
            "shipped": other_table(others["shipped"]),
            "tuned": other_table(others["tuned"]),
        },
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
