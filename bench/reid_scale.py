"""Query latency and index memory of the reid catalogue as it grows.

Synthetic annotations (random RootSIFT-like descriptors drawn around shared
"visual words", random keypoints) are added in steps; at each size the same
real-shaped queries are timed (wall and CPU time). Annotations are added with
:meth:`Catalogue.add_many` (``add_s``). The reference in the same run is the
catalogue as it was before the index was retrained with growth: one IVF trained once at
50,000 descriptors and never again (``--reference``; off by default because it
doubles the run). Prints one JSON document.

    .venv/bin/python bench/reid_scale.py [--sizes 100,1000,10000,100000] [--kp 200]

An encounter is the identify stage's unit of work: ``--frames-per-encounter``
consecutive queries are matched and pooled
(:func:`irbis.reid.encounter.pool_encounter`) and timed as one, two ways:
frame by frame (``encounter_p50_ms``, :meth:`Catalogue.query`) and with one
index search for all its frames (``encounter_one_search_p50_ms``,
:meth:`Catalogue.query_encounter`, which also applies
``--encounter-cap``: at most that many of the frames' strongest descriptors).
``--codec PQ64x4fs`` times the 4-bit fast-scan product quantiser.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import faiss
import numpy as np

from irbis.reid import Annotation, Catalogue, Features, MatchConfig
from irbis.reid.encounter import pool_encounter


def synthetic(rng: np.random.Generator, words: np.ndarray, n: int) -> Features:
    """One fake annotation: descriptors near random visual words, L2-normalised."""
    w = words[rng.integers(0, words.shape[0], n)]
    d = np.abs(w + rng.normal(0, 0.05, w.shape)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    xy = rng.uniform(0, 640, (n, 2)).astype(np.float32)
    z = np.zeros(n, np.float32)
    return Features(xy, z + 8, z, d, xy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--kp", type=int, default=200, help="descriptors per annotation")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--codec", default="SQ8", help="IVF codec (SQ8, PQ32, Flat)")
    ap.add_argument("--reference", action="store_true", help="also time the never-retrained IVF")
    ap.add_argument("--frames-per-encounter", type=int, default=5)
    ap.add_argument("--encounter-cap", type=int, default=None, help="descriptors per encounter")
    ap.add_argument("--nprobe", type=int, default=MatchConfig().nprobe)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict = {
        "descriptors_per_annotation": args.kp,
        "codec": args.codec,
        "encounter_cap": args.encounter_cap,
        "nprobe": args.nprobe,
        "load_average_start": list(os.getloadavg()),
    }
    configs = {
        "default": MatchConfig(
            ivf_codec=args.codec, encounter_max_descriptors=args.encounter_cap, nprobe=args.nprobe
        )
    }
    if args.reference:
        configs["reference_fixed_ivf"] = MatchConfig(
            ivf_codec=args.codec, ivf_above=50_000, ivf_retrain=0.0, nprobe=8
        )
    for name, cfg in configs.items():
        out[name] = run(cfg, sizes, args.kp, args.queries, args.frames_per_encounter)
    steps = out["default"]
    if len(steps) >= 2:
        a, b = steps[-2], steps[-1]
        # Sublinear: latency grows by less than the catalogue does.
        out["growth_last_step"] = {
            "annotations_x": b["annotations"] / a["annotations"],
            "p50_x": round(b["p50_ms"] / max(a["p50_ms"], 1e-9), 2),
        }
    out["load_average_end"] = list(os.getloadavg())
    print(json.dumps(out, indent=2))


def run(
    cfg: MatchConfig, sizes: list[int], kp: int, n_queries: int, per_encounter: int = 5
) -> list[dict]:
    """Grow one catalogue through ``sizes`` and time the same queries at each."""
    rng = np.random.default_rng(0)
    words = np.abs(rng.normal(0, 1, (20000, 128))).astype(np.float32)
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    cat = Catalogue(cfg)
    queries = [synthetic(rng, words, kp) for _ in range(n_queries)]
    steps = []
    n = 0
    for size in sizes:
        t0 = time.perf_counter()
        # One faiss call per batch of annotations (Catalogue.add_many): one call
        # per annotation made the 100,000 step take hours on a busy machine.
        cat.add_many(
            (Annotation(str(i), None, individual=f"I{i // 5}"), synthetic(rng, words, kp))
            for i in range(n, size)
        )
        n = size
        add_s = time.perf_counter() - t0
        cat.query(queries[0])  # warm-up
        lat, cpu = [], []
        for q in queries:
            t, c = time.perf_counter(), time.process_time()
            cat.query(q)
            lat.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))
        enc_lat = []
        for i in range(0, len(queries) - per_encounter + 1, per_encounter):
            t = time.perf_counter()
            pool_encounter([cat.query(q) for q in queries[i : i + per_encounter]])
            enc_lat.append(1000 * (time.perf_counter() - t))
        one_lat, one_cpu = [], []
        for i in range(0, len(queries) - per_encounter + 1, per_encounter):
            t, c = time.perf_counter(), time.process_time()
            pool_encounter(cat.query_encounter(queries[i : i + per_encounter]))
            one_lat.append(1000 * (time.perf_counter() - t))
            one_cpu.append(1000 * (time.process_time() - c))
        mem = cat.memory_bytes()
        idx = cat._index
        step = {
            "annotations": size,
            "descriptors": cat.n_descriptors,
            "index": f"IVF{faiss.extract_index_ivf(idx).nlist}" if cat._ivf else "flat",
            "index_mb": round(mem["index"] / 2**20, 1),
            "keypoints_mb": round(mem["keypoints"] / 2**20, 1),
            "lookup_mb": round(mem["lookup"] / 2**20, 1),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "add_s": round(add_s, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p95_ms": round(float(np.percentile(lat, 95)), 1),
            # CPU time of the process (all its threads): on a machine shared with
            # other jobs wall time inflates, CPU time does not.
            "p50_cpu_ms": round(float(np.percentile(cpu, 50)), 1),
            "frames_per_encounter": per_encounter,
            "encounter_p50_ms": round(float(np.percentile(enc_lat, 50)), 1) if enc_lat else None,
            "encounter_one_search_p50_ms": _p50(one_lat),
            "encounter_one_search_p50_cpu_ms": _p50(one_cpu),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        steps.append(step)
        print(json.dumps(step), flush=True, file=sys.stderr)
    return steps


def _p50(values: list[float]) -> float | None:
    """Median, rounded to 0.1 ms; None without values."""
    return round(float(np.percentile(values, 50)), 1) if values else None


if __name__ == "__main__":
    main()
