"""The quarantine list: files refused at ingest and files whose time is untrusted.

It also says where each time came from: EXIF, a video's container, the info
bar burned into the frame (``stamp``) or the file name (``filename``), with
the stamp's OCR text and any disagreement between stamp and file name, so a
person can check the times that did not come from the camera's metadata.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from irbis.store.project import Project
from irbis.store.schema import Deployment, Media, Rejection


def time_sources(project: Project) -> dict[str, int]:
    """How many media got their time from each source.

    Parameters
    ----------
    project:
        The open project.

    Returns
    -------
    ``{"exif": n, "stamp": n, "filename": n, "none": n, ...}`` (only sources
    present), ``none`` counting media without any time.
    """
    with project.session() as s:
        rows = s.execute(
            select(Media.taken_source, func.count()).group_by(Media.taken_source)
        ).all()
    return {src or "none": n for src, n in sorted(rows, key=lambda r: r[0] or "~")}


def _disagreement_s(record: dict) -> float | None:
    """Seconds between the stamp's and the file name's times, when both were read."""
    stamp = (record.get("stamp") or {}).get("time")
    name = (record.get("filename") or {}).get("time")
    if not stamp or not name:
        return None
    return (datetime.fromisoformat(stamp) - datetime.fromisoformat(name)).total_seconds()


def ingest_report(project: Project) -> dict:
    """Rejected files, media with a time flag, and times not read from metadata.

    Parameters
    ----------
    project:
        The open project.

    Returns
    -------
    ``{"rejected": [...], "flagged": [...], "time_sources": {...},
    "read_times": [...]}``. ``read_times`` lists every media whose time came
    from the info bar or the file name (or where either was tried): the
    source, the time used, the OCR text, the file-name time and the seconds
    by which stamp and file name disagree.
    """
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
                "time_source": src,
            }
            for code, rel, flag, raw, local, src in s.execute(
                select(
                    Deployment.code,
                    Media.source_relpath,
                    Media.time_flag,
                    Media.taken_raw,
                    Media.timestamp_local,
                    Media.taken_source,
                )
                .outerjoin(Deployment, Media.deployment_id == Deployment.id)
                .where(Media.time_flag != "")
                .order_by(Deployment.code, Media.source_relpath)
            ).all()
        ]
        read_times = []
        for code, rel, src, raw, extra in s.execute(
            select(
                Deployment.code,
                Media.source_relpath,
                Media.taken_source,
                Media.taken_raw,
                Media.extra,
            )
            .outerjoin(Deployment, Media.deployment_id == Deployment.id)
            .where(Media.taken_source.in_(("stamp", "filename")) | Media.taken_raw.is_(None))
            .order_by(Deployment.code, Media.source_relpath)
        ).all():
            record = (extra or {}).get("time_read")
            if not record:
                continue
            read_times.append(
                {
                    "deployment": code,
                    "file": rel,
                    "source": src,
                    "time": raw.isoformat() if raw else None,
                    "stamp_text": (record.get("stamp") or {}).get("text"),
                    "filename_time": (record.get("filename") or {}).get("time"),
                    "stamp_minus_filename_s": _disagreement_s(record),
                }
            )
    return {
        "rejected": rejected,
        "flagged": flagged,
        "time_sources": time_sources(project),
        "read_times": read_times,
    }
