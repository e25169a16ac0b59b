"""Cost of learning the survey on a CPU: training seconds per image per epoch, inference images/s.

Training is timed on real Tajik frames with their drawn boxes at 416 and 640
px input (whole network, and neck + head only), a few steps each after one
warm-up step. Inference of a tuned model (one epoch, so it differs from its
parent) is timed next to the shipped ``mdlite`` in the same run, on the same
frames, same engine and threads: the reference. The issue's budget, 300
reviewed boxes × 20 epochs under 2 hours on a 2-core laptop, is 1.2 s per
image per epoch; ``budget_300x20_h`` extrapolates each measured rate.

Usage::

    .venv/bin/python bench/detect_train_speed.py [--steps 4] [--threads 2] [--out speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect_train import DATA, tajik_frames  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=4, help="timed training steps per setting")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=48, help="frames timed for inference")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from irbis.vision.detector import YoloxDetector, load_detector, open_image
    from irbis.vision.registry import verify
    from irbis.vision.train.detector import TrainConfig, TrainingFrame, train_detector

    torch.set_num_threads(args.threads)
    parent = verify("mdlite")
    frames = tajik_frames(args.data)
    n = args.batch * (args.steps + 1)
    tf = [
        TrainingFrame(Path(f["path"]), (f["box"],), str(f["encounter"]))
        for f in frames[:: max(1, len(frames) // n)][:n]
    ]
    training = {}
    tuned_model = None
    for size in (416, 640):
        for freeze in (False, True):
            stamps: list[float] = []
            cfg = TrainConfig(
                epochs=1, image_size=size, batch_size=args.batch, threads=args.threads,
                freeze_backbone=freeze,
            )  # fmt: skip
            res = train_detector(
                parent.path, tf, cfg, progress=lambda r, s=stamps: s.append(time.perf_counter())
            )
            # Drop the first step (allocations, thread pools); time the rest.
            per_image = (stamps[-1] - stamps[0]) / (args.batch * (len(stamps) - 1))
            key = f"{size}px" + (" neck+head" if freeze else "")
            training[key] = {
                "seconds_per_image_epoch": round(per_image, 4),
                "budget_300x20_h": round(per_image * 300 * 20 / 3600, 2),
            }
            if size == 416 and not freeze:
                tuned_model = res.model
            print(key, training[key], file=sys.stderr, flush=True)

    images = [open_image(f["path"], min_side=1280) for f in frames[: args.frames]]
    inference = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tuned.onnx"
        path.write_bytes(tuned_model.SerializeToString())
        detectors = {
            "mdlite (reference)": load_detector("mdlite", threads=args.threads, conf=0.1),
            "tuned": YoloxDetector(path, name="tuned", conf=0.1, threads=args.threads),
        }
        for det in detectors.values():
            det.detect(images[:2])  # warm-up
        for _round in range(2):  # interleaved, so both see the same machine state
            for name, det in detectors.items():
                t0 = time.perf_counter()
                det.detect(images, batch_size=1)
                rate = len(images) / (time.perf_counter() - t0)
                inference.setdefault(name, {"engine": det.engine, "images_per_s": []})
                inference[name]["images_per_s"].append(round(rate, 2))
    ref = max(inference["mdlite (reference)"]["images_per_s"])
    tun = max(inference["tuned"]["images_per_s"])
    report = {
        "benchmark": "detect_train_speed",
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "batch": args.batch,
        "training": training,
        "budget": "300 boxes x 20 epochs < 2 h on 2 cores: <= 1.2 s per image per epoch",
        "inference": inference,
        "tuned_vs_reference": round(tun / ref, 3),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
