"""Boxes people drew, exported in Camtrap DP 1.0.2, on the real example package.

The example (tdwg/camtrap-dp) is imported, people draw, move, delete and mark
on its heron frames and on frames with no media-level observation; the
export validates (frictionless, shipped schemas, no network) and carries the
current boxes and marks as ``human`` observations with their bbox, who and
when, and never a moved-away or deleted row. SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from irbis.exchange.camtrapdp import export_camtrapdp, import_camtrapdp, validate_camtrapdp
from irbis.store import boxes
from irbis.store.schema import Media, Observation

from .conftest import need_data

EXAMPLE = ("cameratrap", "camtrap-dp-example")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _observations(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "observations.csv", newline="", encoding="utf-8") as fh:
        return {r["observationID"]: r for r in csv.DictReader(fh)}


def _media_ids(folder: Path) -> set[str]:
    with open(folder / "media.csv", newline="", encoding="utf-8") as fh:
        return {r["mediaID"] for r in csv.DictReader(fh)}


def _machine_only(s, exclude: set[int]) -> list[Media]:
    """Files whose every observation is the package's machine classification."""
    by_media: dict[int, list[Observation]] = {}
    for o in s.scalars(select(Observation).where(Observation.media_id.is_not(None))):
        by_media.setdefault(o.media_id, []).append(o)
    ids = sorted(
        mid
        for mid, obs in by_media.items()
        if mid not in exclude
        and all(
            (o.extra or {}).get("camtrapdp", {}).get("classificationMethod") == "machine"
            for o in obs
        )
    )
    return [s.get(Media, mid) for mid in ids[:2]]


def test_reviewed_boxes_export_as_human_observations(project, tmp_path):
    from irbis.web.labels import Label, label_sequences

    import_camtrapdp(need_data(*EXAMPLE), project)
    with project.session() as s:
        heron = list(
            s.scalars(
                select(Media).where(Media.source_relpath.like("media/%")).order_by(Media.file_name)
            )
        )
        assert len(heron) == 10
        seq_ids = {m.sequence_id for m in heron}
        in_seqs = list(s.scalars(select(Media).where(Media.sequence_id.in_(seq_ids))))
        others = _machine_only(s, {m.id for m in in_seqs})
        assert len(others) == 2
    # A person labels the heron burst (one human observation per file).
    items = [
        (sid, {m.id: m.review_version for m in in_seqs if m.sequence_id == sid}) for sid in seq_ids
    ]
    label_sequences(project, items, Label(species="Ardea cinerea", count=1), "dana")
    with project.session() as s:
        h0, h1, h2, h3 = heron[:4]
        # h0: drawn by alice, moved by bob: only bob's place is exported.
        first = boxes.draw_box(s, h0.id, 0.30, 0.55, 0.40, 0.40, by="alice")
        moved = boxes.move_box(s, first.id, 0.35, 0.60, 0.20, 0.32, by="bob")
        # h1: drawn, then deleted: nothing exported.
        gone = boxes.draw_box(s, h1.id, 0.1, 0.1, 0.2, 0.2, by="alice")
        boxes.retract_box(s, gone.id, by="alice")
        # h2: "no animal here" against dana's heron label of the file: left out, noted.
        contradicted = boxes.mark_no_animal(s, h2.id, by="alice")
        # h3: a person box (a person walked past): the file is a person's in public packages.
        person = boxes.draw_box(s, h3.id, 0.0, 0.2, 0.1, 0.5, by="alice", category="person")
        # Two files only a machine had described: one empty, one with an animal, no box.
        empty = boxes.mark_no_animal(s, others[0].id, by="carol")
        present = boxes.mark_animal_present(s, others[1].id, by="carol")
        s.commit()
        uid = {m.id: m.uid for m in (*heron, *others)}
        bare = others

    out = tmp_path / "pkg"
    res = export_camtrapdp(project, out, public=False)
    assert res.validation.valid, res.validation.errors
    assert validate_camtrapdp(out).valid
    obs = _observations(out)
    mine = {k: v for k, v in obs.items() if k.startswith("r")}
    assert set(mine) == {f"r{moved.id}", f"r{person.id}", f"r{empty.id}", f"r{present.id}"}
    assert res.reviewed_observations == 4
    for gone_id in (first.id, gone.id, contradicted.id):
        assert f"r{gone_id}" not in obs

    row = mine[f"r{moved.id}"]
    assert row["mediaID"] == uid[h0.id] and row["observationLevel"] == "media"
    assert row["observationType"] == "animal" and row["classificationMethod"] == "human"
    assert row["classifiedBy"] == "bob" and row["classificationTimestamp"].endswith("Z")
    got = [float(row[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")]
    assert got == pytest.approx([0.35, 0.60, 0.20, 0.32])
    # The species is the person's label of the file; the count stays on that label.
    assert row["scientificName"] == "Ardea cinerea" and row["count"] == ""
    # The machine's own heron observation of that file is still there, unchanged.
    assert any(
        r["mediaID"] == uid[h0.id] and r["classificationMethod"] == "machine" for r in obs.values()
    )

    p = mine[f"r{person.id}"]
    assert p["observationType"] == "human"
    assert [float(p[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == [
        0,
        0.2,
        0.1,
        0.5,
    ]
    e = mine[f"r{empty.id}"]
    assert (e["observationType"], e["mediaID"], e["bboxX"], e["classifiedBy"]) == (
        "blank",
        uid[bare[0].id],
        "",
        "carol",
    )
    a = mine[f"r{present.id}"]
    assert (a["observationType"], a["bboxX"], a["scientificName"]) == ("animal", "", "")
    assert any("no animal here" in n and uid[h2.id] in n for n in res.notes)

    # Public package: the file with a person box is left out with its observations.
    pub = tmp_path / "public"
    res = export_camtrapdp(project, pub, public=True)
    assert res.validation.valid, res.validation.errors
    assert uid[h3.id] not in _media_ids(pub) and f"r{person.id}" not in _observations(pub)
    assert f"r{moved.id}" in _observations(pub)
