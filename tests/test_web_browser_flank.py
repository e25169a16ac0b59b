"""The proposed flank in Debian's Chromium: shown on the review page, taken with one key, stored.

A real three-photo sequence of the web test project carries three boxes of a
cat walking right (``walking_right``); the reviewer opens the middle one,
whose side nobody has set, reads the proposal, presses ``f`` and files the
animal as a new individual, Altai-7 (``w``): the annotation's side is stored as the proposal's.
"""

from __future__ import annotations

import pytest

from irbis.store.schema import Annotation

from .test_reid_flank import walking_right
from .test_web_browser import browser_page, serving  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def served(project):
    """(base URL, annotation ids) of the app on the walking-right project."""
    ids = walking_right(project)
    with serving(project) as base:
        yield base, ids


def test_f_takes_the_proposed_flank_and_the_decision_stores_it(browser_page, project):  # noqa: F811
    page, base, ids, out, _, _ = browser_page
    page.goto(f"{base}/identify/{ids[1]}")
    hint = page.locator("#side-proposal")
    assert "proposed flank: right (walking right)" in hint.inner_text()
    side = page.locator("#side")
    assert side.input_value() == "unknown"
    page.keyboard.press("f")
    assert side.input_value() == "right"
    page.screenshot(path=str(out / "flank-proposed.png"), full_page=True)
    page.once("dialog", lambda d: d.accept("Altai-7"))  # the new individual's name
    with page.expect_response(lambda r: r.url.endswith(f"/api/annotations/{ids[1]}/decision")) as r:
        page.keyboard.press("w")
    assert r.value.ok, r.value.text()
    with project.session() as s:
        filed = s.get(Annotation, ids[1])
        assert filed.side == "right" and filed.individual_id is not None
        assert s.get(Annotation, ids[2]).side == "left"  # the person's side elsewhere stays
    page.goto(f"{base}/identify/{ids[2]}")
    assert page.locator("#side-proposal").count() == 0  # a set side gets no proposal
