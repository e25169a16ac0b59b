"""Camtrap DP 1.0.2 export and import on real packages, validated with no network."""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path

import pytest
from sqlalchemy import func, select

from irbis.core.errors import BadInputError, IrbisError
from irbis.exchange.camtrapdp import export_camtrapdp, import_camtrapdp, validate_camtrapdp
from irbis.store import Project
from irbis.store.schema import Deployment, Media, Observation

from .conftest import need_data

EXAMPLE = ("cameratrap", "camtrap-dp-example")
KEYS = {"deployments": "deploymentID", "media": "mediaID", "observations": "observationID"}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _table(folder: Path, table: str) -> dict[str, dict[str, str]]:
    with open(folder / f"{table}.csv", newline="", encoding="utf-8") as fh:
        return {r[KEYS[table]]: r for r in csv.DictReader(fh)}


def _not_json_object(text: str) -> bool:
    try:
        return not isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return True


def test_example_package_round_trip_is_lossless(project, tmp_path):
    pkg = need_data(*EXAMPLE)
    res = import_camtrapdp(pkg, project)
    assert (res.deployments, res.media, res.observations) == (4, 423, 549)
    assert res.media_files_found == 10  # the JPEGs shipped in media/
    with project.session() as s:
        assert s.scalar(select(func.count(Deployment.id))) == 4
        assert s.scalar(select(func.count(Media.id))) == 423
        assert s.scalar(select(func.count(Observation.id))) == 549
        heron = s.scalars(select(Media).where(Media.source_relpath.like("media/%"))).all()
        assert len(heron) == 10 and {m.utc_offset_min for m in heron} == {60}
        assert all(len(m.sha256) == 64 and Path(m.stored_path).is_file() for m in heron)

    out1 = tmp_path / "out1"
    # The package's own files travel with it (copied to the paths it gave them).
    exp = export_camtrapdp(project, out1, public=False, media_files="copy")
    assert exp.validation.valid, exp.validation.errors
    assert exp.files_copied == 10
    assert (exp.deployments, exp.media, exp.observations) == (4, 423, 549)

    # Field by field against the original: every row, every standard column.
    for table in KEYS:
        want, got = _table(pkg, table), _table(out1, table)
        assert set(got) == set(want), table
        for key, row in want.items():
            for col, value in row.items():
                assert got[key][col] == value, (table, key, col)
    # Three rows of the 1.0.2 example hold truncated EXIF text: exifData is of
    # type "any" in the standard, so they travel as they came.
    truncated = [r for r in _table(out1, "media").values() if _not_json_object(r["exifData"])]
    assert len([r for r in truncated if r["exifData"]]) == 3
    assert exp.exif_dropped == 0

    # The descriptor carries the imported metadata.
    desc = json.loads((out1 / "datapackage.json").read_text())
    orig = json.loads((pkg / "datapackage.json").read_text())
    for k in ("title", "contributors", "licenses", "coordinatePrecision", "temporal"):
        assert desc[k] == orig[k], k
    assert desc["project"]["observationLevel"] == ["media", "event"]
    assert {t["scientificName"] for t in desc["taxonomic"]} <= {
        t["scientificName"] for t in orig["taxonomic"]
    }
    assert desc["resources"][-1]["name"] == "individuals"  # the extra inline resource

    # export -> import -> export gives the very same tables.
    second = Project.init(tmp_path / "p2")
    try:
        import_camtrapdp(out1, second)
        out2 = tmp_path / "out2"
        assert export_camtrapdp(second, out2, public=False, media_files="copy").validation.valid
    finally:
        second.close()
    for table in KEYS:
        assert (out2 / f"{table}.csv").read_bytes() == (out1 / f"{table}.csv").read_bytes()
    d1, d2 = (json.loads((o / "datapackage.json").read_text()) for o in (out1, out2))
    d1.pop("created"), d2.pop("created")
    assert d1 == d2


def test_broken_package_fails_with_the_validators_message(project, tmp_path):
    pkg = need_data(*EXAMPLE)
    import_camtrapdp(pkg, project)
    out = tmp_path / "pkg"
    export_camtrapdp(project, out, public=False)
    assert validate_camtrapdp(out).valid

    with open(out / "media.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("deploymentID")
    rows[5][col] = ""
    with open(out / "media.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    res = validate_camtrapdp(out)
    assert not res.valid
    assert any(e.startswith("media.csv: row 6:") and '"required"' in e for e in res.errors), (
        res.errors
    )


def test_export_refuses_to_leave_an_invalid_package(project, tmp_path):
    pkg = need_data(*EXAMPLE)
    import_camtrapdp(pkg, project)
    with project.session() as s, s.begin():
        o = s.scalars(select(Observation).where(Observation.count.is_not(None))).first()
        o.count = 0  # Camtrap DP requires count >= 1
        uid = o.uid
    out = tmp_path / "pkg"
    with pytest.raises(IrbisError, match=r"observations\.csv: row \d+: .*count"):
        export_camtrapdp(project, out, public=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pkg")] == []
    assert uid


def test_import_bad_row_names_file_and_row_and_stores_nothing(project, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(need_data(*EXAMPLE), pkg, ignore=shutil.ignore_patterns("*.JPG"))
    with open(pkg / "media.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[10][rows[0].index("timestamp")] = "31/05/2021 08:25"
    with open(pkg / "media.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    with pytest.raises(BadInputError) as info:
        import_camtrapdp(pkg, project)
    assert str(info.value).startswith("media.csv:row 11: timestamp '31/05/2021 08:25'")
    assert "\n" not in str(info.value)
    with project.session() as s:
        assert s.scalar(select(func.count(Deployment.id))) == 0
        assert s.scalar(select(func.count(Media.id))) == 0


def test_camtrapr_project_exports_a_valid_package(project, tmp_path):
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    table = need_data("cameratrap", "camtrapR", "oracle", "camtraps.csv")
    card = need_data("cameratrap", "camtrapR", "pictures", "sample_images_species_dir")
    # The station table gives UTM coordinates (zone 50N, Sabah); Camtrap DP needs WGS84.
    import_registry(project, table, date_format="%d/%m/%Y", crs="EPSG:32650")
    ingest(project, card, layout="station/species")

    out = tmp_path / "camtrapr"
    res = export_camtrapdp(project, out)
    assert res.validation.valid, res.validation.errors
    assert res.deployments == 3
    # 68 photos; the phone video's 2025 clock is untrusted and cannot be dated.
    assert (res.media, res.media_untimed) == (68, 1)
    assert res.observations == 68
    assert not res.generalised  # no sensitive species among Borneo's small cats and deer
    deps = _table(out, "deployments")
    for row in deps.values():
        assert 5.0 < float(row["latitude"]) < 6.0 and 117.0 < float(row["longitude"]) < 117.5
    obs = _table(out, "observations")
    assert {r["classificationMethod"] for r in obs.values()} == {"human"}
    assert all(r["eventID"] and r["eventStart"] for r in obs.values())
    desc = json.loads((out / "datapackage.json").read_text())
    # The profile wants the URL of the table schema version used, not a copy.
    assert desc["resources"][0]["schema"] == (
        "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/deployments-table-schema.json"
    )
    assert not (out / "schemas").exists()


def test_cli_import_then_export(tmp_path):
    from typer.testing import CliRunner

    from irbis.cli.app import app

    pkg = need_data(*EXAMPLE)
    runner = CliRunner()
    res = runner.invoke(app, ["import", "camtrapdp", str(pkg), str(tmp_path / "p"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (data["deployments"], data["media"], data["observations"]) == (4, 423, 549)
    res = runner.invoke(
        app,
        [
            "export",
            "camtrapdp",
            str(tmp_path / "p"),
            str(tmp_path / "o"),
            "--precise",
            "--media-files",
            "copy",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["valid"] and data["files_copied"] == 10
    media = _table(tmp_path / "o", "media")
    copied = [r for r in media.values() if r["filePath"].startswith("media/")]
    assert len(copied) == 10 and all((tmp_path / "o" / r["filePath"]).is_file() for r in copied)
    # Public by default: the example's photos of people are left out.
    res = runner.invoke(
        app, ["export", "camtrapdp", str(tmp_path / "p"), str(tmp_path / "o"), "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["media_persons_left_out"] > 0
    assert data["media"] == 423 - data["media_persons_left_out"]


def test_cli_import_failure_with_json_prints_json(tmp_path):
    from typer.testing import CliRunner

    from irbis.cli.app import app

    pkg = need_data(*EXAMPLE)
    runner = CliRunner()
    args = ["import", "camtrapdp", str(pkg), str(tmp_path / "p"), "--json"]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, args)  # the same deployments again: refused
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    assert data["ok"] is False and "already known" in data["error"]
    assert data["project_created"] is False
    res = runner.invoke(
        app, ["import", "camtrapdp", str(tmp_path / "nope"), str(tmp_path / "q"), "--json"]
    )
    assert res.exit_code == 2 and json.loads(res.stdout)["ok"] is False


def test_import_never_stores_a_path_outside_the_package(project, tmp_path):
    """filePath values pointing elsewhere are kept for the round trip, never opened."""
    pkg = tmp_path / "pkg"
    shutil.copytree(need_data(*EXAMPLE), pkg, ignore=shutil.ignore_patterns("*.JPG"))
    with open(pkg / "media.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("filePath")
    rows[1][col] = "/etc/passwd"
    rows[2][col] = "../../../etc/hostname"
    with open(pkg / "media.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    import_camtrapdp(pkg, project)
    with project.session() as s:
        paths = {m.source_relpath: m.stored_path for m in s.scalars(select(Media))}
    assert paths["/etc/passwd"] == "" and paths["../../../etc/hostname"] == ""
    assert all(p == "" or Path(p).is_relative_to(pkg.resolve()) for p in paths.values())


def test_import_and_export_report_progress(project, tmp_path):
    seen: list[tuple[str, int, int | None]] = []
    import_camtrapdp(need_data(*EXAMPLE), project, progress=lambda *a: seen.append(a))
    rows = {t: max(d for s, d, _ in seen if s == t) for t in ("deployments", "media")}
    assert rows == {"deployments": 4, "media": 423}
    seen.clear()
    res = export_camtrapdp(
        project,
        tmp_path / "o",
        public=False,
        media_files="copy",
        progress=lambda *a: seen.append(a),
    )
    steps = [s for s, _, _ in seen]
    assert steps[0] == "reading the project" and steps[-1] == "validating"
    copies = [(d, t) for s, d, t in seen if s == "copying media"]
    assert copies[-1] == (res.media, res.media) and len(copies) == res.media
