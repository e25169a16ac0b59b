"""Figures of the census report, rendered by matplotlib's Agg canvas to PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` directly (never
``pyplot``): no global state, no display needed, safe in a web worker.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from irbis.stats.activity import activity_density

__all__ = [
    "activity_plot",
    "data_uri",
    "fig_png",
    "per_station_plot",
    "rai_plot",
    "thumbnail",
]

#: one colour per species, in order of abundance (colour-blind safe, Okabe–Ito)
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
)


def fig_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (Agg renderer)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """A ``data:`` URI holding ``data`` (how images live inside one HTML file)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def species_colours(species: Sequence[str]) -> dict[str, str]:
    """A stable colour per species."""
    return {sp: PALETTE[i % len(PALETTE)] for i, sp in enumerate(species)}


def per_station_plot(per_station: list[dict[str, Any]], species: Sequence[str]) -> Figure:
    """Stacked bars: independent records per station, by species.

    Parameters
    ----------
    per_station:
        Rows with ``station`` and ``by_species``.
    species:
        Species in legend order.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = [r["station"] for r in per_station]
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.add_subplot()
    bottom = np.zeros(len(names))
    colours = species_colours(species)
    for sp in species:
        v = np.array([r["by_species"].get(sp, 0) for r in per_station], float)
        if v.sum() == 0:
            continue
        ax.bar(names, v, bottom=bottom, color=colours[sp], label=sp, width=0.7)
        bottom += v
    ax.set_ylabel("independent records")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    if species:
        ax.legend(fontsize=7, frameon=False, ncols=min(4, len(species)), loc="upper left")
    ax.set_ylim(0, max(1.0, float(bottom.max()) * 1.3) if len(bottom) else 1.0)
    return fig


def rai_plot(rai: list[dict[str, Any]]) -> Figure:
    """Horizontal bars: independent records per 100 trap-nights, per species."""
    fig = Figure(figsize=(6.5, 0.45 * max(3, len(rai)) + 0.6))
    ax = fig.add_subplot()
    names = [r["species"] for r in rai][::-1]
    vals = [r["per_100"] for r in rai][::-1]
    colours = species_colours([r["species"] for r in rai])
    ax.barh(names, vals, color=[colours[n] for n in names])
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel("independent records per 100 trap-nights")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlim(0, max(vals or [1.0]) * 1.2 or 1.0)
    return fig


def activity_plot(hours: Sequence[float], species: str) -> Figure:
    """Histogram of records by hour with the circular kernel density over it."""
    fig = Figure(figsize=(6.5, 3.0))
    ax = fig.add_subplot()
    h = np.asarray(hours, float)
    ax.hist(h, bins=np.arange(0, 25, 1), density=True, color="#c9d6e3", edgecolor="white")
    if len(h) >= 2:
        grid = np.linspace(0, 24, 241)
        ax.plot(grid, activity_density(h, grid), color="#0072B2", lw=2, label="kernel density")
        ax.legend(fontsize=8, frameon=False)
    ax.plot(h, np.zeros_like(h), "|", color="#333333", ms=10)
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel("local time of day (h)")
    ax.set_ylabel("density")
    ax.set_title(f"{species}: {len(h)} independent records", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def thumbnail(
    path: Path, box: tuple[float, float, float, float] | None, max_px: int = 360
) -> bytes:
    """A downscaled JPEG of an animal crop (or the whole frame), without metadata.

    Parameters
    ----------
    path:
        The original image.
    box:
        ``(x, y, w, h)`` as fractions of the frame, or ``None`` for the whole frame.
    max_px:
        Longest side of the thumbnail.

    Returns
    -------
    bytes
        JPEG bytes; no EXIF is written, so no GPS position travels with it.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if box is not None:
            W, H = im.size
            x, y, w, h = box
            # a margin of a tenth keeps the whole flank when the box is tight
            mx, my = 0.1 * w, 0.1 * h
            left, top = max(0.0, x - mx) * W, max(0.0, y - my) * H
            right, bottom = min(1.0, x + w + mx) * W, min(1.0, y + h + my) * H
            if right - left >= 4 and bottom - top >= 4:
                im = im.crop((int(left), int(top), int(math.ceil(right)), int(math.ceil(bottom))))
        im.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=82, optimize=True)
    return buf.getvalue()
