"""Detection on a local Ray cluster: images/s for 1, 2 .. N workers next to one process.

Builds a project of real Tajik snow-leopard photos (times from the file names, so
ingest groups them into bursts), then in the same run, each on a fresh copy:

* ``single``: ``run_detect`` in this process, inference threads = all cores
  (what ``irbis detect`` does on a laptop), and ``single_1thread`` with one thread;
* ``ray_W``: ``run_detect_ray`` on a local Ray instance with W workers (one core
  and one inference thread each), the Ray start-up timed apart.

Per Ray run: ``overhead_frac`` = 1 - (sum of the seconds workers spent inside
the batches) / (W x wall seconds of the run): everything that is not a worker
detecting (scheduling, transfer of results, the driver's writes not overlapped,
idle workers at the tail); ``task_rtt_ms``: an empty Ray task's round trip.
Rows written are compared with the single-process run's (``same_rows``).

    .venv/bin/python bench/ray_detect.py --photos 128 --batch 64 --workers 1,2

Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.cluster import DetectorSpec, run_detect_ray
from irbis.pipeline.detect_stage import run_detect
from irbis.store import Project
from irbis.store.schema import DetectionBox, MediaDetection, SequenceVerdict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "reid" / "snowleopard-tajikistan"


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


def build(root: Path, photos: int) -> Path:
    """A project with the first ``photos`` Tajik photos (by encounter), bursts from times."""
    with open(DATA / "labels.csv") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: (r["encounter"], r["path"]))[:photos]
    card = root / "card"
    card.mkdir(parents=True)
    for r in rows:
        stamp = f"{r['date']} {r['time'].replace(':', '-')}"
        shutil.copyfile(DATA / r["path"], card / f"{stamp} {Path(r['path']).name}")
    reg = root / "registry.csv"
    reg.write_text(
        "station,deployment,start,end,timezone\n"
        "TJ,TJ-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
    )
    p = Project.init(root / "fresh")
    import_registry(p, reg)
    ingest(p, card, deployment="TJ-2012", time_from="filename", time_patterns=["%Y-%m-%d %H-%M-%S"])
    p.close()
    return root / "fresh"


def rows(path: Path) -> list[Any]:
    """The detect stage's rows, timestamps left out."""
    with Project.open(path) as p, p.session() as s:
        return [
            [
                (r.media_id, r.verdict, r.max_score, r.n_boxes, r.best_frame)
                for r in s.scalars(select(MediaDetection).order_by(MediaDetection.id))
            ],
            [
                (r.media_id, r.frame, r.category, r.score, r.x, r.y, r.width, r.height)
                for r in s.scalars(select(DetectionBox).order_by(DetectionBox.id))
            ],
            [
                (r.sequence_id, r.verdict, r.best_media_id, r.best_score)
                for r in s.scalars(select(SequenceVerdict).order_by(SequenceVerdict.id))
            ],
        ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64, help="media per Ray task")
    ap.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", help="e.g. 1,2,4")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    import ray

    work = args.workdir or Path(tempfile.mkdtemp(prefix="irbis-ray-bench-"))
    shutil.rmtree(work, ignore_errors=True)
    fresh = build(work, args.photos)
    spec = DetectorSpec()
    out: dict[str, Any] = {
        "photos": args.photos,
        "batch": args.batch,
        "cores": os.cpu_count(),
        "ray": ray.__version__,
        "runs": {},
    }

    def single(name: str, threads: int | None) -> list[Any]:
        dst = work / name
        shutil.copytree(fresh, dst)
        det = DetectorSpec(threads=threads).load()
        with Project.open(dst) as p:
            res = run_detect(p, det)
        out["runs"][name] = {
            "images_per_s": round(res.frames / res.seconds, 3),
            "seconds": res.seconds,
            "frames": res.frames,
            "sequences": res.sequences_processed,
        }
        log(f"{name}: {out['runs'][name]}")
        return rows(dst)

    reference = single("single", None)
    single("single_1thread", 1)
    for w in [int(x) for x in args.workers.split(",")]:
        name = f"ray_{w}"
        dst = work / name
        shutil.copytree(fresh, dst)
        t0 = time.perf_counter()
        ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False)
        start_s = time.perf_counter() - t0

        @ray.remote(num_cpus=1)
        def noop() -> None:
            return None

        ray.get([noop.remote() for _ in range(w)])  # workers up
        t0 = time.perf_counter()
        for _ in range(20):
            ray.get(noop.remote())
        rtt_ms = (time.perf_counter() - t0) / 20 * 1000
        stats: list[dict[str, Any]] = []
        with Project.open(dst) as p:
            res = run_detect_ray(p, spec, batch_size=args.batch, stats=stats)
        ray.shutdown()
        busy = sum(s["worker_s"] for s in stats)
        out["runs"][name] = {
            "workers": w,
            "images_per_s": round(res.frames / res.seconds, 3),
            "seconds": res.seconds,
            "frames": res.frames,
            "batches": len(stats),
            "worker_busy_s": round(busy, 3),
            "overhead_frac": round(1 - busy / (w * res.seconds), 4),
            "task_rtt_ms": round(rtt_ms, 2),
            "ray_start_s": round(start_s, 2),
            "same_rows": rows(dst) == reference,
        }
        log(f"{name}: {out['runs'][name]}")
    r = out["runs"]
    if "ray_1" in r and "ray_2" in r:
        out["scaling_1_to_2"] = round(
            r["ray_2"]["images_per_s"] / (2 * r["ray_1"]["images_per_s"]), 3
        )
    if "ray_1" in r:
        out["per_worker_images_per_s"] = r["ray_1"]["images_per_s"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
