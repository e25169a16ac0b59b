"""SECR likelihood in chunks of mask points (big masks) equals the one-piece evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from irbis.stats import secr
from irbis.stats.secr_data import CaptureHistory, Mask, Traps


def _data(detector: str, B: int = 0) -> tuple[CaptureHistory, Mask]:
    rng = np.random.default_rng(2)
    xy = np.array([(x * 700.0, y * 700.0) for x in range(4) for y in range(3)])
    usage = rng.choice([0.0, 1.0, 2.0], size=(12, 3), p=[0.1, 0.7, 0.2])
    usage[:, 0] = 1.0
    traps = Traps([f"T{i}" for i in range(12)], xy, usage,
                  {"hab": np.array(["a", "b"] * 6, dtype=object)})  # fmt: skip
    n = 7
    counts = np.zeros((n, 3, 12), dtype=int)
    for i in range(n):
        for s in range(3):
            ok = np.flatnonzero(usage[:, s] > 0)
            if detector == "multi":
                counts[i, s, rng.choice(ok)] = 1
            else:
                for k in rng.choice(ok, 2):
                    counts[i, s, k] = 1 if detector == "proximity" else rng.integers(1, 3)
    g = np.arange(-2000.0, 4200.0, 400.0)
    gx, gy = np.meshgrid(g, g)
    mxy = np.column_stack([gx.ravel(), gy.ravel()])
    mask = Mask(mxy, 400.0, {"cov": np.sin(mxy[:, 0] / 900.0)})
    return CaptureHistory([f"A{i}" for i in range(n)], counts, traps, detector, B), mask


@pytest.mark.parametrize(("detector", "B"), [("count", 0), ("count", 2), ("proximity", 0),
                                             ("multi", 0)])  # fmt: skip
@pytest.mark.parametrize("fn", ["HHN", "HN", "HHR", "CHN", "HCG"])
def test_chunks_equal_one_piece(detector: str, B: int, fn: str) -> None:
    ch, mask = _data(detector, B)
    for likelihood in ("full", "conditional"):
        p0 = secr.detect_params(fn)[0]
        model = f"{p0}~hab" + (" D~cov" if likelihood == "full" else "")
        one = secr.SecrLikelihood(ch, mask, model, fn, likelihood)
        cut = secr.SecrLikelihood(ch, mask, model, fn, likelihood, chunk_points=37)
        assert one.chunk_points is None and cut.chunk_points == 37 and cut.d2 is None
        b = one.start_values() + 0.05
        l1, g1 = one.loglik_and_gradient(b)
        l2, g2 = cut.loglik_and_gradient(b)
        assert abs(l1 - l2) < 1e-9
        np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(cut.pdot(b), one.pdot(b), rtol=1e-12, atol=1e-15)


def test_big_masks_are_chunked_automatically(monkeypatch: pytest.MonkeyPatch) -> None:
    ch, mask = _data("count")
    monkeypatch.setattr(secr, "CHUNK_CELLS", 12 * 50)
    lik = secr.SecrLikelihood(ch, mask)
    assert lik.chunk_points == 50 and lik.d2 is None
    f = secr.fit(ch, mask)
    monkeypatch.setattr(secr, "CHUNK_CELLS", 10**9)
    g = secr.fit(ch, mask)
    assert g.lik.chunk_points is None
    np.testing.assert_allclose(f.beta, g.beta, atol=1e-6)
    assert abs(f.loglik - g.loglik) < 1e-9
