"""Maps of the census report, drawn in projected metres (no tiles, no network).

Both maps plot only what the :class:`~irbis.reports.census.Census` holds: in a
public census the sensitive stations already sit at their cell centres and a
sensitive species' density is already averaged over cells, so a map cannot
show more than the policy allows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

if TYPE_CHECKING:  # pragma: no cover
    from irbis.reports.census import Census

__all__ = ["density_map", "effort_map", "map_points", "threat_map"]


def _km_axes(ax: Any, label: str) -> None:
    fmt = FuncFormatter(lambda v, _pos: f"{v / 1000:.0f}")
    ax.xaxis.set_major_formatter(fmt)
    ax.yaxis.set_major_formatter(fmt)
    ax.set_xlabel(f"easting (km) — {label}", fontsize=8)
    ax.set_ylabel("northing (km)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal", adjustable="box")


def _scale_bar(ax: Any) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    span = (x1 - x0) / 4
    if not span > 0:
        return
    nice = 10 ** math.floor(math.log10(span))
    length = max(m * nice for m in (1, 2, 5) if m * nice <= span)
    bx, by = x0 + 0.05 * (x1 - x0), y0 + 0.06 * (y1 - y0)
    ax.plot([bx, bx + length], [by, by], color="black", lw=3, solid_capstyle="butt")
    ax.text(
        bx + length / 2, by + 0.02 * (y1 - y0), f"{length / 1000:g} km", ha="center", fontsize=7
    )
    ax.annotate(
        "N",
        xy=(0.95, 0.93),
        xytext=(0.95, 0.80),
        xycoords="axes fraction",
        ha="center",
        fontsize=9,
        arrowprops={"arrowstyle": "-|>", "color": "black"},
    )


def map_points(census: Census) -> list[dict[str, Any]]:
    """The station symbols of the effort map: stations sharing a place are merged.

    Returns
    -------
    list of dict
        ``x``, ``y`` (projected metres, as drawn), ``stations``, ``trap_nights``,
        ``main`` (the main species was recorded there) and ``generalised``.
    """
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for st in census.stations:
        if st["map_x"] is None:
            continue
        key = (round(st["map_x"], 3), round(st["map_y"], 3))
        g = groups.setdefault(
            key,
            {
                "x": st["map_x"],
                "y": st["map_y"],
                "stations": [],
                "trap_nights": 0.0,
                "main": False,
                "generalised": False,
            },
        )
        g["stations"].append(st["name"])
        g["trap_nights"] += st["trap_nights"]
        g["main"] |= bool(census.main_species and st["records"].get(census.main_species))
        g["generalised"] |= st["generalised"]
    return list(groups.values())


def effort_map(census: Census) -> Figure:
    """Stations sized by trap-nights; filled where the main species was recorded.

    Parameters
    ----------
    census:
        A gathered census.

    Returns
    -------
    matplotlib.figure.Figure
    """
    pts = map_points(census)
    fig = Figure(figsize=(7.0, 5.6))
    ax = fig.add_subplot()
    if not pts:
        ax.text(0.5, 0.5, "no station has coordinates", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    tn = np.array([p["trap_nights"] for p in pts])
    size = 25 + 320 * tn / max(float(tn.max()), 1e-9)
    if census.public:
        for p in pts:
            if p["generalised"]:
                key = census.frame.cell_keys(np.array([p["x"]]), np.array([p["y"]]), census.policy)[
                    0
                ]
                ring = census.frame.cell_polygon(key, census.policy)
                ax.fill(
                    ring[:, 0],
                    ring[:, 1],
                    facecolor="#f3e6d8",
                    edgecolor="#b08050",
                    lw=0.8,
                    ls="--",
                    zorder=1,
                )
    for p, sz in zip(pts, size, strict=True):
        ax.scatter(
            p["x"],
            p["y"],
            s=sz,
            marker="s" if p["generalised"] else "o",
            facecolor="#D55E00" if p["main"] else "white",
            edgecolor="#333333",
            lw=1.0,
            alpha=0.85,
            zorder=3,
        )
        label = (
            ", ".join(p["stations"])
            if len(p["stations"]) <= 3
            else (f"{p['stations'][0]} +{len(p['stations']) - 1}")
        )
        ax.annotate(
            label,
            (p["x"], p["y"]),
            xytext=(6, 5),
            textcoords="offset points",
            fontsize=6.5,
            zorder=4,
        )
    xs, ys = np.array([p["x"] for p in pts]), np.array([p["y"] for p in pts])
    pad = max(float(np.ptp(xs)), float(np.ptp(ys)), 2000.0) * 0.12
    ax.set_xlim(xs.min() - pad, xs.max() + pad)
    ax.set_ylim(ys.min() - pad, ys.max() + pad)
    _km_axes(ax, census.frame.label)
    _scale_bar(ax)
    handles = [
        ax.scatter(
            [],
            [],
            s=80,
            facecolor="#D55E00",
            edgecolor="#333333",
            label=f"{census.main_species} recorded" if census.main_species else "recorded",
        ),
        ax.scatter([], [], s=80, facecolor="white", edgecolor="#333333", label="not recorded"),
    ]
    if any(p["generalised"] for p in pts):
        handles.append(
            ax.scatter(
                [],
                [],
                s=80,
                marker="s",
                facecolor="white",
                edgecolor="#333333",
                label=f"generalised to {census.policy.precision_deg:g}° cell",
            )
        )
    ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.9)
    ax.set_title(f"Camera stations (symbol area ∝ trap-nights, max {tn.max():.0f})", fontsize=10)
    return fig


def density_map(census: Census) -> Figure | None:
    """Expected density of activity centres over the mask, with the stations.

    Returns
    -------
    matplotlib.figure.Figure or None
        ``None`` when no SECR model was fitted.
    """
    est = census.estimates
    if est.density_xy is None and not est.density_cells:
        return None
    fig = Figure(figsize=(7.0, 5.6))
    ax = fig.add_subplot()
    if est.density_cells:
        polys = [c["outline"] for c in est.density_cells]
        vals = np.array([c["mean"] for c in est.density_cells])
        coll = PolyCollection(polys, array=vals, cmap="YlOrBr", edgecolor="#888888", lw=0.5)
        ax.add_collection(coll)
        allxy = np.vstack(polys)
        ax.set_xlim(allxy[:, 0].min(), allxy[:, 0].max())
        ax.set_ylim(allxy[:, 1].min(), allxy[:, 1].max())
        mappable = coll
        title = f"cell means over {census.policy.precision_deg:g}° cells (public edition)"
    else:
        xy, d = est.density_xy, est.density_per_100km2
        sp = est.mask["spacing"]
        x0, y0 = xy.min(axis=0)
        ix = np.rint((xy[:, 0] - x0) / sp).astype(int)
        iy = np.rint((xy[:, 1] - y0) / sp).astype(int)
        grid = np.full((iy.max() + 1, ix.max() + 1), np.nan)
        grid[iy, ix] = d
        mappable = ax.imshow(
            grid,
            origin="lower",
            extent=(
                x0 - sp / 2,
                x0 + sp * (ix.max() + 0.5),
                y0 - sp / 2,
                y0 + sp * (iy.max() + 0.5),
            ),
            cmap="YlOrBr",
            interpolation="nearest",
        )
        title = f"mask of {est.mask['points']} points, {sp:g} m"
    if est.trap_xy is not None and len(est.trap_xy):
        ax.scatter(
            est.trap_xy[:, 0],
            est.trap_xy[:, 1],
            marker="^",
            s=22,
            color="#0072B2",
            edgecolor="white",
            lw=0.5,
            zorder=3,
            label="camera stations",
        )
        ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    cb = fig.colorbar(mappable, ax=ax, shrink=0.8)
    cb.set_label("activity centres per 100 km²", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    _km_axes(ax, census.frame.label)
    _scale_bar(ax)
    ax.set_title(f"{est.species}, SECR {est.secr_best}: {title}", fontsize=9)
    return fig


def threat_map(census: Census) -> Figure | None:
    """Snares found per 10 km patrolled on the policy's cells, with the stations.

    Precise editions add each snare find; public ones draw cells only (the
    census holds no snare place then).

    Returns
    -------
    matplotlib.figure.Figure or None
        ``None`` without snares or transects, or when the map has no CRS to
        place longitude/latitude cells in.
    """
    th = (census.field_records or {}).get("threats")
    frame = census.frame
    if not th or not th["cells"] or frame.crs is None:
        return None
    fig = Figure(figsize=(7.0, 5.6))
    ax = fig.add_subplot()
    cells = th["cells"]
    polys = [frame.cell_polygon((c["lon"], c["lat"]), census.policy) for c in cells]
    vals = np.array([c["rate"] if c["km"] > 0 else np.nan for c in cells], float)
    from matplotlib import colormaps

    cmap = colormaps["Reds"].with_extremes(bad="#dddddd")
    coll = PolyCollection(
        polys, array=np.ma.masked_invalid(vals), cmap=cmap, edgecolor="#666666", lw=0.6
    )
    top = np.nanmax(vals) if np.isfinite(vals).any() else 1.0
    coll.set_clim(0.0, top if top > 0 else 1.0)
    ax.add_collection(coll)
    allxy = np.vstack(polys)
    ax.set_xlim(allxy[:, 0].min(), allxy[:, 0].max())
    ax.set_ylim(allxy[:, 1].min(), allxy[:, 1].max())
    for c, poly in zip(cells, polys, strict=True):
        cx, cy = poly.mean(axis=0)
        marks = ("L" if c["leopard"] else "") + ("M" if c["musk_deer"] else "")
        label = f"{c['snares']}" + (f"\n{marks}" if marks else "")
        box = {"facecolor": "white", "alpha": 0.7, "lw": 0}
        ax.text(cx, cy, label, ha="center", va="center", fontsize=7, bbox=box)
    pts = [p for p in map_points(census) if p.get("x") is not None]
    if pts:
        ax.scatter(
            [p["x"] for p in pts], [p["y"] for p in pts], marker="^", s=18,
            color="#0072B2", edgecolor="white", lw=0.5, zorder=3, label="camera stations",
        )  # fmt: skip
    if th.get("points"):
        lon = np.array([p["lon"] for p in th["points"]])
        lat = np.array([p["lat"] for p in th["points"]])
        x, y = frame.from_lonlat(lon, lat)
        ax.scatter(x, y, marker="x", s=20, color="black", lw=1, zorder=4, label="snares found")
    if pts or th.get("points"):
        ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    cb = fig.colorbar(coll, ax=ax, shrink=0.8)
    cb.set_label("snares per 10 km patrolled (grey: no patrol)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    _km_axes(ax, frame.label)
    _scale_bar(ax)
    ax.set_title(
        f"Snares per patrol effort on {census.policy.precision_deg:g}° cells "
        "(count; L snow leopard, M musk deer recorded)",
        fontsize=9,
    )
    return fig
