"""Camera + genetic SECR with one density (:mod:`irbis.stats.secr_joint`).

The linked likelihood (genotypes matched to photo IDs, one activity centre
per animal) has no one-call equivalent in R secr, which cannot mix point and
transect detectors in one session; it is checked against the likelihood
written out below (Poisson camera counts and transect searches multiplied
animal by animal, mask point by mask point; line integrals in closed form).
The unlinked likelihood is secr's multi-session trick with shared density::

    ch <- MS.capthist(camera = camCH, scats = scatCH)
    secr.fit(ch, mask = list(mask, mask), detectfn = "HHN", binomN = 0,
             model = list(D ~ 1, lambda0 ~ session, sigma ~ session),
             start = ..., details = list(LLonly = TRUE))

and is checked the same way, as the sum of the two written-out likelihoods.
The 200-survey coverage run is ``bench/secr_joint.py``; the test below runs 15.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gammaln
from scipy.stats import poisson

from irbis.stats.secr_data import Mask, Traps
from irbis.stats.secr_joint import (
    JointLikelihood,
    fit_camera_only,
    fit_joint,
    simulate_joint,
)
from irbis.stats.secr_polygon import SearchAreas

LINES = [
    np.array([[-2000, -1000], [4000, 2000], [8000, 1000], [14000, 4000.0]]),
    np.array([[0, 9000], [6000, 11000], [13000, 8000.0]]),
    np.array([[6000, -1500], [7000, 5000], [5500, 10000.0]]),
]


def _traps(usage: bool = False) -> Traps:
    gx, gy = np.meshgrid(np.arange(5) * 3000.0, np.arange(4) * 3000.0)
    u = None
    if usage:
        u = np.ones((20, 6))
        u[3, :2] = 0  # a camera out for two occasions
        u[7] = 0.5
    return Traps([f"C{i}" for i in range(20)], np.column_stack([gx.ravel(), gy.ravel()]), usage=u)


def _mask(spacing: float) -> Mask:
    buf = 10_000
    X, Y = np.meshgrid(
        np.arange(-buf, 12_000 + buf + 1, spacing), np.arange(-buf, 9_000 + buf + 1, spacing)
    )
    return Mask(np.column_stack([X.ravel(), Y.ravel()]), spacing)


def _line_integral(line: np.ndarray, m: np.ndarray, sigma: float) -> float:
    s2 = sigma * math.sqrt(2)
    total = 0.0
    for a, b in zip(line[:-1], line[1:], strict=True):
        L = float(np.linalg.norm(b - a))
        u = (b - a) / L
        t0 = float((m - a) @ u)
        perp2 = float(np.sum((m - a - t0 * u) ** 2))
        total += (
            math.exp(-perp2 / (2 * sigma**2))
            * sigma
            * math.sqrt(math.pi / 2)
            * (math.erf((L - t0) / s2) - math.erf(-t0 / s2))
        )
    return total


def _brute(survey, mask, D, cam, gen, linked):
    """Full log-likelihood written out (cameras: Poisson counts; searches: transects)."""
    ch, sh = survey.camera, survey.search
    S_c, S_s = ch.n_occasions, sh.n_occasions
    U = ch.traps.usage_matrix(S_c)  # K x S
    T = sh.areas.usage_matrix(S_s)
    H = math.sqrt(2 * math.pi) * gen["sigma"]
    ids = list(ch.ids) + [g for g in sh.ids if g not in ch.ids] if linked else None
    a = mask.cell_area
    pc = np.zeros((ch.n, mask.n_points))
    ps = np.zeros((sh.n, mask.n_points))
    qc = np.zeros(mask.n_points)
    qs = np.zeros(mask.n_points)
    gcounts = sh.counts()
    for mi, m in enumerate(mask.xy):
        d2 = ((ch.traps.xy - m) ** 2).sum(1)
        lam_c = cam["lambda0"] * np.exp(-d2 / (2 * cam["sigma"] ** 2))[:, None] * U
        qc[mi] = math.exp(-lam_c.sum())
        for i in range(ch.n):
            pc[i, mi] = np.prod(poisson.pmf(ch.counts[i].T, lam_c))
        Ik = np.array([_line_integral(p, m, gen["sigma"]) for p in sh.areas.parts])
        lam_s = gen["lambda0"] * Ik[:, None] * T / H
        qs[mi] = math.exp(-lam_s.sum())
        for i in range(sh.n):
            p = np.prod(poisson.pmf(gcounts[i].T, lam_s))
            for j in np.flatnonzero(sh.animal == i):
                d = np.linalg.norm(sh.xy[j] - m)
                p *= math.exp(-(d**2) / (2 * gen["sigma"] ** 2)) / Ik[sh.part[j]]
            ps[i, mi] = p

    def full(pr, q, mult):
        ll = -D * a * float((1 - q).sum())
        return ll + sum(math.log(D * a * row.sum()) for row in pr) + mult

    def lmult(rows):
        if not rows:
            return 0.0
        _, c = np.unique(ch.counts[rows].reshape(len(rows), -1), axis=0, return_counts=True)
        return -float(gammaln(c + 1).sum())

    if not linked:
        return full(pc, qc, lmult(list(range(ch.n)))) + full(ps, qs, 0.0)
    pr = np.zeros((len(ids), mask.n_points))
    for r, name in enumerate(ids):
        c = pc[ch.ids.index(name)] if name in ch.ids else qc
        s = ps[sh.ids.index(name)] if name in sh.ids else qs
        pr[r] = c * s
    only_cam = [i for i, name in enumerate(ch.ids) if name not in sh.ids]
    return full(pr, qc * qs, lmult(only_cam))


@pytest.mark.parametrize("linked", [True, False])
def test_joint_loglik_matches_written_out_likelihood(linked):
    rng = np.random.default_rng(5)
    mask = _mask(2500.0)
    areas = SearchAreas(["T1", "T2", "T3"], LINES, "transect", usage=[[1, 2], [1, 1], [0.5, 1]])
    survey = simulate_joint(
        rng, mask, 6e-4, _traps(usage=True), {"lambda0": 0.2, "sigma": 2500.0}, areas,
        {"lambda0": 0.8, "sigma": 2500.0}, camera_occasions=6, search_occasions=2,
    )  # fmt: skip
    s = survey.summary()
    assert s["both"] >= 2 and s["camera_animals"] > s["both"] and s["search_animals"] > s["both"]
    assert survey.camera.counts.max() > 1
    lik = JointLikelihood(survey, mask, linked=linked)
    assert lik.names == ["D", "lambda0.camera", "sigma.camera", "lambda0.search", "sigma.search"]
    D, cam, gen = 5e-4, {"lambda0": 0.15, "sigma": 2800.0}, {"lambda0": 0.6, "sigma": 2200.0}
    beta = np.log([D, cam["lambda0"], cam["sigma"], gen["lambda0"], gen["sigma"]])
    assert lik.loglik(beta) == pytest.approx(_brute(survey, mask, D, cam, gen, linked), abs=1e-6)


def test_joint_covers_true_density_and_is_tighter_than_cameras_alone():
    """15 simulated surveys (fixed seed; 200 in bench/secr_joint.py)."""
    rng = np.random.default_rng(2026)
    mask = _mask(1500.0)
    areas = SearchAreas(["T1", "T2", "T3"], LINES, "transect")
    D = 4e-4  # 4 per 100 km^2
    covered, se_joint, se_cam, est = 0, [], [], []
    for _ in range(15):
        survey = simulate_joint(
            rng, mask, D, _traps(), {"lambda0": 0.1, "sigma": 2500.0}, areas,
            {"lambda0": 0.6, "sigma": 2500.0}, camera_occasions=6, search_occasions=2,
        )  # fmt: skip
        fit = fit_joint(survey, mask)
        cam = fit_camera_only(survey.camera, mask)
        r = fit.real()["D"]
        covered += r["lcl"] < D < r["ucl"]
        se_joint.append(fit.se[0])
        se_cam.append(cam.se[0])
        est.append(r["estimate"])
    assert covered >= 13
    assert np.median(np.array(se_joint) / np.array(se_cam)) < 0.85
    assert abs(np.mean(np.log(est)) - math.log(D)) < 0.25
