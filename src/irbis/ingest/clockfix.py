"""Set a deployment's clock correction and re-time its files from the raw readings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.ingest.clock import read_timeshift_table
from irbis.ingest.grouping import retime_deployments
from irbis.store.project import Project
from irbis.store.schema import Camera, Deployment, Station


def _retime(project: Project, session, deps: list[Deployment]) -> int:
    return retime_deployments(
        session,
        [d.id for d in deps],
        earliest=datetime.fromisoformat(project.settings.earliest_plausible),
        burst_gap_s=project.settings.burst_gap_s,
        event_gap_min=project.settings.event_gap_min,
    )


def _summary(d: Deployment, changed: int) -> dict:
    return {
        "deployment": d.code,
        "shift": d.clock_shift,
        "offset_s": d.clock_offset_s,
        "media_changed": changed,
    }


def apply_shift_table(project: Project, path: Path | str) -> dict:
    """Apply camtrapR's time-shift table (station, camera, "Y:m:d H:M:S", sign).

    The shift replaces any earlier shift of the matching deployments; the
    camera's raw readings are never changed, so applying a table twice is
    the same as applying it once.
    """
    rows = read_timeshift_table(path)
    out = []
    with project.session() as s, s.begin():
        for station, camera, shift in rows:
            q = (
                select(Deployment)
                .join(Station, Deployment.station_id == Station.id)
                .where(Station.name == station)
            )
            deps = list(s.scalars(q))
            if camera is not None:
                deps = [
                    d for d in deps if d.camera_id is not None and camera in _camera_names(s, d)
                ]
            if not deps:
                raise BadInputError(
                    f"{path}: station {station}" + (f" camera {camera}" if camera else ""),
                    "no such deployment in the project",
                    "import the registry first or fix the station name",
                )
            for d in deps:
                d.clock_shift = str(shift)
            s.flush()
            for d in deps:
                out.append(_summary(d, _retime(project, s, [d])))
    return {"deployments": out}


def _camera_names(session, d: Deployment) -> set[str]:
    cam = session.get(Camera, d.camera_id)
    return {cam.serial, cam.model} if cam else set()


def apply_offset(project: Project, deployment: str, offset_s: float) -> dict:
    """Set the fixed clock offset (seconds added to the camera clock) of a deployment."""
    with project.session() as s, s.begin():
        d = s.scalar(select(Deployment).where(Deployment.code == deployment))
        if d is None:
            raise BadInputError(
                f"--deployment {deployment}",
                "unknown deployment",
                "see `irbis registry list` for the codes",
            )
        d.clock_offset_s = float(offset_s)
        s.flush()
        return {"deployments": [_summary(d, _retime(project, s, [d]))]}
