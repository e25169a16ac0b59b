"""Polygon and transect detectors (secr's polygon, polygonX, transect, transectX).

R's ``secr`` is not installed here and its polygon examples use data simulated
with R's random numbers, so the likelihood is checked against an independent
one written below: the integral of the hazard over a convex polygon by
``scipy.integrate.quad`` over x of the closed-form (erf) integral over y, along
a transect by the closed form per straight segment; Poisson / exclusive
probabilities and the places' densities multiplied out animal by animal,
mask point by mask point, in plain Python. The R call that fits the same
model is::

    secr.fit(ch, mask = mask, detectfn = "HHN", binomN = 0,
             start = list(D = D, lambda0 = lambda0, sigma = sigma),
             details = list(LLonly = TRUE))

with ``ch`` the polygon (or transect) capthist irbis builds here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import erf
from scipy.stats import poisson

from irbis.core.errors import BadInputError
from irbis.stats.secr_data import Mask
from irbis.stats.secr_polygon import (
    AreaSearchHistory,
    PolygonLikelihood,
    SearchAreas,
    fit_polygon,
    hazard_shape,
    plane_integral,
    quadrature,
    simulate_area_search,
)

SIGMA = 700.0
LAMBDA0 = 0.8
RECT = np.array([[0, 0], [2500, 0], [2500, 1500], [0, 1500.0]])
QUAD = np.array([[3500, -300], [5200, 200], [4800, 2200], [3300, 1600.0]])  # convex, skewed
L_SHAPE = np.array([[0, 0], [3000, 0], [3000, 1000], [1000, 1000], [1000, 2500], [0, 2500.0]])
LINE1 = np.array([[-500, 2000], [1500, 2600], [3500, 2300.0]])
LINE2 = np.array([[4000, -800], [4300, 2400.0]])


def _mask(spacing: float = 400.0) -> Mask:
    x = np.arange(-2000, 7200 + 1, spacing)
    y = np.arange(-2800, 4400 + 1, spacing)
    X, Y = np.meshgrid(x, y)
    return Mask(np.column_stack([X.ravel(), Y.ravel()]), spacing)


# -- independent integrals ---------------------------------------------------


def _y_limits(poly: np.ndarray, x: float) -> tuple[float, float]:
    """Lower and upper boundary of a convex polygon at abscissa x."""
    ys = []
    ring = np.vstack([poly, poly[:1]])
    for (x1, y1), (x2, y2) in zip(ring[:-1], ring[1:], strict=True):
        if min(x1, x2) <= x <= max(x1, x2) and x1 != x2:
            ys.append(y1 + (x - x1) * (y2 - y1) / (x2 - x1))
    return min(ys), max(ys)


def _polygon_integral(poly: np.ndarray, m: np.ndarray, sigma: float) -> float:
    """Integral of exp(-|y - m|^2 / 2 sigma^2) over a convex polygon (quad over x, erf in y)."""
    s2 = sigma * math.sqrt(2)

    def over_y(x: float) -> float:
        lo, hi = _y_limits(poly, x)
        return (
            math.exp(-((x - m[0]) ** 2) / (2 * sigma**2))
            * sigma
            * math.sqrt(math.pi / 2)
            * (math.erf((hi - m[1]) / s2) - math.erf((lo - m[1]) / s2))
        )

    xs = sorted(set(poly[:, 0].tolist()))
    total = 0.0
    for a, b in zip(xs[:-1], xs[1:], strict=True):  # kinks of the limits at vertices
        total += integrate.quad(over_y, a, b, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    return total


def _line_integral(line: np.ndarray, m: np.ndarray, sigma: float) -> float:
    """Integral of exp(-d^2 / 2 sigma^2) along a polyline, closed form per segment."""
    s2 = sigma * math.sqrt(2)
    total = 0.0
    for a, b in zip(line[:-1], line[1:], strict=True):
        L = float(np.linalg.norm(b - a))
        u = (b - a) / L
        t0 = float((m - a) @ u)
        perp2 = float(((m - a) - t0 * u) @ ((m - a) - t0 * u))
        total += (
            math.exp(-perp2 / (2 * sigma**2))
            * sigma
            * math.sqrt(math.pi / 2)
            * (math.erf((L - t0) / s2) - math.erf(-t0 / s2))
        )
    return total


def _brute_loglik(hist: AreaSearchHistory, mask: Mask, D: float, lam0: float, sigma: float):
    """Full log-likelihood written out animal by animal, mask point by mask point."""
    areas = hist.areas
    S, K = hist.n_occasions, areas.n_parts
    T = areas.usage_matrix(S)
    excl = hist.detector.endswith("X")
    if areas.kind == "polygon":
        H = 2 * math.pi * sigma**2
        integral = _polygon_integral
    else:
        H = math.sqrt(2 * math.pi) * sigma
        integral = _line_integral
    a = mask.cell_area
    counts = hist.counts()
    expected_total = 0.0
    pr = np.zeros((hist.n, mask.n_points))
    for mi, m in enumerate(mask.xy):
        Ik = np.array([integral(areas.parts[k], m, sigma) for k in range(K)])
        lam = lam0 * Ik[:, None] * T / H  # K x S
        expected_total += 1 - math.exp(-lam.sum())
        for i in range(hist.n):
            p = 1.0
            for s in range(S):
                sel = np.flatnonzero((hist.animal == i) & (hist.occasion == s))
                if excl:
                    Ls = lam[:, s].sum()
                    if sel.size == 0:
                        p *= math.exp(-Ls)
                    else:
                        k = hist.part[sel[0]]
                        p *= (1 - math.exp(-Ls)) * lam[k, s] / Ls
                else:
                    for k in range(K):
                        p *= poisson.pmf(counts[i, s, k], lam[k, s])
                for j in sel:
                    d = np.linalg.norm(hist.xy[j] - m)
                    p *= math.exp(-(d**2) / (2 * sigma**2)) / Ik[hist.part[j]]
            pr[i, mi] = p
    return -D * a * expected_total + sum(math.log(D * a * pr[i].sum()) for i in range(hist.n))


def _population(rng: np.random.Generator, mask: Mask, D: float) -> np.ndarray:
    lo, hi = mask.xy.min(0) - mask.spacing / 2, mask.xy.max(0) + mask.spacing / 2
    N = rng.poisson(D * mask.area)
    return rng.uniform(lo, hi, size=(N, 2))


# -- quadrature ---------------------------------------------------------------


def test_polygon_quadrature_matches_closed_form_and_handles_non_convex():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-1500, 4500, 60), rng.uniform(-1500, 4000, 60)])
    sigma = 500.0
    H = 2 * math.pi * sigma**2
    assert plane_integral("HHN", 2, sigma) == pytest.approx(H, rel=1e-12)
    s2 = sigma * math.sqrt(2)

    def rect(x0, x1, y0, y1):
        return (math.pi / 2 * sigma**2) * (
            (erf((x1 - pts[:, 0]) / s2) - erf((x0 - pts[:, 0]) / s2))
            * (erf((y1 - pts[:, 1]) / s2) - erf((y0 - pts[:, 1]) / s2))
        )

    # the L is two rectangles; ear clipping must triangulate its reflex corner
    exact = rect(0, 3000, 0, 1000) + rect(0, 1000, 1000, 2500)
    q = quadrature([L_SHAPE], 2, max_edge=2 * sigma)
    got = (
        hazard_shape("HHN", np.sqrt(((pts[:, None] - q.xy[None]) ** 2).sum(-1)), sigma) @ q.weights
    )
    assert np.max(np.abs(got - exact)) / H < 1e-8
    assert q.weights.sum() == pytest.approx(3000 * 1000 + 1000 * 1500, rel=1e-12)


def test_transect_quadrature_and_hex_plane_integral():
    sigma = 600.0
    q = quadrature([LINE1], 1, max_edge=2 * sigma)
    m = np.array([[1000.0, 1500.0], [3600.0, 2500.0], [-900.0, 2100.0]])
    got = hazard_shape("HHN", np.sqrt(((m[:, None] - q.xy[None]) ** 2).sum(-1)), sigma) @ q.weights
    exact = [_line_integral(LINE1, mm, sigma) for mm in m]
    np.testing.assert_allclose(got, exact, rtol=1e-10)
    # HEX: H is 2 pi sigma^2 (2-D) and 2 sigma (1-D), to secr's 20-sigma limit
    assert plane_integral("HEX", 2, sigma) == pytest.approx(2 * math.pi * sigma**2, rel=1e-7)
    assert plane_integral("HEX", 1, sigma) == pytest.approx(2 * sigma, rel=1e-8)
    # HHR, numerically, against scipy on the raw integrand
    ref = 2 * math.pi * integrate.quad(
        lambda r: r * float(hazard_shape("HHR", np.array(r), sigma, 4.0)), 0, 20 * sigma,
        limit=400, epsrel=1e-12, points=[sigma, 2 * sigma],
    )[0]  # fmt: skip
    assert plane_integral("HHR", 2, sigma, 4.0) == pytest.approx(ref, rel=1e-9)


# -- likelihood against the independent one ----------------------------------


@pytest.mark.parametrize("detector", ["polygon", "polygonX", "transect", "transectX"])
def test_loglik_matches_independent_integration(detector):
    rng = np.random.default_rng(
        {"polygon": 1, "polygonX": 2, "transect": 3, "transectX": 4}[detector]
    )
    mask = _mask(800.0)  # small, so that the brute force stays quick
    if detector.startswith("polygon"):
        areas = SearchAreas(["A", "B"], [RECT, QUAD], "polygon", usage=[[1, 0.5, 1], [1, 1, 2]])
    else:
        areas = SearchAreas(
            ["L1", "L2"], [LINE1, LINE2], "transect", usage=[[1, 2, 1], [0.5, 1, 1]]
        )
    centres = _population(rng, mask, 0.015)
    hist = simulate_area_search(rng, centres, areas, detector, 3, 1.5, SIGMA)
    assert hist is not None and hist.n >= 4
    if not detector.endswith("X"):
        assert hist.counts().max() > 1  # Poisson counts above one are exercised
    lik = PolygonLikelihood(hist, mask, "HHN")
    D, lam0, sigma = 0.011, 1.2, 650.0
    got = lik.loglik(np.log([D, lam0, sigma]))
    want = _brute_loglik(hist, mask, D, lam0, sigma)
    assert got == pytest.approx(want, abs=1e-6)


def test_fit_recovers_simulated_density():
    rng = np.random.default_rng(11)
    mask = _mask(500.0)
    areas = SearchAreas(["A", "B", "C"], [RECT, QUAD, L_SHAPE + [0, -2600]], "polygon")
    D = 0.03
    hist = simulate_area_search(rng, _population(rng, mask, D), areas, "polygon", 4, LAMBDA0, SIGMA)
    fit = fit_polygon(hist, mask)
    r = fit.real()
    assert fit.converged
    assert r["D"]["lcl"] < D < r["D"]["ucl"]
    assert r["sigma"]["lcl"] < SIGMA < r["sigma"]["ucl"]
    assert r["D_per_100km2"]["estimate"] == pytest.approx(r["D"]["estimate"] * 10_000)
    # the quadrature was checked at the estimate; a fine fixed one gives the same maximum
    assert fit.extra["quadrature"]["loglik_change"] <= 1e-6
    fine = fit_polygon(hist, mask, max_edge=mask.spacing, start=fit.beta)
    assert fine.loglik == pytest.approx(fit.loglik, abs=1e-6)
    np.testing.assert_allclose(fine.beta, fit.beta, atol=1e-4)
    # the maximum: the likelihood falls on each side of every coefficient
    lik = PolygonLikelihood(hist, mask)
    for j in range(3):
        for step in (-0.05, 0.05):
            b = fit.beta.copy()
            b[j] += step
            assert lik.loglik(b) < fit.loglik


# -- bad input ----------------------------------------------------------------


def _one(areas, detector, xy, occasion=(0,), part=(0,), animal=(0,)):
    return AreaSearchHistory(
        ids=["G1"],
        areas=areas,
        detector=detector,
        n_occasions=2,
        animal=np.array(animal),
        occasion=np.array(occasion),
        part=np.array(part),
        xy=np.array(xy, dtype=float),
        where=[f"scats.csv:row {i + 2}" for i in range(len(animal))],
    )


def test_bad_input_is_named():
    areas = SearchAreas(["A"], [RECT], "polygon")
    with pytest.raises(BadInputError, match=r"scats.csv:row 2.*outside polygon 'A'"):
        _one(areas, "polygon", [[5000, 5000]])
    with pytest.raises(BadInputError, match="detected twice on one occasion"):
        _one(areas, "polygonX", [[10, 10], [20, 20]], (0, 0), (0, 0), (0, 0))
    with pytest.raises(BadInputError, match="needs transects"):
        _one(areas, "transect", [[10, 10]])
    with pytest.raises(BadInputError, match="missing coordinates"):
        _one(areas, "polygon", [[np.nan, 10]])
    h = _one(areas, "polygon", [[10, 10]])
    with pytest.raises(BadInputError, match="hazard detection function"):
        PolygonLikelihood(h, _mask(800.0), "HN")
    with pytest.raises(BadInputError, match="fewer than 3 vertices"):
        SearchAreas(["A"], [RECT[:2]], "polygon")
    # a place within the 1 m tolerance of a transect is on it; 50 m off is not
    lines = SearchAreas(["L"], [LINE1], "transect")
    _one(lines, "transect", [[-500.4, 2000.3]])
    with pytest.raises(BadInputError, match="outside transect 'L'"):
        _one(lines, "transect", [[-500, 2050]])


@pytest.mark.parametrize(("detectfn", "z"), [("HEX", 1.0), ("HHR", 3.0)])
def test_transect_loglik_other_hazard_functions(detectfn, z):
    """HEX and HHR along transects: line integrals by scipy quad, H to 20 sigma as secr."""
    rng = np.random.default_rng(21)
    mask = _mask(800.0)
    areas = SearchAreas(["L1", "L2"], [LINE1, LINE2], "transect", usage=[[1, 2], [1, 0.5]])
    hist = simulate_area_search(rng, _population(rng, mask, 0.015), areas, "transect", 2, 1.5,
                                SIGMA, detectfn=detectfn, z=z)  # fmt: skip
    lam0, sigma, D = 1.1, 600.0, 0.012

    def shape(d):
        return math.exp(-d / sigma) if detectfn == "HEX" else -math.expm1(-((d / sigma) ** -z))

    H = 2 * integrate.quad(shape, 0, 20 * sigma, limit=400, epsrel=1e-12, points=[sigma])[0]

    def line(k, m):
        total = 0.0
        for a, b in zip(areas.parts[k][:-1], areas.parts[k][1:], strict=True):
            L = float(np.linalg.norm(b - a))

            def f(t, a=a, b=b, L=L):
                return shape(float(np.linalg.norm(a + (b - a) * t / L - m)))

            total += integrate.quad(f, 0, L, limit=400, epsabs=1e-12, epsrel=1e-12)[0]
        return total

    T = areas.usage_matrix(2)
    counts = hist.counts()
    a = mask.cell_area
    pd_sum, pr = 0.0, np.zeros((hist.n, mask.n_points))
    for mi, m in enumerate(mask.xy):
        lam = lam0 * np.array([line(k, m) for k in range(2)])[:, None] * T / H
        pd_sum += 1 - math.exp(-lam.sum())
        for i in range(hist.n):
            p = float(np.prod(poisson.pmf(counts[i].T, lam)))
            for j in np.flatnonzero(hist.animal == i):
                # rate times place density: lambda0 T z(d) / H
                p *= shape(float(np.linalg.norm(hist.xy[j] - m))) / line(hist.part[j], m)
            pr[i, mi] = p
    want = -D * a * pd_sum + sum(math.log(D * a * pr[i].sum()) for i in range(hist.n))
    beta = np.log([D, lam0, sigma] + ([z] if detectfn == "HHR" else []))
    got = PolygonLikelihood(hist, mask, detectfn).loglik(beta)
    assert got == pytest.approx(want, abs=1e-6)


def _shape(detectfn: str, sigma: float, z: float):
    if detectfn == "HEX":
        return lambda d: math.exp(-d / sigma)
    return lambda d: -math.expm1(-((d / sigma + 1e-300) ** -z))


def _radial_polygon_integral(poly: np.ndarray, m: np.ndarray, shape) -> float:
    """A radial function over a convex polygon by adaptive quadrature, cusp at m flagged."""

    def f(y, x):
        return shape(math.hypot(x - m[0], y - m[1]))

    xs = set(poly[:, 0].tolist())
    if poly[:, 0].min() < m[0] < poly[:, 0].max():
        xs.add(float(m[0]))  # the cusp's column: a break of the outer integral
    xs = sorted(xs)
    total = 0.0
    for a, b in zip(xs[:-1], xs[1:], strict=True):
        total += integrate.nquad(
            f,
            [lambda x: _y_limits(poly, x), [a, b]],
            opts=[{"points": [float(m[1])], "epsabs": 1e-11, "epsrel": 1e-11, "limit": 100},
                  {"epsabs": 1e-11, "epsrel": 1e-11, "limit": 100}],
        )[0]  # fmt: skip
    return total


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize(
    ("detector", "detectfn"), [("polygon", "HEX"), ("polygonX", "HEX"), ("polygon", "HHR")]
)
def test_hex_hhr_polygon_loglik_matches_independent_integration(detector, detectfn):
    """HEX and HHR polygons (by edges in polar coordinates) against scipy nquad."""
    rng = np.random.default_rng(31)
    mask = _mask(1200.0)
    areas = SearchAreas(["A", "B"], [RECT, QUAD], "polygon", usage=[[1, 2], [1, 1]])
    z = 3.0
    hist = simulate_area_search(rng, _population(rng, mask, 0.02), areas, detector, 2, 1.5,
                                SIGMA, detectfn=detectfn, z=z)  # fmt: skip
    lam0, sigma, D = 1.2, 650.0, 0.012
    shape = _shape(detectfn, sigma, z)
    # H to 20 sigma, as secr
    H = 2 * math.pi * integrate.quad(lambda r: r * shape(r), 0, 20 * sigma, limit=400,
                                     epsrel=1e-12, points=[sigma, 2 * sigma])[0]  # fmt: skip
    T = areas.usage_matrix(2)
    counts = hist.counts()
    pd_sum, pr = 0.0, np.zeros((hist.n, mask.n_points))
    for mi, m in enumerate(mask.xy):
        Ik = np.array([_radial_polygon_integral(p, m, shape) for p in areas.parts])
        lam = lam0 * Ik[:, None] * T / H
        pd_sum += 1 - math.exp(-lam.sum())
        for i in range(hist.n):
            if detector == "polygon":
                p = float(np.prod(poisson.pmf(counts[i].T, lam)))
            else:
                p = 1.0
                for s in range(2):
                    Ls = lam[:, s].sum()
                    k = np.flatnonzero(counts[i, s])
                    p *= math.exp(-Ls) if k.size == 0 else -math.expm1(-Ls) * lam[k[0], s] / Ls
            for j in np.flatnonzero(hist.animal == i):
                p *= shape(float(np.linalg.norm(hist.xy[j] - m))) / Ik[hist.part[j]]
            pr[i, mi] = p
    a = mask.cell_area
    want = -D * a * pd_sum + sum(math.log(D * a * pr[i].sum()) for i in range(hist.n))
    beta = np.log([D, lam0, sigma] + ([z] if detectfn == "HHR" else []))
    got = PolygonLikelihood(hist, mask, detectfn).loglik(beta)
    assert got == pytest.approx(want, abs=1e-6)
