"""``irbis detect --ray ray://HOST:PORT``: a Ray client connection to a cluster started apart.

``scripts/ray-local`` starts a head with 2 workers whose client server listens
on the GCS port + 1; the CLI connects through ``ray://`` (Ray's client
protocol, what a laptop uses to reach a team's cluster) and the rows equal
the single-process run's.

Ray's client proxy starts a server process for each client that connects, and
now and then that process dies as it starts (the test suite met it once on a
loaded 2-core machine: "Initialization failure from server"). Here the head is
made to fail the first one for real: a ``sitecustomize`` on the head's
PYTHONPATH ends the first client-server process before it serves; irbis must
connect again and finish.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from .ray_local import ray_local
from .test_ray_detect import _build, _rows, models  # noqa: F401 - the fixture

pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")

#: Imported by every Python process Ray starts on the head: the first client
#: server (Ray runs it with --mode=specific-server) exits before serving.
_FAIL_FIRST_CLIENT_SERVER = """
import os, sys
if "--mode=specific-server" in sys.argv:
    marker = os.environ["IRBIS_TEST_FAILED_ONCE"]
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        os._exit(3)
"""


def test_detect_through_a_ray_client_address_survives_a_failed_client_server(
    models,  # noqa: F811 - the fixture
    tmp_path,
):
    from irbis.pipeline.cluster import DetectorSpec
    from irbis.pipeline.detect_stage import run_detect
    from irbis.store import Project

    fresh = _build(tmp_path / "build")
    single = shutil.copytree(fresh, tmp_path / "single")
    with Project.open(single) as p:
        run_detect(p, DetectorSpec().load())
    expected = _rows(single)
    path = shutil.copytree(fresh, tmp_path / "p")

    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(textwrap.dedent(_FAIL_FIRST_CLIENT_SERVER))
    marker = tmp_path / "client-server-failed"
    head_env = {"PYTHONPATH": str(inject), "IRBIS_TEST_FAILED_ONCE": str(marker)}
    with ray_local(2, head_env=head_env) as cluster:
        res = subprocess.run(
            [sys.executable, "-m", "irbis", "detect", str(path), "--batch-size", "3", "--json"],
            env={
                **cluster.env,
                "IRBIS_RAY_ADDRESS": f"ray://127.0.0.1:{cluster.port + 1}",
                # How long the failed connection waits for the head before
                # giving up (Ray's default 30 s; the head adds its own 30 s).
                "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "5",
            },
            capture_output=True,
            text=True,
            timeout=400,
        )
    assert marker.exists(), "the head never started a client server"
    assert res.returncode == 0, res.stderr[-3000:]
    assert "could not start a server for this client" in res.stderr
    assert "connecting again (2 of 3)" in res.stderr
    assert _rows(path) == expected
