"""How high can any pattern matcher score on the Tajik set? An upper bound.

A rosette matcher can only name the right cat when another encounter of that
cat shows the same part of its coat. ``bench/reid_views.csv`` records, frame by
frame, which view each photo of the ten cats other than Cat1 shows, judged by
eye from the photos (one person, one pass; not part of the data set's labels):

- ``left`` / ``right``: that flank, most of it in frame;
- ``front`` / ``rear``: face and chest, or hindquarters and tail from behind;
- ``part``: a close-up or a piece of body at the frame's edge, side unclear;
- ``tiny``: the cat is too small or dark for rosettes to show;
- ``any``: not judged frame by frame.

Cat1 (over half the queries, seen at nine stations) and the two cats seen
once are not in the file and count as ``any``.

A query counts as *matchable* when it is not ``tiny`` and some gallery row of
its own individual (other encounters, or other stations under ``--protocol
station``) is not ``tiny`` and shows a compatible view: the same view, or
either is ``any``, or either is ``part`` and the other a flank or ``part``.
That is generous on purpose (a ``part`` close-up of a leg "could" match any
flank, day photos are allowed to match infrared ones), so the fraction of
matchable closed-set queries bounds from above the top-1 a matcher can reach
from the coat alone; anything above it comes from the scene or from guessing.

    .venv/bin/python bench/reid_ceiling.py [--protocol encounter|station]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/reid/snowleopard-tajikistan"
VIEWS = Path(__file__).resolve().with_name("reid_views.csv")
FLANK = {"left", "right", "part"}


def compatible(a: str, b: str) -> bool:
    """Could a photo showing view ``a`` be matched to one showing ``b`` at all?"""
    if "tiny" in (a, b):
        return False
    if "any" in (a, b) or a == b:
        return True
    return ("part" in (a, b)) and a in FLANK and b in FLANK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--views", type=Path, default=VIEWS)
    ap.add_argument("--protocol", choices=("encounter", "station"), default="encounter")
    args = ap.parse_args()
    if not (args.data / "labels.csv").exists():
        sys.exit(f"no labels.csv under {args.data} (see ../shared/data/README.md)")
    with (args.data / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with args.views.open(newline="") as fh:
        views = {r["path"]: r["view"] for r in csv.DictReader(fh)}
    unknown = set(views) - {r["path"] for r in rows}
    if unknown:
        sys.exit(f"{args.views}: {len(unknown)} paths not in labels.csv, e.g. {min(unknown)}")
    key = "station" if args.protocol == "station" else "encounter"
    closed = Counter()
    matchable = Counter()
    for q in rows:
        qv = views.get(q["path"], "any")
        gallery = [
            g
            for g in rows
            if g["individual_id"] == q["individual_id"]
            and g[key] != q[key]
            and g["encounter"] != q["encounter"]
        ]
        if not gallery:
            continue  # open set: no right answer in the gallery
        cat = q["individual_id"]
        closed[cat] += 1
        matchable[cat] += any(compatible(qv, views.get(g["path"], "any")) for g in gallery)
    n = sum(closed.values())
    per = {c: {"queries": closed[c], "matchable": matchable[c]} for c in sorted(closed)}
    others = [c for c in closed if c != "Cat1"]
    out = {
        "protocol": args.protocol,
        "closed_set_queries": n,
        "matchable": sum(matchable.values()),
        "top1_ceiling": sum(matchable.values()) / n if n else None,
        "others_than_cat1": {
            "queries": sum(closed[c] for c in others),
            "matchable": sum(matchable[c] for c in others),
        },
        "views_judged": dict(Counter(views.values())),
        "per_individual": per,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
