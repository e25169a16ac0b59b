"""The census report as a PDF, made offline on a laptop.

Two real engines, chosen in this order by ``engine="auto"``:

1. ``chromium``: the HTML report printed by a headless Chromium or Chrome
   found on the machine (``/usr/bin/chromium``, ``chromium``, ``google-chrome``
   ...), so the PDF is the very page a reader sees, with the print style sheet
   (A4, page breaks). Network features are switched off; the page loads only
   its own ``data:`` URIs.
2. ``matplotlib``: when no browser is installed, the same sections laid out
   on A4 pages with matplotlib's ``PdfPages`` (figures, tables as text,
   thumbnails, methods).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from irbis.core.errors import IrbisError
from irbis.reports.census import Census

__all__ = ["find_chromium", "write_pdf"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_A4 = (8.27, 11.69)


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome executable, or ``None``.

    ``IRBIS_CHROMIUM`` names one explicitly; otherwise ``/usr/bin/chromium``
    and the usual names on ``PATH`` are tried.
    """
    explicit = os.environ.get("IRBIS_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium_pdf(browser: str, html: str, out: Path, timeout_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="irbis-pdf-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        pdf = Path(tmp) / "report.pdf"
        cmd = [
            browser,
            "--headless",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={pdf}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--no-sandbox")  # Chromium refuses to run as root otherwise
        cmd.append(page.as_uri())
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise IrbisError(
                f"{browser}: printing the report took over {timeout_s:g} s "
                "(try --pdf-engine matplotlib)"
            ) from exc
        if not pdf.is_file() or pdf.stat().st_size == 0:
            tail = (res.stderr or "").strip().splitlines()[-1:] or [f"exit {res.returncode}"]
            raise IrbisError(
                f"{browser}: could not print the report to PDF ({tail[0]}); "
                "try --pdf-engine matplotlib"
            )
        shutil.move(str(pdf), out)


# ---------------------------------------------------------------------------
# matplotlib layout


def _page(title: str | None = None) -> Figure:
    fig = Figure(figsize=_A4)
    if title:
        fig.text(0.07, 0.955, title, fontsize=15, weight="bold", va="top")
    return fig


def _image(fig: Figure, png: bytes, rect: tuple[float, float, float, float]) -> None:
    from PIL import Image

    ax = fig.add_axes(rect)
    with Image.open(io.BytesIO(png)) as im:  # PNG figures and JPEG thumbnails alike
        ax.imshow(np.asarray(im.convert("RGB")))
    ax.set_axis_off()


def _text(
    fig: Figure,
    x: float,
    y: float,
    lines: list[str],
    size: float = 9.0,
    width: int = 100,
    family: str = "sans-serif",
) -> float:
    """Write wrapped lines from (x, y) downwards; returns the y below them."""
    step = size / 72 / _A4[1] * 1.45
    for line in lines:
        for part in textwrap.wrap(line, width) or [""]:
            fig.text(x, y, part, fontsize=size, va="top", family=family)
            y -= step
    return y


def _fmt(v: Any, d: int = 1) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    return f"{f:.{d}f}" if np.isfinite(f) else "-"


def _blanks_page(census: Census) -> Figure:
    """Set aside as blank: counts per station and the spot-check sample (as the HTML)."""
    from irbis.reports.plots import thumbnail

    s = census.summary
    p = _page("Set aside as blank")
    lines = [
        f"{s['set_aside_sequences']} bursts ({s['set_aside_media']} photographs) set aside as "
        "blank: no frame has a box at the operating point and no reviewer's box or label "
        "says otherwise. Nothing was deleted.",
    ]
    if s.get("too_small_media"):
        lines.append(
            f"{s['too_small_media']} photographs too small for the detector to judge (longer "
            f"side under {s['min_judge_side']} px): not set aside, people look at them."
        )
    if s.get("kept_by_review"):
        lines.append(f"{s['kept_by_review']} bursts the detector found nothing in kept by review.")
    y = _text(p, 0.07, 0.92, lines, 9)
    rows = [
        f"{'station':<20} {'judged':>7} {'set aside':>10} {'photos':>7} {'too small':>10} "
        f"{'kept':>5}",
        *(
            f"{r['station'][:20]:<20} {r['sequences_judged']:>7} {r['set_aside_sequences']:>10} "
            f"{r['set_aside_frames']:>7} {r['too_small_frames']:>10} {r['kept_by_review']:>5}"
            for r in census.blanks.get("per_station", [])[:20]
        ),
    ]
    y = _text(p, 0.09, y - 0.01, rows, 8, family="monospace")
    spot = census.spot_check
    if spot:
        y = _text(
            p,
            0.07,
            y - 0.01,
            [
                f"Spot-check: {len(spot)} set-aside photographs drawn at random (seed "
                f"{census.spot_check_seed}; `irbis blanks sample PROJECT --n {len(spot)} --seed "
                f"{census.spot_check_seed}` lists the same). Open each page in the review app "
                "and mark an animal where there is one."
            ],
            8.5,
        )
        top = y - 0.01
        for i, f in enumerate(spot[:20]):
            col, row = i % 5, i // 5
            rect = (0.06 + col * 0.18, top - 0.13 - row * 0.17, 0.16, 0.12)
            if rect[1] < 0.02:
                break
            with contextlib.suppress(OSError):  # a video or a file gone: its line stays
                _image(p, thumbnail(f["path"], None, 200), rect)
            p.text(rect[0], rect[1] - 0.004, f"{f['station']} {f['page']}", fontsize=6, va="top")
            p.text(rect[0], rect[1] - 0.016, f["time"], fontsize=6, va="top")
    return p


def _ci(r: dict[str, Any], lo: str, hi: str, d: int = 2) -> str:
    return f"{_fmt(r.get(lo), d)}-{_fmt(r.get(hi), d)}"


def _community_section(census: Census, p: Figure, y: float) -> None:
    """Section 9 as the HTML has it: occupancy per species and overlap with the main one."""
    y = _text(p, 0.07, y, ["9. Occupancy and activity overlap"], 12) - 0.005
    if not census.community:
        _text(p, 0.07, y, ["No species was recorded."], 10)
        return
    main = census.main_species
    lines = [
        f"Single-season occupancy of each species over the {census.summary['stations']} "
        f"stations, occasions of {census.community_occasion_days} days (an occasion on which a "
        "camera never worked is missing, not a zero): psi is the probability a station's "
        "surroundings are used by the species, p the probability of recording it on one "
        "occasion if they are."
        + (f" Overlap: coefficient of daily-activity overlap with {main}." if main else ""),
    ]
    y = _text(p, 0.07, y, lines, 8.5, width=105)
    head = f"{'species':<24} {'records':>7} {'stations':>8} {'naive':>6} {'psi (95% CI)':>17} "
    head += f"{'p (95% CI)':>17}" + (f" {'overlap (95% CI)':>17}" if main else "")
    rows = [head]
    for r in census.community:
        if "psi" in r:
            occ = (
                f"{_fmt(r['naive'], 2):>6} {_fmt(r['psi'], 2) + ' (' + _fmt(r['psi_ci'][0], 2)}"
                f"-{_fmt(r['psi_ci'][1], 2)})"
            )
            occ = f"{occ:<24} {_fmt(r['p'], 2)} ({_fmt(r['p_ci'][0], 2)}-{_fmt(r['p_ci'][1], 2)})"
        else:
            occ = str(r.get("reason", ""))[:45]
        ov = ""
        if main and "overlap" in r:
            ov = f"  {_fmt(r['overlap'], 2)} ({_fmt(r['overlap_ci'][0], 2)}-"
            ov += f"{_fmt(r['overlap_ci'][1], 2)})"
        rows.append(f"{str(r['species'])[:24]:<24} {r['records']:>7} {r['stations']:>8} {occ}{ov}")
    _text(p, 0.07, y - 0.01, rows[:30], 7.5, width=130, family="monospace")


def _field_page(census: Census, figs: dict[str, bytes]) -> Figure:
    """Section 10: scat samples, sign transects and snares per patrol effort (as the HTML)."""
    fr = census.field_records
    th, sa = fr["threats"], fr["samples"]
    p = _page("10. Scat samples, signs and snares")
    lines = [
        f"Scat samples: {sa['samples']} collected"
        + (f" ({sa['leopard']} attributed to snow leopard in the field)" if sa["leopard"] else "")
        + f"; {sa['genotyped']} genotyped, giving {sa['genotypes']} genetic individuals, "
        f"{sa['genotypes_linked']} of them linked by a person to a photo-identified animal.",
        f"Snares: {th['snares']} found"
        + (
            " (" + ", ".join(f"{v} {k}" for k, v in sorted(th["status"].items())) + ")"
            if th["status"]
            else ""
        )
        + f" over {_fmt(th['km'])} km of transects and patrols: {_fmt(th['rate'], 2)} per 10 km "
        f"(95% CI {_ci(th, 'lcl', 'ucl')}).",
        f"Cells are the {fr['cell_deg']} deg grid of the location policy"
        + ("; no snare place finer than a cell in this edition." if census.public else "."),
    ]
    y = _text(p, 0.07, 0.92, lines, 8.5, width=105)
    rows = [f"{'transect':<14} {'walked':<11} {'km':>6} {'signs':>6} {'fresh':>6} {'per km':>7}"]
    rows += [
        f"{str(t['transect'])[:14]:<14} {t['walked_on'] or '':<11} {_fmt(t['km'], 2):>6} "
        f"{t['signs']:>6} {t['fresh']:>6} {_fmt(t['per_km'], 2):>7}"
        for t in fr["transects"][:12]
    ]
    if fr["transects"]:
        y = _text(p, 0.09, y - 0.01, rows, 7.5, family="monospace")
    rows = [f"{'cell (lon, lat)':<20} {'snares':>6} {'km':>7} {'per 10 km (95% CI)':>22}  L  M"]
    rows += [
        f"{str(c['lon']) + ', ' + str(c['lat']):<20} {c['snares']:>6} {_fmt(c['km']):>7} "
        f"{_fmt(c['rate'], 2) + ' (' + _ci(c, 'lcl', 'ucl') + ')':>22}  "
        f"{'L' if c['leopard'] else ' '}  {'M' if c['musk_deer'] else ' '}"
        for c in th["cells"][:14]
    ]
    for r in th["regions"][:8]:
        rows.append(
            f"{(th['region_key'] or 'region')}: {str(r['region'])[:20]:<20} {r['snares']:>4} "
            f"snares {_fmt(r['km']):>7} km  {_fmt(r['rate'], 2)} ({_ci(r, 'lcl', 'ucl')})"
        )
    for r in th["seasons"][:8]:
        rows.append(
            f"{r['season']:<14} {r['snares']:>4} snares {_fmt(r['km']):>7} km  "
            f"{_fmt(r['rate'], 2)} per 10 km ({_ci(r, 'lcl', 'ucl')})"
        )
    tr = th["trend"]
    if tr.get("ratio") is not None and np.isfinite(float(tr["ratio"])):
        rows.append(
            f"Trend: x{_fmt(tr['ratio'], 2)} per season"
            + (f" (95% CI {_ci(tr, 'lcl', 'ucl')})" if not tr.get("reason") else "")
        )
    elif tr.get("reason"):
        rows.append(f"Trend: {tr['reason']}")
    ov = th["overlap"]
    rows.append(
        f"Of {ov['snare_cells']} cells with snares, {ov['leopard_cells']} hold snow-leopard "
        f"records ({ov['leopard_snares']} snares), {ov['musk_deer_cells']} musk-deer records "
        f"({ov['musk_deer_snares']} snares), {ov['both_cells']} both."
    )
    y = _text(p, 0.09, y - 0.01, rows, 7.5, width=110, family="monospace")
    if "threat_map" in figs and y > 0.2:
        _image(p, figs["threat_map"], (0.1, 0.04, 0.8, y - 0.06))
    return p


def _matplotlib_pdf(census: Census, out: Path) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    from irbis.reports.html import report_figures
    from irbis.reports.plots import thumbnail

    figs = report_figures(census, dpi=130)
    s, est = census.summary, census.estimates
    edition = (
        f"Public edition: sensitive locations generalised to {census.policy.precision_deg:g} deg"
        if census.public
        else "Precise edition: exact locations of sensitive species - do not share"
    )
    pages: list[Figure] = []

    p = _page(f"Camera-trap census: {census.project}")
    y = _text(p, 0.07, 0.925, [edition, f"Survey {s['first_day']} to {s['last_day']}"], 9)
    rows = [
        f"Camera stations: {s['stations']}    Deployments: {s['deployments']}",
        f"Trap-nights: {_fmt(s['trap_nights'])}    Media: {s['media']}",
        f"Set aside as blank by the detector: {s['set_aside_media']} of {s['media_judged']} "
        f"photographs ({s['set_aside_sequences']} of {s['sequences_judged']} bursts)"
        + (
            f"; {s['too_small_media']} too small for the detector to judge (kept)"
            if s.get("too_small_media")
            else ""
        )
        if s.get("detector")
        else "Set aside as blank by the detector: no detector run",
        f"Independent records: {s['records']} (interval {census.gap_min:g} min)",
        f"Species: {', '.join(s['species']) or 'none'}",
        f"Identified individuals: {len(census.catalogue)}",
    ]
    y = _text(p, 0.07, y - 0.01, ["1. Survey summary"], 12) - 0.005
    y = _text(p, 0.09, y, rows, 9.5)
    _text(p, 0.07, y - 0.01, ["2. Effort map"], 12)
    _image(p, figs["effort_map"], (0.07, 0.05, 0.86, y - 0.08))
    pages.append(p)

    p = _page("3. Detections per station")
    y = 0.93
    if "per_station" in figs:
        _image(p, figs["per_station"], (0.07, 0.64, 0.86, 0.28))
        y = 0.62
    y = _text(p, 0.07, y, ["4. Species relative abundance"], 12) - 0.005
    lines = [
        f"Independent records per 100 trap-nights ({census.gap_min:g}-minute interval).",
        *(
            f"{r['species']:<28} {r['records']:>5} records  {_fmt(r['per_100'], 2):>8} per 100"
            for r in census.species_rai
        ),
    ]
    y = _text(p, 0.09, y, lines, 8.5, family="monospace")
    if "rai" in figs:
        _image(p, figs["rai"], (0.1, 0.05, 0.8, max(0.1, y - 0.08)))
    pages.append(p)

    if s.get("detector"):
        pages.append(_blanks_page(census))

    p = _page("5. Catalogue of individuals")
    cells = [(c, ph) for c in census.catalogue for ph in c["photos"]][:12]
    if not census.catalogue:
        _text(p, 0.07, 0.92, ["No animal has been identified individually yet."], 10)
    for i, (c, ph) in enumerate(cells):
        col, row = i % 3, i // 3
        rect = (0.06 + col * 0.31, 0.70 - row * 0.22, 0.28, 0.19)
        try:
            _image(p, thumbnail(ph["path"], ph["box"], 360), rect)
        except OSError:
            continue
        p.text(
            rect[0],
            rect[1] - 0.005,
            f"{c['name']} ({ph['side']}) {ph['station']}",
            fontsize=7,
            va="top",
        )
    pages.append(p)

    p = _page(f"6. Population estimates: {est.species or '-'}")
    lines = ["Closed-population models (N)"]
    if est.closed:
        lines += [
            f"{m:<8} N {_fmt(f['N'])}  SE {_fmt(f['N_se'])}  95% CI {_fmt(f['N_lcl'])}-"
            f"{_fmt(f['N_ucl'])}  AICc {_fmt(f['AICc'], 2)}"
            for m, f in est.closed.items()
        ]
    else:
        lines.append(est.closed_reason)
    lines += ["", "SECR (density per 100 km2)"]
    if est.secr:
        for r in est.secr_table:
            d = est.secr[r["name"]]["derived"]["D_per_100km2"]
            lines.append(
                f"{r['name']:<6} D {d['estimate']:.3g}  SE {d['se']:.3g}  95% CI "
                f"{d['lcl']:.3g}-{d['ucl']:.3g}  AICc {_fmt(r['AICc'], 2)}  dAICc "
                f"{_fmt(r['dAICc'], 2)}"
            )
    else:
        lines.append(est.secr_reason)
    y = _text(p, 0.07, 0.92, lines, 8.5, width=95, family="monospace")
    if "density_map" in figs:
        _text(p, 0.07, y - 0.01, ["7. Density map"], 12)
        _image(p, figs["density_map"], (0.07, 0.05, 0.86, max(0.1, y - 0.08)))
    pages.append(p)

    p = _page("8. Activity pattern")
    y = 0.93
    if "activity" in figs:
        _image(p, figs["activity"], (0.1, 0.64, 0.8, 0.29))
        y = 0.62
    _community_section(census, p, y)
    pages.append(p)
    if census.field_records:
        pages.append(_field_page(census, figs))

    p = _page(f"{11 if census.field_records else 10}. Methods")
    y = _text(p, 0.07, 0.93, census.methods, 8.5, width=105)
    _text(p, 0.07, y - 0.01, ["References", *census.references], 7.5, width=120)
    pages.append(p)

    with PdfPages(out) as pdf:
        for fig in pages:
            pdf.savefig(fig)


def write_pdf(
    census: Census,
    out: str | Path,
    *,
    html: str | None = None,
    engine: str = "auto",
    timeout_s: float = 180.0,
) -> dict[str, str]:
    """Write the report as a PDF.

    Parameters
    ----------
    census:
        A gathered census.
    out:
        The PDF file to write.
    html:
        The rendered HTML report (rendered here when needed and not given).
    engine:
        ``auto`` (Chromium when found, else matplotlib), ``chromium`` or ``matplotlib``.
    timeout_s:
        Longest time Chromium may take.

    Returns
    -------
    dict
        ``path`` and ``engine`` (what was used, with the browser's path).
    """
    out = Path(out)
    if engine not in ("auto", "chromium", "matplotlib"):
        raise IrbisError(f"--pdf-engine {engine!r}: use auto, chromium or matplotlib")
    browser = find_chromium() if engine in ("auto", "chromium") else None
    if engine == "chromium" and browser is None:
        raise IrbisError(
            "no Chromium or Chrome found (install the chromium package, set IRBIS_CHROMIUM, "
            "or use --pdf-engine matplotlib)"
        )
    tmp = out.with_name(out.name + ".part")
    if browser is not None:
        if html is None:
            from irbis.reports.html import render_html

            html = render_html(census)
        _chromium_pdf(browser, html, tmp, timeout_s)
        used = f"chromium ({browser})"
    else:
        _matplotlib_pdf(census, tmp)
        used = "matplotlib"
    tmp.replace(out)
    return {"path": str(out), "engine": used}
