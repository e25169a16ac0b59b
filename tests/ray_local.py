"""``scripts/ray-local`` for tests: a head with N workers on a free port pair, stopped after."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ray-local"


@dataclass
class LocalCluster:
    """What a test needs of a cluster the script started."""

    port: int  # the GCS; the client server (ray://) listens on port + 1
    env: dict[str, str]  # environment of a user's shell for `irbis ... --ray`
    state: Path  # the script's state folder (head.pid, head.log)
    started: str  # what `start` printed


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
def ray_local(workers: int = 2, head_env: dict[str, str] | None = None) -> Iterator[LocalCluster]:
    """``scripts/ray-local start`` on a free port pair; ``stop`` (checked) when done.

    ``head_env`` is added to the environment of the head (and so of every
    process Ray starts there), not to ``LocalCluster.env``.
    """
    port = _free_pair()
    # Short: Ray's socket paths under it must fit in 107 bytes.
    state = Path(f"/tmp/irbis-ray-test-{os.getpid()}-{port}")
    env = {
        **os.environ,
        "RAY_BIN": str(Path(sys.executable).with_name("ray")),
        "IRBIS_RAY_STATE": str(state),
    }
    env.pop("RAY_AUTH_MODE", None)  # as a user's shell: the script and irbis set it up
    args = ["--port", str(port)]
    start = subprocess.run(
        [SCRIPT, "start", "--workers", str(workers), *args],
        env={**env, **(head_env or {})},
        capture_output=True,
        text=True,
    )
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        yield LocalCluster(port, env, state, start.stdout)
    finally:
        stop = subprocess.run([SCRIPT, "stop", *args], env=env, capture_output=True, text=True)
        shutil.rmtree(state, ignore_errors=True)
    assert stop.returncode == 0, stop.stdout + stop.stderr
