"""Broken or hostile Camtrap DP packages: one-line errors naming the file, nothing stored.

Each case was a traceback, or a silent import, before (issue 19). Run on SQLite
and PostgreSQL (PostgreSQL text cannot hold NUL).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from irbis.core.errors import BadInputError
from irbis.exchange.camtrapdp import import_camtrapdp
from irbis.store.schema import Deployment, Observation, Station

DEPLOYMENTS = (
    "deploymentID,locationName,latitude,longitude,deploymentStart,deploymentEnd\n"
    "d1,K1,42.1,74.5,2024-03-01T12:00:00+06:00,2024-04-01T12:00:00+06:00\n"
)
MEDIA = (
    "mediaID,deploymentID,timestamp,filePath,filePublic,fileMediatype\n"
    "m1,d1,2024-03-05T04:10:00+06:00,media/a.jpg,false,image/jpeg\n"
)
OBSERVATIONS = (
    "observationID,deploymentID,mediaID,eventStart,eventEnd,observationLevel,"
    "observationType,scientificName,count\n"
    "o1,d1,m1,2024-03-05T04:10:00+06:00,2024-03-05T04:10:00+06:00,media,animal,"
    "Panthera uncia,1\n"
)


def _package(root: Path, **tables: str | bytes) -> Path:
    """A small valid package; ``tables`` replace a file's text (or bytes) by name."""
    root.mkdir()
    files = {
        "datapackage.json": json.dumps(
            {
                "profile": "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json",
                "resources": [
                    {"name": t, "path": f"{t}.csv"}
                    for t in ("deployments", "media", "observations")
                ],
            }
        ),
        "deployments.csv": DEPLOYMENTS,
        "media.csv": MEDIA,
        "observations.csv": OBSERVATIONS,
    }
    for key, value in tables.items():
        files[key.replace("_", ".", 1) if key.endswith(("_csv", "_json")) else key] = value
    for name, value in files.items():
        if value is None:
            continue
        path = root / name
        path.write_bytes(value if isinstance(value, bytes) else value.encode())
    return root


def _nothing_stored(project) -> None:
    with project.session() as s:
        for table in (Station, Deployment, Observation):
            assert s.scalar(select(func.count()).select_from(table)) == 0


def test_the_small_package_imports(project, tmp_path):
    res = import_camtrapdp(_package(tmp_path / "pkg"), project)
    assert (res.deployments, res.media, res.observations) == (1, 1, 1)


@pytest.mark.parametrize(
    ("tables", "where", "reason"),
    [
        ({"datapackage_json": None}, "pkg", "no datapackage.json: not a Camtrap DP package"),
        ({"datapackage_json": "[]"}, "pkg/datapackage.json", "is a JSON list, not an object"),
        ({"datapackage_json": "[" * 100_000 + "]" * 100_000}, "pkg/datapackage.json", "nested"),
        ({"datapackage_json": '{"resources": 7}'}, "pkg/datapackage.json", "resources is not"),
        ({"datapackage_json": '{"resources": [7]}'}, "pkg/datapackage.json", "resources is not"),
        (
            {
                "observations_csv": OBSERVATIONS.replace(
                    "Panthera uncia", "Panthera \xfcncia"
                ).encode("latin-1")
            },
            "observations.csv:row 2",
            "not UTF-8 text",
        ),
        (
            {"observations_csv": OBSERVATIONS.replace("Panthera uncia", "Panthera\x00uncia")},
            "observations.csv:row 2",
            "column 'scientificName' contains a NUL character",
        ),
        (
            {"media_csv": MEDIA.replace("media/a.jpg", "a" * 140_000)},
            "media.csv:row 2",
            "a cell is longer than 131,072 characters",
        ),
        (
            {"deployments_csv": DEPLOYMENTS.replace("42.1", "nan")},
            "deployments.csv:row 2",
            "latitude 'nan' is not a finite",
        ),
        (
            {"deployments_csv": DEPLOYMENTS.replace("74.5", "inf")},
            "deployments.csv:row 2",
            "longitude 'inf' is not a finite",
        ),
        (
            {"deployments_csv": DEPLOYMENTS.replace("2024-04-01T12", "9999-12-31T12")},
            "deployments.csv:row 2",
            "deploymentEnd '9999-12-31T12:00:00+06:00' is out of range",
        ),
    ],
    ids=[
        "no-descriptor",
        "descriptor-list",
        "descriptor-nested",
        "resources-number",
        "resource-number",
        "observations-latin1",
        "observations-nul",
        "huge-cell",
        "latitude-nan",
        "longitude-inf",
        "end-9999",
    ],
)
def test_bad_package_is_one_line_error(project, tmp_path, tables, where, reason):
    pkg = _package(tmp_path / "pkg", **tables)
    with pytest.raises(BadInputError) as info:
        import_camtrapdp(pkg, project)
    msg = str(info.value)
    assert "\n" not in msg
    expected_where = str(tmp_path / where) if where.startswith("pkg") else where
    assert msg.startswith(f"{expected_where}: {reason}"), msg
    _nothing_stored(project)
