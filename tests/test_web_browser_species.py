"""End-to-end in Debian's Chromium: quick labels never lost, the species panel, observation details.

The project is new: camtrapR's card ingested by station only (no species
folders read, so no species known), and the species come from
``irbis species add`` run as a command while the app serves (the app reads
the list on the next page, no restart). Every write is checked in the
database: the label stored, who and when.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from irbis.cli.app import app as cli
from irbis.store.schema import Media, MediaGroup, Observation

from .conftest import need_data
from .test_web_api import CAMTRAPR
from .test_web_browser import browser_page, serving  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

#: More than nine: the tenth and eleventh have no digit key.
SPECIES = [
    ("PBE", "Prionailurus bengalensis", "leopard cat"),
    ("VTA", "Viverra tangalunga", "Malay civet"),
    ("TRA", "Tragulus", "mouse deer"),
    ("MNE", "Macaca nemestrina", "pig-tailed macaque"),
    ("HAR", "Hemigalus derbyanus", "banded civet"),
    ("SSC", "Sus scrofa", "wild boar"),
    ("CAV", "Capricornis", "serow"),
    ("RHO", "Rusa unicolor", "sambar"),
    ("MMU", "Muntiacus muntjak", "muntjac"),
    ("PUN", "Panthera uncia", "snow leopard"),
    ("OAM", "Ovis ammon", "argali"),
]


def _cli(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def served(project):
    """(base URL, sequence ids with two or more files) of the app on a new project."""
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    import_registry(project, need_data(*CAMTRAPR, "oracle", "camtraps.csv"), date_format="%d/%m/%Y")
    ingest(project, need_data(*CAMTRAPR, "pictures", "sample_images_species_dir"), layout="station")
    with project.session() as s:
        assert s.scalar(select(Observation.id)) is None  # no species known yet
        multi = s.scalars(
            select(MediaGroup.id).where(MediaGroup.kind == "sequence", MediaGroup.n_media > 1)
        ).all()
    with serving(project) as base:
        # While it serves: the species list from the command line.
        for label, sci, common in SPECIES:
            _cli(
                "species",
                "add",
                str(project.root),
                label,
                "--scientific",
                sci,
                "--vernacular",
                common,
            )
        yield base, sorted(multi)


def _current(project, seq_id: int) -> list[tuple]:
    """``(media, species, by)`` of the sequence's current human observations."""
    with project.session() as s:
        return s.execute(
            select(Observation.media_id, Observation.species, Observation.by)
            .join(Media, Media.id == Observation.media_id)
            .where(
                Media.sequence_id == seq_id,
                Observation.source == "human",
                Observation.retracted_utc.is_(None),
            )
            .order_by(Observation.media_id, Observation.id)
        ).all()


def _media(project, seq_id: int) -> list[int]:
    with project.session() as s:
        return list(
            s.scalars(select(Media.id).where(Media.sequence_id == seq_id).order_by(Media.id))
        )


def _settled(page) -> None:
    """Wait until the page has no request to the API in flight."""
    page.wait_for_load_state("networkidle")


def _open(page, base: str, seq_id: int) -> None:
    page.goto(f"{base}/sequences/{seq_id}")
    page.wait_for_function("document.querySelector('#frame').naturalWidth > 0")


def test_fast_successive_labels_keep_the_last(browser_page, project):  # noqa: F811
    page, base, multi, out, _, _ = browser_page
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda r: statuses.append((r.status, r.url)))
    for seq_id in multi[:4]:
        _open(page, base, seq_id)
        species = page.evaluate("irbis.species")
        assert species[:4] == ["PBE", "VTA", "TRA", "MNE"]
        page.keyboard.press("3")  # no wait between the two keys
        page.keyboard.press("4")
        page.wait_for_function(
            "document.querySelector('#current-labels').textContent.startsWith('MNE')"
        )
        _settled(page)
        media = _media(project, seq_id)
        assert len(media) > 1
        assert _current(project, seq_id) == [(m, "MNE", "local") for m in media]
        with project.session() as s:  # the first label is in the history, retracted
            first = s.scalars(
                select(Observation).where(
                    Observation.media_id.in_(media), Observation.species == "TRA"
                )
            ).all()
            assert len(first) == len(media) and all(o.retracted_utc for o in first)

    # A label then undo at once: the label is written and undone, the one before is back.
    seq_id = multi[0]
    _open(page, base, seq_id)
    page.keyboard.press("1")
    page.keyboard.press("u")
    _settled(page)
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('MNE')"
    )
    media = _media(project, seq_id)
    assert _current(project, seq_id) == [(m, "MNE", "local") for m in media]
    with project.session() as s:
        pbe = s.scalars(
            select(Observation).where(Observation.media_id.in_(media), Observation.species == "PBE")
        ).all()
        assert len(pbe) == len(media) and all(o.retracted_by == "local" for o in pbe)

    # Undo again, and once more: back to no label, then "nothing to undo" (422), no 409.
    page.keyboard.press("u")
    page.keyboard.press("u")
    _settled(page)
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.includes('no label yet')"
    )
    assert _current(project, seq_id) == []
    assert not [s for s in statuses if s[0] == 409], statuses
    page.screenshot(path=str(out / "fast_labels.png"), full_page=True)

    # In the grid: 3 then 4 with no wait label this tile and the next.
    page.goto(f"{base}/sequences")
    tiles = page.locator(".tile").evaluate_all("ts => ts.map(t => Number(t.dataset.id))")
    free = next(
        (a, b)
        for a, b in zip(tiles, tiles[1:], strict=False)
        if not _current(project, a) and not _current(project, b)
    )
    page.locator(f'.tile[data-id="{free[0]}"]').focus()
    page.keyboard.press("3")
    page.keyboard.press("4")
    page.wait_for_selector(f'.tile[data-id="{free[1]}"].reviewed')
    _settled(page)
    assert {sp for _, sp, _ in _current(project, free[0])} == {"TRA"}
    assert {sp for _, sp, _ in _current(project, free[1])} == {"MNE"}
    assert not [s for s in statuses if s[0] == 409], statuses


def test_a_real_conflict_still_says_so(browser_page, project):  # noqa: F811
    """Another person labels meanwhile: the page says who, and the keys pressed before
    the conflict was shown are not sent over that person's label."""
    from irbis.web import labels

    page, base, multi, _, _, _ = browser_page
    seq_id = multi[1]
    _open(page, base, seq_id)
    with project.session() as s:
        versions = {
            m: v
            for m, v in s.execute(
                select(Media.id, Media.review_version).where(Media.sequence_id == seq_id)
            )
        }
    labels.label_sequences(project, [(seq_id, versions)], labels.Label(species="SSC"), "tara")
    # 2 and 3 in one go (faster than any answer): both meant for the page as loaded.
    page.evaluate(
        """for (const key of ["2", "3"])
             document.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));"""
    )
    page.wait_for_selector("#flash.error")
    assert "changed by tara" in page.locator("#flash").inner_text()
    _settled(page)
    assert {(sp, by) for _, sp, by in _current(project, seq_id)} == {("SSC", "tara")}
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('SSC')"
    )
    page.keyboard.press("2")  # now, having seen it: the person's own label goes in
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('VTA')"
    )
    _settled(page)
    assert {(sp, by) for _, sp, by in _current(project, seq_id)} == {("VTA", "local")}


def test_species_panel_on_a_new_project(browser_page, project):  # noqa: F811
    page, base, multi, out, _, _ = browser_page
    seq_id = multi[2]
    _open(page, base, seq_id)
    buttons = page.locator("#species-buttons button.sp")
    assert buttons.count() == len(SPECIES)
    keys = page.locator("#species-buttons button.sp kbd").all_inner_texts()
    assert keys == [str(k) for k in range(1, 10)]  # digits for the first nine only
    assert page.evaluate("irbis.species") == [label for label, _, _ in SPECIES[:9]]

    # A click on the tenth species, which has no key.
    page.click('#species-buttons button.sp[data-label="PUN"]')
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('PUN')"
    )
    _settled(page)
    assert {sp for _, sp, _ in _current(project, seq_id)} == {"PUN"}

    # Search by common name ("/" focuses the search), Enter labels with the match.
    page.keyboard.press("/")
    page.keyboard.type("argal")
    assert page.locator("#species-buttons button.sp:visible").count() == 1
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('OAM')"
    )
    _settled(page)
    assert {sp for _, sp, _ in _current(project, seq_id)} == {"OAM"}
    # By scientific name too.
    page.fill("#species-search", "prionailurus")
    assert page.locator("#species-buttons button.sp:visible").all_inner_texts() == [
        "1 PBE leopard cat"
    ]
    page.screenshot(path=str(out / "species_panel.png"), full_page=True)

    # Not in the list: an admin adds it from the search, and it labels at once.
    page.fill("#species-search", "Lynx lynx")
    assert page.locator("#species-buttons button.sp:visible").count() == 0
    page.click("#species-add")
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('Lynx lynx')"
    )
    _settled(page)
    assert {sp for _, sp, _ in _current(project, seq_id)} == {"Lynx lynx"}
    saved = json.loads((project.root / "irbis.json").read_text())["extra"]["species"]
    assert len(saved) == len(SPECIES) + 1
    # Filled from irbis's taxa table, as `irbis species add` does (9f389dd).
    assert saved[-1]["label"] == saved[-1]["scientific_name"] == "Lynx lynx"
    assert saved[-1]["vernacular_name"] == "Eurasian lynx"

    # In the grid a click labels the focused tile.
    page.goto(f"{base}/sequences")
    tile = page.locator(".tile").nth(3)
    target = int(tile.get_attribute("data-id"))
    tile.focus()
    page.click('#species-buttons button.sp[data-label="OAM"]')
    page.wait_for_selector(f'.tile[data-id="{target}"].reviewed')
    _settled(page)
    assert {sp for _, sp, _ in _current(project, target)} == {"OAM"}


def test_observation_details_box(browser_page, project):  # noqa: F811
    page, base, multi, out, _, _ = browser_page
    seq_id = multi[3]
    _open(page, base, seq_id)
    row = page.locator("#obs-form tr.obs-row").first
    row.locator('[name="species"]').fill("PUN")
    row.locator('[name="count"]').fill("1")
    row.locator('[name="sex"]').select_option("female")
    row.locator('[name="life_stage"]').select_option("adult")
    row.locator('[name="behavior"]').fill("scent marking")
    row.locator('[name="comments"]').fill("collar scar on the neck")
    page.click("#obs-add")
    cubs = page.locator("#obs-form tr.obs-row").nth(1)
    cubs.locator('[name="species"]').fill("PUN")
    cubs.locator('[name="count"]').fill("2")
    cubs.locator('[name="life_stage"]').select_option("juvenile")
    page.click("#obs-save")
    page.wait_for_selector("#flash.ok")
    _settled(page)

    page.reload()
    page.wait_for_selector("#obs-form tr.obs-row")
    rows = page.locator("#obs-form tr.obs-row")
    assert rows.count() == 2
    first, second = rows.nth(0), rows.nth(1)
    assert first.locator('[name="sex"]').input_value() == "female"
    assert first.locator('[name="life_stage"]').input_value() == "adult"
    assert first.locator('[name="behavior"]').input_value() == "scent marking"
    assert first.locator('[name="comments"]').input_value() == "collar scar on the neck"
    assert second.locator('[name="count"]').input_value() == "2"
    assert second.locator('[name="life_stage"]').input_value() == "juvenile"
    assert "female · adult · scent marking" in page.locator("#provenance").inner_text()
    page.screenshot(path=str(out / "observation_details.png"), full_page=True)

    media = _media(project, seq_id)
    with project.session() as s:
        rows_db = s.execute(
            select(
                Observation.media_id,
                Observation.species,
                Observation.count,
                Observation.sex,
                Observation.life_stage,
                Observation.behavior,
                Observation.comments,
                Observation.by,
                Observation.created_utc,
            )
            .where(
                Observation.media_id.in_(media),
                Observation.source == "human",
                Observation.retracted_utc.is_(None),
            )
            .order_by(Observation.media_id, Observation.id)
        ).all()
    assert [r[:7] for r in rows_db] == [
        row
        for m in media
        for row in (
            (m, "PUN", 1, "female", "adult", "scent marking", "collar scar on the neck"),
            (m, "PUN", 2, None, "juvenile", None, ""),
        )
    ]
    assert {r.by for r in rows_db} == {"local"} and all(r.created_utc for r in rows_db)

    # A key press replaces them (kept in the history) and u brings them back.
    page.keyboard.press("1")
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('PBE')"
    )
    page.keyboard.press("u")
    _settled(page)
    page.wait_for_function(
        "document.querySelector('#current-labels').textContent.startsWith('PUN')"
    )
    with project.session() as s:
        back = s.execute(
            select(Observation.sex, Observation.life_stage, Observation.count)
            .where(
                Observation.media_id == media[0],
                Observation.source == "human",
                Observation.retracted_utc.is_(None),
            )
            .order_by(Observation.id)
        ).all()
    assert back == [("female", "adult", 1), (None, "juvenile", 2)]
