"""Reviewed boxes: what people say is (or is not) in a frame.

A person's box is stored beside the machine's (``detections``), never over
it: drawing adds a row, moving retracts the old row and adds a new one,
deleting retracts. "No animal here" is a ``blank`` row without coordinates.
The current state of a frame is its rows with no ``retracted_utc``; the
history is every row. These rows are what ``irbis models train detector``
learns from and what detection quality is measured against.

Coordinates are fractions of the frame, top-left origin (Camtrap DP's bbox).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from irbis.core.errors import IrbisError
from irbis.store.schema import Media, ReviewedBox

__all__ = [
    "BOX_CATEGORIES",
    "BoxImport",
    "FrameTruth",
    "current_boxes",
    "draw_box",
    "frame_truth",
    "import_boxes_csv",
    "mark_animal_present",
    "mark_no_animal",
    "move_box",
    "retract_box",
]

#: Categories a reviewed box can have (``blank`` only without coordinates).
BOX_CATEGORIES = ("animal", "person", "vehicle")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """Clip a box to the frame; refuse one that is empty or wholly outside."""
    vals = [float(v) for v in (x, y, w, h)]
    if any(v != v for v in vals):  # NaN
        raise IrbisError("box coordinates must be numbers (fractions of the frame)")
    x0, y0 = max(0.0, vals[0]), max(0.0, vals[1])
    x1, y1 = min(1.0, vals[0] + vals[2]), min(1.0, vals[1] + vals[3])
    if x1 - x0 <= 1e-4 or y1 - y0 <= 1e-4:
        raise IrbisError(
            f"box ({x:.3f}, {y:.3f}, {w:.3f}, {h:.3f}) is empty or outside the frame: "
            "give x, y, width, height as fractions of the frame (0..1)"
        )
    return x0, y0, x1 - x0, y1 - y0


def _check_category(category: str) -> str:
    if category not in BOX_CATEGORIES:
        raise IrbisError(f"box category {category!r} is not one of {', '.join(BOX_CATEGORIES)}")
    return category


def current_boxes(session: Session, media_id: int, frame: int | None = None) -> list[ReviewedBox]:
    """The rows in force for a media file (one frame, or all frames), oldest first."""
    q = select(ReviewedBox).where(
        ReviewedBox.media_id == media_id, ReviewedBox.retracted_utc.is_(None)
    )
    if frame is not None:
        q = q.where(ReviewedBox.frame == frame)
    return list(session.scalars(q.order_by(ReviewedBox.id)))


def _retract(rows: Iterable[ReviewedBox], by: str, now: datetime) -> None:
    for r in rows:
        r.retracted_utc = now
        r.retracted_by = by


def draw_box(
    session: Session,
    media_id: int,
    x: float,
    y: float,
    width: float,
    height: float,
    *,
    by: str,
    category: str = "animal",
    frame: int = 0,
    detection_id: int | None = None,
    source: str = "human",
) -> ReviewedBox:
    """Add a person's box to a frame (a standing "no animal here" is retracted).

    Returns the new row (flushed, with its id). The caller commits.
    """
    x, y, width, height = _check_box(x, y, width, height)
    now = _now()
    _retract(
        (
            r
            for r in current_boxes(session, media_id, frame)
            if r.x is None  # "blank" or "animal here, no box": the box says more
        ),
        by,
        now,
    )
    row = ReviewedBox(
        media_id=media_id,
        frame=frame,
        category=_check_category(category),
        x=x,
        y=y,
        width=width,
        height=height,
        detection_id=detection_id,
        source=source,
        created_by=by,
        created_utc=now,
    )
    session.add(row)
    session.flush()
    return row


def _live(session: Session, box_id: int) -> ReviewedBox:
    row = session.get(ReviewedBox, box_id)
    if row is None or row.retracted_utc is not None:
        raise IrbisError(f"reviewed box {box_id} does not exist or was already changed")
    return row


def move_box(
    session: Session,
    box_id: int,
    x: float,
    y: float,
    width: float,
    height: float,
    *,
    by: str,
    category: str | None = None,
) -> ReviewedBox:
    """Move or resize a box: the old row is retracted, a new row holds the new place."""
    old = _live(session, box_id)
    if old.x is None:
        raise IrbisError(f"reviewed box {box_id} has no coordinates to move")
    x, y, width, height = _check_box(x, y, width, height)
    now = _now()
    _retract([old], by, now)
    row = ReviewedBox(
        media_id=old.media_id,
        frame=old.frame,
        category=_check_category(category or old.category),
        x=x,
        y=y,
        width=width,
        height=height,
        detection_id=old.detection_id,
        source="human",
        created_by=by,
        created_utc=now,
    )
    session.add(row)
    session.flush()
    return row


def retract_box(session: Session, box_id: int, *, by: str) -> None:
    """Delete a box (its row stays, retracted)."""
    _retract([_live(session, box_id)], by, _now())


def mark_no_animal(session: Session, media_id: int, *, by: str, frame: int = 0) -> ReviewedBox:
    """A person confirms the frame holds no animal: its boxes are retracted, a blank row added."""
    now = _now()
    _retract(current_boxes(session, media_id, frame), by, now)
    row = ReviewedBox(
        media_id=media_id, frame=frame, category="blank", created_by=by, created_utc=now
    )
    session.add(row)
    session.flush()
    return row


def mark_animal_present(
    session: Session, media_id: int, *, by: str, frame: int = 0
) -> ReviewedBox | None:
    """ "There is an animal here" without a box (spot-checking frames set aside as blank).

    A standing "no animal" is retracted. Returns None when the frame already
    has an animal box or mark (nothing to add).
    """
    rows = current_boxes(session, media_id, frame)
    if any(r.category == "animal" for r in rows):
        return None
    now = _now()
    _retract((r for r in rows if r.category == "blank"), by, now)
    row = ReviewedBox(
        media_id=media_id, frame=frame, category="animal", created_by=by, created_utc=now
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class FrameTruth:
    """What people say of one frame: boxes (fractions, x/y/w/h) and whether it is reviewed.

    ``boxes`` empty with ``blank`` true: a confirmed empty frame. ``animal_unboxed``:
    someone said an animal is there without drawing it (not usable as a box target).
    """

    media_id: int
    frame: int
    boxes: tuple[tuple[str, float, float, float, float], ...]
    blank: bool
    animal_unboxed: bool


def frame_truth(session: Session, media_ids: Iterable[int] | None = None) -> list[FrameTruth]:
    """Reviewed frames (any current row) with their boxes, ordered by media and frame."""
    q = select(ReviewedBox).where(ReviewedBox.retracted_utc.is_(None))
    if media_ids is not None:
        ids = list(media_ids)
        if not ids:
            return []
        q = q.where(ReviewedBox.media_id.in_(ids))
    by_frame: dict[tuple[int, int], list[ReviewedBox]] = {}
    for r in session.scalars(q.order_by(ReviewedBox.media_id, ReviewedBox.frame, ReviewedBox.id)):
        by_frame.setdefault((r.media_id, r.frame), []).append(r)
    out = []
    for (mid, fr), rows in by_frame.items():
        boxes = tuple(
            (r.category, float(r.x), float(r.y), float(r.width), float(r.height))
            for r in rows
            if r.x is not None
        )
        out.append(
            FrameTruth(
                media_id=mid,
                frame=fr,
                boxes=boxes,
                blank=not boxes and any(r.category == "blank" for r in rows),
                animal_unboxed=not boxes and any(r.category == "animal" for r in rows),
            )
        )
    return out


@dataclass(frozen=True)
class BoxImport:
    """What :func:`import_boxes_csv` did."""

    added: int
    unchanged: int
    frames: int
    unmatched: tuple[str, ...]


_CORNER_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
_SIZE_COLUMNS = ("x", "y", "width", "height")


def _same_place(box: tuple[float, float, float, float] | None, row: ReviewedBox) -> bool:
    if box is None or row.x is None:
        return box is None and row.x is None
    have = (row.x, row.y, row.width, row.height)
    return max(abs(a - b) for a, b in zip(box, have, strict=True)) < 1e-4


def import_boxes_csv(
    session: Session, path: Path | str, *, by: str, source: str | None = None
) -> BoxImport:
    """Import boxes drawn elsewhere as reviewed boxes, matched to media by file name.

    The CSV has a ``file`` column (the photo's file name as ingested) and either
    ``x_min,y_min,x_max,y_max`` or ``x,y,width,height``, all fractions of the
    frame; an optional ``category`` (default ``animal``; ``blank`` with empty
    coordinates marks a frame with no animal). Rows already present (same
    media, category, coordinates to 1e-4) are not added again, so importing
    twice changes nothing. Every row is checked before anything is written.

    Raises
    ------
    IrbisError
        A missing column or a bad number, naming the file and row.
    """
    path = Path(path)
    source = source or path.name
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IrbisError(f"{path}: cannot read ({exc})") from exc
    if "file" not in cols:
        raise IrbisError(f"{path}: no 'file' column (the photo's file name)")
    if set(_CORNER_COLUMNS) <= cols:
        corners = True
    elif set(_SIZE_COLUMNS) <= cols:
        corners = False
    else:
        raise IrbisError(
            f"{path}: needs columns {','.join(_CORNER_COLUMNS)} or {','.join(_SIZE_COLUMNS)} "
            "(fractions of the frame)"
        )
    names = {r["file"] for r in rows}
    media_by_name: dict[str, int] = {}
    for mid, name in session.execute(select(Media.id, Media.file_name)):
        if name in names:
            media_by_name.setdefault(name, mid)
    parsed: list[tuple[int, str, tuple[float, float, float, float] | None]] = []
    unmatched: list[str] = []
    for lineno, r in enumerate(rows, start=2):
        cat = (r.get("category") or "animal").strip() or "animal"
        mid = media_by_name.get(r["file"])
        if mid is None:
            unmatched.append(r["file"])
            continue
        if cat == "blank":
            parsed.append((mid, cat, None))
            continue
        try:
            if corners:
                x0, y0, x1, y1 = (float(r[c]) for c in _CORNER_COLUMNS)
                box = _check_box(x0, y0, x1 - x0, y1 - y0)
            else:
                box = _check_box(*(float(r[c]) for c in _SIZE_COLUMNS))
            _check_category(cat)
        except (TypeError, ValueError, IrbisError) as exc:
            raise IrbisError(f"{path}, row {lineno} ({r['file']}): {exc}") from exc
        parsed.append((mid, cat, box))
    added = unchanged = 0
    now = _now()
    for mid, cat, box in parsed:
        existing = current_boxes(session, mid, 0)
        if any(e.category == cat and _same_place(box, e) for e in existing):
            unchanged += 1
            continue
        x, y, w, h = box if box is not None else (None, None, None, None)
        session.add(
            ReviewedBox(
                media_id=mid, frame=0, category=cat, x=x, y=y, width=w, height=h,
                source=source, created_by=by, created_utc=now,
            )
        )  # fmt: skip
        session.flush()
        added += 1
    return BoxImport(
        added=added,
        unchanged=unchanged,
        frames=len({p[0] for p in parsed}),
        unmatched=tuple(unmatched),
    )
