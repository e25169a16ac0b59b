"""Sequences (bursts) and independent events, recomputed per deployment.

Both are derived data: they are deleted and rebuilt from the media rows of a
deployment whenever its files or its clock change, which keeps a rerun after an
interruption identical to a clean run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from irbis.ingest.events import group_by_gap
from irbis.ingest.timing import Clock
from irbis.store.schema import Deployment, Media, MediaGroup


def regroup_deployments(
    session: Session, deployment_ids: Sequence[int], *, burst_gap_s: float, event_gap_min: float
) -> None:
    """Rebuild sequences and events of each deployment from its trusted media times."""
    for dep_id in deployment_ids:
        session.execute(
            update(Media)
            .where(Media.deployment_id == dep_id)
            .values(sequence_id=None, event_id=None)
        )
        session.execute(delete(MediaGroup).where(MediaGroup.deployment_id == dep_id))
        rows = session.execute(
            select(Media.id, Media.timestamp_utc)
            .where(Media.deployment_id == dep_id, Media.time_flag == "")
            .order_by(Media.timestamp_utc, Media.file_name, Media.id)
        ).all()
        if not rows:
            continue
        times = [r.timestamp_utc for r in rows]
        for kind, gap_s, column in (
            ("sequence", burst_gap_s, "sequence_id"),
            ("event", event_gap_min * 60.0, "event_id"),
        ):
            labels = group_by_gap(times, gap_s)
            members: dict[int, list[int]] = {}
            for idx, label in enumerate(labels):
                members.setdefault(label, []).append(idx)
            for label in sorted(members):
                idxs = members[label]
                group = MediaGroup(
                    deployment_id=dep_id,
                    kind=kind,
                    start_utc=min(times[i] for i in idxs),
                    end_utc=max(times[i] for i in idxs),
                    n_media=len(idxs),
                )
                session.add(group)
                session.flush()
                session.execute(
                    update(Media)
                    .where(Media.id.in_([rows[i].id for i in idxs]))
                    .values({column: group.id})
                )
    session.flush()


def file_order_key(relpath: str) -> tuple:
    """Natural order of a card's files (``IMG_0009`` before ``IMG_0010``, folders first).

    Cameras number their files in the order they take them, so this is the
    order of the camera's clock readings even across a clock reset.
    """
    parts = re.split(r"(\d+)", relpath.replace("\\", "/").lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def range_clocks(dep: Deployment, base: Clock) -> list[tuple[tuple, tuple, Clock]]:
    """The deployment's file-range clock fixes as ``(first key, last key, clock)``, newest first.

    A fix (``Deployment.extra["clock_fixes"]``, written by
    :func:`irbis.ingest.clockfix.fix_range`) says: from this file to that one,
    true local time is the raw reading plus ``offset_s`` (measured on one
    photo of a known time), whatever the deployment's shift and offset.
    """
    out = []
    for fix in reversed((dep.extra or {}).get("clock_fixes") or []):
        clock = Clock(
            timezone=base.timezone,
            offset_s=float(fix["offset_s"]),
            shift=None,
            start_local=base.start_local,
            end_local=base.end_local,
            earliest=base.earliest,
        )
        out.append((file_order_key(fix["first"]), file_order_key(fix["last"]), clock))
    return out


def clock_for(media_relpath: str, base: Clock, ranges: list[tuple[tuple, tuple, Clock]]) -> Clock:
    """The clock of one file: the newest range fix holding it, else the deployment's."""
    if ranges:
        key = file_order_key(media_relpath)
        for lo, hi, clock in ranges:
            if lo <= key <= hi:
                return clock
    return base


def retime_deployments(
    session: Session,
    deployment_ids: Sequence[int],
    *,
    earliest: datetime,
    burst_gap_s: float,
    event_gap_min: float,
) -> int:
    """Re-apply each deployment's clock to the untouched raw camera times.

    Returns the number of media whose corrected time changed.
    """
    changed = 0
    for dep in session.scalars(select(Deployment).where(Deployment.id.in_(deployment_ids))):
        clock = Clock(
            timezone=dep.timezone,
            offset_s=dep.clock_offset_s,
            shift=dep.clock_shift,
            start_local=dep.start_local,
            end_local=dep.end_local,
            earliest=earliest,
        )
        ranges = range_clocks(dep, clock)
        for media in session.scalars(select(Media).where(Media.deployment_id == dep.id)):
            local, utc, offset, flag = clock_for(
                media.source_relpath, clock, ranges
            ).correct(media.taken_raw)
            if (local, utc, offset, flag) != (
                media.timestamp_local,
                media.timestamp_utc,
                media.utc_offset_min,
                media.time_flag,
            ):
                changed += 1
                media.timestamp_local, media.timestamp_utc = local, utc
                media.utc_offset_min, media.time_flag = offset, flag
    session.flush()
    regroup_deployments(
        session, deployment_ids, burst_gap_s=burst_gap_s, event_gap_min=event_gap_min
    )
    return changed
