"""The report in a real browser and on paper: Debian's Chromium driven by Playwright
(nothing downloaded), and the PDF rasterised by poppler's ``pdftoppm``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irbis.reports import build_report
from irbis.reports.pdf import find_chromium

from .test_report import assert_self_contained, build_leopard_season

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _need_chromium() -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")


def _pdf_pages(pdf: Path, tmp: Path) -> list[np.ndarray]:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm not installed (Debian package poppler-utils)")
    out = tmp / "pages"
    out.mkdir()
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(out / "p")], check=True)
    return [
        np.asarray(Image.open(f).convert("L"), dtype=float) for f in sorted(out.glob("p-*.png"))
    ]


def _assert_printed(pdf: Path, tmp: Path) -> int:
    pages = _pdf_pages(pdf, tmp)
    assert len(pages) >= 2
    for i, px in enumerate(pages):
        # a blank page is one flat colour; a printed one has text and figures
        assert px.std() > 8.0, f"page {i + 1} looks blank (std {px.std():.2f})"
        assert (px < 128).mean() > 0.002, f"page {i + 1} has almost no ink"
    return len(pages)


@pytest.mark.browser
def test_report_renders_offline_in_chromium(project, tmp_path):
    """Every image shows, and the page asks for nothing but itself and its data: URIs."""
    pytest.importorskip("playwright")
    _need_chromium()
    from playwright.sync_api import sync_playwright

    build_leopard_season(tmp_path, project, n_stations=6)
    html_path = tmp_path / "report.html"
    pdf_path = tmp_path / "report.pdf"
    res = build_report(project, html_path, pdf=pdf_path, pdf_engine="chromium")
    assert res["pdf_engine"].startswith("chromium")
    html = html_path.read_text(encoding="utf-8")
    refs = assert_self_contained(html)
    assert refs.images >= 5

    seen: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: seen.append(r.url))
            page.goto(html_path.as_uri(), wait_until="load")
            page.wait_for_load_state("networkidle")
            n_img = page.evaluate("document.images.length")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                ".map(i => i.alt)"
            )
            title = page.title()
        finally:
            browser.close()
    assert n_img == refs.images and broken == []
    assert title.startswith("Census report")
    leaving = [u for u in seen if not (u.startswith("data:") or u == html_path.as_uri())]
    assert leaving == [], leaving
    assert html_path.as_uri() in seen

    # Chromium's own print of the same page: A4 pages with ink on every one
    assert _assert_printed(pdf_path, tmp_path) >= 4


def test_report_pdf_without_a_browser(project, tmp_path):
    """The matplotlib layout (for laptops without Chromium) prints every section too."""
    build_leopard_season(tmp_path, project, n_stations=6)
    pdf_path = tmp_path / "report.pdf"
    res = build_report(project, tmp_path / "r.html", pdf=pdf_path, pdf_engine="matplotlib")
    assert res["pdf_engine"] == "matplotlib"
    # summary and effort map; detections and RAI; catalogue; estimates; activity
    # with occupancy (section 9); methods (no detector run, no field records here)
    assert _assert_printed(pdf_path, tmp_path) == 6


def test_auto_engine_prefers_chromium(monkeypatch, tmp_path):
    """``auto`` prints with a browser when one is found, and says which."""
    monkeypatch.delenv("IRBIS_CHROMIUM", raising=False)
    found = find_chromium()
    if CHROMIUM.is_file():
        assert found == str(CHROMIUM)
    monkeypatch.setenv("IRBIS_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert find_chromium() is None
