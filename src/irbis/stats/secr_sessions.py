"""Multi-session SECR: several surveys (years, regions) fitted together.

As in R ``secr``, the log-likelihood of a multi-session capture history is
the sum of the sessions' log-likelihoods, each with its own animals,
occasions, traps, usage and mask; sessions share coefficients through the
submodels. Besides trap and mask covariates a formula may name

- ``session``: a factor with one level per session (in session order), so
  ``D~session`` gives each session its own density;
- ``Session``: the session number, 0 for the first, so ``D~Session`` is a
  log-linear trend: ``D_s = D_0 * lambda^s`` with ``lambda = exp(beta)``;
- session covariates (one value per session, see
  :class:`~irbis.stats.secr_data.SessionHistories`).

Parameters left out are shared (``~1``). Derived values are per session:
density averaged over the session's mask, expected ``N`` in the mask and the
rate of change between consecutive sessions ``D_{s+1} / D_s`` with a
log-normal (delta-method) interval; with ``D~Session`` the trend
``exp(beta_D.Session)`` has a Wald interval on the link scale.

Examples
--------
>>> from irbis.stats import secr_sessions as ms
>>> from irbis.stats.secr_data import read_session_captures, read_session_traps
>>> traps = read_session_traps("traps.csv")                       # doctest: +SKIP
>>> sessions = read_session_captures("captures.csv", traps)       # doctest: +SKIP
>>> fit = ms.fit_sessions(sessions, masks, model="D~Session")     # doctest: +SKIP
>>> fit.trend()                                                   # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from irbis.core.errors import BadInputError
from irbis.stats._threads import blas_threads
from irbis.stats.detectfn import detect_params
from irbis.stats.formula import parse_model, r_levels, rhs_text, variables_of
from irbis.stats.secr import (
    HA_PER_100KM2,
    SecrLikelihood,
    _boundary_reasons,
    _Coefficients,
    _lognormal_ci,
    _optimise,
    _Optimum,
    parameter_covariates,
)
from irbis.stats.secr_data import Mask, SessionHistories
from irbis.stats.secr_varying import make_likelihood
from irbis.stats.smooth import parse_smooth, smooth_spec

__all__ = ["SessionFit", "SessionLikelihood", "fit_sessions", "separable", "session_masks"]

#: formula names a multi-session model adds to the covariates
SESSION_TERMS = ("session", "Session")


def session_masks(
    sessions: SessionHistories, masks: Mask | Sequence[Mask] | Mapping[str, Mask]
) -> list[Mask]:
    """One mask per session, in session order.

    Parameters
    ----------
    sessions:
        The sessions.
    masks:
        One mask for every session, a list in session order, or a mapping
        by session name.

    Returns
    -------
    list of Mask
    """
    if isinstance(masks, Mask):
        return [masks] * sessions.n_sessions
    if isinstance(masks, Mapping):
        missing = [s for s in sessions.names if s not in masks]
        if missing:
            raise BadInputError("mask", f"no mask for session {missing[0]!r}", "give one each")
        return [masks[s] for s in sessions.names]
    out = list(masks)
    if len(out) != sessions.n_sessions:
        raise BadInputError(
            "mask", f"{len(out)} masks for {sessions.n_sessions} sessions", "give one each"
        )
    return out


class SessionLikelihood:
    """Log-likelihood of a multi-session SECR model: the sum over sessions.

    Parameters
    ----------
    sessions:
        Capture histories per session.
    masks:
        Habitat mask(s) (see :func:`session_masks`).
    model:
        Formulas, e.g. ``"D~Session lambda0~session sigma~1"``.
    detectfn:
        Detection function code.
    likelihood:
        ``"full"`` or ``"conditional"``.
    threads:
        Sessions evaluated in parallel threads (numpy releases the GIL in its
        array work); 1 evaluates them in turn.
    fixed:
        Real parameters held at a value in every session (secr's ``fixed``).
    link:
        Links other than secr's defaults (secr's ``link``), as
        :func:`irbis.stats.secr.fit`.
    distribution:
        ``"poisson"`` or ``"binomial"`` number of animals in each session's mask.

    Attributes
    ----------
    parts:
        One :class:`~irbis.stats.secr.SecrLikelihood` per session; all have
        the same coefficients.
    """

    def __init__(
        self,
        sessions: SessionHistories,
        masks: Mask | Sequence[Mask] | Mapping[str, Mask],
        model: str | Mapping[str, str] | None = None,
        detectfn: str = "HHN",
        likelihood: str = "full",
        *,
        threads: int = 1,
        fixed: Mapping[str, float] | None = None,
        link: Mapping[str, str] | None = None,
        distribution: str = "poisson",
    ) -> None:
        self.sessions = sessions
        self.masks = session_masks(sessions, masks)
        dparams = detect_params(detectfn)
        formulas = parse_model(model, ("D",) + dparams + ("pmix",))
        terms = {t for ts in formulas.values() for t in variables_of(ts)}
        S = sessions.n_sessions
        if S < 2 and terms & set(SESSION_TERMS):
            raise BadInputError(
                "model", "session and Session need two or more sessions", "drop them"
            )
        levels: dict[str, list[str]] = {"session": list(sessions.names)}
        for t in terms - set(SESSION_TERMS):
            vals: list[Any] = []
            for (_, ch), m in zip(sessions, self.masks, strict=True):
                for covs in (ch.traps.covariates, m.covariates, sessions.covariates):
                    if t in covs and np.asarray(covs[t]).dtype == object:
                        vals.extend(str(v) for v in covs[t])
            if vals:
                levels[t] = r_levels(vals)
        self.levels = levels
        scovs: list[dict[str, Any]] = []
        for i, (name, _) in enumerate(sessions):
            scov: dict[str, Any] = {"session": name, "Session": float(i)}
            for k, v in sessions.covariates.items():
                scov[k] = str(v[i]) if np.asarray(v).dtype == object else float(v[i])
            scovs.append(scov)
        smooths = self._pooled_smooths(formulas, scovs)
        self.parts: list[SecrLikelihood] = []
        for i, ((name, ch), m) in enumerate(zip(sessions, self.masks, strict=True)):
            scov = scovs[i]
            try:
                # occasion, response and mixture terms (t, b, h2...) take the varying likelihood
                part = make_likelihood(
                    ch, m, model, detectfn, likelihood, session_covariates=scov, levels=levels,
                    fixed=fixed, link=link, smooths=smooths, distribution=distribution,
                )  # fmt: skip
            except BadInputError as exc:
                raise BadInputError(f"session {name}: {exc.where}", exc.reason, exc.hint) from None
            self.parts.append(part)
        first = self.parts[0]
        for (name, _), part in zip(sessions, self.parts, strict=True):
            if part.names != first.names:
                raise BadInputError(
                    f"session {name}",
                    f"its coefficients ({', '.join(part.names)}) differ from the first "
                    f"session's ({', '.join(first.names)})",
                    "give every session the same occasions when the model has t",
                )
        self.names: list[str] = list(first.names)
        self.npar = first.npar
        self.params = first.params
        self.formulas = first.formulas
        self.detectfn = first.detectfn
        self.likelihood = first.likelihood
        self.blocks = first.blocks
        self.fixed: dict[str, float] = dict(first.fixed)
        self.links: dict[str, str] = dict(first.links)
        self.distribution = first.distribution
        self.n = sessions.n
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 and S > 1 else None

    def _pooled_smooths(
        self, formulas: Mapping[str, list[str]], scovs: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]] | None:
        """``s()`` bases built over all sessions' rows, as secr builds them on the pooled data."""
        out: dict[str, dict[str, Any]] = {}
        for p, terms in formulas.items():
            for t in terms:
                if not t.startswith("s("):
                    continue
                names, k = parse_smooth(t, p)
                rows = []
                for (_, ch), m, scov in zip(self.sessions, self.masks, scovs, strict=True):
                    covs, _, where = parameter_covariates(p, m, ch.traps, terms, scov)
                    missing = [c for c in names if c not in covs]
                    if missing:
                        raise BadInputError(where, f"no covariate {missing[0]!r} for {p}~{t}")
                    rows.append(np.column_stack([np.asarray(covs[c], float) for c in names]))
                x = np.vstack(rows)
                out.setdefault(p, {})[t] = smooth_spec(names, k, x, "sessions")
        return out or None

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)

    def _map(self, fn: Any) -> list[Any]:
        if self._pool is None:
            return [fn(p) for p in self.parts]
        return list(self._pool.map(fn, self.parts))

    def __call__(self, beta: np.ndarray) -> float:
        """Log-likelihood at ``beta`` (sum over sessions).

        Parameters
        ----------
        beta:
            Coefficients on the link scale, in :attr:`names` order.

        Returns
        -------
        float
        """
        b = np.asarray(beta, dtype=float)
        return float(sum(self._map(lambda p: p(b))))

    loglik = __call__

    def loglik_and_gradient(self, beta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-likelihood and its analytic gradient (sums over sessions).

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
        b = np.asarray(beta, dtype=float)
        res = self._map(lambda p: p.loglik_and_gradient(b))
        return float(sum(r[0] for r in res)), np.sum([r[1] for r in res], axis=0)

    def session_logliks(self, beta: np.ndarray) -> list[float]:
        """Each session's log-likelihood at ``beta``.

        Parameters
        ----------
        beta:
            Coefficients on the link scale.

        Returns
        -------
        list of float
        """
        b = np.asarray(beta, dtype=float)
        return [p(b) for p in self.parts]

    def start_values(self) -> np.ndarray:
        """Starting coefficients: the sessions' own starts (intercepts) averaged.

        Returns
        -------
        numpy.ndarray
        """
        return np.mean([p.start_values() for p in self.parts], axis=0)

    def boundary_candidates(self) -> dict[int, str]:
        """Coefficients whose MLE is at minus infinity over all sessions, with the reason.

        Returns
        -------
        dict
            ``{coefficient index: reason}``.
        """
        return _boundary_reasons([p.level_detections() for p in self.parts])


@dataclass
class SessionFit(_Coefficients):
    """A fitted multi-session SECR model.

    Attributes
    ----------
    beta, names, vcov, loglik:
        As :class:`~irbis.stats.secr.SecrFit`.
    n:
        Animals detected, summed over sessions (secr's ``n`` for AICc).
    sessions:
        Session names.
    boundary:
        Coefficients at a boundary, with the reason (SE not meaningful).
    """

    beta: np.ndarray
    names: list[str]
    vcov: np.ndarray
    loglik: float
    n: int
    sessions: list[str]
    detectfn: str
    detector: str
    likelihood: str
    formulas: dict[str, list[str]]
    converged: bool
    message: str
    n_evals: int
    seconds: float
    lik: SessionLikelihood = field(repr=False)
    boundary: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The model in ``secr``'s formula notation."""
        parts = [f"{p}~{rhs_text(self.formulas[p])}" for p in self.lik.params]
        parts += [f"{p}={v:g}" for p, v in self.lik.fixed.items()]
        return " ".join(parts)

    def _index(self, session: str | int) -> int:
        if isinstance(session, int):
            return session
        if session not in self.sessions:
            raise BadInputError("session", f"no session {session!r}", f"use {self.sessions}")
        return self.sessions.index(session)

    def real(
        self,
        session: str | int = 0,
        newdata: Mapping[str, Any] | None = None,
        level: float = 0.95,
    ) -> dict[str, dict[str, float]]:
        """Real parameters of one session (base levels of other covariates).

        Parameters
        ----------
        session:
            Session name or index.
        newdata:
            Other covariate values (see :meth:`irbis.stats.secr.SecrFit.real`).
        level:
            Confidence level.

        Returns
        -------
        dict
            ``{param: {"estimate", "se", "lcl", "ucl", "link"}}``.
        """
        part = self.lik.parts[self._index(session)]
        nd = dict(part.session_covariates) | dict(newdata or {})
        return self._real_from(part.blocks, nd, level)

    def _session_density(self, i: int) -> tuple[float, float]:
        """Mean density (per ha) over session ``i``'s mask, with its SE."""
        part = self.lik.parts[i]
        if self.likelihood == "full":
            return self._delta(lambda b: float(np.exp(part.log_d(b)).mean()))
        a_hat, _ = self._delta(lambda b: part.area * float(part.pdot(b).sum()))
        n_i = part.n
        _, se_model = self._delta(lambda b: n_i / (part.area * float(part.pdot(b).sum())))
        return n_i / a_hat, math.sqrt(n_i / a_hat**2 + se_model**2)

    def derived(self, level: float = 0.95) -> dict[str, dict[str, Any]]:
        """Per-session density and expected number of animals in the session's mask.

        For the conditional likelihood density is ``n_s / a_s(theta)`` with
        the Poisson variance of ``n_s`` added (secr's ``derived``).

        Parameters
        ----------
        level:
            Confidence level (log-normal intervals).

        Returns
        -------
        dict
            ``{session: {"D_per_ha", "D_per_100km2", "N", "esa_km2",
            "area_km2", "n"}}``; each estimate a dict of ``estimate``,
            ``se``, ``lcl``, ``ucl``.
        """
        out: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(self.sessions):
            part = self.lik.parts[i]
            est, se = self._session_density(i)
            lcl, ucl = _lognormal_ci(est, se, level)
            d = {"estimate": est, "se": se, "lcl": lcl, "ucl": ucl}
            area = part.area * part.mask.n_points
            n_est = {k: v * area for k, v in d.items()}
            out[name] = {
                "n": part.n,
                "D_per_ha": d,
                "D_per_100km2": {k: v * HA_PER_100KM2 for k, v in d.items()},
                "N": n_est,
                "esa_km2": part.area * float(part.pdot(self.beta).sum()) / 100.0,
                "area_km2": area / 100.0,
            }
        return out

    def region_n(
        self,
        session: str | int = 0,
        region: Any = None,
        spacing: float | None = None,
        level: float = 0.95,
    ) -> dict[str, Any]:
        """Expected and realised N of one session in a region (secr's ``region.N``).

        Parameters
        ----------
        session:
            Session name or index.
        region:
            Shapely polygon, mask, or ``None`` for the session's mask.
        spacing:
            Point spacing for a polygon (default: the session mask's).
        level:
            Confidence level.

        Returns
        -------
        dict
            See :func:`irbis.stats.secr_region.region_n`.
        """
        from irbis.stats.secr_region import region_n

        return region_n(self, region, session=session, spacing=spacing, level=level)

    def trend(self, level: float = 0.95) -> dict[str, Any]:
        """Rate of change of density between consecutive sessions.

        Parameters
        ----------
        level:
            Confidence level.

        Returns
        -------
        dict
            ``"steps"``: one entry per pair of consecutive sessions with
            ``from``, ``to``, ``estimate`` (``D_{s+1} / D_s``), ``se``,
            ``lcl``, ``ucl`` (delta method on the log ratio); and, when ``D``
            has a ``Session`` term on the log link, ``"Session"``: ``exp(beta_D.Session)``
            (the rate per session under the log-linear trend) with a Wald
            interval on the link scale.
        """
        zq = norm.ppf(0.5 + level / 2)
        steps = []
        for i in range(len(self.sessions) - 1):
            a, b = self.lik.parts[i], self.lik.parts[i + 1]
            if self.likelihood == "full":

                def fun(x: np.ndarray, a: Any = a, b: Any = b) -> float:
                    return math.log(
                        float(np.exp(b.log_d(x)).mean()) / float(np.exp(a.log_d(x)).mean())
                    )

                est, se = self._delta(fun)
            else:

                def fun(x: np.ndarray, a: Any = a, b: Any = b) -> float:
                    return math.log(float(a.pdot(x).sum()) * a.area) - math.log(
                        float(b.pdot(x).sum()) * b.area
                    )

                val, se_model = self._delta(fun)
                est = math.log(b.n / a.n) + val
                se = math.sqrt(se_model**2 + 1 / a.n + 1 / b.n)
            steps.append(
                {
                    "from": self.sessions[i],
                    "to": self.sessions[i + 1],
                    "estimate": math.exp(est),
                    "se": math.exp(est) * se,
                    "lcl": math.exp(est - zq * se),
                    "ucl": math.exp(est + zq * se),
                }
            )
        out: dict[str, Any] = {"steps": steps}
        if "D.Session" in self.names and "D" not in self.lik.links:
            j = self.names.index("D.Session")
            b, s = float(self.beta[j]), float(self.beta_se[j])
            out["Session"] = {
                "estimate": math.exp(b),
                "se": math.exp(b) * s,
                "lcl": math.exp(b - zq * s),
                "ucl": math.exp(b + zq * s),
            }
        return out

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-able summary: fit statistics, coefficients, per-session real and derived values.

        Parameters
        ----------
        level:
            Confidence level of the intervals.

        Returns
        -------
        dict
        """
        return {
            "model": self.model,
            "detectfn": self.detectfn,
            "detector": self.detector,
            "likelihood": self.likelihood,
            "distribution": self.lik.distribution,
            "sessions": list(self.sessions),
            "n": self.n,
            "logLik": self.loglik,
            "npar": self.npar,
            "AIC": self.aic,
            "AICc": self.aicc,
            "converged": self.converged,
            "beta": self.beta_dict(),
            "beta_se": self.se_dict(),
            "real": {s: self.real(s, level=level) for s in self.sessions},
            "derived": self.derived(level=level),
            "trend": self.trend(level=level),
            "at_boundary": self.boundary_flags(),
            "message": self.message,
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        lines = [
            f"SECR {self.likelihood} likelihood, {self.detector} detectors, {self.detectfn}, "
            f"{len(self.sessions)} sessions",
            f"model {self.model}",
            f"n = {self.n}, logLik = {self.loglik:.4f}, npar = {self.npar}, "
            f"AIC = {self.aic:.3f}, AICc = {self.aicc:.3f}",
        ]
        for n, r in self.beta_table().items():
            lines.append(f"  {n:<24} {r['beta']: .6f}  SE {r['se']:.6f}")
        for s, d in self.derived().items():
            x = d["D_per_100km2"]
            lines.append(
                f"session {s}: n = {d['n']}, density {x['estimate']:.3f} per 100 km2 "
                f"({x['lcl']:.3f} - {x['ucl']:.3f})"
            )
        lines.extend(self.boundary_flags())
        return "\n".join(lines)


def separable(lik: SessionLikelihood) -> bool:
    """Whether the sessions share no coefficient once reparameterised: every parameter ``~session``.

    Then ``beta_p = theta_p1`` and ``beta_p.session<s> = theta_ps - theta_p1``
    (link scale), where ``theta_ps`` is session ``s``'s own intercept, and the
    log-likelihood is the sum of the sessions' own.

    Parameters
    ----------
    lik:
        The multi-session likelihood.

    Returns
    -------
    bool
    """
    return (
        len(lik.parts) > 1
        and bool(lik.params)
        and all(lik.formulas.get(p) == ["session"] for p in lik.params)
        and all(type(p) is SecrLikelihood for p in lik.parts)
    )


def _optimise_separately(
    lik: SessionLikelihood, max_iter: int, hessian: bool, threads: int
) -> _Optimum | None:
    """Fit each session alone (in parallel threads) and map to the joint coefficients."""
    S, P = len(lik.parts), len(lik.params)

    def one(part: SecrLikelihood) -> _Optimum:
        single = SecrLikelihood(
            part.capthist, part.mask, None, part.detectfn, part.likelihood,
            fixed=part.fixed or None, link=part.links or None, distribution=part.distribution,
        )  # fmt: skip
        return _optimise(single, None, max_iter, hessian)

    if threads > 1:
        with ThreadPoolExecutor(min(threads, S)) as pool:
            opts = list(pool.map(one, lik.parts))
    else:
        opts = [one(p) for p in lik.parts]
    if any(o.boundary for o in opts):
        return None  # flags name the joint coefficients: let the joint fit find them
    # beta = A theta, theta stacked session by session (P intercepts each)
    A = np.zeros((lik.npar, S * P))
    for j, p in enumerate(lik.params):
        b = next(blk for blk in lik.blocks if blk.param == p)
        for s in range(S):
            A[b.start, j] = 1.0
            if s:
                A[b.start + s, s * P + j] = 1.0
                A[b.start + s, j] = -1.0
    theta = np.concatenate([o.beta for o in opts])
    V = np.zeros((S * P, S * P))
    for s, o in enumerate(opts):
        V[s * P : (s + 1) * P, s * P : (s + 1) * P] = o.vcov
    beta = A @ theta
    vcov = A @ V @ A.T if hessian else np.full((lik.npar, lik.npar), np.nan)
    ll = float(sum(o.loglik for o in opts))
    ok = all(o.converged for o in opts)
    msg = "sessions fitted separately (the likelihood separates); " + "; ".join(
        f"{name}: {o.message}" for name, o in zip(lik.sessions.names, opts, strict=True)
    )
    return _Optimum(beta, vcov, ll, ok, msg, sum(o.n_evals for o in opts), {})


def fit_sessions(
    sessions: SessionHistories,
    masks: Mask | Sequence[Mask] | Mapping[str, Mask],
    model: str | Mapping[str, str] | None = None,
    detectfn: str = "HHN",
    likelihood: str = "full",
    *,
    start: Sequence[float] | Mapping[str, float] | None = None,
    max_iter: int = 500,
    hessian: bool = True,
    threads: int = 1,
    fixed: Mapping[str, float] | None = None,
    link: Mapping[str, str] | None = None,
    distribution: str = "poisson",
    separate: bool | None = None,
) -> SessionFit:
    """Fit a multi-session SECR model by maximum likelihood (secr.fit on a multi-session capthist).

    Parameters
    ----------
    sessions:
        Capture histories per session.
    masks:
        One mask for all, one per session (list in order or mapping by name).
    model:
        Formulas; ``session`` and ``Session`` may appear on any right-hand
        side (e.g. ``"D~Session"`` for a trend, ``"D~session"`` for one
        density per session); parameters left out are shared constants.
    detectfn:
        Detection function code.
    likelihood:
        ``"full"`` or ``"conditional"``.
    start:
        Starting coefficients (array or mapping by name).
    max_iter:
        Maximum quasi-Newton iterations.
    hessian:
        Compute the variance-covariance matrix.
    threads:
        Sessions evaluated in parallel (see :class:`SessionLikelihood`).
    fixed:
        Real parameters held at a value, e.g. ``{"sigma": 1500.0}``.
    link:
        Links other than secr's defaults, e.g. ``{"D": "identity"}``.
    distribution:
        ``"poisson"`` (default) or ``"binomial"`` N in each session's mask.
    separate:
        Where every estimated parameter is ``~session`` the likelihood
        separates: each session is then fitted on its own (``threads`` at a
        time) and the coefficients mapped to the joint ones (see
        :func:`separable`). ``None`` (default) does so where it can, ``False``
        never, ``True`` insists.

    Returns
    -------
    SessionFit
    """
    t0 = time.perf_counter()
    with blas_threads(1):
        lik = SessionLikelihood(
            sessions, masks, model, detectfn, likelihood, threads=threads, fixed=fixed, link=link,
            distribution=distribution,
        )  # fmt: skip
        opt = None
        if separate is not False and start is None and separable(lik):
            opt = _optimise_separately(lik, max_iter, hessian, threads)
        if opt is None:
            if separate:
                raise BadInputError(
                    "model",
                    "the sessions share coefficients (or a session's fit is at a boundary)",
                    "give every parameter ~session to fit the sessions separately",
                )
            opt = _optimise(lik, start, max_iter, hessian)
    ch = sessions.histories[0]
    return SessionFit(
        beta=opt.beta,
        names=list(lik.names),
        vcov=opt.vcov,
        loglik=opt.loglik,
        n=lik.n,
        sessions=list(sessions.names),
        detectfn=lik.detectfn,
        detector=ch.detector + (f" (binomial {ch.binom_size})" if ch.binom_size else ""),
        likelihood=lik.likelihood,
        formulas=lik.formulas,
        converged=opt.converged,
        message=opt.message,
        n_evals=opt.n_evals,
        seconds=time.perf_counter() - t0,
        lik=lik,
        boundary=opt.boundary,
    )
