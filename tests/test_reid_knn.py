"""Exact neighbours that do not depend on the thread count (:mod:`irbis.reid.knn`).

A Ray worker has one core, a laptop several; the catalogue's exhaustive search
must give both the same bits. faiss's own multi-threaded search does not on
every CPU (its BLAS tiles the product per thread count), which the first test
records where it shows, without relying on it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import faiss
import numpy as np
import pytest

from irbis.reid import Annotation, Catalogue, MatchConfig
from irbis.reid.features import Features
from irbis.reid.knn import MIN_SHARD, exhaustive_knn, shards


def _data(nb: int, nq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Rounded to a coarse grid, as RootSIFT-like descriptors: many ties in distance.
    xb = (np.round(rng.random((nb, 128)) * 8) / 8).astype(np.float32)
    xq = (np.round(rng.random((nq, 128)) * 8) / 8).astype(np.float32)
    return xb, xq


@pytest.mark.parametrize(("nb", "nq"), [(3 * MIN_SHARD + 123, 1100), (5000, 40), (70, 1500)])
def test_same_bits_for_any_thread_count_and_faiss_neighbours(nb, nq):
    xb, xq = _data(nb, nq)
    k = 12
    runs = [exhaustive_knn(xq, xb, k, threads=t) for t in (1, 2, 3, 8)]
    for dist, rows in runs[1:]:
        assert np.array_equal(dist, runs[0][0]) and np.array_equal(rows, runs[0][1])
    dist, rows = runs[0]
    assert dist.shape == rows.shape == (nq, k)
    assert np.all(np.diff(dist, axis=1) >= 0)  # ascending
    # The distances are the rows' true squared distances (to float32 rounding) ...
    true = ((xq[:, None, :] - xb[rows]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, true, rtol=1e-4, atol=1e-3)
    # ... and the k-th neighbour is as near as faiss's own k-th (ties may pick other rows).
    ref, _ = faiss.knn(xq, xb, k)
    np.testing.assert_allclose(dist[:, -1], ref[:, -1], rtol=1e-4, atol=1e-3)


def test_more_neighbours_than_rows_are_padded_like_faiss():
    xb, xq = _data(5, 3)
    dist, rows = exhaustive_knn(xq, xb, 8)
    assert (rows[:, :5] >= 0).all() and (rows[:, 5:] == -1).all()
    assert np.isinf(dist[:, 5:]).all()
    assert sorted(rows[0, :5].tolist()) == [0, 1, 2, 3, 4]


def test_shards_depend_on_the_database_size_only():
    assert shards(0) == []
    assert shards(10) == [(0, 10)]
    cut = shards(200 * MIN_SHARD + 7)
    assert len(cut) <= 64 and cut[0][0] == 0 and cut[-1][1] == 200 * MIN_SHARD + 7
    assert all(a[1] == b[0] for a, b in zip(cut, cut[1:], strict=False))


@pytest.mark.parametrize("ivf_above", [10**9, 1000])  # flat index, then IVF with a flat quantizer
def test_catalogue_scores_are_the_same_with_one_thread_or_two(ivf_above, tmp_path):
    """A whole query (flat or IVF catalogue) scored in a 1-thread and a 2-thread process."""
    script = tmp_path / "score.py"
    script.write_text(
        f"""
import sys, numpy as np
from irbis.reid import Annotation, Catalogue
from irbis.reid.catalogue import MatchConfig
from irbis.reid.features import Features
rng = np.random.default_rng(3)
cat = Catalogue(MatchConfig(ivf_above={ivf_above}))
def feats(n):
    xy = rng.random((n, 2)).astype(np.float32) * 200
    desc = rng.random((n, 128)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    ones = np.ones(n, np.float32)
    return Features(xy, ones * 8, ones * 0, desc, xy.copy())
for i in range(40):
    cat.add(Annotation(f"a{{i}}", "x.jpg", individual=f"cat{{i % 7}}"), feats(300))
q = feats(1200)
res = cat.query(q)
print(repr([(c.individual, float(c.score)) for c in res.candidates]))
"""
    )
    out = {}
    for threads in ("1", "2"):
        res = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": threads},
            timeout=300,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        out[threads] = res.stdout
    assert out["1"] == out["2"] and "cat" in out["1"]


@pytest.mark.parametrize("nprobe", [4, 256])  # 256: more cells than the index has
def test_ivf_search_equals_faiss_own(nprobe):
    """The IVF path (cells chosen by exhaustive_knn, then scanned) returns faiss's answer."""
    rng = np.random.default_rng(5)
    cat = Catalogue(MatchConfig(ivf_above=2000, ivf_codec="Flat", nprobe=nprobe))
    for i in range(12):
        desc = rng.random((400, 128)).astype(np.float32)
        xy = np.zeros((400, 2), np.float32)
        ones = np.ones(400, np.float32)
        feats = Features(xy, ones, ones, desc, xy)
        cat.add(Annotation(f"a{i}", "x.jpg", individual=f"c{i % 3}"), feats)
    q = rng.random((300, 128)).astype(np.float32)
    got = cat._search(q, 20)
    ivf = faiss.extract_index_ivf(cat._index)
    assert ivf.nlist < 256
    want = cat._index.search(q, 20)  # nprobe as _search left it (at most nlist)
    assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
