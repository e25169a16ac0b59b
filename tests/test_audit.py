"""The audit log and undoing merges (issue 19, item 10), on SQLite and PostgreSQL.

Labels, identifications and splits, merges, registry changes, user changes,
downloads and exports are made the way people make them (the app's API as
the users of a real card, the commands as typed) and each must leave one row
saying who, what, when, before and after. A merge is undone from that row,
through the API and through ``irbis individuals unmerge``. Before this change
there was no such table, merges could not be undone, and a re-imported
registry overwrote coordinates without a trace.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.core.errors import BadInputError
from irbis.store.audit import cli_actor, entries
from irbis.store.schema import AuditEntry, Individual, Media, Station
from irbis.web.auth import create_user

from .test_web_api import CAMTRAPR, build_project, need_data


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project, token: str):
        c = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
        c.headers["Authorization"] = f"Bearer {token}"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res.stdout


def _one(project, **filters) -> dict:
    rows = entries(project, **filters)
    assert len(rows) == 1, rows
    return rows[0]


def test_merges_are_recorded_and_undone_from_the_record(project, client_of):
    ids = build_project(project)
    admin = client_of(project, create_user(project, "ana", "admin"))
    khan, bora = ids["khan"], ids["bora"]
    r = admin.post(f"/api/individuals/{khan}/merge", json={"into": bora})
    assert r.status_code == 200
    merge = _one(project, action="merge")
    assert merge["actor"] == "ana" and merge["target"] == f"individual:{khan}"
    assert merge["before"] == {"merged_into_id": None, "notes": ""}
    assert merge["after"]["merged_into_id"] == bora and "merged by ana" in merge["after"]["notes"]
    assert admin.get(f"/api/individuals/{khan}").json()["merged_into"] == bora

    # Reviewers cannot undo; an admin can, through the API.
    reviewer = client_of(project, create_user(project, "rita", "reviewer"))
    assert reviewer.post(f"/api/individuals/{khan}/unmerge").status_code == 403
    r = admin.post(f"/api/individuals/{khan}/unmerge")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "individual": khan,
        "name": "Khan",
        "was_merged_into": bora,
        "merged_into": None,
        "undoes": merge["id"],
    }
    page = admin.get(f"/api/individuals/{khan}").json()
    assert "merged_into" not in page and page["name"] == "Khan" and page["notes"] == ""
    assert {i["name"] for i in admin.get("/api/individuals").json()} == {"Khan", "Bora"}
    undo = _one(project, action="unmerge")
    assert undo["before"]["merged_into_id"] == bora and undo["after"]["merged_into_id"] is None
    assert undo["detail"]["undoes"] == merge["id"]
    # Not merged any more: nothing to undo, in one line.
    r = admin.post(f"/api/individuals/{khan}/unmerge")
    assert r.status_code == 422 and "is not merged" in r.json()["detail"]

    # Again, undone with the command, by name; the admin's audit API shows both.
    assert admin.post(f"/api/individuals/{khan}/merge", json={"into": bora}).status_code == 200
    out = json.loads(_cli("individuals", "unmerge", str(project.root), "Khan", "--json"))
    assert out["merged_into"] is None and out["was_merged_into"] == bora
    log = admin.get("/api/audit", params={"target": f"individual:{khan}"}).json()
    assert [e["action"] for e in log["entries"]] == ["unmerge", "merge", "unmerge", "merge"]
    assert log["entries"][0]["actor"] == cli_actor()
    assert reviewer.get("/api/audit").status_code == 403

    # Merged again differently by hand since the recorded merge: refused, nothing changed.
    assert admin.post(f"/api/individuals/{khan}/merge", json={"into": bora}).status_code == 200
    with project.session() as s:
        s.execute(update(Individual).where(Individual.id == khan).values(merged_into_id=None))
        s.execute(update(Individual).where(Individual.id == bora).values(merged_into_id=khan))
        s.commit()
    r = admin.post(f"/api/individuals/{bora}/unmerge")
    assert r.status_code == 422 and "before the audit log existed" in r.json()["detail"]
    with project.session() as s:
        s.execute(update(Individual).where(Individual.id == bora).values(merged_into_id=None))
        s.execute(
            update(Individual).where(Individual.id == khan).values(merged_into_id=ids["bora"])
        )
        s.execute(
            update(AuditEntry)
            .where(AuditEntry.action == "merge")
            .values(after={"merged_into_id": 999999, "notes": ""})
        )
        s.commit()
    r = admin.post(f"/api/individuals/{khan}/unmerge")
    assert r.status_code == 409 and "reload" in r.json()["detail"]
    with project.session() as s:
        assert s.get(Individual, khan).merged_into_id == bora
    res = CliRunner().invoke(app, ["individuals", "unmerge", str(project.root), "Nobody"])
    assert res.exit_code != 0 and "not found" in str(res.exception)


def test_labels_identifications_users_downloads_and_exports_are_recorded(
    project, client_of, tmp_path
):
    ids = build_project(project)
    root = str(project.root)
    token = json.loads(
        _cli("users", "add", root, "rita", "--role", "reviewer", "--precise-locations", "--json")
    )["token"]
    _cli("users", "role", root, "rita", "--no-precise-locations")
    _cli("users", "add", root, "vic", "--role", "viewer")
    users = entries(project, action="user")
    assert [(e["action"], e["target"]) for e in users] == [
        ("user.add", "user:vic"),
        ("user.role", "user:rita"),
        ("user.add", "user:rita"),
    ]
    assert users[1]["before"] == {"precise_locations": True}
    assert users[1]["after"] == {"precise_locations": False}
    assert all(e["actor"] == cli_actor() for e in users)

    rita = client_of(project, token)
    item = rita.get("/api/sequences").json()["items"][0]
    versions = {str(m["id"]): m["version"] for m in item["media"]}
    r = rita.post(
        f"/api/sequences/{item['id']}/label",
        json={"species": "VTA", "count": 2, "versions": versions},
    )
    assert r.status_code == 200
    label = _one(project, action="label")
    assert label["actor"] == "rita" and label["target"] == f"sequence:{item['id']}"
    assert label["after"] == [{"species": "VTA", "count": 2}]
    assert label["before"] == []  # sorted by folder, never labelled by a person
    r = rita.post(f"/api/sequences/{item['id']}/undo", json={"versions": r.json()["versions"]})
    assert r.status_code == 200
    undo = _one(project, action="label.undo")
    assert undo["before"] == [{"species": "VTA", "count": 2, "by": "rita"}]
    assert undo["after"] == []

    # Accepting a candidate is an identification; moving the photo to another
    # individual afterwards is a split of the first one's record.
    q = ids["query"]
    r = rita.post(
        f"/api/annotations/{q}/decision",
        json={"decision": "accept", "individual_id": ids["khan"], "version": 0},
    )
    assert r.status_code == 200, r.text
    r = rita.post(
        f"/api/annotations/{q}/decision",
        json={"decision": "accept", "individual_id": ids["bora"], "version": 1},
    )
    assert r.status_code == 200, r.text
    ident, split = _one(project, action="identify"), _one(project, action="split")
    assert ident["before"]["individual_id"] is None
    assert ident["after"]["individual_id"] == ids["khan"]
    assert split["before"]["individual_id"] == ids["khan"]
    assert split["after"]["individual_id"] == ids["bora"]

    # Downloads of originals: who, which file, with or without precise locations;
    # the viewer reloading the same file is one row, another file another.
    vic = client_of(project, json.loads(_cli("users", "token", root, "vic", "--json"))["token"])
    with project.session() as s:
        m1, m2 = s.scalars(select(Media.id).where(Media.mediatype == "image").limit(2)).all()
    for mid in (m1, m1, m2):
        assert vic.get(f"/api/media/{mid}/file").status_code == 200
    assert vic.get(f"/api/media/{m1}/thumb").status_code == 200  # thumbnails are not downloads
    assert vic.get("/api/media/999999/file").status_code == 404
    got = entries(project, action="download")
    assert [(e["actor"], e["target"]) for e in got] == [
        ("vic", f"media:{m2}"),
        ("vic", f"media:{m1}"),
    ]
    assert got[0]["detail"]["precise"] is False
    assert entries(project, target="media:", actor="vic") == got

    # Exports: the package's folder and options.
    with project.session() as s:
        s.execute(update(Station).values(crs="EPSG:32646"))  # Camtrap DP needs lon/lat
        s.commit()
    _cli("export", "camtrapdp", root, str(tmp_path / "pkg"), "--json")
    export = _one(project, action="export")
    assert export["target"] == str((tmp_path / "pkg").resolve())
    assert export["detail"]["format"] == "camtrapdp" and export["detail"]["public"] is True

    # The command: filters and one JSON document.
    listed = json.loads(_cli("audit", root, "--action", "user", "--json"))
    assert listed["count"] == 4  # three above and the new token for vic
    listed = json.loads(_cli("audit", root, "--actor", "rita", "--limit", "2", "--json"))
    assert [e["action"] for e in listed["entries"]] == ["split", "identify"]
    assert "split" in _cli("audit", root)
    assert json.loads(_cli("audit", root, "--since", "2999-01-01", "--json"))["count"] == 0
    for bad in (["--action", "nonsense"], ["--since", "yesterday"], ["--limit", "0"]):
        res = CliRunner().invoke(app, ["audit", root, *bad])
        assert isinstance(res.exception, BadInputError), bad


def test_registry_changes_keep_the_coordinates_they_replace(project, tmp_path):
    table = need_data(*CAMTRAPR, "oracle", "camtraps.csv")
    root = str(project.root)
    _cli("registry", "import", root, str(table), "--date-format", "%d/%m/%Y")
    first = _one(project, action="registry.import")
    assert first["after"]["new_stations"] == ["StationA", "StationB", "StationC"]
    assert entries(project, action="registry.station") == []
    text = table.read_text()
    moved = tmp_path / "camtraps.csv"
    assert "526000" in text
    moved.write_text(text.replace("526000", "526500", 1))
    _cli("registry", "import", root, str(moved), "--date-format", "%d/%m/%Y", "--yes")
    change = _one(project, action="registry.station")
    assert change["target"] == "station:StationA" and change["actor"] == cli_actor()
    assert change["before"]["x"] == 526000.0 and change["after"]["x"] == 526500.0
    assert set(change["before"]) == {"x"}  # only what changed
    assert change["detail"]["table"] == str(moved)
    assert entries(project, action="registry.deployment") == []
