"""A second look at every box: a survey-trained verifier on crop embeddings (JSON).

The detector proposes, a verifier decides. Proposals are the boxes of the
shipped detector and of the survey-tuned one (``bench/detect_train.py --keep
DIR`` writes a tuned model per fold) down to a score of 0.01, six per model
per frame. Each proposal is cut out as a square crop with some context and
embedded by the ViT-S/14 encoder (``irbis models install dinov2-s``); a
logistic regression on the embedding, the box's size, shape and place and the
detectors' scores learns "cat" from "rock" on the *training* encounters of the
fold: the drawn boxes and proposals on them (IoU ≥ 0.5) are positives,
proposals off them (IoU < 0.1) negatives. On the fold's held-out encounters the
verified boxes (non-maximum suppression, and no box mostly inside a kept one)
are judged box by box as ``detect_train.py`` judges detectors (a box ON the
cat: IoU ≥ 0.3; false: IoU < 0.1), at several verifier thresholds, alone and
with burst propagation: a weaker verified box is kept when a strongly verified
box in a neighbouring frame of the same encounter (±2 frames, ≤ 120 s) lies at
the same place (IoU ≥ 0.3). The verifier trained on each fold also judges the
proposals on the camtrapR and Camtrap DP frames (no snow leopards).

Usage::

    .venv/bin/python bench/detect_train.py --folds 2 --only-fold K --no-fused --keep models/
    .venv/bin/python bench/detect_verifier.py --tuned models/ [--folds 2] [--out verifier.json]

Needs ``irbis models install mdlite`` and ``irbis models install dinov2-s``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect_train import DATA, folds_by_encounter, other_frames, tajik_frames  # noqa: E402

from irbis.vision.boxeval import Box, iou_xywh, judge_frame, summarize  # noqa: E402

PER_MODEL = 6
LOW = 0.01
VERIFIER_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
PROPAGATION = ((0.9, 0.5), (0.95, 0.5), (0.98, 0.3), (0.98, 0.5))


def proposals(detectors, path: Path) -> list[tuple[Box, int, float]]:
    """Up to PER_MODEL boxes per detector scoring at least LOW: (box, detector index, score)."""
    from irbis.vision.detector import open_image

    im = open_image(path, min_side=1280)
    w, h = im.size
    out: list[tuple[Box, int, float]] = []
    for j, det in enumerate(detectors):
        ds = sorted(det.detect([im], conf=LOW)[0], key=lambda d: -d.score)[:PER_MODEL]
        for d in ds:
            box = (d.x1 / w, d.y1 / h, (d.x2 - d.x1) / w, (d.y2 - d.y1) / h)
            out.append((box, j, float(d.score)))
    return out


def features(embedder, path: Path, boxes: Sequence[tuple[Box, int, float]], n_det: int):
    """Embedding + log area, log aspect, centre and each detector's score, per box."""
    from PIL import Image

    if not boxes:
        return np.zeros((0, embedder.dim + 4 + n_det), dtype=np.float32)
    with Image.open(path) as im:
        emb = embedder.embed(im.convert("RGB"), [b for b, _, _ in boxes])
    geo = []
    for (x, y, w, h), j, s in boxes:
        scores = [0.0] * n_det
        if j >= 0:
            scores[j] = s
        geo.append(
            [np.log(max(w * h, 1e-5)), np.log(max(w, 1e-4) / max(h, 1e-4)), x + w / 2, y + h / 2]
            + scores
        )
    return np.hstack([emb, np.asarray(geo, dtype=np.float32)])


class Logistic:
    """L2-penalised, class-balanced logistic regression (standardised inputs, L-BFGS)."""

    def __init__(self, c: float = 0.1) -> None:
        self.c = c

    def fit(self, x: np.ndarray, y: np.ndarray) -> Logistic:
        from scipy.optimize import minimize

        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mu) / self.sd
        n = len(y)
        wt = np.where(y == 1, 0.5 * n / max(1, y.sum()), 0.5 * n / max(1, n - y.sum()))

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            t = z @ w[:-1] + w[-1]
            p = 1 / (1 + np.exp(-t))
            r = wt * (p - y)
            value = float(
                (wt * (np.logaddexp(0, t) - y * t)).sum() + 0.5 / self.c * w[:-1] @ w[:-1]
            )
            return value, np.append(z.T @ r + w[:-1] / self.c, r.sum())

        res = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B")
        self.w = res.x
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        t = ((x - self.mu) / self.sd) @ self.w[:-1] + self.w[-1]
        return 1 / (1 + np.exp(-t))


def suppress(items: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Highest verifier score first; drop overlapping boxes and boxes mostly inside a kept one."""
    kept: list[tuple[Box, float]] = []
    for box, p in sorted(items, key=lambda t: -t[1]):
        inside = [
            max(0.0, min(box[0] + box[2], k[0] + k[2]) - max(box[0], k[0]))
            * max(0.0, min(box[1] + box[3], k[1] + k[3]) - max(box[1], k[1]))
            / max(box[2] * box[3], 1e-12)
            for k, _ in kept
        ]
        if any(iou_xywh(box, k) > 0.45 for k, _ in kept) or any(f > 0.7 for f in inside):
            continue
        kept.append((box, p))
    return kept


def neighbours(frames: Sequence[dict]) -> dict[str, list[str]]:
    """Frames of the same encounter within two places and 120 s in time order."""
    by_enc: dict[str, list[dict]] = defaultdict(list)
    for f in frames:
        by_enc[str(f["encounter"])].append(f)

    def stamp(f: dict) -> float:
        try:
            return datetime.fromisoformat(str(f["time"])).timestamp()
        except ValueError:
            return 0.0

    out: dict[str, list[str]] = {}
    for fs in by_enc.values():
        fs.sort(key=lambda f: (stamp(f), str(f["key"])))
        for i, f in enumerate(fs):
            out[str(f["key"])] = [
                str(fs[j]["key"])
                for j in range(max(0, i - 2), min(len(fs), i + 3))
                if j != i and abs(stamp(fs[j]) - stamp(f)) <= 120
            ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--tuned", type=Path, default=None, help="folder with fold<K>.onnx")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--only-fold", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--side", type=int, default=168)
    ap.add_argument("--c", type=float, default=0.1, help="inverse L2 penalty")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from irbis.vision.detector import YoloxDetector, load_detector
    from irbis.vision.embed import CropEmbedder

    frames = tajik_frames(args.data)
    by_key = {str(f["key"]): f for f in frames}
    folds = folds_by_encounter(frames, args.folds, args.seed)
    near = neighbours(frames)
    others = other_frames(args.data)
    shipped = load_detector("mdlite", threads=args.threads, conf=LOW)
    embedder = CropEmbedder("dinov2-s", side=args.side, threads=args.threads)
    results: dict[str, list] = defaultdict(list)
    other_false: dict[str, int] = defaultdict(int)
    folds_run = []
    t0 = time.perf_counter()
    for i, held_encs in enumerate(folds):
        if args.only_fold is not None and i != args.only_fold:
            continue
        detectors = [shipped]
        if args.tuned is not None:
            path = args.tuned / f"fold{i}.onnx"
            if not path.exists():
                print(f"{path}: missing; run detect_train.py --keep first", file=sys.stderr)
                return 2
            detectors.append(YoloxDetector(path, name="tuned", conf=LOW, threads=args.threads))
        nd = len(detectors)
        props: dict[str, list] = {}
        feats: dict[str, np.ndarray] = {}
        for n, f in enumerate(frames):
            k = str(f["key"])
            props[k] = proposals(detectors, Path(f["path"]))
            held = f["encounter"] in held_encs
            items = props[k] if held else [(f["box"], -1, 0.0), *props[k]]
            feats[k] = features(embedder, Path(f["path"]), items, nd)
            if n % 50 == 0:
                print(f"fold {i}: {n}/{len(frames)} frames", file=sys.stderr, flush=True)
        xs, ys = [], []
        for f in frames:
            if f["encounter"] in held_encs:
                continue
            k = str(f["key"])
            items = [(f["box"], -1, 0.0), *props[k]]
            for (box, j, _s), x in zip(items, feats[k], strict=True):
                v = 1.0 if j < 0 else iou_xywh(box, f["box"])
                if v >= 0.5 or v < 0.1:
                    xs.append(x)
                    ys.append(1.0 if v >= 0.5 else 0.0)
        verifier = Logistic(args.c).fit(np.asarray(xs), np.asarray(ys))
        held_keys = [str(f["key"]) for f in frames if f["encounter"] in held_encs]
        prob = {k: verifier.predict(feats[k]) if len(feats[k]) else np.zeros(0) for k in held_keys}

        def judged(k: str, boxes: list[Box]):
            f = by_key[k]
            return judge_frame(
                k,
                boxes,
                [f["box"]],
                groups={g: str(f[g]) for g in ("encounter", "lighting", "visible")},
            )

        for k in held_keys:
            for j, det in enumerate(("shipped", "tuned")[:nd]):
                for t in (0.1, 0.2, 0.3):
                    boxes = [b for b, jj, s in props[k] if jj == j and s >= t]
                    results[f"{det}@{t}"].append(judged(k, boxes))
            scored = [(b, float(p)) for (b, _j, _s), p in zip(props[k], prob[k], strict=True)]
            for t in VERIFIER_THRESHOLDS:
                kept = suppress([(b, p) for b, p in scored if p >= t])
                results[f"verified@{t}"].append(judged(k, [b for b, _ in kept]))
        for hi, lo in PROPAGATION:
            strong = {
                k: suppress(
                    [
                        (b, float(p))
                        for (b, _j, _s), p in zip(props[k], prob[k], strict=True)
                        if p >= hi
                    ]
                )
                for k in held_keys
            }
            for k in held_keys:
                extra = [
                    (b, float(p))
                    for (b, _j, _s), p in zip(props[k], prob[k], strict=True)
                    if lo <= p < hi
                    and any(
                        iou_xywh(b, s) >= 0.3 for q in near[k] if q in strong for s, _ in strong[q]
                    )
                ]
                kept = suppress(strong[k] + extra)
                results[f"verified@{hi}+burst@{lo}"].append(judged(k, [b for b, _ in kept]))
        for _key, path, truth in others:
            items = proposals(detectors, path)
            if not items:
                continue
            p = verifier.predict(features(embedder, path, items, nd))
            for t in VERIFIER_THRESHOLDS:
                kept = suppress(
                    [(b, float(q)) for (b, _j, _s), q in zip(items, p, strict=True) if q >= t]
                )
                other_false[f"verified@{t}"] += sum(
                    1 for b, _ in kept if all(iou_xywh(b, tb) < 0.1 for tb in truth)
                )
            for j, det in enumerate(("shipped", "tuned")[:nd]):
                for t in (0.1, 0.2, 0.3):
                    other_false[f"{det}@{t}"] += sum(
                        1
                        for b, jj, s in items
                        if jj == j and s >= t and all(iou_xywh(b, tb) < 0.1 for tb in truth)
                    )
        folds_run.append(
            {
                "fold": i,
                "held_frames": len(held_keys),
                "train_examples": len(ys),
                "train_positives": int(sum(ys)),
            }
        )

    def brief(rs: list) -> dict:
        s = summarize(rs).as_dict()
        keep = ("frames", "box_recall", "false_boxes_per_frame", "encounters", "encounters_found")
        out = {k: s[k] for k in keep if k in s}
        out["box_recall_by_lighting"] = {
            g: v.get("box_recall") for g, v in s.get("by", {}).get("lighting", {}).items()
        }
        return out

    report = {
        "benchmark": "detect_verifier",
        "split": f"{args.folds}-fold by encounter (seed {args.seed}), folds as detect_train.py; "
        "the verifier of each fold is trained on the other folds' encounters only",
        "cpu_count": os.cpu_count(),
        "proposals": f"up to {PER_MODEL} boxes per detector per frame scoring >= {LOW}",
        "embedder": f"{embedder.name} {embedder.version}, {args.side} px crops",
        "folds": folds_run,
        "wall_s": round(time.perf_counter() - t0, 1),
        "reference": "shipped and tuned detectors alone on the same frames, same run",
        "results": {k: brief(v) for k, v in results.items()},
        "other_frames_false_boxes": dict(other_false),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
