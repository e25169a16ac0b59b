"""irbis's Camtrap DP packages against the standard's own files, offline.

The profile and table schemas ship with irbis verbatim (byte for byte, checked
here against the checksums of the files published by tdwg/camtrap-dp 1.0.2).
The checks below validate with those files directly (jsonschema with format
checking, frictionless with the official table schemas), not through irbis's
own validator, so a bug in irbis's validator cannot hide a bad package.
"""

from __future__ import annotations

import csv
import hashlib
import json
import socket
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from irbis.exchange.camtrapdp import export_camtrapdp, import_camtrapdp
from irbis.exchange.camtrapdp_validate import SCHEMA_DIR, format_checker
from irbis.store import Project

TABLES = ("deployments", "media", "observations")
BASE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2"

#: sha256 of the files as published (tdwg/camtrap-dp tag 1.0.2; frictionlessdata/specs
#: profiles/target/1.0/datapackage.json; SchemaStore geojson.json): see NOTICE.
OFFICIAL = {
    "camtrap-dp-profile.json": "daea4da7d64531e17986daad30bd3852701c7326a79b1b5e49a213c5489a8652",
    "deployments-table-schema.json": (
        "2893074dbc0a2331f038bca22626cfdc65614c7d2009df908adbb403281f4dfa"
    ),
    "media-table-schema.json": "79b3acb6e4431dd748829364b6df17c120774127a0091b9eaa7a012d9fae3867",
    "observations-table-schema.json": (
        "b008021a15c575f38468f511d8a3fd6468d2a670c952f3914481fb3379e6232a"
    ),
    "data-package.json": "c9b0e581c5b941d35290e3d830358ed6ab5a5e96ee14054670a3814d5847e716",
    "geojson.json": "82139f90a29a357685f2dfe7a1a76c16e32c5bbaa7da01e54454fd506b567363",
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _json(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def _profile_errors(descriptor: dict, checker: jsonschema.FormatChecker) -> list[str]:
    """The official profile's complaints, its $refs answered from the shipped files."""
    geojson = Resource.from_contents(_json("geojson.json"))
    registry = Registry().with_resources(
        [
            (
                "https://specs.frictionlessdata.io/schemas/data-package.json",
                Resource.from_contents(_json("data-package.json")),
            ),
            ("http://json.schemastore.org/geojson.json", geojson),
            ("https://json.schemastore.org/geojson", geojson),
        ]
    )
    profile = _json("camtrap-dp-profile.json")
    assert profile["$schema"] == "http://json-schema.org/draft-04/schema#"
    validator = jsonschema.Draft4Validator(profile, registry=registry, format_checker=checker)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(descriptor)]


def _table_errors(folder: Path, descriptor: dict) -> list[str]:
    """frictionless on the three tables, each with its official table schema."""
    from frictionless import Package, Resource, Schema

    resources = []
    for res in descriptor["resources"]:
        if res["name"] not in TABLES:
            continue
        # The descriptor names the official URL; give frictionless the shipped copy of it.
        assert res["schema"] == f"{BASE}/{res['name']}-table-schema.json"
        schema = Schema.from_descriptor(_json(f"{res['name']}-table-schema.json"))
        resources.append(
            Resource(name=res["name"], path=res["path"], basepath=str(folder), schema=schema)
        )
    assert len(resources) == 3
    report = Package(resources=resources, basepath=str(folder)).validate()
    errors = [f"{t.name}: {e.message}" for t in report.tasks for e in t.errors]
    return errors + [e.message for e in report.errors]


def test_shipped_files_are_the_official_ones_byte_for_byte():
    for name, digest in OFFICIAL.items():
        assert hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest() == digest, name
    listed = {}
    for line in (SCHEMA_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[name] = digest
    assert listed == OFFICIAL
    notice = (SCHEMA_DIR / "NOTICE").read_text()
    for name in OFFICIAL:
        assert name in notice
    assert "MIT License" in notice and "Apache License" in notice and "unlicense" in notice


@pytest.fixture(scope="module")
def demo_exports(tmp_path_factory):
    """The demo's public and precise packages."""
    from irbis.demo.run import run_demo

    root = tmp_path_factory.mktemp("demo")
    run_demo(root, seed=3, n_stations=4, report=False)
    project = Project.open(root / "project")
    try:
        pub = export_camtrapdp(project, root / "public", public=True)
        pre = export_camtrapdp(project, root / "precise", public=False)
    finally:
        project.close()
    assert pub.generalised and not pre.generalised
    return root


@pytest.mark.parametrize("which", ["public", "precise"])
def test_demo_exports_pass_the_official_profile_and_table_schemas(demo_exports, which):
    folder = demo_exports / which
    descriptor = json.loads((folder / "datapackage.json").read_text())
    assert descriptor["profile"] == f"{BASE}/camtrap-dp-profile.json"
    # jsonschema's own format checker, and irbis's (uri and date-time always checked).
    assert _profile_errors(descriptor, jsonschema.FormatChecker()) == []
    assert _profile_errors(descriptor, format_checker()) == []
    assert _table_errors(folder, descriptor) == []
    with open(folder / "media.csv", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) > 0


def test_the_official_validators_do_fail_on_a_broken_package(demo_exports, tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(demo_exports / "public", folder)
    descriptor = json.loads((folder / "datapackage.json").read_text())
    bad = json.loads(json.dumps(descriptor))
    # What irbis wrote before: a relative path where the profile wants the URL.
    bad["resources"][0]["schema"] = "schemas/camtrap-dp-1.0.2/deployments-table-schema.json"
    bad["created"] = "2026-02-30 noon"
    errors = _profile_errors(bad, format_checker())
    assert any("resources" in e for e in errors) and any("created" in e for e in errors)

    with open(folder / "media.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1][rows[0].index("filePath")] = "/media/card/DCIM/IMG_0001.JPG"  # absolute: refused
    with open(folder / "media.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    assert any("filePath" in e or "pattern" in e for e in _table_errors(folder, descriptor))


def _deployments(folder: Path) -> dict[str, tuple[str, str, str]]:
    with open(folder / "deployments.csv", newline="") as fh:
        return {
            r["deploymentID"]: (r["latitude"], r["longitude"], r["coordinateUncertainty"])
            for r in csv.DictReader(fh)
        }


def test_public_round_trips_keep_coordinates_and_uncertainty(demo_exports, tmp_path):
    """Import a public package and export it publicly again, twice: nothing grows."""
    first = _deployments(demo_exports / "public")
    precise = _deployments(demo_exports / "precise")
    assert all(first[k][:2] != precise[k][:2] for k in first)  # really generalised
    uncertainty = {int(v[2]) for v in first.values()}
    assert min(uncertainty) > 5000  # half the diagonal of a 0.1-degree cell at 50 N

    folder = demo_exports / "public"
    for round_ in range(2):
        p = Project.init(tmp_path / f"p{round_}")
        try:
            import_camtrapdp(folder, p)
            out = tmp_path / f"out{round_}"
            res = export_camtrapdp(p, out, public=True)
        finally:
            p.close()
        assert res.generalised
        assert _deployments(out) == first, f"round {round_ + 1}"
        desc = json.loads((out / "datapackage.json").read_text())
        assert desc["coordinatePrecision"] == 0.1
        folder = out
