"""Annotations: one animal in one image, with flank side and quality."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
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
            # Columns irbis does not read (date, time, notes...) travel along:
            # the simulated review replays encounters in date/time order.
            extra = {
                str(k): (v or "").strip()
                for k, v in row.items()
                if k is not None and k not in _KNOWN_COLUMNS and (v or "").strip()
            }
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
                    extra=extra,
                )
            )
    return out


_KNOWN_COLUMNS = frozenset(
    [
        "path",
        "individual_id",
        "side",
        "encounter",
        "station",
        "camera",
        "mask",
        "role",
        "box_x",
        "box_y",
        "box_w",
        "box_h",
    ]
)


def read_boxes(path: str | Path) -> dict[str, tuple[float, float, float, float]]:
    """Read a ``boxes.csv`` of animal boxes drawn as fractions of the frame.

    Columns ``file,x_min,y_min,x_max,y_max`` (more columns are ignored); ``file``
    is the image's file name. Coordinates are fractions (0-1) of the full frame.

    Returns
    -------
    dict
        File name -> ``(x_min, y_min, x_max, y_max)`` fractions. A file listed
        twice keeps the union of its boxes (one animal per frame is assumed).

    Raises
    ------
    IrbisError
        On a missing column or a row whose numbers are not a box inside the frame.
    """
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise IrbisError(f"{path}: cannot open ({exc})") from exc
    need = ("file", "x_min", "y_min", "x_max", "y_max")
    out: dict[str, tuple[float, float, float, float]] = {}
    with fh:
        reader = csv.DictReader(fh)
        if not set(need) <= set(reader.fieldnames or []):
            raise IrbisError(f"{path}: needs columns {','.join(need)}; fix the header")
        for n, row in enumerate(reader, start=2):
            name = Path((row.get("file") or "").strip()).name
            try:
                x0, y0, x1, y1 = (float((row.get(k) or "").strip()) for k in need[1:])
            except ValueError:
                raise IrbisError(
                    f"{path}:{n}: x_min,y_min,x_max,y_max must be numbers (fractions of the frame)"
                ) from None
            if not (name and -0.01 <= x0 < x1 <= 1.01 and -0.01 <= y0 < y1 <= 1.01):
                raise IrbisError(
                    f"{path}:{n}: not a box inside the frame (need a file name and "
                    "0 <= x_min < x_max <= 1, 0 <= y_min < y_max <= 1)"
                )
            if name in out:
                a = out[name]
                x0, y0, x1, y1 = min(a[0], x0), min(a[1], y0), max(a[2], x1), max(a[3], y1)
            out[name] = (x0, y0, x1, y1)
    return out


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file as decoded (EXIF rotation applied), header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            # Orientations 5-8 turn the picture a quarter: the decoded frame is h x w.
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
    except (OSError, UnidentifiedImageError) as exc:
        raise IrbisError(f"{path}: cannot read the image size ({exc})") from exc
    return int(w), int(h)


def attach_boxes(
    anns: list[Annotation], boxes: dict[str, tuple[float, float, float, float]]
) -> tuple[list[Annotation], int]:
    """Annotations with the box of their file (matched by file name) in pixels.

    Returns
    -------
    annotations, matched
        New annotations (boxes replaced where the file has one, others as
        they were) and how many got a box.

    Raises
    ------
    IrbisError
        When no annotation's file is in ``boxes`` (a wrong boxes file).
    """
    out: list[Annotation] = []
    matched = 0
    for a in anns:
        frac = boxes.get(Path(str(a.image)).name)
        if frac is None:
            out.append(a)
            continue
        w, h = image_size(str(a.image))
        x0, y0 = max(0.0, frac[0]) * w, max(0.0, frac[1]) * h
        x1, y1 = min(1.0, frac[2]) * w, min(1.0, frac[3]) * h
        out.append(replace(a, box=(x0, y0, x1 - x0, y1 - y0)))
        matched += 1
    if anns and not matched:
        raise IrbisError(
            "no image of the labels has a box in the boxes file (matched by file name); "
            "check that both describe the same images"
        )
    return out, matched
