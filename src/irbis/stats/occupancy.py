"""Single-season site occupancy with imperfect detection (MacKenzie et al. 2002).

A station is *occupied* by a species with probability ``psi``; if occupied,
the species is detected on each sampling occasion with probability ``p``.
Detection histories are 0/1 per station and occasion, with ``NaN`` where the
camera did not work (that occasion is left out of the likelihood, not counted
as a zero). Both submodels are logit-linear in station covariates written as
R formulas (``"psi~elevation p~1"``), with treatment contrasts for factors,
coefficient names in the style of R's ``unmarked`` (``psi``, ``psi.elevation``).

This is what prey surveys use: where ibex and argali are, corrected for the
cameras missing them, from the same camera network as the leopard census.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from irbis.core.errors import BadInputError
from irbis.stats.formula import design_matrix, parse_model

__all__ = ["OccupancyFit", "detection_histories", "occupancy_fit"]

PARAMS = ("psi", "p")


@dataclass
class OccupancyFit:
    """A fitted occupancy model.

    Attributes
    ----------
    beta, se, names:
        Coefficients on the logit scale, their standard errors and names.
    psi, p:
        Fitted probabilities per station (``p`` per station, constant over
        occasions in this model).
    psi_mean, psi_ci:
        Mean occupancy over the stations and its 95% interval: profile
        likelihood for the constant model (it stays honest when the estimate
        sits at 1, as it often does with few stations), else the delta method
        on the logit scale of the mean linear predictor.
    p_mean, p_ci:
        The same for detection.
    naive:
        Fraction of stations with at least one detection.
    loglik, npar, aic:
        Maximised log-likelihood, number of coefficients, AIC.
    n_sites, n_occasions, n_detected:
        Stations with at least one working occasion, occasions, stations with
        a detection.
    """

    beta: np.ndarray
    se: np.ndarray
    names: list[str]
    psi: np.ndarray
    p: np.ndarray
    psi_mean: float
    psi_ci: tuple[float, float]
    p_mean: float
    p_ci: tuple[float, float]
    naive: float
    loglik: float
    npar: int
    aic: float
    n_sites: int
    n_occasions: int
    n_detected: int
    formula: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "formula": {k: "~" + ("+".join(v) or "1") for k, v in self.formula.items()},
            "coefficients": {
                n: {"beta": float(b), "se": float(s)}
                for n, b, s in zip(self.names, self.beta, self.se, strict=True)
            },
            "psi": self.psi_mean,
            "psi_ci": list(self.psi_ci),
            "p": self.p_mean,
            "p_ci": list(self.p_ci),
            "naive": self.naive,
            "loglik": self.loglik,
            "npar": self.npar,
            "aic": self.aic,
            "n_sites": self.n_sites,
            "n_occasions": self.n_occasions,
            "n_detected": self.n_detected,
        }


def detection_histories(
    days: np.ndarray, operating: np.ndarray, occasion_days: int = 7
) -> np.ndarray:
    """Collapse daily detections into occasions of ``occasion_days`` days.

    Parameters
    ----------
    days:
        ``(stations, days)`` counts of detections of the species per day.
    operating:
        ``(stations, days)`` fraction of each day the camera worked (camtrapR's
        camera operation matrix; 0 = not working).
    occasion_days:
        Days per occasion.

    Returns
    -------
    numpy.ndarray
        ``(stations, occasions)`` 1 (detected), 0 (working, not detected) or
        ``NaN`` (the camera did not work on any day of the occasion).
    """
    days = np.asarray(days, float)
    operating = np.asarray(operating, float)
    if days.shape != operating.shape:
        raise BadInputError(
            "detection_histories", "detections and camera operation differ in shape", ""
        )
    if occasion_days < 1:
        raise BadInputError("detection_histories", "occasion_days must be >= 1", "")
    n_st, n_days = days.shape
    n_occ = -(-n_days // occasion_days)
    y = np.full((n_st, n_occ), np.nan)
    for k in range(n_occ):
        sl = slice(k * occasion_days, (k + 1) * occasion_days)
        worked = np.nansum(operating[:, sl], axis=1) > 0
        seen = np.nansum(days[:, sl], axis=1) > 0
        y[worked, k] = seen[worked].astype(float)
        # A detection on a day the table calls "not operating" still counts.
        y[seen & ~worked, k] = 1.0
    return y


def _nll(beta: np.ndarray, Xpsi: np.ndarray, Xp: np.ndarray, y: np.ndarray) -> float:
    k = Xpsi.shape[1]
    lpsi = Xpsi @ beta[:k]
    lp = Xp @ beta[k:]
    log_psi, log_1mpsi = -np.logaddexp(0, -lpsi), -np.logaddexp(0, lpsi)
    log_p, log_1mp = -np.logaddexp(0, -lp), -np.logaddexp(0, lp)
    obs = ~np.isnan(y)
    yy = np.where(obs, y, 0.0)
    n_det = yy.sum(axis=1)
    n_obs = obs.sum(axis=1)
    detected = n_det > 0
    ll_hist = n_det * log_p + (n_obs - n_det) * log_1mp
    ll = np.where(
        detected,
        log_psi + ll_hist,
        np.logaddexp(log_psi + ll_hist, log_1mpsi),
    )
    return -float(ll.sum())


def _hessian(f: Any, x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    n = len(x)
    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.zeros(n), np.zeros(n)
            ei[i], ej[j] = step, step
            v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * step**2)
            H[i, j] = H[j, i] = v
    return H


def _mean_ci(X: np.ndarray, beta: np.ndarray, vcov: np.ndarray) -> tuple[float, tuple]:
    """Mean fitted probability; CI from the mean design row on the logit scale."""
    xbar = X.mean(axis=0)
    eta = float(xbar @ beta)
    var = float(xbar @ vcov @ xbar)
    mean = float(special.expit(X @ beta).mean())
    if not np.isfinite(var) or var < 0:
        return mean, (float("nan"), float("nan"))
    z = stats.norm.ppf(0.975) * np.sqrt(var)
    return mean, (float(special.expit(eta - z)), float(special.expit(eta + z)))


_CHI2_95 = float(stats.chi2.ppf(0.95, 1))
_BOUND = 15.0  # logit limits of the profile search: probabilities 3e-7 .. 1 - 3e-7


def _profile_ci(f: Any, beta: np.ndarray, i: int, nll_min: float) -> tuple[float, float]:
    """95% profile-likelihood interval of coefficient ``i`` of a two-coefficient model."""
    j = 1 - i

    def excess(v: float) -> float:
        def g(w: np.ndarray) -> float:
            b = np.empty(2)
            b[i], b[j] = v, w[0]
            return f(b)

        inner = optimize.minimize(g, [beta[j]], method="Nelder-Mead", options={"xatol": 1e-6})
        return 2 * (float(inner.fun) - nll_min) - _CHI2_95

    limits = []
    for edge in (-_BOUND, _BOUND):
        start = float(np.clip(beta[i], -_BOUND + 1e-3, _BOUND - 1e-3))
        if excess(edge) <= 0:
            limits.append(edge)
        else:
            limits.append(optimize.brentq(excess, *sorted((start, edge)), xtol=1e-6))
    return float(special.expit(limits[0])), float(special.expit(limits[1]))


def occupancy_fit(
    y: np.ndarray,
    model: str | Mapping[str, str] | None = None,
    covariates: Mapping[str, np.ndarray] | None = None,
) -> OccupancyFit:
    """Fit a single-season occupancy model by maximum likelihood.

    Parameters
    ----------
    y:
        ``(stations, occasions)`` detection histories: 1, 0 or ``NaN`` (camera
        not working); see :func:`detection_histories`.
    model:
        Formulas for ``psi`` and ``p``, e.g. ``"psi~elevation p~1"``; ``~1``
        for a parameter left out.
    covariates:
        Station covariates, one value per row of ``y`` (numbers, or strings
        for factors).

    Returns
    -------
    OccupancyFit

    Raises
    ------
    BadInputError
        Histories that are not 0/1/NaN, no working occasion, or a model that
        cannot be fitted.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 2 or y.size == 0:
        raise BadInputError("histories", "need a stations x occasions table of 0/1/NaN", "")
    bad = ~np.isnan(y) & (y != 0) & (y != 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise BadInputError(
            "histories",
            f"station row {i + 1}, occasion {j + 1} is {y[i, j]:g}",
            "use 1 (detected), 0 (not detected) or empty (camera not working)",
        )
    keep = (~np.isnan(y)).any(axis=1)
    if not keep.any():
        raise BadInputError("histories", "no station has a working occasion", "")
    covariates = {k: np.asarray(v)[keep] for k, v in (covariates or {}).items()}
    y = y[keep]
    n = y.shape[0]
    terms = parse_model(model, PARAMS)
    Xpsi = design_matrix("psi", terms["psi"], covariates, n, where="stations")
    Xp = design_matrix("p", terms["p"], covariates, n, where="stations")
    n_det = int((np.nansum(y, axis=1) > 0).sum())
    if n_det == 0:
        raise BadInputError(
            "histories", "the species was never detected", "occupancy cannot be estimated"
        )
    k = Xpsi.matrix.shape[1]
    x0 = np.zeros(k + Xp.matrix.shape[1])

    def f(b: np.ndarray) -> float:
        return _nll(b, Xpsi.matrix, Xp.matrix, y)

    res = optimize.minimize(f, x0, method="BFGS", options={"gtol": 1e-7})
    if not res.success:
        res = optimize.minimize(f, res.x, method="Nelder-Mead", options={"maxiter": 20000})
    beta = res.x
    H = _hessian(f, beta)
    try:
        vcov = np.linalg.inv(H)
        se = np.sqrt(np.where(np.diag(vcov) > 0, np.diag(vcov), np.nan))
    except np.linalg.LinAlgError:
        vcov = np.full_like(H, np.nan)
        se = np.full(len(beta), np.nan)
    psi_mean, psi_ci = _mean_ci(Xpsi.matrix, beta[:k], vcov[:k, :k])
    p_mean, p_ci = _mean_ci(Xp.matrix, beta[k:], vcov[k:, k:])
    if len(beta) == 2:  # psi~1 p~1
        psi_ci = _profile_ci(f, beta, 0, float(res.fun))
        p_ci = _profile_ci(f, beta, 1, float(res.fun))
    ll = -float(res.fun)
    return OccupancyFit(
        beta=beta,
        se=se,
        names=Xpsi.names + Xp.names,
        psi=special.expit(Xpsi.matrix @ beta[:k]),
        p=special.expit(Xp.matrix @ beta[k:]),
        psi_mean=psi_mean,
        psi_ci=psi_ci,
        p_mean=p_mean,
        p_ci=p_ci,
        naive=n_det / n,
        loglik=ll,
        npar=len(beta),
        aic=2 * len(beta) - 2 * ll,
        n_sites=n,
        n_occasions=y.shape[1],
        n_detected=n_det,
        formula=terms,
    )
