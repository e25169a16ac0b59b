"""The quarantine list: files refused at ingest and files whose time is untrusted."""

from __future__ import annotations

from sqlalchemy import select

from irbis.store.project import Project
from irbis.store.schema import Deployment, Media, Rejection


def ingest_report(project: Project) -> dict:
    """Rejected files (with reason and what to do) and media with a time flag."""
    with project.session() as s:
        rejected = [
            {
                "source": r.source,
                "file": r.relpath,
                "reason": r.reason,
                "hint": r.hint,
                "batch": r.batch_id,
            }
            for r in s.scalars(select(Rejection).order_by(Rejection.source, Rejection.relpath))
        ]
        flagged = [
            {
                "deployment": code,
                "file": rel,
                "flag": flag,
                "camera_time": raw.isoformat() if raw else None,
                "corrected": local.isoformat() if local else None,
            }
            for code, rel, flag, raw, local in s.execute(
                select(
                    Deployment.code,
                    Media.source_relpath,
                    Media.time_flag,
                    Media.taken_raw,
                    Media.timestamp_local,
                )
                .outerjoin(Deployment, Media.deployment_id == Deployment.id)
                .where(Media.time_flag != "")
                .order_by(Deployment.code, Media.source_relpath)
            ).all()
        ]
    return {"rejected": rejected, "flagged": flagged}
