"""Accuracy of the reid matcher on the real Tajik snow-leopard images.

Runs the evaluation harness (protocol ``encounter`` unless ``--protocol
station``) with the default method and with the plain SIFT baseline on the
same images and prints one JSON document with both figure sets and which
figures the default wins. ``bench/reid_matchable.py`` narrows the figures to
the queries that certainly have a same-flank photo in another encounter.

    .venv/bin/python bench/reid_accuracy.py [--protocol encounter|station] [--max-queries N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

from irbis.reid import EvalOptions, evaluate, read_labels

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/reid/snowleopard-tajikistan"
KEYS = ("top1", "top5", "mAP", "macro_top1", "ms_per_query", "pair_precision", "pair_recall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--protocol", choices=("encounter", "station"), default="encounter")
    args = ap.parse_args()
    if not (args.data / "labels.csv").exists():
        sys.exit(f"no labels.csv under {args.data} (see ../shared/data/README.md)")
    # One OpenCV thread: matching is many tiny calls, where thread start-up and
    # contention on a shared machine cost more than they give.
    cv2.setNumThreads(1)
    anns = read_labels(args.data / "labels.csv")
    out: dict = {"data": str(args.data), "protocol": args.protocol, "max_queries": args.max_queries}
    for method in ("default", "baseline"):
        r = evaluate(
            anns, EvalOptions(method=method, protocol=args.protocol, max_queries=args.max_queries)
        )
        r.pop("per_query")
        out[method] = r
        shown = {k: round(r[k], 3) for k in (*KEYS, "majority_rate")}
        print(method, shown, file=sys.stderr, flush=True)
    lower_better = {"ms_per_query"}
    out["default_wins"] = {
        k: (out["default"][k] < out["baseline"][k])
        if k in lower_better
        else (out["default"][k] > out["baseline"][k])
        for k in KEYS
    }
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
