"""Simulate SECR data: animals on a habitat mask, detections at traps.

Used for coverage checks, for ``irbis demo`` and for survey design
(:mod:`irbis.stats.design`). The model is the one :mod:`irbis.stats.secr`
fits:

- activity centres: a Poisson process of density ``D`` (animals per hectare;
  one value, or one per mask point) over the mask cells, each centre placed
  uniformly within its cell; or a fixed number ``N`` of centres;
- detections per animal, trap and occasion with trap usage ``u``:

  * ``count`` (Poisson): mean ``u * h`` (``u * lambda(d)`` for HHN, HHR,
    HEX; ``u * -log(1 - g(d))`` for HN, HR, EX, as current ``secr`` does);
  * ``count`` with binomial size ``B``: Binomial(B, 1 - exp(-u h));
  * ``proximity``: Bernoulli(1 - exp(-u h));
  * ``multi``: caught with probability ``1 - exp(-sum_k u_k h_k)``, at trap
    ``k`` with probability proportional to ``u_k h_k``;

  where ``h`` is the hazard: ``lambda(d)``, or ``-log(1 - g(d))``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from irbis.core.errors import BadInputError
from irbis.stats.detectfn import detection_value, is_hazard
from irbis.stats.secr_data import DETECTORS, CaptureHistory, Mask, Traps

__all__ = ["detection_rate", "simulate_capthist", "simulate_popn"]


def detection_rate(detectfn: str, d: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
    """Detection function value at distances ``d``: ``lambda(d)`` or ``g(d)``.

    Parameters
    ----------
    detectfn:
        Any code of :data:`irbis.stats.detectfn.DETECTFNS`.
    d:
        Distances, metres.
    params:
        ``lambda0`` (hazard forms) or ``g0``, ``sigma``, and ``z`` or ``w``
        for the three-parameter functions.

    Returns
    -------
    numpy.ndarray
        Expected count (hazard forms) or probability, same shape as ``d``.
    """
    return detection_value(detectfn.upper(), d, dict(params))


def simulate_popn(
    mask: Mask,
    D: float | np.ndarray | None = None,
    *,
    N: int | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Activity centres on a mask.

    Parameters
    ----------
    mask:
        Habitat mask (cells of side ``mask.spacing`` centred on its points).
    D:
        Density, animals per hectare: one value or one per mask point. The
        number of animals is Poisson with mean ``sum(D) * cell area``.
    N:
        Fixed number of animals instead (spread in proportion to ``D`` if
        given, else uniformly).
    rng:
        Generator or seed.

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` coordinates, metres.
    """
    rng = np.random.default_rng(rng)
    if D is None and N is None:
        raise BadInputError("simulate_popn", "give a density D or a number N")
    dens = np.broadcast_to(np.asarray(1.0 if D is None else D, dtype=float), (mask.n_points,))
    if np.any(dens < 0) or not np.all(np.isfinite(dens)):
        raise BadInputError("simulate_popn", "density must be finite and >= 0")
    if N is None:
        N = int(rng.poisson(float(dens.sum()) * mask.cell_area))
    w = dens / dens.sum() if dens.sum() > 0 else np.full(mask.n_points, 1 / mask.n_points)
    cells = rng.choice(mask.n_points, size=N, p=w)
    jitter = (rng.random((N, 2)) - 0.5) * mask.spacing
    return mask.xy[cells] + jitter


def simulate_capthist(
    traps: Traps,
    centres: np.ndarray,
    detectfn: str = "HHN",
    params: Mapping[str, float] | None = None,
    *,
    detector: str = "count",
    n_occasions: int = 1,
    binom_size: int = 0,
    rng: np.random.Generator | int | None = None,
    keep_undetected: bool = False,
) -> CaptureHistory | tuple[np.ndarray, np.ndarray]:
    """Detections of animals at traps.

    Parameters
    ----------
    traps:
        Detector layout (its usage, if any, fixes the number of occasions).
    centres:
        ``(N, 2)`` activity centres (e.g. from :func:`simulate_popn`).
    detectfn:
        Detection function code.
    params:
        Detection parameters, e.g. ``{"lambda0": 1.0, "sigma": 5000}``; each a
        number or one value per trap.
    detector:
        ``proximity``, ``count`` or ``multi``.
    n_occasions:
        Occasions when the traps have no usage.
    binom_size:
        ``count`` detectors: 0 for Poisson counts, else the binomial size.
    rng:
        Generator or seed.
    keep_undetected:
        Return the full ``(N, S, K)`` counts and the centres instead of a
        capture history of the detected animals.

    Returns
    -------
    CaptureHistory
        Detected animals (IDs ``"1"``, ``"2"``..., in order of the centres), or
        ``(counts, centres)`` with ``keep_undetected``.
    """
    rng = np.random.default_rng(rng)
    if detector not in DETECTORS:
        raise BadInputError("detector", f"unknown detector {detector!r}", f"use {DETECTORS}")
    params = dict(params or {})
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    S = traps.usage.shape[1] if traps.usage is not None else n_occasions
    u = traps.usage_matrix(S)  # (K, S)
    d = np.sqrt(((centres[:, None, :] - traps.xy[None, :, :]) ** 2).sum(-1))  # (N, K)
    rate = detection_rate(detectfn, d, params)
    hazard = rate if is_hazard(detectfn) else -np.log1p(-np.minimum(rate, 1 - 1e-12))
    N, K = d.shape
    counts = np.zeros((N, S, K), dtype=np.int64)
    for s in range(S):
        uh = hazard * u[:, s][None, :]
        if detector == "count" and binom_size == 0:
            mean = uh  # Poisson mean = usage x hazard, as the likelihood (and secr)
            counts[:, s, :] = rng.poisson(mean)
        elif detector == "count":
            counts[:, s, :] = rng.binomial(binom_size, -np.expm1(-uh))
        elif detector == "proximity":
            counts[:, s, :] = rng.random((N, K)) < -np.expm1(-uh)
        else:  # multi
            tot = uh.sum(axis=1)
            caught = rng.random(N) < -np.expm1(-tot)
            for i in np.flatnonzero(caught):
                k = rng.choice(K, p=uh[i] / tot[i])
                counts[i, s, k] = 1
    if keep_undetected:
        return counts, centres
    seen = counts.reshape(N, -1).sum(axis=1) > 0
    if not seen.any():
        raise BadInputError(
            "simulation", "no animal was detected", "raise density or detection parameters"
        )
    ids = [str(i + 1) for i in np.flatnonzero(seen)]
    return CaptureHistory(
        ids=ids, counts=counts[seen], traps=traps, detector=detector, binom_size=binom_size
    )
