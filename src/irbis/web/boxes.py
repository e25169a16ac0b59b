"""Boxes people draw on a frame, through the app: draw, accept, move, resize, delete,
"no animal here" and "there is an animal here".

The rows are :class:`irbis.store.schema.ReviewedBox`, written by
:mod:`irbis.store.boxes`: every change is a new row with who and when, a
moved or deleted box keeps its old row (retracted), and the machine's boxes
(``detections``) are never touched.

Concurrency, as for labels: two reviewers never silently undo each other.
Every write first takes the media file's row lock (a no-op ``UPDATE`` of
``media``: a row lock on PostgreSQL, the write lock on SQLite), so writes to
one file run one after the other. Then:

- a change to the whole frame (draw, accept, "no animal", "animal here")
  carries ``seen``, the ids of the frame's current rows as the client showed
  them; if the frame's current rows differ, nothing is written and the
  answer is a conflict naming who changed the frame last;
- a change to one box (move, resize, delete) names the box; if someone moved
  or deleted it meanwhile (its row is retracted), the answer is a conflict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError, IrbisError
from irbis.store import boxes as store
from irbis.store.project import Project
from irbis.store.schema import DetectionBox, Media, ReviewedBox
from irbis.web.errors import ConflictError, NotFoundError

_COLUMNS = (
    ReviewedBox.id,
    ReviewedBox.media_id,
    ReviewedBox.frame,
    ReviewedBox.category,
    ReviewedBox.x,
    ReviewedBox.y,
    ReviewedBox.width,
    ReviewedBox.height,
    ReviewedBox.detection_id,
    ReviewedBox.source,
    ReviewedBox.created_by,
    ReviewedBox.created_utc,
    ReviewedBox.retracted_utc,
    ReviewedBox.retracted_by,
)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def box_dict(r: Any) -> dict[str, Any]:
    """A reviewed-box row (ORM object or Core row) as JSON.

    ``kind``: ``box`` (coordinates), ``no_animal`` (a person confirmed the
    frame empty) or ``animal_here`` (an animal is there, no box drawn).
    """
    if r.x is not None:
        kind = "box"
    elif r.category == "blank":
        kind = "no_animal"
    else:
        kind = "animal_here"
    return {
        "id": r.id,
        "media_id": r.media_id,
        "frame": r.frame,
        "kind": kind,
        "category": r.category,
        "x": r.x,
        "y": r.y,
        "width": r.width,
        "height": r.height,
        "detection_id": r.detection_id,
        "source": r.source,
        "by": r.created_by,
        "created_utc": _iso(r.created_utc),
        "retracted_utc": _iso(r.retracted_utc),
        "retracted_by": r.retracted_by or None,
        "current": r.retracted_utc is None,
    }


def reviewed_of(conn: Connection | Session, media_ids: Sequence[int]) -> dict[int, list[dict]]:
    """Every reviewed-box row (current and retracted) of these media, oldest first."""
    out: dict[int, list[dict]] = defaultdict(list)
    if not media_ids:
        return out
    rows = conn.execute(
        select(*_COLUMNS)
        .where(ReviewedBox.media_id.in_(list(media_ids)))
        .order_by(ReviewedBox.media_id, ReviewedBox.id)
    )
    for r in rows:
        out[r.media_id].append(box_dict(r))
    return out


def media_boxes(project: Project, media_id: int) -> dict[str, Any]:
    """``{"media_id", "reviewed_boxes": [...]}`` for one media file (404 if unknown)."""
    with project.session() as s:
        if s.get(Media, media_id) is None:
            raise NotFoundError(f"media {media_id} not found")
        return {"media_id": media_id, "reviewed_boxes": reviewed_of(s, [media_id])[media_id]}


# --------------------------------------------------------------------------- writes


def _lock_media(s: Session, media_id: int) -> Media:
    """Take the media row's write lock (first statement: a fresh snapshot) and return it."""
    res = s.execute(update(Media).where(Media.id == media_id).values(file_name=Media.file_name))
    if res.rowcount != 1:
        raise NotFoundError(f"media {media_id} not found")
    return s.get(Media, media_id)


def _last_change(rows: Iterable[ReviewedBox]) -> str:
    events = [(r.created_utc, r.created_by) for r in rows]
    events += [(r.retracted_utc, r.retracted_by) for r in rows if r.retracted_utc]
    if not events:
        return ""
    when, who = max(events, key=lambda e: e[0])
    return f" by {who or '?'} at {when:%Y-%m-%d %H:%M:%S} UTC"


def _check_seen(s: Session, media_id: int, frame: int, seen: Iterable[int]) -> None:
    current = store.current_boxes(s, media_id, frame)
    if {r.id for r in current} == set(seen):
        return
    every = s.scalars(
        select(ReviewedBox).where(ReviewedBox.media_id == media_id, ReviewedBox.frame == frame)
    ).all()
    raise ConflictError(
        f"the boxes of media {media_id} (frame {frame}) were changed{_last_change(every)} "
        "after you loaded them; reload to see them now, then change them again"
    )


def _check_frame(m: Media, frame: int) -> None:
    if frame != 0 and m.mediatype != "video":
        raise BadInputError(
            f"media {m.id}", f"a photo has one frame (0), not frame {frame}", "send frame 0"
        )


def _store_call(fn, *args, **kwargs):
    """Call a store function; its refusals (empty box, bad category) are bad input (422)."""
    try:
        return fn(*args, **kwargs)
    except IrbisError as exc:
        if isinstance(exc, (BadInputError, ConflictError, NotFoundError)):
            raise
        raise BadInputError("box", str(exc)) from exc


def _finish(project: Project, s: Session, media_id: int, changed: int | None) -> dict[str, Any]:
    s.commit()
    from irbis.web.cache import clear

    clear(project.root)
    return {
        "media_id": media_id,
        "changed": changed,
        "reviewed_boxes": reviewed_of(s, [media_id])[media_id],
    }


def draw(
    project: Project,
    media_id: int,
    box: tuple[float, float, float, float],
    *,
    category: str,
    frame: int,
    seen: Iterable[int],
    user: str,
) -> dict[str, Any]:
    """A person draws a new box (``x, y, width, height``, fractions of the frame)."""
    with project.session() as s:
        m = _lock_media(s, media_id)
        _check_frame(m, frame)
        _check_seen(s, media_id, frame, seen)
        row = _store_call(
            store.draw_box, s, media_id, *box, by=user, category=category, frame=frame
        )
        return _finish(project, s, media_id, row.id)


def accept(
    project: Project, media_id: int, detection_id: int, *, seen: Iterable[int], user: str
) -> dict[str, Any]:
    """A person accepts a machine box as it is: a reviewed box with ``detection_id`` set."""
    with project.session() as s:
        _lock_media(s, media_id)
        det = s.get(DetectionBox, detection_id)
        if det is None or det.media_id != media_id:
            raise NotFoundError(f"machine box {detection_id} of media {media_id} not found")
        if det.category not in store.BOX_CATEGORIES:
            raise BadInputError(
                f"machine box {detection_id}",
                f"category {det.category!r} cannot be accepted",
                "draw the box instead",
            )
        _check_seen(s, media_id, det.frame, seen)
        already = next(
            (
                r
                for r in store.current_boxes(s, media_id, det.frame)
                if r.detection_id == detection_id
            ),
            None,
        )
        if already is not None:
            raise BadInputError(
                f"machine box {detection_id}",
                f"already accepted (reviewed box {already.id} by {already.created_by})",
                "move or delete that box instead",
            )
        row = _store_call(
            store.draw_box,
            s,
            media_id,
            det.x,
            det.y,
            det.width,
            det.height,
            by=user,
            category=det.category,
            frame=det.frame,
            detection_id=detection_id,
        )
        return _finish(project, s, media_id, row.id)


def _live_box(s: Session, box_id: int) -> ReviewedBox:
    """The reviewed box ``box_id`` with its media locked; 409 if it was changed meanwhile."""
    media_id = s.scalar(select(ReviewedBox.media_id).where(ReviewedBox.id == box_id))
    if media_id is None:
        raise NotFoundError(f"reviewed box {box_id} not found")
    s.rollback()  # the lock comes first, then a fresh read of the row
    _lock_media(s, media_id)
    row = s.get(ReviewedBox, box_id)
    if row.retracted_utc is not None:
        raise ConflictError(
            f"reviewed box {box_id} was changed by {row.retracted_by or '?'} at "
            f"{row.retracted_utc:%Y-%m-%d %H:%M:%S} UTC after you loaded it; "
            "reload to see the boxes now"
        )
    if row.x is None:
        raise BadInputError(
            f"reviewed box {box_id}",
            f"is a '{box_dict(row)['kind']}' mark, not a box",
            "draw a box instead",
        )
    return row


def move(
    project: Project,
    box_id: int,
    box: tuple[float, float, float, float],
    *,
    category: str | None,
    user: str,
) -> dict[str, Any]:
    """Move or resize a box: its row is retracted, a new row holds the new place."""
    with project.session() as s:
        old = _live_box(s, box_id)
        row = _store_call(store.move_box, s, box_id, *box, by=user, category=category)
        return _finish(project, s, old.media_id, row.id)


def delete(project: Project, box_id: int, *, user: str) -> dict[str, Any]:
    """Delete a box (its row stays, retracted, with who and when)."""
    with project.session() as s:
        old = _live_box(s, box_id)
        store.retract_box(s, box_id, by=user)
        return _finish(project, s, old.media_id, None)


def no_animal(
    project: Project, media_id: int, *, frame: int, seen: Iterable[int], user: str
) -> dict[str, Any]:
    """ "No animal here": the frame's boxes are retracted and a ``blank`` row added."""
    with project.session() as s:
        m = _lock_media(s, media_id)
        _check_frame(m, frame)
        _check_seen(s, media_id, frame, seen)
        rows = store.current_boxes(s, media_id, frame)
        if len(rows) == 1 and rows[0].category == "blank":
            return _finish(project, s, media_id, None)  # said already: nothing new
        row = store.mark_no_animal(s, media_id, by=user, frame=frame)
        return _finish(project, s, media_id, row.id)


def animal_here(
    project: Project, media_id: int, *, frame: int, seen: Iterable[int], user: str
) -> dict[str, Any]:
    """ "There is an animal here" (no box): for frames the detector set aside as blank.

    The sequence then no longer counts as blank in the review grid.
    ``changed`` is None when the frame already has an animal box or mark.
    """
    with project.session() as s:
        m = _lock_media(s, media_id)
        _check_frame(m, frame)
        _check_seen(s, media_id, frame, seen)
        row = store.mark_animal_present(s, media_id, by=user, frame=frame)
        return _finish(project, s, media_id, row.id if row is not None else None)
