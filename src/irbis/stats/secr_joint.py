"""Camera + genetic SECR: one density from camera traps and scat searches together.

Two detector types survey one population of activity centres (Poisson, one
density ``D``), each with its own detection parameters:

- **cameras**: point detectors (``proximity``, ``count`` or ``multi``; the
  likelihood of :class:`irbis.stats.secr.SecrLikelihood`, equal to R secr's);
- **searches**: scat searches over polygons or along transects
  (:mod:`irbis.stats.secr_polygon`; secr's ``polygon``/``transect`` detectors).

Two ways to join them:

``linked=True`` (identities shared)
    A genotype linked to a photo-identified individual is one animal with one
    activity centre. Given the centre ``m`` the two channels are independent,
    so ``Pr(omega_i | m) = Pr(camera history_i | m) * Pr(search history_i |
    m)`` (an animal missed by one channel has its all-zero history there),
    ``pdot(m) = 1 - q_camera(m) q_search(m)``, and the full likelihood
    (Poisson ``n`` animals detected by either) is that of one session.
    Identical camera histories of animals with no search detection give the
    multinomial term ``-sum log n_w!`` as secr's.

``linked=False`` (secr's multi-session trick)
    The genetic and photographic identities are not matched: the two are
    treated as independent samples of populations with the same density,
    ``log L = log L_camera(D, theta_camera) + log L_search(D, theta_search)``.
    This is exactly R secr's two-session fit with ``D`` shared::

        ch <- MS.capthist(camera = camCH, scats = scatCH)   # detectors differ by session
        secr.fit(ch, mask = list(mask, mask), detectfn = "HHN",
                 model = list(D ~ 1, lambda0 ~ session, sigma ~ session))

    (secr's ``lambda0.session`` coefficients are differences on the log
    scale; the maximised likelihood and ``D`` are the same).

Coefficients are on the log scale: ``D`` (animals per hectare), then
``lambda0.camera``, ``sigma.camera`` (``g0.camera`` logit for HN/HR/EX
cameras), then ``lambda0.search``, ``sigma.search``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import gammaln

from irbis.core.errors import BadInputError
from irbis.stats.secr import SecrLikelihood, rpsv
from irbis.stats.secr_data import CaptureHistory, Mask
from irbis.stats.secr_polygon import (
    AreaSearchHistory,
    PolygonFit,
    PolygonLikelihood,
    fit_checked_quadrature,
    full_loglik,
    maximise,
    sigma_guess,
)

__all__ = ["JointLikelihood", "JointSurvey", "fit_camera_only", "fit_joint", "simulate_joint"]


@dataclass
class JointSurvey:
    """Camera capture histories and search detections of one survey.

    Parameters
    ----------
    camera:
        Camera-trap capture histories (animal names as in the catalogue).
    search:
        Scat-search detections; a genotype linked to a photo-identified
        animal carries that animal's name, so equal names are one animal.
    """

    camera: CaptureHistory
    search: AreaSearchHistory

    def summary(self) -> dict[str, Any]:
        """Animals per channel and in both."""
        cam, gen = set(self.camera.ids), set(self.search.ids)
        return {
            "camera_animals": len(cam),
            "search_animals": len(gen),
            "both": len(cam & gen),
            "animals": len(cam | gen),
            "camera_detectors": self.camera.traps.n_traps,
            "search_parts": self.search.areas.n_parts,
            "search_detections": len(self.search.xy),
            "camera_detector": self.camera.detector,
            "search_detector": self.search.detector,
        }


class JointLikelihood:
    """Full log-likelihood of camera + search data with one density.

    Parameters
    ----------
    survey:
        Camera and search detections.
    mask:
        Habitat mask (shared).
    camera_detectfn, search_detectfn:
        Detection functions (the search needs a hazard form: HHN, HEX, HHR).
    linked:
        Whether equal animal names in the two channels are the same animal
        (see the module notes).
    **quad:
        ``max_edge``/``order`` of the search quadrature.

    Attributes
    ----------
    names:
        Coefficient names.
    """

    def __init__(
        self,
        survey: JointSurvey,
        mask: Mask,
        camera_detectfn: str = "HHN",
        search_detectfn: str = "HHN",
        *,
        linked: bool = True,
        **quad: Any,
    ) -> None:
        self.survey = survey
        self.mask = mask
        self.linked = linked
        self.cam = SecrLikelihood(survey.camera, mask, None, camera_detectfn, "full")
        if self.cam.names[0] != "D":
            raise BadInputError("model", "the camera likelihood has no density coefficient")
        self.search = PolygonLikelihood(survey.search, mask, search_detectfn, **quad)
        self.n_cam = len(self.cam.names) - 1
        self.names = (
            ["D"]
            + [f"{n}.camera" for n in self.cam.names[1:]]
            + [f"{n}.search" for n in self.search.names[1:]]
        )
        self.npar = len(self.names)
        cam_ids, gen_ids = list(survey.camera.ids), list(survey.search.ids)
        self.ids = cam_ids + [g for g in gen_ids if g not in set(cam_ids)]
        self.n = len(self.ids) if linked else len(cam_ids) + len(gen_ids)
        pos = {a: i for i, a in enumerate(self.ids)}
        self.cam_rows = np.array([pos[a] for a in cam_ids], dtype=int)
        self.gen_rows = np.array([pos[a] for a in gen_ids], dtype=int)
        # identical camera histories of animals no search found: secr's multinomial term
        only_cam = [i for i, a in enumerate(cam_ids) if a not in set(gen_ids)]
        if only_cam:
            flat = survey.camera.counts[only_cam].reshape(len(only_cam), -1)
            _, mult = np.unique(flat, axis=0, return_counts=True)
            self.log_multinomial = -float(gammaln(mult + 1.0).sum())
        else:
            self.log_multinomial = 0.0

    def split(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients of the camera and of the search likelihood (``D`` in both)."""
        beta = np.asarray(beta, dtype=float)
        b_cam = beta[: 1 + self.n_cam]
        b_gen = np.concatenate([beta[:1], beta[1 + self.n_cam :]])
        return b_cam, b_gen

    def loglik(self, beta: np.ndarray) -> float:
        """Full log-likelihood at ``beta``.

        Parameters
        ----------
        beta:
            Coefficients (see :attr:`names`).

        Returns
        -------
        float
        """
        b_cam, b_gen = self.split(beta)
        if not self.linked:
            return float(self.cam.loglik(b_cam) + self.search.loglik(b_gen))
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            lp_c, lq_c = self.cam.components(b_cam)
            lp_s, lq_s = self.search.components(self.search.detection_values(b_gen))
            logpr = np.empty((len(self.ids), self.mask.n_points))
            logpr[:] = lq_c[None, :] + lq_s[None, :]
            logpr[self.cam_rows] += lp_c - lq_c[None, :]
            logpr[self.gen_rows] += lp_s - lq_s[None, :]
            ll = full_loglik(logpr, lq_c + lq_s, self.cam.log_d(b_cam), self.mask.cell_area)
        return ll + self.log_multinomial

    def __call__(self, beta: np.ndarray) -> float:
        """Negative log-likelihood for minimisers (``inf`` where undefined)."""
        ll = self.loglik(beta)
        return -ll if np.isfinite(ll) else np.inf

    def start_values(self) -> np.ndarray:
        """Starting coefficients from each channel's own rough start."""
        c = np.asarray(self.cam.start_values(), dtype=float)
        s = self.search.start_values()
        return np.concatenate([c[:1], c[1:], s[1:]])


def fit_joint(
    survey: JointSurvey,
    mask: Mask,
    camera_detectfn: str = "HHN",
    search_detectfn: str = "HHN",
    *,
    linked: bool = True,
    start: Sequence[float] | None = None,
    **quad: Any,
) -> PolygonFit:
    """Fit ``D~1`` with detection parameters per detector type (cameras, searches).

    Parameters
    ----------
    survey:
        Camera and search detections.
    mask:
        Habitat mask.
    camera_detectfn, search_detectfn:
        Detection functions.
    linked:
        Equal names are one animal (genotypes linked to photo IDs); ``False``
        for secr's multi-session trick with shared density.
    start:
        Starting coefficients (log scale).
    **quad:
        Search quadrature settings.

    Returns
    -------
    PolygonFit
        ``real()["D"]`` is the one density (per hectare; per 100 km^2 too).
    """
    extra = {"linked": linked, "survey": survey.summary()}
    x0 = None if start is None else np.asarray(start, float)

    def make(edge: float | None) -> JointLikelihood:
        q = dict(quad) if edge is None else {**quad, "max_edge": edge}
        return JointLikelihood(
            survey, mask, camera_detectfn, search_detectfn, linked=linked, **q
        )  # fmt: skip

    if "max_edge" in quad:
        lik = make(None)
        return maximise(lik, lik.start_values() if x0 is None else x0, lik.names, lik.n, extra)
    n = len(set(survey.camera.ids) | set(survey.search.ids)) if linked else (
        survey.camera.n + survey.search.n)  # fmt: skip
    # pieces short next to sigma: the scats' spread, else the cameras' (rpsv)
    sigma = sigma_guess(survey.search, mask.spacing)
    if not any(np.bincount(survey.search.animal) > 1):
        cam = rpsv(survey.camera)
        sigma = max(cam, mask.spacing / 2) if np.isfinite(cam) and cam > 0 else sigma
    return fit_checked_quadrature(make, x0, mask.spacing, 2 * sigma, n, extra)


def fit_camera_only(
    camera: CaptureHistory, mask: Mask, detectfn: str = "HHN", start: Sequence[float] | None = None
) -> PolygonFit:
    """The camera data alone (``D~1``), maximised the same way, for comparisons.

    Parameters
    ----------
    camera:
        Camera capture histories.
    mask:
        Habitat mask.
    detectfn:
        Detection function.
    start:
        Starting coefficients.

    Returns
    -------
    PolygonFit
    """
    lik = SecrLikelihood(camera, mask, None, detectfn, "full")

    def neg(b: np.ndarray) -> float:
        ll = lik.loglik(b)
        return -ll if np.isfinite(ll) else np.inf

    x0 = np.asarray(start, float) if start is not None else np.asarray(lik.start_values(), float)
    return maximise(neg, x0, list(lik.names), camera.n)


def simulate_joint(
    rng: np.random.Generator,
    mask: Mask,
    D: float,
    traps: Any,
    camera_params: dict[str, float],
    areas: Any,
    search_params: dict[str, float],
    *,
    camera_occasions: int = 5,
    search_occasions: int = 2,
    camera_detector: str = "count",
    search_detector: str = "transect",
    camera_detectfn: str = "HHN",
    search_detectfn: str = "HHN",
) -> JointSurvey | None:
    """Simulate a camera + scat-search survey of one population.

    Parameters
    ----------
    rng:
        Random generator.
    mask:
        Habitat mask (centres are a Poisson process of density ``D`` over its cells).
    D:
        Density, animals per hectare.
    traps:
        Camera layout (:class:`irbis.stats.secr_data.Traps`).
    camera_params, search_params:
        Detection parameters, e.g. ``{"lambda0": 0.2, "sigma": 3000}``.
    areas:
        Searched polygons / transects (:class:`irbis.stats.secr_polygon.SearchAreas`).
    camera_occasions, search_occasions:
        Occasions of each channel.
    camera_detector, search_detector:
        Detector types.
    camera_detectfn, search_detectfn:
        Detection functions.

    Returns
    -------
    JointSurvey or None
        ``None`` when either channel detected nobody. Animals are named
        ``A1..AN`` by centre, so equal names are the same animal.
    """
    from irbis.stats.secr_data import CaptureHistory as _CH
    from irbis.stats.secr_polygon import simulate_area_search
    from irbis.stats.simulate import simulate_capthist, simulate_popn

    centres = simulate_popn(mask, D, rng=rng)
    if len(centres) == 0:
        return None
    names = [f"A{i + 1}" for i in range(len(centres))]
    counts, _ = simulate_capthist(
        traps,
        centres,
        camera_detectfn,
        camera_params,
        detector=camera_detector,
        n_occasions=camera_occasions,
        rng=rng,
        keep_undetected=True,
    )
    seen = np.flatnonzero(counts.reshape(len(centres), -1).sum(axis=1) > 0)
    search = simulate_area_search(
        rng,
        centres,
        areas,
        search_detector,
        search_occasions,
        detectfn=search_detectfn,
        names=names,
        **search_params,
    )
    if len(seen) == 0 or search is None:
        return None
    camera = _CH(
        ids=[names[i] for i in seen], counts=counts[seen], traps=traps, detector=camera_detector
    )
    return JointSurvey(camera=camera, search=search)
