"""Boxes drawn in the browser: Debian's Chromium, driven by Playwright, on real frames.

The project is the Camtrap DP example package (a night burst of a grey heron,
2048 x 1440 Reconyx frames). The package's own machine classification gives
one frame a machine box. A reviewer (local mode) draws a box with the mouse,
moves and resizes it with the keyboard, deletes it, accepts the machine box,
confirms "no animal here"; then, on a sequence the detector set aside as
blank, presses the one key "there is an animal here" and the grid stops
listing it as blank. Every step is checked in the database (both backends).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from irbis.store.schema import (
    DetectionBox,
    Media,
    MediaDetection,
    Observation,
    ReviewedBox,
    SequenceVerdict,
)

from .conftest import need_data
from .test_web_browser import ARGS, CHROMIUM, serving

pytestmark = pytest.mark.browser

EXAMPLE = ("cameratrap", "camtrap-dp-example")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _heron_project(project) -> dict:
    """Import the example; give the heron frame the package's machine box as a detection."""
    from irbis.exchange.camtrapdp import import_camtrapdp

    import_camtrapdp(need_data(*EXAMPLE), project)
    with project.session() as s:
        heron = list(
            s.scalars(
                select(Media).where(Media.source_relpath.like("media/%")).order_by(Media.file_name)
            )
        )
        first = heron[0]
        obs = s.scalar(
            select(Observation).where(
                Observation.media_id == first.id, Observation.bbox_x.is_not(None)
            )
        )
        res = MediaDetection(
            media_id=first.id,
            detector="package-model",
            model="Western Europe species model",
            model_version="1",
            threshold=0.1,
            verdict="animal",
            max_score=0.9,
            n_boxes=1,
            created_utc=_now(),
        )
        s.add(res)
        s.flush()
        det = DetectionBox(
            result_id=res.id,
            media_id=first.id,
            frame=0,
            category="animal",
            score=0.9,
            x=obs.bbox_x,
            y=obs.bbox_y,
            width=obs.bbox_w,
            height=obs.bbox_h,
            source="package",
        )
        s.add(det)
        s.commit()
        return {
            "sequence": first.sequence_id,
            "media": first.id,
            "second": next(
                m.id for m in heron if m.sequence_id == first.sequence_id and m.id != first.id
            ),
            "detection": det.id,
            "machine_box": (det.x, det.y, det.width, det.height),
        }


@pytest.fixture
def heron_page(project, tmp_path, request):
    """(page, base URL, ids, artefacts folder) with the app serving the heron project."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"Chromium not found at {CHROMIUM} (installed by `make test`)")
    from playwright.sync_api import sync_playwright

    ids = _heron_project(project)
    out = Path(os.environ.get("IRBIS_TEST_ARTIFACTS") or tmp_path) / request.node.name
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    requests: list[str] = []
    with serving(project) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        try:
            yield page, base, ids, out
        finally:
            context.close()
            browser.close()
    assert not errors, f"JavaScript errors: {errors}"
    assert all(u.startswith(base + "/") for u in requests), requests[:5]


def _rows(project, media_id: int) -> list[ReviewedBox]:
    with project.session() as s:
        return list(
            s.scalars(
                select(ReviewedBox).where(ReviewedBox.media_id == media_id).order_by(ReviewedBox.id)
            )
        )


def _history_rows(page, n: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('#box-history tbody tr').length === {n}")


def test_draw_move_delete_accept_and_no_animal_in_the_browser(heron_page, project):
    page, base, ids, out = heron_page
    mid = ids["media"]
    page.goto(f"{base}/sequences/{ids['sequence']}?media={mid}")
    page.wait_for_function("document.querySelector('#frame').naturalWidth > 0")
    assert page.locator("#frame").get_attribute("src") == f"/api/media/{mid}/file"
    assert page.locator("rect.box.machine").count() == 1  # the machine's box, dashed
    assert "there is an animal here" in page.locator("#box-keys").inner_text()

    # Draw with the mouse: press at 30 % / 20 %, drag to 60 % / 50 % of the frame.
    frame = page.locator("#boxes").bounding_box()

    def at(fx: float, fy: float) -> tuple[float, float]:
        return frame["x"] + fx * frame["width"], frame["y"] + fy * frame["height"]

    page.mouse.move(*at(0.30, 0.20))
    page.mouse.down()
    page.mouse.move(*at(0.45, 0.35), steps=4)
    page.mouse.move(*at(0.60, 0.50), steps=4)
    page.mouse.up()
    _history_rows(page, 1)
    (drawn,) = _rows(project, mid)
    assert drawn.created_by == "local" and drawn.retracted_utc is None and drawn.source == "human"
    px = 2 / frame["width"]  # two screen pixels, as a fraction of the frame
    assert (drawn.x, drawn.y, drawn.width, drawn.height) == pytest.approx(
        (0.30, 0.20, 0.30, 0.30), abs=2 * px
    )
    assert page.locator("rect.rbox.sel").count() == 1  # the new box stays selected
    page.screenshot(path=str(out / "box_drawn.png"))

    # Move it with the keyboard: 3 steps right, 2 down (1 % each), Enter saves.
    for key in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowDown", "ArrowDown"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    _history_rows(page, 2)
    first, moved = _rows(project, mid)
    assert (
        first.id == drawn.id and first.retracted_utc is not None and first.retracted_by == "local"
    )
    assert (moved.x, moved.y) == pytest.approx((drawn.x + 0.03, drawn.y + 0.02), abs=1e-6)
    assert (moved.width, moved.height) == pytest.approx((drawn.width, drawn.height), abs=1e-6)
    # Resize: Shift+arrows move the right and bottom edges; saved by itself after a pause.
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowUp")
    _history_rows(page, 3)
    resized = _rows(project, mid)[-1]
    assert (resized.x, resized.y) == pytest.approx((moved.x, moved.y), abs=1e-6)
    assert (resized.width, resized.height) == pytest.approx(
        (moved.width + 0.01, moved.height - 0.01), abs=1e-6
    )
    # Delete it: the rows stay, all retracted; the history table shows them struck through.
    page.keyboard.press("Delete")
    page.wait_for_function("document.querySelectorAll('#box-history tr.retracted').length === 3")
    assert page.locator("rect.rbox").count() == 0
    assert all(r.retracted_utc is not None for r in _rows(project, mid))

    # Accept the machine box: s selects it, a accepts it.
    page.keyboard.press("s")
    assert page.locator("rect.box.machine.sel").count() == 1
    page.keyboard.press("a")
    _history_rows(page, 4)
    accepted = _rows(project, mid)[-1]
    assert accepted.detection_id == ids["detection"] and accepted.retracted_utc is None
    assert (accepted.x, accepted.y, accepted.width, accepted.height) == pytest.approx(
        ids["machine_box"]
    )
    assert "accepted machine box" in page.locator("#box-history tbody tr").first.inner_text()
    page.screenshot(path=str(out / "box_accepted.png"))

    # "No animal here" with e: the accepted box is retracted, a blank row stands.
    page.keyboard.press("e")
    page.wait_for_function(
        "document.querySelector('#frame-review').textContent.includes('no animal here')"
    )
    rows = _rows(project, mid)
    assert len(rows) == 5
    (current,) = [r for r in rows if r.retracted_utc is None]
    assert current.category == "blank" and current.x is None and current.created_by == "local"
    # The machine's box is still there, as the detector left it.
    with project.session() as s:
        det = s.get(DetectionBox, ids["detection"])
        assert (det.x, det.y, det.width, det.height) == ids["machine_box"]

    # After a reload the page shows the same state, history included.
    page.reload()
    page.wait_for_function("document.querySelector('#frame').naturalWidth > 0")
    assert page.locator("#box-history tbody tr").count() == 5
    assert "no animal here" in page.locator("#frame-review").inner_text()
    page.screenshot(path=str(out / "no_animal.png"), full_page=True)


def test_one_key_animal_here_unblanks_a_set_aside_sequence(heron_page, project):
    page, base, ids, out = heron_page
    sid = ids["sequence"]
    # Another detector judged every frame of the burst and found nothing; a person
    # labelled it blank (over the package model's "Ardea"): set aside as blank
    # (irbis.store.blanks), and this detector, with the most results, is the one shown.
    from irbis.web import labels

    with project.session() as s:
        frames = list(s.scalars(select(Media).where(Media.sequence_id == sid)))
        for m in frames:
            s.add(
                MediaDetection(
                    media_id=m.id,
                    detector="blank-detector",
                    model="t",
                    model_version="1",
                    threshold=0.5,
                    verdict="blank",
                    created_utc=_now(),
                )
            )
        s.add(
            SequenceVerdict(
                sequence_id=sid,
                detector="blank-detector",
                model="t",
                model_version="1",
                threshold=0.5,
                verdict="blank",
                best_media_id=ids["second"],
                best_score=0.0,
                n_media=len(frames),
                n_blank=len(frames),
                created_utc=_now(),
            )
        )
        s.commit()
        versions = {m.id: m.review_version for m in frames}
    labels.label_sequences(project, [(sid, versions)], labels.Label(blank=True), "checker")
    page.goto(f"{base}/sequences?verdict=blank")
    assert page.locator(f'.tile[data-id="{sid}"]').count() == 1
    page.goto(f"{base}/sequences/{sid}?media={ids['second']}")
    page.wait_for_function("document.querySelector('#frame').naturalWidth > 0")
    assert page.locator("#set-aside").is_hidden()
    page.keyboard.press("h")
    page.wait_for_function(
        "document.querySelector('#frame-review').textContent.includes('animal here, no box')"
    )
    assert page.locator("#set-aside").is_visible()
    (mark,) = _rows(project, ids["second"])
    assert (mark.category, mark.x, mark.created_by) == ("animal", None, "local")
    page.screenshot(path=str(out / "animal_here.png"), full_page=True)
    page.goto(f"{base}/sequences?verdict=blank")
    assert page.locator(f'.tile[data-id="{sid}"]').count() == 0
    page.goto(f"{base}/sequences?verdict=animal")
    assert page.locator(f'.tile[data-id="{sid}"]').count() == 1
