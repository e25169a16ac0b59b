"""``irbis species``: the project's species list from the command line (both backends)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

from sqlalchemy import select
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.store.schema import Individual, Observation


def _run(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def _fails(*args: str) -> str:
    """Run the installed command as a person would; it must fail with one line."""
    res = subprocess.run(
        [sys.executable, "-m", "irbis", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def _listed(project) -> list[dict]:
    return json.loads(_run("species", "list", str(project.root), "--json"))


def test_species_add_list_edit_remove(project):
    root = str(project.root)
    res = CliRunner().invoke(app, ["species", "list", root])
    assert res.exit_code == 0 and "no species yet" in res.output
    assert _listed(project) == []

    _run("species", "add", root, "Panthera uncia", "--vernacular", "snow leopard", "--key", "5")
    _run("species", "add", root, "SIB", "--scientific", "Capra sibirica", "--vernacular", "ibex")
    for i in range(9):
        _run("species", "add", root, f"sp{i}")
    rows = _listed(project)
    assert [(r["label"], r["key"]) for r in rows[:3]] == [
        ("Panthera uncia", "5"),
        ("SIB", "1"),
        ("sp0", "2"),
    ]
    assert len(rows) == 11 and [r["key"] for r in rows[-2:]] == ["", ""]  # only nine digits
    assert rows[1]["scientific_name"] == "Capra sibirica" and rows[1]["listed"]
    table = _run("species", "list", root)
    assert "snow leopard" in table and "Capra sibirica" in table

    # Mistakes: one line each, nothing changed.
    assert "already in the list" in _fails("species", "add", root, "SIB")
    assert "5 is already 'Panthera uncia'" in _fails("species", "add", root, "x", "--key", "5")
    assert "not a digit 1..9" in _fails("species", "add", root, "x", "--key", "0")
    assert "'blank' is not a species" in _fails("species", "add", root, "blank")
    assert "is not in the project's list" in _fails("species", "edit", root, "Lynx", "--key", "2")
    assert len(_listed(project)) == 11

    _run("species", "edit", root, "SIB", "--vernacular", "Siberian ibex", "--key", "9")
    _run("species", "remove", root, "sp8")
    rows = {r["label"]: r for r in _listed(project)}
    assert rows["SIB"]["vernacular_name"] == "Siberian ibex" and rows["SIB"]["key"] == "9"
    assert "sp8" not in rows
    saved = json.loads((project.root / "irbis.json").read_text())["extra"]["species"]
    # Both are in irbis's taxa table: rank, taxon ID (where checked) and names come from it.
    from irbis.store.taxa import lookup

    def taxon(name: str) -> dict:
        t = lookup(name)
        return {"rank": "species", **({"taxon_id": t.taxon_id} if t.taxon_id else {})}

    assert saved[:2] == [
        {
            "label": "Panthera uncia",
            "scientific_name": "Panthera uncia",
            "vernacular_name": "snow leopard",
            "key": "5",
            **taxon("Panthera uncia"),
            "vernacular_names": {"eng": "snow leopard", "rus": "снежный барс"},
        },
        {
            "label": "SIB",
            "scientific_name": "Capra sibirica",
            "vernacular_name": "Siberian ibex",
            "key": "9",
            **taxon("Capra sibirica"),
            "vernacular_names": {"eng": "Siberian ibex", "rus": "сибирский горный козёл"},
        },
    ]


def test_species_rename_and_older_lists(project):
    root = str(project.root)
    # An older project: a plain list of names in irbis.json, and folder labels.
    project.settings.extra["species"] = ["PBE", "Panthera uncia"]
    project.save_settings()
    now = datetime.now(UTC).replace(tzinfo=None)
    with project.session() as s:
        for sp, src in (("PBE", "folder"), ("PBE", "human"), ("VTA", "folder")):
            s.add(Observation(species=sp, source=src, created_utc=now, level="event"))
        s.add(Individual(name="Lek", species="PBE", created_utc=now))
        s.commit()
    rows = _listed(project)
    assert [(r["label"], r["key"], r["listed"], r["observations"]) for r in rows] == [
        ("PBE", "1", True, 2),
        ("Panthera uncia", "2", True, 0),
        ("VTA", "3", False, 1),
    ]

    out = json.loads(
        _run("species", "rename", root, "PBE", "Prionailurus bengalensis", "--by", "ana", "--json")
    )
    assert out == {
        "old": "PBE",
        "new": "Prionailurus bengalensis",
        "observations": 2,
        "individuals": 1,
    }
    with project.session() as s:
        renamed = s.scalars(
            select(Observation).where(Observation.species == "Prionailurus bengalensis")
        ).all()
        assert len(renamed) == 2
        assert all(
            o.extra["renamed_from"] == "PBE" and o.extra["renamed_by"] == "ana" for o in renamed
        )
        assert s.scalar(select(Observation.id).where(Observation.species == "PBE")) is None
        assert s.scalar(select(Individual.species).where(Individual.name == "Lek")) == (
            "Prionailurus bengalensis"
        )
    saved = json.loads((project.root / "irbis.json").read_text())["extra"]["species"]
    assert saved == [
        {"label": "Prionailurus bengalensis", "aliases": ["PBE"]},
        {"label": "Panthera uncia"},
    ]
    # A species observed but not listed is listed under its new label.
    _run("species", "rename", root, "VTA", "Viverra tangalunga")
    labels = [r["label"] for r in _listed(project)]
    assert labels == ["Prionailurus bengalensis", "Panthera uncia", "Viverra tangalunga"]
    # Renaming onto a listed species would merge two: refused, nothing changed.
    msg = _fails("species", "rename", root, "Viverra tangalunga", "Panthera uncia")
    assert "already in the list" in msg
    assert "is not in the project's list" in _fails("species", "rename", root, "Nope", "X")
    with project.session() as s:
        assert (
            s.scalar(
                select(Observation.species)
                .where(Observation.source == "folder")
                .order_by(Observation.id.desc())
            )
            == "Viverra tangalunga"
        )
