"""The census report as ONE self-contained HTML file.

Plots, maps and photographs are inlined as ``data:`` URIs and the style sheet
sits in a ``<style>`` element: the file opens offline, can be e-mailed, and
loads nothing from anywhere (no fonts, scripts or images from a network, no
relative paths that break when the file moves).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape

from irbis.reports import maps, plots
from irbis.reports.census import Census

__all__ = ["render_html", "write_html", "report_figures"]

_TEMPLATES = Path(__file__).with_name("templates")


def _num(value: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant figures, a dash when undefined."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except Exception:  # noqa: BLE001 - Jinja's Undefined, strings: shown as they are
        return "–" if isinstance(value, Undefined) else str(value)
    if not math.isfinite(v):
        return "–" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    if v != 0 and abs(v) >= 10**digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _fixed(value: Any, decimals: int = 1) -> str:
    try:
        v = float(value)
    except Exception:  # noqa: BLE001 - missing values (None, Jinja's Undefined)
        return "–"
    return f"{v:.{decimals}f}" if math.isfinite(v) else "–"


def _exact(value: Any) -> str:
    """Full precision for ``data-*`` attributes (what a test or a script reads back)."""
    try:
        v = float(value)
    except Exception:  # noqa: BLE001 - missing values (None, Jinja's Undefined)
        return ""
    return repr(v) if math.isfinite(v) else ""


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["fixed"] = _fixed
    env.filters["exact"] = _exact
    return env


def report_figures(census: Census, *, dpi: int = 110) -> dict[str, bytes]:
    """PNG bytes of every figure of the report, by name (absent when not drawable).

    Parameters
    ----------
    census:
        A gathered census.
    dpi:
        Resolution of the PNGs.

    Returns
    -------
    dict
        ``effort_map``, ``per_station``, ``rai``, ``activity``, ``density_map``,
        ``threat_map``.
    """
    figs: dict[str, Any] = {"effort_map": maps.effort_map(census)}
    if census.per_station:
        figs["per_station"] = plots.per_station_plot(
            census.per_station, [r["species"] for r in census.species_rai]
        )
    if census.species_rai:
        figs["rai"] = plots.rai_plot(census.species_rai)
    if census.activity_hours and census.main_species:
        figs["activity"] = plots.activity_plot(census.activity_hours, census.main_species)
    dm = maps.density_map(census)
    if dm is not None:
        figs["density_map"] = dm
    tm = maps.threat_map(census)
    if tm is not None:
        figs["threat_map"] = tm
    return {k: plots.fig_png(f, dpi=dpi) for k, f in figs.items()}


def _catalogue_cards(census: Census, thumb_px: int) -> list[dict[str, Any]]:
    cards = []
    for c in census.catalogue:
        photos = []
        for p in c["photos"]:
            try:
                jpeg = plots.thumbnail(p["path"], p["box"], max_px=thumb_px)
            except OSError:
                continue  # an unreadable original is left out, the animal stays listed
            photos.append(
                {
                    "uri": plots.data_uri(jpeg, "image/jpeg"),
                    "side": p["side"],
                    "station": p["station"],
                    "time": p["time"],
                }
            )
        cards.append({**{k: v for k, v in c.items() if k != "photos"}, "photos": photos})
    return cards


def _spot_check_cards(census: Census, thumb_px: int) -> list[dict[str, Any]]:
    """The spot-check frames with their thumbnails (none for a video or unreadable file)."""
    out = []
    for f in census.spot_check:
        try:
            uri = plots.data_uri(plots.thumbnail(f["path"], None, max_px=thumb_px), "image/jpeg")
        except OSError:
            uri = None  # a video or a file gone: listed without a picture
        out.append({**{k: v for k, v in f.items() if k != "path"}, "uri": uri})
    return out


def render_html(
    census: Census,
    *,
    thumb_px: int = 360,
    spot_px: int = 200,
    app_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """The report as one HTML document.

    Parameters
    ----------
    census:
        A gathered census.
    thumb_px:
        Longest side of the catalogue thumbnails, pixels.
    spot_px:
        Longest side of the spot-check thumbnails of frames set aside as blank.
    app_url:
        Address of the review app (``http://host:port``): the spot-check pages
        become links to it. None (default): the pages are printed as paths and
        the file links nowhere.
    progress:
        Called with a word as figures and thumbnails are made.

    Returns
    -------
    str
        The HTML text.
    """
    if progress:
        progress("figures")
    figures = {k: plots.data_uri(v) for k, v in report_figures(census).items()}
    if progress:
        progress("catalogue")
    cards = _catalogue_cards(census, thumb_px)
    spot = _spot_check_cards(census, spot_px)
    template = _env().get_template("report.html.j2")
    colours = plots.species_colours([r["species"] for r in census.species_rai])
    return template.render(
        c=census,
        s=census.summary,
        est=census.estimates,
        figures=figures,
        cards=cards,
        spot=spot,
        app_url=app_url.rstrip("/") if app_url else None,
        colours=colours,
        secr_rows=_secr_rows(census),
    )


def _secr_rows(census: Census) -> list[dict[str, Any]]:
    est = census.estimates
    by_name = {r["name"]: r for r in est.secr_table}
    rows = []
    for name, f in est.secr.items():
        t = by_name.get(name, {})
        rows.append(
            {
                "name": name,
                "D": f["derived"]["D_per_100km2"],
                "N": f["derived"]["N"],
                "sigma": f["real"].get("sigma", {}),
                "lambda0": f["real"].get("lambda0", f["real"].get("g0", {})),
                "logLik": f["logLik"],
                "npar": f["npar"],
                "AICc": f["AICc"],
                "dAICc": t.get("dAICc"),
                "AICcwt": t.get("AICcwt"),
                "best": name == est.secr_best,
            }
        )
    rows.sort(key=lambda r: r["AICc"])
    return rows


def write_html(census: Census, path: str | Path, **kwargs: Any) -> Path:
    """Render the report and write it to ``path`` (via a temporary file, then renamed).

    Parameters
    ----------
    census:
        A gathered census.
    path:
        Where to write the HTML file.
    **kwargs:
        Passed to :func:`render_html`.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    text = render_html(census, **kwargs)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
