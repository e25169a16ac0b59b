"""Authentication by default: refusal to serve an open LAN, browser sessions, login limits,
TLS and framing headers (issue 19, item 10).

Run against the real app on both backends (FastAPI's TestClient) and, for
``irbis serve`` itself, as a real process with a real TLS certificate made by
``openssl``. Each test fails on the code before these changes: the server
started open on 0.0.0.0, the cookie was the permanent token, ``/logout``
revoked nothing, logins were neither limited nor logged, there was no TLS
option and no anti-framing header.
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from irbis.store import Project
from irbis.store.schema import LoginAttempt, WebSession
from irbis.web.auth import (
    MAX_FAILURES_USER_IP,
    SESSION_COOKIE,
    _now,
    create_user,
    revoke_token,
    set_role,
)


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project, *, base_url: str = "http://testserver", wrap=None):
        app = create_app(project, allowed_hosts_for(extra=("testserver",)))
        c = TestClient(wrap(app) if wrap else app, base_url=base_url)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def _set_cookie(resp: httpx.Response) -> str:
    cookies = [v for k, v in resp.headers.multi_items() if k == "set-cookie"]
    found = [c for c in cookies if c.startswith(SESSION_COOKIE + "=")]
    assert len(found) == 1, cookies
    return found[0]


def _login(c, name: str, token: str) -> httpx.Response:
    return c.post(
        "/login", data={"name": name, "token": token, "next": "/"}, follow_redirects=False
    )


def test_login_opens_an_expiring_revocable_session_not_the_token(project, client_of):
    token = create_user(project, "tara", "reviewer")
    other = create_user(project, "omar", "viewer")
    c = client_of(project)
    r = _login(c, "tara", token)
    assert r.status_code == 303
    cookie = _set_cookie(r)
    sid = c.cookies[SESSION_COOKIE]
    assert sid != token and token not in cookie
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs  # plain HTTP: a Secure cookie would never come back
    max_age = int(next(a for a in attrs if a.startswith("max-age=")).split("=")[1])
    assert 0 < max_age <= 12 * 3600
    assert c.get("/api/me").json()["name"] == "tara"
    with project.session() as s:
        row = s.scalar(select(WebSession))
        assert row.id_hash != sid and len(row.id_hash) == 64  # only a hash is stored
        assert row.expires_utc > _now() + timedelta(hours=11)

    # The permanent token in a cookie (what the old login form set) opens nothing.
    old = client_of(project)
    old.cookies.set("irbis_token", token)
    assert old.get("/api/me").status_code == 401
    # The name must be the token's.
    assert _login(client_of(project), "omar", token).status_code == 401
    # A role change applies to the open session at its next request.
    set_role(project, "tara", "viewer")
    assert c.get("/api/me").json()["role"] == "viewer"

    # Logout ends the session on the server: the same cookie, replayed, is refused.
    stolen = client_of(project)
    stolen.cookies.set(SESSION_COOKIE, sid)
    assert stolen.get("/api/me").status_code == 200
    out = c.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert stolen.get("/api/me").status_code == 401
    page = stolen.get("/sequences", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    # The API token itself still works: sessions are separate from it.
    api = client_of(project)
    api.headers["Authorization"] = f"Bearer {token}"
    assert api.get("/api/me").status_code == 200

    # Expiry.
    b = client_of(project)
    assert _login(b, "omar", other).status_code == 303
    assert b.get("/api/me").status_code == 200
    with project.session() as s:
        s.execute(update(WebSession).values(expires_utc=_now() - timedelta(seconds=1)))
        s.commit()
    r = b.get("/api/me")
    assert r.status_code == 401 and "expired" in r.json()["detail"]

    # irbis users revoke logs the user's browsers out too.
    b2 = client_of(project)
    assert _login(b2, "omar", other).status_code == 303
    assert b2.get("/api/me").status_code == 200
    revoke_token(project, "omar")
    assert b2.get("/api/me").status_code == 401


def test_session_cookie_is_secure_over_https_and_behind_a_trusted_proxy(project, client_of):
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    token = create_user(project, "tara", "reviewer")
    direct = client_of(project, base_url="https://testserver")
    assert "secure" in [
        a.strip().lower() for a in _set_cookie(_login(direct, "tara", token)).split(";")
    ]
    assert direct.get("/api/me").json()["name"] == "tara"
    # A reverse proxy terminating HTTPS says so in X-Forwarded-Proto; uvicorn believes
    # it from the addresses in --forwarded-allow-ips (here: the test client).
    proxied = client_of(project, wrap=lambda app: ProxyHeadersMiddleware(app, trusted_hosts="*"))
    r = proxied.post(
        "/login",
        data={"name": "tara", "token": token},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        follow_redirects=False,
    )
    assert "secure" in [a.strip().lower() for a in _set_cookie(r).split(";")]
    with project.session() as s:
        ips = set(s.scalars(select(LoginAttempt.ip)))
    assert "203.0.113.9" in ips  # logins are counted per real client address


def test_logins_are_rate_limited_per_user_and_address_and_logged(project, client_of, caplog):
    token = create_user(project, "tara", "reviewer")
    omar = create_user(project, "omar", "reviewer")
    c = client_of(project)
    caplog.set_level(logging.INFO, logger="irbis.web.auth")
    for _ in range(MAX_FAILURES_USER_IP):
        r = _login(c, "tara", "guess")
        assert r.status_code == 401 and "unknown user name or token" in r.text
    # Now even the right token is refused for a while, with advice.
    r = _login(c, "tara", token)
    assert r.status_code == 429 and "too many failed logins" in r.text
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    # Another user from the same address is not locked out by tara's failures.
    assert _login(client_of(project), "omar", omar).status_code == 303
    with project.session() as s:
        rows = s.execute(
            select(LoginAttempt.user_name, LoginAttempt.ok, LoginAttempt.outcome).order_by(
                LoginAttempt.id
            )
        ).all()
    assert [r.outcome for r in rows] == ["unknown token"] * MAX_FAILURES_USER_IP + [
        "rate limited",
        "ok",
    ]
    assert rows[-1].user_name == "omar" and rows[-1].ok
    logged = [r.getMessage() for r in caplog.records if r.name == "irbis.web.auth"]
    assert sum("unknown token for 'tara'" in m for m in logged) == MAX_FAILURES_USER_IP
    assert any("rate limited" in m for m in logged) and any("ok for 'omar'" in m for m in logged)
    # The window passes: tara can log in again.
    with project.session() as s:
        s.execute(update(LoginAttempt).values(created_utc=_now() - timedelta(hours=1)))
        s.commit()
    assert _login(c, "tara", token).status_code == 303


def test_every_response_forbids_framing(project, client_of):
    from .test_web_api import build_project

    build_project(project)
    c = client_of(project)
    with project.session() as s:
        from irbis.store.schema import Media

        mid = s.scalar(select(Media.id).where(Media.mediatype == "image").limit(1))
    responses = [
        c.get("/", headers={"Accept": "text/html"}),
        c.get("/login"),
        c.get("/api/overview"),
        c.get("/api/sequences/999999"),  # an error
        c.get("/static/app.css"),
        c.get(f"/api/media/{mid}/file"),
        c.get("/api/me", headers={"Host": "evil.example"}),  # refused by the Host check
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 200, 200, 400]
    for r in responses:
        assert r.headers["x-frame-options"] == "DENY", r.url
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, r.url
    # The media policy keeps its own sandbox and gains the framing rule.
    assert "default-src 'none'" in responses[5].headers["content-security-policy"]


# -- irbis serve as a real process ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _irbis(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irbis", *args], capture_output=True, text=True, timeout=timeout
    )


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def test_serve_refuses_a_lan_address_without_users(tmp_path):
    root = tmp_path / "p"
    Project.init(root).close()
    line = _one_error_line(_irbis("serve", str(root), "--host", "0.0.0.0", "--port", "1"))
    assert "no users" in line and "irbis users add" in line
    assert "--role admin" in line and "--insecure-open" in line
    line = _one_error_line(_irbis("serve", str(root), "--tls-cert", str(root / "irbis.json")))
    assert "--tls-cert and --tls-key go together" in line
    bad = _irbis(
        "serve", str(root), "--tls-cert", str(root / "irbis.json"), "--tls-key", str(root / "x")
    )
    assert "no such file" in _one_error_line(bad)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_serve_over_tls_on_the_lan_with_users(tmp_path):
    root = tmp_path / "p"
    with Project.init(root) as p:
        token = create_user(p, "tara", "admin")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    # A key that is not the certificate's: refused in one line before serving.
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    line = _one_error_line(
        _irbis("serve", str(root), "--tls-cert", str(cert), "--tls-key", str(garbage))
    )
    assert "cannot use them for HTTPS" in line
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "irbis", "serve", str(root), "--host", "0.0.0.0",
            "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=cert)) as c:
            while True:
                try:
                    if c.get("/api/me").status_code == 401:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
            r = c.post("/login", data={"name": "tara", "token": token}, follow_redirects=False)
            assert r.status_code == 303
            attrs = [a.strip().lower() for a in _set_cookie(r).split(";")]
            assert "secure" in attrs and "httponly" in attrs
            assert c.get("/api/me").json()["name"] == "tara"
            assert c.get("/api/me").headers["x-frame-options"] == "DENY"
        # Plain HTTP on that port is not answered as the app.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/me", timeout=5)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "https://0.0.0.0" in (proc.stderr.read() if proc.stderr else "")
