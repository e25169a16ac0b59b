"""Regression splines ``s(x, k = ...)`` as secr builds them with mgcv (fixed df, no penalty).

secr passes a formula with ``s()`` terms to ``mgcv::gam(..., fit = FALSE)``
and uses the model matrix it returns as an ordinary design matrix: the
spline's basis functions are covariates, their coefficients are estimated by
maximum likelihood without a penalty (secr's ``?smooths``: "penalized
splines are not available"; ``k`` sets the wiggliness). mgcv's default basis
for ``s()`` is the thin plate regression spline (Wood 2003, ``bs = "tp"``),
built here as mgcv's ``tprs_setup`` describes it:

1. the unique covariate points ``X_u`` (one or two covariates) are the
   knots; ``E[i, j] = eta(|x_i - x_j|)`` with ``eta(r) = r^3`` (one
   covariate) or ``r^2 log r`` (two; penalty order ``m = 2``; constant
   factors change nothing below); ``T`` is the null space of the penalty,
   ``[1, x]`` or ``[1, x, y]`` (``M`` columns);
2. the ``k`` eigenvectors ``U_k`` of ``E`` with the largest eigenvalues in
   absolute value are kept, and the coefficients restricted to
   ``T' U_k delta = 0`` (``Z``, the null space of ``T' U_k``); with exactly
   ``k`` unique points the full basis is kept (no eigen step);
3. a point ``x`` has basis ``[eta(|x - X_u|) U_k Z, T(x)]`` (``k`` columns);
4. the sum-to-zero identifiability constraint over the data rows is
   absorbed (mgcv's ``absorb.cons``): ``k - 1`` columns, the model's
   intercept taking the constant.

The columns span the same functions as mgcv's, so a fit has R's logLik
and real parameters; the coefficients of the spline columns themselves
are not comparable with R's (eigenvectors' signs, mgcv's column scaling
and the Householder form of its constraint are arbitrary). Above
``MAX_KNOTS`` unique points mgcv draws a random subset with R's random
number generator (seed 1); irbis takes an evenly spaced subset of the
sorted unique points instead, so there the basis (and logLik) differ
slightly from R's. Only ``bs = "tp"`` is built; ``fx`` is accepted and
ignored (no penalty is used either way, as in secr).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.distance import cdist

from irbis.core.errors import BadInputError

__all__ = [
    "MAX_KNOTS",
    "SmoothSpec",
    "parse_smooth",
    "smooth_basis",
    "smooth_label",
    "smooth_spec",
]

#: mgcv's default max.knots for thin plate regression splines
MAX_KNOTS = 3000
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass
class SmoothSpec:
    """What is needed to evaluate a fitted thin plate regression spline basis.

    Attributes
    ----------
    variables:
        Covariate names (one or two).
    k:
        Basis dimension before the identifiability constraint.
    shift:
        Mean of the data's covariates (mgcv centres them).
    knots:
        Unique centred covariate points, ``(n_u, d)``.
    radial:
        ``(n_u, k - M)`` map of the radial part (``U_k Z``).
    constraint:
        ``(k, k - 1)`` null space of the sum-to-zero constraint.
    fitted:
        The ``k - 1`` columns at the data rows the basis was built from.
    """

    variables: tuple[str, ...]
    k: int
    shift: np.ndarray
    knots: np.ndarray
    radial: np.ndarray
    constraint: np.ndarray
    fitted: np.ndarray | None = field(default=None, repr=False)


def parse_smooth(text: str, param: str = "") -> tuple[tuple[str, ...], int]:
    """Covariates and basis dimension of ``s(x, k = 5)`` or ``s(x, y, k = 12, fx = TRUE)``.

    Parameters
    ----------
    text:
        The call as written.
    param:
        Real parameter (for messages).

    Returns
    -------
    variables:
        One or two covariate names.
    k:
        Basis dimension (mgcv's default 10 for one covariate, 30 for two).
    """
    m = re.match(r"^s\s*\((.*)\)$", text.strip(), flags=re.S)
    hint = 'write s(x, k = 5) or s(x, y, k = 12) (thin plate, bs = "tp")'
    if not m:
        raise BadInputError("model", f"{text!r} of {param} is not supported", hint)
    pos: list[str] = []
    named: dict[str, str] = {}
    for a in (x.strip() for x in m.group(1).split(",")):
        kv = re.match(r"^([A-Za-z_.][A-Za-z0-9_.]*)\s*=\s*(.+)$", a)
        if kv:
            named[kv.group(1)] = kv.group(2).strip().strip("'\"")
        elif a:
            pos.append(a)
    bad = sorted(set(named) - {"k", "fx", "bs"})
    if bad or not 1 <= len(pos) <= 2 or not all(_NAME.match(p) for p in pos):
        raise BadInputError("model", f"{text!r} of {param} is not supported", hint)
    if named.get("bs", "tp") != "tp":
        raise BadInputError(
            "model", f"basis bs = {named['bs']!r} in {text!r}", 'only bs = "tp" (the default)'
        )
    if named.get("fx", "TRUE") not in ("TRUE", "T", "FALSE", "F"):
        raise BadInputError("model", f"fx = {named['fx']} in {text!r}", "use TRUE")
    d = len(pos)
    k_txt = named.get("k", "-1")
    if not re.match(r"^-?[0-9]+$", k_txt):
        raise BadInputError("model", f"k = {k_txt} in {text!r} is not a whole number")
    k = int(k_txt)
    if k < 0:
        k = 10 * 3 ** (d - 1)  # mgcv's default basis dimension
    k = max(k, d + 2)  # at least M + 1 (mgcv resets smaller k so)
    return tuple(pos), k


def _eta(r2: np.ndarray, d: int) -> np.ndarray:
    """Thin plate radial function (m = 2) from squared distances, without its constant."""
    if d == 1:
        return r2 * np.sqrt(r2)
    out = np.log(np.maximum(r2, 1e-300))
    out *= r2
    out *= 0.5  # r^2 log r; 0 at r = 0 (1e-300 * log(1e-300) underflows to 0)
    return out


def _poly_part(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), x])


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cdist(a, b, "sqeuclidean")


def _null_space(A: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the null space of ``A`` (rows are constraints)."""
    q, _ = np.linalg.qr(A.T, mode="complete")
    return q[:, A.shape[0] :]


def _top_eigenvectors(E: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` eigenvectors of symmetric ``E`` with the largest eigenvalues in absolute value.

    Small matrices by a full decomposition; large ones by Lanczos iterations
    (as mgcv), converged to machine precision.
    """
    n = len(E)
    if n <= 400 or k > n // 3:
        w, U = np.linalg.eigh(E)
        return U[:, np.argsort(-np.abs(w), kind="stable")[:k]]
    from scipy.sparse.linalg import eigsh

    w, U = eigsh(E, k=k, which="LM", tol=0.0, v0=np.ones(n) / math.sqrt(n))
    return U[:, np.argsort(-np.abs(w), kind="stable")]


def _raw_basis(spec: SmoothSpec, x: np.ndarray) -> np.ndarray:
    xc = x - spec.shift[None, :]
    E = _eta(_sq_dist(xc, spec.knots), xc.shape[1])
    return np.hstack([E @ spec.radial, _poly_part(xc)])


def smooth_spec(variables: tuple[str, ...], k: int, x: np.ndarray, where: str = "") -> SmoothSpec:
    """Build the basis of ``s(variables, k)`` from the data's covariate values.

    Parameters
    ----------
    variables:
        Covariate names.
    k:
        Basis dimension.
    x:
        ``(n, d)`` covariate values of the data rows.
    where:
        What the rows are (for messages).

    Returns
    -------
    SmoothSpec
    """
    x = np.asarray(x, float).reshape(len(x), -1)
    d = x.shape[1]
    label = f"s({', '.join(variables)}, k = {k})"
    if not np.all(np.isfinite(x)):
        raise BadInputError(where, f"{label}: missing covariate values", "fill them")
    shift = x.mean(axis=0)
    xu = np.unique(np.round(x - shift, 12), axis=0)
    if len(xu) < k:
        raise BadInputError(
            where,
            f"{label} needs at least {k} distinct covariate values; there are {len(xu)}",
            "use a smaller k",
        )
    if len(xu) > MAX_KNOTS:
        xu = xu[np.linspace(0, len(xu) - 1, MAX_KNOTS).round().astype(int)]
    T = _poly_part(xu)
    M = T.shape[1]
    E = _eta(_sq_dist(xu, xu), d)
    if len(xu) == k:  # the full spline basis: delta restricted to T' delta = 0
        radial = _null_space(T.T)
    else:
        Uk = _top_eigenvectors(E, k)
        radial = Uk @ _null_space(T.T @ Uk)
    spec = SmoothSpec(tuple(variables), k, shift, xu, radial, np.eye(k))
    X = _raw_basis(spec, x)
    # rms-1 columns (mgcv's rescaling, for conditioning), then the sum-to-zero constraint
    scale = np.sqrt((X**2).mean(axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    spec.constraint = np.diag(1.0 / scale) @ _null_space((X / scale).sum(axis=0)[None, :])
    spec.fitted = X @ spec.constraint
    assert spec.radial.shape[1] == k - M
    return spec


def smooth_basis(spec: SmoothSpec, x: np.ndarray) -> np.ndarray:
    """The ``k - 1`` spline columns at covariate points ``x``.

    Parameters
    ----------
    spec:
        From :func:`smooth_spec`.
    x:
        ``(n, d)`` covariate values.

    Returns
    -------
    numpy.ndarray
        ``(n, k - 1)``.
    """
    x = np.asarray(x, float).reshape(len(x), -1)
    return _raw_basis(spec, x) @ spec.constraint


def smooth_label(variables: tuple[str, ...]) -> str:
    """mgcv's label of a smooth (``s(x)``, ``s(x,y)``), the prefix of its column names."""
    return f"s({','.join(variables)})"
