"""End-to-end in Debian's Chromium: ``p`` accepts the classifier's proposal in the grid.

camtrapR's card ingested by station (nobody labelled anything), proposals
written as ``irbis classify`` writes them; the grid is opened in the
lowest-margin order, ``p`` accepts on the focused tile, ``u`` undoes it. Every
step is checked in the database.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from irbis.store.schema import Media, Observation

from .test_web_browser import browser_page, serving  # noqa: F401 - the fixture
from .test_web_proposals import _ingest, propose

pytestmark = pytest.mark.browser


@pytest.fixture
def served(project):
    """(base URL, proposed sequence ids) of the app on the project."""
    _ingest(project)
    seqs = propose(project)
    with serving(project) as base:
        yield base, seqs


def _human(project, seq_id: int) -> list[tuple]:
    with project.session() as s:
        return s.execute(
            select(Observation.species, Observation.by, Observation.extra)
            .join(Media, Media.id == Observation.media_id)
            .where(
                Media.sequence_id == seq_id,
                Observation.source == "human",
                Observation.retracted_utc.is_(None),
            )
        ).all()


def test_p_accepts_the_proposal_and_u_takes_it_back(browser_page, project):  # noqa: F811
    page, base, seqs, out, _, _ = browser_page
    page.goto(f"{base}/sequences?sort=margin")
    tiles = page.locator(".tile")
    # Lowest margin first: the unsure one (no species to accept), then ibex 0.55.
    order = tiles.evaluate_all("ts => ts.map(t => Number(t.dataset.id))")
    assert order == [seqs[i] for i in (1, 3, 4, 2, 0)]
    assert tiles.first.locator(".proposal").inner_text() == "proposed: unknown (ibex?) 0.40"

    page.keyboard.press("p")  # the unsure one: nothing to accept
    page.wait_for_selector("#flash.error:has-text('no species proposal')")
    assert _human(project, seqs[1]) == []

    page.keyboard.press("ArrowRight")
    page.keyboard.press("p")
    page.wait_for_selector(f'.tile[data-id="{seqs[3]}"].reviewed .label.p-human')
    page.wait_for_selector("#flash.ok:has-text('accepted the proposal')")
    page.screenshot(path=str(out / "grid-accepted.png"), full_page=True)
    rows = _human(project, seqs[3])
    assert rows and all(sp == "ibex" and by == "local" for sp, by, _ in rows)
    assert all(ex["proposal"]["probability"] == 0.55 for _, _, ex in rows)
    # The focus moved on, as after a species key.
    assert page.evaluate("document.activeElement.dataset.id") == str(seqs[4])

    page.keyboard.press("u")
    page.wait_for_selector("#flash.ok:has-text('undone')")
    assert _human(project, seqs[3]) == []
    page.reload()
    tile = page.locator(f'.tile[data-id="{seqs[3]}"]')
    assert "reviewed" not in (tile.get_attribute("class") or "")
    assert tile.locator(".proposal").inner_text() == "proposed: ibex 0.55"


def test_y_accepts_the_proposal_on_the_sequence_page(browser_page, project):  # noqa: F811
    page, base, seqs, out, _, _ = browser_page
    page.goto(f"{base}/sequences/{seqs[3]}")
    line = page.locator("#proposal .proposal")
    page.wait_for_function("!document.querySelector('#proposal').hidden")
    assert line.inner_text().startswith("proposed: ibex 0.55")
    page.keyboard.press("y")
    page.wait_for_selector("#flash.ok:has-text('accepted the proposal: ibex')")
    rows = _human(project, seqs[3])
    assert rows and all(sp == "ibex" and by == "local" for sp, by, _ in rows)
    assert all(ex["proposal"]["probability"] == 0.55 for _, _, ex in rows)
    assert "accepted" in (page.locator("#proposal").get_attribute("class") or "")
    page.screenshot(path=str(out / "sequence-accepted.png"), full_page=True)
    page.keyboard.press("u")
    page.wait_for_selector("#flash.ok:has-text('undone')")
    assert _human(project, seqs[3]) == []

    page.goto(f"{base}/sequences/{seqs[1]}")  # the unsure one: nothing to accept
    page.wait_for_function("!document.querySelector('#proposal').hidden")
    assert page.locator("#accept-proposal").is_disabled()
    page.keyboard.press("y")
    page.wait_for_selector("#flash.error:has-text('no species proposal')")
    assert _human(project, seqs[1]) == []
