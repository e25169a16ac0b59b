"""Scan speed of faiss IVF codecs: nanoseconds per query-descriptor distance.

Synthetic RootSIFT-like descriptors (drawn around shared "visual words", as in
``reid_scale.py``) fill one IVF per codec; the same queries are searched with
the matcher's ``nprobe`` on one thread, and the time is divided by the
descriptors the probed cells hold on average (so it is a per-distance cost,
not a latency). Prints one JSON document.

    .venv/bin/python bench/reid_codec_speed.py [--n 600000] [--codecs SQ8,PQ32,PQ64x4fs]
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np

from irbis.reid import MatchConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600_000, help="descriptors in the index")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--codecs", default="SQ8,SQfp16,PQ32,PQ64x4fs,PQ32x4fs")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    words = np.abs(rng.normal(0, 1, (20000, 128))).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        d = np.abs(words[rng.integers(0, words.shape[0], n)] + rng.normal(0, 0.05, (n, 128)))
        return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)

    x, q = draw(args.n), draw(args.queries)
    faiss.omp_set_num_threads(1)
    nprobe = MatchConfig().nprobe
    out: dict = {"descriptors": args.n, "nlist": args.nlist, "nprobe": nprobe, "threads": 1}
    for codec in args.codecs.split(","):
        index = faiss.index_factory(128, f"IVF{args.nlist},{codec}")
        index.train(x[: 40 * args.nlist])
        index.add(x)
        faiss.extract_index_ivf(index).nprobe = nprobe
        index.search(q, 10)  # warm-up
        t0 = time.perf_counter()
        index.search(q, 10)
        dt = time.perf_counter() - t0
        distances = args.queries * nprobe * args.n / args.nlist
        out[codec] = {
            "ms_per_200_queries": round(1000 * dt * 200 / args.queries, 1),
            "ns_per_distance": round(1e9 * dt / distances, 2),
            "bytes_per_code": faiss.extract_index_ivf(index).code_size,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
