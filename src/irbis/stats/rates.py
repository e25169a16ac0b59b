"""Counts per unit of effort: relative abundance indices and encounter rates.

Two uses in irbis:

- **RAI** (relative abundance index): independent camera events of a
  species per 100 trap-nights (O'Brien et al. 2003; camtrapR's
  ``surveyReport``), per species and per station;
- **threat encounter rates**: snares found per 10 km of patrol (SMART's
  catch-per-unit-effort), per grid cell, region and season.

A count over an effort is treated as Poisson: its 95% interval is the exact
(Garwood 1936) one, and a trend over seasons is a log-linear Poisson
regression with the log effort as offset, whose slope is the rate ratio from
one season to the next.

Pure numpy/scipy: nothing here knows a database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from irbis.core.errors import BadInputError

__all__ = ["RateTrend", "poisson_ci", "rate", "rate_trend"]


def poisson_ci(count: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from one observed ``count``.

    Parameters
    ----------
    count:
        Observed count (a whole number >= 0).
    level:
        Confidence level.

    Returns
    -------
    tuple of float
        ``(lower, upper)``; the lower limit of a zero count is 0.
    """
    if count < 0 or count != int(count):
        raise BadInputError("count", f"{count!r} is not a whole number >= 0", "")
    a = 1.0 - level
    lo = 0.0 if count == 0 else float(stats.chi2.ppf(a / 2, 2 * count) / 2)
    hi = float(stats.chi2.ppf(1 - a / 2, 2 * count + 2) / 2)
    return lo, hi


def rate(count: float, effort: float, per: float = 1.0, level: float = 0.95) -> dict[str, Any]:
    """``count`` per ``per`` units of ``effort`` with its exact Poisson interval.

    Parameters
    ----------
    count:
        Events (independent records, snares found).
    effort:
        Effort (trap-nights, km walked); 0 gives no rate (``NaN``).
    per:
        Units of effort the rate is given per (100 trap-nights, 10 km).
    level:
        Confidence level of the interval.

    Returns
    -------
    dict
        ``count``, ``effort``, ``rate``, ``lcl``, ``ucl``.
    """
    if effort < 0 or not math.isfinite(effort):
        raise BadInputError("effort", f"{effort!r} is not a finite number >= 0", "")
    if effort == 0:
        nan = float("nan")
        return {"count": count, "effort": 0.0, "rate": nan, "lcl": nan, "ucl": nan}
    lo, hi = poisson_ci(count, level)
    k = per / effort
    return {"count": count, "effort": effort, "rate": count * k, "lcl": lo * k, "ucl": hi * k}


@dataclass
class RateTrend:
    """A log-linear trend of a rate over ordered periods.

    Attributes
    ----------
    ratio, lcl, ucl:
        Rate ratio from one period to the next, ``exp(slope)``, with its 95%
        Wald interval on the log scale (``NaN`` where it cannot be given).
    slope, se:
        The slope on the log scale and its standard error.
    n_periods:
        Periods with effort that entered the fit.
    reason:
        Why no trend was fitted, or why it has no interval (empty if it has one).
    """

    ratio: float
    lcl: float
    ucl: float
    slope: float
    se: float
    n_periods: int
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "lcl": self.lcl,
            "ucl": self.ucl,
            "slope": self.slope,
            "se": self.se,
            "n_periods": self.n_periods,
            "reason": self.reason,
        }


def rate_trend(
    counts: Sequence[float], efforts: Sequence[float], times: Sequence[float] | None = None
) -> RateTrend:
    """Poisson regression ``log E[count] = log(effort) + a + b * time``.

    Parameters
    ----------
    counts, efforts:
        Count and effort per period; periods without effort are left out.
    times:
        Period positions (default 0, 1, 2...: one step per period).

    Returns
    -------
    RateTrend
        With two periods at times 0 and 1 the ratio is exactly
        ``(n2 / E2) / (n1 / E1)``.
    """
    y = np.asarray(counts, float)
    e = np.asarray(efforts, float)
    t = np.arange(len(y), dtype=float) if times is None else np.asarray(times, float)
    if not (len(y) == len(e) == len(t)):
        raise BadInputError("trend", "counts, efforts and times differ in length", "")
    keep = e > 0
    y, e, t = y[keep], e[keep], t[keep]
    nan = float("nan")
    n = int(len(y))
    if n < 2 or np.ptp(t) == 0:
        return RateTrend(nan, nan, nan, nan, nan, n, "fewer than two periods with effort")
    if y.sum() == 0:
        return RateTrend(nan, nan, nan, nan, nan, n, "nothing was found in any period")
    X = np.column_stack([np.ones(n), t - t.mean()])
    off = np.log(e)
    beta = np.array([math.log(y.sum() / e.sum()), 0.0])
    converged = False
    for _ in range(100):
        mu = np.exp(off + X @ beta)
        grad = X.T @ (y - mu)
        info = X.T @ (X * mu[:, None])
        step = np.linalg.solve(info, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            converged = True
            break
        if abs(beta[1]) > 30:  # the slope runs off to infinity: a boundary estimate
            break
    if not converged:
        slope = math.copysign(math.inf, beta[1])
        return RateTrend(
            math.exp(slope), nan, nan, slope, nan, n,
            "at boundary: every find falls at one end of the series; no interval",
        )  # fmt: skip
    mu = np.exp(off + X @ beta)
    cov = np.linalg.inv(X.T @ (X * mu[:, None]))
    se = float(math.sqrt(cov[1, 1]))
    z = float(stats.norm.ppf(0.975))
    b = float(beta[1])
    return RateTrend(math.exp(b), math.exp(b - z * se), math.exp(b + z * se), b, se, n)
