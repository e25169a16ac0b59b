"""Trap covariates that vary by occasion (secr's timevaryingcov) against a brute-force likelihood.

R (not run here; the call these tests stand for)::

    timevaryingcov(traps(ch)) <- list(vis = c("vis1", "vis2", "vis3", "vis4"))
    secr.fit(ch, mask = msk, model = list(lambda0 ~ vis + b), detectfn = "HHN")

On occasion ``s`` the formula's ``vis`` is the trap covariate named in the
``s``-th place; the likelihood written out by loops in
``test_stats_secr_varying`` evaluates each trap-occasion's real parameters
from that column directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.secr_data import CaptureHistory, Traps
from irbis.stats.secr_varying import VaryingLikelihood, make_likelihood

from .test_stats_secr_varying import S_OCC, _histories, _layout, brute_loglik


def _with_tvc(kind: str) -> tuple[CaptureHistory, np.ndarray]:
    traps, mask = _layout()
    rng = np.random.default_rng(9)
    K = traps.n_traps
    if kind == "numeric":
        vals = rng.uniform(-1, 1, (S_OCC, K))
        cols = {f"vis{s + 1}": vals[s] for s in range(S_OCC)}
    else:
        vals = rng.choice(np.array(["lo", "mid", "hi"], dtype=object), size=(S_OCC, K))
        cols = {f"vis{s + 1}": vals[s] for s in range(S_OCC)}
    tr = Traps(traps.ids, traps.xy, traps.usage, {**traps.covariates, **cols},
               timevaryingcov={"vis": [f"vis{s + 1}" for s in range(S_OCC)]})  # fmt: skip
    ch = _histories(tr, "count")
    return ch, vals


@pytest.mark.parametrize("likelihood", ["full", "conditional"])
def test_numeric_time_varying_covariate(likelihood) -> None:
    ch, vals = _with_tvc("numeric")
    _, mask = _layout()
    lik = make_likelihood(ch, mask, "lambda0~vis + b", "HHN", likelihood)
    assert isinstance(lik, VaryingLikelihood)
    names = (["D"] if likelihood == "full" else []) + ["lambda0", "lambda0.vis",
                                                       "lambda0.bTRUE", "sigma"]  # fmt: skip
    assert lik.names == names
    b = {"D": -7.5, "lambda0": -1.0, "lambda0.vis": 0.7, "lambda0.bTRUE": 0.4, "sigma": 7.0}
    beta = np.array([b[n] for n in lik.names])
    counts = ch.counts

    def real(c, i, s, k):
        seen = i is not None and counts[i, :s].sum() > 0
        lam = math.exp(b["lambda0"] + b["lambda0.vis"] * vals[s, k] + b["lambda0.bTRUE"] * seen)
        return lam, math.exp(b["sigma"])

    ref = brute_loglik(ch, mask, "HHN", likelihood, real, logD=b["D"])
    assert lik(beta) == pytest.approx(ref, abs=1e-6)
    _, g = lik.loglik_and_gradient(beta)
    h = 1e-6
    fd = [(lik(beta + h * e) - lik(beta - h * e)) / (2 * h) for e in np.eye(len(beta))]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


def test_factor_time_varying_covariate_and_fit() -> None:
    ch, vals = _with_tvc("factor")
    _, mask = _layout()
    lik = make_likelihood(ch, mask, "lambda0~vis sigma~1", "HHN")
    # levels over all occasions, in R's order
    assert lik.names == ["D", "lambda0", "lambda0.vislo", "lambda0.vismid", "sigma"]
    b = {"D": -7.4, "lambda0": -1.2, "lambda0.vislo": 0.5, "lambda0.vismid": -0.3, "sigma": 7.1}
    beta = np.array([b[n] for n in lik.names])

    def real(c, i, s, k):
        v = vals[s, k]
        e = b["lambda0"] + (b["lambda0.vislo"] if v == "lo" else 0.0)
        e += b["lambda0.vismid"] if v == "mid" else 0.0
        return math.exp(e), math.exp(b["sigma"])

    assert lik(beta) == pytest.approx(brute_loglik(ch, mask, "HHN", "full", real, b["D"]), abs=1e-6)
    fit = secr.fit(ch, mask, "lambda0~vis")
    assert fit.converged and not fit.boundary
    assert fit.real({"vis": "lo"})["lambda0"]["estimate"] > 0


def test_time_varying_refusals() -> None:
    traps, _ = _layout()
    with pytest.raises(BadInputError, match="not a trap covariate"):
        Traps(traps.ids, traps.xy, traps.usage, dict(traps.covariates),
              timevaryingcov={"vis": ["nope"]})  # fmt: skip
    with pytest.raises(BadInputError, match="also a trap covariate"):
        Traps(traps.ids, traps.xy, traps.usage, dict(traps.covariates),
              timevaryingcov={"hab": ["hab"]})  # fmt: skip
    tr = Traps(traps.ids, traps.xy, traps.usage, dict(traps.covariates),
               timevaryingcov={"v": ["hab", "hab"]})  # fmt: skip
    ch = _histories(tr, "count")
    _, mask = _layout()
    with pytest.raises(BadInputError, match="2 columns for 4 occasions"):
        make_likelihood(ch, mask, "lambda0~v")
