"""secr's remaining detection functions: HAN, HCG, HVP, CHN, WEX, ANN, CLN, CG.

Each formula is checked at a few distances against values computed here
from the equations of secr's ``detectfn`` help page (the gamma survival for
integer shapes in closed form, the lognormal through ``erfc`` and the
mean/SD relations of the page's Note), and each likelihood against a
brute-force one written in this file (every animal x mask point x occasion x
trap probability multiplied out) to 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irbis.stats import secr
from irbis.stats.detectfn import DETECTFNS, detection_value, is_hazard
from irbis.stats.secr_data import CaptureHistory, Mask, Traps
from irbis.stats.secr_varying import make_likelihood

NEW = ("HAN", "HCG", "HVP", "CHN", "WEX", "ANN", "CLN", "CG")
D = np.array([0.0, 150.0, 400.0, 900.0, 2000.0])


def _gamma_sf(x: float, k: int) -> float:
    """Upper tail of a gamma(k, 1) at x for whole k: exp(-x) sum x^j / j!."""
    return math.exp(-x) * sum(x**j / math.factorial(j) for j in range(k))


@pytest.mark.parametrize("k", [2, 3])
def test_cumulative_gamma_forms(k: int) -> None:
    sigma = 500.0  # G(d; shape k, scale sigma / k)
    for code, first in (("HCG", "lambda0"), ("CG", "g0")):
        got = detection_value(code, D, {first: 0.7, "sigma": sigma, "z": float(k)})
        want = [0.7 * _gamma_sf(d / (sigma / k), k) for d in D]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_cumulative_lognormal_as_the_note_defines_it() -> None:
    mu, s = math.log(600.0), 0.5  # the latent threshold's log-scale mean and SD
    sigma = math.exp(mu + s * s / 2)  # Note: sigma is the threshold's mean
    z = math.sqrt(math.exp(s * s + 2 * mu) * (math.exp(s * s) - 1))  # and z its SD
    got = detection_value("CLN", D, {"g0": 0.3, "sigma": sigma, "z": z})
    want = [0.3 if d == 0 else 0.3 * 0.5 * math.erfc((math.log(d) - mu) / (s * math.sqrt(2)))
            for d in D]  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # at the median threshold distance exp(mu) detection is half of g0
    assert abs(detection_value("CLN", np.array([math.exp(mu)]), g0=0.3, sigma=sigma, z=z)[0]
               - 0.15) < 1e-12  # fmt: skip


def test_annular_exponential_and_power_forms() -> None:
    lam, g0, sigma, w, z = 0.8, 0.4, 300.0, 250.0, 1.5
    han = detection_value("HAN", D, lambda0=lam, sigma=sigma, w=w)
    ann = detection_value("ANN", D, g0=g0, sigma=sigma, w=w)
    wex = detection_value("WEX", D, g0=g0, sigma=sigma, w=w)
    hvp = detection_value("HVP", D, lambda0=lam, sigma=sigma, z=z)
    for i, d in enumerate(D):
        assert abs(han[i] - lam * math.exp(-((d - w) ** 2) / (2 * sigma**2))) < 1e-15
        assert abs(ann[i] - g0 * math.exp(-((d - w) ** 2) / (2 * sigma**2))) < 1e-15
        assert abs(wex[i] - (g0 if d < w else g0 * math.exp(-(d - w) / sigma))) < 1e-15
        assert abs(hvp[i] - lam * math.exp(-((d / sigma) ** z))) < 1e-15
    # literal values: HAN peaks at d = w; WEX is flat to w
    assert abs(han[0] - 0.8 * math.exp(-62500 / 180000)) < 1e-15
    assert wex[1] == g0 and abs(wex[2] - 0.4 * math.exp(-0.5)) < 1e-15


def test_compound_halfnormal() -> None:
    sigma, z = 400.0, 3.0
    hn = np.exp(-(D**2) / (2 * sigma**2))
    # the help page's form, g0 = 1
    doc = 1 - (1 - hn) ** z
    np.testing.assert_allclose(detection_value("CHN", D, g0=1.0, sigma=sigma, z=z), doc)
    # what secr computes (makegkPointcpp) for g0 < 1, and plain HN for round(z) <= 1
    np.testing.assert_allclose(
        detection_value("CHN", D, g0=0.4, sigma=sigma, z=z), 1 - (1 - 0.4 * hn) ** z
    )
    np.testing.assert_allclose(detection_value("CHN", D, g0=0.4, sigma=sigma, z=1.4), 0.4 * hn)


# ---------------------------------------------------------------------------
# likelihoods


def _data(detector: str) -> tuple[CaptureHistory, Mask]:
    rng = np.random.default_rng(5)
    xy = np.array([(x * 600.0, y * 600.0) for x in range(3) for y in range(2)])
    usage = np.array([[1, 1, 0.5], [1, 0, 1], [1, 1, 1], [2, 1, 1], [1, 1, 1], [0, 1, 1.0]])
    traps = Traps([f"T{i}" for i in range(6)], xy, usage, {"c": rng.normal(size=6)})
    n, S = 5, 3
    counts = np.zeros((n, S, 6), dtype=int)
    for i in range(n):
        for s in range(S):
            for k in rng.choice(6, 2, replace=False):
                if usage[k, s] > 0 and rng.random() < 0.5:
                    counts[i, s, k] = 1 if detector == "proximity" else rng.integers(1, 4)
        if counts[i].sum() == 0:
            counts[i, 0, 2] = 1
    counts[4] = counts[3]  # two identical histories: the multinomial term
    ch = CaptureHistory([f"A{i}" for i in range(n)], counts, traps, detector)
    g = np.arange(-1500.0, 2800.0, 300.0)
    gx, gy = np.meshgrid(g, g)
    return ch, Mask(np.column_stack([gx.ravel(), gy.ravel()]), 300.0)


def _brute_loglik(ch: CaptureHistory, mask: Mask, fn: str, real: dict[str, float]) -> float:
    """Full likelihood, written out: Poisson N, every history's probability per mask point."""
    t = ch.traps
    dist = np.sqrt(((mask.xy[:, None, :] - t.xy[None, :, :]) ** 2).sum(-1))  # M x K
    val = detection_value(fn, dist, real)
    h = val if is_hazard(fn) else -np.log(1 - val)
    a = mask.spacing**2 / 1e4
    M = len(mask.xy)
    n, S, K = ch.counts.shape
    pr = np.ones((n, M))
    pnone = np.ones(M)
    for s in range(S):
        for k in range(K):
            mu = t.usage[k, s] * h[:, k]
            p = 1 - np.exp(-mu)
            pnone *= np.exp(-mu)
            for i in range(n):
                y = ch.counts[i, s, k]
                if ch.detector == "proximity":
                    pr[i] *= p if y else 1 - p
                else:
                    pr[i] *= np.exp(-mu) * mu**y / math.factorial(y)
    Dm = real["D"]
    lam = Dm * a * (1 - pnone).sum()
    ll = -lam + sum(math.log((Dm * a * pr[i]).sum()) for i in range(n))
    _, mult = np.unique(ch.counts.reshape(n, -1), axis=0, return_counts=True)
    return ll - sum(math.lgamma(m + 1) for m in mult)


REAL = {"D": 0.02, "lambda0": 0.6, "g0": 0.35, "sigma": 450.0}
THIRD = {"HAN": 300.0, "WEX": 200.0, "ANN": 300.0, "HCG": 2.5, "CG": 2.5, "HVP": 1.6,
         "CLN": 250.0, "CHN": 3.0}  # fmt: skip


@pytest.mark.parametrize("detector", ["count", "proximity"])
@pytest.mark.parametrize("fn", NEW)
def test_likelihood_matches_brute_force(fn: str, detector: str) -> None:
    ch, mask = _data(detector)
    names = DETECTFNS[fn]
    real = {"D": REAL["D"], names[0]: REAL[names[0]], "sigma": REAL["sigma"],
            names[2]: THIRD[fn]}  # fmt: skip
    lik = secr.SecrLikelihood(ch, mask, detectfn=fn)
    assert lik.names == ["D", *names]
    beta = np.array([math.log(real["D"])] + [
        math.log(real[p] / (1 - real[p])) if p == "g0" else math.log(real[p]) for p in names
    ])  # fmt: skip
    want = _brute_loglik(ch, mask, fn, real)
    assert abs(lik(beta) - want) < 1e-6
    # the varying-detection path (a T term at 0) computes the same likelihood
    vl = make_likelihood(ch, mask, f"{names[0]}~T", fn)
    assert abs(vl(np.insert(beta, 2, 0.0)) - want) < 1e-6
    # analytic gradients (both paths) against central differences
    for L, b in ((lik, beta), (vl, np.insert(beta, 2, 0.05))):
        _, g = L.loglik_and_gradient(b)
        for j in range(len(b)):
            e = np.zeros(len(b))
            e[j] = 1e-5
            fd = (L(b + e) - L(b - e)) / 2e-5
            assert abs(fd - g[j]) < 1e-4 * max(1.0, abs(fd)), (fn, L.names[j], fd, g[j])


@pytest.mark.parametrize("fn", ["HAN", "CLN", "HVP", "CHN"])
def test_fits_recover_a_simulated_survey(fn: str) -> None:
    from irbis.stats.simulate import simulate_capthist, simulate_popn

    rng = np.random.default_rng(3)
    xy = np.array([(x * 500.0, y * 500.0) for x in range(7) for y in range(7)])
    traps = Traps([f"T{i}" for i in range(49)], xy)
    g = np.arange(-2000.0, 5100.0, 250.0)
    gx, gy = np.meshgrid(g, g)
    mask = Mask(np.column_stack([gx.ravel(), gy.ravel()]), 250.0)
    names = DETECTFNS[fn]
    truth = {names[0]: 0.3 if names[0] == "lambda0" else 0.25, "sigma": 400.0,
             names[2]: THIRD[fn]}  # fmt: skip
    centres = simulate_popn(mask, 0.015, rng=rng)
    ch = simulate_capthist(traps, centres, fn, truth, detector="proximity", n_occasions=5,
                           rng=rng)  # fmt: skip
    f = secr.fit(ch, mask, detectfn=fn)
    assert f.converged, f.message
    d = f.density()["per_ha"]
    assert d["lcl"] < 0.015 < d["ucl"]
    # the MLE beats the truth on the likelihood
    tb = np.array([math.log(0.015)] + [
        math.log(truth[p] / (1 - truth[p])) if p == "g0" else math.log(truth[p]) for p in names
    ])  # fmt: skip
    assert f.loglik >= f.lik(tb) - 1e-6
