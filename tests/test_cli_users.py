"""``irbis users list|role|revoke|token`` against the running app (both backends).

Each change is made with the command a project admin types and checked with
requests to the app built on the same project (FastAPI's TestClient): a role
change, a revoked token and a new token take effect at the next request.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from irbis.cli.app import app


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


def _token(*args: str) -> str:
    return json.loads(_run("users", *args, "--json"))["token"]


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project, token: str | None = None):
        c = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
        if token:
            c.headers["Authorization"] = f"Bearer {token}"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def _listed(root: str) -> dict[str, dict]:
    return {u["name"]: u for u in json.loads(_run("users", "list", root, "--json"))["users"]}


def test_list_shows_users_but_never_their_tokens(project):
    root = str(project.root)
    res = CliRunner().invoke(app, ["users", "list", root])
    assert res.exit_code == 0 and "local mode" in res.output
    tara = _token("add", root, "tara", "--organisation", "SLT", "--precise-locations")
    omar = _token("add", root, "omar", "--role", "viewer", "--display-name", "Omar K.")
    users = _listed(root)
    assert users["tara"] == users["tara"] | {
        "role": "reviewer",
        "organisation": "SLT",
        "precise_locations": True,
        "token_set": True,
    }
    assert users["omar"]["role"] == "viewer" and users["omar"]["display_name"] == "Omar K."
    assert not users["omar"]["precise_locations"]
    table = _run("users", "list", root)
    listing = table + json.dumps(users)
    assert "tara" in table and "SLT" in table and "Omar K." in table
    assert tara not in listing and omar not in listing
    # Neither the token nor its hash is shown.
    from irbis.web.auth import hash_token

    assert hash_token(tara) not in listing and "token_hash" not in listing


def test_role_change_takes_effect_and_403_advice_works(project, client_of):
    root = str(project.root)
    _token("add", root, "root", "--role", "admin")
    omar = _token("add", root, "omar", "--role", "viewer")
    c = client_of(project, omar)
    assert c.get("/api/me").json()["role"] == "viewer"

    # A viewer may not label: the 403 names the command that fixes it.
    r = c.post("/api/sequences/1/undo", json={"versions": {}})
    assert r.status_code == 403
    detail = r.json()["detail"]
    assert "irbis users role PROJECT omar --role reviewer" in detail
    assert "users add" not in detail  # omar exists: adding him again would fail
    # The advice, run as written with the project folder, works at once.
    advice = detail.split("run: ", 1)[1].rstrip(")")
    argv = shlex.split(advice.replace("PROJECT", shlex.quote(root)))
    assert argv[:3] == ["irbis", "users", "role"]
    _run(*argv[1:])
    r = c.post("/api/sequences/1/undo", json={"versions": {}})
    assert r.status_code == 404  # past the role check: there is no sequence 1
    assert c.get("/api/me").json() == {
        "name": "omar",
        "role": "reviewer",
        "precise_locations": False,
        "local_mode": False,
    }

    _run("users", "role", root, "omar", "--role", "viewer")
    assert c.post("/api/sequences/1/undo", json={"versions": {}}).status_code == 403
    # Every role's advice names the user and the role needed.
    from irbis.web.auth import WebUser
    from irbis.web.errors import ForbiddenError

    with pytest.raises(ForbiddenError, match=r"irbis users role PROJECT omar --role admin"):
        WebUser("omar", "viewer", False).require("admin")

    # Precise locations on and off, without touching the role.
    res = json.loads(_run("users", "role", root, "omar", "--precise-locations", "--json"))
    assert res["changed"] == {"precise_locations": [False, True]} and res["role"] == "viewer"
    assert c.get("/api/me").json()["precise_locations"] is True
    _run("users", "role", root, "omar", "--no-precise-locations")
    assert c.get("/api/me").json()["precise_locations"] is False
    same = json.loads(_run("users", "role", root, "omar", "--role", "viewer", "--json"))
    assert same["changed"] == {}
    assert _listed(root)["omar"]["role"] == "viewer"


def test_revoke_stops_the_token_at_once_and_token_replaces_it(project, client_of):
    root = str(project.root)
    tara = _token("add", root, "tara")
    omar = _token("add", root, "omar")
    c = client_of(project, tara)
    assert c.get("/api/me").json()["name"] == "tara"

    out = json.loads(_run("users", "revoke", root, "tara", "--json"))
    assert out == {"name": "tara", "revoked": True}
    # The same client, the same token, the very next request: refused.
    assert c.get("/api/me").status_code == 401
    assert c.get("/api/sequences").status_code == 401
    browser = client_of(project)
    login = browser.post("/login", data={"token": tara, "next": "/"}, follow_redirects=False)
    assert login.status_code == 401
    assert _listed(root)["tara"]["token_set"] is False
    # Revoking every token does not open the app in local mode: it still has users.
    _run("users", "revoke", root, "omar")
    assert client_of(project).get("/api/me").status_code == 401
    again = json.loads(_run("users", "revoke", root, "omar", "--json"))
    assert again["revoked"] is False

    # A new token works; the one before it does not.
    new = _token("token", root, "tara")
    assert new != tara
    assert client_of(project, new).get("/api/me").json()["name"] == "tara"
    assert c.get("/api/me").status_code == 401
    newer = _token("token", root, "tara")
    assert client_of(project, newer).get("/api/me").status_code == 200
    assert client_of(project, new).get("/api/me").status_code == 401
    assert client_of(project, omar).get("/api/me").status_code == 401
    # Printed once on stdout, alone (scripts capture it), as users add does.
    res = CliRunner().invoke(app, ["users", "token", root, "omar"])
    assert res.exit_code == 0
    printed = res.stdout.strip()
    assert client_of(project, printed).get("/api/me").json()["name"] == "omar"
    assert _listed(root)["omar"]["token_set"] is True


def test_unknown_users_and_bad_options_are_one_line_errors(project):
    root = str(project.root)
    _token("add", root, "tara")
    line = _fails("users", "revoke", root, "nobody")
    assert "users revoke nobody: no such user" in line and "tara" in line
    line = _fails("users", "role", root, "nobody", "--role", "viewer")
    assert "no such user" in line
    line = _fails("users", "role", root, "tara", "--role", "boss")
    assert "unknown role 'boss'" in line
    line = _fails("users", "role", root, "tara")
    assert "nothing to change" in line
    line = _fails("users", "token", root, "nobody")
    assert "users token nobody: no such user" in line
    assert _listed(root)["tara"]["role"] == "reviewer"
