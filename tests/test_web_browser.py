"""End-to-end: Debian's Chromium, driven by Playwright, against ``irbis serve``'s app.

A project is built from camtrapR's real card; the app runs in uvicorn on a free
loopback port. The tests label with the keyboard, reload and see the label
persisted, review a proposed match, save screenshots of the main pages and
check that every request the pages make goes to the app itself.
Screenshots go to ``$IRBIS_TEST_ARTIFACTS`` (default: pytest's tmp_path).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from irbis.store.schema import Annotation, Individual

from .test_web_api import build_project

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(project) -> Iterator[str]:
    """The app on the project in uvicorn on a free loopback port: its base URL."""
    import uvicorn

    from irbis.web import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(project), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served(project):
    """(base URL, ids) of the app serving a project built from the real card."""
    ids = build_project(project)
    with serving(project) as base:
        yield base, ids


@pytest.fixture
def browser_page(served, tmp_path, request):
    """A Chromium page recording every request it makes, and the artefacts folder."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"Chromium not found at {CHROMIUM} (installed by `make test`)")
    from playwright.sync_api import sync_playwright

    base, ids = served
    out = Path(os.environ.get("IRBIS_TEST_ARTIFACTS") or tmp_path) / request.node.name
    out.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page, base, ids, out, requests, errors
        finally:
            context.close()
            browser.close()
    foreign = [u for u in requests if not u.startswith(base + "/")]
    assert not foreign, f"requests to other hosts: {foreign[:5]}"
    assert not errors, f"JavaScript errors: {errors}"


def test_label_with_keyboard_persists(browser_page, project):
    page, base, ids, out, requests, _ = browser_page
    page.goto(f"{base}/")
    page.screenshot(path=str(out / "overview.png"), full_page=True)
    page.goto(f"{base}/map")
    page.wait_for_selector(".leaflet-interactive")
    page.screenshot(path=str(out / "map.png"), full_page=True)

    page.goto(f"{base}/sequences")
    first = page.locator(".tile").first
    seq_id = first.get_attribute("data-id")
    species = page.evaluate("irbis.species")
    assert first.evaluate("el => el === document.activeElement")
    page.keyboard.press("2")  # second species on the hotkey list
    page.wait_for_selector(f'.tile[data-id="{seq_id}"].reviewed')
    page.wait_for_selector("#flash.ok")
    page.screenshot(path=str(out / "grid.png"), full_page=True)

    page.reload()
    tile = page.locator(f'.tile[data-id="{seq_id}"]')
    assert tile.locator(".label.p-human").inner_text() == species[1]
    assert "reviewed" in tile.get_attribute("class")

    # The viewer: blank with b, undo with u, then n goes to the next sequence.
    page.goto(f"{base}/sequences/{seq_id}")
    page.wait_for_function("document.querySelector('#frame').naturalWidth > 0")
    page.keyboard.press("b")
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('blank')"
    )
    page.reload()
    assert page.locator("#current-labels").inner_text().startswith("blank")
    assert page.locator("#provenance tr.retracted").count() >= 1
    page.keyboard.press("u")
    page.wait_for_function(
        f"document.querySelector('#current-labels').textContent.startsWith({species[1]!r})"
    )
    page.keyboard.press("z")
    page.screenshot(path=str(out / "viewer.png"), full_page=True)
    page.keyboard.press("z")
    with page.expect_navigation():
        page.keyboard.press("n")
    assert page.url != f"{base}/sequences/{seq_id}" and "/sequences/" in page.url

    # Bulk: select two tiles with x and label them blank with b.
    page.goto(f"{base}/sequences?station=StationC")
    ids_before = page.locator(".tile").evaluate_all("ts => ts.slice(0, 2).map(t => t.dataset.id)")
    page.keyboard.press("x")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("x")
    page.keyboard.press("b")
    # Wait for the write itself: species sorted into folders count as reviewed
    # (287b5f0), so these tiles carry .reviewed before any key, and navigating
    # away while the queued write is in flight would cancel it.
    page.wait_for_function(
        """ids => ids.every(id => {
            const t = document.querySelector(`.tile[data-id="${id}"] .label.p-human`);
            return t && t.textContent === "blank";
        })""",
        arg=ids_before,
    )
    page.wait_for_selector("#flash.ok:has-text('labelled 2 sequences')")
    page.goto(f"{base}/sequences?reviewed=true&species=blank")
    shown = page.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.id)")
    assert set(ids_before) <= set(shown)
    assert all(u.startswith(base) for u in requests)


def test_review_a_match(browser_page, project):
    page, base, ids, out, _, _ = browser_page
    from irbis.store.schema import Media

    with project.session() as s, s.begin():  # a burst of two: the next photo of the station
        query = s.get(Media, s.get(Annotation, ids["query"]).media_id)
        other = s.scalars(
            select(Media)
            .where(Media.deployment_id == query.deployment_id, Media.id != query.id)
            .order_by(Media.id)
        ).first()
        other.sequence_id = query.sequence_id
    page.goto(f"{base}/identify")
    page.screenshot(path=str(out / "identify_queue.png"), full_page=True)
    page.click("#start-review")
    page.wait_for_function("document.querySelector('#pair-info').textContent.includes('matched')")
    assert "2 matched keypoints" in page.locator("#pair-info").inner_text()
    # the whole frame beside the crop, the query boxed, and the burst to step through
    page.wait_for_function("document.querySelector('#context-frame').naturalWidth > 0")
    assert page.locator(f'#context-boxes rect[data-annotation="{ids["query"]}"]').count() == 1
    n_frames = page.locator("#burst img").count()
    assert n_frames == 2
    assert page.locator("#context-info").inner_text().endswith("this photo")
    at = page.locator("#burst img.on").get_attribute("alt")
    page.keyboard.press("." if at != f"frame {n_frames}" else ",")
    page.wait_for_function(
        "!document.querySelector('#context-info').textContent.includes('this photo')"
    )
    page.keyboard.press("z")
    assert "zoomed" in page.locator("#context-stage").get_attribute("class")
    page.screenshot(path=str(out / "identify.png"), full_page=True)
    page.keyboard.press("z")
    page.keyboard.press("2")  # show Bora
    page.wait_for_function("document.querySelector('#cand-title').textContent.startsWith('Bora')")
    page.keyboard.press("g")  # right flank
    with page.expect_navigation():
        page.keyboard.press("a")
    with project.session() as s:
        ann = s.get(Annotation, ids["query"])
        assert ann.side == "right"
        assert s.scalar(select(Individual.name).where(Individual.id == ann.individual_id)) == (
            "Bora"
        )
    page.goto(f"{base}/individuals/{ids['bora']}")
    page.wait_for_selector(".leaflet-interactive")
    page.screenshot(path=str(out / "individual.png"), full_page=True)
    page.goto(f"{base}/census")
    page.screenshot(path=str(out / "census.png"), full_page=True)
    page.goto(f"{base}/docs")
    page.screenshot(path=str(out / "api_docs.png"), full_page=True)
    for name in ("identify.png", "individual.png", "census.png"):
        assert (out / name).stat().st_size > 5000


def test_station_name_is_text_not_html(browser_page, project):
    """A station named like an HTML tag shows as that text; its script never runs."""
    from irbis.store.schema import Station

    page, base, _, out, _, _ = browser_page
    evil = '<img src=x onerror="window.__xss=1">'
    with project.session() as s:
        st = s.scalar(select(Station).order_by(Station.name))
        st.name = evil
        s.commit()
    page.goto(f"{base}/map")
    page.wait_for_selector(".leaflet-tooltip")
    page.wait_for_timeout(300)  # time for an injected image's onerror to fire
    assert page.evaluate("window.__xss") is None
    assert page.locator(".leaflet-tooltip img").count() == 0
    texts = page.locator(".leaflet-tooltip").all_inner_texts()
    assert any(t.startswith(evil) for t in texts), texts
    page.screenshot(path=str(out / "map_text_names.png"), full_page=True)
