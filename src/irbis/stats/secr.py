"""Spatially explicit capture-recapture (SECR) by maximum likelihood.

The model and its likelihood follow Borchers & Efford (2008) and R ``secr``
(Efford), so that fits agree with ``secr.fit``:

- activity centres form a Poisson process of density ``D(x)`` (animals per
  hectare) over the habitat mask; the integral over the mask is a sum over
  its points times the cell area;
- an animal centred at ``x`` is detected at trap ``k`` on occasion ``s``
  according to the detection function (see :mod:`irbis.stats.detectfn`),
  scaled by the trap's usage ``u[k, s]``:

  * ``count`` (Poisson): counts are Poisson with mean ``u * h(d)``;
  * ``count`` with a binomial size ``B``: counts are binomial(``B``, p);
  * ``proximity``: presence/absence per trap and occasion, Bernoulli(p);
  * ``multi``: at most one trap per occasion (competing hazards);

  where ``p = 1 - exp(-u * h)`` and ``h`` is the hazard (``lambda(d)``, or
  ``-log(1 - g(d))`` for HN, HR and EX, as current ``secr`` does for every
  detector type, Poisson counts included);
- the full likelihood has Poisson ``n``; with identical capture histories it
  includes the multinomial term ``-sum(log n_w!)`` as ``secr`` does;
- the conditional likelihood conditions on ``n``; density is then derived
  with the Horvitz-Thompson-like estimator ``n / a(theta)``.

Real parameters have linear submodels on the link scale (see
:mod:`irbis.stats.formula`): ``D`` on mask covariates, detection parameters
on trap covariates. Coefficients are named as ``secr`` names them.

Examples
--------
>>> from irbis.stats import secr
>>> traps = secr.read_traps("traps.csv")                    # doctest: +SKIP
>>> ch = secr.read_captures("captures.csv", traps)          # doctest: +SKIP
>>> mask = secr.read_mask("mask.csv")                       # doctest: +SKIP
>>> fit = secr.fit(ch, mask, model="D~1 lambda0~Topo sigma~1", detectfn="HHN")  # doctest: +SKIP
>>> fit.beta_table()                                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import digamma, gammaln
from scipy.stats import norm

from irbis.core.errors import BadInputError
from irbis.stats._threads import blas_threads
from irbis.stats.detectfn import (
    LINK_CHOICES,
    LINKS,
    detect_params,
    dlink_dreal,
    dreal_deta,
    is_hazard,
    link_from,
    link_to,
    log_shape,
    shape_derivs,
    third_param,
    unlink,
)
from irbis.stats.formula import (
    Design,
    design_matrix,
    factor_levels,
    model_row,
    parse_model,
    rhs_text,
    variables_of,
)
from irbis.stats.secr_data import (
    CaptureHistory,
    Mask,
    Traps,
    make_mask,
    read_captures,
    read_mask,
    read_traps,
)

__all__ = [
    "SecrFit",
    "SecrLikelihood",
    "SecrModel",
    "aic_table",
    "fit",
    "make_mask",
    "model_table",
    "read_captures",
    "read_mask",
    "read_traps",
    "rpsv",
    "secr_fit",
]

#: hectares in 100 square kilometres (densities are reported per 100 km^2)
HA_PER_100KM2 = 10_000.0
_LIKELIHOODS = {"full": "full", "conditional": "conditional", "cl": "conditional"}
#: mask points x traps above which the likelihood is evaluated in chunks of mask points
CHUNK_CELLS = 4_000_000
#: secr's automatic density covariates: the mask's coordinates, standardised
TREND_TERMS = ("x", "y", "x2", "y2", "xy")


def mask_covariates(mask: Mask, terms: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Mask covariates plus secr's trend-surface variables where the terms use them.

    ``x`` and ``y`` are the mask coordinates standardised by their mean and
    standard deviation (secr's ``meanSD`` attribute of the mask), ``x2 =
    x^2``, ``y2 = y^2``, ``xy = x * y``, as in secr's ``D.designdata``.

    Parameters
    ----------
    mask:
        Habitat mask.
    terms:
        Term labels of the density formula.

    Returns
    -------
    dict
    """
    covs = dict(mask.covariates)
    used = set(variables_of(terms)) & set(TREND_TERMS)
    if not used:
        return covs
    clash = sorted(used & set(covs))
    if clash:
        raise BadInputError(
            "mask",
            f"mask covariate {clash[0]!r} has the name of secr's trend-surface term",
            "rename the covariate (x, y, x2, y2, xy are the mask's standardised coordinates)",
        )
    xy = mask.xy.astype(float)
    sd = xy.std(axis=0, ddof=1) if len(xy) > 1 else np.ones(2)
    sd = np.where(sd > 0, sd, 1.0)
    z = (xy - xy.mean(axis=0)) / sd
    auto = {"x": z[:, 0], "y": z[:, 1], "x2": z[:, 0] ** 2, "y2": z[:, 1] ** 2,
            "xy": z[:, 0] * z[:, 1]}  # fmt: skip
    covs.update({k: auto[k] for k in used})
    return covs


def parameter_covariates(
    param: str,
    mask: Mask,
    traps: Traps,
    terms: Sequence[str],
    session_covariates: Mapping[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], int, str]:
    """Covariates a real parameter's submodel may name, with their rows.

    Density is modelled on the mask (its covariates plus secr's trend-surface
    terms), detection parameters on the traps; session covariates are
    constant columns over either.

    Parameters
    ----------
    param:
        Real parameter (``"D"`` or a detection parameter).
    mask, traps:
        The session's mask and traps.
    terms:
        Term labels of the parameter's formula.
    session_covariates:
        Values constant over the session (``session``, ``Session``...).

    Returns
    -------
    covariates:
        Arrays by name.
    n_rows:
        Mask points or traps.
    where:
        ``"mask"`` or ``"traps"`` (for messages).
    """
    if param == "D":
        covs, n_rows, where = mask_covariates(mask, terms), mask.n_points, "mask"
    else:
        covs, n_rows, where = dict(traps.covariates), traps.n_traps, "traps"
    for k, v in (session_covariates or {}).items():
        if k in covs:
            raise BadInputError(where, f"{k!r} is both a session covariate and a {where} covariate")
        covs[k] = np.full(n_rows, v, dtype=object if isinstance(v, str) else float)
    return covs, n_rows, where


def parameter_design(
    param: str,
    terms: list[str],
    covs: Mapping[str, np.ndarray],
    n_rows: int,
    where: str,
    levels: Mapping[str, Sequence[str]] | None = None,
    smooth: Mapping[str, Any] | None = None,
) -> tuple[Design, dict[str, list[str]]]:
    """Design matrix of one real parameter and the factor levels it uses.

    Parameters
    ----------
    param, terms, covs, n_rows, where:
        As :func:`~irbis.stats.formula.design_matrix`.
    levels:
        Levels fixed across sessions (the levels of every session), by covariate.
    smooth:
        ``s()`` bases built over every session's data, by term variable.

    Returns
    -------
    design:
        The design.
    levels:
        Levels of each factor in the terms (the fixed ones where given).
    """
    lv = factor_levels(terms, covs, levels)
    fixed_lv = {v: lv[v] for v in lv if levels and v in levels}
    des = design_matrix(
        param, terms, covs, n_rows, where=where, levels=fixed_lv or None, smooth=smooth
    )
    return des, lv


def _check_distribution(distribution: str, likelihood: str) -> str:
    """secr's ``details$distribution``: Poisson or binomial number of animals in the mask."""
    dist = str(distribution).lower()
    if dist not in ("poisson", "binomial"):
        raise BadInputError("distribution", f"{distribution!r}", "use 'poisson' or 'binomial'")
    if dist == "binomial" and likelihood != "full":
        raise BadInputError(
            "distribution", "binomial N needs the full likelihood", "use likelihood='full'"
        )
    return dist


def binomial_n_adjustment(n: int, N: float, Lam: float) -> tuple[float, float, float]:
    """Binomial instead of Poisson ``n``: the log-likelihood term to add and its derivatives.

    secr's full likelihood has ``dpois(n, N * P)`` with ``N = sum(D) * cell
    area`` and ``P`` the density-weighted mean detection probability; with
    ``distribution = "binomial"`` it has ``lnbinomial(n, N, P)`` instead (N
    animals in the mask, a real number). With ``Lam = N * P`` the difference is
    ``lgamma(N+1) - lgamma(N-n+1) - n log N + (N-n) log(1 - Lam/N) + Lam``.

    Parameters
    ----------
    n:
        Animals detected.
    N:
        Animals in the mask, ``sum(D) * cell area``.
    Lam:
        Expected number detected, ``sum(D * pdot) * cell area``.

    Returns
    -------
    delta:
        The term (``-inf`` when ``n > N``, as secr).
    d_Lam, d_N:
        Its partial derivatives.
    """
    if not (n <= N and N > Lam > 0):
        return -math.inf, 0.0, 0.0
    r = 1.0 - Lam / N
    delta = gammaln(N + 1) - gammaln(N - n + 1) - n * math.log(N) + (N - n) * math.log(r) + Lam
    d_lam = (n - Lam) / (N - Lam)
    d_n = digamma(N + 1) - digamma(N - n + 1) - n / N + math.log(r)
    d_n += (N - n) * Lam / (N * (N - Lam))
    return float(delta), float(d_lam), float(d_n)


def _check_fixed(
    fixed: Mapping[str, float] | None, params: Sequence[str], formulas: Mapping[str, list[str]]
) -> dict[str, float]:
    """Validate secr-style fixed real parameters (``fixed = list(sigma = 3000)``)."""
    out: dict[str, float] = {}
    for p, v in (fixed or {}).items():
        if p == "pmix":
            raise BadInputError("fixed", "pmix cannot be fixed", "estimate it (pmix~h2)")
        if p not in params:
            raise BadInputError(
                "fixed", f"no real parameter {p!r} to fix", f"this model has {', '.join(params)}"
            )
        if formulas.get(p):
            raise BadInputError(
                "fixed",
                f"{p} is fixed and modelled ({p}~{rhs_text(formulas[p])})",
                f"drop {p} from the model",
            )
        val = float(v)
        lo_ok = val > 0 and (LINKS[p] != "logit" or val < 1)
        if not (math.isfinite(val) and lo_ok):
            raise BadInputError("fixed", f"{p} = {v} is outside its range", "give a value in range")
        out[p] = val
    if len(out) == len(params):
        raise BadInputError("fixed", "every parameter is fixed", "leave one to estimate")
    return out


def _check_links(link: Mapping[str, str] | None, params: Sequence[str]) -> dict[str, str]:
    """Links other than the defaults, validated against what secr allows (by parameter)."""
    out: dict[str, str] = {}
    for p, name in (link or {}).items():
        if p not in params:
            raise BadInputError(
                "link", f"no real parameter {p!r}", f"this model has {', '.join(params)}"
            )
        name = str(name).lower()
        if name not in LINK_CHOICES.get(p, ()):
            raise BadInputError(
                "link", f"link {name!r} for {p}", f"use one of {', '.join(LINK_CHOICES[p])}"
            )
        if name != LINKS[p]:
            out[p] = name
    return out


# ---------------------------------------------------------------------------
# numerical helpers


def _log_expm1(logx: np.ndarray) -> np.ndarray:
    """``log(exp(x) - 1)`` from ``log x``, stable for tiny and huge ``x``."""
    x = np.exp(np.minimum(logx, 700.0))
    with np.errstate(divide="ignore"):
        exact = x + np.log(-np.expm1(-x))
    return np.where(logx < -25.0, logx + 0.5 * x, exact)


def _log_hazard_from_logg(logg: np.ndarray) -> np.ndarray:
    """``log(-log(1 - g))`` from ``log g``; stable for tiny ``g``."""
    g = np.exp(np.minimum(logg, -1e-15))
    with np.errstate(divide="ignore"):
        exact = np.log(-np.log1p(-g))
    return np.where(logg < -25.0, logg + 0.5 * g, exact)


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    mx = a.max(axis=1)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    return mx + np.log(np.exp(a - mx[:, None]).sum(axis=1))


def _gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    g = np.empty_like(x)
    for j in range(len(x)):
        e = np.zeros_like(x)
        e[j] = h
        g[j] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _hessian(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-3, f0: float | None = None
) -> np.ndarray:
    """Central-difference Hessian (O(h^2) error)."""
    p = len(x)
    f0 = f(x) if f0 is None else f0
    H = np.empty((p, p))
    E = np.eye(p) * h
    for i in range(p):
        H[i, i] = (f(x + E[i]) - 2 * f0 + f(x - E[i])) / h**2
        for j in range(i):
            v = (
                f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j]) + f(x - E[i] - E[j])
            ) / (4 * h * h)
            H[i, j] = H[j, i] = v
    return H


def _lognormal_ci(est: float, se: float, level: float) -> tuple[float, float]:
    """CI of a positive estimate assuming a log-normal sampling distribution."""
    if not (est > 0 and np.isfinite(se)):
        return float("nan"), float("nan")
    zq = norm.ppf(0.5 + level / 2)
    c = math.exp(zq * math.sqrt(math.log1p((se / est) ** 2)))
    return est / c, est * c


def _third_start(detectfn: str, sigma: float) -> float:
    """Starting value (log scale) of the shape parameter ``z`` or ``w``."""
    code = detectfn.upper()
    if code in ("WEX", "ANN", "HAN"):
        return math.log(0.5 * sigma)  # w: a distance
    if code == "CLN":
        return math.log(0.5 * sigma)  # z: SD of the threshold distance
    if code in ("CG", "HCG", "HVP"):
        return math.log(2.0)
    return math.log(5.0)  # HR, HHR, CHN


def rpsv(capthist: CaptureHistory) -> float:
    """Root pooled spatial variance of the detections (metres).

    Parameters
    ----------
    capthist:
        Capture histories; each detection (counted as many times as its
        count) is a point at its trap.

    Returns
    -------
    float
        ``sqrt(SS / (2 * sum(n_i - 1)))`` with ``SS`` the squared deviations
        of each animal's detections from its own centroid; ``nan`` without
        recaptures.
    """
    xy = capthist.traps.xy
    per_trap = capthist.counts.sum(axis=1).astype(float)  # n x K
    ss = 0.0
    dof = 0.0
    for w in per_trap:
        tot = w.sum()
        if tot < 2:
            continue
        c = (w[:, None] * xy).sum(axis=0) / tot
        ss += float((w * ((xy - c) ** 2).sum(axis=1)).sum())
        dof += tot - 1
    if dof <= 0:
        return float("nan")
    return math.sqrt(ss / (2 * dof))


# ---------------------------------------------------------------------------
# the likelihood


@dataclass
class _Block:
    """One real parameter's linear submodel."""

    param: str
    design: Design
    start: int
    terms: list[str]
    levels: dict[str, list[str]]

    @property
    def stop(self) -> int:
        return self.start + self.design.matrix.shape[1]


_LevelDetections = Mapping[int, tuple[str, str, str, int, int]]


def _boundary_reasons(parts: Sequence[_LevelDetections]) -> dict[int, str]:
    """Boundary reasons from the level detections of one or more sessions."""
    out: dict[int, str] = {}
    for j in sorted({j for p in parts for j in p}):
        rows = [p[j] for p in parts if j in p]
        n_traps = sum(r[3] for r in rows)
        n_det = sum(r[4] for r in rows)
        if n_traps == 0 or n_det > 0:
            continue
        _, term, level, *_ = rows[0]
        where = "the only trap" if n_traps == 1 else f"all {n_traps} traps"
        if len(parts) > 1:
            where += " (over all sessions)"
        out[j] = f"no detections at {where} with {term} = {level}"
    return out


class SecrLikelihood:
    """Log-likelihood of an SECR model, as a function of the coefficients.

    Parameters
    ----------
    capthist:
        Capture histories (detector type and binomial size come from it).
    mask:
        Habitat mask.
    model:
        Formulas, e.g. ``"D~stdGC lambda0~Topo sigma~1"`` (missing ones ~1).
    detectfn:
        ``"HN"``, ``"HR"``, ``"EX"``, ``"HHN"``, ``"HHR"`` or ``"HEX"``.
    likelihood:
        ``"full"`` (Poisson ``N``; ``D`` is a parameter) or ``"conditional"``
        (conditional on ``n``; ``D`` is derived).
    session_covariates:
        Values constant over this session that formulas may name (e.g.
        ``{"session": "2019", "Session": 0.0}`` in a multi-session fit).
    levels:
        Fixed factor levels by covariate name (the levels of all sessions),
        so that every session has the same coefficients.

    Attributes
    ----------
    names:
        Coefficient names in order (``secr`` style).
    params:
        Real parameters in order.
    """

    def __init__(
        self,
        capthist: CaptureHistory,
        mask: Mask,
        model: str | Mapping[str, str] | None = None,
        detectfn: str = "HHN",
        likelihood: str = "full",
        *,
        session_covariates: Mapping[str, Any] | None = None,
        levels: Mapping[str, Sequence[str]] | None = None,
        fixed: Mapping[str, float] | None = None,
        link: Mapping[str, str] | None = None,
        chunk_points: int | None = None,
        smooths: Mapping[str, Mapping[str, Any]] | None = None,
        distribution: str = "poisson",
    ) -> None:
        likelihood = _LIKELIHOODS.get(str(likelihood).lower(), "")
        if not likelihood:
            raise BadInputError(
                "likelihood", "unknown likelihood", "use 'full' or 'conditional' ('CL')"
            )
        self.distribution = _check_distribution(distribution, likelihood)
        self.capthist = capthist
        self.mask = mask
        self.traps = capthist.traps
        self.detectfn = detectfn.upper()
        self.likelihood = likelihood
        dparams = detect_params(self.detectfn)
        formulas = parse_model(model, ("D",) + dparams)
        if likelihood == "conditional" and formulas["D"]:
            raise BadInputError(
                "model",
                "the conditional likelihood has no density submodel",
                "use likelihood='full' for D~covariates",
            )
        all_params = (("D",) if likelihood == "full" else ()) + dparams
        self.fixed = _check_fixed(fixed, all_params, formulas)
        self.links = _check_links(link, all_params)
        self.formulas = formulas
        self.session_covariates = dict(session_covariates or {})
        self.params: tuple[str, ...] = tuple(p for p in all_params if p not in self.fixed)
        self.blocks: list[_Block] = []
        col = 0
        for p in self.params:
            terms = formulas[p]
            covs, n_rows, where = parameter_covariates(
                p, mask, self.traps, terms, self.session_covariates
            )
            # a level at a single trap is fitted as R does; with no detections there
            # its coefficient runs to the boundary and is flagged (boundary_candidates)
            des, lv = parameter_design(
                p, terms, covs, n_rows, where, levels, (smooths or {}).get(p)
            )
            self.blocks.append(_Block(p, des, col, terms, lv))
            col += des.matrix.shape[1]
        self.names: list[str] = [n for b in self.blocks for n in b.design.names]
        self.npar = col
        M, K = mask.n_points, self.traps.n_traps
        if chunk_points is None and M * K > CHUNK_CELLS:
            chunk_points = max(1, CHUNK_CELLS // K)
        self.chunk_points = int(chunk_points) if chunk_points and chunk_points < M else None
        self._prepare()

    # -- precomputation ------------------------------------------------------

    def _prepare(self) -> None:
        ch = self.capthist
        counts = ch.counts.astype(float)  # n x S x K
        n, S, K = counts.shape
        usage = self.traps.usage_matrix(S).astype(float)  # K x S
        self.n = n
        xy_m, xy_t = self.mask.xy, self.traps.xy
        # squared distances, mask points x traps (per chunk when the mask is large)
        if getattr(self, "chunk_points", None):
            self.d2 = self.dist = None
        else:
            self.d2 = (xy_m[:, 0:1] - xy_t[None, :, 0]) ** 2 + (
                xy_m[:, 1:2] - xy_t[None, :, 1]
            ) ** 2
            self.dist = np.sqrt(self.d2) if self.detectfn not in ("HN", "HHN") else None
        self.area = self.mask.cell_area
        self.U = usage.sum(axis=1)  # K
        self.C = counts.sum(axis=1)  # n x K
        with np.errstate(divide="ignore"):
            logu = np.where(usage > 0, np.log(np.where(usage > 0, usage, 1.0)), 0.0)
        const = np.einsum("isk,ks->i", counts, logu)
        if ch.detector == "count" and ch.binom_size == 0:
            self.kind = "poisson"
            const -= gammaln(counts + 1).sum(axis=(1, 2))
        elif ch.detector in ("proximity", "count"):
            self.kind = "binomial"
            self.B = 1 if ch.detector == "proximity" else int(ch.binom_size)
            const = gammaln(self.B + 1) - gammaln(counts + 1) - gammaln(self.B - counts + 1)
            const = const.sum(axis=(1, 2))
            # group the detections by the usage of their trap-occasion
            vals = np.unique(np.round(usage[usage > 0], 12))
            self.groups: list[tuple[float, np.ndarray]] = []
            for w in vals:
                sel = (np.abs(usage - w) < 1e-9).T.astype(float)  # S x K
                Nw = np.einsum("isk,sk->ik", counts, sel)
                if Nw.any():
                    self.groups.append((float(w), Nw))
        else:  # multi
            self.kind = "multi"
            pats, inv = np.unique(usage.T, axis=0, return_inverse=True)  # patterns x K
            inv = np.asarray(inv).ravel()
            caught = counts.sum(axis=2) > 0  # n x S
            self.patterns = pats
            self.pattern_S = np.bincount(inv, minlength=len(pats)).astype(float)
            self.pattern_caught = np.stack(
                [caught[:, inv == c].sum(axis=1) for c in range(len(pats))], axis=1
            ).astype(float)  # n x P
            self.pattern_free = self.pattern_S[None, :] - self.pattern_caught
        self.const_i = const
        _, mult = np.unique(ch.counts.reshape(n, -1), axis=0, return_counts=True)
        self.log_multinomial = -float(gammaln(mult + 1).sum())
        self._const_total = float(self.const_i.sum())
        self._hazard = is_hazard(self.detectfn)
        # the hazard is lambda0 * f(d): log-linear in the parameters, so the
        # distance part can be cached while sigma and z stay put
        self._separable = self._hazard
        self._cache: dict[str, Any] | None = None

    # -- evaluation ----------------------------------------------------------

    def _etas(self, beta: np.ndarray) -> dict[str, np.ndarray]:
        """Linear predictors on each parameter's default link scale (fixed ones included)."""
        out = {}
        links = getattr(self, "links", {})
        for b in self.blocks:
            e = b.design.matrix @ beta[b.start : b.stop]
            if b.param in links:
                with np.errstate(invalid="ignore", divide="ignore"):
                    e = link_to(LINKS[b.param], link_from(links[b.param], e))
            out[b.param] = e
        for p, v in getattr(self, "fixed", {}).items():
            n_rows = self.mask.n_points if p == "D" else self.traps.n_traps
            out[p] = np.full(n_rows, float(link_to(LINKS[p], v)))
        return out

    def _chain(self, b: _Block, beta: np.ndarray) -> np.ndarray | None:
        """``d eta_default / d eta_user`` per row for a block with a non-default link."""
        links = getattr(self, "links", {})
        if b.param not in links:
            return None
        e = b.design.matrix @ beta[b.start : b.stop]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            real = link_from(links[b.param], e)
            return dlink_dreal(LINKS[b.param], real) * dreal_deta(links[b.param], e)

    def real_arrays(self, beta: np.ndarray) -> dict[str, np.ndarray]:
        """Real parameter values per row (mask point for D, trap otherwise).

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        dict
            ``{"D": (M,), "lambda0": (K,), "sigma": (K,), ...}``.
        """
        return {p: unlink(p, e) for p, e in self._etas(np.asarray(beta, float)).items()}

    def _shape(self, eta: dict[str, np.ndarray], deriv: bool) -> dict[str, Any]:
        """``log f(d)`` over mask x traps, cached while sigma and z stay put."""
        third = third_param(self.detectfn)
        key = (eta["sigma"].tobytes(), eta[third].tobytes() if third else b"")
        c = self._cache
        if c is None or c["key"] != key:
            sigma = np.exp(eta["sigma"])[None, :]
            z = np.exp(eta[third])[None, :] if third else None
            with np.errstate(over="ignore", under="ignore"):
                S = log_shape(self.detectfn, self.d2, sigma, z, d=self.dist)
            c = {"key": key, "S": S, "sigma": sigma, "z": z}
            if self._separable:
                c["E"] = np.exp(S)
                if self.kind == "poisson":
                    c["CS"] = self.C @ S.T
            self._cache = c
        if deriv and "dsigma" not in c:
            ds, dz = shape_derivs(self.detectfn, c["S"], self.d2, c["sigma"], c["z"], self.dist)
            c["dsigma"] = ds
            if dz is not None:
                c["dz"] = dz
        return c

    def _forward(self, beta: np.ndarray, deriv: bool = False) -> dict[str, Any]:
        """Everything the log-likelihood (and its gradient) needs at ``beta``."""
        eta = self._etas(beta)
        c = self._shape(eta, deriv)
        S = c["S"]
        st: dict[str, Any] = {"cache": c}
        if self._hazard:
            la0 = eta["lambda0"]
            st["dla0"] = np.ones_like(la0)
        else:
            la0 = -np.logaddexp(0.0, -eta["g0"])  # log g0 (logit link)
            st["dla0"] = 1.0 / (1.0 + np.exp(eta["g0"]))  # d log g0 / d eta = 1 - g0
        a0 = np.exp(la0)
        psi = None
        if self._separable:
            r = c["E"] * a0[None, :]
            lr = None
        else:
            logg = S + la0[None, :]
            lr = _log_hazard_from_logg(logg)
            r = np.exp(lr)
            if deriv:
                # d log h / d log g with h = -log(1 - g)
                g = np.exp(np.minimum(logg, -1e-15))
                with np.errstate(divide="ignore", invalid="ignore"):
                    psi = np.where(logg < -25.0, 1.0, g / ((1.0 - g) * r))
            if self.detectfn == "CHN":
                # secr's compound half-normal: z times the HN hazard where round(z) > 1
                zc = np.exp(eta["z"])
                st["chn_on"] = (np.round(zc) > 1).astype(float)
                lr = lr + np.where(st["chn_on"] > 0, eta["z"], 0.0)[None, :]
                r = np.exp(lr)
        st["r"] = r
        st["psi"] = psi
        if self.kind == "poisson" and self._separable:
            rU = c["E"] @ (a0 * self.U)
            logpr = c["CS"] + (self.C @ la0)[:, None] - rU[None, :]
            logq = -rU
        elif self.kind == "poisson":
            rU = r @ self.U
            logpr = self.C @ lr.T - rU[None, :]
            logq = -rU
        elif self.kind == "binomial":
            if lr is None:
                lr = S + la0[None, :]
            rU = r @ self.U
            logpr = np.broadcast_to(-self.B * rU[None, :], (self.n, len(rU))).copy()
            for w, Nw in self.groups:
                logpr += Nw @ _log_expm1(lr + math.log(w)).T
            logq = -self.B * rU
        else:
            if lr is None:
                lr = S + la0[None, :]
            H = r @ self.patterns.T  # M x P
            pos = H > 0
            Hs = np.where(pos, H, 1.0)
            with np.errstate(divide="ignore", over="ignore"):
                a = np.where(pos, np.log(-np.expm1(-Hs)) - np.log(Hs), 0.0)
            logpr = self.C @ lr.T + self.pattern_caught @ a.T - self.pattern_free @ H.T
            logq = -(H @ self.pattern_S)
            st["H"] = H
        st["logpr"] = logpr  # without the per-animal constants const_i
        st["logq"] = logq
        return st

    def components(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-animal log-probabilities of their histories and ``log Pr(not detected)``.

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        logpr:
            ``(n, M)``: ``log Pr(history_i | centre at mask point m)``.
        logq:
            ``(M,)``: ``log Pr(not detected | centre at m)``.
        """
        beta = np.asarray(beta, dtype=float)
        with np.errstate(over="ignore", under="ignore"):
            if self.chunk_points:
                lp, lq = [], []
                for _, _, v in self._chunks():
                    stc = v._forward(beta)
                    lp.append(stc["logpr"])
                    lq.append(stc["logq"])
                    del stc
                logpr, logq = np.concatenate(lp, axis=1), np.concatenate(lq)
            else:
                st = self._forward(beta)
                logpr, logq = st["logpr"], st["logq"]
        return logpr + self.const_i[:, None], logq

    def log_d(self, beta: np.ndarray) -> np.ndarray:
        """``log D`` per mask point (zeros for the conditional likelihood)."""
        if self.likelihood != "full":
            return np.zeros(self.mask.n_points)
        if "D" in getattr(self, "fixed", {}):
            return np.full(self.mask.n_points, math.log(self.fixed["D"]))
        b = next(blk for blk in self.blocks if blk.param == "D")
        e = b.design.matrix @ np.asarray(beta, float)[b.start : b.stop]
        if "D" in getattr(self, "links", {}):
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.log(link_from(self.links["D"], e))
        return e

    def pdot(self, beta: np.ndarray) -> np.ndarray:
        """Probability of detection at least once, per mask point.

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        numpy.ndarray
            ``(M,)``.
        """
        return -np.expm1(self.components(beta)[1])

    def _evaluate(self, beta: np.ndarray, grad: bool) -> tuple[float, np.ndarray | None]:
        beta = np.asarray(beta, dtype=float)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            if self.chunk_points:
                # mask points in chunks: only the (n, M) log-probabilities are kept
                st = None
                lp, lq = [], []
                for _, _, v in self._chunks():
                    stc = v._forward(beta, deriv=False)
                    lp.append(stc["logpr"])
                    lq.append(stc["logq"])
                    del stc
                logpr, logq = np.concatenate(lp, axis=1), np.concatenate(lq)
                del lp, lq
            else:
                st = self._forward(beta, deriv=grad)
                logpr, logq = st["logpr"], st["logq"]
            logd = self.log_d(beta)
            Z = logpr + logd[None, :]
            mx = Z.max(axis=1)
            mx = np.where(np.isfinite(mx), mx, 0.0)
            ez = np.exp(Z - mx[:, None])
            tot = ez.sum(axis=1)
            lse = mx + np.log(tot)
            pd = -np.expm1(logq)
            c_lam, d_n = 1.0, 0.0  # d logL / d(-Lambda) and d logL / dN beyond Poisson n
            if self.likelihood == "full":
                Dm = np.exp(logd)
                lam = self.area * float(Dm @ pd)
                ll = -lam + lse.sum() + self.n * math.log(self.area)
                if getattr(self, "distribution", "poisson") == "binomial":
                    delta, d_lam, d_n = binomial_n_adjustment(
                        self.n, self.area * float(Dm.sum()), lam
                    )
                    ll += delta
                    c_lam = 1.0 - d_lam
            else:
                P = float(pd.sum())
                ll = lse.sum() - self.n * math.log(P)
            ll += self.log_multinomial + self._const_total
            if not np.isfinite(ll):
                return -np.inf, (np.full(self.npar, np.nan) if grad else None)
            if not grad:
                return float(ll), None
            pi = ez / tot[:, None]  # posterior weights of the mask points, n x M
            pis = pi.sum(axis=0)
            q = np.exp(logq)
            if self.likelihood == "full":
                wq = c_lam * self.area * Dm * q  # d logL / d log q
                g_logd = pis - c_lam * self.area * Dm * pd + d_n * self.area * Dm
            else:
                wq = self.n * q / P
                g_logd = None
            if st is None:
                scores: dict[str, np.ndarray] = {}
                for lo, hi, v in self._chunks():
                    stc = v._forward(beta, deriv=True)
                    part = v._scores(stc, pi[:, lo:hi], pis[lo:hi], wq[lo:hi])
                    for k, val in part.items():
                        scores[k] = scores[k] + val if k in scores else val
                    del stc
            else:
                scores = self._scores(st, pi, pis, wq)
            out = np.zeros(self.npar)
            for b in self.blocks:
                v = g_logd if b.param == "D" else scores[b.param]
                ch = self._chain(b, beta)
                if ch is not None:
                    v = v * ch
                out[b.start : b.stop] = b.design.matrix.T @ v
        return float(ll), out

    def _chunks(self) -> Any:
        """``(lo, hi, view)`` per chunk of mask points; each view holds its own distances."""
        M = self.mask.n_points
        step = self.chunk_points or M
        xy_t = self.traps.xy
        for lo in range(0, M, step):
            hi = min(M, lo + step)
            v = copy.copy(self)
            v.chunk_points = None
            xy = self.mask.xy[lo:hi]
            v.d2 = (xy[:, 0:1] - xy_t[None, :, 0]) ** 2 + (xy[:, 1:2] - xy_t[None, :, 1]) ** 2
            v.dist = np.sqrt(v.d2) if self.detectfn not in ("HN", "HHN") else None
            v._cache = None
            yield lo, hi, v

    def _scores(
        self, st: dict[str, Any], pi: np.ndarray, pis: np.ndarray, wq: np.ndarray
    ) -> dict[str, np.ndarray]:
        """``d logL / d eta`` per trap of each detection parameter (before links and designs).

        ``pi`` are the animals' posterior weights of the mask points, ``pis``
        their sums and ``wq`` ``d logL / d log q`` per mask point; all are
        additive over mask points, so chunks of the mask add up.
        """
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            r = st["r"]
            c = st["cache"]
            if self.kind == "poisson" and st["psi"] is None:
                # sum_m G[m, k] * w[m, k] without forming G = pi'C - r U (pis + wq)
                cm = pis + wq

                def colsum(w: np.ndarray | None) -> np.ndarray:
                    if w is None:
                        # sum_m pi = 1 over the whole mask; over a chunk, its share
                        return pi.sum(axis=1) @ self.C - self.U * (cm @ r)
                    return (self.C * (pi @ w)).sum(axis=0) - self.U * (cm @ (r * w))

            else:
                if self.kind == "poisson":
                    G = pi.T @ self.C - r * self.U[None, :] * (pis + wq)[:, None]
                elif self.kind == "binomial":
                    G = -self.B * r * self.U[None, :] * (pis + wq)[:, None]
                    for w, Nw in self.groups:
                        x = w * r
                        phi = np.where(x < 1e-12, 1.0, x / -np.expm1(-x))
                        G += (pi.T @ Nw) * phi
                else:
                    H = st["H"]
                    pos = H > 0
                    Hs = np.where(pos, H, 1.0)
                    kappa = np.where(Hs < 1e-6, -0.5 + Hs / 12.0, 1.0 / np.expm1(Hs) - 1.0 / Hs)
                    kappa = np.where(pos, kappa, -0.5)
                    inner = (
                        kappa * (pi.T @ self.pattern_caught)
                        - pi.T @ self.pattern_free
                        - wq[:, None] * self.pattern_S[None, :]
                    )
                    G = pi.T @ self.C + r * (inner @ self.patterns)
                G0 = G
                if st["psi"] is not None:
                    G = G * st["psi"]

                def colsum(w: np.ndarray | None) -> np.ndarray:
                    return G.sum(axis=0) if w is None else (G * w).sum(axis=0)

                if self.detectfn == "CHN":
                    # log h = log z + log h_HN: d log h / d log z = 1 where compounding
                    chn_z = G0.sum(axis=0) * st["chn_on"]
            first = "lambda0" if self._hazard else "g0"
            out = {first: colsum(None) * st["dla0"], "sigma": colsum(c["dsigma"])}
            third = third_param(self.detectfn)
            if third:
                out[third] = chn_z if self.detectfn == "CHN" else colsum(c["dz"])
            return out

    def __call__(self, beta: np.ndarray) -> float:
        """Log-likelihood at ``beta``.

        Parameters
        ----------
        beta:
            Coefficients on the link scale, in the order of :attr:`names`.

        Returns
        -------
        float
        """
        return self._evaluate(beta, grad=False)[0]

    def loglik(self, beta: np.ndarray) -> float:
        """Log-likelihood at ``beta`` (same as calling the object).

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        float
        """
        return self._evaluate(beta, grad=False)[0]

    def loglik_and_gradient(self, beta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-likelihood and its analytic gradient with respect to ``beta``.

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        loglik:
            float
        gradient:
            ``(npar,)`` array.
        """
        ll, g = self._evaluate(beta, grad=True)
        assert g is not None
        return ll, g

    # -- boundary ------------------------------------------------------------

    def level_detections(self) -> dict[int, tuple[str, str, str, int, int]]:
        """Detections at the traps of each factor level of a detection parameter.

        Returns
        -------
        dict
            ``{coefficient index: (param, term, level, traps with the level,
            detections at them)}`` for the treatment-contrast columns of
            factor terms of ``lambda0``, ``g0`` and ``sigma``. A level whose
            traps saw nothing drives its coefficient to minus infinity: lower
            detection there only raises the likelihood.
        """
        out: dict[int, tuple[str, str, str, int, int]] = {}
        per_trap = self.capthist.counts.sum(axis=(0, 1))  # K
        for b in self.blocks:
            if b.param not in ("lambda0", "g0", "sigma"):
                continue
            for j, name in enumerate(b.design.names[1:], start=1):
                col = b.design.matrix[:, j]
                for t, lv in b.levels.items():
                    for lev in lv[1:]:
                        if name == f"{b.param}.{t}{lev}":
                            rows = col != 0
                            out[b.start + j] = (
                                b.param,
                                t,
                                lev,
                                int(rows.sum()),
                                int(per_trap[rows].sum()),
                            )
        return out

    def boundary_candidates(self) -> dict[int, str]:
        """Coefficients whose maximum likelihood lies at minus infinity, with the reason.

        Returns
        -------
        dict
            ``{coefficient index: reason}``, e.g. ``"no detections at the only
            trap with Topo = Steppe"``.
        """
        return _boundary_reasons([self.level_detections()])

    # -- starting values ----------------------------------------------------

    def start_values(self) -> np.ndarray:
        """Starting coefficients in the spirit of ``secr``'s ``autoini``.

        ``sigma`` starts from the root pooled spatial variance of the
        detections (the trap spacing without spatial recaptures); a grid over
        ``sigma`` and ``g0`` or ``lambda0`` on the conditional likelihood of the
        constant model picks a start, which is then refined by quasi-Newton
        steps on that likelihood; ``D`` starts at ``n / a(theta)``. Other
        coefficients start at 0.

        Returns
        -------
        numpy.ndarray
        """
        sp = self.traps.spacing()
        sig = rpsv(self.capthist)
        if not (np.isfinite(sig) and sig > 0):
            sig = sp if np.isfinite(sp) else 0.1 * math.sqrt(self.mask.area * 1e4)
        if np.isfinite(sp):
            sig = max(sig, 0.5 * sp)
        base = SecrLikelihood(
            self.capthist, self._bare_mask(), None, self.detectfn, likelihood="conditional"
        )
        first = "g0" if "g0" in base.params else "lambda0"
        grid0 = np.linspace(-6.0, 2.0, 9) if first == "lambda0" else np.linspace(-5.0, 3.0, 9)
        third = third_param(self.detectfn)
        theta = np.array(
            [0.0, math.log(sig)] + ([_third_start(self.detectfn, sig)] if third else [])
        )
        best: tuple[float, np.ndarray] | None = None
        for ls in math.log(sig) + np.log([0.5, 0.7, 1.0, 1.4, 2.0]):
            for g in grid0:
                theta[0], theta[1] = g, ls
                if third in ("w",) or self.detectfn == "CLN":
                    theta[2] = _third_start(self.detectfn, math.exp(ls))
                v = base(theta)
                if np.isfinite(v) and (best is None or v > best[0]):
                    best = (v, theta.copy())
        if best is not None:
            theta = best[1]

        def fg(t: np.ndarray) -> tuple[float, np.ndarray]:
            ll, g = base.loglik_and_gradient(t)
            if not np.isfinite(ll):
                return 1e12, np.zeros_like(t)
            return -ll, -g

        res = optimize.minimize(
            fg, theta, jac=True, method="BFGS", options={"gtol": 1e-3, "maxiter": 100}
        )
        if np.all(np.isfinite(res.x)) and np.isfinite(base(res.x)):
            theta = res.x
        start = np.zeros(self.npar)
        vals = dict(zip(base.params, theta, strict=True))
        if self.likelihood == "full":
            pd = base.pdot(theta)
            vals["D"] = math.log(self.n / (self.area * pd.sum()))
        links = getattr(self, "links", {})
        for b in self.blocks:
            v = vals[b.param]
            if b.param in links:
                v = float(link_to(links[b.param], link_from(LINKS[b.param], v)))
            X = b.design.matrix
            if b.design.intercept:
                start[b.start] = v
            else:  # no intercept: the coefficients that make the predictor constant
                sol = np.linalg.lstsq(X, np.full(len(X), v), rcond=None)[0]
                start[b.start : b.stop] = sol
        return start

    def _bare_mask(self) -> Mask:
        """The mask without covariates; thinned to a 2x coarser grid when large."""
        xy, spacing = self.mask.xy, self.mask.spacing
        if len(xy) > 3000:
            ij = np.rint((xy - xy.min(axis=0)) / spacing).astype(np.int64)
            keep = (ij[:, 0] % 2 == 0) & (ij[:, 1] % 2 == 0)
            if keep.sum() >= 500:
                return Mask(xy=xy[keep], spacing=2 * spacing)
        return Mask(xy=xy, spacing=spacing)


# ---------------------------------------------------------------------------
# results


class _Coefficients:
    """What every fit has: coefficients, their covariance, AIC, boundary flags."""

    beta: np.ndarray
    names: list[str]
    vcov: np.ndarray
    loglik: float
    n: int
    boundary: dict[str, str]

    # -- coefficients ----------------------------------------------------------

    @property
    def npar(self) -> int:
        """Number of estimated coefficients."""
        return len(self.beta)

    @property
    def aic(self) -> float:
        """Akaike's information criterion ``-2 logL + 2 K``."""
        return -2 * self.loglik + 2 * self.npar

    @property
    def aicc(self) -> float:
        """AIC with the small-sample correction, sample size = animals detected."""
        k, n = self.npar, self.n
        if n - k - 1 <= 0:
            return float("inf")
        return self.aic + 2 * k * (k + 1) / (n - k - 1)

    @property
    def beta_se(self) -> np.ndarray:
        """Standard errors of the coefficients."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self.vcov))

    @property
    def model(self) -> str:
        """The model in ``secr``'s formula notation."""
        parts = [f"{p}~{rhs_text(self.formulas[p])}" for p in self.lik.params]
        for p, v in getattr(self.lik, "fixed", {}).items():
            parts.append(f"{p}={v:g}")
        return " ".join(parts)

    def beta_table(self, level: float = 0.95) -> dict[str, dict[str, float]]:
        """Coefficients with SE and Wald CIs on the link scale.

        Parameters
        ----------
        level:
            Confidence level.

        Returns
        -------
        dict
            ``{name: {"beta", "se", "lcl", "ucl"}}``.
        """
        zq = norm.ppf(0.5 + level / 2)
        se = self.beta_se
        return {
            n: {
                "beta": float(b),
                "se": float(s),
                "lcl": float(b - zq * s),
                "ucl": float(b + zq * s),
            }
            for n, b, s in zip(self.names, self.beta, se, strict=True)
        }

    def _delta(self, fun: Callable[[np.ndarray], float]) -> tuple[float, float]:
        """Value and delta-method SE of a scalar function of ``beta``."""
        est = fun(self.beta)
        g = np.empty(self.npar)
        for j in range(self.npar):
            h = 1e-5 * max(1.0, abs(self.beta[j]))
            e = np.zeros(self.npar)
            e[j] = h
            g[j] = (fun(self.beta + e) - fun(self.beta - e)) / (2 * h)
        var = float(g @ self._vcov_free() @ g)
        return float(est), math.sqrt(max(var, 0.0))

    def beta_dict(self) -> dict[str, float]:
        """Coefficients by name."""
        return dict(zip(self.names, map(float, self.beta), strict=True))

    def se_dict(self) -> dict[str, float]:
        """Standard errors of the coefficients by name."""
        return dict(zip(self.names, map(float, self.beta_se), strict=True))

    def _vcov_free(self) -> np.ndarray:
        """``vcov`` with the rows of coefficients at a boundary set to 0.

        A boundary coefficient is held where it is: it adds no variance to
        the real parameters of other levels, nor (its effect being nil) to
        derived quantities.
        """
        v = self.vcov
        if not self.boundary:
            return v
        v = v.copy()
        for n in self.boundary:
            j = self.names.index(n)
            v[j, :] = 0.0
            v[:, j] = 0.0
        return v

    def _real_from(
        self, blocks: Sequence[_Block], newdata: Mapping[str, Any] | None, level: float
    ) -> dict[str, dict[str, float]]:
        """Real parameters of ``blocks`` at ``newdata`` (see :meth:`SecrFit.real`)."""
        zq = norm.ppf(0.5 + level / 2)
        nd = dict(newdata or {})
        out: dict[str, dict[str, float]] = {}
        for b in blocks:
            if b.param == "pmix":
                out["pmix"] = self._pmix_real(b, nd, level)
                continue
            x = model_row(b.param, b.terms, nd, b.levels, b.design)
            sl = slice(b.start, b.stop)
            eta = float(x @ self.beta[sl])
            se_eta = float(np.sqrt(max(x @ self._vcov_free()[sl, sl] @ x, 0.0)))
            lk = getattr(self.lik, "links", {}).get(b.param, LINKS[b.param])
            est = float(link_from(lk, eta))
            se = abs(float(dreal_deta(lk, eta))) * se_eta
            out[b.param] = {
                "estimate": est,
                "se": se,
                "lcl": float(link_from(lk, eta - zq * se_eta)),
                "ucl": float(link_from(lk, eta + zq * se_eta)),
                "link": lk,
            }
        for p, v in getattr(self.lik, "fixed", {}).items():
            out[p] = {"estimate": v, "se": 0.0, "lcl": v, "ucl": v, "link": "fixed"}
        return out

    def _pmix_real(self, b: _Block, nd: Mapping[str, Any], level: float) -> dict[str, Any]:
        """Mixing proportion of one latent class (``newdata``'s ``h2``/``h3``, else class 1)."""
        from irbis.stats.secr_varying import mlogit_unlink

        t = b.terms[0]
        lv = b.levels[t]
        val = str(nd.get(t, lv[0]))
        if val not in lv:
            raise BadInputError("newdata", f"{t}={val!r} is not a class", f"use {lv}")
        c = lv.index(val)

        def fun(beta: np.ndarray) -> float:
            return float(mlogit_unlink(beta[b.start : b.stop])[c])

        est, se = self._delta(fun)
        # Wald interval on the logit scale of this class's proportion
        zq = norm.ppf(0.5 + level / 2)
        lcl = ucl = float("nan")
        if 0 < est < 1:
            se_eta = se / (est * (1 - est))
            eta = math.log(est / (1 - est))
            lcl = float(1 / (1 + math.exp(-(eta - zq * se_eta))))
            ucl = float(1 / (1 + math.exp(-(eta + zq * se_eta))))
        return {"estimate": est, "se": se, "lcl": lcl, "ucl": ucl, "link": "mlogit"}

    def boundary_flags(self) -> list[str]:
        """One line per coefficient at a boundary (its SE is not meaningful).

        Returns
        -------
        list of str
            E.g. ``"at boundary: lambda0.TopoSteppe = -20.0 (no detections at
            the only trap with Topo = Steppe); SE not meaningful"``.
        """
        bd = self.beta_dict()
        return [_boundary_flag(n, bd[n], r) for n, r in self.boundary.items()]


@dataclass
class SecrFit(_Coefficients):
    """A fitted SECR model.

    Attributes
    ----------
    beta:
        Maximum-likelihood coefficients (link scale), in :attr:`names` order.
    names:
        Coefficient names, as R ``secr`` names them.
    vcov:
        Variance-covariance matrix of ``beta`` (inverse of the observed
        information, from a numerical Hessian at the MLE).
    loglik:
        Maximised log-likelihood.
    n:
        Number of detected animals.
    boundary:
        Coefficients at a boundary (e.g. a factor level whose only trap saw
        nothing: its coefficient runs to minus infinity, as in R ``secr``)
        with the reason; their SEs are NaN, not meaningful.
    """

    beta: np.ndarray
    names: list[str]
    vcov: np.ndarray
    loglik: float
    n: int
    detectfn: str
    detector: str
    likelihood: str
    formulas: dict[str, list[str]]
    converged: bool
    message: str
    n_evals: int
    seconds: float
    lik: SecrLikelihood = field(repr=False)
    boundary: dict[str, str] = field(default_factory=dict)

    # -- real parameters -------------------------------------------------------

    def real(
        self, newdata: Mapping[str, Any] | None = None, level: float = 0.95
    ) -> dict[str, dict[str, float]]:
        """Real-parameter estimates with SEs and CIs (back-transformed Wald).

        Parameters
        ----------
        newdata:
            Covariate values; covariates left out are 0 (numeric) or the
            reference level (factors), as ``secr``'s ``predict`` does.
        level:
            Confidence level.

        Returns
        -------
        dict
            ``{param: {"estimate", "se", "lcl", "ucl", "link"}}``; ``D`` is in
            animals per hectare.
        """
        return self._real_from(self.lik.blocks, newdata, level)

    def _point_weights(self, polygon: Any) -> np.ndarray:
        if polygon is None:
            return np.ones(self.lik.mask.n_points)
        import shapely

        xy = self.lik.mask.xy
        return shapely.contains_xy(polygon, xy[:, 0], xy[:, 1]).astype(float)

    def expected_n(self, polygon: Any = None, level: float = 0.95) -> dict[str, float]:
        """Expected number of activity centres in the mask (or a polygon of it).

        Parameters
        ----------
        polygon:
            Optional shapely polygon; only mask points inside it count.
        level:
            Confidence level (log-normal interval).

        Returns
        -------
        dict
            ``{"estimate", "se", "lcl", "ucl", "area_km2"}``.
        """
        w = self._point_weights(polygon)
        a = self.lik.area
        if self.likelihood == "full":

            def fun(b: np.ndarray) -> float:
                return a * float(w @ np.exp(self.lik.log_d(b)))

            est, se = self._delta(fun)
        else:
            dens = self.density(level=level)
            per_ha = dens["per_ha"]
            est = per_ha["estimate"] * a * w.sum()
            se = per_ha["se"] * a * w.sum()
        lcl, ucl = _lognormal_ci(est, se, level)
        return {
            "estimate": est,
            "se": se,
            "lcl": lcl,
            "ucl": ucl,
            "area_km2": float(a * w.sum() / 100.0),
        }

    def density(self, level: float = 0.95) -> dict[str, dict[str, float]]:
        """Density averaged over the mask, per hectare and per 100 km^2.

        For the full likelihood with ``D~1`` this is the real ``D``; with a
        density surface it is the mean over mask points; for the conditional
        likelihood it is the derived ``n / a(theta)`` whose variance adds the
        Poisson variance of ``n`` to the delta-method term (as ``secr``'s
        ``derived``).

        Parameters
        ----------
        level:
            Confidence level (log-normal interval).

        Returns
        -------
        dict
            ``{"per_ha": {...}, "per_100km2": {...}}``, each with
            ``estimate``, ``se``, ``lcl``, ``ucl``.
        """
        lik = self.lik
        if lik.likelihood == "full":
            if not self.formulas["D"]:
                r = self.real(level=level)["D"]
                per_ha = {k: r[k] for k in ("estimate", "se", "lcl", "ucl")}
            else:

                def fun(b: np.ndarray) -> float:
                    return float(np.exp(lik.log_d(b)).mean())

                est, se = self._delta(fun)
                lcl, ucl = _lognormal_ci(est, se, level)
                per_ha = {"estimate": est, "se": se, "lcl": lcl, "ucl": ucl}
        else:

            def esa(b: np.ndarray) -> float:
                return lik.area * float(lik.pdot(b).sum())

            a_hat, _ = self._delta(esa)
            est = self.n / a_hat

            def fun(b: np.ndarray) -> float:
                return self.n / esa(b)

            _, se_model = self._delta(fun)
            se = math.sqrt(self.n / a_hat**2 + se_model**2)
            lcl, ucl = _lognormal_ci(est, se, level)
            per_ha = {"estimate": est, "se": se, "lcl": lcl, "ucl": ucl}
        per100 = {k: v * HA_PER_100KM2 for k, v in per_ha.items()}
        return {"per_ha": per_ha, "per_100km2": per100}

    def derived(self, level: float = 0.95) -> dict[str, Any]:
        """Derived estimates: density per hectare and per 100 km^2, expected N in the mask.

        Parameters
        ----------
        level:
            Confidence level (log-normal intervals).

        Returns
        -------
        dict
            ``{"D_per_ha": {...}, "D_per_100km2": {...}, "N": {...}, "esa": {...},
            "esa_km2": float}``; each inner dict has ``estimate``, ``se``, ``lcl``,
            ``ucl``. ``esa`` is the effective sampling area in km^2 with its
            delta-method SE (secr's ``derived``: for a conditional fit the SE of
            ``D = n / esa`` adds the Poisson variance of ``n`` to it).
        """
        dens = self.density(level=level)

        def esa_km2(b: np.ndarray) -> float:
            return self.lik.area * float(self.lik.pdot(b).sum()) / 100.0

        a, se_a = self._delta(esa_km2)
        lo, hi = _lognormal_ci(a, se_a, level)
        return {
            "D_per_ha": dens["per_ha"],
            "D_per_100km2": dens["per_100km2"],
            "N": self.expected_n(level=level),
            "esa": {"estimate": a, "se": se_a, "lcl": lo, "ucl": hi},
            "esa_km2": a,
        }

    def region_n(
        self, region: Any = None, spacing: float | None = None, level: float = 0.95
    ) -> dict[str, Any]:
        """Expected and realised N in a region, as secr's ``region.N``.

        Parameters
        ----------
        region:
            Shapely polygon, mask, or ``None`` for the fit's mask.
        spacing:
            Point spacing for a polygon (default: the mask's).
        level:
            Confidence level.

        Returns
        -------
        dict
            See :func:`irbis.stats.secr_region.region_n`.
        """
        from irbis.stats.secr_region import region_n

        return region_n(self, region, spacing=spacing, level=level)

    def esa(self) -> float:
        """Effective sampling area ``a(theta) = sum_m pdot(m) * cell area``, hectares."""
        return self.lik.area * float(self.lik.pdot(self.beta).sum())

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-able summary: fit statistics, coefficients, real and derived values.

        Parameters
        ----------
        level:
            Confidence level of the intervals.

        Returns
        -------
        dict
        """
        derived = self.derived(level=level)
        return {
            "model": self.model,
            "detectfn": self.detectfn,
            "detector": self.detector,
            "likelihood": self.likelihood,
            "distribution": getattr(self.lik, "distribution", "poisson"),
            "n": self.n,
            "occasions": self.lik.capthist.n_occasions,
            "traps": self.lik.traps.n_traps,
            "mask_points": self.lik.mask.n_points,
            "logLik": self.loglik,
            "npar": self.npar,
            "AIC": self.aic,
            "AICc": self.aicc,
            "converged": self.converged,
            "beta": self.beta_dict(),
            "beta_se": self.se_dict(),
            "real": self.real(level=level),
            "derived": derived,
            "density_per_100km2": derived["D_per_100km2"]["estimate"],
            "message": self.message,
            "at_boundary": self.boundary_flags(),
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        lines = [
            f"SECR {self.likelihood} likelihood, {self.detector} detectors, {self.detectfn}",
            f"model {self.model}",
            f"n = {self.n}, logLik = {self.loglik:.4f}, npar = {self.npar}, "
            f"AIC = {self.aic:.3f}, AICc = {self.aicc:.3f}",
        ]
        for n, r in self.beta_table().items():
            lines.append(f"  {n:<24} {r['beta']: .6f}  SE {r['se']:.6f}")
        d = self.density()["per_100km2"]
        lines.append(f"density {d['estimate']:.3f} per 100 km2 ({d['lcl']:.3f} - {d['ucl']:.3f})")
        lines.extend(self.boundary_flags())
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# fitting


def _neg_hessian(lik: SecrLikelihood, beta: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Observed information: central differences of the analytic gradient."""
    p = len(beta)
    H = np.empty((p, p))
    for j in range(p):
        e = np.zeros(p)
        e[j] = h
        _, gp = lik.loglik_and_gradient(beta + e)
        _, gm = lik.loglik_and_gradient(beta - e)
        H[:, j] = -(gp - gm) / (2 * h)
    return 0.5 * (H + H.T)


def fit(
    capthist: CaptureHistory,
    mask: Mask,
    model: str | Mapping[str, str] | None = None,
    detectfn: str = "HHN",
    likelihood: str = "full",
    *,
    start: Sequence[float] | Mapping[str, float] | None = None,
    max_iter: int = 500,
    hessian: bool = True,
    hcov: Sequence[Any] | None = None,
    fixed: Mapping[str, float] | None = None,
    link: Mapping[str, str] | None = None,
    distribution: str = "poisson",
) -> SecrFit:
    """Fit an SECR model by maximum likelihood (the analogue of ``secr.fit``).

    The log-likelihood is maximised by BFGS with its analytic gradient, then
    polished by Newton steps; the variance-covariance matrix is the inverse
    of the observed information (central differences of the gradient).

    Parameters
    ----------
    capthist:
        Capture histories with their traps, detector type and usage.
    mask:
        Habitat mask.
    model:
        Formulas such as ``"D~stdGC lambda0~Topo sigma~stdRgd"``; parameters
        left out are constant.
    detectfn:
        Detection function code (see :mod:`irbis.stats.detectfn`).
    likelihood:
        ``"full"`` or ``"conditional"``.
    start:
        Starting coefficients (array in coefficient order, or a mapping by
        name); default: automatic (see :meth:`SecrLikelihood.start_values`).
    max_iter:
        Maximum quasi-Newton iterations.
    hessian:
        Compute the variance-covariance matrix (else ``vcov`` is NaN).
    hcov:
        Known latent class of each animal (e.g. sex; None where unknown)
        for a mixture model, as secr's ``hcov`` (see
        :class:`~irbis.stats.secr_varying.VaryingLikelihood`).
    fixed:
        Real parameters held at a value instead of estimated, as secr's
        ``fixed = list(sigma = 3000)``: ``{"sigma": 3000.0}`` (the parameter's
        formula must be ``~1``; the fit reports it with SE 0).
    link:
        Links other than secr's defaults, as secr's ``link`` argument:
        ``{"D": "identity"}``; ``g0`` may take ``logit`` (default),
        ``cloglog``, ``log`` or ``identity``; ``D``, ``lambda0``, ``sigma``,
        ``z`` and ``w`` ``log`` (default) or ``identity``.
    distribution:
        Number of animals in the mask: ``"poisson"`` (secr's default) or
        ``"binomial"`` (secr's ``details = list(distribution = "binomial")``:
        N fixed, n binomial given N; full likelihood only).

    Returns
    -------
    SecrFit

    Notes
    -----
    Detection submodels may use secr's occasion, behavioural-response and
    mixture terms ``t T b B bk Bk k K h2 h3`` (with ``pmix~h2``); see
    :mod:`irbis.stats.secr_varying`.
    """
    t0 = time.perf_counter()
    with blas_threads(1):
        return _fit(
            capthist, mask, model, detectfn, likelihood, start, max_iter, hessian, t0, hcov,
            fixed, link, distribution,
        )  # fmt: skip


def _make_likelihood(
    capthist: CaptureHistory,
    mask: Mask,
    model: str | Mapping[str, str] | None,
    detectfn: str,
    likelihood: str,
    hcov: Sequence[Any] | None = None,
    fixed: Mapping[str, float] | None = None,
    link: Mapping[str, str] | None = None,
    distribution: str = "poisson",
) -> SecrLikelihood:
    """The constant-detection likelihood, or the varying one when the model needs it."""
    from irbis.stats.secr_varying import make_likelihood

    kw: dict[str, Any] = {"hcov": hcov} if hcov is not None else {}
    if distribution != "poisson":
        kw["distribution"] = distribution
    if fixed:
        kw["fixed"] = fixed
    if link:
        kw["link"] = link
    return make_likelihood(capthist, mask, model, detectfn, likelihood, **kw)


@dataclass
class _Optimum:
    beta: np.ndarray
    vcov: np.ndarray
    loglik: float
    converged: bool
    message: str
    n_evals: int
    boundary: dict[str, str]


#: where a coefficient whose MLE is at minus infinity starts (and stays):
#: its traps' detection is then exp(-20) ~ 2e-9 times the others'
BOUNDARY_START = -20.0


def _start_vector(lik: Any, start: Sequence[float] | Mapping[str, float] | None) -> np.ndarray:
    if start is None:
        x0 = lik.start_values()
        for j in lik.boundary_candidates():
            x0[j] = BOUNDARY_START
    elif isinstance(start, Mapping):
        x0 = lik.start_values()
        for k, v in start.items():
            if k not in lik.names:
                raise BadInputError("start", f"no coefficient {k!r}", f"use {lik.names}")
            x0[lik.names.index(k)] = float(v)
    else:
        x0 = np.asarray(start, dtype=float)
        if x0.shape != (lik.npar,):
            raise BadInputError("start", f"needs {lik.npar} values ({', '.join(lik.names)})")
    return x0


def _optimise(
    lik: Any,
    start: Sequence[float] | Mapping[str, float] | None,
    max_iter: int,
    hessian: bool,
) -> _Optimum:
    """Maximise ``lik`` (BFGS, then Newton polish); information, boundary flags."""
    x0 = _start_vector(lik, start)
    n_evals = 0

    def fg(b: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal n_evals
        n_evals += 1
        ll, g = lik.loglik_and_gradient(b)
        if not np.isfinite(ll) or not np.all(np.isfinite(g)):
            return 1e12, np.zeros_like(b)
        return -ll, -g

    # coefficients on an identity link are searched in units of their own size
    scale = np.ones(len(x0))
    for b in lik.blocks:
        if getattr(lik, "links", {}).get(b.param) == "identity":
            size = float(np.abs(x0[b.start : b.stop]).max())
            scale[b.start : b.stop] = size if size > 0 else 1.0

    def fg_scaled(u: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fg(u * scale)
        return f, g * scale

    res = optimize.minimize(
        fg_scaled, x0 / scale, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": max_iter}
    )
    beta = np.asarray(res.x, dtype=float) * scale
    f_best, g_best = fg(beta)
    message = str(res.message)
    npar = lik.npar
    reasons = lik.boundary_candidates()
    free = np.ones(npar, dtype=bool)
    free[list(reasons)] = False
    vcov = np.full((npar, npar), np.nan)
    H = None
    if hessian:
        H = _neg_hessian(lik, beta)
        # Newton steps from the quasi-Newton solution, kept while they help
        # (coefficients at a boundary stay where they are)
        for _ in range(3):
            try:
                step = np.zeros(npar)
                step[free] = np.linalg.solve(H[np.ix_(free, free)], -g_best[free])
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)) or np.abs(step).max() > 0.5:
                break
            f_new, g_new = fg(beta + step)
            if f_new > f_best + 1e-9:
                break
            beta, f_best, g_best = beta + step, f_new, g_new
            if np.abs(step).max() < 1e-4:
                break  # the information barely changes over so small a step
            H = _neg_hessian(lik, beta)
    gmax = float(np.abs(g_best[free]).max()) if free.any() else 0.0
    converged = bool(np.isfinite(f_best) and f_best < 1e11 and gmax < 1e-3)
    if converged and not res.success:
        message = f"converged (max |gradient| {gmax:.1e})"
    elif not converged:
        message = f"{message}; max |gradient| {gmax:.1e}"
    boundary = {lik.names[j]: r for j, r in reasons.items()}
    if H is not None:
        vcov, flat = _invert_information(H, free)
        for j in flat:
            boundary.setdefault(
                lik.names[j],
                "the likelihood is flat along this coefficient (at a boundary or not estimable)",
            )
        if flat:
            warnings.warn(
                "the information matrix is singular: "
                + ", ".join(lik.names[j] for j in flat)
                + " not estimable, their SEs are NaN",
                RuntimeWarning,
                stacklevel=4,
            )
    if reasons:
        warnings.warn(
            "; ".join(_boundary_flag(n, float(beta[lik.names.index(n)]), r)
                      for n, r in boundary.items() if lik.names.index(n) in reasons),
            RuntimeWarning,
            stacklevel=4,
        )  # fmt: skip
    return _Optimum(beta, vcov, -f_best, converged, message, n_evals, boundary)


def _boundary_flag(name: str, beta: float, reason: str) -> str:
    """The one-line flag of a coefficient at its boundary."""
    return f"at boundary: {name} = {beta:.1f} ({reason}); SE not meaningful"


def _invert_information(H: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Variance-covariance of the free coefficients; those along null directions flagged.

    Returns the ``vcov`` (NaN rows/columns for coefficients not free or
    flagged) and the indices of the flagged ones.
    """
    p = len(H)
    vcov = np.full((p, p), np.nan)
    idx = np.flatnonzero(free)
    flat: list[int] = []
    if not idx.size:
        return vcov, flat
    Hf = H[np.ix_(idx, idx)]
    try:
        w, V = np.linalg.eigh(Hf)
    except np.linalg.LinAlgError:
        return vcov, flat
    null = w <= 1e-10 * max(float(w.max()), 1.0)
    if null.any():
        comp = np.abs(V[:, null]).max(axis=1)
        flat = [int(idx[i]) for i in np.flatnonzero(comp > 0.3)] or [int(idx[int(np.argmax(comp))])]
        keep = np.array([i not in flat for i in idx])
        idx = idx[keep]
        Hf = H[np.ix_(idx, idx)]
        if not idx.size:
            return vcov, flat
        w2 = np.linalg.eigvalsh(Hf)
        if w2.min() <= 1e-10 * max(float(w2.max()), 1.0):
            sub = np.linalg.pinv(Hf)
            sub[np.diag(sub) <= 0, :] = np.nan
            sub[:, np.diag(sub) <= 0] = np.nan
            vcov[np.ix_(idx, idx)] = sub
            return vcov, flat
    with contextlib.suppress(np.linalg.LinAlgError):
        vcov[np.ix_(idx, idx)] = np.linalg.inv(Hf)
    return vcov, flat


def _fit(
    capthist: CaptureHistory,
    mask: Mask,
    model: str | Mapping[str, str] | None,
    detectfn: str,
    likelihood: str,
    start: Sequence[float] | Mapping[str, float] | None,
    max_iter: int,
    hessian: bool,
    t0: float,
    hcov: Sequence[Any] | None = None,
    fixed: Mapping[str, float] | None = None,
    link: Mapping[str, str] | None = None,
    distribution: str = "poisson",
) -> SecrFit:
    lik = _make_likelihood(
        capthist, mask, model, detectfn, likelihood, hcov=hcov, fixed=fixed, link=link,
        distribution=distribution,
    )  # fmt: skip
    opt = _optimise(lik, start, max_iter, hessian)
    return SecrFit(
        beta=opt.beta,
        names=list(lik.names),
        vcov=opt.vcov,
        loglik=opt.loglik,
        n=lik.n,
        detectfn=lik.detectfn,
        detector=capthist.detector
        + (f" (binomial {capthist.binom_size})" if capthist.binom_size else ""),
        likelihood=lik.likelihood,
        formulas=lik.formulas,
        converged=opt.converged,
        message=opt.message,
        n_evals=opt.n_evals,
        seconds=time.perf_counter() - t0,
        lik=lik,
        boundary=opt.boundary,
    )


secr_fit = fit
"""Alias of :func:`fit`."""


class SecrModel:
    """An SECR model specification, fitted with :meth:`fit` (scikit-learn style).

    Parameters
    ----------
    model:
        Formulas, e.g. ``"D~1 lambda0~Topo sigma~1"``.
    detectfn:
        Detection function code.
    likelihood:
        ``"full"`` or ``"conditional"``.
    """

    def __init__(
        self,
        model: str | Mapping[str, str] | None = None,
        detectfn: str = "HHN",
        likelihood: str = "full",
    ) -> None:
        self.model = model
        self.detectfn = detectfn
        self.likelihood = likelihood
        self.fit_: SecrFit | None = None

    def fit(self, capthist: CaptureHistory, mask: Mask, **kwargs: Any) -> SecrFit:
        """Fit to capture histories over a mask.

        Parameters
        ----------
        capthist:
            Capture histories.
        mask:
            Habitat mask.
        **kwargs:
            Passed to :func:`fit`.

        Returns
        -------
        SecrFit
        """
        self.fit_ = fit(capthist, mask, self.model, self.detectfn, self.likelihood, **kwargs)
        return self.fit_


def model_table(fits: Sequence[SecrFit] | Mapping[str, SecrFit]) -> list[dict[str, Any]]:
    """AIC/AICc table of models fitted to the same data, best first.

    Parameters
    ----------
    fits:
        Fitted models (a mapping gives them names).

    Returns
    -------
    list of dict
        ``name, model, detectfn, npar, logLik, AIC, AICc, dAICc, AICcwt,
        flags`` (``flags``: one line per coefficient at a boundary; such fits
        are ranked like any other, as R ``secr`` ranks them).
    """
    items = list(fits.items()) if isinstance(fits, Mapping) else [(f.model, f) for f in fits]
    if not items:
        return []
    likes = {f.likelihood for _, f in items}
    ns = {f.n for _, f in items}
    if len(likes) > 1 or len(ns) > 1:
        raise BadInputError(
            "model_table", "models differ in likelihood or data", "compare like with like"
        )
    best = min(f.aicc for _, f in items)
    rows = []
    for name, f in items:
        rows.append(
            {
                "name": name,
                "model": f.model,
                "detectfn": f.detectfn,
                "npar": f.npar,
                "logLik": f.loglik,
                "AIC": f.aic,
                "AICc": f.aicc,
                "dAICc": f.aicc - best,
                "flags": f.boundary_flags(),
            }
        )
    w = np.exp(-0.5 * np.array([r["dAICc"] for r in rows]))
    w = w / w.sum()
    for r, wi in zip(rows, w, strict=True):
        r["AICcwt"] = float(wi)
    rows.sort(key=lambda r: r["AICc"])
    return rows


aic_table = model_table
"""Alias of :func:`model_table`."""


# ---------------------------------------------------------------------------
# mask buffer: how far the integration must reach for an unbiased density

#: secr's ``suggest.buffer`` default: a buffer whose truncation biases D-hat by 0.1 %.
RB_TARGET = 0.001


def buffer_bias(
    fit: SecrFit, buffers: Sequence[float] | np.ndarray, *, reach_sigmas: float = 15.0
) -> np.ndarray | None:
    """Relative bias of the density estimate from a mask cut at each buffer width.

    The idea of secr's ``bias.D``: with the fitted detection model, the
    effective sampling area over a buffer ``w`` is ``a(w) = ∫ p.(x) dx`` over
    points within ``w`` of a trap, and a density estimated on a mask cut at
    ``w`` is too high by about ``a(∞) / a(w) - 1``. Here ``p.(x)`` is the
    fitted probability of detecting an animal centred at ``x`` at least once
    (with the traps' usage), summed on a grid reaching ``reach_sigmas``
    sigma beyond every trap instead of secr's fitted curve.

    Parameters
    ----------
    fit:
        A fitted model; its detection submodels may use trap covariates.
    buffers:
        Buffer widths to check, metres.
    reach_sigmas:
        How far ``a(∞)`` is summed, in sigma.

    Returns
    -------
    numpy.ndarray or None
        ``RB(w)`` per buffer; None when the model has a density submodel
        (its mask covariates do not reach beyond the mask) or no finite sigma.
    """
    if fit.formulas.get("D"):
        return None
    sigma = fit.real().get("sigma", {}).get("estimate", float("nan"))
    if not (math.isfinite(sigma) and sigma > 0):
        return None
    ch = fit.lik.capthist
    buffers = np.asarray(buffers, dtype=float)
    reach = max(float(buffers.max()), reach_sigmas * sigma)
    ext = np.ptp(ch.traps.xy, axis=0) + 2 * reach
    spacing = max(sigma / 4.0, math.sqrt(float(np.prod(ext)) / 40000.0))
    big = make_mask(ch.traps, reach, spacing)
    model = {p: "~" + rhs_text(t) for p, t in fit.formulas.items() if p != "D"}
    lik = _make_likelihood(
        ch, big, model, fit.detectfn, fit.likelihood, hcov=getattr(fit.lik, "hcov", None),
        fixed=getattr(fit.lik, "fixed", None) or None, link=getattr(fit.lik, "links", None) or None,
    )  # fmt: skip
    if lik.names != fit.names:
        return None
    p = lik.pdot(fit.beta)  # the same coefficients on the larger mask
    d = np.sqrt(((big.xy[:, None, :] - ch.traps.xy[None, :, :]) ** 2).sum(-1).min(axis=1))
    total = float(p.sum())
    inside = np.array([float(p[d <= w].sum()) for w in buffers])
    with np.errstate(divide="ignore"):
        return np.where(inside > 0, total / np.maximum(inside, 1e-300) - 1.0, np.inf)


def suggest_buffer(fit: SecrFit, rb_target: float = RB_TARGET) -> float | None:
    """The narrowest buffer (metres, to 3 figures) whose truncation bias is at most ``rb_target``.

    secr's ``suggest.buffer`` rule, with :func:`buffer_bias` for ``bias.D``.
    None where :func:`buffer_bias` cannot judge the model.
    """
    sigma = fit.real().get("sigma", {}).get("estimate", float("nan"))
    if not (math.isfinite(sigma) and sigma > 0):
        return None
    grid = sigma * np.arange(0.5, 12.01, 0.05)
    rb = buffer_bias(fit, grid)
    if rb is None:
        return None
    ok = np.flatnonzero(rb <= rb_target)
    w = float(grid[ok[0]]) if ok.size else float(grid[-1])
    return float(f"{w:.3g}")


def mask_spacing(traps: Traps, buffer: float, target_points: int = 2500) -> float:
    """A round grid spacing (metres) giving about ``target_points`` points within ``buffer``."""
    lo, hi = traps.xy.min(axis=0) - buffer, traps.xy.max(axis=0) + buffer
    spacing = math.sqrt(float(np.prod(hi - lo)) / target_points)
    return float(max(10.0, round(spacing, -int(math.floor(math.log10(spacing))) + 1)))


def initial_buffer(capthist: CaptureHistory) -> float:
    """A first buffer before any fit: four root pooled spatial variances, at least two spacings."""
    sig = rpsv(capthist)
    trap_sp = capthist.traps.spacing()
    floor = 2 * trap_sp if math.isfinite(trap_sp) else 5000.0
    buffer = max(4 * sig if math.isfinite(sig) and sig > 0 else 0.0, floor)
    return float(round(buffer, -2) or buffer)


def fit_with_buffer(
    capthist: CaptureHistory,
    *,
    model: str | Mapping[str, str] | None = None,
    detectfn: str = "HHN",
    likelihood: str = "full",
    rb_target: float = RB_TARGET,
    target_points: int = 2500,
    fixed: Mapping[str, float] | None = None,
    link: Mapping[str, str] | None = None,
    distribution: str = "poisson",
) -> tuple[SecrFit, Mask, dict[str, Any]]:
    """Fit on a trap-buffer mask whose buffer is chosen from the fitted sigma.

    A first fit on :func:`initial_buffer` gives sigma-hat; the buffer is then
    :func:`suggest_buffer` (the narrowest whose truncation biases D-hat by at
    most ``rb_target``, secr's ``suggest.buffer`` rule), rounded up to 100 m,
    and the model is fitted again on that mask when it differs. The returned
    ``info`` says what was chosen and the estimated truncation bias of the
    final fit at the final buffer.

    Returns
    -------
    (fit, mask, info)
        ``info``: ``buffer``, ``spacing``, ``points``, ``area_km2``,
        ``sigma``, ``buffer_sigmas``, ``relative_bias``, ``rb_target``,
        ``initial_buffer``, ``rule``.
    """
    b0 = initial_buffer(capthist)
    sp0 = mask_spacing(capthist.traps, b0, target_points)
    mask = make_mask(capthist.traps, b0, sp0)
    kw: dict[str, Any] = {"fixed": fixed, "link": link, "distribution": distribution}
    f = fit(capthist, mask, model=model, detectfn=detectfn, likelihood=likelihood, **kw)
    buffer, spacing, rule = b0, sp0, "initial"
    suggested = suggest_buffer(f, rb_target) if f.converged else None
    if suggested is not None:
        w = float(math.ceil(suggested / 100.0) * 100.0)
        if w != b0:
            buffer, spacing = w, mask_spacing(capthist.traps, w, target_points)
            mask = make_mask(capthist.traps, buffer, spacing)
            f = fit(capthist, mask, model=model, detectfn=detectfn, likelihood=likelihood, **kw)
        rule = "suggest.buffer"
    sigma = f.real().get("sigma", {}).get("estimate", float("nan"))
    rb = buffer_bias(f, [buffer]) if f.converged else None
    info = {
        "buffer": buffer,
        "spacing": spacing,
        "points": mask.n_points,
        "area_km2": mask.area / 100.0,
        "sigma": sigma,
        "buffer_sigmas": buffer / sigma if math.isfinite(sigma) and sigma > 0 else None,
        "relative_bias": float(rb[0]) if rb is not None else None,
        "rb_target": rb_target,
        "initial_buffer": b0,
        "rule": rule,
    }
    return f, mask, info
