"""Query latency and index memory of the reid catalogue as it grows.

Synthetic annotations (random RootSIFT-like descriptors drawn around shared
"visual words", random keypoints) are added in steps; at each size the same
real-shaped queries are timed. Prints one JSON document.

    .venv/bin/python bench/reid_scale.py [--sizes 100,1000,10000,100000] [--kp 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from irbis.reid import Annotation, Catalogue, Features, MatchConfig


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
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    words = np.abs(rng.normal(0, 1, (20000, 128))).astype(np.float32)
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    cfg = MatchConfig(ivf_codec=args.codec)
    cat = Catalogue(cfg)
    queries = [synthetic(rng, words, args.kp) for _ in range(args.queries)]
    out: dict = {"descriptors_per_annotation": args.kp, "codec": args.codec, "steps": []}
    n = 0
    for size in sizes:
        t0 = time.perf_counter()
        while n < size:
            cat.add(
                Annotation(str(n), None, individual=f"I{n // 5}"), synthetic(rng, words, args.kp)
            )
            n += 1
        add_s = time.perf_counter() - t0
        lat = []
        for q in queries:
            t = time.perf_counter()
            cat.query(q)
            lat.append(1000 * (time.perf_counter() - t))
        idx = cat._index
        code = idx.sa_code_size() if hasattr(idx, "sa_code_size") else 0
        step = {
            "annotations": size,
            "descriptors": cat.n_descriptors,
            "index": "ivf" if cat._ivf else "flat",
            "index_bytes_est": int(cat.n_descriptors * ((code or 512) + 8)),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "add_s": round(add_s, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p95_ms": round(float(np.percentile(lat, 95)), 1),
        }
        out["steps"].append(step)
        print(json.dumps(step), flush=True, file=__import__("sys").stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
