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
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import select

from irbis.store.integrity import verify_original
from irbis.store.project import Project
from irbis.store.schema import Media
from irbis.web.errors import NotFoundError, UnreadableMediaError, UnsafeFileError

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


# JPEG APP1 payloads that can carry a location: Exif (its GPS IFD) and XMP
# (exif:GPSLatitude ...; the extended-XMP segments continue the same packet).
_EXIF = b"Exif\x00\x00"
_XMP = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769


def _exif_without_gps(payload: bytes) -> bytes | None:
    """An Exif APP1 payload without the GPS IFD; None to drop the segment entirely."""
    from PIL import Image

    exif = Image.Exif()
    try:
        exif.load(payload)
        if _GPS_IFD not in exif:
            return payload
        del exif[_GPS_IFD]
        exif.get_ifd(_EXIF_IFD)  # loaded, so that it is written back
        out = exif.tobytes()
    except Exception:  # an Exif block Pillow cannot read could hide anything: drop it
        return None
    return out if len(out) + 2 <= 0xFFFF else None


def _jpeg_without_location(data: bytes) -> bytes | None:
    """``data`` (a JPEG) with the Exif GPS IFD and XMP removed, the image bytes untouched.

    Returns None when the header segments cannot be walked (the caller then
    re-encodes); the input unchanged when it carries no location.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    out = [data[:2]]
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: the rest is pixels
            out.append(data[i:])
            return b"".join(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append(data[i : i + 2])
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > len(data):
            return None
        seg = data[i : i + 2 + length]
        payload = seg[4:]
        if marker == 0xE1 and payload.startswith(_EXIF):
            kept = _exif_without_gps(payload)
            seg = b"" if kept is None else b"\xff\xe1" + (len(kept) + 2).to_bytes(2, "big") + kept
        elif marker == 0xE1 and payload.startswith(_XMP):
            seg = b""
        out.append(seg)
        i += 2 + length
    return None


def _reencoded_without_metadata(path: Path, media_id: int) -> bytes:
    """The JPEG re-encoded with its own quantisation tables and no Exif or XMP."""
    import io

    from PIL import Image

    try:
        with Image.open(path) as im:
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality="keep")
    except Exception as e:
        raise UnreadableMediaError(
            f"media {media_id}: {path.name} cannot be read to remove its location ({e}); "
            "check the file"
        ) from None
    return buf.getvalue()


def original_without_location(project: Project, media_id: int) -> tuple[Path, str, bytes | None]:
    """The original for a user who may not see precise locations.

    JPEGs lose the GPS block of their Exif and any XMP packet (the pixels are
    copied byte for byte); other files (PNG, video) are served as they are.

    Returns
    -------
    tuple
        ``(path, mime, data)``: ``data`` is the cleaned file, or None when the
        file at ``path`` may be sent unchanged.
    """
    path, mime = media_file(project, media_id)
    if mime != "image/jpeg":
        return path, mime, None
    data = path.read_bytes()
    cleaned = _jpeg_without_location(data)
    if cleaned is None:
        cleaned = _reencoded_without_metadata(path, media_id)
    return path, mime, (None if cleaned == data else cleaned)


def _first_frame(path: Path):
    import av  # only videos need it

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise ValueError("no video frame")


def thumbnail(project: Project, media_id: int, size: int = 320) -> Path:
    """A JPEG of at most ``size`` pixels on its long side, made once and cached.

    Raises
    ------
    NotFoundError, UnsafeFileError
        As :func:`media_file`.
    UnreadableMediaError
        The original cannot be decoded (damaged or truncated file).
    """
    if size not in THUMB_SIZES:
        size = min(THUMB_SIZES, key=lambda s: abs(s - size))
    m = _load(project, media_id)
    out = thumbs_dir(project) / m.sha256[:2] / f"{m.sha256}_{size}.jpg"
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
