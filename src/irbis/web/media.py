"""Media files for the browser: originals from the blob store and cached thumbnails.

Thumbnails are JPEGs in ``PROJECT/thumbs/`` named by the original's sha256 and
the size, written to a temporary name and renamed into place so two requests
for the same thumbnail never see half a file. (``tmp/`` is not used because
ingest empties it.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import select

from irbis.pipeline.detect_stage import media_path
from irbis.store.project import Project
from irbis.store.schema import Media
from irbis.web.errors import NotFoundError

THUMB_SIZES = (160, 320, 640)


def thumbs_dir(project: Project) -> Path:
    return project.root / "thumbs"


def media_file(project: Project, media_id: int) -> tuple[Path, str]:
    """Path and MIME type of the original of ``media_id``.

    Raises
    ------
    NotFoundError
        No such media, or its original is missing from disk.
    """
    with project.session() as s:
        m = s.scalar(select(Media).where(Media.id == media_id))
        if m is None:
            raise NotFoundError(f"media {media_id} not found")
        path = media_path(project, m)
    if not path.exists():
        raise NotFoundError(
            f"media {media_id}: original missing at {path} (was the card or blob folder moved?)"
        )
    return path, m.mime


def _first_frame(path: Path):
    import av  # only videos need it

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise ValueError("no video frame")


def thumbnail(project: Project, media_id: int, size: int = 320) -> Path:
    """A JPEG of at most ``size`` pixels on its long side, made once and cached."""
    if size not in THUMB_SIZES:
        size = min(THUMB_SIZES, key=lambda s: abs(s - size))
    with project.session() as s:
        m = s.scalar(select(Media).where(Media.id == media_id))
        if m is None:
            raise NotFoundError(f"media {media_id} not found")
        sha, mediatype = m.sha256, m.mediatype
        src = media_path(project, m)
    out = thumbs_dir(project) / sha[:2] / f"{sha}_{size}.jpg"
    if out.exists():
        return out
    if not src.exists():
        raise NotFoundError(f"media {media_id}: original missing at {src}")
    from PIL import Image

    if mediatype == "video":
        img = _first_frame(src)
    else:
        with Image.open(src) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at reduced scale, much faster
            img = im.convert("RGB")
    img.thumbnail((size, size))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, "JPEG", quality=82)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
