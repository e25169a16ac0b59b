"""A malfunction covering a deployment's whole period: zero effort, in irbis and in the package."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from irbis.cli import app
from irbis.exchange.camtrapdp import export_camtrapdp, import_camtrapdp
from irbis.ingest.effort import project_effort
from irbis.store import Project
from irbis.store.schema import Deployment, Malfunction

from .test_exchange_camtrapdp_effort import _camtrapr_project, _package_trap_nights


def _irbis_effort(project) -> dict[str, float]:
    res = CliRunner().invoke(app, ["effort", str(project.root), "--json"])
    assert res.exit_code == 0, res.output
    return {r["station"]: r["trap_nights"] for r in json.loads(res.output)["stations"]}


def test_a_malfunction_over_the_whole_deployment_gives_zero_effort(project, tmp_path):
    _camtrapr_project(project)
    before = _irbis_effort(project)
    with project.session() as s, s.begin():
        dep = s.query(Deployment).filter(Deployment.code.like("%StationB%")).one()
        code, start, end = dep.code, dep.start_local, dep.end_local
        # Starts before set-up and ends after retrieval: clipped to the deployment.
        s.add(
            Malfunction(
                deployment_id=dep.id,
                start_local=start.replace(year=start.year - 1),
                end_local=end.replace(year=end.year + 1),
                reason="card full",
            )
        )
    irbis = _irbis_effort(project)
    assert before["StationB"] > 10 and irbis["StationB"] == pytest.approx(0, abs=1e-9)

    out = tmp_path / "pkg"
    exp = export_camtrapdp(project, out, public=False)
    assert exp.validation.valid, exp.validation.errors
    with open(out / "deployments.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["locationName"] == "StationB"]
    assert [r["deploymentID"] for r in rows] == [code]
    row = rows[0]
    assert row["deploymentStart"] == row["deploymentEnd"]
    assert "not recording the whole time" in row["deploymentComments"]
    assert "card full" in row["deploymentComments"] and "no effort" in row["deploymentComments"]
    assert f"{start:%Y-%m-%d}" in row["deploymentComments"]  # the real period is said
    # Its files stay, pointing at it, each noted.
    with open(out / "media.csv", newline="") as fh:
        media_b = [r for r in csv.DictReader(fh) if r["deploymentID"] == code]
    assert media_b
    assert sum("noted as not recording" in n for n in exp.notes) == len(media_b)

    from_package = _package_trap_nights(out)
    assert set(from_package) == set(irbis)
    for station, nights in irbis.items():
        assert from_package[station] == pytest.approx(nights, abs=1e-4), station

    again = Project.init(tmp_path / "again")
    try:
        import_camtrapdp(out, again)
        op = project_effort(again)
    finally:
        again.close()
    got = dict(zip(op.stations, op.trap_nights(), strict=True))
    for station, nights in irbis.items():
        assert got[station] == pytest.approx(nights, abs=1e-4), station
