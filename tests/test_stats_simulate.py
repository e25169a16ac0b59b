"""SECR simulator: detector semantics, and CI coverage of D on a snow-leopard design."""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.secr_data import Traps, make_mask
from irbis.stats.simulate import detection_rate, simulate_capthist, simulate_popn

D_TRUE = 1.5e-4  # animals per ha = 1.5 per 100 km^2
SIGMA = 5000.0
LAMBDA0 = 1.0


def _design() -> tuple[Traps, object]:
    """40 cameras on a 4 km grid (8 x 5), mask buffer 4 sigma at sigma / 2 spacing."""
    gx, gy = np.meshgrid(np.arange(8) * 4000.0, np.arange(5) * 4000.0)
    traps = Traps(
        ids=[f"C{i:02d}" for i in range(40)], xy=np.column_stack([gx.ravel(), gy.ravel()])
    )
    return traps, make_mask(traps, buffer=4 * SIGMA, spacing=SIGMA / 2)


def test_population_size_and_placement() -> None:
    traps, mask = _design()
    rng = np.random.default_rng(0)
    sizes = [len(simulate_popn(mask, D_TRUE, rng=rng)) for _ in range(300)]
    expected = D_TRUE * mask.area
    assert abs(np.mean(sizes) - expected) < 4 * math.sqrt(expected / 300)
    assert np.var(sizes) == pytest.approx(expected, rel=0.3)  # Poisson
    xy = simulate_popn(mask, N=50, rng=1)
    assert xy.shape == (50, 2)
    # every centre lies in some mask cell
    near = np.abs(xy[:, None, :] - mask.xy[None, :, :]).max(axis=2).min(axis=1)
    assert np.all(near <= mask.spacing / 2 + 1e-6)


@pytest.mark.parametrize("detector", ["count", "proximity", "multi"])
@pytest.mark.parametrize("detectfn", ["HHN", "HN", "HHR", "EX"])
def test_detectors_match_expectations(detector: str, detectfn: str) -> None:
    traps, _ = _design()
    params = {"sigma": SIGMA, "z": 3.0}
    params["lambda0" if detectfn.startswith("HH") else "g0"] = 0.4
    centre = np.array([[14000.0, 8000.0]])
    centres = np.repeat(centre, 4000, axis=0)
    counts, _ = simulate_capthist(
        traps,
        centres,
        detectfn,
        params,
        detector=detector,
        n_occasions=2,
        rng=3,
        keep_undetected=True,
    )
    d = np.sqrt(((centre - traps.xy) ** 2).sum(axis=1))
    rate = detection_rate(detectfn, d, params)
    h = rate if detectfn.startswith("HH") else -np.log1p(-rate)
    if detector == "count":
        expected = h  # Poisson mean per occasion: the hazard (secr's convention)
    elif detector == "proximity":
        expected = 1 - np.exp(-h)
    else:
        expected = (1 - np.exp(-h.sum())) * h / h.sum()
        assert counts.sum(axis=2).max() <= 1
    got = counts.mean(axis=(0, 1))
    assert np.allclose(got, expected, atol=5 * np.sqrt(expected.max() / 8000) + 1e-3)


def test_binomial_counts_and_usage() -> None:
    traps, _ = _design()
    usage = np.ones((40, 3))
    usage[:5, 1] = 0
    traps = Traps(traps.ids, traps.xy, usage=usage)
    centres = np.repeat(np.array([[2000.0, 2000.0]]), 2000, axis=0)
    counts, _ = simulate_capthist(
        traps,
        centres,
        "HHN",
        {"lambda0": 0.5, "sigma": SIGMA},
        detector="count",
        binom_size=4,
        rng=5,
        keep_undetected=True,
    )
    assert counts.max() <= 4
    assert counts[:, 1, :5].sum() == 0  # unused traps catch nothing
    assert counts.shape == (2000, 3, 40)


def test_simulated_fit_recovers_parameters() -> None:
    traps, mask = _design()
    rng = np.random.default_rng(42)
    centres = simulate_popn(mask, D_TRUE * 4, rng=rng)
    ch = simulate_capthist(
        traps, centres, "HHN", {"lambda0": LAMBDA0, "sigma": SIGMA}, n_occasions=2, rng=rng
    )
    fit = secr.fit(ch, mask, detectfn="HHN")
    real = fit.real()
    assert real["D"]["lcl"] < D_TRUE * 4 < real["D"]["ucl"]
    assert real["sigma"]["lcl"] < SIGMA < real["sigma"]["ucl"]
    assert real["lambda0"]["lcl"] < LAMBDA0 < real["lambda0"]["ucl"]


def test_no_detections_is_clear() -> None:
    traps, _ = _design()
    far = np.array([[1e7, 1e7]])
    with pytest.raises(BadInputError, match="no animal was detected"):
        simulate_capthist(traps, far, "HHN", {"lambda0": 1.0, "sigma": SIGMA}, rng=0)


def _one_replicate(seed: int) -> tuple[bool, float, int]:
    traps, mask = _design()
    rng = np.random.default_rng([20261125, seed])
    centres = simulate_popn(mask, D_TRUE, rng=rng)
    ch = simulate_capthist(
        traps, centres, "HHN", {"lambda0": LAMBDA0, "sigma": SIGMA}, detector="count", rng=rng
    )
    start = {"D": math.log(D_TRUE), "lambda0": math.log(LAMBDA0), "sigma": math.log(SIGMA)}
    fit = secr.fit(ch, mask, detectfn="HHN", start=start)
    d = fit.density()["per_ha"]
    return bool(d["lcl"] <= D_TRUE <= d["ucl"]), float(d["estimate"]), ch.n


@pytest.mark.slow
def test_density_ci_coverage_snow_leopard_design() -> None:
    """200 surveys: D 1.5 / 100 km^2, sigma 5 km, 40 cameras, one occasion."""
    n_sims = 200
    workers = min(2, os.cpu_count() or 1)
    # one BLAS thread per worker: busy-waiting BLAS threads slow a 2-core box down
    threads = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    os.environ.update(dict.fromkeys(threads, "1"))
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            res = list(pool.map(_one_replicate, range(n_sims), chunksize=10))
    finally:
        for k, v in threads.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    covered = sum(r[0] for r in res)
    est = np.array([r[1] for r in res])
    assert 0.93 * n_sims <= covered <= 0.97 * n_sims, covered
    # and the estimator is close to unbiased
    assert abs(np.mean(est) / D_TRUE - 1) < 0.06


@pytest.mark.parametrize("detector", ["count", "proximity"])
def test_expected_yield_matches_simulation(detector: str) -> None:
    from irbis.stats.design import expected_yield

    traps, mask = _design()
    params = {"lambda0": LAMBDA0, "sigma": SIGMA}
    ey = expected_yield(traps, mask, D_TRUE, "HHN", params, detector=detector, n_occasions=2)
    rng = np.random.default_rng(9)
    n, det, movers = [], [], []
    for _ in range(300):
        centres = simulate_popn(mask, D_TRUE, rng=rng)
        counts, _ = simulate_capthist(
            traps, centres, "HHN", params, detector=detector, n_occasions=2, rng=rng,
            keep_undetected=True,
        )  # fmt: skip
        seen = counts.sum(axis=(1, 2)) > 0
        n.append(seen.sum())
        det.append(counts.sum())
        movers.append(((counts.sum(axis=1) > 0).sum(axis=1) >= 2).sum())
    assert np.mean(n) == pytest.approx(ey["n"], rel=0.05)
    assert np.mean(det) == pytest.approx(ey["detections"], rel=0.05)
    assert np.mean(movers) == pytest.approx(ey["movers"], rel=0.06)
    assert ey["recaptures"] == pytest.approx(ey["detections"] - ey["n"])
    assert 0 < ey["rse_D"] < 1
    assert ey["N"] == pytest.approx(D_TRUE * mask.area)


def test_simulate_design_small() -> None:
    from irbis.stats.design import simulate_design

    traps, mask = _design()
    res = simulate_design(
        traps, mask, D_TRUE * 2, "HHN", {"lambda0": LAMBDA0, "sigma": SIGMA}, n_sims=4, rng=1
    )
    assert res["n_sims"] == 4
    assert 0 < res["mean_model_rse"] < 1
