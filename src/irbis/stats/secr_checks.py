"""Checks of a fitted SECR model: deviance and a parametric-bootstrap goodness of fit.

:func:`deviance` and :func:`df_residual` are those of R ``secr``: the
deviance is ``-2 (logL - logL_sat)`` with the saturated model giving each
distinct capture history its observed frequency (plus, for the full
likelihood, ``n log n - n`` for the Poisson number of animals); the residual
degrees of freedom are the distinct histories less the coefficients.

:func:`gof_bootstrap` is ``secr.test(fit, fit = TRUE)``: it simulates
surveys from the fitted model (activity centres from the fitted density
over the mask, detections from the fitted detection model at the same traps,
usage and detector), refits each, and places the observed deviance/df among
the simulated ones: secr's ``p = rank / (n_sims + 1)`` (ties averaged), so
``p`` near 1 says the data fit worse than nearly every survey the model
itself generates; ``p_upper``, the share of simulated values at or above
the observed one (counting the observed), is the usual one-sided p-value.
``c_hat`` (observed over mean simulated) estimates overdispersion.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import gammaln

from irbis.core.errors import BadInputError
from irbis.stats.formula import rhs_text
from irbis.stats.secr import SecrFit, fit
from irbis.stats.secr_data import CaptureHistory
from irbis.stats.simulate import simulate_capthist, simulate_popn

__all__ = ["MAX_SIMS", "deviance", "df_residual", "gof_bootstrap", "saturated_loglik"]

#: most simulations a bootstrap may ask for
MAX_SIMS = 999


def saturated_loglik(capthist: CaptureHistory, likelihood: str = "full") -> float:
    """Log-likelihood of the saturated model, as secr's ``deviance.secr``.

    Parameters
    ----------
    capthist:
        Capture histories.
    likelihood:
        ``"full"`` (Poisson number of animals) or ``"conditional"``.

    Returns
    -------
    float
        ``sum(log n_w!)`` terms and ``sum n_w log(n_w / n)`` over distinct
        histories ``w``, plus ``n log n - n`` (full) or ``log n!`` (conditional).
    """
    n = capthist.n
    _, nw = np.unique(capthist.counts.reshape(n, -1), axis=0, return_counts=True)
    nw = nw.astype(float)
    ll = float(-gammaln(nw + 1).sum() + (nw * np.log(nw / n)).sum())
    if likelihood == "full":
        return ll + n * math.log(n) - n
    return ll + float(gammaln(n + 1))


def deviance(f: SecrFit) -> float:
    """Deviance of a fit: ``-2 (logL - logL_saturated)`` (secr's ``deviance``).

    Parameters
    ----------
    f:
        A single-session fit.

    Returns
    -------
    float
    """
    return -2.0 * (f.loglik - saturated_loglik(f.lik.capthist, f.likelihood))


def df_residual(f: SecrFit) -> int:
    """Distinct capture histories less the number of coefficients (secr's ``df.residual``).

    Parameters
    ----------
    f:
        A single-session fit.

    Returns
    -------
    int
    """
    ch = f.lik.capthist
    return int(len(np.unique(ch.counts.reshape(ch.n, -1), axis=0)) - f.npar)


def _devdf(f: SecrFit) -> float:
    df = df_residual(f)
    return deviance(f) / df if df > 0 else math.nan


def gof_bootstrap(
    f: SecrFit,
    n_sims: int = 99,
    *,
    rng: np.random.Generator | int | None = None,
    max_failures: int | None = None,
) -> dict[str, Any]:
    """Parametric-bootstrap goodness of fit: deviance/df against refits of simulated surveys.

    Parameters
    ----------
    f:
        A single-session fit without occasion, response or mixture terms.
    n_sims:
        Simulated surveys (1 to :data:`MAX_SIMS`).
    rng:
        Generator or seed (the same seed gives the same answer).
    max_failures:
        Simulations that may fail (no animal detected, a refit that does not
        converge) before the check gives up; default ``n_sims``.

    Returns
    -------
    dict
        ``statistic`` ("devdf"), ``observed``, ``simulated`` (list),
        ``p`` (secr's: rank of the observed among all, over ``n_sims + 1``;
        ties averaged; near 1 is lack of fit), ``p_upper`` (``(1 + #simulated
        >= observed) / (n_sims + 1)``), ``c_hat`` (observed / mean simulated),
        ``n_sims``, ``failed``.
    """
    from irbis.stats.secr_varying import VaryingLikelihood

    if not 1 <= int(n_sims) <= MAX_SIMS:
        raise BadInputError("n_sims", f"{n_sims} simulations", f"use 1 to {MAX_SIMS}")
    lik = f.lik
    if isinstance(lik, VaryingLikelihood):
        raise BadInputError(
            "gof_bootstrap",
            "occasion, response and mixture models cannot be simulated here",
            "check the constant-detection model",
        )
    if not f.converged:
        raise BadInputError("gof_bootstrap", "the fit did not converge", "fix the fit first")
    rng = np.random.default_rng(rng)
    ch = lik.capthist
    mask = lik.mask
    if f.likelihood == "full":
        dens = np.exp(lik.log_d(f.beta))
    else:
        dens = np.full(mask.n_points, f.density()["per_ha"]["estimate"])
    real = lik.real_arrays(f.beta)
    params = {p: v for p, v in real.items() if p != "D"}
    model = {p: "~" + rhs_text(t) for p, t in f.formulas.items() if p in lik.params}
    kw: dict[str, Any] = {}
    if getattr(lik, "fixed", None):
        kw["fixed"] = dict(lik.fixed)
    if getattr(lik, "links", None):
        kw["link"] = dict(lik.links)
    observed = _devdf(f)
    sims: list[float] = []
    failed = 0
    limit = n_sims if max_failures is None else max_failures
    while len(sims) < n_sims:
        if failed > limit:
            raise BadInputError(
                "gof_bootstrap",
                f"{failed} simulated surveys failed (no detections or no convergence)",
                "check the fit",
            )
        centres = simulate_popn(mask, dens, rng=rng)
        try:
            sim = simulate_capthist(
                ch.traps, centres, f.detectfn, params, detector=ch.detector,
                n_occasions=ch.n_occasions, binom_size=ch.binom_size, rng=rng,
            )  # fmt: skip
            g = fit(sim, mask, model, f.detectfn, f.likelihood, start=f.beta, hessian=False, **kw)
        except BadInputError:
            failed += 1
            continue
        v = _devdf(g)
        if not (g.converged and math.isfinite(v)):
            failed += 1
            continue
        sims.append(v)
    arr = np.array(sims)
    rank = 1 + float((arr < observed).sum()) + 0.5 * float((arr == observed).sum())
    return {
        "statistic": "devdf",
        "observed": observed,
        "simulated": sims,
        "p": rank / (n_sims + 1),
        "p_upper": (1 + float((arr >= observed).sum())) / (n_sims + 1),
        "c_hat": observed / float(arr.mean()),
        "n_sims": n_sims,
        "failed": failed,
    }
