"""Fixed real parameters and other links in the varying and multi-session SECR models.

A fixed parameter is a coefficient held where the free model would have it:
the likelihood with ``sigma`` fixed at ``s0`` must equal the free likelihood
with the ``sigma`` coefficient at ``log(s0)``, and its gradient the free
gradient without that coefficient. A link is a change of coordinates: on the
identity link a coefficient is the real value itself, so the likelihood must
equal the log-link one at the logged values (a 0/1 term such as ``b`` or
``h2`` maps exactly: ``log(b0 + b1) - log(b0)``). Gradients are checked by
finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.secr_sessions import SessionLikelihood, fit_sessions
from irbis.stats.secr_varying import VaryingLikelihood, make_likelihood

from .test_stats_secr_sessions import _survey
from .test_stats_secr_varying import _histories, _layout


def _fd(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for j in range(len(x)):
        e = np.zeros_like(x)
        e[j] = h * max(1.0, abs(x[j]))
        g[j] = (f(x + e) - f(x - e)) / (2 * e[j])
    return g


@pytest.fixture(scope="module")
def data():
    traps, mask = _layout()
    return _histories(traps, "count"), mask


@pytest.mark.parametrize("model", ["lambda0~b sigma~1", "lambda0~1 sigma~h2 pmix~h2"])
@pytest.mark.parametrize("likelihood", ["full", "conditional"])
def test_varying_fixed_sigma_is_the_free_model_at_that_value(data, model, likelihood) -> None:
    ch, mask = data
    if "h2" in model:
        model = model.replace("sigma~h2", "lambda0~h2").replace("lambda0~1 ", "")
    free = make_likelihood(ch, mask, model, "HHN", likelihood)
    fixed = make_likelihood(ch, mask, model, "HHN", likelihood, fixed={"sigma": 900.0})
    assert isinstance(fixed, VaryingLikelihood)
    assert "sigma" not in fixed.names and fixed.npar == free.npar - 1
    beta = free.start_values() + 0.05
    j = free.names.index("sigma")
    beta[j] = math.log(900.0)
    sub = np.delete(beta, j)
    ll_free, g_free = free.loglik_and_gradient(beta)
    ll_fix, g_fix = fixed.loglik_and_gradient(sub)
    assert ll_fix == pytest.approx(ll_free, abs=1e-9)
    np.testing.assert_allclose(g_fix, np.delete(g_free, j), atol=1e-7)


def test_varying_identity_links_map_to_the_log_links(data) -> None:
    ch, mask = data
    model = "lambda0~b sigma~1"
    links = {"D": "identity", "lambda0": "identity", "sigma": "identity"}
    log_lik = make_likelihood(ch, mask, model, "HHN")
    ident = make_likelihood(ch, mask, model, "HHN", link=links)
    assert ident.names == log_lik.names
    # real values: D 0.02/ha, lambda0 0.3 naive and 0.5 after a detection, sigma 800 m
    b_id = np.array([0.02, 0.3, 0.2, 800.0])
    b_log = np.array([math.log(0.02), math.log(0.3), math.log(0.5 / 0.3), math.log(800.0)])
    assert ident(b_id) == pytest.approx(log_lik(b_log), abs=1e-9)
    _, g = ident.loglik_and_gradient(b_id)
    np.testing.assert_allclose(g, _fd(ident, b_id), rtol=1e-5, atol=1e-6)
    # g0 on the cloglog link with a time trend: gradient by finite differences
    clog = make_likelihood(ch, mask, "g0~T", "HN", link={"g0": "cloglog"})
    b = clog.start_values() + np.array([0.0, 0.1, 0.05, 0.0])
    _, g = clog.loglik_and_gradient(b)
    np.testing.assert_allclose(g, _fd(clog, b), rtol=1e-5, atol=1e-6)


def test_varying_fit_with_fixed_and_link(data) -> None:
    ch, mask = data
    free = secr.fit(ch, mask, "lambda0~b")
    s_hat = free.real()["sigma"]["estimate"]
    fx = secr.fit(ch, mask, "lambda0~b", fixed={"sigma": s_hat})
    assert fx.converged and fx.loglik == pytest.approx(free.loglik, abs=1e-5)
    assert fx.real()["sigma"]["link"] == "fixed" and "sigma=" in fx.model
    ident = secr.fit(ch, mask, "lambda0~b", link={"D": "identity"})
    assert ident.loglik == pytest.approx(free.loglik, abs=1e-5)
    assert ident.real()["D"]["estimate"] == pytest.approx(free.real()["D"]["estimate"], rel=1e-3)
    with pytest.raises(BadInputError, match="pmix cannot be fixed"):
        make_likelihood(ch, mask, "lambda0~h2", fixed={"pmix": 0.3})
    with pytest.raises(BadInputError, match="chunk_points"):
        make_likelihood(ch, mask, "lambda0~b", chunk_points=100)


def test_sessions_fixed_and_links() -> None:
    ss, masks = _survey(np.random.default_rng(4), 0.01, 1.2, n_sessions=2)
    model = "D~session lambda0~b sigma~1"
    free = SessionLikelihood(ss, masks, model)
    fixed = SessionLikelihood(ss, masks, model, fixed={"sigma": 1100.0})
    assert fixed.fixed == {"sigma": 1100.0} and fixed.npar == free.npar - 1
    beta = free.start_values()
    j = free.names.index("sigma")
    beta[j] = math.log(1100.0)
    ll_free, g_free = free.loglik_and_gradient(beta)
    ll_fix, g_fix = fixed.loglik_and_gradient(np.delete(beta, j))
    assert ll_fix == pytest.approx(ll_free, abs=1e-9)
    np.testing.assert_allclose(g_fix, np.delete(g_free, j), atol=1e-7)
    # D on the identity link: same maximum, same per-session densities
    f_log = fit_sessions(ss, masks, "D~session")
    f_id = fit_sessions(ss, masks, "D~session", link={"D": "identity"})
    assert f_id.loglik == pytest.approx(f_log.loglik, abs=1e-5)
    d_log, d_id = f_log.derived(), f_id.derived()
    for s in ss.names:
        a, b = d_log[s]["D_per_ha"], d_id[s]["D_per_ha"]
        assert b["estimate"] == pytest.approx(a["estimate"], rel=1e-3)
        assert b["se"] == pytest.approx(a["se"], rel=2e-2)
    assert "Session" not in f_id.trend()
    fs = fit_sessions(ss, masks, "D~Session", fixed={"sigma": 1200.0})
    assert fs.converged and "sigma=1200" in fs.model
    assert fs.real(1)["sigma"]["estimate"] == 1200.0
