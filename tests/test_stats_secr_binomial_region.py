"""Binomial N (secr's distribution = "binomial") and region.N against sums written here.

R (not run here; the calls these tests stand for)::

    fitb <- secr.fit(ch, mask = msk, detectfn = "HHN",
                     details = list(distribution = "binomial"))
    region.N(fit, region = poly)     # E.N, R.N with SE.estimate, lcl, ucl, n

secr's full likelihood with binomial N replaces ``dpois(n, N P)`` by
``lnbinomial(n, N, P)`` (``N = sum(D) * cell area`` and ``P`` the
density-weighted mean of ``p.(x)``); the brute-force version below is
``lnbinomial(n, N, P) + log n! + sum_i log(sum_m Pr(w_i | m) / sum_m p.(m)) -
sum_w log n_w!`` with every probability from loops over occasions and traps.
region.N: ``E.N = sum_region D * cell``, ``R.N = n + sum_region D (1 - p.) * cell``,
``SE(R.N) = sqrt(SE(E.N)^2 - E.N)``, log-normal limits above 0 and n.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import gammaln, logsumexp
from shapely.geometry import box, mapping

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.secr_data import Traps
from irbis.stats.secr_sessions import fit_sessions
from irbis.stats.secr_varying import make_likelihood
from irbis.stats.simulate import simulate_capthist, simulate_popn

from .test_stats_secr_sessions import _survey


def _pdot_hhn(xy: np.ndarray, traps: Traps, S: int, lam0: float, sigma: float) -> np.ndarray:
    u = traps.usage_matrix(S)
    out = np.empty(len(xy))
    for m, p in enumerate(xy):
        log_q = 0.0
        for k in range(traps.n_traps):
            d2 = float(((p - traps.xy[k]) ** 2).sum())
            for s in range(S):
                log_q -= u[k, s] * lam0 * math.exp(-d2 / (2 * sigma**2))
        out[m] = 1.0 - math.exp(log_q)
    return out


def brute_binomial(ch, mask, D: float, lam0: float, sigma: float) -> float:
    a = mask.cell_area
    S, K = ch.n_occasions, ch.traps.n_traps
    u = ch.traps.usage_matrix(S)
    pdot = _pdot_hhn(mask.xy, ch.traps, S, lam0, sigma)
    N = D * a * mask.n_points
    P = float(pdot.mean())
    n = ch.n
    ll = gammaln(N + 1) - gammaln(N - n + 1) - gammaln(n + 1) + n * math.log(P)
    ll += (N - n) * math.log(1 - P) + gammaln(n + 1)
    d2 = ((mask.xy[:, None, :] - ch.traps.xy[None, :, :]) ** 2).sum(-1)
    for i in range(n):
        lp = np.zeros(mask.n_points)
        for s in range(S):
            for k in range(K):
                mu = u[k, s] * lam0 * np.exp(-d2[:, k] / (2 * sigma**2))
                c = ch.counts[i, s, k]
                lp += c * np.log(np.maximum(mu, 1e-300)) - mu - gammaln(c + 1)
        ll += logsumexp(lp) - math.log(pdot.sum())
    _, mult = np.unique(ch.counts.reshape(n, -1), axis=0, return_counts=True)
    return float(ll - gammaln(mult + 1).sum())


def _fd(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for j in range(len(x)):
        e = np.zeros_like(x)
        e[j] = h
        g[j] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.fixture(scope="module")
def survey():
    rng = np.random.default_rng(11)
    g = np.arange(5) * 1500.0
    xy = [(x, y) for x in g for y in g]
    tr = Traps([f"T{i}" for i in range(25)], xy, np.ones((25, 3)))
    m = secr.make_mask(tr, 5000.0, 1000.0)
    m.covariates["hab"] = (m.xy[:, 0] > 3000).astype(float)
    pop = simulate_popn(m, 0.012, rng=rng)
    ch = simulate_capthist(tr, pop, "HHN", {"lambda0": 0.25, "sigma": 1300.0}, rng=rng)
    return ch, m


def test_binomial_likelihood_against_brute_force(survey) -> None:
    ch, m = survey
    lik = secr.SecrLikelihood(ch, m, distribution="binomial")
    for D, lam0, sig in ((0.012, 0.25, 1300.0), (0.02, 0.1, 1800.0)):
        beta = np.log([D, lam0, sig])
        assert lik(beta) == pytest.approx(brute_binomial(ch, m, D, lam0, sig), abs=1e-6)
    # N below n: impossible, as secr's lnbinomial
    assert lik(np.log([0.5 * ch.n / m.area, 0.25, 1300.0])) == -math.inf


@pytest.mark.parametrize("model", ["D~hab", "D~hab lambda0~b"])
def test_binomial_gradient(survey, model) -> None:
    ch, m = survey
    lik = make_likelihood(ch, m, model, distribution="binomial")
    beta = lik.start_values() + 0.05
    _, g = lik.loglik_and_gradient(beta)
    np.testing.assert_allclose(g, _fd(lik, beta), rtol=1e-5, atol=1e-5)


def test_binomial_fit(survey) -> None:
    ch, m = survey
    pois = secr.fit(ch, m)
    binom = secr.fit(ch, m, distribution="binomial")
    assert binom.converged and binom.to_dict()["distribution"] == "binomial"
    # same D-hat (to a small difference), smaller SE: N is not Poisson (secr's known result)
    dp, db = pois.real()["D"], binom.real()["D"]
    assert db["estimate"] == pytest.approx(dp["estimate"], rel=0.02)
    assert db["se"] < dp["se"]
    with pytest.raises(BadInputError, match="binomial N needs the full"):
        secr.fit(ch, m, likelihood="conditional", distribution="binomial")
    with pytest.raises(BadInputError, match="'poisson' or 'binomial'"):
        secr.SecrLikelihood(ch, m, distribution="negbin")
    ss, masks = _survey(np.random.default_rng(3), 0.01, 1.2, n_sessions=2)
    fs = fit_sessions(ss, masks, "D~session lambda0~session sigma~session", distribution="binomial")
    assert fs.converged and fs.lik.distribution == "binomial"
    sep = [secr.fit(c, mk, distribution="binomial") for (_, c), mk in zip(ss, masks, strict=True)]
    assert fs.loglik == pytest.approx(sep[0].loglik + sep[1].loglik, abs=1e-3)


def test_region_n_over_the_mask_and_a_polygon(survey) -> None:
    ch, m = survey
    fit = secr.fit(ch, m)
    b = fit.beta_dict()
    D, lam0, sig = math.exp(b["D"]), math.exp(b["lambda0"]), math.exp(b["sigma"])
    r = fit.region_n()
    en = fit.derived()["N"]
    assert r["E.N"]["estimate"] == pytest.approx(en["estimate"], rel=1e-9)
    assert r["E.N"]["se"] == pytest.approx(en["se"], rel=1e-4)
    pdot = _pdot_hhn(m.xy, ch.traps, ch.n_occasions, lam0, sig)
    rn = ch.n + D * m.cell_area * float((1 - pdot).sum())
    assert r["R.N"]["estimate"] == pytest.approx(rn, rel=1e-9)
    se_rn = math.sqrt(r["E.N"]["se"] ** 2 - r["E.N"]["estimate"])
    assert r["R.N"]["se"] == pytest.approx(se_rn, rel=1e-9)
    zq = 1.959963984540054
    d = rn - ch.n
    c = math.exp(zq * math.sqrt(math.log1p((se_rn / d) ** 2)))
    assert r["R.N"]["lcl"] == pytest.approx(ch.n + d / c, rel=1e-6)
    assert r["R.N"]["ucl"] == pytest.approx(ch.n + d * c, rel=1e-6)
    # a polygon: points at the mask spacing from its corner plus half a spacing
    poly = box(-1000.0, -1000.0, 7000.0, 5000.0)
    rp = fit.region_n(poly)
    assert rp["points"] == 8 * 6 and rp["region_km2"] == pytest.approx(48.0)
    assert rp["E.N"]["estimate"] == pytest.approx(D * 48 * 100, rel=1e-9)


def test_region_n_density_surface_and_conditional(survey) -> None:
    ch, m = survey
    fit = secr.fit(ch, m, "D~x")
    b = fit.beta_dict()
    poly = box(0.0, 0.0, 6000.0, 6000.0)
    r = fit.region_n(poly, spacing=500.0)
    gx = np.arange(250.0, 6000.0, 500.0)
    X, Y = np.meshgrid(gx, gx)
    mu, sd = m.xy[:, 0].mean(), m.xy[:, 0].std(ddof=1)
    D = np.exp(b["D"] + b["D.x"] * (X.ravel() - mu) / sd)
    assert r["points"] == X.size
    assert r["E.N"]["estimate"] == pytest.approx(D.sum() * 25.0, rel=1e-9)
    cl = secr.fit(ch, m, likelihood="conditional")
    rc = cl.region_n(poly, spacing=500.0)
    dh = cl.density()["per_ha"]
    assert rc["E.N"]["estimate"] == pytest.approx(dh["estimate"] * X.size * 25.0, rel=1e-9)
    assert rc["E.N"]["se"] == pytest.approx(dh["se"] * X.size * 25.0, rel=1e-9)


def test_region_n_per_session() -> None:
    ss, masks = _survey(np.random.default_rng(5), 0.01, 1.3, n_sessions=2)
    joint = fit_sessions(ss, masks, "D~session lambda0~session sigma~session")
    single = secr.fit(ss.histories[1], masks[1])
    a, b = joint.region_n(1), single.region_n()
    assert a["n"] == b["n"] == ss.histories[1].n
    for key in ("E.N", "R.N"):
        assert a[key]["estimate"] == pytest.approx(b[key]["estimate"], rel=1e-3)
        assert a[key]["se"] == pytest.approx(b[key]["se"], rel=2e-2)


def test_cli_region_and_binomial(tmp_path) -> None:
    """``irbis secr fit --region poly.geojson --distribution binomial`` on the real Nemegt data."""
    from typer.testing import CliRunner

    from irbis.cli.stats_cmd import secr_app

    from .conftest import need_data

    folder = need_data("secr", "nemegt")
    tr = secr.read_traps(folder / "traps.csv")
    ch = secr.read_captures(folder / "captures.csv", tr)
    m = secr.read_mask(folder / "mask.csv")
    x0, y0 = m.xy.min(axis=0)
    x1, y1 = m.xy.max(axis=0)
    poly = box(x0, y0, (x0 + x1) / 2, y1)
    gj = tmp_path / "west.geojson"
    gj.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": mapping(poly)}))
    wkt = tmp_path / "west.wkt"
    wkt.write_text(poly.wkt)
    args = ["fit", "--traps", str(folder / "traps.csv"), "--captures", str(folder / "captures.csv"),
            "--mask", str(folder / "mask.csv")]  # fmt: skip
    res = CliRunner().invoke(secr_app, args + ["--region", str(gj), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    direct = secr.fit(ch, m).region_n(poly)
    for key in ("E.N", "R.N"):
        assert doc["region_N"][key]["estimate"] == pytest.approx(direct[key]["estimate"], rel=1e-4)
    res = CliRunner().invoke(secr_app, args + ["--region", str(wkt), "--distribution", "binomial"])
    assert res.exit_code == 0, res.output
    assert "realised N in region" in res.output
    assert "binomial N: R.N does not apply" in res.output
    bad = tmp_path / "line.wkt"
    bad.write_text("LINESTRING (0 0, 1 1)")
    res = CliRunner().invoke(secr_app, args + ["--region", str(bad)])
    assert res.exit_code != 0 and "not a polygon" in res.output and "Traceback" not in res.output
