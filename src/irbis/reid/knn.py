"""Exact nearest neighbours whose distances do not depend on the number of threads.

faiss computes a large exhaustive L2 search as one matrix product (BLAS), and
a multi-threaded BLAS splits that product into different tiles for different
thread counts; the tiles round differently. On an AMD EPYC 2-core VM the same
query against the same catalogue gave scores that differed in the 7th digit
between a process with two threads (a laptop's ``irbis identify``) and one
with one thread (a Ray worker: Ray gives a one-core task ``OMP_NUM_THREADS=1``),
so "the cluster writes the rows a laptop writes" failed.

:func:`exhaustive_knn` keeps the speed of several cores and makes the result
a function of the data alone: the database is cut into shards whose size
depends only on its length, each shard is searched by one thread with
OpenMP (and so BLAS) limited to that thread, and the per-shard neighbours are
merged in shard order. Any number of threads gives the same distances, ids
and order, bit for bit.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

__all__ = ["exhaustive_knn", "shards"]

#: Fewest database rows per shard: a product with fewer columns than this
#: runs BLAS below its speed.
MIN_SHARD = 1 << 15
#: Most shards a database is cut into (bounds the merge's cost).
MAX_SHARDS = 64


def shards(n: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` of the shards of an ``n``-row database.

    A function of ``n`` only: never of the machine or the thread count.
    """
    size = max(MIN_SHARD, -(-n // MAX_SHARDS))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def _one_thread_knn(q: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss's exact search of ``q`` in ``xb`` on the calling thread alone."""
    # omp_set_num_threads sets the calling thread's own OpenMP setting: other
    # threads (and the caller's next parallel regions elsewhere) keep theirs.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        kk = min(k, xb.shape[0])
        dist, pos = faiss.knn(q, xb, kk)
    finally:
        faiss.omp_set_num_threads(before)
    if kk < k:  # fewer rows than neighbours asked for: pad as faiss does
        pad = k - kk
        dist = np.hstack([dist, np.full((q.shape[0], pad), np.inf, np.float32)])
        pos = np.hstack([pos, np.full((q.shape[0], pad), -1, np.int64)])
    return dist, pos


def exhaustive_knn(
    q: np.ndarray, xb: np.ndarray, k: int, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``xb`` (squared L2) for each row of ``q``.

    Parameters
    ----------
    q, xb
        Queries and database, float32 and C-contiguous, the same width.
    k
        Neighbours per query (rows beyond the database: distance ``inf``, row -1).
    threads
        Threads to spread the shards over; default: OpenMP's setting for the
        calling thread (``OMP_NUM_THREADS``, or the cores). The result does not
        depend on it.

    Returns
    -------
    dist, rows
        ``(len(q), k)`` squared distances (ascending) and row numbers of ``xb``.
    """
    q = np.ascontiguousarray(q, dtype=np.float32)
    parts = shards(xb.shape[0])
    if not parts or k <= 0:
        return (
            np.full((q.shape[0], max(k, 0)), np.inf, np.float32),
            np.full((q.shape[0], max(k, 0)), -1, np.int64),
        )
    n_threads = max(1, min(len(parts), threads or faiss.omp_get_max_threads()))

    def one(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        s0, s1 = span
        dist, pos = _one_thread_knn(q, xb[s0:s1], k)
        return dist, np.where(pos >= 0, pos + s0, -1)

    if n_threads == 1:
        found = [one(p) for p in parts]
    else:
        with ThreadPoolExecutor(n_threads) as pool:  # faiss releases the GIL
            found = list(pool.map(one, parts))
    if len(found) == 1:
        return found[0]
    dist = np.hstack([d for d, _ in found])
    rows = np.hstack([r for _, r in found])
    # Stable: equal distances keep shard order, then faiss's order within a shard.
    best = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, best, 1), np.take_along_axis(rows, best, 1)
