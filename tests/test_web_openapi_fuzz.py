"""Every operation of the OpenAPI schema under generated requests: never a 5xx.

Schemathesis generates requests from ``/openapi.json`` (valid and invalid
bodies, query strings and path ids) and sends them to the app in process, on
a small real project (a card of two bursts, two individuals) on SQLite and
on PostgreSQL (where NUL bytes in text once gave 500s). Bounded and
derandomised so that it runs in seconds and the same way in CI.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import ingest
from irbis.store import Project
from irbis.store.schema import Individual

from .cards import jpeg_bytes

# Examples per operation: about 30 operations, a few milliseconds each. Set
# IRBIS_OPENAPI_EXAMPLES for a longer hunt.
EXAMPLES = int(os.environ.get("IRBIS_OPENAPI_EXAMPLES", "12"))


@pytest.fixture
def api_schema(project: Project, tmp_path: Path):
    """The app's schema, bound to the app of a small project (SQLite and PostgreSQL)."""
    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    root = tmp_path
    save_registry(
        project,
        [StationRecord(name="SLG-01")],
        [
            DeploymentRecord(
                code="SLG-01-A",
                station="SLG-01",
                start=datetime(2026, 1, 1),
                end=datetime(2026, 6, 1),
                timezone="UTC",
            )
        ],
    )
    card = root / "card" / "SLG-01"
    card.mkdir(parents=True)
    t0 = datetime(2026, 2, 1, 6, 0)
    for i in range(6):
        t = t0 + timedelta(hours=3 * (i // 3), seconds=i % 3)
        (card / f"IMG_{i:04d}.JPG").write_bytes(jpeg_bytes(t, size=(64, 48), seed=i))
    ingest(project, root / "card")
    with project.session() as s:
        s.add_all(
            Individual(name=name, created_utc=datetime(2026, 3, 1)) for name in ("Khan", "Bora")
        )
        s.commit()
    app = create_app(project, allowed_hosts_for(extra=("testserver",)))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_error(api_schema) -> None:
    """Whatever the request to whichever operation, the answer is not a 5xx."""
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    n_operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        n_operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = case.call()
            statuses[response.status_code] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query or ''} {case.body!r:.200} -> "
                f"{response.status_code}: {response.text[:300]}"
            )

        try:
            check()
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
        except Exception as exc:  # noqa: BLE001 - raised through the app: a 500
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    assert n_operations >= 25
    assert failures == [], "\n".join(failures)
    # The requests reached the handlers: some were answered, some refused.
    ok = sum(n for code, n in statuses.items() if code < 300)
    assert ok >= n_operations and statuses[422] > 0, statuses
    print(dict(statuses))
