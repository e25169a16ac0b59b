"""Camera effort of a project's deployments (see :mod:`irbis.stats.effort`)."""

from __future__ import annotations

from irbis.ingest.registry import existing_records
from irbis.stats.effort import CameraOperation, camera_operation
from irbis.store.project import Project


def project_effort(project: Project, *, cameras_independent: bool = True) -> CameraOperation:
    """Daily operation matrix of every station of ``project``."""
    with project.session() as s:
        stations, deps = existing_records(s)
    return camera_operation(
        deps, stations=[st.name for st in stations], cameras_independent=cameras_independent
    )
