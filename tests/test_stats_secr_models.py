"""SECR likelihood internals: gradients, detector types, derived values, masks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irbis.stats import secr
from irbis.stats.detectfn import DETECTFNS, detect_params, is_hazard, log_shape
from irbis.stats.secr_data import CaptureHistory, Mask, Traps, make_mask


def _layout(rng: np.random.Generator, S: int = 3) -> Traps:
    xy = np.array([(x * 1000.0, y * 1000.0) for x in range(4) for y in range(3)])
    usage = rng.choice([0.0, 1.0, 2.0, 0.5], size=(12, S), p=[0.1, 0.5, 0.2, 0.2])
    usage[:, 0] = 1.0
    covs = {"hab": np.array(["a", "b"] * 6, dtype=object), "c": rng.normal(size=12)}
    return Traps([f"T{i}" for i in range(12)], xy, usage, covs)


def _mask(rng: np.random.Generator) -> Mask:
    g = np.arange(-3000.0, 6000.0, 700.0)
    X, Y = np.meshgrid(g, g)
    return Mask(np.column_stack([X.ravel(), Y.ravel()]), 700.0, {"cov": rng.normal(size=X.size)})


def _histories(rng: np.random.Generator, traps: Traps, detector: str, B: int) -> CaptureHistory:
    n, S, K = 8, traps.usage.shape[1], traps.n_traps
    counts = np.zeros((n, S, K), int)
    for i in range(n):
        for s in range(S):
            ok = np.flatnonzero(traps.usage[:, s] > 0)
            if detector == "multi":
                if rng.random() < 0.6:
                    counts[i, s, rng.choice(ok)] = 1
            else:
                for k in rng.choice(ok, 2):
                    hi = 2 if detector == "proximity" else (3 if B == 0 else B + 1)
                    counts[i, s, k] = rng.integers(1, hi)
        if counts[i].sum() == 0:
            counts[i, 0, 0] = 1
    return CaptureHistory([f"A{i}" for i in range(n)], counts, traps, detector, B)


@pytest.mark.parametrize(
    ("detector", "B"), [("count", 0), ("count", 3), ("proximity", 0), ("multi", 0)]
)
def test_analytic_gradient_matches_finite_differences(detector: str, B: int) -> None:
    rng = np.random.default_rng(7)
    traps, mask = _layout(rng), _mask(rng)
    ch = _histories(rng, traps, detector, B)
    for fn in DETECTFNS:
        for likelihood in ("full", "conditional"):
            p0 = detect_params(fn)[0]
            model = f"{p0}~hab sigma~c" + (" D~cov" if likelihood == "full" else "")
            lik = secr.SecrLikelihood(ch, mask, model, fn, likelihood)
            start = {"D": -8.0, "g0": -1.0, "lambda0": -1.0, "sigma": math.log(900.0)}
            start["z"] = math.log(4.0)
            start["w"] = math.log(300.0)
            b = rng.normal(scale=0.3, size=lik.npar)
            for blk in lik.blocks:
                b[blk.start] = start[blk.param]
            ll, g = lik.loglik_and_gradient(b)
            assert ll == pytest.approx(lik(b))
            h = 1e-6
            num = np.array([(lik(b + e) - lik(b - e)) / (2 * h) for e in np.eye(len(b)) * h])
            assert np.abs(g - num).max() <= 1e-5 * max(1.0, np.abs(num).max()), (fn, likelihood)


def test_detection_functions_shapes() -> None:
    d = np.array([0.0, 500.0, 1000.0, 3000.0])
    # the annular and threshold forms (HAN, ANN, CLN...) are checked in test_stats_secr_detectfn
    for fn in ("HN", "HR", "EX", "HHN", "HHR", "HEX", "HVP", "CG", "HCG"):
        f = np.exp(log_shape(fn, d**2, 1000.0, 3.0))
        assert f[0] == pytest.approx(1.0)
        assert np.all(np.diff(f) < 0)
    assert np.exp(log_shape("HN", np.array([1000.0**2]), 1000.0))[0] == pytest.approx(
        math.exp(-0.5)
    )
    assert is_hazard("HHN") and is_hazard("HEX") and not is_hazard("HN")


def _sim(rng, traps, mask, D, detectfn, pars, detector, B=0, S=5):
    """Small self-contained simulator (mirrors the likelihood's model)."""
    N = rng.poisson(D * mask.area)
    cells = rng.choice(mask.n_points, N)
    xy = mask.xy[cells] + (rng.random((N, 2)) - 0.5) * mask.spacing
    d2 = ((xy[:, None, :] - traps.xy[None]) ** 2).sum(-1)
    f = np.exp(log_shape(detectfn, d2, pars["sigma"], pars.get("z")))
    if is_hazard(detectfn):
        rate = pars["lambda0"] * f
        h = rate
    else:
        rate = pars["g0"] * f
        h = -np.log1p(-rate)
    counts = np.zeros((N, S, traps.n_traps), int)
    for s in range(S):
        if detector == "count" and B == 0:
            counts[:, s] = rng.poisson(h)
        elif detector == "count":
            counts[:, s] = rng.binomial(B, -np.expm1(-h))
        elif detector == "proximity":
            counts[:, s] = rng.random(h.shape) < -np.expm1(-h)
        else:
            H = h.sum(1)
            for i in np.flatnonzero(rng.random(N) < -np.expm1(-H)):
                counts[i, s, rng.choice(traps.n_traps, p=h[i] / H[i])] = 1
    seen = counts.sum(axis=(1, 2)) > 0
    return CaptureHistory([str(i) for i in range(seen.sum())], counts[seen], traps, detector, B), N


@pytest.mark.parametrize(
    ("detector", "B", "detectfn", "pars"),
    [
        ("proximity", 0, "HN", {"g0": 0.2, "sigma": 1500.0}),
        ("multi", 0, "HHN", {"lambda0": 0.3, "sigma": 1500.0}),
        ("count", 2, "EX", {"g0": 0.3, "sigma": 900.0}),
        ("count", 0, "HHR", {"lambda0": 0.3, "sigma": 1500.0, "z": 4.0}),
        ("count", 0, "HN", {"g0": 0.2, "sigma": 1500.0}),
    ],
)
def test_recovers_parameters_of_simulated_data(detector, B, detectfn, pars) -> None:
    rng = np.random.default_rng(11)
    g = np.arange(6) * 1500.0
    traps = Traps([f"T{i}" for i in range(36)], [(x, y) for x in g for y in g])
    mask = make_mask(traps, 6000.0, 750.0)
    D = 0.02  # animals / ha: ~ 570 in the mask
    ch, N = _sim(rng, traps, mask, D, detectfn, pars, detector, B)
    fit = secr.fit(ch, mask, detectfn=detectfn)
    assert fit.converged
    real = fit.real()
    # within 3.5 SE of the truth (deterministic seed; generous to keep it robust)
    for p, v in [("D", D)] + list(pars.items()):
        est, se = real[p]["estimate"], real[p]["se"]
        assert abs(est - v) < 3.5 * se, (p, est, v, se)
    assert fit.expected_n()["estimate"] == pytest.approx(real["D"]["estimate"] * mask.area)


def test_conditional_likelihood_agrees_with_full_for_constant_density() -> None:
    rng = np.random.default_rng(3)
    g = np.arange(5) * 1500.0
    traps = Traps([f"T{i}" for i in range(25)], [(x, y) for x in g for y in g])
    mask = make_mask(traps, 6000.0, 750.0)
    ch, _ = _sim(rng, traps, mask, 0.02, "HHN", {"lambda0": 0.2, "sigma": 1200.0}, "count")
    full = secr.fit(ch, mask, detectfn="HHN")
    cl = secr.fit(ch, mask, detectfn="HHN", likelihood="CL")
    assert cl.names == ["lambda0", "sigma"]
    assert np.allclose(cl.beta, full.beta[1:], atol=2e-3)
    assert np.allclose(cl.beta_se, full.beta_se[1:], rtol=0.02)
    # D = n / a(theta): the full-likelihood MLE of D~1 is the same number
    dcl = cl.density()["per_ha"]
    dfull = full.density()["per_ha"]
    assert dcl["estimate"] == pytest.approx(dfull["estimate"], rel=2e-3)
    assert dcl["se"] == pytest.approx(dfull["se"], rel=0.05)
    assert dcl["lcl"] < dcl["estimate"] < dcl["ucl"]


def test_real_newdata_model_table_and_polygon() -> None:
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(5)
    g = np.arange(5) * 1500.0
    xy = [(x, y) for x in g for y in g]
    hab = np.array(["rock" if i % 2 else "grass" for i in range(25)], dtype=object)
    traps = Traps([f"T{i}" for i in range(25)], xy, covariates={"hab": hab})
    mask = make_mask(traps, 6000.0, 750.0)
    ch, _ = _sim(rng, traps, mask, 0.02, "HHN", {"lambda0": 0.2, "sigma": 1200.0}, "count")
    f0 = secr.fit(ch, mask)
    f1 = secr.fit(ch, mask, model="lambda0~hab")
    assert f1.names == ["D", "lambda0", "lambda0.habrock", "sigma"]
    r_grass = f1.real()["lambda0"]["estimate"]
    r_rock = f1.real({"hab": "rock"})["lambda0"]["estimate"]
    assert r_rock / r_grass == pytest.approx(math.exp(f1.beta_dict()["lambda0.habrock"]))
    table = secr.model_table({"null": f0, "hab": f1})
    assert [r["name"] for r in table][0] in ("null", "hab")
    assert sum(r["AICcwt"] for r in table) == pytest.approx(1.0)
    assert table[0]["dAICc"] == 0.0
    # half the mask by a polygon: about half the expected N
    x_mid = float(np.median(mask.xy[:, 0]))
    lo, hi = mask.xy.min(axis=0) - 1e3, mask.xy.max(axis=0) + 1e3
    poly = shapely.box(lo[0], lo[1], x_mid, hi[1])
    n_all = f0.expected_n()["estimate"]
    n_half = f0.expected_n(polygon=poly)
    assert 0.4 * n_all < n_half["estimate"] < 0.6 * n_all
    assert n_half["lcl"] < n_half["estimate"] < n_half["ucl"]
    doc = f1.to_dict()
    assert doc["density_per_100km2"] == pytest.approx(doc["derived"]["D_per_100km2"]["estimate"])
    assert "D_per_100km2" in str(doc["derived"]) and "AICc" in doc
    assert "logLik" in str(f1)


def test_make_mask_buffer_spacing_and_polygon() -> None:
    shapely = pytest.importorskip("shapely")
    traps = Traps(["A", "B"], [(0.0, 0.0), (4000.0, 0.0)])
    m = make_mask(traps, 2000.0, 500.0)
    assert m.cell_area == pytest.approx(25.0)
    d = np.sqrt(((m.xy[:, None, :] - traps.xy[None]) ** 2).sum(-1)).min(axis=1)
    assert d.max() <= 2000.0
    # two touching discs of radius 2 km (hectares)
    assert m.area == pytest.approx(2 * math.pi * 2000.0**2 / 1e4, rel=0.05)
    clipped = make_mask(traps, 2000.0, 500.0, polygon=shapely.box(-3000, -3000, 2000, 3000))
    assert 0 < clipped.n_points < m.n_points
    assert clipped.xy[:, 0].max() <= 2000.0


def test_factor_levels_sorted_as_r_and_missing_factor_values() -> None:
    from irbis.core.errors import BadInputError
    from irbis.stats.formula import design_matrix, r_levels

    assert r_levels(np.array(["Saddle", "canyon", "Valley"], dtype=object)) == [
        "canyon",
        "Saddle",
        "Valley",
    ]
    v = np.array(["b", "B", "a", "a", "b", "B"], dtype=object)
    des = design_matrix("lambda0", ["hab"], {"hab": v}, 6, where="traps")
    assert des.names == ["lambda0", "lambda0.habb", "lambda0.habB"]
    with pytest.raises(BadInputError, match="missing values"):
        design_matrix(
            "sigma", ["hab"], {"hab": np.array(["a", "NA", "b"], dtype=object)}, 3, where="traps"
        )


@pytest.mark.filterwarnings("ignore:the information matrix is singular")
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), detector=st.sampled_from(["count", "proximity", "multi"]))
def test_loglik_invariant_to_order_of_animals_and_traps(seed: int, detector: str) -> None:
    rng = np.random.default_rng(seed)
    traps, mask = _layout(rng), _mask(rng)
    ch = _histories(rng, traps, detector, 0)
    beta = np.array([-8.0, -1.0, math.log(900.0)])
    ll = secr.SecrLikelihood(ch, mask, None, "HHN")(beta)
    pa, pk = rng.permutation(ch.n), rng.permutation(traps.n_traps)
    traps2 = Traps([traps.ids[k] for k in pk], traps.xy[pk], traps.usage[pk])
    ch2 = CaptureHistory([ch.ids[i] for i in pa], ch.counts[pa][:, :, pk], traps2, detector)
    assert secr.SecrLikelihood(ch2, mask, None, "HHN")(beta) == pytest.approx(ll, abs=1e-8)
    # random histories have no spatial structure: sigma runs off, SEs may be NaN
    fitted = json.dumps(secr.fit(ch, mask).to_dict())  # JSON-able
    assert "beta_se" in fitted
