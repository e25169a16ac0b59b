"""The demo's species check and the classify stage's speed next to detect's (JSON).

Simulates the demo season (``irbis.demo.run_demo``, 12 stations by default),
runs the detector on every photo (the reference: images/s of ``irbis
detect`` in the same run, same machine, same photos), then
:func:`irbis.demo.species_check.species_check`: the first half of the
labelled sequences keep their species, the rest are hidden, the head is
trained on crops of the detector's boxes, and ``irbis classify`` proposes the
hidden ones. Reports the training's predicted accuracy (held-out
encounters, per crop) next to the accuracy observed on the hidden sequences,
and classify images/s (embedding every crop of every file not labelled,
the head, writing) next to detect images/s.

Usage::

    nice .venv/bin/python bench/species_demo.py [--stations 12] [--share 0.5] [--no-detect]
        [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from irbis.demo.run import run_demo
from irbis.demo.species_check import species_check
from irbis.store import Project


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=12)
    ap.add_argument("--share", type=float, default=0.5)
    ap.add_argument("--no-detect", action="store_true", help="whole-frame crops, no reference")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    report: dict = {"stations": args.stations, "share_labelled": args.share, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="irbis-species-demo-") as tmp:
        t0 = time.perf_counter()
        run_demo(Path(tmp), n_stations=args.stations, report=False)
        report["simulate_and_ingest_s"] = round(time.perf_counter() - t0, 1)
        with Project.open(Path(tmp) / "project") as p:
            if not args.no_detect:
                from irbis.pipeline.detect_stage import run_detect

                det = run_detect(p).as_dict()
                report["detect"] = {
                    "images_per_s": det["images_per_s"],
                    "frames": det["frames"],
                    "seconds": det["seconds"],
                    "verdicts": det["verdicts"],
                }
            res = species_check(p, share=args.share)
        report["species_check"] = res
        secs = res["classify_seconds"]
        report["classify"] = {
            "images_per_s": round(res["classified_media"] / secs, 3) if secs else None,
            "media": res["classified_media"],
            "seconds": secs,
            "crops_embedded": res["classify"]["crops"].get("embedded", 0),
            "crops_per_s": res["classify"]["images_per_s"],
        }
    text = json.dumps(report, indent=1, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
