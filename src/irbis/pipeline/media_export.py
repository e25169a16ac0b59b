"""Copies of media for anything that leaves the project, with people blurred.

Camera traps photograph rangers, herders and poachers. Every export (Camtrap
DP media, report figures, the web app's image views) writes its images
through :func:`export_image` (a project's media file) or
:func:`write_blurred_copy` (any image path and its boxes): every ``person``
box that any detector configuration stored for the frame is blurred with
:func:`irbis.vision.privacy.blur_people`; a frame with no person box is copied
byte for byte, so the original stays verifiable by its sha256.

Boxes are the stored ones: fractions of the decoded frame, as Camtrap DP's
``bboxX/bboxY/bboxWidth/bboxHeight`` (:class:`irbis.store.schema.DetectionBox`).
A frame that no detector has looked at is exported as it is; the result says
so (``checked``), and a caller that must never publish an unchecked frame can
refuse it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.store.project import Project
from irbis.store.schema import DetectionBox, Media, MediaDetection
from irbis.vision.boxes import Detection
from irbis.vision.privacy import blur_people

__all__ = ["ExportedImage", "NormBox", "export_image", "person_boxes", "write_blurred_copy"]

#: A stored box: ``(x, y, width, height)`` as fractions of the frame.
NormBox = tuple[float, float, float, float]

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}


@dataclass(frozen=True)
class ExportedImage:
    """What :func:`export_image` / :func:`write_blurred_copy` wrote.

    Attributes
    ----------
    path
        The file written.
    blurred
        Number of person boxes blurred (0: the file is a byte copy of the original).
    checked
        Whether any detector result exists for the media file (always True for
        :func:`write_blurred_copy`, whose caller supplies the boxes).
    """

    path: Path
    blurred: int
    checked: bool = True


def write_blurred_copy(
    src: str | Path,
    person_boxes_norm: Iterable[NormBox],
    dest: str | Path,
    *,
    quality: int = 92,
) -> ExportedImage:
    """Write ``src`` to ``dest`` with the given person boxes blurred.

    Parameters
    ----------
    src
        An image file (JPEG, PNG, TIFF...). Never modified.
    person_boxes_norm
        ``(x, y, width, height)`` fractions of the frame, one per person
        (e.g. the ``DetectionBox`` rows of category ``person`` for this media
        file and frame 0).
    dest
        Output file, or an existing folder (the source's name is kept). Its
        format follows its suffix; written atomically (temporary file, rename).
    quality
        JPEG quality of a re-encoded frame.

    Returns
    -------
    ExportedImage

    Raises
    ------
    BadInputError
        ``src`` cannot be decoded as an image.
    """
    src, dest = Path(src), Path(dest)
    if dest.is_dir():
        dest = dest / src.name
    boxes = list(person_boxes_norm)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not boxes:
        _atomic(dest, lambda tmp: shutil.copyfile(src, tmp))
        return ExportedImage(dest, 0)
    try:
        with Image.open(src) as im:
            im.load()
            exif = im.info.get("exif")
            icc = im.info.get("icc_profile")
            frame = im.convert("RGB") if im.mode not in ("RGB", "L") else im.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInputError(str(src), f"cannot decode image ({exc})") from exc
    w, h = frame.size
    dets = [
        Detection(x * w, y * h, (x + bw) * w, (y + bh) * h, 1.0, "person", "export")
        for x, y, bw, bh in boxes
    ]
    out = blur_people(frame, dets)
    fmt = _FORMATS.get(dest.suffix.lower(), "JPEG")
    kwargs: dict[str, object] = {}
    if exif:
        kwargs["exif"] = exif
    if icc:
        kwargs["icc_profile"] = icc
    if fmt == "JPEG":
        kwargs["quality"] = quality
    _atomic(dest, lambda tmp: out.save(tmp, format=fmt, **kwargs))
    return ExportedImage(dest, len(dets))


def person_boxes(project: Project, media_id: int, *, frame: int = 0) -> tuple[list[NormBox], bool]:
    """Every stored ``person`` box of one media file's frame, over all detector configurations.

    Returns
    -------
    boxes, checked
        The boxes (fractions of the frame) and whether any detector result
        (even ``blank``) exists for the media file.
    """
    with project.session() as s:
        checked = (
            s.scalar(select(MediaDetection.id).where(MediaDetection.media_id == media_id).limit(1))
            is not None
        )
        rows = s.execute(
            select(DetectionBox.x, DetectionBox.y, DetectionBox.width, DetectionBox.height)
            .where(
                DetectionBox.media_id == media_id,
                DetectionBox.frame == frame,
                DetectionBox.category == "person",
            )
            .order_by(DetectionBox.id)
        ).all()
    return [(r.x, r.y, r.width, r.height) for r in rows], checked


def export_image(
    project: Project, media_id: int, dest: str | Path, *, quality: int = 92
) -> ExportedImage:
    """Write a project's photo to ``dest`` with every stored person box blurred.

    Parameters
    ----------
    project
        An open project.
    media_id
        ``media.id`` of a photo.
    dest
        Output file or existing folder (then the media's file name is used).
    quality
        JPEG quality when the frame must be re-encoded.

    Returns
    -------
    ExportedImage
        ``checked`` is False when no detector has looked at the photo yet.

    Raises
    ------
    BadInputError
        Unknown media id, a video, or a file that is gone or cannot be decoded.
    """
    from irbis.pipeline.detect_stage import media_path

    with project.session() as s:
        media = s.get(Media, media_id)
        if media is None:
            raise BadInputError(f"media {media_id}", "no such media in this project")
        if media.mediatype == "video":
            raise BadInputError(
                media.file_name, "is a video", "export its sampled frames, not the file"
            )
        src = media_path(project, media)
        name = media.file_name
    if not src.exists():
        raise BadInputError(
            name, f"file not found at {src}", "reconnect the card or re-ingest with copies"
        )
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / name
    boxes, checked = person_boxes(project, media_id)
    res = write_blurred_copy(src, boxes, dest, quality=quality)
    return ExportedImage(res.path, res.blurred, checked)


def _atomic(dest: Path, write: Callable[[Path], object]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
