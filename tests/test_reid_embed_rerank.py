"""bench/reid_embed_rerank.py: the learned projection and the fusion it is measured with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "reid_embed_rerank", ROOT / "bench/reid_embed_rerank.py"
    )
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_wccn_learned_on_other_animals_shrinks_the_scene_direction() -> None:
    """Identity in a few dimensions, a strong shared 'scene' nuisance in others.

    The projection is fitted on animals 0-19 only and must make nearest-neighbour
    identification of animals 20-39 (never seen) better than raw cosine.
    """
    bench = _bench()
    rng = np.random.default_rng(4)
    d, scenes = 32, rng.normal(0, 3.0, (6, 32))
    scenes[:, :8] = 0  # scenes live outside the identity dimensions

    def animal(k: int, n: int) -> tuple[np.ndarray, list[str]]:
        ident = np.zeros(d)
        ident[:8] = rng.normal(0, 1.0, 8)
        rows = [ident + scenes[rng.integers(6)] + rng.normal(0, 0.1, d) for _ in range(n)]
        return np.array(rows), [f"a{k}"] * n

    train = [animal(k, 6) for k in range(20)]
    test = [animal(k, 2) for k in range(20, 40)]
    labels = sum((lab for _, lab in train), [])
    encounters = [f"{lab}-{i % 3}" for i, lab in enumerate(labels)]  # three visits each
    proj, ridge = bench.fit_projection(np.vstack([x for x, _ in train]), labels, encounters)
    assert ridge in bench.RIDGES
    x = np.vstack([t for t, _ in test])
    lab = np.array(sum((lb for _, lb in test), []))

    def nn_accuracy(z: np.ndarray) -> float:
        z = bench.unit(z)
        sim = z @ z.T
        np.fill_diagonal(sim, -np.inf)
        return float(np.mean(lab[sim.argmax(1)] == lab))

    raw, learned = nn_accuracy(x), nn_accuracy(x @ proj)
    assert learned > raw + 0.2, (raw, learned)


def test_reciprocal_rank_fusion_prefers_agreement() -> None:
    bench = _bench()
    assert bench.rrf(["A", "B", "C"], ["B", "C", "A"]) == ["B", "A", "C"]
    assert bench.rrf(["A"], []) == ["A"]
