"""Media files for the browser: originals from the blob store and cached thumbnails.

Thumbnails are JPEGs in ``PROJECT/thumbs/`` named by the original's sha256 and
the size, written to a temporary name and renamed into place so two requests
for the same thumbnail never see half a file. (``tmp/`` is not used because
ingest empties it.)

What is served is checked, not trusted: a media row may come from an imported
package whose paths and MIME types someone else wrote. A file is served only
from inside the project's blob store or from the absolute path it was ingested
by reference from, and only when its first bytes say it is a photo or video;
the ``Content-Type`` sent is the one the bytes say, never the stored one (an
HTML or SVG file sent from the app's origin could run script there).

Who asks changes what is sent (:func:`original_for`): a user without precise
locations gets the file without GPS, XMP, comments or location atoms
(:mod:`irbis.store.scrub`, pixels untouched); a viewer gets every person
blurred, in originals and thumbnails (:func:`person_regions`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.store.integrity import verify_original
from irbis.store.project import Project
from irbis.store.schema import DetectionBox, Media, MediaDetection, Observation, ReviewedBox
from irbis.web.auth import WebUser
from irbis.web.errors import ForbiddenError, NotFoundError, UnreadableMediaError, UnsafeFileError

THUMB_SIZES = (160, 320, 640)

#: Headers sent with every original and thumbnail: no sniffing into another
#: type, and no script, style or fetch should the browser render it as a page.
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=86400",
}

# ISO base media files (MP4, MOV, 3GP) by their ``ftyp`` brand.
_FTYP_BRANDS = {b"qt  ": "video/quicktime"}


def sniff_mime(head: bytes) -> str | None:
    """The photo or video type that a file's first bytes show, or None.

    Parameters
    ----------
    head:
        At least the first 16 bytes of the file.

    Returns
    -------
    str or None
        A MIME type of a raster image or a video container; None for anything
        else (HTML, SVG, text, archives, unknown).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        return _FTYP_BRANDS.get(brand, "video/mp4")
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "video/quicktime"  # old QuickTime files without ``ftyp``
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "video/mpeg"
    return None


def _safe_path(project: Project, m: Media) -> Path:
    """The original of ``m`` where irbis itself put or found it, or NotFoundError.

    ``copy``: a file inside the blob store (no ``..`` or link leads out of it);
    ``reference``: the absolute path of a regular file recorded at ingest.
    """
    where = f"media {m.id}"
    stored = m.stored_path or ""
    if m.storage == "copy":
        blobs = project.blob_dir.resolve()
        path = (blobs / stored).resolve()
        if not stored or not path.is_relative_to(blobs):
            raise NotFoundError(f"{where}: stored path {stored!r} is outside the blob store")
    elif m.storage == "reference":
        raw = Path(stored)
        if not stored or not raw.is_absolute() or ".." in raw.parts:
            raise NotFoundError(
                f"{where}: no local file was ingested for it (stored path {stored!r}); "
                "re-import the package with its media files"
            )
        path = raw
    else:
        raise NotFoundError(f"{where}: unknown storage {m.storage!r}")
    if not path.is_file():
        raise NotFoundError(
            f"{where}: original missing at {path} (was the card or blob folder moved?)"
        )
    return path


def _checked_source(project: Project, m: Media) -> tuple[Path, str]:
    """(path, sniffed MIME) of a photo or video original, or an error saying why not."""
    if (m.mediatype or "") not in ("image", "video") or not (m.mime or "").startswith(
        ("image/", "video/")
    ):
        raise UnsafeFileError(
            f"media {m.id}: stored type {m.mime!r} is not a photo or video; not served"
        )
    path = _safe_path(project, m)
    if m.storage == "reference" and not verify_original(path, m.sha256):
        # Outside the project anyone with the folder can replace it: serve only what was ingested.
        raise UnsafeFileError(
            f"media {m.id}: the original at {path} is not the file ingested (its sha256 "
            "differs: replaced or edited since); not served (irbis check PROJECT lists such files)"
        )
    with path.open("rb") as fh:
        head = fh.read(32)
    sniffed = sniff_mime(head)
    if sniffed is None or sniffed.split("/")[0] != m.mediatype:
        raise UnsafeFileError(
            f"media {m.id}: {path.name} is not a {m.mediatype} file by its content; not served "
            "(check the file, or re-ingest it)"
        )
    return path, sniffed


def _load(project: Project, media_id: int) -> Media:
    with project.session() as s:
        m = s.scalar(select(Media).where(Media.id == media_id))
        if m is None:
            raise NotFoundError(f"media {media_id} not found")
        s.expunge(m)
        return m


def thumbs_dir(project: Project) -> Path:
    return project.root / "thumbs"


def media_file(project: Project, media_id: int) -> tuple[Path, str]:
    """Path and MIME type (as its bytes say) of the original of ``media_id``.

    Raises
    ------
    NotFoundError
        No such media, or its original is missing or lies outside where irbis keeps it.
    UnsafeFileError
        The file is not a photo or video (by its stored type or its first bytes).
    """
    return _checked_source(project, _load(project, media_id))


#: A person box: ``(x, y, width, height)`` as fractions of the frame.
Region = tuple[float, float, float, float]
#: The whole frame: a person is said to be there but no box was drawn.
WHOLE_FRAME: Region = (0.0, 0.0, 1.0, 1.0)


def sees_people(user: WebUser) -> bool:
    """Whether ``user`` sees people in photos unblurred (reviewers and admins).

    Reviewers judge person detections, so they need the picture; a viewer
    only reads the census and gets every person blurred.
    """
    return user.can("reviewer")


def person_regions(project: Project, media_id: int) -> list[Region]:
    """Where people are in a media file: every person box, machine's or a person's.

    Every detector configuration's ``person`` boxes and the current reviewed
    ``person`` boxes of any frame count (a video's thumbnail is its first frame,
    and a person walks). A file that a person labelled ``human``, or that a
    detector judged ``person``, without any box gets the whole frame.
    """
    with project.session() as s:
        rows = s.execute(
            select(DetectionBox.x, DetectionBox.y, DetectionBox.width, DetectionBox.height).where(
                DetectionBox.media_id == media_id, DetectionBox.category == "person"
            )
        ).all()
        rows += s.execute(
            select(ReviewedBox.x, ReviewedBox.y, ReviewedBox.width, ReviewedBox.height).where(
                ReviewedBox.media_id == media_id,
                ReviewedBox.category == "person",
                ReviewedBox.retracted_utc.is_(None),
                ReviewedBox.x.is_not(None),
            )
        ).all()
        if rows:
            return sorted({(r[0], r[1], r[2], r[3]) for r in rows})
        said = s.scalar(
            select(Observation.id)
            .where(
                Observation.media_id == media_id,
                Observation.retracted_utc.is_(None),
                Observation.observation_type == "human",
            )
            .limit(1)
        ) or s.scalar(
            select(MediaDetection.id)
            .where(MediaDetection.media_id == media_id, MediaDetection.verdict == "person")
            .limit(1)
        )
    return [WHOLE_FRAME] if said else []


def _blurred(path: Path, regions: list[Region], media_id: int, suffix: str) -> bytes:
    """The photo at ``path`` with ``regions`` blurred, re-encoded (format by ``suffix``)."""
    from irbis.pipeline.media_export import write_blurred_copy

    fd, tmp = tempfile.mkstemp(suffix=suffix)
    os.close(fd)
    try:
        write_blurred_copy(path, regions, tmp)
        return Path(tmp).read_bytes()
    except BadInputError as e:
        raise UnreadableMediaError(
            f"media {media_id}: {path.name} cannot be decoded to blur the people in it ({e})"
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _reencoded_without_metadata(data: bytes, media_id: int) -> tuple[bytes, str]:
    """A photo irbis cannot clean byte by byte, re-encoded with no metadata at all.

    JPEGs keep their quantisation tables (``quality="keep"``); any other
    format becomes a PNG (lossless). Returns ``(bytes, mime)``.
    """
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.info.clear()  # comments and text would otherwise be written back
            buf = io.BytesIO()
            if im.format == "JPEG":
                im.save(buf, "JPEG", quality="keep")
                return buf.getvalue(), "image/jpeg"
            im.load()
            frame = im.copy() if im.mode in ("RGB", "RGBA", "L", "LA", "P") else im.convert("RGB")
            frame.info = {}  # a plain copy of the pixels: no tags, text or comment
            frame.save(buf, "PNG")
            return buf.getvalue(), "image/png"
    except Exception as e:  # Pillow raises many types for damaged files
        raise UnreadableMediaError(
            f"media {media_id}: the file cannot be read to remove its location ({e}); "
            "check the file"
        ) from None


def original_for(
    project: Project, media_id: int, *, precise: bool, people: bool
) -> tuple[Path, str, bytes | None]:
    """The original of ``media_id`` as a user with these rights may download it.

    Parameters
    ----------
    precise:
        The user may see precise locations: the file keeps its metadata.
        Otherwise GPS, XMP, comments and location atoms are removed
        (:func:`irbis.store.scrub.scrub`, pixels and samples untouched); a
        photo in a format irbis cannot clean byte by byte is re-encoded
        without metadata, such a video is refused.
    people:
        The user may see people (:func:`sees_people`). Otherwise every person
        region (:func:`person_regions`) of a photo is blurred (re-encoded), and
        a video showing a person is refused (its blurred thumbnail is served).

    Returns
    -------
    tuple
        ``(path, mime, data)``: ``data`` is the file to send, or None when the
        file at ``path`` may be sent unchanged.

    Raises
    ------
    ForbiddenError
        A video this user may not have (a person in it, or location data
        irbis cannot remove).
    """
    from irbis.store.scrub import ScrubError, scrub

    path, mime = media_file(project, media_id)
    data: bytes | None = None
    regions = [] if people else person_regions(project, media_id)
    if regions:
        if not mime.startswith("image/"):
            raise ForbiddenError(
                f"media {media_id}: a video showing a person is shown to reviewers and admins "
                "only; its thumbnail is blurred"
            )
        suffix = {"image/png": ".png"}.get(mime, ".jpg")
        data = _blurred(path, regions, media_id, suffix)
        mime = "image/png" if suffix == ".png" else "image/jpeg"
    if precise:
        return path, mime, data
    raw = path.read_bytes() if data is None else data
    try:
        cleaned = scrub(raw)
    except ScrubError as e:
        if not mime.startswith("image/"):
            raise ForbiddenError(
                f"media {media_id}: {path.name}: {e}; this video is served only to users "
                "cleared for precise locations"
            ) from None
        cleaned, mime = _reencoded_without_metadata(raw, media_id)
    if data is None and cleaned == raw:
        return path, mime, None
    return path, mime, cleaned


def original_without_location(project: Project, media_id: int) -> tuple[Path, str, bytes | None]:
    """The original for a user who may not see precise locations (people as they are).

    See :func:`original_for`.
    """
    return original_for(project, media_id, precise=False, people=True)


def _first_frame(path: Path):
    import av  # only videos need it

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise ValueError("no video frame")


def thumbnail(project: Project, media_id: int, size: int = 320, *, people: bool = True) -> Path:
    """A JPEG of at most ``size`` pixels on its long side, made once and cached.

    Thumbnails carry no metadata (no Exif, XMP or comment is written). With
    ``people=False`` the person regions (:func:`person_regions`) are blurred:
    a separate cached file named by the regions, so a box drawn later makes a
    new one.

    Raises
    ------
    NotFoundError, UnsafeFileError
        As :func:`media_file`.
    UnreadableMediaError
        The original cannot be decoded (damaged or truncated file).
    """
    if size not in THUMB_SIZES:
        size = min(THUMB_SIZES, key=lambda s: abs(s - size))
    if not people:
        regions = person_regions(project, media_id)
        if regions:
            return _blurred_thumbnail(project, media_id, size, regions)
    m = _load(project, media_id)
    # "_n": made without the original's metadata (older thumbnails kept its JPEG comment).
    out = thumbs_dir(project) / m.sha256[:2] / f"{m.sha256}_{size}_n.jpg"
    if out.exists():
        return out
    src, _ = _checked_source(project, m)
    from PIL import Image

    try:
        if m.mediatype == "video":
            img = _first_frame(src)
        else:
            with Image.open(src) as im:
                im.draft("RGB", (size, size))  # JPEG: decode at reduced scale, much faster
                img = im.convert("RGB")
    except Exception as e:  # Pillow and PyAV raise many types for damaged files
        raise UnreadableMediaError(
            f"media {media_id}: {src.name} cannot be decoded ({type(e).__name__}: {e}); "
            "the file may be damaged: copy it off the card again"
        ) from None
    img.thumbnail((size, size))
    img.info = {}  # Pillow writes a JPEG comment it finds here back into the thumbnail
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


def _blurred_thumbnail(project: Project, media_id: int, size: int, regions: list[Region]) -> Path:
    """The thumbnail with ``regions`` blurred, cached under a name made of the regions."""
    import hashlib

    from irbis.pipeline.media_export import write_blurred_copy

    plain = thumbnail(project, media_id, size)
    key = hashlib.sha256(repr(regions).encode()).hexdigest()[:16]
    out = plain.with_name(f"{plain.stem}_blur{key}.jpg")
    if not out.exists():
        write_blurred_copy(plain, regions, out)  # written to a temporary name, then renamed
    return out
