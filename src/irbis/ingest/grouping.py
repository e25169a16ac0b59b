"""Sequences (bursts) and independent events, recomputed per deployment.

Both are derived data, rebuilt from the media rows of a deployment whenever
its files or its clock change, which keeps a rerun after an interruption
identical to a clean run. Their ids are not: reviewers hold links to
``/sequences/ID`` open while a colleague ingests the next card, so a
regrouping keeps every group's id where the group still exists:

* a group that gains or loses frames keeps its id;
* where new frames join several old groups into one, the merged group keeps
  the id of the old group with the earliest frame; where they split one, the
  part holding its earliest frame keeps the id and the rest get new ids;
* a group left without its place is retired, never deleted (its id is never
  given to another group): ``kind`` becomes ``old-seq``/``old-event`` and
  ``first_media_id`` names its first frame; the web app redirects an old
  link to the group holding that frame (:func:`irbis.store.groups.successor`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from irbis.ingest.events import group_by_gap
from irbis.ingest.timing import Clock
from irbis.store.groups import RETIRED
from irbis.store.schema import Deployment, Media, MediaGroup, SequenceVerdict

# Media ids per UPDATE ... WHERE id IN (...).
_CHUNK = 500


def regroup_deployments(
    session: Session, deployment_ids: Sequence[int], *, burst_gap_s: float, event_gap_min: float
) -> None:
    """Rebuild sequences and events of each deployment from its trusted media times.

    Ids of groups that still exist are kept (see the module docstring). On
    PostgreSQL the deployment's media rows are locked in id order first, the
    order label writers lock them in, so a reviewer labelling while this runs
    waits instead of deadlocking.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    for dep_id in deployment_ids:
        stmt = select(
            Media.id,
            Media.timestamp_utc,
            Media.file_name,
            Media.time_flag,
            Media.sequence_id,
            Media.event_id,
        ).where(Media.deployment_id == dep_id)
        if postgres:
            stmt = stmt.order_by(Media.id).with_for_update(of=Media, key_share=True)
        rows = session.execute(stmt).all()
        trusted = sorted(
            (r for r in rows if r.time_flag == "" and r.timestamp_utc is not None),
            key=lambda r: (r.timestamp_utc, r.file_name, r.id),
        )
        times = [r.timestamp_utc for r in trusted]
        for kind, gap_s, column in (
            ("sequence", burst_gap_s, "sequence_id"),
            ("event", event_gap_min * 60.0, "event_id"),
        ):
            _regroup_kind(session, dep_id, kind, column, rows, trusted, times, gap_s)
    session.flush()


def _regroup_kind(
    session: Session,
    dep_id: int,
    kind: str,
    column: str,
    rows: Sequence,
    trusted: Sequence,
    times: list[datetime],
    gap_s: float,
) -> None:
    """Regroup one kind of one deployment, keeping the ids of the groups that go on."""
    old = {
        g.id: g
        for g in session.scalars(
            select(MediaGroup).where(MediaGroup.deployment_id == dep_id, MediaGroup.kind == kind)
        )
    }
    current = {r.id: getattr(r, column) for r in rows}
    labels = group_by_gap(times, gap_s) if times else []
    members: dict[int, list[int]] = {}
    for idx, label in enumerate(labels):
        members.setdefault(label, []).append(idx)

    # Each old group follows its earliest frame (trusted is in time order): the
    # first old group to reach a new group owns it; a later one is retired and
    # remembers that frame.
    owner: dict[int, int] = {}
    kept: set[int] = set()
    retired: dict[int, int | None] = {}
    for idx, r in enumerate(trusted):
        gid = current[r.id]
        if gid is None or gid not in old or gid in retired or gid in kept:
            continue
        if labels[idx] in owner:
            retired[gid] = r.id
        else:
            owner[labels[idx]] = gid
            kept.add(gid)
    # Groups with no trusted frame left: their first frame by id, if any.
    for r in sorted(rows, key=lambda r: r.id):
        gid = current[r.id]
        if gid in old and gid not in kept and gid not in retired:
            retired[gid] = r.id
    for gid in old:
        if gid not in kept and gid not in retired:
            retired[gid] = None

    id_of: dict[int, int] = {}
    for label in sorted(members):
        idxs = members[label]
        start, end = times[idxs[0]], max(times[i] for i in idxs)
        gid = owner.get(label)
        if gid is None:
            group = MediaGroup(
                deployment_id=dep_id, kind=kind, start_utc=start, end_utc=end, n_media=len(idxs)
            )
            session.add(group)
            session.flush()
            id_of[label] = group.id
            continue
        group = old[gid]
        if (group.start_utc, group.end_utc, group.n_media) != (start, end, len(idxs)):
            group.start_utc, group.end_utc, group.n_media = start, end, len(idxs)
        id_of[label] = gid

    # Move only the frames whose group changed.
    moves: dict[int | None, list[int]] = {}
    for idx, r in enumerate(trusted):
        target = id_of[labels[idx]]
        if current[r.id] != target:
            moves.setdefault(target, []).append(r.id)
    trusted_ids = {r.id for r in trusted}
    for r in rows:
        if r.id not in trusted_ids and current[r.id] is not None:
            moves.setdefault(None, []).append(r.id)
    changed: set[int] = set()
    for target, ids in moves.items():
        if target is not None:
            changed.add(target)
        changed |= {current[m] for m in ids if current[m] is not None}
        for i in range(0, len(ids), _CHUNK):
            session.execute(
                update(Media).where(Media.id.in_(ids[i : i + _CHUNK])).values({column: target})
            )
    session.flush()

    for gid, first in sorted(retired.items()):
        group = old[gid]
        group.kind, group.first_media_id, group.n_media = RETIRED[kind], first, 0
    if kind == "sequence" and (changed or retired):
        # A detector's verdict is on a sequence's frames: judge changed ones again.
        stale = sorted(changed | set(retired))
        for i in range(0, len(stale), _CHUNK):
            session.execute(
                delete(SequenceVerdict).where(
                    SequenceVerdict.sequence_id.in_(stale[i : i + _CHUNK])
                )
            )


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
