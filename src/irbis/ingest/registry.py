"""Put stations and deployments from a table into a project, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from irbis.core.errors import IrbisError
from irbis.core.types import DeploymentRecord, MalfunctionPeriod, StationRecord
from irbis.ingest.grouping import retime_deployments
from irbis.ingest.registry_csv import read_registry_csv, validate_registry
from irbis.ingest.timing import parse_timezone
from irbis.store.audit import cli_actor, record
from irbis.store.project import Project
from irbis.store.schema import Camera, Deployment, Malfunction, Site, Station


@dataclass
class RegistryImport:
    stations_new: int = 0
    stations_updated: int = 0
    deployments_new: int = 0
    deployments_updated: int = 0
    changes: list[RegistryChange] = field(default_factory=list)


#: Station fields whose change moves a station on the map (and in SECR).
COORDINATE_FIELDS = ("lon", "lat", "x", "y", "crs")
#: Deployment fields whose change moves every photo's time.
CLOCK_FIELDS = ("timezone", "clock_offset_s")


@dataclass(frozen=True)
class RegistryChange:
    """One stored value a re-import would replace: a time zone, offset or coordinate."""

    kind: str  # "station" | "deployment"
    name: str
    field: str
    old: object
    new: object

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.field} {self.old} -> {self.new}"

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "field": self.field,
            "old": self.old,
            "new": self.new,
        }


class RegistryChangesError(IrbisError):
    """A re-import would change time zones, clock offsets or coordinates not confirmed."""

    def __init__(self, where: str, changes: Sequence[RegistryChange]) -> None:
        self.changes = list(changes)
        shown = "; ".join(str(c) for c in self.changes[:6])
        more = f"; and {len(self.changes) - 6} more" if len(self.changes) > 6 else ""
        super().__init__(
            f"{where}: the import would change {len(self.changes)} stored value(s) "
            f"({shown}{more}); nothing was written (rerun with --yes to apply them, "
            "or fix the table)"
        )


def _given(rec: DeploymentRecord, name: str) -> bool:
    return rec.given is None or name in rec.given


def _differs(old: object, new: object) -> bool:
    if isinstance(old, float | int) and isinstance(new, float | int):
        return abs(float(old) - float(new)) > 1e-6
    return old != new


def registry_changes(
    session: Session, stations: Sequence[StationRecord], deployments: Sequence[DeploymentRecord]
) -> list[RegistryChange]:
    """Time zones, clock offsets and coordinates the records would change.

    Only values the records state count (a table without a ``timezone``
    column, imported without ``--timezone``, changes no zone); a value
    stored where there was none is not a change.
    """
    out: list[RegistryChange] = []
    by_name = {s.name: s for s in session.scalars(select(Station))}
    for rec in stations:
        row = by_name.get(rec.name)
        if row is None:
            continue
        for attr in COORDINATE_FIELDS:
            old, new = getattr(row, attr), getattr(rec, attr)
            if old is not None and new is not None and _differs(old, new):
                out.append(RegistryChange("station", rec.name, attr, old, new))
    by_code = {d.code: d for d in session.scalars(select(Deployment))}
    for rec in deployments:
        row = by_code.get(rec.code)
        if row is None:
            continue
        if _given(rec, "timezone") and (rec.timezone or "UTC") != row.timezone:
            out.append(
                RegistryChange("deployment", rec.code, "timezone", row.timezone, rec.timezone)
            )
        new_off = rec.clock_offset_s or 0.0
        if _given(rec, "clock_offset_s") and _differs(row.clock_offset_s or 0.0, new_off):
            out.append(
                RegistryChange(
                    "deployment", rec.code, "clock_offset_s", row.clock_offset_s, new_off
                )
            )
    return out


def existing_records(session: Session) -> tuple[list[StationRecord], list[DeploymentRecord]]:
    """The project's registry as plain records (for validation and effort)."""
    stations = [
        StationRecord(
            name=s.name,
            lon=s.lon,
            lat=s.lat,
            x=s.x,
            y=s.y,
            crs=s.crs,
            elevation=s.elevation,
            covariates=dict(s.covariates or {}),
        )
        for s in session.scalars(select(Station).order_by(Station.name))
    ]
    deps = []
    q = (
        select(Deployment)
        .options(
            selectinload(Deployment.station),
            selectinload(Deployment.camera),
            selectinload(Deployment.malfunctions),
        )
        .order_by(Deployment.code)
    )
    for d in session.scalars(q):
        deps.append(
            DeploymentRecord(
                code=d.code,
                station=d.station.name,
                start=d.start_local,
                end=d.end_local,
                timezone=d.timezone,
                camera_make=d.camera.make if d.camera else None,
                camera_model=d.camera.model if d.camera else None,
                camera_serial=(d.camera.serial or None) if d.camera else None,
                clock_offset_s=d.clock_offset_s,
                malfunctions=[
                    MalfunctionPeriod(m.start_local, m.end_local, m.reason) for m in d.malfunctions
                ],
                comments=d.comments,
                source_row=f"project deployment {d.code}",
            )
        )
    return stations, deps


def plan_registry(
    project: Project, stations: Sequence[StationRecord], deployments: Sequence[DeploymentRecord]
) -> list[RegistryChange]:
    """What :func:`save_registry` would change that needs a person's yes (nothing written)."""
    with project.session() as session:
        return registry_changes(session, stations, deployments)


def save_registry(
    project: Project,
    stations: Sequence[StationRecord],
    deployments: Sequence[DeploymentRecord],
    *,
    apply_changes: bool = False,
    where: str = "registry",
    actor: str | None = None,
) -> RegistryImport:
    """Validate the records against each other and the project, then store them.

    Records with a known station name or deployment code update that row,
    with what they state only: a zone, clock offset or comment the source
    does not give (``DeploymentRecord.given``) and coordinates it leaves
    empty keep their stored values. A stated value that differs from a
    stored time zone, clock offset or coordinate is a change a person must
    confirm: without ``apply_changes`` nothing is written and
    :class:`RegistryChangesError` lists them. Nothing is written when any
    record is wrong.

    The audit log gets, in the same transaction, the before and after of
    every existing station and deployment whose stored values changed, and
    one ``registry.import`` row naming the table and what was new
    (``actor``: who imports; default ``cli:`` and this machine's login).
    """
    result = RegistryImport()
    for dep in deployments:
        parse_timezone(dep.timezone)  # fail before writing anything
    with project.session() as session, session.begin():
        changes = registry_changes(session, stations, deployments)
        if changes and not apply_changes:
            raise RegistryChangesError(where, changes)
        result.changes = changes
        old_stations, old_deps = existing_records(session)
        old_by_code = {d.code: d for d in old_deps}
        deployments = [_keep_unstated(rec, old_by_code.get(rec.code)) for rec in deployments]
        new_codes = {d.code for d in deployments}
        merged_deps = [d for d in old_deps if d.code not in new_codes] + list(deployments)
        known = {s.name for s in old_stations} | {s.name for s in stations}
        validate_registry(list(stations), merged_deps, known_stations=sorted(known))
        before = _registry_state(session)

        by_name = {s.name: s for s in session.scalars(select(Station))}
        for rec in stations:
            row = by_name.get(rec.name)
            if row is None:
                row = Station(name=rec.name)
                session.add(row)
                by_name[rec.name] = row
                result.stations_new += 1
            else:
                result.stations_updated += 1
            if rec.site:
                row.site_id = _site(session, rec.site).id
            for attr in ("lon", "lat", "x", "y", "crs", "elevation"):
                value = getattr(rec, attr)
                if value is not None:
                    setattr(row, attr, value)
            row.covariates = {**(row.covariates or {}), **rec.covariates}
        session.flush()

        deps_by_code = {
            d.code: d
            for d in session.scalars(
                select(Deployment).options(selectinload(Deployment.malfunctions))
            )
        }
        # One look-up of the cameras, not one query (and autoflush) per row.
        cameras = {(c.make, c.model, c.serial): c for c in session.scalars(select(Camera))}
        retime: list[Deployment] = []
        for rec in deployments:
            row = deps_by_code.get(rec.code)
            if row is None:
                row = Deployment(code=rec.code)
                session.add(row)
                result.deployments_new += 1
            else:
                result.deployments_updated += 1
                row.malfunctions.clear()
                if _clock_of(row) != (
                    rec.start,
                    rec.end,
                    rec.timezone or "UTC",
                    rec.clock_offset_s or 0.0,
                ):
                    retime.append(row)
            row.station_id = by_name[rec.station].id
            row.start_local = rec.start
            row.end_local = rec.end
            row.timezone = rec.timezone or "UTC"
            row.clock_offset_s = rec.clock_offset_s or 0.0
            row.comments = rec.comments or ""
            if rec.camera_make or rec.camera_model or rec.camera_serial:
                row.camera_id = _camera(
                    session,
                    cameras,
                    rec.camera_make or "",
                    rec.camera_model or "",
                    rec.camera_serial or "",
                ).id
            for m in rec.malfunctions:
                row.malfunctions.append(
                    Malfunction(start_local=m.start, end_local=m.end, reason=m.reason)
                )
        session.flush()
        _audit_registry(session, actor or cli_actor(), where, before, _registry_state(session))
        if retime:
            # A corrected window, zone or offset changes the times of files
            # already ingested: re-derive them from the raw camera readings.
            session.flush()
            retime_deployments(
                session,
                [d.id for d in retime],
                earliest=datetime.fromisoformat(project.settings.earliest_plausible),
                burst_gap_s=project.settings.burst_gap_s,
                event_gap_min=project.settings.event_gap_min,
            )
    return result


def _registry_state(session: Session) -> dict[str, dict[str, dict[str, Any]]]:
    """Every station's and deployment's stored values, for the audit log's before/after."""
    stations = {
        st.name: {
            "site_id": st.site_id,
            "lon": st.lon,
            "lat": st.lat,
            "x": st.x,
            "y": st.y,
            "crs": st.crs,
            "elevation": st.elevation,
            "covariates": dict(st.covariates or {}),
        }
        for st in session.scalars(select(Station))
    }
    names = {st.id: st.name for st in session.scalars(select(Station))}
    deployments = {
        d.code: {
            "station": names.get(d.station_id),
            "camera_id": d.camera_id,
            "start_local": d.start_local.isoformat() if d.start_local else None,
            "end_local": d.end_local.isoformat() if d.end_local else None,
            "timezone": d.timezone,
            "clock_offset_s": d.clock_offset_s,
            "comments": d.comments,
            "malfunctions": [
                [m.start_local.isoformat(), m.end_local.isoformat(), m.reason]
                for m in d.malfunctions
            ],
        }
        for d in session.scalars(select(Deployment).options(selectinload(Deployment.malfunctions)))
    }
    return {"station": stations, "deployment": deployments}


def _audit_registry(
    session: Session,
    actor: str,
    where: str,
    before: dict[str, dict[str, dict[str, Any]]],
    after: dict[str, dict[str, dict[str, Any]]],
) -> None:
    """Audit rows for a registry import: each changed existing row, and one for the import."""
    new: dict[str, list[str]] = {}
    for kind in ("station", "deployment"):
        old_rows, new_rows = before[kind], after[kind]
        new[kind] = sorted(k for k in new_rows if k not in old_rows)
        for key in sorted(k for k in new_rows if k in old_rows):
            was, now = old_rows[key], new_rows[key]
            diff = [f for f in now if now[f] != was.get(f)]
            if diff:
                record(
                    session,
                    actor,
                    f"registry.{kind}",
                    f"{kind}:{key}",
                    before={f: was.get(f) for f in diff},
                    after={f: now[f] for f in diff},
                    detail={"table": where},
                )
    record(
        session,
        actor,
        "registry.import",
        where,
        after={"new_stations": new["station"], "new_deployments": new["deployment"]},
    )


def _keep_unstated(rec: DeploymentRecord, old: DeploymentRecord | None) -> DeploymentRecord:
    """``rec`` with the stored zone, offset and comments where it states none."""
    if old is None or rec.given is None:
        return rec
    from dataclasses import replace

    return replace(
        rec,
        timezone=rec.timezone if "timezone" in rec.given else old.timezone,
        clock_offset_s=(
            rec.clock_offset_s if "clock_offset_s" in rec.given else old.clock_offset_s
        ),
        comments=rec.comments if "comments" in rec.given or rec.comments else old.comments,
        given=None,
    )


def _clock_of(d: Deployment) -> tuple:
    return (d.start_local, d.end_local, d.timezone, d.clock_offset_s)


def import_registry(
    project: Project, path: Path | str, *, apply_changes: bool = False, **options
) -> RegistryImport:
    """Read a station/deployment table (camtrapR, Camtrap DP or irbis layout) into ``project``.

    A re-import changes only what the table says; changed time zones, clock
    offsets or coordinates need ``apply_changes`` (see :func:`save_registry`).
    """
    stations, deployments = read_registry_csv(Path(path), **options)
    return save_registry(
        project, stations, deployments, apply_changes=apply_changes, where=str(path)
    )


def _site(session: Session, name: str) -> Site:
    site = session.scalar(select(Site).where(Site.name == name))
    if site is None:
        site = Site(name=name)
        session.add(site)
        session.flush()
    return site


def _camera(
    session: Session,
    cameras: dict[tuple[str, str, str], Camera],
    make: str,
    model: str,
    serial: str,
) -> Camera:
    cam = cameras.get((make, model, serial))
    if cam is None:
        cam = Camera(make=make, model=model, serial=serial)
        session.add(cam)
        session.flush()
        cameras[(make, model, serial)] = cam
    return cam
