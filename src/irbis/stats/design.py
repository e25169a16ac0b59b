"""Survey design for SECR: what a camera layout is expected to yield.

Given a proposed layout, a habitat mask, an expected density and detection
parameters, :func:`expected_yield` computes (exactly, by summing over the
mask) the expected number of animals detected ``E(n)``, detections,
recaptures ``E(r)`` (detections beyond each animal's first) and animals
detected at two or more cameras, and the rule-of-thumb relative standard
error of D, ``RSE ~ 1 / sqrt(min(E(n), E(r)))`` (Efford & Boulanger 2019).
:func:`simulate_design` checks it by simulating and fitting surveys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from irbis.stats.detectfn import is_hazard
from irbis.stats.secr_data import Mask, Traps
from irbis.stats.simulate import detection_rate, simulate_capthist, simulate_popn

__all__ = ["expected_yield", "simulate_design"]


def expected_yield(
    traps: Traps,
    mask: Mask,
    D: float | np.ndarray,
    detectfn: str = "HHN",
    params: Mapping[str, float] | None = None,
    *,
    detector: str = "count",
    n_occasions: int = 1,
    binom_size: int = 0,
) -> dict[str, float]:
    """Expected numbers of animals, detections and recaptures for a design.

    Parameters
    ----------
    traps:
        Proposed layout (usage, if any, sets the occasions and effort).
    mask:
        Habitat mask around it.
    D:
        Density, animals per hectare (one value or one per mask point).
    detectfn:
        Detection function code.
    params:
        Detection parameters, e.g. ``{"lambda0": 1.0, "sigma": 5000}``.
    detector:
        ``proximity``, ``count`` or ``multi``.
    n_occasions:
        Occasions when the traps have no usage.
    binom_size:
        ``count`` detectors: 0 Poisson, else binomial size.

    Returns
    -------
    dict
        ``N`` (expected animals in the mask), ``n`` (detected), ``detections``,
        ``recaptures``, ``movers`` (animals at >= 2 cameras), ``esa_km2``
        (effective sampling area) and ``rse_D`` (rule of thumb).
    """
    params = dict(params or {})
    S = traps.usage.shape[1] if traps.usage is not None else n_occasions
    u = traps.usage_matrix(S)  # (K, S)
    dens = np.broadcast_to(np.asarray(D, dtype=float), (mask.n_points,))
    w = dens * mask.cell_area  # expected animals per cell
    d = np.sqrt(((mask.xy[:, None, :] - traps.xy[None, :, :]) ** 2).sum(-1))  # (M, K)
    rate = detection_rate(detectfn, d, params)
    h = rate if is_hazard(detectfn) else -np.log1p(-np.minimum(rate, 1 - 1e-12))
    B = binom_size if (detector == "count" and binom_size > 0) else 1
    ueff = u.sum(axis=1) * B
    pdot = -np.expm1(-(h @ ueff))
    if detector == "count" and binom_size == 0:
        per_trap = h * u.sum(axis=1)  # Poisson mean counts: usage x hazard
        q = -np.expm1(-(h * u.sum(axis=1)))
    elif detector in ("count", "proximity"):
        per_trap = np.zeros_like(h)
        for s in range(S):
            per_trap += B * -np.expm1(-h * u[:, s])
        q = -np.expm1(-(h * ueff))
    else:  # multi
        per_trap = np.zeros_like(h)
        for s in range(S):
            uh = h * u[:, s]
            tot = uh.sum(axis=1, keepdims=True)
            per_trap += np.where(tot > 0, -np.expm1(-tot) * uh / np.where(tot > 0, tot, 1), 0)
        q = -np.expm1(-(h * ueff))  # approximation: ignores competition between traps
    det = per_trap.sum(axis=1)
    log_none = np.log1p(-np.minimum(q, 1 - 1e-15))
    none = np.exp(log_none.sum(axis=1))
    only_one = (q / np.exp(log_none) * none[:, None]).sum(axis=1)
    movers = np.clip(1 - none - only_one, 0, 1)
    En = float(w @ pdot)
    Edet = float(w @ det)
    Er = Edet - En
    return {
        "N": float(w.sum()),
        "n": En,
        "detections": Edet,
        "recaptures": Er,
        "movers": float(w @ movers),
        "esa_km2": float(pdot.sum() * mask.cell_area / 100.0),
        "rse_D": 1 / math.sqrt(min(En, Er)) if min(En, Er) > 0 else math.inf,
    }


def simulate_design(
    traps: Traps,
    mask: Mask,
    D: float,
    detectfn: str = "HHN",
    params: Mapping[str, float] | None = None,
    *,
    detector: str = "count",
    n_occasions: int = 1,
    n_sims: int = 20,
    rng: np.random.Generator | int | None = None,
) -> dict[str, Any]:
    """Simulate and fit surveys of a design: empirical RSE, bias and coverage of D.

    Parameters
    ----------
    traps, mask, D, detectfn, params, detector, n_occasions:
        As :func:`expected_yield` (``D`` a single density, animals per ha).
    n_sims:
        Number of simulated surveys.
    rng:
        Generator or seed.

    Returns
    -------
    dict
        ``n_sims``, ``mean_n``, ``mean_D``, ``rel_bias``, ``rse_D`` (SD of the
        estimates over the truth), ``mean_model_rse`` (mean SE/estimate),
        ``coverage`` (95% CI).
    """
    from irbis.stats import secr

    rng = np.random.default_rng(rng)
    ests, rses, hits, ns = [], [], 0, []
    first = "lambda0" if is_hazard(detectfn) else "g0"
    params = dict(params or {})
    for _ in range(n_sims):
        centres = simulate_popn(mask, D, rng=rng)
        if len(centres) == 0:
            continue
        try:
            ch = simulate_capthist(
                traps, centres, detectfn, params, detector=detector,
                n_occasions=n_occasions, rng=rng,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - a survey with no detections: skip it
            continue
        start = {"D": math.log(D), "sigma": math.log(params["sigma"])}
        if first == "lambda0":
            start["lambda0"] = math.log(params["lambda0"])
        fit = secr.fit(ch, mask, detectfn=detectfn, start=start)
        dd = fit.density()["per_ha"]
        ests.append(dd["estimate"])
        rses.append(dd["se"] / dd["estimate"])
        hits += dd["lcl"] <= D <= dd["ucl"]
        ns.append(ch.n)
    e = np.array(ests)
    k = len(e)
    return {
        "n_sims": k,
        "mean_n": float(np.mean(ns)) if k else math.nan,
        "mean_D": float(e.mean()) if k else math.nan,
        "rel_bias": float(e.mean() / D - 1) if k else math.nan,
        "rse_D": float(e.std(ddof=1) / D) if k > 1 else math.nan,
        "mean_model_rse": float(np.mean(rses)) if k else math.nan,
        "coverage": hits / k if k else math.nan,
    }
