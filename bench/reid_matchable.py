"""Which Tajik queries could a coat matcher answer at all? Two passes by eye.

A rosette matcher can only name the right cat when another encounter of that
cat shows the same part of its coat. ``bench/reid_views.csv`` records, for each
of the 216 photos of the ten cats other than Cat1, which view it shows, judged
by eye in two independent passes (``first_pass``: contact sheets of the whole
set; ``second_pass``: each photo enlarged, with a second plausible view after
``|``; neither pass saw the other's calls). Neither is part of the data set's
labels. Views:

- ``left`` / ``right``: that flank, most of it in frame (head pointing to the
  image's left shows the left flank);
- ``front`` / ``rear``: face and chest, or hindquarters seen from behind;
- ``part``: a piece of body at the frame's edge or a close-up, side unclear;
- ``tiny``: too small or dark for rosettes;
- ``any``: not judged photo by photo (Cat4's night encounter in the first pass).

Cat1 and the two cats seen once are not in the file.

Two figures per protocol:

``generous``, per pass: the share of closed-set queries whose cat shows a
*compatible* view in another encounter (same view, or ``part`` against a flank,
or ``any``), counting every Cat1 query as matchable. It bounds the top-1 of a
coat matcher from above, but only as well as the pass is right: the two passes
disagree on left against right for 14 photos and on flank against part or rear
for many more, and the bound moves from 0.76 to 0.96 between them. It proves
nothing about the goal; it shows how much a ceiling depends on who looks.

``certain``: queries whose flank both passes call the same (first call of the
second pass), with a photo in another encounter (``--protocol station``:
another station) of the same cat whose flank both passes call the same. These
have a same-flank photo to be found, beyond reasonable doubt; with
``--results`` (the JSON of ``irbis reid evaluate --json --per-query`` on the
same labels and protocol) the matcher's top-1/top-5 on them shows how much it
misses that it could have found.

    .venv/bin/python bench/reid_matchable.py [--protocol encounter|station] [--results R.json]
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
PASSES = ("first_pass", "second_pass")


def compatible(a: str, b: str) -> bool:
    """Could a photo showing view ``a`` be matched to one showing ``b`` at all?

    Each side may list several views (``left|part``): any compatible pair counts.
    """
    if "|" in a or "|" in b:
        return any(compatible(x, y) for x in a.split("|") for y in b.split("|"))
    if "tiny" in (a, b):
        return False
    if "any" in (a, b) or a == b:
        return True
    return ("part" in (a, b)) and a in FLANK and b in FLANK


def agreed_flank(row: dict[str, str]) -> str | None:
    """``left``/``right`` when both passes call this flank first, else ``None``."""
    first, second = row["first_pass"], row["second_pass"].split("|")[0]
    return first if first in ("left", "right") and first == second else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--views", type=Path, default=VIEWS)
    ap.add_argument("--protocol", choices=("encounter", "station"), default="encounter")
    ap.add_argument("--results", type=Path, help="irbis reid evaluate --json --per-query output")
    args = ap.parse_args()
    if not (args.data / "labels.csv").exists():
        sys.exit(f"no labels.csv under {args.data} (see ../shared/data/README.md)")
    with (args.data / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with args.views.open(newline="") as fh:
        views = {r["path"]: r for r in csv.DictReader(fh)}
    unknown = set(views) - {r["path"] for r in rows}
    if unknown:
        sys.exit(f"{args.views}: {len(unknown)} paths not in labels.csv, e.g. {min(unknown)}")
    key = "station" if args.protocol == "station" else "encounter"
    galleries = {
        q["path"]: [
            g
            for g in rows
            if g["individual_id"] == q["individual_id"]
            and g[key] != q[key]
            and g["encounter"] != q["encounter"]
        ]
        for q in rows
    }
    closed = [q for q in rows if galleries[q["path"]]]  # the others are open-set queries

    def view(path: str, which: str) -> str:
        return views[path][which] if path in views else "any"

    generous = {}
    for which in PASSES:
        n_ok = sum(
            any(
                compatible(view(q["path"], which), view(g["path"], which))
                for g in galleries[q["path"]]
            )
            for q in closed
        )
        generous[which] = {"matchable": n_ok, "top1_bound": n_ok / len(closed) if closed else None}
    agreed = {p: f for p, r in views.items() if (f := agreed_flank(r))}
    certain = [
        q["path"]
        for q in closed
        if q["path"] in agreed
        and any(agreed.get(g["path"]) == agreed[q["path"]] for g in galleries[q["path"]])
    ]
    lr_conflicts = sum(
        1
        for r in views.values()
        if {r["first_pass"], r["second_pass"].split("|")[0]} == {"left", "right"}
    )
    out: dict = {
        "protocol": args.protocol,
        "closed_set_queries": len(closed),
        "judged_photos": len(views),
        "left_right_conflicts": lr_conflicts,
        "agreed_flank_photos": len(agreed),
        "generous": generous,
        "certain_queries": len(certain),
        "certain_by_individual": dict(
            sorted(Counter(views[p]["individual_id"] for p in certain).items())
        ),
    }
    if args.results:
        out["matcher_on_certain"] = _figures(args.results, args.data, set(certain))
    print(json.dumps(out, indent=2))


def _figures(results: Path, data: Path, certain: set[str]) -> dict:
    """The matcher's top-1/top-5 on the certain queries (paths made relative to ``data``)."""
    doc = json.loads(results.read_text())
    if "per_query" not in doc:
        sys.exit(f"{results}: no per_query list; run irbis reid evaluate --json --per-query")
    root = data.resolve()
    hits: list[tuple[bool, bool]] = []
    for rec in doc["per_query"]:
        path = Path(rec["query"])
        if path.is_absolute() and path.is_relative_to(root):
            path = path.relative_to(root)
        if path.as_posix() in certain:
            hits.append((rec["ranked"][:1] == [rec["truth"]], rec["truth"] in rec["ranked"][:5]))
    n = len(hits)
    return {
        "queries": n,
        "top1": sum(h for h, _ in hits) / n if n else None,
        "top5": sum(h for _, h in hits) / n if n else None,
    }


if __name__ == "__main__":
    main()
