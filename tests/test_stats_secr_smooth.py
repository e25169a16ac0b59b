"""Regression splines s(x, k) in SECR formulas as secr builds them with mgcv (thin plate, fixed df).

R (not run here; the calls these tests stand for)::

    library(secr)
    fit <- secr.fit(ch, mask = msk, model = list(D ~ s(x, y, k = 6, fx = TRUE)),
                    detectfn = "HHN")
    # mgcv::gam(session ~ s(x, y, k = 6, fx = TRUE), data = D.designdata, fit = FALSE)$X
    # gives the design; its columns span the functions the basis below spans

Checks without R:

- the basis is rebuilt here independently from Wood (2003) with the radial
  function's constants (``r^3 / 12``; ``r^2 log r / (8 pi)``), singular
  vectors instead of eigenvectors and an SVD null space; the design's column
  space must be the same (projections equal to 1e-8), so the likelihood at
  the mapped coefficients agrees to 1e-9;
- with ``k`` equal to the number of distinct values the spline spans every
  function of them: the fit equals the factor model's;
- a multi-session ``D~s(Session, k = 3)`` over three sessions equals ``D~session``
  (the basis is built over the pooled sessions, as secr does).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.formula import parse_model
from irbis.stats.secr_data import Mask, Traps
from irbis.stats.secr_sessions import SessionLikelihood, fit_sessions
from irbis.stats.simulate import simulate_capthist, simulate_popn

from .test_stats_secr_sessions import _survey


def _tprs_columns(x: np.ndarray, k: int) -> np.ndarray:
    """Thin plate regression spline basis (m = 2) at the data rows, written from the paper."""
    x = x.reshape(len(x), -1)
    d = x.shape[1]
    xu = np.unique(x, axis=0)
    r = np.sqrt(((xu[:, None, :] - xu[None, :, :]) ** 2).sum(axis=2))
    if d == 1:
        E = r**3 / 12.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            E = np.where(r > 0, r**2 * np.log(r) / (8 * math.pi), 0.0)
    T = np.column_stack([np.ones(len(xu)), xu])
    u, sv, _ = np.linalg.svd(E)  # symmetric: singular vectors are eigenvectors, by |eigenvalue|
    Uk = u[:, :k]
    _, _, vt = np.linalg.svd(T.T @ Uk)
    Z = vt[T.shape[1] :].T
    idx = np.array([np.flatnonzero((xu == row).all(axis=1))[0] for row in x])
    rd = np.sqrt(((x[:, None, :] - xu[None, :, :]) ** 2).sum(axis=2))
    if d == 1:
        Ex = rd**3 / 12.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            Ex = np.where(rd > 0, rd**2 * np.log(rd) / (8 * math.pi), 0.0)
    assert idx.shape == (len(x),)
    return np.hstack([Ex @ Uk @ Z, np.column_stack([np.ones(len(x)), x])])


def _projection(A: np.ndarray) -> np.ndarray:
    q, r = np.linalg.qr(A)
    keep = np.abs(np.diag(r)) > 1e-10 * np.abs(np.diag(r)).max()
    q = q[:, keep]
    return q @ q.T


@pytest.fixture(scope="module")
def survey():
    rng = np.random.default_rng(1)
    g = np.arange(6) * 1500.0
    xy = [(x, y) for x in g for y in g]
    cov = np.round(rng.uniform(0, 3, 36), 1)
    cov4 = np.array([0.2, 0.9, 1.7, 2.6])[rng.integers(0, 4, 36)]
    covs = {"cov": cov, "cov4": cov4, "f4": np.array([f"L{v}" for v in cov4], dtype=object)}
    tr = Traps([f"T{i}" for i in range(36)], xy, np.ones((36, 3)), covs)
    m = secr.make_mask(tr, 6000.0, 900.0)
    pop = simulate_popn(m, 0.01, rng=rng)
    ch = simulate_capthist(tr, pop, "HHN", {"lambda0": 0.2, "sigma": 1500.0}, rng=rng)
    return ch, m


@pytest.mark.parametrize(("param", "term", "k"), [("D", "s(x, y, k = 7)", 7),
                                                   ("lambda0", "s(cov, k = 5)", 5)])  # fmt: skip
def test_basis_spans_the_thin_plate_regression_spline(survey, param, term, k) -> None:
    ch, m = survey
    lik = secr.SecrLikelihood(ch, m, f"{param}~{term}")
    b = next(b for b in lik.blocks if b.param == param)
    assert b.design.matrix.shape[1] == k  # intercept + k - 1 spline columns
    if param == "D":
        covs = secr.mask_covariates(m, ["x", "y"])
        x = np.column_stack([covs["x"], covs["y"]])
    else:
        x = ch.traps.covariates["cov"]
    ref = _tprs_columns(x, k)
    np.testing.assert_allclose(_projection(b.design.matrix), _projection(ref), atol=1e-8)
    # the likelihood with the independent basis as covariates, at the mapped coefficients
    names = [f"b{j}" for j in range(ref.shape[1] - 1)]
    # columns: [radial..., 1, x(, y)]: drop the constant, keep the rest as covariates
    cols = np.delete(ref, ref.shape[1] - x.reshape(len(x), -1).shape[1] - 1, axis=1)
    cov_map = {n: cols[:, j] for j, n in enumerate(names)}
    if param == "D":
        m2 = Mask(m.xy, m.spacing, {**m.covariates, **cov_map})
        ch2 = ch
    else:
        tr = ch.traps
        tr2 = Traps(tr.ids, tr.xy, tr.usage, {**tr.covariates, **cov_map})
        ch2 = type(ch)(ch.ids, ch.counts, tr2, ch.detector, ch.binom_size)
        m2 = m
    alt = secr.SecrLikelihood(ch2, m2, f"{param}~" + "+".join(names))
    Xa = next(b for b in alt.blocks if b.param == param).design.matrix
    A = np.linalg.lstsq(Xa, b.design.matrix, rcond=None)[0]  # X_ours = X_alt A
    np.testing.assert_allclose(Xa @ A, b.design.matrix, atol=1e-8)
    beta = lik.start_values()
    beta[b.start : b.stop] += np.linspace(-0.3, 0.3, k)
    beta_alt = np.concatenate([beta[: b.start], A @ beta[b.start : b.stop], beta[b.stop :]])
    assert lik(beta) == pytest.approx(alt(beta_alt), abs=1e-9)


def test_full_basis_is_the_factor_model(survey) -> None:
    ch, m = survey
    spline = secr.fit(ch, m, "lambda0~s(cov4, k = 4)")
    factor = secr.fit(ch, m, "lambda0~f4")
    assert spline.converged and factor.converged
    assert spline.loglik == pytest.approx(factor.loglik, abs=1e-5)
    # predictions at each value agree with the factor level's
    for v in (0.2, 1.7):
        a = spline.real({"cov4": v})["lambda0"]["estimate"]
        b = factor.real({"f4": f"L{v}"})["lambda0"]["estimate"]
        assert a == pytest.approx(b, rel=1e-3)


def test_sessions_pool_the_basis() -> None:
    ss, masks = _survey(np.random.default_rng(7), 0.01, 1.2, n_sessions=3)
    a = fit_sessions(ss, masks, "D~s(Session, k = 3)")
    b = fit_sessions(ss, masks, "D~session")
    assert a.converged and a.loglik == pytest.approx(b.loglik, abs=1e-5)
    lik = SessionLikelihood(ss, masks, "D~s(Session, k = 3)")
    specs = [p.blocks[0].design.smooth["s(Session, k = 3)"] for p in lik.parts]
    assert all(s is specs[0] for s in specs)  # one basis for all sessions


def test_smooth_refusals(survey) -> None:
    ch, m = survey
    with pytest.raises(BadInputError, match="te"):
        parse_model("D~te(x, y)", ("D",))
    with pytest.raises(BadInputError, match="bs = 'cr'"):
        parse_model("D~s(x, bs = 'cr')", ("D",))
    with pytest.raises(BadInputError, match="at least 9 distinct"):
        secr.SecrLikelihood(ch, m, "lambda0~s(cov4, k = 9)")
    with pytest.raises(BadInputError, match="with a spline"):
        secr.SecrLikelihood(ch, m, "lambda0~s(cov, k = 4):f4")
    assert parse_model("D~s(x,k=4,fx=TRUE)", ("D",))["D"] == ["s(x, k = 4)"]


def test_lanczos_eigenvectors_span_the_full_decomposition() -> None:
    from irbis.stats.smooth import _eta, _sq_dist, _top_eigenvectors

    x = np.random.default_rng(0).normal(size=(600, 2))
    E = _eta(_sq_dist(x, x), 2)
    U = _top_eigenvectors(E, 8)  # Lanczos (n > 400)
    w, V = np.linalg.eigh(E)
    V = V[:, np.argsort(-np.abs(w))[:8]]
    np.testing.assert_allclose(U @ U.T, V @ V.T, atol=1e-10)
