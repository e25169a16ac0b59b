"""Read what a camera-trap image or video says about itself.

Images (JPEG, PNG) are read from their bytes: the JPEG marker segments (or PNG
chunks) are walked up to the start of the pixel data, the EXIF and XMP
payloads are taken from there, and Pillow only opens the headers. Pixel data is
never decoded, because this runs on tens of thousands of multi-megabyte photos
per survey.

Videos (MP4, MOV, AVI) are opened with PyAV; packets are demultiplexed (not
decoded) to count frames and catch files cut short on the card.

Every damaged file raises :class:`~irbis.core.errors.BadInputError` naming the
file, what is wrong and what to do. A photo without a date is *not* an error
here: ``taken`` is ``None`` and the caller decides.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

import av
from PIL import Image, UnidentifiedImageError

from irbis.core.errors import BadInputError
from irbis.core.types import MediaMetadata

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "media_kind",
    "parse_exif_datetime",
    "parse_xmp_tags",
    "read_metadata",
    "read_video_metadata",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".m4v"})

_VIDEO_MIME = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
}

# Container tags where phones and some cameras name themselves.
_VIDEO_MAKE_KEYS = ("make", "com.apple.quicktime.make", "com.android.manufacturer")
_VIDEO_MODEL_KEYS = ("model", "com.apple.quicktime.model", "com.android.model")

_HINT_RECOPY = "copy the file off the card again; the card may be damaged"
_HINT_NOT_MEDIA = "check that the file really is a camera photo; remove it from the card folder"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_JPEG_NS = b"http://ns.adobe.com/xap/1.0/\x00"
_LR_NS = "http://ns.adobe.com/lightroom/1.0/"
_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

# EXIF tag numbers (TIFF/EXIF 2.32).
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_DATETIME = 0x0132
_TAG_EXIF_IFD = 0x8769
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME_DIGITIZED = 0x9004
_TAG_OFFSET_TIME = 0x9010
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_OFFSET_TIME_DIGITIZED = 0x9012
_TAG_SUBSEC_TIME = 0x9290
_TAG_SUBSEC_TIME_ORIGINAL = 0x9291
_TAG_SUBSEC_TIME_DIGITIZED = 0x9292
_TAG_BODY_SERIAL = 0xA431
_TAG_CAMERA_SERIAL = 0xC62F  # DNG CameraSerialNumber, some cameras put it in IFD0

# JPEG start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC
# (DAC) share the range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

# A date string as cameras write it: "2009:04:21 00:40:00", sometimes with
# dashes or slashes, a "T", fractional seconds, or an offset glued on.
_DATE_RE = re.compile(
    r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})[ T]+(\d{1,2})[:.](\d{1,2})"
    r"(?:[:.](\d{1,2}))?(?:[.,](\d+))?\s*(Z|[+-]\d{1,2}:?\d{2})?\s*$"
)
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{1,2}):?(\d{2})\s*$")


def media_kind(name: str) -> Literal["image", "video"] | None:
    """Classify a file by its extension.

    Parameters
    ----------
    name:
        File name or path (any separator); only the extension counts,
        case-insensitively.

    Returns
    -------
    ``"image"`` for .jpg/.jpeg/.png, ``"video"`` for .mp4/.avi/.mov/.m4v,
    ``None`` for anything else.
    """
    ext = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


# ---------------------------------------------------------------------------
# small parsers


def _clean_text(value: object) -> str | None:
    """Turn an EXIF string value into clean text, or ``None`` when blank.

    Cameras pad with NULs and spaces ("G4       ", "HYPERFIRE 2 COVERT\\x00")
    and some store ASCII tags as raw bytes.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).replace("\x00", " ").strip()
    return text or None


def _parse_offset(value: object) -> int | None:
    """Parse an EXIF offset such as ``"+01:00"`` into minutes east of UTC."""
    text = _clean_text(value)
    if text is None:
        return None
    if text.upper() == "Z":
        return 0
    m = _OFFSET_RE.match(text)
    if not m:
        return None
    sign = -1 if m.group(1) == "-" else 1
    hours, minutes = int(m.group(2)), int(m.group(3))
    # Real offsets lie within -12:00..+14:00; anything else is garbage.
    if hours > 14 or minutes >= 60:
        return None
    return sign * (hours * 60 + minutes)


def _subsec_to_us(value: object) -> int | None:
    """Turn an EXIF SubSecTime string ("5", "123", "045") into microseconds.

    The digits are a decimal fraction of a second, so "5" is 0.5 s and
    "045" is 0.045 s.
    """
    text = _clean_text(value)
    if text is None:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return None
    return int((digits + "000000")[:6])


def parse_exif_datetime(value: object) -> tuple[datetime | None, int | None]:
    """Parse a camera's date string, tolerating the odd forms cameras write.

    Parameters
    ----------
    value:
        The raw tag value (``str`` or ``bytes``), e.g. ``"2009:04:21 00:40:00"``,
        possibly with trailing NULs, dashes instead of colons, fractional
        seconds or an offset.

    Returns
    -------
    ``(taken, utc_offset_min)``: the naive wall-clock time (``None`` for an
    unset date such as ``"0000:00:00 00:00:00"`` or a blank/impossible one)
    and the offset in minutes when the string itself carried one.
    """
    text = _clean_text(value)
    if text is None:
        return None, None
    m = _DATE_RE.match(text)
    if not m:
        return None, None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micro = int((m.group(7) + "000000")[:6]) if m.group(7) else 0
    if year == 0:
        return None, None  # "0000:00:00 00:00:00": the camera never set a date
    try:
        taken = datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        return None, None  # month 13, 31 February, hour 24, ...
    offset = _parse_offset(m.group(8)) if m.group(8) else None
    return taken, offset


def parse_xmp_tags(packet: bytes) -> list[str]:
    """Extract ``lr:hierarchicalSubject`` keywords from an XMP packet.

    These are the hierarchical tags that digiKam, Lightroom and camtrapR use
    for species and individuals, e.g. ``"Species|Leopard Cat"`` and
    ``"individual|2"``. They are returned as written, in packet order.

    Parameters
    ----------
    packet:
        The XMP packet (UTF-8 XML, possibly padded with whitespace or NULs).

    Returns
    -------
    The list of tags; empty when there are none or the packet is unreadable.
    """
    text = packet.replace(b"\x00", b"").strip()
    if not text:
        return []
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return _xmp_tags_by_regex(text.decode("utf-8", errors="replace"))
    tags: list[str] = []
    for elem in root.iter():
        # Adobe names the property hierarchicalSubject; exiftool and some
        # tools capitalise it, so compare the local name case-insensitively.
        if _is_hierarchical_subject(elem.tag):
            for li in elem.iter(f"{{{_RDF_NS}}}li"):
                if li.text and li.text.strip():
                    tags.append(li.text.strip())
        # A single keyword is sometimes written as an attribute of rdf:Description.
        for key, val in elem.attrib.items():
            if _is_hierarchical_subject(key) and val.strip():
                tags.append(val.strip())
    return tags


def _is_hierarchical_subject(qname: str) -> bool:
    """Whether an ElementTree name is ``{lightroom ns}hierarchicalSubject``."""
    return qname.lower() == f"{{{_LR_NS}}}hierarchicalsubject".lower()


def _xmp_tags_by_regex(text: str) -> list[str]:
    """Fallback for XMP that is not well-formed XML (seen from some taggers)."""
    tags: list[str] = []
    for block in re.findall(
        r"<[\w.-]*:?hierarchicalSubject\b[^>]*>(.*?)</[\w.-]*:?hierarchicalSubject>",
        text,
        flags=re.S | re.I,
    ):
        for item in re.findall(r"<rdf:li\b[^>]*>(.*?)</rdf:li>", block, flags=re.S):
            item = item.strip()
            if item:
                tags.append(item)
    return tags


# ---------------------------------------------------------------------------
# JPEG and PNG structure


@dataclass(slots=True)
class _Structure:
    """What the container walk found before the pixel data."""

    mime: str
    width: int | None = None
    height: int | None = None
    exif: bytes | None = None
    xmp: bytes | None = None


def _scan_jpeg(data: bytes, name: str) -> _Structure:
    """Walk JPEG marker segments up to the start of scan and check the end.

    Raises :class:`BadInputError` for a header cut short, a broken marker
    sequence, or no end-of-image marker after the scan data (a file cut short
    on the card, or zero-filled after a write failure).
    """
    info = _Structure(mime="image/jpeg")
    n = len(data)
    pos = 2
    sos: int | None = None
    while sos is None:
        if pos >= n:
            raise BadInputError(name, "truncated JPEG (file ends inside the header)", _HINT_RECOPY)
        if data[pos] != 0xFF:
            raise BadInputError(
                name, f"corrupt JPEG header (no marker at byte {pos})", _HINT_RECOPY
            )
        # Any number of 0xFF fill bytes may precede a marker code.
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise BadInputError(name, "truncated JPEG (file ends inside the header)", _HINT_RECOPY)
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # standalone markers carry no length
        if marker == 0xD9:
            raise BadInputError(
                name, "corrupt JPEG (no image data before end marker)", _HINT_RECOPY
            )
        if pos + 2 > n:
            raise BadInputError(name, "truncated JPEG (file ends inside the header)", _HINT_RECOPY)
        seglen = int.from_bytes(data[pos : pos + 2], "big")
        if seglen < 2:
            raise BadInputError(
                name, f"corrupt JPEG header (bad segment length at byte {pos})", _HINT_RECOPY
            )
        end = pos + seglen
        if end > n:
            raise BadInputError(name, "truncated JPEG (file ends inside the header)", _HINT_RECOPY)
        body = pos + 2
        if marker == 0xE1:
            if info.exif is None and data.startswith(b"Exif\x00\x00", body):
                info.exif = data[body:end]
            elif info.xmp is None and data.startswith(_XMP_JPEG_NS, body):
                info.xmp = data[body + len(_XMP_JPEG_NS) : end]
        elif marker in _SOF_MARKERS and seglen >= 7 and info.width is None:
            info.height = int.from_bytes(data[body + 1 : body + 3], "big")
            info.width = int.from_bytes(data[body + 3 : body + 5], "big")
        elif marker == 0xDA:
            sos = end
        pos = end
    # Entropy-coded data never contains FF D9 (0xFF is stuffed as FF 00), so
    # any FF D9 after the scan starts is an end-of-image marker. Bytes after
    # it (zero padding, a maker's trailer) are harmless. Searching backwards
    # finds it in the last few bytes of a sound file instead of scanning MBs.
    if data.rfind(b"\xff\xd9", sos) < 0:
        raise BadInputError(name, "truncated JPEG (no end-of-image marker)", _HINT_RECOPY)
    return info


def _scan_png(data: bytes, name: str) -> _Structure:
    """Walk PNG chunks (jumping over pixel data) and require an IEND chunk."""
    info = _Structure(mime="image/png")
    n = len(data)
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > n:
            raise BadInputError(name, "truncated PNG (no IEND chunk)", _HINT_RECOPY)
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        body = pos + 8
        end = body + length
        if end + 4 > n:
            raise BadInputError(name, "truncated PNG (no IEND chunk)", _HINT_RECOPY)
        if ctype == b"IHDR" and length >= 8:
            info.width = int.from_bytes(data[body : body + 4], "big")
            info.height = int.from_bytes(data[body + 4 : body + 8], "big")
        elif ctype == b"eXIf" and info.exif is None:
            info.exif = data[body:end]
        elif ctype in (b"iTXt", b"tEXt") and info.xmp is None:
            info.xmp = _png_xmp(ctype, data[body:end])
        elif ctype == b"IEND":
            return info
        pos = end + 4  # skip the CRC


def _png_xmp(ctype: bytes, chunk: bytes) -> bytes | None:
    """Return the XMP packet of a PNG text chunk keyed ``XML:com.adobe.xmp``."""
    keyword, sep, rest = chunk.partition(b"\x00")
    if not sep or keyword != b"XML:com.adobe.xmp":
        return None
    if ctype == b"tEXt":
        return rest
    # iTXt: compression flag, method, language tag NUL, translated keyword NUL, text.
    if len(rest) < 2:
        return None
    compressed = rest[0] == 1
    parts = rest[2:].split(b"\x00", 2)
    if len(parts) < 3:
        return None
    text = parts[2]
    if compressed:
        try:
            # Cap the inflated size: a tiny chunk must not expand into gigabytes.
            d = zlib.decompressobj()
            text = d.decompress(text, 16 * 1024 * 1024)
        except zlib.error:
            return None
    return text


# ---------------------------------------------------------------------------
# images


def _check_readable_by_pillow(data: bytes, name: str) -> tuple[int, int]:
    """Let Pillow parse the headers (never the pixels) and return its size."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except UnidentifiedImageError as exc:
        # Pillow's own message names an in-memory buffer, useless to a person.
        raise BadInputError(
            name, "corrupt image header (Pillow cannot identify it)", _HINT_RECOPY
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(name, f"corrupt image header ({exc})", _HINT_RECOPY) from exc
    except Image.DecompressionBombError as exc:
        raise BadInputError(
            name, "image claims an absurd pixel size", "check the file; it is not a camera photo"
        ) from exc


def read_metadata(data: bytes, name: str) -> MediaMetadata:
    """Read the metadata of a JPEG or PNG image from its bytes.

    Only headers are parsed; pixel data is never decoded.

    Parameters
    ----------
    data:
        The whole file content.
    name:
        The file's name or path, used in error messages.

    Returns
    -------
    A :class:`MediaMetadata` with ``mediatype="image"``, the pixel size,
    ``taken`` from EXIF DateTimeOriginal (falling back to DateTimeDigitized,
    then DateTime; ``None`` when absent or unset), sub-seconds and offset when
    written, make/model/serial as written, and XMP hierarchical-subject tags.

    Raises
    ------
    BadInputError
        For an empty file, a file that is not a JPEG/PNG, a truncated file or
        headers Pillow cannot open.
    """
    if len(data) == 0:
        raise BadInputError(name, "empty file (0 bytes)", _HINT_RECOPY)
    if data.startswith(b"\xff\xd8\xff"):
        info = _scan_jpeg(data, name)
    elif data.startswith(_PNG_SIGNATURE):
        info = _scan_png(data, name)
    elif data.count(0) == len(data):
        # Typical of a card whose file table survived but whose data did not.
        raise BadInputError(name, "file contains only zero bytes", _HINT_RECOPY)
    else:
        raise BadInputError(name, "not a JPEG/PNG image", _HINT_NOT_MEDIA)

    width, height = _check_readable_by_pillow(data, name)
    meta = MediaMetadata(
        mediatype="image",
        mime=info.mime,
        # The frame header is the truth: EXIF PixelXDimension keeps the
        # original size after a resize (seen in the Tajik survey images).
        width=info.width or width,
        height=info.height or height,
    )
    if info.exif is not None:
        _apply_exif(meta, info.exif)
    if info.xmp is not None:
        meta.tags = parse_xmp_tags(info.xmp)
    return meta


def _apply_exif(meta: MediaMetadata, payload: bytes) -> None:
    """Fill date, offset, make, model and serial from an EXIF payload.

    A damaged EXIF block leaves the fields empty rather than rejecting a
    photo whose pixels are fine: the caller flags the missing date.
    """
    exif = Image.Exif()
    try:
        exif.load(payload)
        ifd0 = dict(exif)
        sub = dict(exif.get_ifd(_TAG_EXIF_IFD)) if _TAG_EXIF_IFD in ifd0 else {}
    except Exception:  # Pillow raises many kinds on broken TIFF structures
        return

    # Each date tag has its own sub-second and offset companions.
    candidates = (
        (sub.get(_TAG_DATETIME_ORIGINAL), _TAG_SUBSEC_TIME_ORIGINAL, _TAG_OFFSET_TIME_ORIGINAL),
        (sub.get(_TAG_DATETIME_DIGITIZED), _TAG_SUBSEC_TIME_DIGITIZED, _TAG_OFFSET_TIME_DIGITIZED),
        (ifd0.get(_TAG_DATETIME), _TAG_SUBSEC_TIME, _TAG_OFFSET_TIME),
    )
    for raw, subsec_tag, offset_tag in candidates:
        taken, inline_offset = parse_exif_datetime(raw)
        if taken is None:
            continue
        micro = _subsec_to_us(sub.get(subsec_tag))
        if micro is not None:
            taken = taken.replace(microsecond=micro)
        offset = _parse_offset(sub.get(offset_tag))
        if offset is None:
            offset = _parse_offset(sub.get(_TAG_OFFSET_TIME))
        if offset is None:
            offset = inline_offset
        meta.taken = taken
        meta.taken_source = "exif"
        meta.utc_offset_min = offset
        break

    # Kept as written: some cameras swap these (Cuddeback writes Make "G4",
    # Model "CUDDEBACK"); the camera registry, not this reader, reconciles.
    meta.make = _clean_text(ifd0.get(_TAG_MAKE))
    meta.model = _clean_text(ifd0.get(_TAG_MODEL))
    meta.serial = _clean_text(sub.get(_TAG_BODY_SERIAL)) or _clean_text(
        ifd0.get(_TAG_CAMERA_SERIAL)
    )


# ---------------------------------------------------------------------------
# videos


def _parse_video_time(value: str | None) -> tuple[datetime | None, int | None]:
    """Parse a container creation time into (naive wall time, offset minutes).

    MP4/MOV store UTC ("2024-03-05T06:07:08.000000Z"): the result is the
    naive UTC time with offset 0. A time without zone (AVI) stays naive with
    offset ``None``. Dates before 1971 mean "unset" (zero timestamps).
    """
    text = _clean_text(value)
    if text is None:
        return None, None
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed, off = parse_exif_datetime(text)
        if parsed is None:
            return None, None
        if off is not None:
            parsed = parsed.replace(tzinfo=timezone(timedelta(minutes=off)))
    if parsed.year < 1971:
        return None, None
    if parsed.tzinfo is None:
        return parsed, None
    offset = parsed.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else None
    return parsed.replace(tzinfo=None), minutes


def read_video_metadata(
    path_or_fileobj: str | Path | BinaryIO, name: str, *, verify: bool = True
) -> MediaMetadata:
    """Read the metadata of an MP4, MOV or AVI video with PyAV.

    Parameters
    ----------
    path_or_fileobj:
        A file path or a seekable binary file object.
    name:
        The file's name or path, used for the MIME type and error messages.
    verify:
        Demultiplex every packet (no decoding) to count frames and catch a
        file cut short even when its index is intact. Costs one read of the
        file; turn off only when the file was verified before.

    Returns
    -------
    A :class:`MediaMetadata` with ``mediatype="video"``, ``taken`` from the
    container's (or video stream's) creation time, ``utc_offset_min=0`` when
    that time is UTC (MP4/MOV), duration in seconds, frame count and size.
    Note that many trail cameras write local time into the MP4 field that the
    standard defines as UTC; the deployment's clock correction handles that.

    Raises
    ------
    BadInputError
        When the file cannot be opened, has no video stream, or is truncated
        (zero duration, zero frames, fewer frames than its index promises).
    """
    try:
        container = av.open(path_or_fileobj, mode="r")
    except (av.FFmpegError, OSError, ValueError, IndexError, EOFError) as exc:
        raise BadInputError(
            name, f"unreadable or truncated video ({exc.__class__.__name__})", _HINT_RECOPY
        ) from exc
    try:
        if not container.streams.video:
            # A cut-off MP4 often opens with no streams at all.
            raise BadInputError(name, "truncated or corrupt video (no video stream)", _HINT_RECOPY)
        stream = container.streams.video[0]

        taken, offset = _parse_video_time(container.metadata.get("creation_time"))
        if taken is None:
            taken, offset = _parse_video_time(stream.metadata.get("creation_time"))

        duration: float | None = None
        if container.duration is not None and container.duration > 0:
            duration = container.duration / av.time_base
        elif stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)

        declared = stream.frames or 0
        frames = declared
        if verify:
            frames = _count_packets(container, stream, declared, name)
        make = _first_text(container.metadata, _VIDEO_MAKE_KEYS)
        model = _first_text(container.metadata, _VIDEO_MODEL_KEYS)
        ctx = stream.codec_context
        if ctx is None:
            # A file cut inside its index leaves a stream with no codec.
            raise BadInputError(
                name, "truncated or corrupt video (its video stream has no codec)", _HINT_RECOPY
            )
        width, height = ctx.width or None, ctx.height or None
        fmt_name = container.format.name
    except (av.FFmpegError, OSError, ValueError, IndexError, EOFError) as exc:
        raise BadInputError(
            name, f"truncated or corrupt video ({exc.__class__.__name__})", _HINT_RECOPY
        ) from exc
    finally:
        container.close()

    if not duration or duration <= 0:
        raise BadInputError(name, "truncated video (zero duration)", _HINT_RECOPY)
    if frames <= 0:
        raise BadInputError(name, "truncated video (no frames)", _HINT_RECOPY)

    ext = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    mime = _VIDEO_MIME.get(ext) or ("video/x-msvideo" if fmt_name == "avi" else "video/mp4")
    return MediaMetadata(
        mediatype="video",
        mime=mime,
        width=width,
        height=height,
        taken=taken,
        taken_source="video" if taken is not None else None,
        utc_offset_min=offset,
        make=make,
        model=model,
        duration_s=duration,
        frame_count=frames,
    )


def _first_text(metadata: dict[str, str], keys: tuple[str, ...]) -> str | None:
    """Return the first non-blank value among ``keys`` of a metadata dict."""
    for key in keys:
        text = _clean_text(metadata.get(key))
        if text:
            return text
    return None


def _count_packets(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    declared: int,
    name: str,
) -> int:
    """Count the video packets actually present, raising if the file is cut short."""
    count = 0
    last_corrupt = False
    try:
        for packet in container.demux(stream):
            if packet.size:
                count += 1
                last_corrupt = packet.is_corrupt
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise BadInputError(
            name,
            f"truncated or corrupt video ({exc.__class__.__name__} while reading)",
            _HINT_RECOPY,
        ) from exc
    # The demuxer marks a frame read short at end of file as corrupt; an index
    # promising more frames than the data holds means the tail is missing.
    if last_corrupt or (declared and count < declared):
        raise BadInputError(
            name,
            f"truncated video ({count} of {declared or '?'} frames present)",
            _HINT_RECOPY,
        )
    return count
