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

With ``--results`` (the JSON of ``irbis reid evaluate --json --per-query``
on the same labels and protocol) it also reports the matcher's top-1 and top-5
on the judged queries that are matchable, on those that are not, and on the
queries not judged (Cat1).

    .venv/bin/python bench/reid_ceiling.py [--protocol encounter|station] [--results R.json]
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
    ap.add_argument("--results", type=Path, help="evaluate --json --per-query output")
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
    is_matchable: dict[str, bool] = {}
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
        ok = any(compatible(qv, views.get(g["path"], "any")) for g in gallery)
        matchable[cat] += ok
        is_matchable[q["path"]] = ok
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
    if args.results:
        out["matcher"] = _matcher_split(args.results, args.data, is_matchable, set(views))
    print(json.dumps(out, indent=2))


def _matcher_split(
    results: Path, data: Path, is_matchable: dict[str, bool], judged: set[str]
) -> dict:
    """The matcher's top-1/top-5 on judged matchable and not matchable queries.

    Queries of individuals not in the views file (Cat1) are reported apart.
    """
    doc = json.loads(results.read_text())
    if doc.get("protocol") not in (None, "encounter", "station"):
        sys.exit(f"{results}: protocol {doc.get('protocol')!r} is not encounter or station")
    if "per_query" not in doc:
        sys.exit(f"{results}: no per_query list; run irbis reid evaluate --json --per-query")
    split: dict[str, list[tuple[bool, bool]]] = {
        "matchable": [],
        "not_matchable": [],
        "not_judged": [],
    }
    for rec in doc["per_query"]:
        path = Path(rec["query"])
        if path.is_absolute():
            path = path.relative_to(data.resolve()) if path.is_relative_to(data.resolve()) else path
        key = path.as_posix()
        if rec["open_set"] or key not in is_matchable:
            continue
        hit = (rec["ranked"][:1] == [rec["truth"]], rec["truth"] in rec["ranked"][:5])
        if key not in judged:
            split["not_judged"].append(hit)
        else:
            split["matchable" if is_matchable[key] else "not_matchable"].append(hit)
    return {
        k: {
            "queries": len(v),
            "top1": sum(h for h, _ in v) / len(v) if v else None,
            "top5": sum(h for _, h in v) / len(v) if v else None,
        }
        for k, v in split.items()
    }


if __name__ == "__main__":
    main()
