"""``irbis detect --ray ray://HOST:PORT``: a Ray client connection to a cluster started apart.

``scripts/ray-local`` starts a head with 2 workers whose client server listens
on the GCS port + 1; the CLI connects through ``ray://`` (Ray's client
protocol, what a laptop uses to reach a team's cluster) and the rows equal
the single-process run's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .ray_local import ray_local
from .test_ray_detect import _build, _rows, models  # noqa: F401 - the fixture

pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")


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
    with ray_local(2) as cluster:
        res = subprocess.run(
            [sys.executable, "-m", "irbis", "detect", str(path), "--batch-size", "3", "--json"],
            env={
                **cluster.env,
                "IRBIS_RAY_ADDRESS": f"ray://127.0.0.1:{cluster.port + 1}",
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
