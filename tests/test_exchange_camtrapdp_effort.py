"""Effort recomputed from an exported Camtrap DP package equals ``irbis effort``.

camtrapR's station table has a malfunction at StationC (12/05/2009 to its
retrieval on 17/05/2009): the package must not count those days.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import datetime

import pytest
from typer.testing import CliRunner

from irbis.cli import app
from irbis.exchange.camtrapdp import export_camtrapdp, import_camtrapdp
from irbis.ingest.effort import project_effort
from irbis.store import Project
from irbis.store.schema import Deployment, Malfunction

from .conftest import need_data


def _camtrapr_project(project):
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    table = need_data("cameratrap", "camtrapR", "oracle", "camtraps.csv")
    card = need_data("cameratrap", "camtrapR", "pictures", "sample_images_species_dir")
    import_registry(project, table, date_format="%d/%m/%Y", crs="EPSG:32650")
    ingest(project, card, layout="station/species")


def _package_trap_nights(folder) -> dict[str, float]:
    """Days each station recorded, read from deployments.csv alone."""
    out: dict[str, float] = defaultdict(float)
    with open(folder / "deployments.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            a = datetime.fromisoformat(r["deploymentStart"].replace("Z", "+00:00"))
            b = datetime.fromisoformat(r["deploymentEnd"].replace("Z", "+00:00"))
            out[r["locationName"]] += (b - a).total_seconds() / 86400
    return dict(out)


def test_effort_from_the_package_equals_irbis_effort(project, tmp_path):
    _camtrapr_project(project)
    res = CliRunner().invoke(app, ["effort", str(project.root), "--json"])
    assert res.exit_code == 0, res.output
    irbis = {r["station"]: r["trap_nights"] for r in json.loads(res.output)["stations"]}
    assert irbis["StationC"] < irbis["StationA"]  # the malfunction is counted out

    out = tmp_path / "pkg"
    exp = export_camtrapdp(project, out, public=False)
    assert exp.validation.valid, exp.validation.errors
    from_package = _package_trap_nights(out)
    assert set(from_package) == set(irbis)
    for station, nights in irbis.items():
        assert from_package[station] == pytest.approx(nights, abs=1e-4), station
    with open(out / "deployments.csv", newline="") as fh:
        rows = {r["locationName"]: r for r in csv.DictReader(fh)}
    assert "not recording 2009-05-12" in rows["StationC"]["deploymentComments"]

    # The package read back by irbis gives the same effort.
    again = Project.init(tmp_path / "again")
    try:
        import_camtrapdp(out, again)
        op = project_effort(again)
    finally:
        again.close()
    got = dict(zip(op.stations, op.trap_nights(), strict=True))
    for station, nights in irbis.items():
        assert got[station] == pytest.approx(nights, abs=1e-4), station


def test_a_malfunction_in_the_middle_splits_the_deployment(project, tmp_path):
    _camtrapr_project(project)
    with project.session() as s, s.begin():
        dep = s.query(Deployment).filter(Deployment.code.like("%StationA%")).one()
        code = dep.code
        s.add(
            Malfunction(
                deployment_id=dep.id,
                start_local=datetime(2009, 4, 20, 6, 0),
                end_local=datetime(2009, 4, 25, 18, 0),
                reason="snow on the lens",
            )
        )
    res = CliRunner().invoke(app, ["effort", str(project.root), "--json"])
    irbis = {r["station"]: r["trap_nights"] for r in json.loads(res.output)["stations"]}
    out = tmp_path / "pkg"
    exp = export_camtrapdp(project, out, public=False)
    assert exp.validation.valid, exp.validation.errors
    with open(out / "deployments.csv", newline="") as fh:
        ids = [r["deploymentID"] for r in csv.DictReader(fh) if r["locationName"] == "StationA"]
    assert ids == [f"{code}-part1", f"{code}-part2"]
    with open(out / "media.csv", newline="") as fh:
        used = {r["deploymentID"] for r in csv.DictReader(fh)}
    assert used & set(ids)  # the station's files point at its parts
    assert _package_trap_nights(out)["StationA"] == pytest.approx(irbis["StationA"], abs=1e-4)
