"""Retired sequence and event ids and where they lead.

:func:`irbis.ingest.grouping.regroup_deployments` keeps a group's id while the
group exists and retires, never deletes, one that vanishes (absorbed by a
neighbour or emptied): its ``kind`` becomes ``old-seq``/``old-event`` and
``first_media_id`` names its first frame. Readers use :func:`successor` to
send an old link to the group that holds that frame now.
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, aliased

from irbis.store.schema import Media, MediaGroup

#: The ``kind`` a retired group of each kind gets.
RETIRED = {"sequence": "old-seq", "event": "old-event"}


def successor(conn: Session | Connection, group_id: int, kind: str = "sequence") -> int | None:
    """The live group of ``kind`` now holding the first frame of retired ``group_id``.

    Returns ``None`` when ``group_id`` is live, unknown, of another kind, or
    its first frame is in no group of ``kind`` now (untrusted time, deleted).
    """
    held_by = Media.sequence_id if kind == "sequence" else Media.event_id
    retired = aliased(MediaGroup)
    return conn.execute(
        select(MediaGroup.id)
        .select_from(retired)
        .join(Media, Media.id == retired.first_media_id)
        .join(MediaGroup, MediaGroup.id == held_by)
        .where(retired.id == group_id, retired.kind == RETIRED[kind], MediaGroup.kind == kind)
    ).scalar()
