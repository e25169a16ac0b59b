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

With ``--stages identify`` (or ``detect,identify``) the identify stage is timed
the same way on a project of its own: cats of the Tajik set with two or more
encounters, the first encounter of each named by a person (the catalogue), the
later ones matched (``--crops`` of them, ``--per-encounter`` frames each):
``single`` (``run_identify``) next to ``ray_W`` (``run_identify_ray``, batches of
``--identify-batch`` crops); ``start_s`` is the single-process start
(annotations, catalogue features, catalogue build), timed once on a copy; the
Ray run extracts the catalogue's features on the workers first
(``catalogue_extract_*``); ``overhead_frac`` is
taken over the matching phase (first submission to last burst written). The
catalogue's pickled size and unpickling time are what each worker pays once.
``projection`` extrapolates the measured per-worker rate to 10 nodes x 16 cores
on a million photos with the stated share of snow-leopard frames.

    .venv/bin/python bench/ray_detect.py --photos 128 --batch 64 --workers 1,2
    .venv/bin/python bench/ray_detect.py --stages identify --crops 48 --workers 1,2

Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.cluster import DetectorSpec, run_detect_ray
from irbis.pipeline.cluster_identify import run_identify_ray
from irbis.pipeline.detect_stage import run_detect
from irbis.pipeline.identify_stage import _start_identify, run_identify
from irbis.store import Project
from irbis.store.schema import (
    DetectionBox,
    MatchDecision,
    Media,
    MediaDetection,
    Observation,
    SequenceVerdict,
)

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


def build_identify(root: Path, crops: int, per: int) -> tuple[Path, int]:
    """A project for the identify stage: each cat's first encounter named, later ones matched.

    Returns the project and the number of catalogue crops.
    """
    with open(DATA / "labels.csv") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: (r["date"], r["time"], r["path"]))
    by_enc: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_enc.setdefault(r["encounter"], []).append(r)
    by_cat: dict[str, list[str]] = {}
    for enc, rs in by_enc.items():  # encounters in time order
        if len(rs) >= per:
            by_cat.setdefault(rs[0]["individual_id"], []).append(enc)
    named: list[str] = []
    queries: list[str] = []
    for _cat, encs in sorted(by_cat.items()):
        if len(encs) < 2 or len(queries) * per >= crops:
            continue
        named.append(encs[0])
        # At most two later encounters per cat, so the catalogue holds several cats.
        queries += encs[1:3][: max(1, (crops - len(queries) * per) // per)]
    picked = [r for e in named + queries for r in by_enc[e][:per]]
    path, names = tajik_station_project(
        root,
        "fresh_identify",
        picked,
        lambda r: r["individual_id"] if r["encounter"] in named else "",
    )
    return path, sum(1 for n in names.values() if n)


def tajik_station_project(
    root: Path, name: str, picked: list[dict[str, str]], individual: Callable[[dict[str, str]], str]
) -> tuple[Path, dict[str, str]]:
    """A project of the given Tajik label rows, one card and deployment per station.

    Each photo is copied under a name carrying its date and time (read back
    by ingest), and gets a person's snow-leopard observation naming
    ``individual(row)`` ("" for an unnamed cat).

    Returns
    -------
    path, names
        The project folder and each ingested file's individual.
    """
    stations = sorted({r["station"] for r in picked})
    reg = root / "registry.csv"
    reg.write_text(
        "station,deployment,start,end,timezone\n"
        + "".join(
            f"S{s},S{s}-2012,2012-01-01T00:00:00,2012-12-31T00:00:00,Asia/Dushanbe\n"
            for s in stations
        )
    )
    p = Project.init(root / name)
    import_registry(p, reg)
    names: dict[str, str] = {}
    for st in stations:
        card = root / "cards" / st
        card.mkdir(parents=True)
        for r in picked:
            if r["station"] != st:
                continue
            file = f"{r['date']} {r['time'].replace(':', '-')} {Path(r['path']).name}"
            shutil.copyfile(DATA / r["path"], card / file)
            names[file] = individual(r)
        ingest(
            p,
            card,
            deployment=f"S{st}-2012",
            time_from="filename",
            time_patterns=["%Y-%m-%d %H-%M-%S"],
        )
    with p.session() as s:
        for m in s.scalars(select(Media).order_by(Media.id)):
            s.add(
                Observation(
                    media_id=m.id,
                    species="Panthera uncia",
                    individual=names[m.file_name],
                    source="human",
                    by="bench",
                    created_utc=datetime(2026, 12, 6),
                )
            )
        s.commit()
    p.close()
    return root / name, names


def identify_rows(path: Path) -> list[Any]:
    """The identify stage's proposals, timestamps left out."""
    with Project.open(path) as p, p.session() as s:
        return [
            (r.annotation_id, r.individual_id, r.rank, r.score, r.probability, r.matches)
            for r in s.scalars(select(MatchDecision).order_by(MatchDecision.id))
        ]


def bench_identify(args: argparse.Namespace, work: Path, ray: Any) -> dict[str, Any]:
    """Identify in one process and on W Ray workers (see the module doc)."""
    fresh, n_catalogue = build_identify(work, args.crops, args.per_encounter)
    res: dict[str, Any] = {"catalogue_crops": n_catalogue, "batch": args.identify_batch}
    probe = work / "identify_probe"
    shutil.copytree(fresh, probe)
    with Project.open(probe) as p:
        t0 = time.perf_counter()
        run = _start_identify(p, 0.1)
        res["start_s"] = round(time.perf_counter() - t0, 3)
        res["queries"] = run.total
        blob = pickle.dumps(run.catalogue)
        res["catalogue_pickle_bytes"] = len(blob)
        t0 = time.perf_counter()
        pickle.loads(blob)
        res["catalogue_unpickle_ms"] = round((time.perf_counter() - t0) * 1000, 2)
    res["runs"] = {}
    dst = work / "identify_single"
    shutil.copytree(fresh, dst)
    with Project.open(dst) as p:
        t0 = time.perf_counter()
        summary = run_identify(p)
        sec = time.perf_counter() - t0
    match_s = sec - res["start_s"]
    res["runs"]["single"] = {
        "seconds": round(sec, 3),
        "queried": summary.queried,
        "crops_per_s_matching": round(summary.queried / match_s, 3),
    }
    log(f"identify single: {res['runs']['single']}")
    reference = identify_rows(dst)
    for w in [int(x) for x in args.workers.split(",")]:
        dst = work / f"identify_ray_{w}"
        shutil.copytree(fresh, dst)
        ray.init(address="local", num_cpus=w, include_dashboard=False, log_to_driver=False)

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
            t0 = time.perf_counter()
            summary = run_identify_ray(p, batch_size=args.identify_batch, stats=stats)
            sec = time.perf_counter() - t0
        ray.shutdown()
        warm = [s for s in stats if s["phase"] == "catalogue"]
        stats = [s for s in stats if s["phase"] == "match"]
        busy = sum(s["worker_s"] for s in stats)
        match_wall = max(s["t_done"] for s in stats) - min(s["t_submit"] for s in stats)
        res["runs"][f"ray_{w}"] = {
            "workers": w,
            "seconds": round(sec, 3),
            "queried": summary.queried,
            "batches": len(stats),
            "matching_wall_s": round(match_wall, 3),
            "crops_per_s_matching": round(summary.queried / match_wall, 3),
            "worker_busy_s": round(busy, 3),
            "per_worker_crops_per_s": round(summary.queried / busy, 3),
            "overhead_frac": round(1 - busy / (w * match_wall), 4),
            "task_rtt_ms": round(rtt_ms, 2),
            "catalogue_extract_wall_s": max((s["t_done"] for s in warm), default=0.0),
            "catalogue_extract_busy_s": round(sum(s["worker_s"] for s in warm), 3),
            "same_rows": identify_rows(dst) == reference,
        }
        log(f"identify ray_{w}: {res['runs'][f'ray_{w}']}")
    r = res["runs"]
    if "ray_1" in r and "ray_2" in r:
        res["scaling_1_to_2"] = round(
            r["ray_2"]["crops_per_s_matching"] / (2 * r["ray_1"]["crops_per_s_matching"]), 3
        )
    if "ray_1" in r:
        rate = r["ray_1"]["per_worker_crops_per_s"]
        crops = 1_000_000 * args.leopard_fraction
        res["projection"] = {
            "nodes": 10,
            "cores_per_node": 16,
            "photos": 1_000_000,
            "leopard_fraction": args.leopard_fraction,
            "crops": int(crops),
            "per_worker_crops_per_s": rate,
            "catalogue_crops_measured": n_catalogue,
            "hours": round(crops / (160 * rate) / 3600, 3),
            "ray_cost_per_batch_frac": round((rtt_ms / 1000) / (args.identify_batch / rate), 6),
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64, help="media per Ray task")
    ap.add_argument("--worker-cpus", type=int, default=1, help="cores per Ray task")
    ap.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", help="e.g. 1,2,4")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--stages", default="detect", help="detect, identify or detect,identify")
    ap.add_argument("--crops", type=int, default=48, help="identify: crops to match")
    ap.add_argument("--per-encounter", type=int, default=6, help="identify: frames per burst")
    ap.add_argument("--identify-batch", type=int, default=16, help="identify: crops per task")
    ap.add_argument(
        "--leopard-fraction",
        type=float,
        default=0.03,
        help="projection: share of a season's photos that are snow-leopard frames (assumed)",
    )
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    import ray

    work = args.workdir or Path(tempfile.mkdtemp(prefix="irbis-ray-bench-"))
    shutil.rmtree(work, ignore_errors=True)
    fresh = build(work, args.photos)
    spec = DetectorSpec()
    out: dict[str, Any] = {
        "photos": args.photos,
        "batch": args.batch,
        "worker_cpus": args.worker_cpus,
        "load_average": os.getloadavg(),
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

    if "identify" in stages:
        out["identify"] = bench_identify(args, work, ray)
    if "detect" not in stages:
        print(json.dumps(out, indent=2))
        return
    reference = single("single", None)
    single("single_1thread", 1)
    for w in [int(x) for x in args.workers.split(",")]:
        name = f"ray_{w}"
        dst = work / name
        shutil.copytree(fresh, dst)
        t0 = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=w * args.worker_cpus,
            include_dashboard=False,
            log_to_driver=False,
        )
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
            res = run_detect_ray(
                p, spec, batch_size=args.batch, stats=stats, worker_cpus=args.worker_cpus
            )
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
            "batch_media": [s["media"] for s in stats],
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
