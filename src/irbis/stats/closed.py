"""Closed-population capture–recapture on non-spatial histories.

Models (Otis et al. 1978; Pledger 2000; Huggins 1989; Chao 1987):

- ``M0``: one capture probability ``p``;
- ``Mt``: ``p`` per occasion;
- ``Mb``: first-capture ``p`` and recapture ``c`` (trap response);
- ``Mh2``: two-point finite mixture of ``p`` (Pledger), mixing weight ``pi``;
- ``Mh_chao``: Chao's (bias-corrected) lower-bound moment estimator under
  heterogeneity, with its log-normal CI (no likelihood, not in AIC tables);
- ``huggins``: conditional likelihood with individual covariates,
  ``p ~ sex + weight`` (plus ``t`` for occasion effects), Horvitz–Thompson N.

The full-likelihood models estimate ``f0 = N - n`` (animals never caught) on
the log scale; all ``p`` use the logit link. Confidence intervals for ``N``
are the log-normal intervals of Chao (1987) and Rexstad & Burnham:
``[n + f0 / C, n + f0 * C]``, ``C = exp(1.96 sqrt(log(1 + var(N) / f0^2)))``,
which never fall below the number caught.

AICc uses the number of animals caught as the sample size.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, special

from irbis.core.errors import BadInputError
from irbis.stats.formula import design_matrix, parse_model

__all__ = [
    "CLOSED_MODELS",
    "ClosedFit",
    "aicc_table",
    "chao_mh",
    "closed_fit",
    "read_cr_history",
    "simulate_closed",
]

CLOSED_MODELS = ("M0", "Mt", "Mb", "Mh2", "Mh_chao", "huggins")
_Z = 1.959963984540054


def _lognormal_n_ci(n: int, N: float, var: float) -> tuple[float, float]:
    f0 = N - n
    if not (f0 > 0 and var >= 0 and math.isfinite(var)):
        return (float(n), float(n) if f0 <= 0 else float("nan"))
    C = math.exp(_Z * math.sqrt(math.log(1.0 + var / f0**2)))
    return (n + f0 / C, n + f0 * C)


@dataclass
class ClosedFit:
    """A fitted closed-population model.

    Attributes
    ----------
    model:
        Model name (``M0``...).
    n:
        Animals caught.
    occasions:
        Number of occasions.
    N, N_se, N_lcl, N_ucl:
        Population size, its SE and 95% log-normal CI.
    loglik:
        Maximised log-likelihood (``None`` for Chao's estimator).
    npar:
        Number of estimated parameters.
    beta, names, vcov:
        Link-scale estimates, their names and variance-covariance matrix.
    real:
        Real-scale parameters (capture probabilities...).
    """

    model: str
    n: int
    occasions: int
    N: float
    N_se: float
    N_lcl: float
    N_ucl: float
    loglik: float | None
    npar: int
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    names: list[str] = field(default_factory=list)
    vcov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    real: dict[str, float] = field(default_factory=dict)

    @property
    def aic(self) -> float:
        """Akaike's information criterion (NaN without a likelihood)."""
        return float("nan") if self.loglik is None else -2 * self.loglik + 2 * self.npar

    @property
    def aicc(self) -> float:
        """AIC corrected for small samples (sample size = animals caught)."""
        k = self.npar
        if self.loglik is None:
            return float("nan")
        return self.aic + (2 * k * (k + 1) / (self.n - k - 1) if self.n - k - 1 > 0 else math.inf)

    def covers(self, truth: float) -> bool:
        """Whether the 95% CI contains ``truth``."""
        return self.N_lcl <= truth <= self.N_ucl

    def interval_reason(self) -> str | None:
        """Why no 95% interval can be given for N, in words; None when it can.

        An interval is given when N's standard error and both limits are
        finite and the SE is positive; otherwise the data put the estimate
        at a boundary where the log-normal interval is undefined.
        """
        vals = (self.N_se, self.N_lcl, self.N_ucl)
        at_n = abs(self.N - self.n) < 1e-3
        collapsed = at_n and self.N_ucl - self.N_lcl < 0.05
        if all(math.isfinite(v) for v in vals) and self.N_se > 0 and not collapsed:
            return None
        p = self.real.get("p") if self.real else None
        if (p is not None and math.isfinite(p) and p > 1 - 1e-6) or at_n:
            return (
                f"no interval: N̂ sits at the {self.n} animals caught (the model finds no "
                "animal missed), where the log-normal interval has no width; more "
                "occasions or recaptures would give one"
            )
        if not math.isfinite(self.N) or not math.isfinite(self.N_ucl):
            return (
                "no interval: the likelihood does not bound N from above (too few "
                "recaptures for this model)"
            )
        return (
            "no interval: the variance of N̂ cannot be estimated for this model and "
            "these data (the information matrix is singular)"
        )

    def aicc_reason(self) -> str | None:
        """Why AICc is not given, in words; None when it is."""
        if self.loglik is None:
            return "no AICc: a moment estimator, without a likelihood"
        if self.n - self.npar - 1 <= 0:
            return (
                f"no AICc: {self.npar} parameters for {self.n} animals (AICc needs more "
                "animals than parameters plus one)"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "model": self.model,
            "N_ci_reason": self.interval_reason(),
            "AICc_reason": self.aicc_reason(),
            "n": self.n,
            "occasions": self.occasions,
            "N": self.N,
            "N_se": self.N_se,
            "N_lcl": self.N_lcl,
            "N_ucl": self.N_ucl,
            "logLik": self.loglik,
            "npar": self.npar,
            "AIC": self.aic,
            "AICc": self.aicc,
            "beta": dict(zip(self.names, map(float, self.beta), strict=True)),
            "beta_se": dict(
                zip(self.names, map(float, np.sqrt(np.abs(np.diag(self.vcov)))), strict=True)
            ),
            "real": self.real,
        }


def _check(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < 2:
        raise BadInputError("histories", "need an animals x occasions matrix, >= 2 occasions")
    if not np.all((X == 0) | (X == 1)):
        raise BadInputError("histories", "values must be 0 or 1")
    X = X.astype(float)
    if np.any(X.sum(axis=1) == 0):
        i = int(np.flatnonzero(X.sum(axis=1) == 0)[0])
        raise BadInputError(
            "histories", f"row {i + 1} is an all-zero history", "drop animals never caught"
        )
    if len(X) == 0:
        raise BadInputError("histories", "no animals caught")
    return X


def chao_mh(X: np.ndarray) -> ClosedFit:
    """Chao's bias-corrected Mh estimator with its log-normal CI.

    ``N = n + ((T-1)/T) f1 (f1 - 1) / (2 (f2 + 1))`` with ``f1``, ``f2`` the
    animals caught once and twice, and the matching variance (Chao 1987, 2005).

    Parameters
    ----------
    X:
        ``(n, T)`` 0/1 capture histories of the animals caught.

    Returns
    -------
    ClosedFit
    """
    X = _check(X)
    n, T = X.shape
    y = X.sum(axis=1)
    f1, f2 = float(np.sum(y == 1)), float(np.sum(y == 2))
    k = (T - 1) / T
    f0 = k * f1 * (f1 - 1) / (2 * (f2 + 1))
    var = (
        k * f1 * (f1 - 1) / (2 * (f2 + 1))
        + k**2 * f1 * (2 * f1 - 1) ** 2 / (4 * (f2 + 1) ** 2)
        + k**2 * f1**2 * f2 * (f1 - 1) ** 2 / (4 * (f2 + 1) ** 4)
    )
    N = n + f0
    lo, hi = _lognormal_n_ci(n, N, var)
    return ClosedFit(
        model="Mh_chao",
        n=n,
        occasions=T,
        N=N,
        N_se=math.sqrt(var),
        N_lcl=lo,
        N_ucl=hi,
        loglik=None,
        npar=0,
        real={"f1": f1, "f2": f2},
    )


def _log_binom(y: np.ndarray, T: int, p: float) -> np.ndarray:
    return y * np.log(p) + (T - y) * np.log1p(-p)


def _num_hessian(f: Any, x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    p = len(x)
    H = np.empty((p, p))
    f0 = f(x)
    for i in range(p):
        for j in range(i, p):
            ei = np.zeros(p)
            ej = np.zeros(p)
            ei[i] = step
            ej[j] = step
            if i == j:
                v = (f(x + ei) - 2 * f0 + f(x - ei)) / step**2
            else:
                v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4 * step**2
                )
            H[i, j] = H[j, i] = v
    return H


def _maximise(nll: Any, x0: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    res = optimize.minimize(nll, x0, method="BFGS", options={"gtol": 1e-6})
    if not (res.success or float(np.max(np.abs(res.jac))) < 1e-3):
        nm = optimize.minimize(nll, res.x, method="Nelder-Mead", options={"maxiter": 5000})
        res2 = optimize.minimize(nll, nm.x, method="BFGS", options={"gtol": 1e-6})
        res = min((res, nm, res2), key=lambda r: r.fun)
    x = res.x
    H = _num_hessian(nll, x)
    try:
        vcov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        vcov = np.full_like(H, np.nan)
    return x, float(nll(x)), vcov


def _full_model(X: np.ndarray, model: str) -> ClosedFit:
    n, T = X.shape
    y = X.sum(axis=1)
    first = X.argmax(axis=1)  # 0-based occasion of first capture
    recaps = y - 1
    after = T - first - 1  # occasions after the first capture

    def parts(theta: np.ndarray) -> tuple[np.ndarray, float, dict[str, float]]:
        if model == "M0":
            p = special.expit(theta[0])
            return _log_binom(y, T, p), T * math.log1p(-p), {"p": float(p)}
        if model == "Mt":
            pt = special.expit(theta[:T])
            lp = (X * np.log(pt) + (1 - X) * np.log1p(-pt)).sum(axis=1)
            real = {f"p{t + 1}": float(v) for t, v in enumerate(pt)}
            return lp, float(np.log1p(-pt).sum()), real
        if model == "Mb":
            p, c = special.expit(theta[0]), special.expit(theta[1])
            lp = (
                first * math.log1p(-p)
                + math.log(p)
                + recaps * math.log(c)
                + (after - recaps) * math.log1p(-c)
            )
            return lp, T * math.log1p(-p), {"p": float(p), "c": float(c)}
        # Mh2
        p1, p2, w = special.expit(theta[0]), special.expit(theta[1]), special.expit(theta[2])
        lp = np.logaddexp(math.log(w) + _log_binom(y, T, p1), math.log1p(-w) + _log_binom(y, T, p2))
        l0 = float(
            np.logaddexp(math.log(w) + T * math.log1p(-p1), math.log1p(-w) + T * math.log1p(-p2))
        )
        return lp, l0, {"p1": float(p1), "p2": float(p2), "pi": float(w)}

    def nll(x: np.ndarray) -> float:
        f0 = math.exp(min(x[-1], math.log(1e4 * n)))
        with np.errstate(all="ignore"):
            lp, l0, _ = parts(x[:-1])
            N = n + f0
            ll = special.gammaln(N + 1) - special.gammaln(f0 + 1) + float(lp.sum()) + f0 * l0
        return -ll if np.isfinite(ll) else 1e100

    pbar = float(y.mean() / T)
    lp0 = special.logit(min(max(pbar, 0.02), 0.95))
    if model == "M0":
        th, names = [lp0], ["p"]
    elif model == "Mt":
        th = list(special.logit(np.clip(X.mean(axis=0), 0.02, 0.95)))
        names = [f"p{t + 1}" for t in range(T)]
    elif model == "Mb":
        th, names = [lp0, lp0], ["p", "c"]
    else:
        th = [special.logit(max(pbar / 2, 0.01)), special.logit(min(pbar * 1.5, 0.95)), 0.0]
        names = ["p1", "p2", "pi"]
    p_any = 1 - (1 - pbar) ** T
    f0 = max(n / p_any - n, 0.5)
    x0 = np.array([*th, math.log(f0)])
    x, fmin, vcov = _maximise(nll, x0)
    _, _, real = parts(x[:-1])
    f0 = math.exp(x[-1])
    N = n + f0
    var = f0**2 * float(vcov[-1, -1])
    lo, hi = _lognormal_n_ci(n, N, var)
    # the multinomial constant is left out: it is the same in every model
    return ClosedFit(
        model=model,
        n=n,
        occasions=T,
        N=N,
        N_se=math.sqrt(max(var, 0.0)),
        N_lcl=lo,
        N_ucl=hi,
        loglik=-fmin,
        npar=len(x),
        beta=x,
        names=[*names, "f0"],
        vcov=vcov,
        real=real,
    )


def _huggins(
    X: np.ndarray, formula: str | None, covariates: Mapping[str, np.ndarray] | None
) -> ClosedFit:
    n, T = X.shape
    terms = parse_model(formula, ("p",))["p"]
    time_eff = "t" in terms
    terms = [t for t in terms if t != "t"]
    covs = {k: np.asarray(v) for k, v in (covariates or {}).items()}
    for k, v in covs.items():
        if len(v) != n:
            raise BadInputError("covariates", f"{k!r} has {len(v)} values for {n} animals")
        if v.dtype.kind in "US":
            covs[k] = v.astype(object)
    des = design_matrix("p", terms, covs, n, where="animals", min_rows_per_level=2)
    Xd, names = des.matrix, list(des.names)
    nt = T - 1 if time_eff else 0
    names += [f"p.t{t + 2}" for t in range(nt)]

    def probs(beta: np.ndarray) -> np.ndarray:
        eta = Xd @ beta[: Xd.shape[1]]
        teff = np.concatenate([[0.0], beta[Xd.shape[1] :]]) if time_eff else np.zeros(T)
        return special.expit(eta[:, None] + teff[None, :])  # (n, T)

    def nll(beta: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            p = probs(beta)
            lp = (X * np.log(p) + (1 - X) * np.log1p(-p)).sum(axis=1)
            l0 = np.log1p(-p).sum(axis=1)
            ll = float((lp - np.log(-np.expm1(l0))).sum())
        return -ll if np.isfinite(ll) else 1e100

    pbar = float(X.mean())
    x0 = np.zeros(len(names))
    x0[0] = special.logit(min(max(pbar, 0.02), 0.95))
    x, fmin, vcov = _maximise(nll, x0)

    def n_hat(beta: np.ndarray) -> float:
        p0 = np.exp(np.log1p(-probs(beta)).sum(axis=1))
        return float((1.0 / (1.0 - p0)).sum())

    N = n_hat(x)
    p0 = np.exp(np.log1p(-probs(x)).sum(axis=1))
    grad = np.array([(n_hat(x + e) - n_hat(x - e)) / 2e-6 for e in np.eye(len(x)) * 1e-6])
    var = float((p0 / (1 - p0) ** 2).sum() + grad @ vcov @ grad)
    lo, hi = _lognormal_n_ci(n, N, var)
    real = {"p_mean": float(probs(x).mean()), "pstar_mean": float((1 - p0).mean())}
    return ClosedFit(
        model="huggins",
        n=n,
        occasions=T,
        N=N,
        N_se=math.sqrt(max(var, 0.0)),
        N_lcl=lo,
        N_ucl=hi,
        loglik=-fmin,
        npar=len(x),
        beta=x,
        names=names,
        vcov=vcov,
        real=real,
    )


def closed_fit(
    X: np.ndarray,
    model: str = "M0",
    *,
    formula: str | None = None,
    covariates: Mapping[str, np.ndarray] | None = None,
) -> ClosedFit:
    """Fit a closed-population model to 0/1 capture histories.

    Parameters
    ----------
    X:
        ``(n, T)`` 0/1 histories of the ``n`` animals caught on ``T`` occasions.
    model:
        One of :data:`CLOSED_MODELS`.
    formula:
        Huggins only: ``"p~sex+weight"``; ``t`` adds occasion effects.
    covariates:
        Huggins only: individual covariates, one value per row of ``X``
        (numbers, or strings for factors).

    Returns
    -------
    ClosedFit
    """
    X = _check(X)
    if model not in CLOSED_MODELS:
        raise BadInputError("model", f"unknown closed model {model!r}", f"use {CLOSED_MODELS}")
    if model == "Mh_chao":
        return chao_mh(X)
    if model == "huggins":
        return _huggins(X, formula, covariates)
    return _full_model(X, model)


def simulate_closed(
    N: int,
    T: int,
    p: float | Sequence[float] = 0.2,
    *,
    c: float | None = None,
    mixture: tuple[float, float, float] | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Simulate closed-population 0/1 histories; returns only animals caught.

    Parameters
    ----------
    N:
        True population size.
    T:
        Occasions.
    p:
        Capture probability, or one per occasion (Mt).
    c:
        Recapture probability after first capture (Mb); ``None``: same as ``p``.
    mixture:
        ``(p1, p2, pi)``: two-class heterogeneity (Mh); overrides ``p``.
    rng:
        Generator or seed.

    Returns
    -------
    numpy.ndarray
        ``(n, T)`` histories.
    """
    rng = np.random.default_rng(rng)
    pt = np.broadcast_to(np.asarray(p, dtype=float), (T,))
    if mixture is not None:
        p1, p2, w = mixture
        pi_ = np.where(rng.random(N) < w, p1, p2)
        P = np.repeat(pi_[:, None], T, axis=1)
    else:
        P = np.repeat(pt[None, :], N, axis=0)
    X = np.zeros((N, T))
    caught = np.zeros(N, dtype=bool)
    for t in range(T):
        pr = P[:, t] if c is None else np.where(caught, c, P[:, t])
        X[:, t] = rng.random(N) < pr
        caught |= X[:, t] > 0
    return X[caught]


def read_capthist_text(
    path: str | Path, n_occasions: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Read secr's capthist text (``Session ID Occasion TrapID`` rows) as 0/1 histories.

    The layout ``irbis export secr`` writes and R's ``read.capthist(...,
    fmt = "trapID")`` reads. Several detections of one animal on one
    occasion are one capture. The number of occasions is ``n_occasions``,
    else the ``usage[1..S]`` of a ``traps.txt`` beside the file, else the
    largest occasion seen.

    Returns
    -------
    (X, ids)
        ``(n, S)`` 0/1 matrix and the animal IDs.
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(str(path), "file not found", "check the path")
    caps: dict[str, set[int]] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) < 4:
            raise BadInputError(
                f"{path}:line {i}", "expected Session ID Occasion TrapID", "one detection a line"
            )
        try:
            occ = int(parts[2])
        except ValueError:
            raise BadInputError(
                f"{path}:line {i}", f"occasion {parts[2]!r} is not a whole number", ""
            ) from None
        if occ < 1:
            raise BadInputError(f"{path}:line {i}", "occasions count from 1", "")
        caps.setdefault(parts[1], set()).add(occ)
    if not caps:
        raise BadInputError(str(path), "no detections", "export again with identified animals")
    if n_occasions is None:
        traps = path.with_name("traps.txt")
        m = re.search(r"usage\[1\.\.(\d+)\]", traps.read_text()) if traps.exists() else None
        n_occasions = int(m.group(1)) if m else max(max(v) for v in caps.values())
    if max(max(v) for v in caps.values()) > n_occasions:
        raise BadInputError(
            str(path), f"an occasion beyond the {n_occasions} given", "check --occasions"
        )
    if n_occasions < 2:
        raise BadInputError(
            str(path),
            f"{n_occasions} occasion: closed models need at least two",
            "export with `irbis export secr PROJECT OUT --occasion-days N`",
        )
    ids = sorted(caps)
    X = np.zeros((len(ids), n_occasions), dtype=int)
    for r, a in enumerate(ids):
        for occ in caps[a]:
            X[r, occ - 1] = 1
    return X, ids


def read_cr_history(
    path: str | Path, n_occasions: int | None = None
) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Read closed-population histories from CSV.

    Two layouts: long ``ID,occasion`` (one row per capture; more columns
    are individual covariates), or a 0/1 matrix ``ID,1,2,...,T`` (occasion
    columns named by integers; other columns are individual covariates).

    Parameters
    ----------
    path:
        CSV file.
    n_occasions:
        Long layout: number of occasions (default: the largest seen).

    Returns
    -------
    (X, ids, covariates)
        ``(n, T)`` 0/1 matrix, animal IDs, covariates (float or str arrays).
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(str(path), "file not found", "check the path")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise BadInputError(str(path), "no capture rows", "a header and one row per capture")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if "ID" not in header:
        raise BadInputError(str(path), "no column 'ID'", "header ID,occasion or ID,1,2,...")
    iid = header.index("ID")
    covcols: list[int] = []
    if "occasion" in header:
        io = header.index("occasion")
        covcols = [j for j in range(len(header)) if j not in (iid, io)]
        ids: list[str] = []
        caps: list[tuple[int, int]] = []
        for r, row in enumerate(body, start=2):
            if len(row) != len(header):
                raise BadInputError(f"{path}:{r}", "wrong number of fields")
            a = row[iid].strip()
            try:
                o = int(row[io])
            except ValueError:
                raise BadInputError(
                    f"{path}:{r}", f"occasion {row[io]!r} is not an integer"
                ) from None
            if o < 1:
                raise BadInputError(f"{path}:{r}", "occasions start at 1")
            if a not in ids:
                ids.append(a)
            caps.append((ids.index(a), o))
        T = n_occasions or max(o for _, o in caps)
        if any(o > T for _, o in caps):
            raise BadInputError(str(path), f"an occasion exceeds {T}", "raise --occasions")
        X = np.zeros((len(ids), T))
        for i, o in caps:
            X[i, o - 1] = 1
        first_row = {}
        for row in body:
            first_row.setdefault(row[iid].strip(), row)
        cov = {header[j]: _col([first_row[a][j] for a in ids]) for j in covcols}
        return X, ids, cov
    occ = [j for j, h in enumerate(header) if j != iid and h.removeprefix("occ_").isdigit()]
    if len(occ) < 2:
        raise BadInputError(
            str(path), "no occasion columns", "name occasion columns 1,2,... or use ID,occasion"
        )
    covcols = [j for j in range(len(header)) if j != iid and j not in occ]
    X = np.zeros((len(body), len(occ)))
    ids = []
    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise BadInputError(f"{path}:{r}", "wrong number of fields")
        ids.append(row[iid].strip())
        for t, j in enumerate(occ):
            v = row[j].strip()
            if v not in ("0", "1"):
                raise BadInputError(
                    f"{path}:{r}", f"value {v!r} in occasion {header[j]}", "use 0/1"
                )
            X[r - 2, t] = float(v)
    cov = {header[j]: _col([row[j] for row in body]) for j in covcols}
    keep = X.sum(axis=1) > 0
    if not keep.all():
        raise BadInputError(
            f"{path}:{int(np.flatnonzero(~keep)[0]) + 2}",
            "all-zero history",
            "drop animals never caught",
        )
    return X, ids, cov


def _col(values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array([v.strip() for v in values], dtype=object)


def aicc_table(fits: Mapping[str, ClosedFit]) -> list[dict[str, Any]]:
    """Rank closed models by AICc (Chao's estimator, having no likelihood, is left out).

    The Huggins conditional likelihood is not comparable with the full
    likelihoods of M0/Mt/Mb/Mh2: ``dAICc`` and weights are computed within
    each ``likelihood`` group (``"full"`` or ``"conditional"``).

    Parameters
    ----------
    fits:
        Model name -> fitted model.

    Returns
    -------
    list of dict
        Rows ``model``, ``likelihood``, ``npar``, ``logLik``, ``AICc``, ``dAICc``,
        ``AICcwt``, ``N``, ``N_lcl``, ``N_ucl``; by group, best first.
    """
    rows = [
        {
            "model": k,
            "likelihood": "conditional" if f.model == "huggins" else "full",
            "npar": f.npar,
            "logLik": f.loglik,
            "AICc": f.aicc,
            "N": f.N,
            "N_lcl": f.N_lcl,
            "N_ucl": f.N_ucl,
        }
        for k, f in fits.items()
        if f.loglik is not None
    ]
    for group in ("full", "conditional"):
        g = [r for r in rows if r["likelihood"] == group]
        if not g:
            continue
        best = min(r["AICc"] for r in g)
        w = np.exp(-0.5 * (np.array([r["AICc"] for r in g]) - best))
        for r, wi in zip(g, w / w.sum(), strict=True):
            r["dAICc"] = r["AICc"] - best
            r["AICcwt"] = float(wi)
    return sorted(rows, key=lambda r: (r["likelihood"] != "full", r["AICc"]))
