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
CHN    g0, sigma, z      g(d) = 1 - (1 - g0 exp(-d^2 / (2 sigma^2)))^z
WEX    g0, sigma, w      g(d) = g0 for d < w, g0 exp(-(d - w) / sigma) beyond
ANN    g0, sigma, w      g(d) = g0 exp(-(d - w)^2 / (2 sigma^2))
CLN    g0, sigma, z      g(d) = g0 (1 - F_lognormal(d)), mean sigma, SD z
CG     g0, sigma, z      g(d) = g0 (1 - G(d; shape z, scale sigma / z))
HAN    lambda0, sigma, w lambda(d) = lambda0 exp(-(d - w)^2 / (2 sigma^2))
HCG    lambda0, sigma, z lambda(d) = lambda0 (1 - G(d; shape z, scale sigma / z))
HVP    lambda0, sigma, z lambda(d) = lambda0 exp(-(d / sigma)^z)
=====  ================  ============================================

The probability forms give a probability per occasion; the hazard forms
(``H..``) an expected number of detections (cumulative hazard). A
probability ``g`` is turned into a hazard with ``-log(1 - g)`` and a hazard
into a probability with ``1 - exp(-lambda)``. Links are those of ``secr``:
log for ``D``, ``lambda0``, ``sigma``, ``z`` and ``w``; logit for ``g0``.

The forms are those secr's likelihood evaluates (its C++ ``makegkPointcpp``):

- CLN: the detection distance threshold is log-normal with mean ``sigma``
  and standard deviation ``z``: ``sdlog = sqrt(log(1 + z^2/sigma^2))``,
  ``meanlog = log(sigma) - sdlog^2 / 2``;
- CG and HCG: ``G`` is the gamma distribution function with shape ``z`` and
  scale ``sigma / z`` (mean ``sigma``);
- CHN: secr compounds ``g0 exp(-d^2/(2 sigma^2))`` only when ``round(z) > 1``
  (for ``z < 1.5`` it is HN); its help page writes ``g0 [1 - (1 -
  exp(-d^2/(2 sigma^2)))^z]``, which is the same where ``g0 = 1``. Its
  hazard is ``z`` times HN's, ``-z log(1 - g0 exp(-d^2/(2 sigma^2)))``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaincc, log_ndtr

from irbis.core.errors import BadInputError

__all__ = [
    "DETECTFNS",
    "LINKS",
    "detect_params",
    "is_hazard",
    "HAZARD_FNS",
    "LINK_CHOICES",
    "LOG_FLOOR",
    "detection_value",
    "shape_derivs",
    "third_param",
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
    "CHN": ("g0", "sigma", "z"),
    "WEX": ("g0", "sigma", "w"),
    "ANN": ("g0", "sigma", "w"),
    "CLN": ("g0", "sigma", "z"),
    "CG": ("g0", "sigma", "z"),
    "HAN": ("lambda0", "sigma", "w"),
    "HCG": ("lambda0", "sigma", "z"),
    "HVP": ("lambda0", "sigma", "z"),
}

#: the hazard forms (lambda0): the rest give a probability (g0)
HAZARD_FNS = ("HHN", "HHR", "HEX", "HAN", "HCG", "HVP")

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
    return _check(detectfn) in HAZARD_FNS


def third_param(detectfn: str) -> str | None:
    """The shape parameter of a three-parameter function (``z`` or ``w``), else None.

    Parameters
    ----------
    detectfn:
        Detection function code.

    Returns
    -------
    str or None
    """
    ps = DETECTFNS[_check(detectfn)]
    return ps[2] if len(ps) > 2 else None


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


#: floor of ``log f(d)`` where the distance part underflows (CLN, CG, HCG tails)
LOG_FLOOR = -1e4


def shape_derivs(
    detectfn: str,
    S: np.ndarray,
    d2: np.ndarray,
    sigma: np.ndarray | float,
    third: np.ndarray | float | None = None,
    d: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Derivatives of ``log f(d)`` with respect to ``log sigma`` and the log shape parameter.

    Analytic for HN, EX, HR, ANN, WEX and HVP (and their hazard forms);
    central differences on the log scale for CLN, CG and HCG, whose
    derivatives in the shape parameter have no closed form. CHN's ``z``
    does not enter ``f`` (it multiplies the hazard): its second derivative
    is returned as zeros.

    Parameters
    ----------
    detectfn:
        Detection function code.
    S:
        ``log_shape`` at these parameters.
    d2:
        Squared distances.
    sigma:
        Spatial scale (broadcastable to ``d2``).
    third:
        ``z`` or ``w`` (broadcastable), for three-parameter functions.
    d:
        Distances, if computed.

    Returns
    -------
    dsigma, dthird:
        Arrays shaped as ``S``; ``dthird`` is None for two-parameter functions.
    """
    code = _check(detectfn)
    if code in ("HN", "HHN"):
        return -2.0 * S, None
    if code in ("EX", "HEX"):
        return -S, None
    if code == "CHN":
        return -2.0 * S, np.zeros_like(S)
    if d is None:
        d = np.sqrt(d2)
    sig = np.asarray(sigma, dtype=float)
    th = np.asarray(third, dtype=float)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
        if code in ("HR", "HHR"):
            logt = -th * (np.log(d) - np.log(sig))
            t = np.exp(np.minimum(logt, 700.0))
            ratio = np.where(logt > 6.5, t * np.exp(-t), t / np.expm1(t))
            ratio = np.where(t > 700.0, 0.0, np.where(logt < -30.0, 1.0, ratio))
            return th * ratio, np.where(ratio > 0, logt * ratio, 0.0)
        if code in ("ANN", "HAN"):
            return -2.0 * S, th * (d - th) / sig**2
        if code == "WEX":
            beyond = d >= th
            return np.where(beyond, -S, 0.0), np.where(beyond, th / sig, 0.0)
        if code == "HVP":
            ld = np.log(d) - np.log(sig)
            return -th * S, np.where(d > 0, S * th * ld, 0.0)
        h = 1e-5
        up = log_shape(code, d2, sig * math.exp(h), th, d=d)
        dn = log_shape(code, d2, sig * math.exp(-h), th, d=d)
        ds = (up - dn) / (2 * h)
        up = log_shape(code, d2, sig, th * math.exp(h), d=d)
        dn = log_shape(code, d2, sig, th * math.exp(-h), d=d)
        dz = (up - dn) / (2 * h)
        floor = S <= LOG_FLOOR
        return np.where(floor, 0.0, ds), np.where(floor, 0.0, dz)


def detection_value(
    detectfn: str, d: np.ndarray, params: dict[str, float] | None = None, **kw: float
) -> np.ndarray:
    """The detection function at distances ``d``: ``lambda(d)`` or ``g(d)``.

    Parameters
    ----------
    detectfn:
        Detection function code.
    d:
        Distances.
    params:
        Real parameter values by name (``g0``/``lambda0``, ``sigma``, ``z``/``w``):
        numbers, or arrays broadcasting against ``d`` (e.g. one per trap).
    **kw:
        Parameter values given as keywords instead.

    Returns
    -------
    numpy.ndarray
        Expected detections (hazard forms) or probability per occasion.
    """
    code = _check(detectfn)
    p = dict(params or {}, **kw)
    names = DETECTFNS[code]
    for need in names:
        if need not in p:
            raise BadInputError("params", f"{code} needs {need}", f"give {need}")
    d = np.asarray(d, dtype=float)
    third = np.asarray(p[names[2]], dtype=float) if len(names) > 2 else None
    sigma = np.asarray(p["sigma"], dtype=float)
    f = np.exp(log_shape(code, d * d, sigma, third, d=d))
    f = np.where(f <= math.exp(LOG_FLOOR), 0.0, f)
    first = np.asarray(p[names[0]], dtype=float)
    if code == "CHN":
        assert third is not None
        with np.errstate(divide="ignore"):
            compound = -np.expm1(third * np.log1p(-first * f))
        return np.where(np.round(third) > 1, compound, first * f)
    return first * f


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
    if code in ("HN", "HHN", "CHN"):
        return -d2 / (2.0 * np.asarray(sigma) ** 2)
    if d is None:
        d = np.sqrt(d2)
    if code in ("EX", "HEX"):
        return -d / np.asarray(sigma)
    if z is None:
        raise BadInputError("detectfn", f"{code} needs its shape parameter {third_param(code)}")
    sig, third = np.asarray(sigma, dtype=float), np.asarray(z, dtype=float)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
        if code in ("ANN", "HAN"):
            return -((d - third) ** 2) / (2.0 * sig**2)
        if code == "WEX":
            return np.where(d < third, 0.0, -(d - third) / sig)
        if code == "HVP":
            return -np.exp(third * (np.log(d) - np.log(sig)))
        if code == "CLN":
            sdlog = np.sqrt(np.log1p(third**2 / sig**2))
            meanlog = np.log(sig) - sdlog**2 / 2.0
            return np.maximum(log_ndtr(-(np.log(d) - meanlog) / sdlog), LOG_FLOOR)
        if code in ("CG", "HCG"):
            return np.maximum(np.log(gammaincc(third, d * third / sig)), LOG_FLOOR)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # t = (d / sigma)^-z; log(1 - exp(-t)), with log t where t is tiny
        logt = -np.asarray(z) * (np.log(d) - np.log(np.asarray(sigma)))
        exact = np.log(-np.expm1(-np.exp(np.minimum(logt, 700.0))))
        return np.where(logt < -30.0, logt, exact)
