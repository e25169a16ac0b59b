"""Sequences (bursts) for review: the filtered, paginated grid and one sequence's detail.

Pagination is by keyset on ``(start_utc, id)``: a page is "the next N after
this cursor", which costs the same on page 1 and page 2,000 (an offset would
scan every skipped row). Labels shown are the *current* ones: a sequence's
human observations when a person labelled it, otherwise what folders, tags or
models said. Nothing here writes.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ARRAY, Integer, Select, and_, any_, bindparam, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from irbis.core.errors import BadInputError
from irbis.store.project import Project
from irbis.store.schema import (
    Deployment,
    DetectionBox,
    MediaDetection,
    MediaGroup,
    Observation,
    SequenceVerdict,
    Station,
)
from irbis.store.schema import Media as MediaRow
from irbis.web.errors import NotFoundError

VERDICTS = ("blank", "animal", "person", "vehicle")
HUMAN = "human"
MAX_PAGE = 500


@dataclass
class SequenceQuery:
    """Filters of the sequence grid (all optional) and the page wanted.

    ``date_from``/``date_to`` are inclusive UTC dates of the sequence start;
    ``species`` matches the current label; ``verdict`` the detector's verdict
    (``none``: not detected yet); ``reviewed`` whether a person labelled it.
    """

    station: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    species: str | None = None
    verdict: str | None = None
    min_confidence: float | None = None
    reviewed: bool | None = None
    limit: int = 48
    after: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str | None]) -> SequenceQuery:
        """Filters from a query string or form; empty values mean 'any'.

        Raises
        ------
        BadInputError
            A value that is not a date, number or yes/no where one is expected.
        """

        def get(key: str) -> str | None:
            value = params.get(key)
            return value.strip() or None if isinstance(value, str) else value

        def parse(key: str, fn: Any, hint: str) -> Any:
            value = get(key)
            if value is None:
                return None
            try:
                return fn(value)
            except ValueError:
                raise BadInputError(key, f"{value!r} is not valid", hint) from None

        reviewed = get("reviewed")
        if reviewed is not None and reviewed.lower() not in (
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
        ):
            raise BadInputError("reviewed", f"{reviewed!r} is not yes/no", "use true or false")
        limit = parse("limit", int, f"a whole number 1..{MAX_PAGE}")
        q = cls(
            station=get("station"),
            date_from=parse("date_from", date.fromisoformat, "use YYYY-MM-DD"),
            date_to=parse("date_to", date.fromisoformat, "use YYYY-MM-DD"),
            species=get("species"),
            verdict=get("verdict"),
            min_confidence=parse("min_confidence", float, "a number from 0 to 1"),
            reviewed=None if reviewed is None else reviewed.lower() in ("true", "1", "yes"),
            limit=48 if limit is None else limit,
            after=get("after"),
        )
        q.check()
        return q

    def check(self) -> None:
        """Raise :class:`BadInputError` for filters that cannot match anything sensible."""
        if not 1 <= self.limit <= MAX_PAGE:
            raise BadInputError("limit", f"{self.limit} is out of range", f"use 1..{MAX_PAGE}")
        if self.verdict is not None and self.verdict not in (*VERDICTS, "none"):
            raise BadInputError(
                "verdict", f"unknown verdict {self.verdict!r}", "use " + ", ".join(VERDICTS)
            )
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise BadInputError("min_confidence", "must be between 0 and 1", "e.g. 0.5")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise BadInputError("date_from", "is after date_to", "swap the dates")

    def params(self) -> dict[str, str]:
        """The filters as query-string parameters (for links that keep them)."""
        out = {}
        for key in ("station", "date_from", "date_to", "species", "verdict", "min_confidence"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = str(value)
        if self.reviewed is not None:
            out["reviewed"] = "true" if self.reviewed else "false"
        return out


def encode_cursor(start: datetime, seq_id: int) -> str:
    return base64.urlsafe_b64encode(f"{start.isoformat()}|{seq_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        stamp, sid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        seq_id = int(sid)
        if not 0 <= seq_id < 2**63:  # the database's integer keys are 64-bit
            raise ValueError(sid)
        return datetime.fromisoformat(stamp), seq_id
    except Exception as exc:  # noqa: BLE001 - any malformed cursor is the same mistake
        raise BadInputError(
            "after", "not a cursor this app made", "use the 'next' value of a previous page"
        ) from exc


def main_detector(session: Session) -> str | None:
    """The detector configuration with the most sequence verdicts (the one shown)."""
    return session.scalar(
        select(SequenceVerdict.detector)
        .group_by(SequenceVerdict.detector)
        .order_by(func.count().desc(), SequenceVerdict.detector)
        .limit(1)
    )


def _has_obs(fence: bool, *conds: Any) -> Any:
    """``EXISTS`` a current observation meeting ``conds`` on a media file of the sequence.

    Written as media-then-observation nested probes so that both databases
    walk the sequence's few files (``ix_media_sequence``) and look each one up
    in ``ix_observations_media_current``, whatever their statistics say: a page
    then costs what it shows. Driven from the observations side (as SQLite
    chooses without ``ANALYZE``, and PostgreSQL when it flattens the probe
    into a join) every probe would read every labelled row of the project.
    ``fence`` adds ``OFFSET 0`` for PostgreSQL, which keeps the probe a
    per-sequence sub-plan.
    """
    m = aliased(MediaRow)
    o = aliased(Observation)
    on_file = (
        select(literal(1))
        .select_from(o)
        .where(o.media_id == m.id, o.retracted_utc.is_(None), *[c(o) for c in conds])
        .exists()
    )
    sub = select(literal(1)).select_from(m).where(m.sequence_id == MediaGroup.id, on_file)
    if fence:
        sub = sub.offset(0)
    return sub.exists()


def _in_ids(column: Any, ids: list[int], pg: bool) -> Any:
    """``column IN ids``; on PostgreSQL as ``= ANY(array)``, one parameter, not thousands.

    Binding and planning thousands of separate parameters costs PostgreSQL
    more than the lookups they feed.
    """
    if pg:
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def _seq_ids_with(s: Session, *conds: Any) -> list[int]:
    """Ids of sequences with a current observation meeting ``conds`` (read from that side).

    SQLite: one join, driven from the label's index. PostgreSQL: two lookups
    (media ids from the observations, then their sequences by primary key as
    one array parameter): as a join it hashes a scan of every media row even
    when a few hundred match. No DISTINCT in SQL: it makes SQLite walk the
    ``(media_id, ...)`` index in order instead of looking the label up.
    """
    conn = s.connection()  # Core rows: no ORM bookkeeping for thousands of ids
    current = [Observation.retracted_utc.is_(None), *[c(Observation) for c in conds]]
    if conn.dialect.name != "postgresql":
        rows = conn.execute(
            select(MediaRow.sequence_id)
            .select_from(Observation)
            .join(MediaRow, MediaRow.id == Observation.media_id)
            .where(*current)
        )
        return sorted({sid for (sid,) in rows if sid is not None})
    media_ids = sorted(
        {mid for (mid,) in conn.execute(select(Observation.media_id).where(*current)) if mid}
    )
    if not media_ids:
        return []
    rows = conn.execute(select(MediaRow.sequence_id).where(_in_ids(MediaRow.id, media_ids, True)))
    return sorted({sid for (sid,) in rows if sid is not None})


@dataclass(frozen=True)
class LabelStats:
    """How many current media-level observations say what: chooses a filter's plan.

    Only used to estimate costs, so a stale value (kept 60 s) costs time, never
    correctness.
    """

    n_obs: int
    n_sequences: int
    n_human: int
    by_species: dict[tuple[str | None, bool], int]  # (species or "blank", human) -> rows

    def count(self, species: str | None, human_only: bool) -> int:
        """Observation rows with this label (``species=None``: any), by people only or any."""
        total = 0
        for (sp, human), n in self.by_species.items():
            if (species is None or sp == species) and (human or not human_only):
                total += n
        return total


def _label_stats(project: Project) -> LabelStats:
    with project.session() as s:
        rows = s.execute(
            select(
                Observation.species,
                Observation.observation_type,
                Observation.source,
                func.count(),
            )
            .where(Observation.retracted_utc.is_(None), Observation.media_id.is_not(None))
            .group_by(Observation.species, Observation.observation_type, Observation.source)
        ).all()
        n_seq = s.scalar(
            select(func.count()).select_from(MediaGroup).where(MediaGroup.kind == "sequence")
        )
    by: dict[tuple[str | None, bool], int] = defaultdict(int)
    for species, otype, source, n in rows:
        by[("blank" if otype == "blank" else species, source == HUMAN)] += int(n)
    return LabelStats(
        n_obs=sum(by.values()),
        n_sequences=int(n_seq or 0),
        n_human=sum(n for (_sp, human), n in by.items() if human),
        by_species=dict(by),
    )


def label_stats(project: Project) -> LabelStats:
    """:class:`LabelStats` of the project, kept 60 s."""
    from irbis.web.cache import cached

    return cached((project.root, "label-stats"), 60.0, lambda: _label_stats(project))


# Above this many matching sequence ids the "fetch the matches first" plan would
# bind too many parameters; walking in grid order is the plan then.
_MAX_PREFETCH = 20_000


def _prefetch_pays(stats: LabelStats, n_anchor: int, limit: int) -> bool:
    """Whether listing the matches of a label first beats walking sequences in grid order.

    Walking visits about ``limit * n_obs / n_anchor`` sequences, probing each
    one's observations; listing reads the ``n_anchor`` matching rows once.
    """
    if n_anchor > _MAX_PREFETCH:
        return False
    if n_anchor == 0:
        return True
    per_seq = stats.n_obs / max(stats.n_sequences, 1)
    walk = (limit + 1) * stats.n_obs / n_anchor * max(per_seq, 1.0)
    return n_anchor < walk


def _detector(project: Project) -> str | None:
    from irbis.web.cache import cached

    def compute() -> str | None:
        with project.session() as s:
            return main_detector(s)

    return cached((project.root, "detector"), 10.0, compute)


def _filtered(
    s: Session, project: Project, q: SequenceQuery, detector: str | None, limit: int
) -> Select:
    """The grid's rows under ``q``'s filters (unordered, unlimited).

    Sequences are read in ``(start_utc, id)`` order from an index and the label
    filters are per-sequence probes, so a page stops after ``limit`` matches.
    When the label asked for is rare (few observation rows say it, judged from
    :func:`label_stats`), such a walk would visit most sequences to fill a page;
    then the ids of the sequences carrying that label are listed first and
    only those are probed.
    """
    sv = aliased(SequenceVerdict)
    stmt = (
        select(
            MediaGroup.id,
            MediaGroup.start_utc,
            MediaGroup.end_utc,
            MediaGroup.n_media,
            Station.name,
            Deployment.code,
            sv.verdict,
            sv.best_score,
            sv.best_media_id,
        )
        .join(Deployment, Deployment.id == MediaGroup.deployment_id)
        .join(Station, Station.id == Deployment.station_id)
        .outerjoin(sv, and_(sv.sequence_id == MediaGroup.id, sv.detector == detector))
        .where(MediaGroup.kind == "sequence")
    )
    if q.station:
        stmt = stmt.where(Station.name == q.station)
    if q.date_from:
        stmt = stmt.where(MediaGroup.start_utc >= datetime.combine(q.date_from, time.min))
    if q.date_to and q.date_to < date.max:  # 9999-12-31 has no next day: no upper bound
        end = datetime.combine(q.date_to + timedelta(days=1), time.min)
        stmt = stmt.where(MediaGroup.start_utc < end)
    if q.verdict == "none":
        stmt = stmt.where(sv.id.is_(None))
    elif q.verdict:
        stmt = stmt.where(sv.verdict == q.verdict)
    if q.min_confidence is not None:
        stmt = stmt.where(sv.best_score >= q.min_confidence)
    if q.reviewed is None and not q.species:
        return stmt

    fence = s.get_bind().dialect.name == "postgresql"

    def is_human(o):
        return o.source == HUMAN

    named = None
    if q.species == "blank":

        def named(o):
            return o.observation_type == "blank"

    elif q.species:

        def named(o):
            return o.species == q.species

    human = _has_obs(fence, is_human)
    # The current label is a person's when there is one, else anyone's. Each
    # case is an "anchor" (a label every match carries, which can be listed
    # from the observations' side) and the rest of the condition.
    if named is None:
        if not q.reviewed:
            return stmt.where(~human)
        anchor: tuple = (is_human,)
        rest: list[Any] = []
    elif q.reviewed is True:
        anchor, rest = (is_human, named), []
    elif q.reviewed is False:
        anchor, rest = (named,), [~human]
    else:
        anchor, rest = (named,), [or_(_has_obs(fence, is_human, named), ~human)]
    stats = label_stats(project)
    n_anchor = stats.count(q.species, human_only=is_human in anchor)
    if _prefetch_pays(stats, n_anchor, limit):
        return stmt.where(_in_ids(MediaGroup.id, _seq_ids_with(s, *anchor), fence), *rest)
    return stmt.where(_has_obs(fence, *anchor), *rest)
    return stmt


def _labels(rows: list[tuple]) -> tuple[list[dict[str, Any]], bool]:
    """Current labels of one sequence from its current observations."""
    human = [r for r in rows if r[4] == HUMAN]
    use = human or rows
    seen: dict[tuple, dict[str, Any]] = {}
    for species, count, otype, individual, source, by in use:
        key = (species, otype, source, by)
        item = seen.setdefault(
            key,
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
    return list(seen.values()), bool(human)


def provenance(source: str) -> str:
    """``human``, ``machine`` (a model) or ``import`` (folder names, tags, packages)."""
    if source == HUMAN:
        return "human"
    if source.startswith("model"):
        return "machine"
    return "import"


def _page_extras(s: Session, ids: list[int]) -> tuple[dict, dict]:
    """Media (in time order) and current observations of the sequences ``ids``.

    Observations are fetched by the media ids just read rather than by a join
    on ``sequence_id``: PostgreSQL would otherwise hash-join a scan of every
    observation of the project for a 48-sequence page.
    """
    pg = s.get_bind().dialect.name == "postgresql"
    media: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seq_of: dict[int, int] = {}
    for mid, sid, local, version, mtype in s.execute(
        select(
            MediaRow.id,
            MediaRow.sequence_id,
            MediaRow.timestamp_local,
            MediaRow.review_version,
            MediaRow.mediatype,
        )
        .where(_in_ids(MediaRow.sequence_id, ids, pg))
        .order_by(MediaRow.sequence_id, MediaRow.timestamp_utc, MediaRow.id)
    ):
        media[sid].append({"id": mid, "version": version, "local": local, "type": mtype})
        seq_of[mid] = sid
    obs: dict[int, list[tuple]] = defaultdict(list)
    if not seq_of:
        return media, obs
    for mid, *rest in s.execute(
        select(
            Observation.media_id,
            Observation.species,
            Observation.count,
            Observation.observation_type,
            Observation.individual,
            Observation.source,
            Observation.by,
        ).where(
            _in_ids(Observation.media_id, list(seq_of), pg), Observation.retracted_utc.is_(None)
        )
    ):
        obs[seq_of[mid]].append(tuple(rest))
    return media, obs


def list_sequences(project: Project, q: SequenceQuery) -> dict[str, Any]:
    """One page of the sequence grid.

    Returns
    -------
    dict
        ``{"items": [...], "next": cursor or None, "detector": key or None}``;
        each item has ``id, station, deployment, start_utc, start_local, n_media,
        verdict, confidence, thumb_media_id, labels, reviewed, media`` (ids with
        their ``review_version``, needed to label it).
    """
    q.check()
    with project.session() as s:
        detector = _detector(project)
        stmt = _filtered(s, project, q, detector, q.limit)
        if q.after:
            t, sid = decode_cursor(q.after)
            stmt = stmt.where(
                or_(MediaGroup.start_utc > t, and_(MediaGroup.start_utc == t, MediaGroup.id > sid))
            )
        rows = s.execute(
            stmt.order_by(MediaGroup.start_utc, MediaGroup.id).limit(q.limit + 1)
        ).all()
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        media, obs = _page_extras(s, [r[0] for r in rows])
    items = []
    for sid, start, end, n, station, dep, verdict, score, best in rows:
        labels, reviewed = _labels(obs.get(sid, []))
        mlist = media.get(sid, [])
        first_local = mlist[0]["local"] if mlist else None
        items.append(
            {
                "id": sid,
                "station": station,
                "deployment": dep,
                "start_utc": start.isoformat(),
                "end_utc": end.isoformat(),
                "start_local": first_local.isoformat() if first_local else None,
                "n_media": n,
                "verdict": verdict,
                "confidence": score,
                "thumb_media_id": best or (mlist[0]["id"] if mlist else None),
                "labels": labels,
                "reviewed": reviewed,
                "media": [{"id": m["id"], "version": m["version"]} for m in mlist],
            }
        )
    nxt = encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None
    return {"items": items, "next": nxt, "detector": detector}


def neighbours(project: Project, q: SequenceQuery, seq_id: int) -> dict[str, int | None]:
    """The previous and next sequence of ``seq_id`` under the grid's filters."""
    with project.session() as s:
        start = s.scalar(
            select(MediaGroup.start_utc).where(
                MediaGroup.id == seq_id, MediaGroup.kind == "sequence"
            )
        )
        if start is None:
            raise NotFoundError(f"sequence {seq_id} not found")
        base = _filtered(s, project, q, _detector(project), 1).with_only_columns(MediaGroup.id)
        after = or_(
            MediaGroup.start_utc > start,
            and_(MediaGroup.start_utc == start, MediaGroup.id > seq_id),
        )
        before = or_(
            MediaGroup.start_utc < start,
            and_(MediaGroup.start_utc == start, MediaGroup.id < seq_id),
        )
        nxt = s.scalar(base.where(after).order_by(MediaGroup.start_utc, MediaGroup.id).limit(1))
        prev = s.scalar(
            base.where(before).order_by(MediaGroup.start_utc.desc(), MediaGroup.id.desc()).limit(1)
        )
    return {"previous": prev, "next": nxt}


def _obs_dict(o: Observation) -> dict[str, Any]:
    return {
        "id": o.id,
        "media_id": o.media_id,
        "level": o.level,
        "species": o.species,
        "count": o.count,
        "type": o.observation_type,
        "individual": o.individual,
        "source": o.source,
        "by": o.by,
        "provenance": provenance(o.source),
        "created_utc": o.created_utc.isoformat() if o.created_utc else None,
        "retracted_utc": o.retracted_utc.isoformat() if o.retracted_utc else None,
        "retracted_by": o.retracted_by or None,
        "current": o.retracted_utc is None,
        "probability": o.probability,
    }


def sequence_detail(project: Project, seq_id: int) -> dict[str, Any]:
    """One sequence with its media, detection boxes and every observation (retracted too).

    Raises
    ------
    NotFoundError
        No sequence has this id.
    """
    with project.session() as s:
        row = s.execute(
            select(MediaGroup, Deployment.code, Station.name)
            .join(Deployment, Deployment.id == MediaGroup.deployment_id)
            .join(Station, Station.id == Deployment.station_id)
            .where(MediaGroup.id == seq_id, MediaGroup.kind == "sequence")
        ).first()
        if row is None:
            raise NotFoundError(f"sequence {seq_id} not found")
        group, dep, station = row
        detector = _detector(project)
        verdict = (
            s.scalar(
                select(SequenceVerdict).where(
                    SequenceVerdict.sequence_id == seq_id, SequenceVerdict.detector == detector
                )
            )
            if detector
            else None
        )
        media = s.scalars(
            select(MediaRow)
            .where(MediaRow.sequence_id == seq_id)
            .order_by(MediaRow.timestamp_utc, MediaRow.id)
        ).all()
        ids = [m.id for m in media]
        boxes: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for b, det in s.execute(
            select(DetectionBox, MediaDetection.detector)
            .join(MediaDetection, MediaDetection.id == DetectionBox.result_id)
            .where(DetectionBox.media_id.in_(ids))
            .order_by(DetectionBox.media_id, DetectionBox.frame, DetectionBox.score.desc())
        ):
            boxes[b.media_id].append(
                {
                    "frame": b.frame,
                    "category": b.category,
                    "score": b.score,
                    "x": b.x,
                    "y": b.y,
                    "width": b.width,
                    "height": b.height,
                    "source": b.source,
                    "detector": det,
                    "main": det == detector,
                }
            )
        obs_rows = s.scalars(
            select(Observation)
            .where(Observation.media_id.in_(ids))
            .order_by(Observation.media_id, Observation.id)
        ).all()
        events = s.scalars(
            select(Observation).where(
                Observation.media_id.is_(None),
                Observation.deployment_id == group.deployment_id,
                Observation.event_start_utc <= group.end_utc,
                Observation.event_end_utc >= group.start_utc,
            )
        ).all()
    obs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    current: list[tuple] = []
    for o in obs_rows:
        obs[o.media_id].append(_obs_dict(o))
        if o.retracted_utc is None:
            current.append((o.species, o.count, o.observation_type, o.individual, o.source, o.by))
    labels, reviewed = _labels(current)
    return {
        "id": group.id,
        "station": station,
        "deployment": dep,
        "start_utc": group.start_utc.isoformat(),
        "end_utc": group.end_utc.isoformat(),
        "n_media": group.n_media,
        "detector": detector,
        "verdict": verdict.verdict if verdict else None,
        "confidence": verdict.best_score if verdict else None,
        "best_media_id": verdict.best_media_id if verdict else None,
        "labels": labels,
        "reviewed": reviewed,
        "media": [
            {
                "id": m.id,
                "file_name": m.file_name,
                "mediatype": m.mediatype,
                "mime": m.mime,
                "width": m.width,
                "height": m.height,
                "timestamp_local": m.timestamp_local.isoformat() if m.timestamp_local else None,
                "timestamp_utc": m.timestamp_utc.isoformat() if m.timestamp_utc else None,
                "time_flag": m.time_flag,
                "review_version": m.review_version,
                "url": f"/api/media/{m.id}/file",
                "thumb_url": f"/api/media/{m.id}/thumb",
                "boxes": boxes.get(m.id, []),
                "observations": obs.get(m.id, []),
            }
            for m in media
        ],
        "event_observations": [_obs_dict(o) for o in events],
    }
