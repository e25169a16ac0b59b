"""Read the date and time a camera burned into the info bar of a frame.

Trail cameras print a bar across the top or bottom of every photo: date,
time, moon phase, temperature, camera name (Reconyx puts the time at the top,
Bushnell and Browning at the bottom). When a card's EXIF was lost (copied
through software that drops it, resized, exported), that bar is the camera's
own clock reading still on the frame. It is the same clock EXIF would have
held, which is why it wins over a time in the file name (see
:mod:`irbis.ingest.timesource`).

The bar is found from the pixels (rows at the edge made of near-black and
near-white only), cut out, turned into black text on white, enlarged, and read
with Tesseract (Debian's ``tesseract-ocr`` package, run as a subprocess: no
network, no model download). The text is then searched with the stamp
patterns of :mod:`irbis.ingest.timepatterns`. Only frames without an EXIF
time get here, so decoding their pixels does not slow a normal card.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np
from PIL import Image, UnidentifiedImageError

from irbis.ingest.timepatterns import TimePattern, first_time

__all__ = [
    "TESSERACT_MISSING",
    "StampReading",
    "find_bars",
    "read_stamp",
    "tesseract_path",
]

TESSERACT_MISSING = (
    "tesseract not found: times burned into info bars cannot be read "
    "(install Debian's tesseract-ocr package, or ingest with --time-from filename)"
)

# A bar row is made of background and text: nearly every pixel is near-black
# or near-white. Natural image rows have mid-tones (measured on the Tajik and
# camtrapR frames: bar rows >= 0.93, picture rows <= 0.6 except dark night
# skies, which then only add empty rows to the crop).
_DARK, _LIGHT = 70, 180
_EXTREME_SHARE = 0.88
_BG_SHARE = 0.6
_BG_TOLERANCE = 40
_MAX_GAP = 2
_MAX_BAR_SHARE = 0.12  # of the frame height; a bar is a thin strip
_MIN_BAR_PX = 8
_TEXT_CONTRAST = 110  # grey levels between bar background and text
_MARGIN_PX = 2
# Tesseract reads best with capital letters 25-40 px tall; the bar text is
# about 0.7 of the bar's height.
_TARGET_BAR_PX = 48
_TIMEOUT_S = 30
_CHARS = "0123456789-/:.,APMapm "
_VARIANTS = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class StampReading:
    """What was read from a frame's info bars.

    Attributes
    ----------
    taken:
        The time read, naive (the camera's clock), or ``None`` when the text
        holds no time any stamp pattern recognises.
    text:
        The text Tesseract read, bars joined by `` | `` (kept on the media row
        so a person can see what the time was read from).
    bar:
        ``"top"`` or ``"bottom"``: the bar the time was found in, or ``""``.
    pattern:
        The stamp pattern that read it, or ``""``.
    """

    taken: datetime | None
    text: str
    bar: str = ""
    pattern: str = ""


@lru_cache(maxsize=1)
def tesseract_path() -> str | None:
    """Where the ``tesseract`` program is, or ``None`` when it is not installed.

    Returns
    -------
    The absolute path found on ``PATH`` (``IRBIS_TESSERACT`` overrides it).
    """
    override = os.environ.get("IRBIS_TESSERACT")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("tesseract")


def _bar_rows(gray: np.ndarray, rows: range) -> int:
    """How many rows from the edge (in ``rows`` order) look like a bar.

    A bar row is mostly the bar's background (the colour of the edge row)
    and otherwise text of the opposite extreme; snow or sky under a black bar
    is extreme too, but not the background, so it ends the bar. The top and
    bottom rows of the glyphs are partly anti-aliased grey, so a gap of up to
    ``_MAX_GAP`` rows is allowed inside the bar.
    """
    bg = float(np.median(gray[rows[0]]))
    n = gap = 0
    for r in rows:
        row = gray[r].astype(np.int16)
        background = (np.abs(row - bg) <= _BG_TOLERANCE).mean()
        extreme = ((row < _DARK) | (row > _LIGHT)).mean()
        if background >= _BG_SHARE and extreme >= _EXTREME_SHARE:
            n += gap + 1
            gap = 0
        else:
            gap += 1
            if gap > _MAX_GAP:
                break
    return n


def _text_block(crop: np.ndarray, from_top: bool) -> int:
    """Rows from the edge to the end of the first line of text (0: no text).

    A night frame's dark sky passes for bar, so the crop is ended where the
    first line of text ends instead of where the dark rows end.
    """
    bg = float(np.median(crop[0] if from_top else crop[-1]))
    rows = crop if from_top else crop[::-1]
    texty = (np.abs(rows.astype(np.int16) - bg) >= _TEXT_CONTRAST).mean(axis=1) >= 0.002
    idx = np.flatnonzero(texty)
    if idx.size == 0:
        return 0
    end = int(idx[0])
    for i in idx[1:]:
        if i - end > _MAX_GAP + 1:
            break
        end = int(i)
    return min(len(rows), end + 1 + _MARGIN_PX)


def find_bars(gray: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Cut the info bars out of a grey frame.

    Parameters
    ----------
    gray:
        The frame as a 2-D uint8 array.

    Returns
    -------
    ``[(where, crop), ...]`` with ``where`` ``"top"`` then ``"bottom"``, for
    each edge that has a bar holding a line of text, cropped to that line;
    empty when the frame has no bar.
    """
    h = gray.shape[0]
    cap = max(_MIN_BAR_PX, int(h * _MAX_BAR_SHARE))
    out = []
    for where, rows in (("top", range(0, cap)), ("bottom", range(h - 1, h - 1 - cap, -1))):
        n = _bar_rows(gray, rows)
        if n < _MIN_BAR_PX:
            continue
        crop = gray[:n] if where == "top" else gray[h - n :]
        n = _text_block(crop, where == "top")
        if n < _MIN_BAR_PX:
            continue
        out.append((where, crop[:n] if where == "top" else crop[len(crop) - n :]))
    return out


def _prepare(crop: np.ndarray, variant: int = 0) -> bytes:
    """Black text on white, enlarged, as PNG bytes for Tesseract.

    Variant 0 thresholds, then enlarges smoothly (the best single reader
    on the Tajik and Camtrap DP frames); variant 1 enlarges the grey crop,
    then thresholds; variant 2 enlarges the thresholded crop pixel by pixel.
    Their glyph edges differ, so their misreadings mostly differ too.
    """
    dark_bar = (crop < _DARK).mean() >= (crop > _LIGHT).mean()
    scale = max(1.0, _TARGET_BAR_PX / crop.shape[0])
    size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
    if variant == 0:
        threshold = (int(crop.min()) + int(crop.max())) // 2
        text = crop > threshold if dark_bar else crop < threshold
        img = Image.fromarray(np.where(text, 0, 255).astype(np.uint8), "L")
        if scale > 1.0:
            img = img.resize(size, Image.LANCZOS)
    elif variant == 2:
        threshold = (int(crop.min()) + int(crop.max())) // 2
        text = crop > threshold if dark_bar else crop < threshold
        img = Image.fromarray(np.where(text, 0, 255).astype(np.uint8), "L")
        img = img.resize(size, Image.NEAREST)
    else:
        grey = Image.fromarray(crop if dark_bar else 255 - crop, "L").resize(size, Image.BICUBIC)
        a = np.asarray(grey)
        threshold = (int(a.min()) + int(a.max())) // 2
        img = Image.fromarray(np.where(a > threshold, 0, 255).astype(np.uint8), "L")
    # A white margin: Tesseract drops glyphs that touch the image edge.
    framed = Image.new("L", (img.width + 20, img.height + 20), 255)
    framed.paste(img, (10, 10))
    buf = io.BytesIO()
    framed.save(buf, "PNG")
    return buf.getvalue()


def _ocr(png: bytes, exe: str) -> str:
    """One line of text from Tesseract (``--psm 7``: the bar is a single line)."""
    env = dict(os.environ)
    # Ingest already runs several readers in parallel; Tesseract's own
    # threads would only fight them for the same cores.
    env["OMP_THREAD_LIMIT"] = "1"
    proc = subprocess.run(
        # Only what a date and time are written with: on the Tajik frames
        # this turns "9:26:0S AM" into "9:26:05 AM" and loses nothing else.
        [
            exe,
            "stdin",
            "stdout",
            "--psm",
            "7",
            "-l",
            "eng",
            "-c",
            f"tessedit_char_whitelist={_CHARS}",
        ],
        input=png,
        capture_output=True,
        timeout=_TIMEOUT_S,
        env=env,
        check=False,
    )
    return proc.stdout.decode("utf-8", errors="replace").strip()


def _plausible(taken: datetime) -> bool:
    """A year a camera-trap photo can have; OCR turns 2021 into 7021."""
    return 1990 <= taken.year <= datetime.now().year + 1


def _vote(
    crop: np.ndarray, patterns: list[TimePattern], exe: str, texts: list[str]
) -> tuple[datetime, str] | None:
    """The time read from one bar by differently prepared images, or ``None``.

    Tesseract misreads about one clean digit in a hundred on these bitmap
    fonts (4 as 5, 8 as 9: a minute or an hour off, silently). Variants 0
    and 1 are read; when they disagree, variant 2 decides. A time read by
    more variants wins; on a tie, variant 0's (the most accurate alone on
    the real frames). The misreadings left are caught where the file names
    carry times (:mod:`irbis.ingest.timealign`).
    """
    readings: list[tuple[datetime, str]] = []
    for variant in _VARIANTS:
        if variant == 2 and len(readings) == 2 and readings[0][0] == readings[1][0]:
            break
        try:
            text = _ocr(_prepare(crop, variant), exe)
        except subprocess.TimeoutExpired:
            text = ""
        texts.append(text)
        found = first_time(text, patterns)
        if found is not None and _plausible(found[0]):
            readings.append(found)
    if not readings:
        return None
    times = [t for t, _ in readings]
    return max(readings, key=lambda r: times.count(r[0]))


def read_stamp(
    data: bytes, patterns: list[TimePattern], *, exe: str | None = None
) -> StampReading | None:
    """Read the time printed in a frame's info bar.

    Parameters
    ----------
    data:
        The image file's bytes (JPEG or PNG).
    patterns:
        Compiled stamp patterns (``compile_patterns(..., stamp=True)``), in
        the order to try them.
    exe:
        The ``tesseract`` program; :func:`tesseract_path` when not given.

    Returns
    -------
    A :class:`StampReading` when the frame has a bar (its ``taken`` is
    ``None`` when no time could be read from it), ``None`` when the frame has
    no bar at all or cannot be decoded.

    Raises
    ------
    FileNotFoundError
        When Tesseract is not installed (message: :data:`TESSERACT_MISSING`).
    """
    exe = exe or tesseract_path()
    if exe is None:
        raise FileNotFoundError(TESSERACT_MISSING)
    try:
        with Image.open(io.BytesIO(data)) as img:
            gray = np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    bars = find_bars(gray)
    if not bars:
        return None
    texts: list[str] = []
    for where, crop in bars:
        found = _vote(crop, patterns, exe, texts)
        if found is not None:
            return StampReading(found[0], " | ".join(texts), where, found[1])
    return StampReading(None, " | ".join(texts))
