"""Annotations: one animal in one image, with flank side and quality."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from irbis.core.errors import IrbisError


class Side(StrEnum):
    """Which flank the crop shows. Left and right flanks carry different patterns."""

    LEFT = "left"
    RIGHT = "right"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: str | Side | None) -> Side:
        """``left``/``l``/``right``/``r``; anything else (blank, ``both``…) is unknown."""
        if isinstance(value, Side):
            return value
        v = (value or "").strip().lower()
        if v in ("left", "l"):
            return cls.LEFT
        if v in ("right", "r"):
            return cls.RIGHT
        return cls.UNKNOWN

    def compatible(self, other: Side) -> bool:
        """False only when both sides are known and differ."""
        return self is Side.UNKNOWN or other is Side.UNKNOWN or self is other


@dataclass(slots=True)
class Annotation:
    """One animal crop to match.

    Attributes
    ----------
    id:
        Caller's identifier (a detection id, a file path…); unique in a catalogue.
    image:
        Path of the frame (or anything :func:`irbis.reid.preprocess.read_image` takes).
    box:
        Crop ``(x, y, w, h)`` in original pixels, ``None`` = whole frame.
    side:
        Flank side.
    quality:
        0–1, caller's judgement (blur, occlusion); 1 when unknown.
    individual:
        Known individual, or ``None`` for an unidentified animal.
    encounter:
        Burst / encounter key: frames of one encounter are never used as
        evidence for each other in evaluation.
    mask:
        Optional path or array of a rough animal mask.
    role:
        ``gallery``/``query``/``""`` for evaluation.
    camera:
        Camera key (station/camera). A fixed camera sees the same rocks in every
        frame, so matches at the same pixel position between two frames of one
        camera are background, not rosettes; ``None`` = unknown (treated as
        possibly the same camera).
    station:
        Station key. Two cameras of one station can see the same rocks, and a
        cat's revisits to a station share its scene, so the ``station``
        evaluation protocol never matches a query against its own station.
    """

    id: str
    image: object
    box: tuple[float, float, float, float] | None = None
    side: Side = Side.UNKNOWN
    quality: float = 1.0
    individual: str | None = None
    encounter: str | None = None
    mask: object | None = None
    role: str = ""
    camera: str | None = None
    station: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def read_labels(labels: str | Path, images: str | Path | None = None) -> list[Annotation]:
    """Read a ``labels.csv`` (``path,individual_id`` + optional columns, see below).

    Relative paths are resolved against ``images`` (default: the CSV's folder).
    A row without ``encounter`` is its own encounter. Optional ``box_x, box_y,
    box_w, box_h`` give the animal crop in original pixels (from a detector or
    drawn by a person); empty cells mean the whole frame. Optional ``side``
    (left/right), ``role`` (gallery/query), ``mask`` (path of an animal mask),
    ``station`` and ``camera`` (the camera key, and the ``station`` protocol).

    Raises
    ------
    IrbisError
        When a required column is missing or a row is malformed.
    """
    labels = Path(labels)
    root = Path(images) if images is not None else labels.parent
    try:
        fh = labels.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise IrbisError(f"{labels}: cannot open ({exc})") from exc
    with fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        if not {"path", "individual_id"} <= cols:
            raise IrbisError(
                f"{labels}: needs columns path,individual_id (has {sorted(cols)}); fix the header"
            )
        out: list[Annotation] = []
        for n, row in enumerate(reader, start=2):
            p = (row.get("path") or "").strip()
            if not p:
                raise IrbisError(f"{labels}:{n}: empty path; fill it or delete the row")
            path = Path(p) if Path(p).is_absolute() else root / p
            mask = (row.get("mask") or "").strip()
            role = (row.get("role") or "").strip().lower()
            if role not in ("", "gallery", "query"):
                raise IrbisError(f"{labels}:{n}: role {role!r} is not gallery or query")
            ind = (row.get("individual_id") or "").strip() or None
            cells = [(row.get(k) or "").strip() for k in ("box_x", "box_y", "box_w", "box_h")]
            box = None
            if any(cells):
                try:
                    bx, by, bw, bh = (float(c) for c in cells)
                except ValueError:
                    raise IrbisError(
                        f"{labels}:{n}: box_x/box_y/box_w/box_h must all be numbers or all empty"
                    ) from None
                if bw <= 0 or bh <= 0:
                    raise IrbisError(f"{labels}:{n}: box width and height must be positive")
                box = (bx, by, bw, bh)
            station = (row.get("station") or "").strip()
            camera = (row.get("camera") or "").strip()
            out.append(
                Annotation(
                    id=p,
                    image=path,
                    box=box,
                    side=Side.parse(row.get("side")),
                    individual=ind,
                    encounter=(row.get("encounter") or "").strip() or f"row{n}",
                    mask=(Path(mask) if Path(mask).is_absolute() else root / mask)
                    if mask
                    else None,
                    role=role,
                    camera=f"{station}/{camera}" if station or camera else None,
                    station=station or None,
                )
            )
    return out
