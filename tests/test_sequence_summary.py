"""The review grid's derived sequence summaries stay equal to what the rows say.

Writes here go through plain SQL on a separate connection, as another program
(an ingest, ``sqlite3``, a second worker) would: only the database triggers
can tell the summaries about them.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from sqlalchemy import insert, select, text

from irbis.store.schema import (
    Deployment,
    IngestBatch,
    Media,
    MediaGroup,
    Observation,
    SequenceLabel,
    SequenceSummary,
    Station,
)
from irbis.store.sequence_summary import (
    ANY_LABEL,
    current_labels,
    ensure_fresh,
    is_stale,
    label_key,
    refresh,
)

T0 = datetime(2024, 3, 1, 6, 0)
SPECIES = ["Panthera uncia", "Capra sibirica", "Canis lupus", None]


def _build(project, n_seq: int = 6, per_seq: int = 3) -> tuple[list[int], list[int]]:
    """Stations, one deployment, ``n_seq`` sequences of ``per_seq`` media; no labels yet."""
    with project.engine.begin() as conn:
        conn.execute(
            insert(IngestBatch),
            [{"id": 1, "source": "test", "started_utc": T0, "status": "done", "options": {}}],
        )
        conn.execute(
            insert(Station), [{"id": 1, "name": "S1", "x": 0.0, "y": 0.0, "covariates": {}}]
        )
        conn.execute(
            insert(Deployment),
            [
                {
                    "id": 1,
                    "code": "S1-2024",
                    "station_id": 1,
                    "start_local": T0,
                    "end_local": T0 + timedelta(days=60),
                    "timezone": "UTC",
                    "clock_offset_s": 0.0,
                    "comments": "",
                    "extra": {},
                }
            ],
        )
        seqs, media = [], []
        for k in range(n_seq):
            start = T0 + timedelta(hours=k)
            conn.execute(
                insert(MediaGroup),
                [
                    {
                        "id": k + 1,
                        "deployment_id": 1,
                        "kind": "sequence",
                        "start_utc": start,
                        "end_utc": start + timedelta(seconds=per_seq),
                        "n_media": per_seq,
                    }
                ],
            )
            seqs.append(k + 1)
            for j in range(per_seq):
                mid = k * per_seq + j + 1
                media.append(mid)
                conn.execute(
                    insert(Media),
                    [
                        {
                            "id": mid,
                            "sha256": f"{mid:064x}",
                            "size": 1,
                            "mediatype": "image",
                            "mime": "image/jpeg",
                            "storage": "reference",
                            "stored_path": f"/x/{mid}.jpg",
                            "file_name": f"{mid}.jpg",
                            "source_relpath": f"{mid}.jpg",
                            "deployment_id": 1,
                            "batch_id": 1,
                            "tags": [],
                            "timestamp_local": start + timedelta(hours=6, seconds=j),
                            "timestamp_utc": start + timedelta(seconds=j),
                            "time_flag": "",
                            "sequence_id": k + 1,
                            "review_version": 0,
                            "extra": {},
                        }
                    ],
                )
    return seqs, media


def _add_obs(conn, media_id: int, species: str | None, source: str, count: int = 1) -> int:
    conn.execute(
        text(
            "INSERT INTO observations (media_id, species, count, source, by, created_utc, level,"
            " observation_type, comments, extra, retracted_by)"
            " VALUES (:m, :sp, :n, :src, :by, :t, 'media', :otype, '', '{}', '')"
        ),
        {
            "m": media_id,
            "sp": species,
            "n": count if species else None,
            "src": source,
            "by": "anna" if source == "human" else "",
            "t": T0,
            "otype": "animal" if species else "blank",
        },
    )
    return conn.execute(text("SELECT max(id) FROM observations")).scalar()


def _expected(project) -> dict[int, tuple[list, bool, list, set[str]]]:
    """What the summaries must say, computed straight from the rows."""
    with project.engine.connect() as conn:
        groups = dict(
            conn.execute(
                select(MediaGroup.id, MediaGroup.start_utc).where(MediaGroup.kind == "sequence")
            ).all()
        )
        out = {}
        for sid in groups:
            media = conn.execute(
                select(Media.id, Media.review_version)
                .where(Media.sequence_id == sid)
                .order_by(Media.timestamp_utc, Media.id)
            ).all()
            rows = conn.execute(
                select(
                    Observation.species,
                    Observation.count,
                    Observation.observation_type,
                    Observation.individual,
                    Observation.source,
                    Observation.by,
                )
                .join(Media, Media.id == Observation.media_id)
                .where(Media.sequence_id == sid, Observation.retracted_utc.is_(None))
                .order_by(Observation.id)
            ).all()
            labels, reviewed = current_labels(rows)
            keys = {ANY_LABEL} | {label_key(lab["species"], lab["type"]) for lab in labels}
            out[sid] = (labels, reviewed, [[m, v] for m, v in media], keys)
    return out


def _stored(project) -> dict[int, tuple[list, bool, list, set[str]]]:
    with project.engine.connect() as conn:
        keys: dict[int, set[str]] = {}
        for sid, label in conn.execute(select(SequenceLabel.sequence_id, SequenceLabel.label)):
            keys.setdefault(sid, set()).add(label)
        return {
            sid: (json.loads(labels), bool(reviewed), json.loads(media), keys.get(sid, set()))
            for sid, reviewed, labels, media in conn.execute(
                select(
                    SequenceSummary.sequence_id,
                    SequenceSummary.reviewed,
                    SequenceSummary.labels,
                    SequenceSummary.media,
                )
            )
        }


def test_every_kind_of_write_reaches_the_summaries(project):
    seqs, media = _build(project)
    assert refresh(project.engine) == len(seqs)
    assert _stored(project) == _expected(project)
    assert not _stored(project)[1][1]  # nothing reviewed yet

    with project.engine.begin() as conn:  # a folder label, then a person's
        _add_obs(conn, media[0], "Capra sibirica", "folder", 3)
        human = _add_obs(conn, media[1], "Panthera uncia", "human", 1)
        assert is_stale(conn)
    assert ensure_fresh(project.engine) == 1
    stored = _stored(project)
    assert stored == _expected(project)
    labels, reviewed, _m, keys = stored[1]
    assert reviewed and [lab["species"] for lab in labels] == ["Panthera uncia"]
    assert keys == {ANY_LABEL, "Panthera uncia"}

    with project.engine.begin() as conn:  # the person's label retracted
        conn.execute(
            text("UPDATE observations SET retracted_utc = :t WHERE id = :i"), {"t": T0, "i": human}
        )
        conn.execute(text("UPDATE media SET review_version = 7 WHERE id = :i"), {"i": media[2]})
    ensure_fresh(project.engine)
    stored = _stored(project)
    assert stored == _expected(project)
    # The folder label is current again; sorting photos into species folders is a
    # person's review, so the sequence stays reviewed.
    assert stored[1][1] and stored[1][3] == {ANY_LABEL, "Capra sibirica"}
    assert [media[2], 7] in stored[1][2]

    with project.engine.begin() as conn:  # a file moves to another sequence; one is deleted
        conn.execute(text("UPDATE media SET sequence_id = 2 WHERE id = :i"), {"i": media[0]})
        conn.execute(text("DELETE FROM media WHERE id = :i"), {"i": media[4]})
    ensure_fresh(project.engine)
    stored = _stored(project)
    assert stored == _expected(project)
    assert stored[2][3] == {ANY_LABEL, "Capra sibirica"}  # the label went with its file

    with project.engine.begin() as conn:  # a sequence is deleted (regrouping does this)
        conn.execute(text("UPDATE media SET sequence_id = NULL WHERE sequence_id = 3"))
        conn.execute(text("DELETE FROM media_groups WHERE id = 3"))
    ensure_fresh(project.engine)
    assert 3 not in _stored(project)
    assert _stored(project) == _expected(project)
    with project.engine.connect() as conn:
        assert not is_stale(conn)
    assert ensure_fresh(project.engine) == 0


def test_random_writes_keep_summaries_equal_to_the_rows(project):
    seqs, media = _build(project, n_seq=8, per_seq=4)
    rng = random.Random(11)
    obs_ids: list[int] = []
    for round_ in range(6):
        with project.engine.begin() as conn:
            for _ in range(12):
                op = rng.random()
                if op < 0.55 or not obs_ids:
                    source = rng.choice(["folder", "human", "model:x"])
                    obs_ids.append(_add_obs(conn, rng.choice(media), rng.choice(SPECIES), source))
                elif op < 0.8:
                    conn.execute(
                        text("UPDATE observations SET retracted_utc = :t WHERE id = :i"),
                        {"t": T0, "i": rng.choice(obs_ids)},
                    )
                else:
                    conn.execute(
                        text("UPDATE media SET review_version = review_version + 1 WHERE id = :i"),
                        {"i": rng.choice(media)},
                    )
        if round_ % 2:  # sometimes two rounds of writes wait for one refresh
            ensure_fresh(project.engine)
            assert _stored(project) == _expected(project), f"round {round_}"
    ensure_fresh(project.engine)
    assert _stored(project) == _expected(project)
