"""Shared fixtures: real data location and a project on each database backend."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PG_ADMIN_URL = os.environ.get("IRBIS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def need_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test saying what is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (see ../shared/data/README.md)")
    return path


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of the PostgreSQL test server; fails under CI when it is down."""
    problem = _pg_available()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required under CI: {problem}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} not reachable: {problem}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"irbis_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str | None:
    """``None`` for the embedded SQLite file, or a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_database")


@pytest.fixture
def project(tmp_path: Path, backend: str | None):
    """A new empty project on each backend."""
    from irbis.store import Project

    p = Project.init(tmp_path / "project", db_url=backend)
    yield p
    p.close()


@contextlib.contextmanager
def local_ray(cpus: int = 2) -> Iterator[None]:
    """A local Ray instance with ``cpus`` worker processes on 127.0.0.1, shut down after."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")
    # address="local": a new instance, whatever cluster `ray start` may have left running.
    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster with 2 worker processes on 127.0.0.1, one per test module.

    Shared by the ``--ray`` tests of detect, identify and training; skipped
    where Ray is not installed (``pip install 'irbis[ray]'``).
    """
    with local_ray(2):
        yield
