"""Media files without the place they were taken: byte-level metadata scrubbing.

A camera that knows where it is writes it into every file: the Exif GPS
block and XMP of a JPEG, a PNG's ``eXIf`` and text chunks, an MP4/MOV's
``©xyz``, ``loci`` and ``meta`` atoms or a GPS track, a comment a ranger typed.
Files that leave irbis for someone not cleared for precise locations (a
viewer's download, a public Camtrap DP package) go through :func:`scrub`.

Rules (the pixels and samples are never decoded or re-encoded):

- **JPEG**: the Exif block keeps everything but its GPS IFD (its entries and
  values are zeroed and the pointer removed, in place, so every other offset
  stays valid) and the Exif ``UserComment``; XMP and extended XMP (``APP1``),
  Photoshop/IPTC (``APP13``, which holds city and sub-location fields) and
  comment (``COM``) segments are dropped; anything after the end-of-image
  marker is dropped.
- **PNG**: only chunks that describe pixels are kept; ``eXIf`` is kept
  without its GPS IFD; ``tEXt``/``zTXt``/``iTXt`` (comments, XMP) and every
  unknown or private chunk are dropped.
- **MP4/MOV/3GP** (ISO base media): ``udta``, ``meta`` and ``uuid`` boxes of
  the movie and its tracks (``©xyz``, ``loci``, Apple's ISO 6709 location
  key, XMP, comments), unknown boxes (vendors' ``gps `` atoms) and every track
  that is not video, sound, timecode or hint (GPS and telemetry tracks) become
  ``free`` boxes of the same size with zeroed payload, and the samples of
  such a track are zeroed in ``mdat``. Sizes never change, so the chunk
  offsets of the remaining tracks stay valid and the video plays as before.
- **WebP**: ``EXIF`` and ``XMP`` chunks dropped (and their ``VP8X`` flags).
- **AVI**: ``INFO`` lists and unknown chunks become zeroed ``JUNK`` of the
  same size.

Anything else (TIFF, GIF, HEIF, Matroska, MPEG...) raises
:class:`ScrubError`, as does a file whose structure cannot be walked: the
caller then re-encodes the picture or does not hand the file out. Only the
standard library is used, so the parsers are small, pure and fuzzable.
"""

from __future__ import annotations

import contextlib
import struct
import zlib

__all__ = ["ScrubError", "scrub", "scrub_exif_tiff", "scrub_isobmff", "scrub_jpeg", "scrub_png"]


class ScrubError(ValueError):
    """The file's format is not one irbis can clean, or its structure is damaged."""


# --------------------------------------------------------------------------- TIFF / Exif

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_XMP_TAG = 700
_USER_COMMENT = 0x9286
_MAX_IFDS = 16


def _ifd_entries(buf: bytearray, base: int, end: int, order: str, off: int) -> list[tuple]:
    """``(entry_pos, tag, type, count, value_field_pos)`` of the IFD at ``off``."""
    pos = base + off
    if off < 8 or pos + 2 > end:
        raise ScrubError(f"Exif: IFD offset {off} outside the block")
    (n,) = struct.unpack_from(order + "H", buf, pos)
    if pos + 2 + 12 * n + 4 > end:
        raise ScrubError(f"Exif: IFD at {off} with {n} entries runs past the block")
    out = []
    for i in range(n):
        e = pos + 2 + 12 * i
        tag, typ, count = struct.unpack_from(order + "HHI", buf, e)
        out.append((e, tag, typ, count, e + 8))
    return out


def _value_span(buf: bytearray, base: int, end: int, order: str, typ: int, count: int, vpos: int):
    """``(start, length)`` of an entry's value bytes (inline or at its offset), or None."""
    size = _TYPE_SIZES.get(typ, 1) * count
    if size <= 4:
        return vpos, size
    (off,) = struct.unpack_from(order + "I", buf, vpos)
    if base + off + size > end or off < 8:
        return None  # a value outside the block: nothing of ours to zero
    return base + off, size


def _remove_entry(buf: bytearray, base: int, order: str, ifd_off: int, entry_pos: int) -> None:
    """Remove one entry from an IFD in place (later entries and the next-IFD link move up)."""
    pos = base + ifd_off
    (n,) = struct.unpack_from(order + "H", buf, pos)
    tail_end = pos + 2 + 12 * n + 4  # entries, then the 4-byte link to the next IFD
    buf[entry_pos : tail_end - 12] = buf[entry_pos + 12 : tail_end]
    buf[tail_end - 12 : tail_end] = bytes(12)
    struct.pack_into(order + "H", buf, pos, n - 1)


def _zero_ifd(buf: bytearray, base: int, end: int, order: str, off: int) -> None:
    """Zero an IFD and every value it points to (a GPS IFD: nothing of it stays readable)."""
    entries = _ifd_entries(buf, base, end, order, off)
    for _, _, typ, count, vpos in entries:
        span = _value_span(buf, base, end, order, typ, count, vpos)
        if span is not None:
            buf[span[0] : span[0] + span[1]] = bytes(span[1])
    pos = base + off
    buf[pos : pos + 2 + 12 * len(entries) + 4] = bytes(2 + 12 * len(entries) + 4)


def scrub_exif_tiff(buf: bytearray, base: int = 0, end: int | None = None) -> bool:
    """Remove the GPS IFD, TIFF-embedded XMP and the user comment of a TIFF/Exif block.

    Works in place on ``buf[base:end]`` (a TIFF header and its IFDs, as in a
    JPEG's Exif segment or a PNG's ``eXIf`` chunk) without changing its
    length. Returns whether anything was changed.

    Raises
    ------
    ScrubError
        The block is not TIFF, or an IFD lies outside it.
    """
    end = len(buf) if end is None else end
    head = bytes(buf[base : base + 4])
    if head == b"II*\x00":
        order = "<"
    elif head == b"MM\x00*":
        order = ">"
    else:
        raise ScrubError("Exif: not a TIFF block")
    changed = False
    (off,) = struct.unpack_from(order + "I", buf, base + 4)
    seen: set[int] = set()
    exif_ifds: list[int] = []
    while off and len(seen) < _MAX_IFDS:
        if off in seen:
            raise ScrubError("Exif: IFDs form a loop")
        seen.add(off)
        for entry_pos, tag, typ, count, vpos in reversed(_ifd_entries(buf, base, end, order, off)):
            if tag == _GPS_IFD:
                (gps_off,) = struct.unpack_from(order + "I", buf, vpos)
                # A dangling pointer: removing it is all there is to do.
                with contextlib.suppress(ScrubError):
                    _zero_ifd(buf, base, end, order, gps_off)
                _remove_entry(buf, base, order, off, entry_pos)
                changed = True
            elif tag == _XMP_TAG:
                span = _value_span(buf, base, end, order, typ, count, vpos)
                if span is not None:
                    buf[span[0] : span[0] + span[1]] = bytes(span[1])
                _remove_entry(buf, base, order, off, entry_pos)
                changed = True
            elif tag == _EXIF_IFD:
                exif_ifds.append(struct.unpack_from(order + "I", buf, vpos)[0])
        n = struct.unpack_from(order + "H", buf, base + off)[0]
        (off,) = struct.unpack_from(order + "I", buf, base + off + 2 + 12 * n)
    for sub in exif_ifds:
        try:
            entries = _ifd_entries(buf, base, end, order, sub)
        except ScrubError:
            continue
        for _, tag, typ, count, vpos in entries:
            if tag in (_GPS_IFD, _USER_COMMENT):
                span = _value_span(buf, base, end, order, typ, count, vpos)
                if span is not None and any(buf[span[0] : span[0] + span[1]]):
                    buf[span[0] : span[0] + span[1]] = bytes(span[1])
                    changed = True
    return changed


# --------------------------------------------------------------------------- JPEG

_EXIF_HEAD = b"Exif\x00\x00"
_XMP_HEADS = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _entropy_end(data: bytes, i: int) -> int:
    """Index of the first marker after entropy-coded data starting at ``i`` (or the end)."""
    n = len(data)
    while True:
        k = data.find(b"\xff", i)
        if k < 0 or k + 1 >= n:
            return n
        nxt = data[k + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            i = k + 2
            continue
        return k


def scrub_jpeg(data: bytes) -> bytes:
    """``data`` (a JPEG) without location or comments; see the module docstring.

    Raises
    ------
    ScrubError
        Not a JPEG, or its header segments cannot be walked.
    """
    if not data.startswith(b"\xff\xd8"):
        raise ScrubError("not a JPEG")
    out = bytearray(b"\xff\xd8")
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ScrubError(f"JPEG: no marker at byte {i}")
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0xD9:
            out += b"\xff\xd9"  # end of image: whatever follows (trailers) is dropped
            return bytes(out)
        if marker in _STANDALONE:
            out += bytes((0xFF, marker))
            continue
        if i + 2 > n:
            raise ScrubError("JPEG: cut inside a segment header")
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2 or i + length > n:
            raise ScrubError(f"JPEG: segment {marker:#04x} runs past the end of the file")
        payload = data[i + 2 : i + length]
        i += length
        if marker == 0xDA:  # start of scan: header, then entropy-coded data to the next marker
            end = _entropy_end(data, i)
            out += b"\xff\xda" + length.to_bytes(2, "big") + payload + data[i:end]
            i = end
            continue
        if marker == 0xE1 and payload.startswith(_EXIF_HEAD):
            block = bytearray(payload)
            scrub_exif_tiff(block, len(_EXIF_HEAD))
            payload = bytes(block)
        elif (marker == 0xE1 and payload.startswith(_XMP_HEADS)) or marker in (0xFE, 0xED):
            continue  # XMP, comment, Photoshop/IPTC: dropped
        out += bytes((0xFF, marker)) + length.to_bytes(2, "big") + payload
    return bytes(out)  # a file cut in its pixels: what there is, cleaned


# --------------------------------------------------------------------------- PNG

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
#: Chunks that describe pixels, colour or animation; everything else is dropped.
_PNG_KEEP = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"cICP", b"mDCV", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"sPLT", b"tIME", b"acTL", b"fcTL",
    b"fdAT",
}  # fmt: skip


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")


def scrub_png(data: bytes) -> bytes:
    """``data`` (a PNG) with only pixel chunks and a GPS-free ``eXIf``; see the module docstring.

    Raises
    ------
    ScrubError
        Not a PNG, or a chunk header is damaged.
    """
    if not data.startswith(_PNG_SIG):
        raise ScrubError("not a PNG")
    out = bytearray(_PNG_SIG)
    i, n = len(_PNG_SIG), len(data)
    while i + 8 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if not kind.isalpha():
            raise ScrubError(f"PNG: damaged chunk header at byte {i}")
        end = i + 12 + length
        if end > n:
            if kind == b"IDAT":  # cut in its pixels: keep what there is
                out += data[i:]
            break
        if kind in _PNG_KEEP:
            out += data[i:end]
        elif kind == b"eXIf":
            block = bytearray(data[i + 8 : i + 8 + length])
            try:
                scrub_exif_tiff(block)
            except ScrubError:
                block = bytearray()  # unreadable Exif could hide anything: dropped
            if block:
                out += _png_chunk(kind, bytes(block))
        i = end
        if kind == b"IEND":
            break
    return bytes(out)


# --------------------------------------------------------------------------- ISO BMFF

#: Boxes kept (walked or copied) at each level; any other box becomes ``free``.
_TOP_KEEP = {
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"moof", b"mfra", b"sidx",
    b"styp", b"ssix", b"prft", b"emsg", b"pdin", b"jP  ",
}  # fmt: skip
_MOOV_KEEP = {b"mvhd", b"trak", b"mvex", b"iods", b"free", b"skip", b"wide", b"prfl", b"clip"}
_TRAK_KEEP = {
    b"tkhd", b"mdia", b"edts", b"tref", b"tapt", b"load", b"clip", b"matt", b"txas", b"free",
    b"skip", b"wide",
}  # fmt: skip
#: Track handlers whose samples are pictures, sound or time: any other track is dropped.
_TRACK_HANDLERS = {b"vide", b"soun", b"tmcd", b"hint"}


def _boxes(buf: bytearray, start: int, end: int, *, top: bool = False) -> list[tuple]:
    """``(box_start, payload_start, box_end, type)`` of the boxes in ``buf[start:end]``."""
    out = []
    i = start
    while i + 8 <= end:
        size = int.from_bytes(buf[i : i + 4], "big")
        kind = bytes(buf[i + 4 : i + 8])
        head = 8
        if size == 1:
            if i + 16 > end:
                raise ScrubError("MP4: cut inside a box header")
            size = int.from_bytes(buf[i + 8 : i + 16], "big")
            head = 16
        elif size == 0:
            size = end - i
        if size < head:
            raise ScrubError(f"MP4: box {kind!r} at byte {i} has a bad size")
        box_end = i + size
        if box_end > end:
            if top and kind == b"mdat":
                box_end = end  # a recording cut short: its samples end with the file
            else:
                raise ScrubError(f"MP4: box {kind!r} at byte {i} runs past its parent")
        out.append((i, i + head, box_end, kind))
        i = box_end
    return out


def _blank(buf: bytearray, box: tuple) -> None:
    """Turn a box into a ``free`` box of the same size with a zeroed payload."""
    start, payload, end, _ = box
    buf[start + 4 : start + 8] = b"free"
    buf[payload:end] = bytes(end - payload)


def _child(buf: bytearray, box: tuple, kind: bytes) -> tuple | None:
    return next((b for b in _boxes(buf, box[1], box[2]) if b[3] == kind), None)


def _handler(buf: bytearray, trak: tuple) -> bytes | None:
    mdia = _child(buf, trak, b"mdia")
    hdlr = _child(buf, mdia, b"hdlr") if mdia else None
    if hdlr is None or hdlr[1] + 12 > hdlr[2]:
        return None
    return bytes(buf[hdlr[1] + 8 : hdlr[1] + 12])


def _sample_ranges(buf: bytearray, trak: tuple) -> list[tuple[int, int]]:
    """``(offset, size)`` in the file of every sample of a track (from its sample tables)."""
    stbl = None
    mdia = _child(buf, trak, b"mdia")
    minf = _child(buf, mdia, b"minf") if mdia else None
    stbl = _child(buf, minf, b"stbl") if minf else None
    if stbl is None:
        return []
    tables = {b[3]: b for b in _boxes(buf, stbl[1], stbl[2])}
    stsz, stsc = tables.get(b"stsz"), tables.get(b"stsc")
    co = tables.get(b"stco") or tables.get(b"co64")
    if stsz is None or stsc is None or co is None:
        return []

    def u32(pos: int) -> int:
        if pos + 4 > len(buf):
            raise ScrubError("MP4: sample table cut short")
        return int.from_bytes(buf[pos : pos + 4], "big")

    fixed, count = u32(stsz[1] + 4), u32(stsz[1] + 8)
    sizes = [fixed] * count if fixed else [u32(stsz[1] + 12 + 4 * k) for k in range(count)]
    wide = co[3] == b"co64"
    n_chunks = u32(co[1] + 4)
    step = 8 if wide else 4
    offsets = []
    for k in range(n_chunks):
        pos = co[1] + 8 + step * k
        offsets.append((u32(pos) << 32 | u32(pos + 4)) if wide else u32(pos))
    n_runs = u32(stsc[1] + 4)
    runs = [(u32(stsc[1] + 8 + 12 * k), u32(stsc[1] + 12 + 12 * k)) for k in range(n_runs)]
    out, sample = [], 0
    for ci, off in enumerate(offsets, 1):
        per_chunk = next((spc for first, spc in reversed(runs) if first <= ci), 0)
        for _ in range(per_chunk):
            if sample >= len(sizes):
                break
            out.append((off, sizes[sample]))
            off += sizes[sample]
            sample += 1
    return out


def scrub_isobmff(data: bytes) -> bytes:
    """``data`` (MP4/MOV/3GP) without location, user data or telemetry tracks; same size.

    Raises
    ------
    ScrubError
        Not an ISO base media file, a HEIF image, a compressed movie header,
        or boxes that cannot be walked.
    """
    buf = bytearray(data)
    top = _boxes(buf, 0, len(buf), top=True)
    if not top or top[0][3] not in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        raise ScrubError("not an MP4/MOV file")
    if top[0][3] == b"ftyp" and bytes(buf[8:12]) in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        raise ScrubError("a HEIF/AVIF image (its Exif is an item of the meta box)")
    zero: list[tuple[int, int]] = []
    for box in top:
        if box[3] != b"moov":
            if box[3] not in _TOP_KEEP:
                _blank(buf, box)
            continue
        for child in _boxes(buf, box[1], box[2]):
            if child[3] == b"cmov":
                raise ScrubError("MOV: compressed movie header")
            if child[3] == b"trak":
                if _handler(buf, child) not in _TRACK_HANDLERS:
                    zero += _sample_ranges(buf, child)
                    _blank(buf, child)
                    continue
                for part in _boxes(buf, child[1], child[2]):
                    if part[3] not in _TRAK_KEEP:
                        _blank(buf, part)
            elif child[3] not in _MOOV_KEEP:
                _blank(buf, child)  # udta, meta, uuid, vendors' gps atoms...
    for off, size in zero:
        if 0 <= off < len(buf):
            end = min(off + size, len(buf))
            buf[off:end] = bytes(end - off)
    return bytes(buf)


# --------------------------------------------------------------------------- RIFF (WebP, AVI)


def _riff_chunks(data: bytes | bytearray, start: int, end: int) -> list[tuple[int, bytes, int]]:
    """``(chunk_start, fourcc, payload_size)`` of the chunks in ``data[start:end]``."""
    out = []
    i = start
    while i + 8 <= end:
        kind = bytes(data[i : i + 4])
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        if i + 8 + size > end:
            raise ScrubError(f"RIFF: chunk {kind!r} at byte {i} runs past the file")
        out.append((i, kind, size))
        i += 8 + size + (size & 1)
    return out


def _scrub_webp(data: bytes) -> bytes:
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    body = bytearray()
    for start, kind, size in _riff_chunks(data, 12, end):
        chunk = bytearray(data[start : start + 8 + size + (size & 1)])
        if kind in (b"EXIF", b"XMP "):
            continue
        if kind == b"VP8X" and size >= 1:
            chunk[8] &= ~0x0C & 0xFF  # no EXIF (0x08), no XMP (0x04) any more
        body += chunk
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + bytes(body)


_AVI_KEEP_LISTS = {b"hdrl", b"movi"}


def _scrub_avi(data: bytes) -> bytes:
    buf = bytearray(data)
    for start, kind, size in _riff_chunks(buf, 0, len(buf)):
        if kind != b"RIFF" or bytes(buf[start + 8 : start + 12]) not in (b"AVI ", b"AVIX"):
            raise ScrubError("AVI: not a RIFF AVI file")
        for c_start, c_kind, c_size in _riff_chunks(buf, start + 12, start + 8 + size):
            if c_kind in (b"idx1", b"JUNK"):
                continue
            if c_kind == b"LIST" and bytes(buf[c_start + 8 : c_start + 12]) in _AVI_KEEP_LISTS:
                continue
            buf[c_start : c_start + 4] = b"JUNK"
            buf[c_start + 8 : c_start + 8 + c_size] = bytes(c_size)
    return bytes(buf)


# --------------------------------------------------------------------------- dispatch


def scrub(data: bytes) -> bytes:
    """``data`` without the place it was taken, by its format (see the module docstring).

    Returns
    -------
    bytes
        The cleaned file (the input itself when there was nothing to remove).

    Raises
    ------
    ScrubError
        A format irbis does not clean, or a damaged structure.
    """
    if data.startswith(b"\xff\xd8"):
        return scrub_jpeg(data)
    if data.startswith(_PNG_SIG):
        return scrub_png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _scrub_webp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return _scrub_avi(data)
    if data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return scrub_isobmff(data)
    raise ScrubError("a format irbis cannot clean of location data")
