"""Default, survey-tuned and fused reid rankings on the Tajik set, one command.

Encounter protocol (no frame is matched against its own encounter), crops
from ``boxes.csv`` (the burst's motion mask inside the box; ``--masks`` uses
the labels' rough hand masks instead). Every frame is matched once
(:func:`irbis.reid.ranking_eval.collect_matches`); then, per encounter and
per frame, the untrained ranking, the pair model fitted on *other*
individuals' pairs (leave-one-individual-out) and their reciprocal-rank
fusion are scored: top-1, top-5, mAP, macro top-1 and top-1 per individual
(:func:`irbis.reid.ranking_eval.evaluate_rankings`). Catalogue-free
clustering with the pair model follows (:mod:`irbis.reid.pair_cluster`).

    .venv/bin/python bench/reid_tuned.py [--masks] [--cache /tmp/reid-tuned] > tuned.json

``--cache`` keeps the matched season (derived numbers only) between runs.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from irbis.reid import EvalOptions, read_labels
from irbis.reid.annotations import attach_boxes, read_boxes
from irbis.reid.evaluate import extract_all
from irbis.reid.ranking_eval import (
    SurveyMatches,
    collect_matches,
    evaluate_rankings,
    timestamp,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/reid/snowleopard-tajikistan"


def fewer_frames(sm: SurveyMatches, k: int) -> SurveyMatches:
    """The same season with at most ``k`` query frames per encounter, evenly spaced."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(sm.encounter):
        groups.setdefault(e, []).append(i)
    rows = sorted(
        m[j]
        for m in groups.values()
        for j in set(np.linspace(0, len(m) - 1, min(k, len(m))).round().astype(int).tolist())
    )
    return SurveyMatches(
        [sm.frames[i] for i in rows],
        [sm.encounter[i] for i in rows],
        [sm.individual[i] for i in rows],
        [sm.station[i] for i in rows],
        [sm.when[i] for i in rows] if sm.when else [],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--masks", action="store_true", help="crop to the labels' hand masks")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--l2", type=float, default=1.0, help="ridge of the pair model")
    ap.add_argument("--no-cluster", action="store_true")
    ap.add_argument(
        "--frames-per-encounter",
        type=int,
        default=None,
        help="query only this many frames of each encounter (evenly spaced; gallery complete)",
    )
    args = ap.parse_args()
    if not (args.data / "boxes.csv").exists():
        sys.exit(f"no boxes.csv under {args.data} (see ../shared/data/README.md)")
    cv2.setNumThreads(1)
    anns = read_labels(args.data / "labels.csv")
    if not args.masks:
        anns = [replace(a, mask=None) for a in anns]
    anns, _ = attach_boxes(anns, read_boxes(args.data / "boxes.csv"))
    name = f"matches_{'masks' if args.masks else 'motion'}.json"
    cache = args.cache / name if args.cache else None
    t0 = time.perf_counter()
    if cache is not None and cache.exists():
        sm = SurveyMatches.from_dict(json.loads(cache.read_text()))
        if not any(t is not None for t in sm.when):
            sm.when = [timestamp(a) for a in anns]
    else:
        feats, problems = extract_all(anns, EvalOptions())
        if problems:
            print("unreadable:", problems, file=sys.stderr)

        def tick(done: int, total: int) -> None:
            if done % 50 == 0 or done == total:
                print(f"matched {done}/{total}", file=sys.stderr, flush=True)

        sm = collect_matches(anns, feats, progress=tick)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(sm.as_dict()))
    match_s = time.perf_counter() - t0
    if args.frames_per_encounter:
        sm = fewer_frames(sm, args.frames_per_encounter)
    out: dict = {
        "data": str(args.data),
        "crops": "boxes + hand masks" if args.masks else "boxes + burst motion mask",
        "frames": len(sm.frames),
        "encounters": len(set(sm.encounter)),
        "match_seconds": round(match_s, 1),
        "l2": args.l2,
    }
    t0 = time.perf_counter()
    out.update(evaluate_rankings(sm, l2=args.l2))
    out["ranking_seconds"] = round(time.perf_counter() - t0, 2)
    for unit in ("encounter", "frame"):
        for m in ("default", "tuned", "fusion"):
            r = out[unit][m]
            print(
                unit,
                m,
                {k: r[k] for k in ("queries", "top1", "top5", "mAP", "macro_top1")},
                file=sys.stderr,
            )
    if not args.no_cluster:
        from irbis.reid.pair_cluster import evaluate_clustering

        out["clustering"] = evaluate_clustering(sm, l2=args.l2)
        print("clustering", out["clustering"]["summary"], file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
