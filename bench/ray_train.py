"""Training on a local Ray cluster: the per-crop work of ``irbis models train``, 1 .. N workers.

``--stages reid`` (default): a project of real Tajik snow-leopard photos, every
photo's cat confirmed (``--per-encounter`` frames of each of the 41 encounters,
one whole-frame annotation per photo), then on a fresh copy each (no cached
features):

* ``single``: :func:`irbis.pipeline.train_reid.confirmed_matches` in this
  process (what ``irbis models train reid`` does), timed twice: cold (features
  extracted, then matching) and again with the features cached (matching only);
* ``ray_W``: :func:`irbis.pipeline.cluster_train.confirmed_matches_ray` on a
  local Ray instance with W workers, Ray's start included; ``features_s`` and
  ``match_s`` are the two phases' walls (first submission to last result),
  ``worker_s`` the seconds workers spent inside batches.

``same_matches`` says whether every run's evidence equals the single-process
run's (so the fitted ranking would be the same).

``--stages species``: the embedding of labelled crops (camtrapR's species
folders, whole frames) by :func:`irbis.pipeline.species_stage.embed_refs` in
this process next to :class:`irbis.pipeline.cluster_train.RayEmbedder` with W
workers, each on a fresh copy; ``same_embeddings`` compares the vectors.

The load average is recorded before and after each run: on a machine shared
with other work the ratio between runs is not a scaling figure.

    .venv/bin/python bench/ray_train.py --per-encounter 3 --workers 1,2
    .venv/bin/python bench/ray_train.py --stages species --workers 1,2

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

from ray_detect import tajik_station_project  # a sibling bench: run as bench/ray_train.py

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.cluster_train import RayEmbedder, confirmed_matches_ray
from irbis.pipeline.identify_stage import create_annotations
from irbis.pipeline.species_stage import embed_refs, labelled_crops
from irbis.pipeline.train_reid import confirmed_matches
from irbis.store import Project

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TAJIK = SHARED / "reid" / "snowleopard-tajikistan"
SPECIES = SHARED / "cameratrap" / "camtrapR"


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def build_reid(root: Path, per: int) -> tuple[Path, int]:
    """Every Tajik encounter's first ``per`` photos, each photo's cat confirmed.

    Returns the project and its number of photos.
    """
    with open(TAJIK / "labels.csv") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: (r["date"], r["time"], r["path"]))
    by_enc: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_enc.setdefault(r["encounter"], []).append(r)
    picked = [r for rs in by_enc.values() for r in rs[:per]]
    path, _ = tajik_station_project(root, "fresh_reid", picked, lambda r: r["individual_id"])
    with Project.open(path) as p:
        create_annotations(p)  # one whole-frame annotation per photo, its cat confirmed
    return path, len(picked)


def frames_json(sm: Any) -> str:
    """The evidence of a season, as text (for the equality check)."""
    return json.dumps(sm.as_dict(), sort_keys=True)


def bench_reid(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Matching confirmed crops in one process and on W Ray workers (see the module doc)."""
    fresh, photos = build_reid(work, args.per_encounter)
    out: dict[str, Any] = {"photos": photos, "per_encounter": args.per_encounter}
    path = shutil.copytree(fresh, work / "reid_single")
    before = load()
    with Project.open(path) as p:
        t0 = time.perf_counter()
        sm, errors = confirmed_matches(p)
        cold = time.perf_counter() - t0
        t1 = time.perf_counter()
        confirmed_matches(p)
        warm = time.perf_counter() - t1
    reference = frames_json(sm)
    out["single"] = {
        "crops": len(sm.frames),
        "errors": len(errors),
        "seconds": round(cold, 2),
        "match_s": round(warm, 2),
        "features_s": round(cold - warm, 2),
        "load_before": before,
        "load_after": load(),
    }
    log(f"reid single: {out['single']}")
    for w in args.workers:
        path = shutil.copytree(fresh, work / f"reid_ray_{w}")
        stats: list[dict[str, Any]] = []
        before = load()
        with Project.open(path) as p:
            t0 = time.perf_counter()
            sm_w, _ = confirmed_matches_ray(
                p, address=f"local:{w}", batch_size=args.batch, stats=stats
            )
            wall = time.perf_counter() - t0
        phase = {ph: [st for st in stats if st["phase"] == ph] for ph in ("features", "match")}
        out[f"ray_{w}"] = {
            "workers": w,
            "seconds": round(wall, 2),
            "features_s": round(max((st["t_done"] for st in phase["features"]), default=0), 2),
            "match_s": round(max((st["t_done"] for st in phase["match"]), default=0), 2),
            "worker_s": round(sum(st["worker_s"] for st in stats), 2),
            "batches": {ph: len(v) for ph, v in phase.items()},
            "pids": len({st["pid"] for st in stats}),
            "same_matches": frames_json(sm_w) == reference,
            "load_before": before,
            "load_after": load(),
        }
        log(f"reid ray {w}: {out[f'ray_{w}']}")
    return out


def bench_species(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Embedding labelled crops in one process and on W Ray workers (see the module doc)."""
    from irbis.vision.embed import CropEmbedder

    fresh = work / "fresh_species"
    p = Project.init(fresh)
    import_registry(
        p, SPECIES / "oracle" / "camtraps.csv", date_format="%d/%m/%Y", crs="EPSG:32650"
    )
    ingest(p, SPECIES / "pictures" / "sample_images_species_dir", layout="station/species")
    p.close()
    embedder = CropEmbedder("dinov2-s")
    out: dict[str, Any] = {}
    path = shutil.copytree(fresh, work / "species_single")
    before = load()
    with Project.open(path) as p:
        refs = labelled_crops(p).refs
        t0 = time.perf_counter()
        emb, ok, counts = embed_refs(p, embedder, refs)
        wall = time.perf_counter() - t0
    out["single"] = {
        "crops": len(refs),
        "embedded": counts["embedded"],
        "seconds": round(wall, 2),
        "load_before": before,
        "load_after": load(),
    }
    log(f"species single: {out['single']}")
    for w in args.workers:
        path = shutil.copytree(fresh, work / f"species_ray_{w}")
        stats: list[dict[str, Any]] = []
        before = load()
        with Project.open(path) as p:
            t0 = time.perf_counter()
            emb_w, ok_w, _ = embed_refs(
                p,
                embedder,
                refs,
                embed_files=RayEmbedder(f"local:{w}", args.batch, stats=stats),
            )
            wall = time.perf_counter() - t0
        out[f"ray_{w}"] = {
            "workers": w,
            "seconds": round(wall, 2),
            "worker_s": round(sum(st["worker_s"] for st in stats), 2),
            "batches": len(stats),
            "same_embeddings": bool((emb_w == emb).all() and (ok_w == ok).all()),
            "load_before": before,
            "load_after": load(),
        }
        log(f"species ray {w}: {out[f'ray_{w}']}")
    return out


def main() -> None:
    """Run the stages asked for and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="reid", help="reid, species or reid,species")
    ap.add_argument("--per-encounter", type=int, default=3, help="reid: photos per encounter")
    ap.add_argument("--workers", default="1,2", help="Ray worker counts to time")
    ap.add_argument("--batch", type=int, default=16, help="crops per Ray task")
    args = ap.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    result: dict[str, Any] = {
        "command": " ".join(["bench/ray_train.py", *sys.argv[1:]]),
        "cpu_count": os.cpu_count(),
        "batch": args.batch,
    }
    with tempfile.TemporaryDirectory(prefix="irbis-ray-train-") as tmp:
        work = Path(tmp)
        for stage in args.stages.split(","):
            if stage == "reid":
                result["reid"] = bench_reid(args, work)
            elif stage == "species":
                result["species"] = bench_species(args, work)
            else:
                raise SystemExit(f"--stages: unknown stage {stage!r} (reid, species)")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
