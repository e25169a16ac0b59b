"""Sequences (bursts) for review: the filtered, paginated grid and one sequence's detail.

Pagination is by keyset on ``(start_utc, id)``: a page is "the next N after
this cursor", which costs the same on page 1 and page 2,000 (an offset would
scan every skipped row). Labels shown are the *current* ones: a sequence's
human observations when a person labelled it, otherwise what folders, tags or
models said. Nothing here writes.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, false, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased

from irbis.core.errors import BadInputError
from irbis.store import blanks
from irbis.store.groups import successor
from irbis.store.project import Project
from irbis.store.schema import (
    Deployment,
    DetectionBox,
    MediaDetection,
    MediaGroup,
    Observation,
    ReviewedBox,
    SequenceLabel,
    SequenceSummary,
    SequenceVerdict,
    Station,
)
from irbis.store.schema import Media as MediaRow
from irbis.store.sequence_summary import (
    ANY_LABEL,
    current_labels,
    ensure_fresh,
    label_key,
    provenance,
)
from irbis.web.boxes import reviewed_of
from irbis.web.errors import MovedError, NotFoundError

#: The grid's verdict filters. ``blank``: set aside as blank (irbis.store.blanks:
#: no box in any frame, every frame judged, nobody says something is there);
#: ``unjudged``: no box, but a frame too small (or unreadable) for the detector
#: to judge, so not set aside; the others: the detector's box category, or what
#: a person boxed on a burst without a machine box.
VERDICTS = ("blank", "unjudged", "animal", "person", "vehicle")
#: What people read for each filter value and tile state.
VERDICT_WORDS = {
    "blank": "set aside as blank",
    "unjudged": "too small to judge",
    "animal": "animal",
    "person": "person",
    "vehicle": "vehicle",
    "none": "not detected yet",
}
# Aliases are built once: making one copies every column of the table, which
# cost more than the whole query when done for each request.
_SV = aliased(SequenceVerdict, name="sv")
_SUMM = aliased(SequenceSummary, name="summ")
_SL = aliased(SequenceLabel, name="sl")
MAX_PAGE = 500


@dataclass
class SequenceQuery:
    """Filters of the sequence grid (all optional) and the page wanted.

    ``date_from``/``date_to`` are inclusive UTC dates of the sequence start;
    ``species`` matches the current label; ``verdict`` one of :data:`VERDICTS`
    or ``none`` (not detected yet): ``blank`` is what irbis.store.blanks sets
    aside as blank (a person's box, "animal here" mark or a label naming a
    species keeps a sequence out), ``unjudged`` a sequence without a box of
    which a frame was too small or unreadable for the detector, and a box
    category also matches a sequence without a machine box on which a person
    boxed (or marked) one; ``reviewed`` whether a person labelled it.
    ``proposed`` is the species the classifier proposes (``unknown``: it is
    unsure; ``any``: any proposal), ``min_probability``/``max_probability``
    bound the proposal's probability and ``sort`` is one of
    :data:`irbis.web.proposals.SORTS` (every one but ``time`` shows only
    sequences with a proposal).
    """

    station: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    species: str | None = None
    verdict: str | None = None
    min_confidence: float | None = None
    reviewed: bool | None = None
    proposed: str | None = None
    min_probability: float | None = None
    max_probability: float | None = None
    sort: str = "time"
    limit: int = 48
    after: str | None = None

    def by_proposal(self) -> bool:
        """Whether the page needs the classifier's proposals (only sequences with one)."""
        return (
            self.sort != "time"
            or self.proposed is not None
            or self.min_probability is not None
            or self.max_probability is not None
        )

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
            proposed=get("proposed"),
            min_probability=parse("min_probability", float, "a number from 0 to 1"),
            max_probability=parse("max_probability", float, "a number from 0 to 1"),
            sort=get("sort") or "time",
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
                "verdict",
                f"unknown verdict {self.verdict!r}",
                "use " + ", ".join((*VERDICTS, "none")),
            )
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise BadInputError("min_confidence", "must be between 0 and 1", "e.g. 0.5")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise BadInputError("date_from", "is after date_to", "swap the dates")
        from irbis.web.proposals import SORTS

        if self.sort not in SORTS:
            raise BadInputError("sort", f"unknown order {self.sort!r}", "use " + ", ".join(SORTS))
        for key in ("min_probability", "max_probability"):
            value = getattr(self, key)
            if value is not None and not 0 <= value <= 1:
                raise BadInputError(key, "must be between 0 and 1", "e.g. 0.8")

    def params(self) -> dict[str, str]:
        """The filters as query-string parameters (for links that keep them)."""
        out = {}
        for key in (
            "station",
            "date_from",
            "date_to",
            "species",
            "verdict",
            "min_confidence",
            "proposed",
            "min_probability",
            "max_probability",
        ):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = str(value)
        if self.reviewed is not None:
            out["reviewed"] = "true" if self.reviewed else "false"
        if self.sort != "time":
            out["sort"] = self.sort
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
    """The detector configuration shown: the one the overview and reports count.

    :func:`irbis.store.blanks.main_detector` (the most media results), so the
    grid's "set aside as blank" is the overview's.
    """
    return blanks.main_detector(session)


def _detector(project: Project) -> str | None:
    from irbis.web.cache import cached

    def compute() -> str | None:
        with project.session() as s:
            return main_detector(s)

    return cached((project.root, "detector"), 10.0, compute)


def _label_filter(q: SequenceQuery) -> tuple[str, bool | None] | None:
    """The ``sequence_labels`` row a match must have: ``(label, reviewed or None)``."""
    if q.species:
        return label_key(None, "blank") if q.species == "blank" else q.species, q.reviewed
    if q.reviewed is not None:
        return ANY_LABEL, q.reviewed
    return None


def _filtered(q: SequenceQuery, detector: str | None) -> tuple[Select, Any, Any]:
    """The grid's rows under ``q``'s filters, and the columns that order them.

    Without a label filter, sequences are read in ``(start_utc, id)`` order
    from ``ix_media_groups_kind_start``; with one, from the label's rows of
    ``sequence_labels`` (which repeat the start time), so a page of a rare
    species or of "not yet reviewed" stops after ``limit`` matches either way.
    Returns ``(statement, start column, id column)``: order and page by the
    latter two.
    """
    sv, summ = _SV, _SUMM
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
            summ.start_local,
            summ.reviewed,
            summ.labels,
            summ.media,
        )
        .join(Deployment, Deployment.id == MediaGroup.deployment_id)
        .join(Station, Station.id == Deployment.station_id)
        .outerjoin(sv, and_(sv.sequence_id == MediaGroup.id, sv.detector == detector))
        .outerjoin(summ, summ.sequence_id == MediaGroup.id)
        .where(MediaGroup.kind == "sequence")
    )
    start_col, id_col = MediaGroup.start_utc, MediaGroup.id
    wanted = _label_filter(q)
    if wanted is not None:
        label, reviewed = wanted
        on = [_SL.sequence_id == MediaGroup.id, _SL.label == label]
        if reviewed is not None:
            on.append(_SL.reviewed == reviewed)
        stmt = stmt.join(_SL, and_(*on))
        start_col, id_col = _SL.start_utc, _SL.sequence_id
    if q.station:
        stmt = stmt.where(Station.name == q.station)
    if q.date_from:
        stmt = stmt.where(start_col >= datetime.combine(q.date_from, time.min))
    if q.date_to and q.date_to < date.max:  # 9999-12-31 has no next day: no upper bound
        end = datetime.combine(q.date_to + timedelta(days=1), time.min)
        stmt = stmt.where(start_col < end)
    if q.verdict == "none":
        stmt = stmt.where(sv.id.is_(None))
    elif q.verdict and detector is None:
        stmt = stmt.where(false())  # nothing was detected: no verdict matches
    elif q.verdict == "blank":
        stmt = stmt.where(blanks.set_aside_sql(MediaGroup.id, sv.verdict, detector))
    elif q.verdict == "unjudged":
        stmt = stmt.where(blanks.unjudged_sql(MediaGroup.id, sv.verdict, detector))
    elif q.verdict:
        stmt = stmt.where(
            or_(
                sv.verdict == q.verdict,
                and_(sv.verdict.not_in(_BOXED), _people_found(q.verdict)),
            )
        )
    if q.min_confidence is not None:
        stmt = stmt.where(sv.best_score >= q.min_confidence)
    if q.by_proposal():
        stmt = _with_proposal(stmt, q)
    return stmt, start_col, id_col


def _with_proposal(stmt: Select, q: SequenceQuery) -> Select:
    """``stmt`` joined to the sequences' current proposals, filtered by ``q``'s bounds.

    Adds the proposal's columns (``prop_probability``, ``prop_margin``) so the
    page can be ordered and paged by them.
    """
    from irbis.web.proposals import proposals_sql

    prop = proposals_sql()
    stmt = stmt.join(prop, prop.c.sequence_id == MediaGroup.id).add_columns(
        prop.c.probability.label("prop_probability"), prop.c.margin.label("prop_margin")
    )
    if q.proposed == "unknown":
        stmt = stmt.where(prop.c.species.is_(None))
    elif q.proposed and q.proposed != "any":
        stmt = stmt.where(prop.c.species == q.proposed)
    if q.min_probability is not None:
        stmt = stmt.where(prop.c.probability >= q.min_probability)
    if q.max_probability is not None:
        stmt = stmt.where(prop.c.probability <= q.max_probability)
    return stmt


def _proposal_order(stmt: Select, q: SequenceQuery) -> tuple[Any, bool, Any]:
    """``(column, descending, id column)`` of a proposal order of ``stmt``'s rows."""
    cols = {c.name: c for c in stmt.selected_columns}
    if q.sort == "margin":
        return cols["prop_margin"].element, False, MediaGroup.id
    return cols["prop_probability"].element, q.sort == "probability", MediaGroup.id


_BOXED = ("animal", "person", "vehicle")


def states_of(conn: Any, detector: str | None, seq_ids: list[int]) -> dict[int, str]:
    """Per sequence without a machine box: ``set_aside``, ``unjudged`` or ``kept``.

    The tile state of irbis.store.blanks for a page of sequences (one query):
    set aside as blank; not set aside because a frame is too small or
    unreadable for the detector to judge; or kept because a person boxed or
    marked something, or a label names a species. Sequences with a machine box
    or no verdict are left out.
    """
    if not seq_ids or detector is None:
        return {}
    sv = _SV
    on = and_(sv.sequence_id == MediaGroup.id, sv.detector == detector)
    rows = conn.execute(
        select(
            MediaGroup.id,
            blanks.set_aside_sql(MediaGroup.id, sv.verdict, detector),
            blanks.unjudged_sql(MediaGroup.id, sv.verdict, detector),
            blanks.kept_by_review_sql(MediaGroup.id, sv.verdict, detector),
        )
        .join(sv, on)
        .where(MediaGroup.id.in_(seq_ids), sv.verdict.not_in(_BOXED))
    )
    out: dict[int, str] = {}
    for sid, aside, unjudged, kept in rows:
        if aside:
            out[sid] = "set_aside"
        elif kept:
            out[sid] = "kept"
        elif unjudged:
            out[sid] = "unjudged"
    return out


def _found(b: Mapping[str, Any]) -> bool:
    """A current reviewed row saying something is there (a box, or "animal here")."""
    return b["current"] and b["category"] != "blank"


def _people_found(category: str | None = None) -> Any:
    """EXISTS: a current reviewed box or "animal here" mark on a file of the grid's sequence.

    Such a sequence no longer counts as blank even when the detector set it
    aside as blank: a person looked and saw something (of ``category``, if given).
    """
    rb = ReviewedBox
    cond = rb.category == category if category else rb.category != "blank"
    return (
        select(rb.id)
        .join(MediaRow, MediaRow.id == rb.media_id)
        .where(MediaRow.sequence_id == MediaGroup.id, rb.retracted_utc.is_(None), cond)
        .exists()
    )


def _people_found_of(conn: Any, seq_ids: list[int]) -> dict[int, list[str]]:
    """Per sequence, the categories people boxed or marked present (current rows)."""
    out: dict[int, list[str]] = defaultdict(list)
    if not seq_ids:
        return out
    rb = ReviewedBox
    rows = conn.execute(
        select(MediaRow.sequence_id, rb.category)
        .join(MediaRow, MediaRow.id == rb.media_id)
        .where(
            MediaRow.sequence_id.in_(seq_ids),
            rb.retracted_utc.is_(None),
            rb.category != "blank",
        )
        .distinct()
        .order_by(MediaRow.sequence_id, rb.category)
    )
    for sid, category in rows:
        out[sid].append(category)
    return out


def _after(start_col: Any, id_col: Any, start: datetime, seq_id: int) -> Any:
    """Rows after ``(start, seq_id)`` in grid order.

    Written with a plain range on the start first: an index walk can then
    begin at ``start`` (a bare ``OR`` made SQLite scan from the beginning).
    """
    return and_(start_col >= start, or_(start_col > start, id_col > seq_id))


def _before(start_col: Any, id_col: Any, start: datetime, seq_id: int) -> Any:
    """Rows before ``(start, seq_id)`` in grid order (see :func:`_after`)."""
    return and_(start_col <= start, or_(start_col < start, id_col < seq_id))


def list_sequences(project: Project, q: SequenceQuery) -> dict[str, Any]:
    """One page of the sequence grid.

    Returns
    -------
    dict
        ``{"items": [...], "next": cursor or None, "detector": key or None}``;
        each item has ``id, station, deployment, start_utc, start_local, n_media,
        verdict, confidence, thumb_media_id, labels, reviewed, people_found, state,
        media`` (ids with their ``review_version``, needed to label it).
        ``verdict`` is the detector's; ``people_found`` the categories people
        boxed or marked present in it; ``state`` for a sequence without a
        machine box what irbis.store.blanks makes of it (:func:`states_of`:
        ``set_aside``, ``unjudged``, ``kept``), None otherwise. Only
        ``set_aside`` matches ``verdict=blank``; a sequence with people's boxes
        matches ``verdict=<category>``.
    """
    q.check()
    ensure_fresh(project.engine)  # the summaries as of every committed write
    detector = _detector(project)
    stmt, start_col, id_col = _filtered(q, detector)
    from irbis.web import proposals as props

    if q.sort != "time":
        col, desc, pid = _proposal_order(stmt, q)
        if q.after:
            value, sid = props.decode_sort_cursor(q.after, q.sort)
            stmt = stmt.where(props.after_key(col, desc, pid, value, sid))
        stmt = stmt.order_by(col.desc() if desc else col, pid)
    else:
        if q.after:
            t, sid = decode_cursor(q.after)
            stmt = stmt.where(_after(start_col, id_col, t, sid))
        stmt = stmt.order_by(start_col, id_col)
    with project.engine.connect() as conn:  # Core rows: no ORM bookkeeping
        rows = conn.execute(stmt.limit(q.limit + 1)).all()
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        found = _people_found_of(conn, [r[0] for r in rows])
        states = states_of(conn, detector, [r[0] for r in rows if r[6] not in _BOXED])
        proposed = props.proposals_of(conn, [r[0] for r in rows])
    items = []
    for row in rows:
        sid, start, end, n, station, dep, verdict, score, best, local, rev, labels, media = row[:13]
        pairs = json.loads(media) if media else []
        items.append(
            {
                "id": sid,
                "station": station,
                "deployment": dep,
                "start_utc": start.isoformat(),
                "end_utc": end.isoformat(),
                "start_local": local.isoformat() if local else None,
                "n_media": n,
                "verdict": verdict,
                "confidence": score,
                "thumb_media_id": best or (pairs[0][0] if pairs else None),
                "labels": json.loads(labels) if labels else [],
                "reviewed": bool(rev),
                "people_found": found.get(sid, []),
                "state": states.get(sid),
                "media": [{"id": m, "version": v} for m, v in pairs],
                "proposal": proposed.get(sid),
            }
        )
    nxt = None
    if more and rows and q.sort != "time":
        key = "prop_margin" if q.sort == "margin" else "prop_probability"
        nxt = props.encode_sort_cursor(q.sort, float(getattr(rows[-1], key)), rows[-1][0])
    elif more and rows:
        nxt = encode_cursor(rows[-1][1], rows[-1][0])
    return {"items": items, "next": nxt, "detector": detector}


def neighbours(
    project: Project, q: SequenceQuery, seq_id: int, start: datetime | None = None
) -> dict[str, int | None]:
    """The previous and next sequence of ``seq_id`` under the grid's filters.

    ``start``: the sequence's start when the caller has read it already.
    Both neighbours come back in one round trip.
    """
    stmt, start_col, id_col = _filtered(q, _detector(project))
    if q.sort != "time":
        return _proposal_neighbours(project, stmt, q, seq_id)
    base = stmt.with_only_columns(id_col.label("id"), literal(0).label("side"))
    with project.engine.connect() as conn:
        if start is None:
            start = conn.execute(
                select(MediaGroup.start_utc).where(
                    MediaGroup.id == seq_id, MediaGroup.kind == "sequence"
                )
            ).scalar()
        if start is None:
            raise NotFoundError(f"sequence {seq_id} not found")
        nxt_q = base.where(_after(start_col, id_col, start, seq_id))
        prev_q = base.with_only_columns(id_col.label("id"), literal(1).label("side")).where(
            _before(start_col, id_col, start, seq_id)
        )
        both = union_all(
            select(nxt_q.order_by(start_col, id_col).limit(1).subquery()),
            select(prev_q.order_by(start_col.desc(), id_col.desc()).limit(1).subquery()),
        )
        found = {side: sid for sid, side in conn.execute(both)}
    nxt, prev = found.get(0), found.get(1)
    return {"previous": prev, "next": nxt}


def _proposal_neighbours(
    project: Project, stmt: Select, q: SequenceQuery, seq_id: int
) -> dict[str, int | None]:
    """:func:`neighbours` in a proposal order (a sequence without a proposal has none)."""
    from irbis.web import proposals as props

    col, desc, pid = _proposal_order(stmt, q)
    with project.engine.connect() as conn:
        value = conn.execute(stmt.with_only_columns(col).where(MediaGroup.id == seq_id)).scalar()
        if value is None:  # no proposal, or filtered out
            return {"previous": None, "next": None}
        base = stmt.with_only_columns(pid)
        nxt = conn.execute(
            base.where(props.after_key(col, desc, pid, value, seq_id))
            .order_by(col.desc() if desc else col, pid)
            .limit(1)
        ).scalar()
        prev = conn.execute(
            base.where(props.before_key(col, desc, pid, value, seq_id))
            .order_by(col if desc else col.desc(), pid.desc())
            .limit(1)
        ).scalar()
    return {"previous": prev, "next": nxt}


def _obs_dict(o: Any) -> dict[str, Any]:
    """An observation row (ORM object or Core row with the same names) as JSON."""
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
        "sex": o.sex,
        "life_stage": o.life_stage,
        "behavior": o.behavior,
        "comments": o.comments or "",
    }


def _proposal(project: Project, seq_id: int) -> dict[str, Any] | None:
    from irbis.web.proposals import proposal_of

    return proposal_of(project, seq_id)


def sequence_detail(project: Project, seq_id: int) -> dict[str, Any]:
    """One sequence with its media, detection boxes and every observation (retracted too).

    Raises
    ------
    NotFoundError
        No sequence has this id.
    """
    o = Observation
    obs_cols = (
        o.id,
        o.media_id,
        o.level,
        o.species,
        o.count,
        o.observation_type,
        o.individual,
        o.source,
        o.by,
        o.created_utc,
        o.retracted_utc,
        o.retracted_by,
        o.probability,
        o.sex,
        o.life_stage,
        o.behavior,
        o.comments,
    )
    # Core rows with the columns shown (attribute names as on the ORM classes):
    # loading whole ORM objects cost more than the queries.
    with project.engine.connect() as conn:
        detector = _detector(project)
        sv = _SV
        row = conn.execute(
            select(
                MediaGroup.id,
                MediaGroup.start_utc,
                MediaGroup.end_utc,
                MediaGroup.n_media,
                MediaGroup.deployment_id,
                Deployment.code,
                Station.name,
                sv.verdict,
                sv.best_score,
                sv.best_media_id,
            )
            .join(Deployment, Deployment.id == MediaGroup.deployment_id)
            .join(Station, Station.id == Deployment.station_id)
            .outerjoin(sv, and_(sv.sequence_id == MediaGroup.id, sv.detector == detector))
            .where(MediaGroup.id == seq_id, MediaGroup.kind == "sequence")
        ).first()
        if row is None:
            moved = successor(conn, seq_id)
            if moved is not None:
                raise MovedError("sequence", seq_id, moved)
            raise NotFoundError(f"sequence {seq_id} not found")
        group, dep, station = row, row.code, row.name
        verdict = row if detector and row.verdict is not None else None
        state = (
            states_of(conn, detector, [seq_id]).get(seq_id)
            if verdict is not None and verdict.verdict not in _BOXED
            else None
        )
        media = conn.execute(
            select(
                MediaRow.id,
                MediaRow.file_name,
                MediaRow.mediatype,
                MediaRow.mime,
                MediaRow.width,
                MediaRow.height,
                MediaRow.timestamp_local,
                MediaRow.timestamp_utc,
                MediaRow.time_flag,
                MediaRow.review_version,
            )
            .where(MediaRow.sequence_id == seq_id)
            .order_by(MediaRow.timestamp_utc, MediaRow.id)
        ).all()
        ids = [m.id for m in media]
        boxes: dict[int, list[dict[str, Any]]] = defaultdict(list)
        b = DetectionBox
        for bid, media_id, frame, category, score, x, y, w, h, source, det in conn.execute(
            select(
                b.id,
                b.media_id,
                b.frame,
                b.category,
                b.score,
                b.x,
                b.y,
                b.width,
                b.height,
                b.source,
                MediaDetection.detector,
            )
            .join(MediaDetection, MediaDetection.id == b.result_id)
            .where(b.media_id.in_(ids))
            .order_by(b.media_id, b.frame, b.score.desc())
        ):
            boxes[media_id].append(
                {
                    "id": bid,
                    "frame": frame,
                    "category": category,
                    "score": score,
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                    "source": source,
                    "detector": det,
                    "main": det == detector,
                }
            )
        people = reviewed_of(conn, ids)
        obs_rows = conn.execute(
            select(*obs_cols).where(o.media_id.in_(ids)).order_by(o.media_id, o.id)
        ).all()
        events = conn.execute(
            select(*obs_cols)
            .where(
                o.media_id.is_(None),
                o.deployment_id == group.deployment_id,
                o.event_start_utc <= group.end_utc,
                o.event_end_utc >= group.start_utc,
            )
            .order_by(o.id)
        ).all()
    obs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    current: list[tuple] = []
    for o in obs_rows:
        obs[o.media_id].append(_obs_dict(o))
        if o.retracted_utc is None:
            current.append((o.species, o.count, o.observation_type, o.individual, o.source, o.by))
    labels, reviewed = current_labels(current)
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
        "state": state,
        "people_found": sorted(
            {b["category"] for rows in people.values() for b in rows if _found(b)}
        ),
        "labels": labels,
        "reviewed": reviewed,
        "proposal": _proposal(project, group.id),
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
                "reviewed_boxes": people.get(m.id, []),
                "observations": obs.get(m.id, []),
            }
            for m in media
        ],
        "event_observations": [_obs_dict(o) for o in events],
    }
