"""Rename and split an individual: capture histories, exports and the audit log follow."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from irbis.core.errors import BadInputError
from irbis.exchange.secr_text import project_records
from irbis.store.schema import Annotation, AuditEntry, Individual, Media, Observation
from irbis.web.catalogue_edit import rename_individual, split_individual

from .test_web_api import _now, build_project, client_of  # noqa: F401  (fixture)


def _khan_season(project) -> dict:
    """build_project's catalogue, plus Khan in three more encounters.

    Encounter A: two confirmed crops; encounter B: one confirmed crop and a
    text-only observation "Khan" (as a folder or tag gives); encounter C: a
    text-only observation only.
    """
    ids = build_project(project)
    with project.session() as s:
        used = set(s.scalars(select(Annotation.media_id)).all())
        seqs = s.execute(
            select(Media.sequence_id, func.min(Media.id), func.max(Media.id))
            .where(
                Media.sequence_id.is_not(None),
                Media.id.not_in(used),
                Media.time_flag == "",
                Media.timestamp_local.is_not(None),
            )
            .group_by(Media.sequence_id)
            .having(func.count() >= 2)
            .order_by(Media.sequence_id)
        ).all()[:3]
        assert len(seqs) == 3
        (sa, a1, a2), (sb, b1, _), (sc, c1, _) = seqs
        box = dict(x=0.1, y=0.1, width=0.5, height=0.5)
        for mid in (a1, a2, b1):
            s.add(
                Annotation(
                    media_id=mid, side="left", individual_id=ids["khan"], created_utc=_now(), **box
                )
            )
        for mid in (b1, c1):
            s.add(
                Observation(
                    media_id=mid,
                    species="Panthera uncia",
                    individual=" Khan ",
                    source="xmp",
                    created_utc=_now(),
                )
            )
        s.commit()
    return {**ids, "seq": {"A": sa, "B": sb, "C": sc}, "media": {"b1": b1, "c1": c1}}


def _captures(project) -> Counter:
    return Counter(r["individual"] for r in project_records(project))


def test_rename_keeps_every_sighting_with_the_animal(project):
    ids = _khan_season(project)
    before = _captures(project)
    assert before["Khan"] == 5  # known_a + a1 + a2 + b1 (crop and tag: one) + c1
    res = rename_individual(project, "Khan", "Khan-2012", "tara")
    assert res["old_name"] == "Khan" and res["observations_linked"] == 2
    after = _captures(project)
    assert after["Khan-2012"] == before["Khan"] and "Khan" not in after
    assert after["Bora"] == before["Bora"]
    with project.session() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "rename")).all()
        assert entry.target == f"individual:{ids['khan']}" and entry.after == {"name": "Khan-2012"}
    with pytest.raises(BadInputError, match="another individual has it"):
        rename_individual(project, ids["khan"], "Bora", "tara")
    with pytest.raises(BadInputError, match="1 to 200"):
        rename_individual(project, ids["khan"], "  ", "tara")


def test_split_moves_the_chosen_encounters_only(project):
    ids = _khan_season(project)
    res = split_individual(
        project, "Khan", sequences=[ids["seq"]["B"], ids["seq"]["C"]], into="Zara", actor="tara"
    )
    assert res["created"] and res["into_name"] == "Zara"
    assert len(res["annotations"]) == 1 and len(res["observations"]) == 2
    caps = _captures(project)
    assert caps["Khan"] == 3 and caps["Zara"] == 2
    by_media = {r["media_id"]: r["individual"] for r in project_records(project)}
    assert by_media[ids["media"]["b1"]] == "Zara" and by_media[ids["media"]["c1"]] == "Zara"
    with project.session() as s:
        # Labels are corrected, not overwritten: the tag's row is retracted, a copy names Zara.
        rows = s.execute(
            select(Observation.individual, Observation.retracted_by).where(
                Observation.media_id == ids["media"]["c1"], Observation.individual.is_not(None)
            )
        ).all()
        assert sorted(rows) == [(" Khan ", "tara"), ("Zara", "")]
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "split")).all()
        assert entry.after["into_name"] == "Zara" and len(entry.before["observations"]) == 2
        zara = s.scalar(select(Individual.id).where(Individual.name == "Zara"))
    # Back again, into the existing individual, by one photo.
    back = split_individual(project, zara, media=[ids["media"]["c1"]], into="Khan", actor="tara")
    assert not back["created"] and _captures(project)["Khan"] == 4


def test_split_refuses_what_it_cannot_mean(project):
    ids = _khan_season(project)
    with pytest.raises(BadInputError, match="nothing chosen"):
        split_individual(project, "Khan", into="Zara", actor="t")
    with pytest.raises(BadInputError, match="has no sighting of Khan"):
        split_individual(project, "Khan", sequences=[999_999], into="Zara", actor="t")
    with pytest.raises(BadInputError, match="same animal"):
        split_individual(project, "Khan", sequences=[ids["seq"]["A"]], into="Khan", actor="t")
    with pytest.raises(BadInputError, match="every sighting"):
        split_individual(project, "Bora", annotations=[ids["known_b"]], into="Zara", actor="t")
    with project.session() as s:  # nothing was written by the refusals
        assert s.scalar(select(Individual.id).where(Individual.name == "Zara")) is None
        assert s.scalar(select(func.count()).where(AuditEntry.action == "split")) == 0


def test_rename_and_split_through_the_api_and_the_cli(project, client_of):  # noqa: F811
    from irbis.cli.app import app

    ids = _khan_season(project)
    c = client_of(project)
    r = c.post(f"/api/individuals/{ids['bora']}/rename", json={"name": "Bora-F1"})
    assert r.status_code == 200 and r.json()["name"] == "Bora-F1"
    r = c.post(
        f"/api/individuals/{ids['khan']}/split",
        json={"into": "Zara", "sequences": [ids["seq"]["A"]]},
    )
    assert r.status_code == 200 and len(r.json()["annotations"]) == 2
    if project.engine.dialect.name != "sqlite":
        return  # the CLI opens the project folder (its own SQLite database)
    run = CliRunner().invoke(app, ["individuals", "rename", str(project.root), "Zara", "Zara-M2"])
    assert run.exit_code == 0, run.output
    assert _captures(project)["Zara-M2"] == 2


def test_printable_page_lists_encounters_and_crops_the_best_photos(project, client_of):  # noqa: F811
    from irbis.web.individual_print import _crop_style

    # A box of the lower middle of a 400 x 200 frame: the crop is half as high
    # as wide; the frame is drawn twice the container's width, shifted left
    # and up by half the container's width.
    style = _crop_style({"x": 0.25, "y": 0.5, "width": 0.5, "height": 0.5}, 400, 200)
    assert style == {"pad": 50.0, "w": 200.0, "left": -50.0, "top": -50.0}
    ids = _khan_season(project)
    c = client_of(project)
    page = c.get(f"/individuals/{ids['khan']}/print")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Khan</h1>" in html and "3 encounters" in html and "4 photos" in html
    assert html.count("<tr><td>") >= 3 and "/api/media/" in html and "margin-top" in html
    split_individual(project, "Khan", sequences=[ids["seq"]["B"]], into="Zara", actor="t")
    assert "2 encounters" in c.get(f"/individuals/{ids['khan']}/print").text
    assert c.get(f"/individuals/{ids['khan']}").text.count("/print") == 1
