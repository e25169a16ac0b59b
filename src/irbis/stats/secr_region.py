"""Population size in a region, as secr's ``region.N``: expected and realised N with SEs.

For a fitted model and a region (a polygon, a mask, or the fit's own mask):

- the region becomes a mask of points at the fit mask's spacing (cell
  centres from the polygon's bounding box plus half a spacing, those inside
  the polygon kept, as secr's ``make.mask(type = "polygon", buffer = 0)``);
  mask covariates a density model needs are taken from the nearest point of
  the fit's mask, and secr's trend-surface terms ``x``, ``y`` are standardised
  by the fit mask's mean and SD (its ``meanSD``), so density is predicted as
  the fitted surface extends there;
- expected N ``E.N = sum_region D(x) * cell area`` with its delta-method SE
  (conditional fits without a density model: ``D_hat * region area``, SE
  ``SE(D_hat) * region area``);
- realised N ``R.N = n + sum_region D(x) (1 - p.(x)) * cell area``, the
  animals detected plus the expected number not detected with centres in
  the region, SE ``sqrt(SE(E.N)^2 - E.N)`` (secr's default ``RN.method =
  "poisson"``); where that is negative the SE is undefined (NaN, with a note);
- intervals log-normal about a lower bound, 0 for ``E.N`` and ``n`` for
  ``R.N`` (secr's ``add.cl`` with ``nlowerbound = TRUE``).

As in secr, ``R.N`` counts all ``n`` detected animals whatever the region,
so it is meant for regions that hold the detected animals' centres; secr
warns that it does not apply to fits with binomial N, and so does the note
here.

R::

    region.N(fit, region = poly_sf)          # E.N and R.N, SE.estimate, lcl, ucl, n
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import norm

from irbis.core.errors import BadInputError
from irbis.stats.detectfn import LINKS, link_from
from irbis.stats.formula import design_matrix, variables_of
from irbis.stats.secr import TREND_TERMS, SecrLikelihood
from irbis.stats.secr_data import Mask

__all__ = ["read_region", "region_mask", "region_n"]


def read_region(path: str | Path) -> Any:
    """A region polygon from a GeoJSON file (Polygon, MultiPolygon, Feature(s)) or WKT text.

    Coordinates must be those of the traps and mask (metres, projected).

    Parameters
    ----------
    path:
        ``.geojson``/``.json`` or a text file holding WKT.

    Returns
    -------
    shapely geometry
        The polygon (several features are merged).
    """
    import shapely
    from shapely.geometry import shape

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(str(path), f"cannot read the region file ({exc.strerror})") from None
    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
            if doc.get("type") == "FeatureCollection":
                geoms = [shape(f["geometry"]) for f in doc.get("features", [])]
            elif doc.get("type") == "Feature":
                geoms = [shape(doc["geometry"])]
            else:
                geoms = [shape(doc)]
            geom = shapely.union_all(geoms) if geoms else None
        else:
            geom = shapely.from_wkt(text.strip())
    except (ValueError, KeyError, TypeError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise BadInputError(
            str(path), f"not a GeoJSON or WKT polygon ({exc})", "give a Polygon in mask coordinates"
        ) from None
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        kind = "nothing" if geom is None or geom.is_empty else geom.geom_type
        raise BadInputError(str(path), f"the region is {kind}, not a polygon", "give a Polygon")
    return geom


def region_mask(region: Any, fit_mask: Mask, spacing: float | None = None) -> Mask:
    """The region as a mask: itself if a Mask, else grid points inside the polygon.

    Parameters
    ----------
    region:
        ``None`` (the fit's mask), a :class:`~irbis.stats.secr_data.Mask` or a
        shapely (multi)polygon in the mask's coordinates.
    fit_mask:
        The mask the model was fitted on (covariates come from its nearest point).
    spacing:
        Point spacing, metres (default: the fit mask's).

    Returns
    -------
    Mask
    """
    if region is None:
        return fit_mask
    if isinstance(region, Mask):
        return region
    try:
        import shapely
    except ImportError as exc:  # pragma: no cover - shapely is a core dependency
        raise BadInputError("region", "shapely is needed for polygon regions") from exc
    if not hasattr(region, "bounds") or region.is_empty:
        raise BadInputError("region", "not a polygon", "give a shapely Polygon or a Mask")
    sp = float(spacing or fit_mask.spacing)
    x0, y0, x1, y1 = region.bounds
    gx = np.arange(x0 + sp / 2, x1, sp)
    gy = np.arange(y0 + sp / 2, y1, sp)
    X, Y = np.meshgrid(gx, gy)
    xy = np.column_stack([X.ravel(), Y.ravel()])
    if len(xy):
        xy = xy[shapely.contains_xy(region, xy[:, 0], xy[:, 1])]
    if not len(xy):
        raise BadInputError(
            "region", f"no mask point at spacing {sp:g} m falls inside the polygon",
            "use a smaller spacing or a larger region",
        )  # fmt: skip
    near = cKDTree(fit_mask.xy).query(xy)[1]
    covs = {k: np.asarray(v)[near] for k, v in fit_mask.covariates.items()}
    return Mask(xy, sp, covs)


def _log_d_at(lik: SecrLikelihood, beta: np.ndarray, region: Mask) -> np.ndarray:
    """``log D`` at the region's points, from the fitted density submodel."""
    n_pts = region.n_points
    if "D" in lik.fixed:
        return np.full(n_pts, math.log(lik.fixed["D"]))
    b = next(blk for blk in lik.blocks if blk.param == "D")
    covs: dict[str, np.ndarray] = dict(region.covariates)
    used = set(variables_of(b.terms))
    if used & set(TREND_TERMS):
        # standardised as the fitted mask's coordinates were (secr's meanSD)
        xy = lik.mask.xy
        mu = xy.mean(axis=0)
        sd = xy.std(axis=0, ddof=1) if len(xy) > 1 else np.ones(2)
        sd = np.where(sd > 0, sd, 1.0)
        z = (region.xy - mu) / sd
        auto = {"x": z[:, 0], "y": z[:, 1], "x2": z[:, 0] ** 2, "y2": z[:, 1] ** 2,
                "xy": z[:, 0] * z[:, 1]}  # fmt: skip
        covs.update({k: auto[k] for k in used & set(TREND_TERMS)})
    for k, v in lik.session_covariates.items():
        covs[k] = np.full(n_pts, v, dtype=object if isinstance(v, str) else float)
    des = design_matrix("D", b.terms, covs, n_pts, where="region", levels=b.levels or None,
                        poly=b.design.poly, smooth=b.design.smooth)  # fmt: skip
    e = des.matrix @ np.asarray(beta, float)[b.start : b.stop]
    link = lik.links.get("D", LINKS["D"])
    if link == "log":
        return e
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(link_from(link, e))


def _pdot_at(
    lik: SecrLikelihood, beta: np.ndarray, region: Mask, chunk: int = 20_000
) -> np.ndarray:
    """Probability of detection of an animal centred at each region point."""
    out = []
    xy_t = lik.traps.xy
    for lo in range(0, region.n_points, chunk):
        xy = region.xy[lo : lo + chunk]
        v = copy.copy(lik)
        v.mask = Mask(xy, region.spacing)
        v.chunk_points = None
        v.d2 = (xy[:, 0:1] - xy_t[None, :, 0]) ** 2 + (xy[:, 1:2] - xy_t[None, :, 1]) ** 2
        v.dist = np.sqrt(v.d2) if lik.detectfn not in ("HN", "HHN") else None
        v._cache = None
        out.append(v.pdot(beta))
    return np.concatenate(out)


def _bounded_ci(est: float, se: float, lower: float, level: float) -> tuple[float, float]:
    """secr's log-normal interval about a lower bound (``add.cl``)."""
    d = est - lower
    if not (d > 0 and np.isfinite(se) and se >= 0):
        return float("nan"), float("nan")
    zq = norm.ppf(0.5 + level / 2)
    c = math.exp(zq * math.sqrt(math.log1p((se / d) ** 2)))
    return d / c + lower, d * c + lower


def region_n(
    fit: Any,
    region: Any = None,
    *,
    session: str | int | None = None,
    spacing: float | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Expected and realised number of animals in a region (secr's ``region.N``).

    Parameters
    ----------
    fit:
        A :class:`~irbis.stats.secr.SecrFit` or a multi-session
        :class:`~irbis.stats.secr_sessions.SessionFit`.
    region:
        Shapely polygon, :class:`~irbis.stats.secr_data.Mask`, or ``None`` for
        the fit's mask.
    session:
        Session name or index (multi-session fits; default the first).
    spacing:
        Spacing of the points made from a polygon (default: the fit mask's).
    level:
        Confidence level.

    Returns
    -------
    dict
        ``{"E.N": {...}, "R.N": {...}, "n", "region_km2", "points", "notes"}``;
        each of ``E.N`` and ``R.N`` has ``estimate``, ``se``, ``lcl``, ``ucl``.
    """
    beta = np.asarray(fit.beta, float)
    if hasattr(fit, "sessions"):
        i = fit._index(session if session is not None else 0)
        lik = fit.lik.parts[i]
    else:
        i = None
        lik = fit.lik
    reg = region_mask(region, lik.mask, spacing)
    cell = reg.cell_area
    size = cell * reg.n_points
    notes: list[str] = []
    if lik.likelihood == "full":

        def en(b: np.ndarray) -> float:
            return cell * float(np.exp(_log_d_at(lik, b, reg)).sum())

        EN, seEN = fit._delta(en)
        Dx = np.exp(_log_d_at(lik, beta, reg))
    else:
        if i is None:
            d = fit.density(level=level)["per_ha"]
            D, seD = d["estimate"], d["se"]
        else:
            D, seD = fit._session_density(i)
        EN, seEN = D * size, seD * size
        Dx = np.full(reg.n_points, D)
    n = int(lik.n)
    not_detected = cell * float(Dx @ (1.0 - _pdot_at(lik, beta, reg)))
    RN = n + not_detected
    var_rn = seEN**2 - EN
    seRN = math.sqrt(var_rn) if var_rn >= 0 else float("nan")
    if var_rn < 0:
        notes.append("SE of R.N undefined: var(E.N) < E.N (secr's RN.method = 'poisson')")
    if getattr(lik, "distribution", "poisson") == "binomial":
        notes.append("fitted with binomial N: R.N does not apply (as secr warns)")
    out: dict[str, Any] = {}
    for key, est, se, lower in (("E.N", EN, seEN, 0.0), ("R.N", RN, seRN, float(n))):
        lcl, ucl = _bounded_ci(est, se, lower, level)
        out[key] = {"estimate": est, "se": se, "lcl": lcl, "ucl": ucl}
    out.update(n=n, region_km2=size / 100.0, points=reg.n_points, notes=notes)
    return out
