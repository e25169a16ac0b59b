"""R's model language in SECR formulas: interactions, -1, poly(), trend surfaces, links, fixed.

Expected design matrices are written out by hand as R's ``model.matrix``
gives them for the small factor data below (treatment contrasts, the first
factor fastest in interaction columns, a factor coded by indicators where
its margin is absent, full indicators for the first factor without an
intercept). The fits are checked against equivalent parameterisations and
against the plain likelihood at the transformed coefficients.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.formula import design_matrix, parse_model, poly_basis
from irbis.stats.secr_data import CaptureHistory, Mask, Traps
from irbis.stats.simulate import simulate_capthist, simulate_popn

TOPO = np.array(["A", "B", "C", "A", "B", "C"], dtype=object)
WATER = np.array(["No", "No", "No", "Yes", "Yes", "Yes"], dtype=object)
X = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
COVS = {"Topo": TOPO, "Water": WATER, "x": X}


def _mm(rhs: str) -> tuple[list[str], np.ndarray]:
    terms = parse_model(f"p~{rhs}", ("p",))["p"]
    d = design_matrix("p", terms, COVS, 6, where="traps")
    return d.names, d.matrix


def _ind(levels: np.ndarray, lev: str) -> np.ndarray:
    return (levels == lev).astype(float)


def test_crossing_expands_as_r() -> None:
    names, m = _mm("Topo*Water")
    assert names == ["p", "p.TopoB", "p.TopoC", "p.WaterYes", "p.TopoB:WaterYes",
                     "p.TopoC:WaterYes"]  # fmt: skip
    expect = np.array(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 0, 1, 0, 0, 0],
            [1, 0, 0, 1, 0, 0],
            [1, 1, 0, 1, 1, 0],
            [1, 0, 1, 1, 0, 1],
        ],
        dtype=float,
    )
    np.testing.assert_array_equal(m, expect)


def test_interaction_without_margins_uses_indicators() -> None:
    # model.matrix(~Topo:Water): intercept plus all six cells (rank deficient, as R)
    names, m = _mm("Topo:Water")
    assert names == ["p", "p.TopoA:WaterNo", "p.TopoB:WaterNo", "p.TopoC:WaterNo",
                     "p.TopoA:WaterYes", "p.TopoB:WaterYes", "p.TopoC:WaterYes"]  # fmt: skip
    np.testing.assert_array_equal(m[:, 1:], np.eye(6))


def test_nested_and_slope_codings() -> None:
    names, m = _mm("Topo + Topo:Water")
    assert names == ["p", "p.TopoB", "p.TopoC", "p.TopoA:WaterYes", "p.TopoB:WaterYes",
                     "p.TopoC:WaterYes"]  # fmt: skip
    np.testing.assert_array_equal(m[:, 3], [0, 0, 0, 1, 0, 0])
    names, m = _mm("x:Topo")
    assert names == ["p", "p.x:TopoA", "p.x:TopoB", "p.x:TopoC"]
    np.testing.assert_array_equal(m[:, 2], X * _ind(TOPO, "B"))
    names, m = _mm("x + x:Topo")
    assert names == ["p", "p.x", "p.x:TopoB", "p.x:TopoC"]
    # terms are ordered by degree, variables in order of appearance, first fastest
    names, m = _mm("Water:Topo + x")
    assert names == ["p", "p.x", "p.WaterNo:TopoA", "p.WaterYes:TopoA", "p.WaterNo:TopoB",
                     "p.WaterYes:TopoB", "p.WaterNo:TopoC", "p.WaterYes:TopoC"]  # fmt: skip
    np.testing.assert_array_equal(m[:, 3], _ind(WATER, "Yes") * _ind(TOPO, "A"))


def test_no_intercept() -> None:
    names, m = _mm("Topo - 1")
    assert names == ["p.TopoA", "p.TopoB", "p.TopoC"]
    np.testing.assert_array_equal(m, np.column_stack([_ind(TOPO, v) for v in "ABC"]))
    names, _ = _mm("0 + Topo + Water")
    assert names == ["p.TopoA", "p.TopoB", "p.TopoC", "p.WaterYes"]
    names, _ = _mm("x + Water - 1")  # the first factor gets indicators even after x
    assert names == ["p.x", "p.WaterNo", "p.WaterYes"]
    names, _ = _mm("Topo*Water - Topo:Water")
    assert names == ["p", "p.TopoB", "p.TopoC", "p.WaterYes"]


def test_poly_as_r() -> None:
    # R: poly(1:5, 2) = (x - 3)/sqrt(10) and ((x - 3)^2 - 2)/sqrt(14)
    Z, coefs = poly_basis(np.arange(1.0, 6.0), 2)
    np.testing.assert_allclose(Z[:, 0], (np.arange(1, 6) - 3) / math.sqrt(10), atol=1e-14)
    np.testing.assert_allclose(Z[:, 1], np.array([2, -1, -2, -1, 2]) / math.sqrt(14), atol=1e-14)
    np.testing.assert_allclose(coefs["alpha"], [3.0, 3.0])
    np.testing.assert_allclose(coefs["norm2"], [1.0, 5.0, 10.0, 14.0])
    # prediction by the recurrence reproduces the fitted columns
    P, _ = poly_basis(np.arange(1.0, 6.0), 2, coefs)
    np.testing.assert_allclose(P, Z, atol=1e-13)
    names, m = _mm("poly(x,2)")
    assert names == ["p", "p.poly(x, 2)1", "p.poly(x, 2)2"]
    assert abs(m[:, 1] @ m[:, 2]) < 1e-12 and abs(m[:, 1].sum()) < 1e-12
    names, m = _mm("poly(x, degree = 2, raw = TRUE)")
    np.testing.assert_array_equal(m[:, 2], X**2)


@pytest.mark.parametrize(
    ("rhs", "needle"),
    [
        ("s(x, k = 3, bs = 'cr')", 'only bs = "tp"'),
        ("te(x, Topo)", "s(x, k = 5)"),
        ("log(x)", "log() in"),
        ("I(x^2)", "not supported"),
        ("I(x)", "I() in"),
        ("(Topo + Water)^2", "not supported"),
        ("Topo %in% Water", "not supported"),
        ("2", "constant"),
        ("Topo +", "dangling"),
        ("poly(x, y, degree = 2)", "one covariate"),
    ],
)
def test_unknown_terms_refused_in_one_line(rhs: str, needle: str) -> None:
    with pytest.raises(BadInputError) as err:
        parse_model(f"D~1 lambda0~{rhs} sigma~1", ("D", "lambda0", "sigma"))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_formula_splitting_keeps_calls_whole() -> None:
    f = parse_model(
        "D ~ x + y, lambda0 ~ Topo * Water; sigma~poly(x , 2)", ("D", "lambda0", "sigma")
    )
    assert f == {"D": ["x", "y"], "lambda0": ["Topo", "Water", "Topo:Water"],
                 "sigma": ["poly(x, 2)"]}  # fmt: skip


# ---------------------------------------------------------------------------
# fits


@pytest.fixture(scope="module")
def survey() -> tuple[CaptureHistory, Mask]:
    rng = np.random.default_rng(11)
    xy = np.array([(x * 800.0, y * 800.0) for x in range(6) for y in range(6)])
    topo = np.array(["A", "B", "C"] * 12, dtype=object)
    water = np.array((["No"] * 3 + ["Yes"] * 3) * 6, dtype=object)
    traps = Traps([f"T{i}" for i in range(36)], xy, None, {"Topo": topo, "Water": water})
    g = np.arange(-2400.0, 6400.0, 400.0)
    gx, gy = np.meshgrid(g, g)
    mask = Mask(np.column_stack([gx.ravel(), gy.ravel()]), 400.0)
    centres = simulate_popn(mask, 0.004, rng=rng)
    ch = simulate_capthist(
        traps, centres, "HHN", {"lambda0": 0.4, "sigma": 600.0}, n_occasions=4, rng=rng
    )
    return ch, mask


def test_interaction_fit_equals_cell_factor(survey: tuple[CaptureHistory, Mask]) -> None:
    ch, mask = survey
    t = ch.traps
    cell = np.array([f"{a}{b}" for a, b in zip(t.covariates["Topo"], t.covariates["Water"],
                                                strict=True)], dtype=object)  # fmt: skip
    covs = dict(t.covariates, cell=cell)
    ch2 = CaptureHistory(ch.ids, ch.counts, Traps(t.ids, t.xy, None, covs), ch.detector)
    a = secr.fit(ch2, mask, "lambda0~Topo*Water", hessian=False)
    b = secr.fit(ch2, mask, "lambda0~cell", hessian=False)
    c = secr.fit(ch2, mask, "lambda0~cell - 1", hessian=False)
    assert a.names[1:7] == ["lambda0", "lambda0.TopoB", "lambda0.TopoC", "lambda0.WaterYes",
                            "lambda0.TopoB:WaterYes", "lambda0.TopoC:WaterYes"]  # fmt: skip
    assert abs(a.loglik - b.loglik) < 1e-6 and abs(a.loglik - c.loglik) < 1e-6
    # the same cell means: log lambda0 at Topo C, Water Yes
    ba, bc = a.beta_dict(), c.beta_dict()
    cy = sum(ba[k] for k in ("lambda0", "lambda0.TopoC", "lambda0.WaterYes",
                             "lambda0.TopoC:WaterYes"))  # fmt: skip
    assert abs(cy - bc["lambda0.cellCYes"]) < 1e-3
    r = a.real({"Topo": "C", "Water": "Yes"})["lambda0"]["estimate"]
    assert abs(math.log(r) - cy) < 1e-12


def test_trend_surface_is_standardised_coordinates(survey: tuple[CaptureHistory, Mask]) -> None:
    ch, mask = survey
    xy = mask.xy
    z = (xy - xy.mean(axis=0)) / xy.std(axis=0, ddof=1)
    own = Mask(xy, mask.spacing, {"xs": z[:, 0], "ys": z[:, 1], "xys": z[:, 0] * z[:, 1]})
    lik = secr.SecrLikelihood(ch, mask, "D~x+y+x2+y2+xy")
    assert lik.names[:6] == ["D", "D.x", "D.y", "D.x2", "D.y2", "D.xy"]
    np.testing.assert_allclose(lik.blocks[0].design.matrix[:, 3], z[:, 0] ** 2)
    a = secr.fit(ch, mask, "D~x+y+xy", hessian=False)
    b = secr.fit(ch, own, "D~xs+ys+xys", hessian=False)
    np.testing.assert_allclose(a.beta, b.beta, atol=2e-4)
    assert abs(a.loglik - b.loglik) < 1e-7
    with pytest.raises(BadInputError, match="trend-surface"):
        secr.SecrLikelihood(ch, Mask(xy, mask.spacing, {"x": z[:, 0]}), "D~x")


def test_identity_link_and_fixed(survey: tuple[CaptureHistory, Mask]) -> None:
    ch, mask = survey
    base = secr.fit(ch, mask)
    ident = secr.fit(ch, mask, link={"D": "identity", "sigma": "identity"})
    assert abs(base.loglik - ident.loglik) < 1e-6
    bd, idd = base.beta_dict(), ident.beta_dict()
    assert abs(idd["D"] - math.exp(bd["D"])) < 1e-4 * math.exp(bd["D"])
    assert abs(idd["sigma"] - math.exp(bd["sigma"])) < 1e-3 * math.exp(bd["sigma"])
    # same real estimates and SEs (delta method on either scale)
    for p in ("D", "sigma"):
        r0, r1 = base.real()[p], ident.real()[p]
        assert abs(r0["estimate"] / r1["estimate"] - 1) < 1e-4
        assert abs(r0["se"] / r1["se"] - 1) < 2e-3
    assert ident.real()["D"]["link"] == "identity"
    # the identity-link likelihood is the log-link one at the logged coefficients
    lik_i = secr.SecrLikelihood(ch, mask, link={"D": "identity", "lambda0": "identity"})
    lik_l = secr.SecrLikelihood(ch, mask)
    b = np.array([0.004, 0.3, math.log(650.0)])
    assert abs(lik_i(b) - lik_l(np.array([math.log(0.004), math.log(0.3), b[2]]))) < 1e-9
    ll, g = lik_i.loglik_and_gradient(b)
    for j in range(3):
        h = 1e-6 * abs(b[j])
        e = np.zeros(3)
        e[j] = h
        fd = (lik_i(b + e) - lik_i(b - e)) / (2 * h)
        assert abs(fd - g[j]) < 1e-5 * max(1.0, abs(g[j]))
    # sigma fixed at its estimate: the same maximum; fixed elsewhere: the profile
    s_hat = base.real()["sigma"]["estimate"]
    fx = secr.fit(ch, mask, fixed={"sigma": s_hat})
    assert fx.names == ["D", "lambda0"] and abs(fx.loglik - base.loglik) < 1e-5
    assert fx.real()["sigma"] == {"estimate": s_hat, "se": 0.0, "lcl": s_hat, "ucl": s_hat,
                                  "link": "fixed"}  # fmt: skip
    fx2 = secr.fit(ch, mask, fixed={"sigma": 1.3 * s_hat})
    full = secr.SecrLikelihood(ch, mask)
    beta = np.array([fx2.beta[0], fx2.beta[1], math.log(1.3 * s_hat)])
    assert abs(full(beta) - fx2.loglik) < 1e-9 and fx2.loglik < base.loglik - 0.01
    assert "sigma=" in fx2.model


def test_refusals(survey: tuple[CaptureHistory, Mask]) -> None:
    ch, mask = survey
    with pytest.raises(BadInputError, match="fixed and modelled"):
        secr.SecrLikelihood(ch, mask, "sigma~Topo", fixed={"sigma": 500.0})
    with pytest.raises(BadInputError, match="link 'logit' for sigma"):
        secr.SecrLikelihood(ch, mask, link={"sigma": "logit"})
    with pytest.raises(BadInputError, match="no real parameter 'g0'"):
        secr.SecrLikelihood(ch, mask, fixed={"g0": 0.2})
    with pytest.raises(BadInputError, match="interaction 'b:Topo'"):
        secr.fit(ch, mask, "lambda0~b:Topo")


def test_varying_model_takes_interactions(survey: tuple[CaptureHistory, Mask]) -> None:
    ch, mask = survey
    from irbis.stats.secr_varying import make_likelihood

    lik = make_likelihood(ch, mask, "lambda0~b + Topo*Water")
    assert lik.names == ["D", "lambda0", "lambda0.bTRUE", "lambda0.TopoB", "lambda0.TopoC",
                         "lambda0.WaterYes", "lambda0.TopoB:WaterYes", "lambda0.TopoC:WaterYes",
                         "sigma"]  # fmt: skip
    # with b at 0 it is the constant-detection interaction likelihood
    plain = secr.SecrLikelihood(ch, mask, "lambda0~Topo*Water")
    b = plain.start_values() + 0.1
    bv = np.insert(b, 2, 0.0)
    assert abs(lik(bv) - plain(b)) < 1e-8
