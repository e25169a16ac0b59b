"""``irbis detect --ray ray://HOST:PORT``: a Ray client connection to a cluster started apart.

``scripts/ray-local`` starts a head with 2 workers whose client server listens
on the GCS port + 1; the CLI connects through ``ray://`` (Ray's client
protocol, what a laptop uses to reach a team's cluster) and the rows equal
the single-process run's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_ray_detect import _build, _rows, models  # noqa: F401 - the fixture

pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ray-local"


def _free_pair() -> int:
    """A port P with P and P + 1 free (the GCS and the client server)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


@contextlib.contextmanager
def ray_local(workers: int = 2) -> Iterator[tuple[int, dict[str, str]]]:
    """``scripts/ray-local start`` on a free port pair: (GCS port, environment for clients)."""
    port = _free_pair()
    state = Path(f"/tmp/irbis-ray-client-{os.getpid()}")  # short: Ray's socket paths
    env = {
        **os.environ,
        "RAY_BIN": str(Path(sys.executable).with_name("ray")),
        "IRBIS_RAY_STATE": str(state),
    }
    env.pop("RAY_AUTH_MODE", None)  # as a user's shell: the script and irbis set it up
    args = ["--port", str(port)]
    start = subprocess.run(
        [SCRIPT, "start", "--workers", str(workers), *args], env=env, capture_output=True, text=True
    )
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        yield port, env
    finally:
        stop = subprocess.run([SCRIPT, "stop", *args], env=env, capture_output=True, text=True)
        shutil.rmtree(state, ignore_errors=True)
    assert stop.returncode == 0, stop.stdout + stop.stderr


def test_detect_through_a_ray_client_address(models, tmp_path):  # noqa: F811 - the fixture
    from irbis.pipeline.cluster import DetectorSpec
    from irbis.pipeline.detect_stage import run_detect
    from irbis.store import Project

    fresh = _build(tmp_path / "build")
    single = shutil.copytree(fresh, tmp_path / "single")
    with Project.open(single) as p:
        run_detect(p, DetectorSpec().load())
    expected = _rows(single)
    path = shutil.copytree(fresh, tmp_path / "p")
    with ray_local(2) as (port, env):
        res = subprocess.run(
            [sys.executable, "-m", "irbis", "detect", str(path), "--batch-size", "3", "--json"],
            env={
                **env,
                "IRBIS_RAY_ADDRESS": f"ray://127.0.0.1:{port + 1}",
                # The client server starts a server process per client: on a loaded
                # 2-core machine that took more than Ray's default 3 x (5-15 s) once.
                "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "20",
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert res.returncode == 0, res.stderr[-3000:]
    assert _rows(path) == expected
