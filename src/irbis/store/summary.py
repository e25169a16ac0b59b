"""What is in a project, in numbers (``irbis status``)."""

from __future__ import annotations

from sqlalchemy import func, select

from irbis.store.project import Project
from irbis.store.schema import (
    Deployment,
    IngestBatch,
    Media,
    MediaGroup,
    Observation,
    Rejection,
    Station,
)


def project_status(project: Project) -> dict:
    """Counts of the registry, media, groups, flags and rejections of ``project``."""
    with project.session() as s:
        count = lambda model: s.scalar(select(func.count()).select_from(model))  # noqa: E731
        flags = dict(
            s.execute(
                select(Media.time_flag, func.count())
                .where(Media.time_flag != "")
                .group_by(Media.time_flag)
            ).all()
        )
        groups = dict(
            s.execute(select(MediaGroup.kind, func.count()).group_by(MediaGroup.kind)).all()
        )
        per_dep = [
            {
                "deployment": code,
                "station": st,
                "media": n,
                "first": lo and lo.isoformat(),
                "last": hi and hi.isoformat(),
            }
            for code, st, n, lo, hi in s.execute(
                select(
                    Deployment.code,
                    Station.name,
                    func.count(Media.id),
                    func.min(Media.timestamp_local),
                    func.max(Media.timestamp_local),
                )
                .join(Station, Deployment.station_id == Station.id)
                .outerjoin(Media, Media.deployment_id == Deployment.id)
                .group_by(Deployment.code, Station.name)
                .order_by(Deployment.code)
            ).all()
        ]
        species = dict(
            s.execute(
                select(Observation.species, func.count(func.distinct(Observation.media_id)))
                .where(Observation.species.is_not(None), Observation.retracted_utc.is_(None))
                .group_by(Observation.species)
                .order_by(Observation.species)
            ).all()
        )
        return {
            "project": project.settings.name,
            "root": str(project.root),
            "database": project.engine.dialect.name,
            "storage": project.settings.storage,
            "stations": count(Station),
            "deployments": count(Deployment),
            "media": count(Media),
            "bytes": int(s.scalar(select(func.coalesce(func.sum(Media.size), 0))) or 0),
            "videos": s.scalar(select(func.count()).where(Media.mediatype == "video")),
            "sequences": groups.get("sequence", 0),
            "events": groups.get("event", 0),
            "flagged": flags,
            "rejected": count(Rejection),
            "ingest_runs": count(IngestBatch),
            "species_media": species,
            "per_deployment": per_dep,
        }
