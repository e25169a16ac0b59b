"""Per-sequence summaries for the review grid: derived from media and observations.

A sequence's *current labels* are its people's labels when a person labelled
any of its files, otherwise what folders, tags and models said; ``reviewed``
says which. The grid shows them for every sequence of a page and filters on
them ("Lynx lynx, not yet reviewed"); computing them per request from every
file and observation cost several times the page's own work at census scale,
so they are kept in ``sequence_summaries`` and ``sequence_labels``.

Those tables are never written by the code that changes labels: database
triggers (migration 0006) queue the affected sequence in ``sequence_dirty``
on every insert, update or delete of an observation, a media file's sequence,
times or review version, or a sequence. :func:`refresh` empties the queue.
Readers call :func:`ensure_fresh` first, so what they show is never older
than the last committed write, whichever program made it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, insert, select

from irbis.store.schema import (
    Media,
    MediaGroup,
    Observation,
    SequenceDirty,
    SequenceLabel,
    SequenceSummary,
)

HUMAN = "human"
#: Sources that are a person's sorting done before ingest: species folders
#: (camtrapR's ``station/species`` layout) and XMP tags a person gave in
#: digiKam or similar. Their labels count as reviewed (the sorting is the
#: review), though they stay ``import`` labels that a label in the app replaces.
SORTED_BY_PEOPLE = ("folder", "xmp")
#: The label every sequence carries in ``sequence_labels`` (for "reviewed" alone).
ANY_LABEL = "*"
# Sequences recomputed per round trip: bounds the IN lists and the memory.
_CHUNK = 500
# PostgreSQL: refreshers take this transaction-level advisory lock in turn.
_PG_LOCK_KEY = 0x69726269  # "irbi"


def label_key(species: str | None, observation_type: str | None) -> str:
    """The filter key of a label: its species, else its type (``blank``, ``unknown``...)."""
    return species or observation_type or "unknown"


def provenance(source: str) -> str:
    """``human``, ``machine`` (a model) or ``import`` (folder names, tags, packages)."""
    if source == HUMAN:
        return "human"
    if source.startswith("model"):
        return "machine"
    return "import"


def current_labels(rows: Iterable[tuple]) -> tuple[list[dict[str, Any]], bool]:
    """A sequence's current labels from its current observations.

    Parameters
    ----------
    rows:
        ``(species, count, observation_type, individual, source, by)`` of every
        current (not retracted) media-level observation of the sequence, oldest first.

    Returns
    -------
    (labels, reviewed)
        One label per ``(species, type, source, by)`` with the largest count
        said; ``reviewed`` is whether a person labelled the sequence in the app
        (then only people's labels are current) or sorted it before ingest
        (a species or individual from a folder name or XMP tag,
        :data:`SORTED_BY_PEOPLE`).
    """
    rows = list(rows)
    human = [r for r in rows if r[4] == HUMAN]
    sorted_ = any(r[4] in SORTED_BY_PEOPLE and (r[0] or r[3]) for r in rows)
    seen: dict[tuple, dict[str, Any]] = {}
    for species, count, otype, individual, source, by in human or rows:
        item = seen.setdefault(
            (species, otype, source, by),
            {
                "species": species,
                "type": otype,
                "count": count,
                "individual": individual,
                "source": source,
                "by": by,
                "provenance": provenance(source),
            },
        )
        if count is not None and (item["count"] is None or count > item["count"]):
            item["count"] = count
    return list(seen.values()), bool(human) or sorted_


def _compute(conn: Connection, seq_ids: list[int]) -> None:
    """Replace the summary and label rows of ``seq_ids`` (sequences gone get none)."""
    groups = dict(
        conn.execute(
            select(MediaGroup.id, MediaGroup.start_utc).where(
                MediaGroup.id.in_(seq_ids), MediaGroup.kind == "sequence"
            )
        ).all()
    )
    media: dict[int, list[tuple]] = defaultdict(list)
    for sid, mid, version, local in conn.execute(
        select(Media.sequence_id, Media.id, Media.review_version, Media.timestamp_local)
        .where(Media.sequence_id.in_(seq_ids))
        .order_by(Media.sequence_id, Media.timestamp_utc, Media.id)
    ):
        media[sid].append((mid, version, local))
    obs: dict[int, list[tuple]] = defaultdict(list)
    for sid, *rest in conn.execute(
        select(
            Media.sequence_id,
            Observation.species,
            Observation.count,
            Observation.observation_type,
            Observation.individual,
            Observation.source,
            Observation.by,
        )
        .join(Media, Media.id == Observation.media_id)
        .where(Media.sequence_id.in_(seq_ids), Observation.retracted_utc.is_(None))
        .order_by(Observation.id)
    ):
        obs[sid].append(tuple(rest))
    conn.execute(delete(SequenceLabel).where(SequenceLabel.sequence_id.in_(seq_ids)))
    conn.execute(delete(SequenceSummary).where(SequenceSummary.sequence_id.in_(seq_ids)))
    summaries, label_rows = [], []
    for sid, start in groups.items():
        labels, reviewed = current_labels(obs.get(sid, ()))
        files = media.get(sid, [])
        summaries.append(
            {
                "sequence_id": sid,
                "start_local": files[0][2] if files else None,
                "reviewed": reviewed,
                "labels": json.dumps(labels, ensure_ascii=False, separators=(",", ":")),
                "media": json.dumps([[m, v] for m, v, _ in files], separators=(",", ":")),
            }
        )
        keys = {ANY_LABEL} | {label_key(lab["species"], lab["type"]) for lab in labels}
        label_rows += [
            {"sequence_id": sid, "label": k, "reviewed": reviewed, "start_utc": start}
            for k in sorted(keys)
        ]
    if summaries:
        conn.execute(insert(SequenceSummary), summaries)
    if label_rows:
        conn.execute(insert(SequenceLabel), label_rows)


def refresh(engine: Engine) -> int:
    """Recompute the summaries of every queued sequence; empty the queue.

    One transaction: the queue rows are taken (deleted) first, which on
    SQLite takes the write lock at once, and on PostgreSQL an advisory lock
    lets one refresher run at a time. A change committed while this runs
    leaves its own queue row behind for the next refresh.

    Returns
    -------
    int
        The number of distinct sequences recomputed.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        taken = conn.execute(delete(SequenceDirty).returning(SequenceDirty.sequence_id)).all()
        seq_ids = sorted({sid for (sid,) in taken})
        for i in range(0, len(seq_ids), _CHUNK):
            _compute(conn, seq_ids[i : i + _CHUNK])
    return len(seq_ids)


def is_stale(conn: Connection) -> bool:
    """Whether some sequence waits for :func:`refresh` (one index probe)."""
    return bool(conn.execute(select(exists().select_from(SequenceDirty))).scalar())


def ensure_fresh(engine: Engine) -> int:
    """:func:`refresh` when something is queued; otherwise only the check.

    Returns
    -------
    int
        Sequences recomputed (0 when nothing was queued).
    """
    with engine.connect() as conn:
        if not is_stale(conn):
            return 0
    return refresh(engine)
