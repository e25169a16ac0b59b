"""`irbis serve --workers 2`: several processes answer on one port and stop together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from irbis.store import Project


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def test_workers_share_the_port_and_stop_with_the_parent(tmp_path):
    Project.init(tmp_path / "p").close()
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "irbis",
            "serve",
            str(tmp_path / "p"),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/api/me", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert len(workers) == 2
        # A plain HTTP/1.1 client on the shared socket.
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert c.recv(12).startswith(b"HTTP/1.1 200")
        with httpx.Client(base_url=base) as client:
            assert all(client.get("/api/overview").status_code == 200 for _ in range(20))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        time.sleep(0.5)
        for pid in workers:
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            assert not alive, f"worker {pid} outlived the server"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_listening_socket_turns_nagle_off_for_accepted_connections():
    """Accepted connections inherit TCP_NODELAY (uvicorn's own socket did not set it)."""
    from irbis.web.server import listening_socket

    sock = listening_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            conn, _ = sock.accept()
            with conn:
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()
