"""Exhaustive search: faiss's own against ``irbis.reid.knn.exhaustive_knn``, 1 and N threads.

The catalogue's exact search (:mod:`irbis.reid.knn`) gives the same bits with
any thread count; this measures what that costs next to faiss's own search
(the reference, timed in the same run on the same data) and checks the bits.
Random descriptors (uniform in [0, 1)^128: speed does not depend on them).
Each figure is the best of ``--repeats`` runs. Prints one JSON document.

    .venv/bin/python bench/reid_knn.py [--n 300000] [--queries 3240] [--k 10]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import faiss
import numpy as np

from irbis.reid.knn import exhaustive_knn


def _best(fn, repeats: int) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300_000, help="database descriptors")
    ap.add_argument("--queries", type=int, default=3240, help="an encounter: 5 frames x 648")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    xb = rng.random((args.n, 128), dtype=np.float32)
    xq = rng.random((args.queries, 128), dtype=np.float32)
    flat = faiss.IndexFlatL2(128)
    flat.add(xb)
    cores = os.cpu_count() or 1
    rows: dict[str, dict] = {}
    answers = {}
    for threads in sorted({1, cores}):
        faiss.omp_set_num_threads(threads)
        s, (dist, _) = _best(lambda: flat.search(xq, args.k), args.repeats)
        rows[f"faiss_{threads}"] = {"seconds": round(s, 3)}
        answers[f"faiss_{threads}"] = dist
        s, (dist, _) = _best(
            lambda t=threads: exhaustive_knn(xq, xb, args.k, threads=t), args.repeats
        )
        rows[f"irbis_{threads}"] = {"seconds": round(s, 3)}
        answers[f"irbis_{threads}"] = dist
    faiss.omp_set_num_threads(cores)
    one, many = "irbis_1", f"irbis_{cores}"
    doc = {
        "command": "bench/reid_knn.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "cores": cores,
        "n": args.n,
        "queries": args.queries,
        "k": args.k,
        "runs": rows,
        "irbis_same_bits_any_threads": bool(np.array_equal(answers[one], answers[many])),
        "faiss_same_bits_any_threads": bool(
            np.array_equal(answers["faiss_1"], answers[f"faiss_{cores}"])
        ),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
