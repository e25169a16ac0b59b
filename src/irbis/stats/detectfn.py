"""Detection functions of spatially explicit capture-recapture.

Each function relates detection to the distance ``d`` between an animal's
activity centre and a detector, as in R ``secr`` (Efford):

=====  ================  ============================================
code   parameters        function
=====  ================  ============================================
HN     g0, sigma         g(d) = g0 exp(-d^2 / (2 sigma^2))
HR     g0, sigma, z      g(d) = g0 (1 - exp(-(d / sigma)^-z))
EX     g0, sigma         g(d) = g0 exp(-d / sigma)
HHN    lambda0, sigma    lambda(d) = lambda0 exp(-d^2 / (2 sigma^2))
HHR    lambda0, sigma, z lambda(d) = lambda0 (1 - exp(-(d / sigma)^-z))
HEX    lambda0, sigma    lambda(d) = lambda0 exp(-d / sigma)
=====  ================  ============================================

The first three give a probability per occasion; the hazard forms give an
expected number of detections (cumulative hazard). A probability ``g`` is
turned into a hazard with ``-log(1 - g)`` and a hazard into a probability with
``1 - exp(-lambda)``. Links are those of ``secr``: log for ``D``,
``lambda0``, ``sigma`` and ``z``; logit for ``g0``.
"""

from __future__ import annotations

import numpy as np

from irbis.core.errors import BadInputError

__all__ = [
    "DETECTFNS",
    "LINKS",
    "detect_params",
    "is_hazard",
    "LINK_CHOICES",
    "dlink_dreal",
    "dreal_deta",
    "link",
    "link_from",
    "link_to",
    "log_shape",
    "unlink",
]

DETECTFNS: dict[str, tuple[str, ...]] = {
    "HN": ("g0", "sigma"),
    "HR": ("g0", "sigma", "z"),
    "EX": ("g0", "sigma"),
    "HHN": ("lambda0", "sigma"),
    "HHR": ("lambda0", "sigma", "z"),
    "HEX": ("lambda0", "sigma"),
}

LINKS: dict[str, str] = {
    "D": "log",
    "g0": "logit",
    "lambda0": "log",
    "sigma": "log",
    "z": "log",
    "w": "log",
}

#: links a parameter may take instead of its default (secr's ``link`` argument)
LINK_CHOICES: dict[str, tuple[str, ...]] = {
    "D": ("log", "identity"),
    "g0": ("logit", "cloglog", "log", "identity"),
    "lambda0": ("log", "identity"),
    "sigma": ("log", "identity"),
    "z": ("log", "identity"),
    "w": ("log", "identity"),
}


def _check(detectfn: str) -> str:
    code = detectfn.upper()
    if code not in DETECTFNS:
        raise BadInputError(
            "detectfn", f"unknown detection function {detectfn!r}", f"use one of {list(DETECTFNS)}"
        )
    return code


def detect_params(detectfn: str) -> tuple[str, ...]:
    """Names of the detection parameters of a detection function.

    Parameters
    ----------
    detectfn:
        Code such as ``"HN"`` or ``"HHN"``.

    Returns
    -------
    tuple of str
        E.g. ``("lambda0", "sigma")``.
    """
    return DETECTFNS[_check(detectfn)]


def is_hazard(detectfn: str) -> bool:
    """Whether the function gives a hazard (expected detections), not a probability.

    Parameters
    ----------
    detectfn:
        Detection function code.

    Returns
    -------
    bool
    """
    return _check(detectfn).startswith("HH") or _check(detectfn) == "HEX"


def link_to(name: str, value: np.ndarray | float) -> np.ndarray:
    """Real value(s) to the scale of the link ``name``.

    Parameters
    ----------
    name:
        ``log``, ``logit``, ``cloglog`` or ``identity``.
    value:
        Real-scale value(s).

    Returns
    -------
    numpy.ndarray
    """
    v = np.asarray(value, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "log":
            return np.log(v)
        if name == "logit":
            return np.log(v) - np.log1p(-v)
        if name == "cloglog":
            return np.log(-np.log1p(-v))
        if name == "identity":
            return v
    raise BadInputError("link", f"unknown link {name!r}", "use log, logit, cloglog or identity")


def link_from(name: str, eta: np.ndarray | float) -> np.ndarray:
    """Link-scale value(s) of the link ``name`` back to the real scale.

    Parameters
    ----------
    name:
        ``log``, ``logit``, ``cloglog`` or ``identity``.
    eta:
        Link-scale value(s).

    Returns
    -------
    numpy.ndarray
    """
    e = np.asarray(eta, dtype=float)
    with np.errstate(over="ignore"):
        if name == "log":
            return np.exp(e)
        if name == "logit":
            return 1.0 / (1.0 + np.exp(-e))
        if name == "cloglog":
            return -np.expm1(-np.exp(e))
        if name == "identity":
            return e
    raise BadInputError("link", f"unknown link {name!r}", "use log, logit, cloglog or identity")


def dreal_deta(name: str, eta: np.ndarray | float) -> np.ndarray:
    """Derivative of the real value with respect to the link-scale value.

    Parameters
    ----------
    name:
        Link name.
    eta:
        Link-scale value(s).

    Returns
    -------
    numpy.ndarray
    """
    e = np.asarray(eta, dtype=float)
    with np.errstate(over="ignore"):
        if name == "log":
            return np.exp(e)
        if name == "logit":
            p = 1.0 / (1.0 + np.exp(-e))
            return p * (1.0 - p)
        if name == "cloglog":
            return np.exp(e - np.exp(e))
        if name == "identity":
            return np.ones_like(e)
    raise BadInputError("link", f"unknown link {name!r}", "use log, logit, cloglog or identity")


def dlink_dreal(name: str, value: np.ndarray | float) -> np.ndarray:
    """Derivative of the link-scale value with respect to the real value.

    Parameters
    ----------
    name:
        Link name.
    value:
        Real value(s).

    Returns
    -------
    numpy.ndarray
    """
    v = np.asarray(value, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "log":
            return 1.0 / v
        if name == "logit":
            return 1.0 / (v * (1.0 - v))
        if name == "cloglog":
            return 1.0 / ((1.0 - v) * -np.log1p(-v))
        if name == "identity":
            return np.ones_like(v)
    raise BadInputError("link", f"unknown link {name!r}", "use log, logit, cloglog or identity")


def link(param: str, value: np.ndarray | float) -> np.ndarray:
    """Real value to the link scale (log or logit).

    Parameters
    ----------
    param:
        Real parameter name.
    value:
        Real-scale value(s).

    Returns
    -------
    numpy.ndarray
    """
    v = np.asarray(value, dtype=float)
    if LINKS[param] == "logit":
        return np.log(v) - np.log1p(-v)
    return np.log(v)


def unlink(param: str, eta: np.ndarray | float) -> np.ndarray:
    """Link-scale value(s) back to the real scale.

    Parameters
    ----------
    param:
        Real parameter name.
    eta:
        Link-scale value(s).

    Returns
    -------
    numpy.ndarray
    """
    e = np.asarray(eta, dtype=float)
    with np.errstate(over="ignore"):
        if LINKS[param] == "logit":
            return 1.0 / (1.0 + np.exp(-e))
        return np.exp(e)


def log_shape(
    detectfn: str,
    d2: np.ndarray,
    sigma: np.ndarray | float,
    z: np.ndarray | float | None = None,
    d: np.ndarray | None = None,
) -> np.ndarray:
    """Logarithm of the distance part of the detection function.

    The full function is ``g0 * exp(log_shape)`` or ``lambda0 * exp(log_shape)``.

    Parameters
    ----------
    detectfn:
        Detection function code.
    d2:
        Squared distances (any shape).
    sigma:
        Spatial scale, broadcastable to ``d2``.
    z:
        Shape of the hazard-rate forms (HR, HHR), broadcastable to ``d2``.
    d:
        Distances, if already computed (else ``sqrt(d2)``).

    Returns
    -------
    numpy.ndarray
        ``log f(d)``, with ``f(0) = 1``.
    """
    code = _check(detectfn)
    if code in ("HN", "HHN"):
        return -d2 / (2.0 * np.asarray(sigma) ** 2)
    if d is None:
        d = np.sqrt(d2)
    if code in ("EX", "HEX"):
        return -d / np.asarray(sigma)
    if z is None:
        raise BadInputError("detectfn", f"{code} needs the shape parameter z")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # t = (d / sigma)^-z; log(1 - exp(-t)), with log t where t is tiny
        logt = -np.asarray(z) * (np.log(d) - np.log(np.asarray(sigma)))
        exact = np.log(-np.expm1(-np.exp(np.minimum(logt, 700.0))))
        return np.where(logt < -30.0, logt, exact)
