"""The TDWG example in its Camtrap DP 1.0 and 1.0-rc.1 forms: import, export, nothing lost.

The shared data holds the example as released with 1.0.2. The older forms are
built here from it by applying the differences the standard's changelog names
(checked against the example folders of tags 1.0 and 1.0-rc.1 of
tdwg/camtrap-dp):

- 1.0 -> 1.0.1/1.0.2: profile and schema URLs name the version;
  ``observations.csv`` started with a byte-order mark; ``spatial`` had a
  ``bbox``; no term changed.
- 1.0-rc.1 -> 1.0: ``captureMethod`` ``motionDetection`` renamed
  ``activityDetection`` (project and media); ``taxonomic.taxonIDReference``
  and ``observations.taxonID`` deleted; ``deployments.cameraDepth`` new; the
  rc.1 example's ``homepage`` was ``""``.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from irbis.core.errors import BadInputError
from irbis.exchange.camtrapdp import export_camtrapdp, import_camtrapdp
from irbis.exchange.camtrapdp_versions import package_version
from irbis.store import Project

from .conftest import need_data

EXAMPLE = ("cameratrap", "camtrap-dp-example")
KEYS = {"deployments": "deploymentID", "media": "mediaID", "observations": "observationID"}
BASE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, str]], bom: bool = False) -> None:
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _table(folder: Path, table: str) -> dict[str, dict[str, str]]:
    return {r[KEYS[table]]: r for r in _read(folder / f"{table}.csv")[1]}


def _retarget(desc: dict[str, Any], version: str) -> None:
    desc["profile"] = f"{BASE}{version}/camtrap-dp-profile.json"
    for res in desc["resources"]:
        if isinstance(res.get("schema"), str) and res["schema"].startswith(BASE):
            res["schema"] = f"{BASE}{version}/{res['schema'].rsplit('/', 1)[1]}"
    desc["version"] = "1.0"


def make_1_0(src: Path, dst: Path) -> Path:
    """The 1.0.2 example as the 1.0 release shipped it."""
    shutil.copytree(src, dst)
    desc = json.loads((dst / "datapackage.json").read_text(encoding="utf-8"))
    _retarget(desc, "1.0")
    desc["spatial"]["bbox"] = [4.013, 50.699, 5.659, 51.496]
    (dst / "datapackage.json").write_text(json.dumps(desc, indent=2), encoding="utf-8")
    header, rows = _read(dst / "observations.csv")
    _write(dst / "observations.csv", header, rows, bom=True)
    return dst


def make_rc1(src: Path, dst: Path) -> Path:
    """The 1.0.2 example written with the terms of 1.0-rc.1."""
    make_1_0(src, dst)
    desc = json.loads((dst / "datapackage.json").read_text(encoding="utf-8"))
    _retarget(desc, "1.0-rc.1")
    desc["homepage"] = ""
    desc["project"]["captureMethod"] = [
        "motionDetection" if m == "activityDetection" else m
        for m in desc["project"]["captureMethod"]
    ]
    short: dict[str, str] = {}
    for taxon in desc["taxonomic"]:
        ref, _, code = taxon.pop("taxonID").rpartition("/taxon/")
        short[taxon["scientificName"]] = code
        taxon["taxonID"], taxon["taxonIDReference"] = code, ref
    (dst / "datapackage.json").write_text(json.dumps(desc, indent=2), encoding="utf-8")

    header, rows = _read(dst / "deployments.csv")
    assert all(r["cameraDepth"] == "" for r in rows)  # the example leaves it empty
    header.remove("cameraDepth")
    _write(dst / "deployments.csv", header, [{k: r[k] for k in header} for r in rows])
    header, rows = _read(dst / "media.csv")
    for r in rows:
        if r["captureMethod"] == "activityDetection":
            r["captureMethod"] = "motionDetection"
    _write(dst / "media.csv", header, rows)
    header, rows = _read(dst / "observations.csv")
    header.insert(header.index("scientificName"), "taxonID")
    for r in rows:
        r["taxonID"] = short.get(r["scientificName"], "")
    _write(dst / "observations.csv", header, rows, bom=True)
    return dst


def _export_matches_original(project: Project, pkg: Path, out: Path) -> dict[str, Any]:
    """Export ``project``; every row and standard column equals the 1.0.2 example's."""
    exp = export_camtrapdp(project, out, public=False, media_files="copy")
    assert exp.validation.valid, exp.validation.errors
    assert exp.files_copied == 10
    assert (exp.deployments, exp.media, exp.observations) == (4, 423, 549)
    for table in KEYS:
        want, got = _table(pkg, table), _table(out, table)
        assert set(got) == set(want), table
        for key, row in want.items():
            for col, value in row.items():
                assert got[key][col] == value, (table, key, col)
    exif = [r["exifData"] for r in _table(out, "media").values() if r["exifData"]]
    assert exif and exif == [r["exifData"] for r in _table(pkg, "media").values() if r["exifData"]]
    desc = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    assert desc["profile"] == f"{BASE}1.0.2/camtrap-dp-profile.json"
    return desc


def test_versions_are_read_from_profile_or_schema_urls():
    assert package_version({"profile": f"{BASE}1.0-rc.1/camtrap-dp-profile.json"}) == "1.0-rc.1"
    assert package_version({"profile": f"{BASE}1.0.1/camtrap-dp-profile.json"}) == "1.0.1"
    assert (
        package_version(
            {"profile": "tabular-data-package", "resources": [{"schema": f"{BASE}0.1.6/x.json"}]}
        )
        == "0.1.6"
    )
    assert package_version({"profile": "tabular-data-package", "resources": []}) is None


def test_example_1_0_round_trip_keeps_every_field(project, tmp_path):
    pkg = need_data(*EXAMPLE)
    v10 = make_1_0(pkg, tmp_path / "v1.0")
    res = import_camtrapdp(v10, project)
    assert res.version == "1.0"
    assert not [n for n in res.notes if "upgrade" in n]  # 1.0 terms are 1.0.2's
    assert res.media_files_found == 10 and res.exif_not_json == 3
    desc = _export_matches_original(project, pkg, tmp_path / "out")
    orig = json.loads((pkg / "datapackage.json").read_text(encoding="utf-8"))
    for k in ("title", "contributors", "licenses", "coordinatePrecision", "id", "homepage"):
        assert desc[k] == orig[k], k
    # Every taxon keeps every field it came with (irbis's taxa table may add to them).
    got = {t["scientificName"]: t for t in desc["taxonomic"]}
    for taxon in orig["taxonomic"]:
        entry = got[taxon["scientificName"]]
        for k, v in taxon.items():
            if k == "vernacularNames":
                assert v.items() <= entry[k].items(), taxon["scientificName"]
            else:
                assert entry[k] == v, (taxon["scientificName"], k)
    assert desc["project"]["captureMethod"] == orig["project"]["captureMethod"]


def test_example_rc1_is_upgraded_with_notes_and_round_trips(project, tmp_path):
    pkg = need_data(*EXAMPLE)
    rc1 = make_rc1(pkg, tmp_path / "rc1")
    res = import_camtrapdp(rc1, project)
    assert res.version == "1.0-rc.1"
    notes = "\n".join(res.notes)
    assert "project.captureMethod motionDetection -> activityDetection" in notes
    n_motion = sum(r["captureMethod"] == "activityDetection" for r in _table(pkg, "media").values())
    assert f"media.captureMethod motionDetection -> activityDetection in {n_motion} rows" in notes
    assert "taxonomic.taxonIDReference (deleted in 1.0) left out: " in notes
    assert "https://www.checklistbank.org/dataset/COL2023" in notes
    n_tax = sum(bool(r["taxonID"]) for r in _table(rc1, "observations").values())
    assert n_tax > 300  # every animal and human observation
    assert f"observations.taxonID (deleted in 1.0) left out of {n_tax} rows" in notes
    assert "homepage was empty" in notes

    desc = _export_matches_original(project, pkg, tmp_path / "out")
    orig = json.loads((pkg / "datapackage.json").read_text(encoding="utf-8"))
    assert desc["project"]["captureMethod"] == orig["project"]["captureMethod"]
    assert "homepage" not in desc
    got = {t["scientificName"]: t for t in desc["taxonomic"]}
    for taxon in orig["taxonomic"]:
        entry = got[taxon["scientificName"]]
        assert "taxonIDReference" not in entry
        assert entry["taxonID"] == taxon["taxonID"].rpartition("/taxon/")[2]
        assert taxon["vernacularNames"].items() <= entry["vernacularNames"].items()


def test_rc1_observation_taxon_ids_fill_taxonomic(project, tmp_path):
    pkg = need_data(*EXAMPLE)
    rc1 = make_rc1(pkg, tmp_path / "rc1")
    desc = json.loads((rc1 / "datapackage.json").read_text(encoding="utf-8"))
    desc["taxonomic"] = [t for t in desc["taxonomic"] if t["scientificName"] != "Ardea cinerea"]
    (rc1 / "datapackage.json").write_text(json.dumps(desc), encoding="utf-8")
    res = import_camtrapdp(rc1, project)
    assert any("(1 taken from the observations)" in n for n in res.notes), res.notes
    out = json.loads(
        (
            export_camtrapdp(project, tmp_path / "out", public=False).path / "datapackage.json"
        ).read_text(encoding="utf-8")
    )
    heron = next(t for t in out["taxonomic"] if t["scientificName"] == "Ardea cinerea")
    assert heron["taxonID"] == "GCHS"


@pytest.mark.parametrize(
    ("version", "says"),
    [("0.1.6", "a draft older than 1.0-rc.1"), ("1.0-rc.2", "not a version irbis knows")],
)
def test_drafts_and_unknown_prereleases_are_refused_in_one_line(project, tmp_path, version, says):
    pkg = need_data(*EXAMPLE)
    old = make_1_0(pkg, tmp_path / "old")
    desc = json.loads((old / "datapackage.json").read_text(encoding="utf-8"))
    _retarget(desc, version)
    (old / "datapackage.json").write_text(json.dumps(desc), encoding="utf-8")
    with pytest.raises(BadInputError) as err:
        import_camtrapdp(old, project)
    msg = str(err.value)
    assert f"Camtrap DP {version}" in msg and says in msg and "\n" not in msg
    assert "datapackage.json" in msg
