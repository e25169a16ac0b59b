"""Publishing metadata (``irbis project meta``) and taxonomy in Camtrap DP exports.

The packages are checked with the standard's own profile and table schemas
(offline, shipped with irbis), the way tests/test_exchange_camtrapdp_official.py does.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import jsonschema
import pytest
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.exchange.camtrapdp_validate import load_profile
from irbis.store import Project
from tests.test_exchange_camtrapdp_official import _profile_errors, _table_errors

TARA = "Tara Nyima|principalInvestigator|Altai State Nature Reserve|tara@example.org"
IVAN = "Ivan Petrov|contact||ivan@example.org|https://orcid.org/0000-0002-1825-0097"


def _run(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def _fails(*args: str) -> str:
    """The installed command as a person runs it: exit 2 and one line saying why."""
    res = subprocess.run(
        [sys.executable, "-m", "irbis", *args], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def _meta(root) -> dict:
    return json.loads(_run("project", "meta", str(root), "--json"))


def test_vocabularies_are_the_profiles():
    from irbis.exchange import package_meta as pm
    from irbis.store import taxa

    props = load_profile()["allOf"][1]["properties"]
    assert pm.ROLES == (
        "contact",
        "principalInvestigator",
        "rightsHolder",
        "publisher",
        "contributor",
    )
    assert pm.SAMPLING_DESIGNS == (
        "simpleRandom",
        "systematicRandom",
        "clusteredRandom",
        "experimental",
        "targeted",
        "opportunistic",
    )
    assert tuple(props["taxonomic"]["items"]["properties"]["taxonRank"]["enum"]) == taxa.RANKS


def test_taxa_table_keys_are_the_checked_ones():
    """Only GBIF keys checked against a published record are in the table (see its header)."""
    from irbis.store import taxa

    keyed = {t.scientific_name: t.gbif_key for t in taxa.table() if t.gbif_key}
    assert keyed == {
        "Panthera uncia": "5787213",
        "Homo sapiens": "2436436",
        "Canis lupus": "5219173",
        "Camelus bactrianus": "2441238",
        "Rangifer tarandus": "5220114",
        "Sus scrofa": "7705930",
    }
    for t in taxa.table():
        assert t.rank in taxa.RANKS and set(t.vernacular_names) == {"eng", "rus"}, t


def test_meta_show_set_and_refuse(tmp_path):
    root = tmp_path / "p"
    Project.init(root).close()
    m = _meta(root)
    assert m["samplingDesign"] == "targeted" and m["sources"]["samplingDesign"] == "default"
    assert [x["scope"] for x in m["licenses"]] == ["data", "media"]
    assert "contributors" not in m

    _run(
        "project", "meta", str(root),
        "--title", "Snow leopards of the Argut, 2026",
        "--description", "Camera-trap census of *Panthera uncia*.",
        "--id", "https://doi.org/10.5281/zenodo.0000000",
        "--contributor", TARA,
        "--contributor", "Someone|contributor",
        "--licence", "CC-BY-4.0",
        "--media-licence", "cc-by-nc-4.0",
        "--citation", "Nyima T, Petrov I (2026) Snow leopards of the Argut.",
        "--keyword", "snow leopard", "--keyword", "Altai", "--keyword", "Altai",
        "--sampling-design", "systematicRandom",
    )  # fmt: skip
    _run("project", "meta", str(root), "--add-contributor", IVAN)
    _run("project", "meta", str(root), "--remove-contributor", "Someone")
    m = _meta(root)
    assert m["title"] == "Snow leopards of the Argut, 2026"
    assert m["contributors"] == [
        {
            "title": "Tara Nyima",
            "role": "principalInvestigator",
            "organization": "Altai State Nature Reserve",
            "email": "tara@example.org",
        },
        {
            "title": "Ivan Petrov",
            "role": "contact",
            "email": "ivan@example.org",
            "path": "https://orcid.org/0000-0002-1825-0097",
        },
    ]
    assert [(x["scope"], x["name"]) for x in m["licenses"]] == [
        ("data", "CC-BY-4.0"),
        ("media", "CC-BY-NC-4.0"),
    ]
    assert m["keywords"] == ["snow leopard", "Altai"]
    assert m["samplingDesign"] == "systematicRandom"
    assert set(m["sources"].values()) == {"set"}
    shown = _run("project", "meta", str(root))
    assert "Tara Nyima (principalInvestigator)" in shown and "systematicRandom" in shown

    # Values outside the standard's vocabularies: one line, nothing changed.
    before = (root / "irbis.json").read_text()
    assert "simpleRandom" in _fails("project", "meta", str(root), "--sampling-design", "random")
    assert "principalInvestigator" in _fails(
        "project", "meta", str(root), "--contributor", "X|boss"
    )
    assert "e-mail" in _fails("project", "meta", str(root), "--add-contributor", "X||Org|x-at-y")
    assert "CC-BY-4.0" in _fails("project", "meta", str(root), "--licence", "MIT")
    assert "not a contributor" in _fails(
        "project", "meta", str(root), "--remove-contributor", "Nobody"
    )
    assert "field" in _fails("project", "meta", str(root), "--unset", "colour")
    assert (root / "irbis.json").read_text() == before

    # Clearing: '' clears a text, --unset brings the default back.
    _run("project", "meta", str(root), "--description", "", "--unset", "samplingDesign")
    m = _meta(root)
    assert "description" not in m and m["samplingDesign"] == "targeted"


def test_species_add_fills_from_irbis_taxa_table(tmp_path):
    from irbis.store import taxa

    root = tmp_path / "p"
    Project.init(root).close()
    r = str(root)
    snow = json.loads(_run("species", "add", r, "snow leopard", "--json"))
    assert snow["scientific_name"] == "Panthera uncia" and snow["rank"] == "species"
    assert snow["vernacular_names"] == {"eng": "snow leopard", "rus": "снежный барс"}
    entry = taxa.lookup("Panthera uncia")
    assert snow["taxon_id"] == entry.taxon_id  # "" where the key could not be checked
    # By scientific name, a label of the team's own; by a Russian name.
    ibex = json.loads(_run("species", "add", r, "SIB", "--scientific", "Capra sibirica", "--json"))
    assert ibex["vernacular_names"]["rus"] == "сибирский горный козёл"
    wolf = json.loads(_run("species", "add", r, "волк", "--json"))
    assert wolf["scientific_name"] == "Canis lupus" and wolf["vernacular_name"] == "grey wolf"
    # What is given wins; --no-table takes nothing; unknown names stay as they are.
    fox = json.loads(
        _run(
            "species",
            "add",
            r,
            "fox",
            "--vernacular",
            "лиса",
            "--taxon-id",
            "123",
            "--vernacular-name",
            "mn=үнэг",
            "--json",
        )  # fmt: skip
    )
    assert fox["scientific_name"] == "Vulpes vulpes" and fox["vernacular_name"] == "лиса"
    assert fox["taxon_id"] == "https://www.gbif.org/species/123"
    assert fox["vernacular_names"]["mon"] == "үнэг" and fox["vernacular_names"]["eng"] == "red fox"
    plain = json.loads(_run("species", "add", r, "argali", "--no-table", "--json"))
    assert plain["scientific_name"] == "" and plain["vernacular_names"] == {}
    odd = json.loads(_run("species", "add", r, "PBE", "--json"))
    assert odd["scientific_name"] == "" and odd["rank"] == ""
    _run(
        "species", "edit", r, "PBE", "--scientific", "Prionailurus bengalensis",
        "--rank", "species", "--vernacular-name", "eng=leopard cat", "--vernacular-name", "rus=",
    )  # fmt: skip
    rows = {x["label"]: x for x in json.loads(_run("species", "list", r, "--json"))}
    assert rows["PBE"]["vernacular_names"] == {"eng": "leopard cat"}
    assert "rank" in _fails("species", "edit", r, "PBE", "--rank", "tribe")
    assert "ISO 639-3" in _fails("species", "add", r, "x", "--vernacular-name", "english=x")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo project with metadata set and a species list, exported both ways."""
    from irbis.demo.run import run_demo

    root = tmp_path_factory.mktemp("demo")
    run_demo(root, seed=3, n_stations=4, report=False)
    proj = str(root / "project")
    _run(
        "project", "meta", proj,
        "--title", "Snow leopards of the Argut, 2026",
        "--description", "Camera-trap census.",
        "--id", "https://doi.org/10.5281/zenodo.0000000",
        "--contributor", TARA, "--contributor", IVAN,
        "--licence", "CC0-1.0", "--media-licence", "CC-BY-NC-4.0",
        "--citation", "Nyima T, Petrov I (2026) Snow leopards of the Argut.",
        "--keyword", "snow leopard", "--keyword", "Altai",
        "--sampling-design", "systematicRandom",
    )  # fmt: skip
    # A team's own code for a species: the list names it; 'livestock' stays unlisted.
    _run("species", "rename", proj, "Siberian ibex", "SIB")
    _run("species", "edit", proj, "SIB", "--scientific", "Capra sibirica")
    _run("export", "camtrapdp", proj, str(root / "public"))
    _run("export", "camtrapdp", proj, str(root / "precise"), "--precise")
    return root


@pytest.mark.parametrize("which", ["public", "precise"])
def test_export_carries_meta_and_taxonomy_and_passes_the_profile(demo, which):
    folder = demo / which
    d = json.loads((folder / "datapackage.json").read_text())
    assert _profile_errors(d, jsonschema.FormatChecker()) == []
    assert _table_errors(folder, d) == []

    assert d["title"] == "Snow leopards of the Argut, 2026"
    assert d["description"] == "Camera-trap census."
    assert d["id"] == "https://doi.org/10.5281/zenodo.0000000"
    assert d["bibliographicCitation"].startswith("Nyima T")
    assert d["keywords"] == ["snow leopard", "Altai"]
    assert d["project"]["samplingDesign"] == "systematicRandom"
    assert [(c["title"], c["role"]) for c in d["contributors"]] == [
        ("Tara Nyima", "principalInvestigator"),
        ("Ivan Petrov", "contact"),
    ]
    assert d["contributors"][0]["organization"] == "Altai State Nature Reserve"
    assert d["contributors"][1]["email"] == "ivan@example.org"
    assert {(x["scope"], x["name"]) for x in d["licenses"]} == {
        ("data", "CC0-1.0"),
        ("media", "CC-BY-NC-4.0"),
    }

    with open(folder / "observations.csv", newline="") as fh:
        used = {r["scientificName"] for r in csv.DictReader(fh) if r["scientificName"]}
    taxa = {t["scientificName"]: t for t in d["taxonomic"]}
    assert set(taxa) == used  # every taxon used, and only those
    # Labels are written as the scientific names of the list or of irbis's table.
    assert {"Panthera uncia", "Capra sibirica", "Ovis ammon", "Canis lupus"} <= used
    assert "snow leopard" not in used and "SIB" not in used
    leopard = taxa["Panthera uncia"]
    assert leopard["taxonRank"] == "species"
    assert leopard["vernacularNames"] == {"eng": "snow leopard", "rus": "снежный барс"}
    from irbis.store.taxa import lookup

    assert leopard.get("taxonID", "") == lookup("Panthera uncia").taxon_id
    assert taxa["livestock"] == {"scientificName": "livestock"}  # no name irbis knows
    assert taxa["Canis lupus"]["taxonID"] == "https://www.gbif.org/species/5219173"
    if which == "precise":
        # People are a taxon too: the precise package lists them.
        assert taxa["Homo sapiens"]["vernacularNames"] == {"eng": "human", "rus": "человек"}
        assert taxa["Homo sapiens"]["taxonID"] == "https://www.gbif.org/species/2436436"
    else:
        assert "Homo sapiens" not in taxa  # photos of people are left out of public packages


def test_meta_round_trips_through_import(demo, tmp_path):
    p = Project.init(tmp_path / "again")
    p.close()
    _run("import", "camtrapdp", str(demo / "precise"), str(tmp_path / "again"))
    m = _meta(tmp_path / "again")
    assert m["title"] == "Snow leopards of the Argut, 2026"
    assert [c["title"] for c in m["contributors"]] == ["Tara Nyima", "Ivan Petrov"]
    assert m["contributors"][0]["organization"] == "Altai State Nature Reserve"
    assert m["samplingDesign"] == "systematicRandom" and m["keywords"] == ["snow leopard", "Altai"]
    assert set(m["sources"].values()) == {"imported"}
    # Changing one contributor keeps the imported others.
    _run("project", "meta", str(tmp_path / "again"), "--add-contributor", "Aigul|contributor")
    out = tmp_path / "out"
    _run("export", "camtrapdp", str(tmp_path / "again"), str(out), "--precise")
    d = json.loads((out / "datapackage.json").read_text())
    assert _profile_errors(d, jsonschema.FormatChecker()) == []
    assert [c["title"] for c in d["contributors"]] == ["Tara Nyima", "Ivan Petrov", "Aigul"]
    assert d["title"] == "Snow leopards of the Argut, 2026"
    assert d["project"]["samplingDesign"] == "systematicRandom"
    assert d["id"] == "https://doi.org/10.5281/zenodo.0000000"
    first = json.loads((demo / "precise" / "datapackage.json").read_text())
    assert d["taxonomic"] == first["taxonomic"]
