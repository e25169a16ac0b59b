"""Image preparation for pattern matching: info bars, crops, contrast, scale.

Camera-trap frames carry a burned-in info bar (Reconyx: date, time, moon phase,
temperature, camera name on black) at the top and bottom. Identical text in two
frames of different cats gives perfect keypoint matches, so the bars are found
and cut away before any feature is computed, and a margin is trimmed as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from irbis.core.errors import IrbisError

#: Pixels darker than this or brighter than ``_BRIGHT`` are "bar-like": the bars
#: are white/grey text on black, while scene rows are dominated by mid-tones.
_DARK = 45
_BRIGHT = 185


class BadImageError(IrbisError):
    """An image that cannot be used for matching (unreadable, empty, too small)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A grey image ready for feature extraction.

    Attributes
    ----------
    gray:
        ``uint8`` image, contrast-normalised, info bars and outside of the crop removed.
    mask:
        ``uint8`` mask (255 = animal / usable) of the same shape, or ``None``.
    scale:
        Factor from original-crop pixels to ``gray`` pixels.
    offset:
        ``(x, y)`` of the top-left of ``gray`` in the original image, in original pixels.
    bars:
        ``(top, bottom)`` heights of the info bars removed, in original pixels.
    """

    gray: np.ndarray
    mask: np.ndarray | None
    scale: float
    offset: tuple[int, int]
    bars: tuple[int, int]

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(n, 2)`` keypoint coordinates of ``gray`` back to the original image."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return xy / self.scale + np.asarray(self.offset, dtype=np.float64)


def read_image(source: str | Path | bytes | np.ndarray) -> np.ndarray:
    """Read an image as a BGR ``uint8`` array.

    Parameters
    ----------
    source:
        A path, the encoded bytes of a file, or an array (grey or BGR) already decoded.

    Raises
    ------
    BadImageError
        When the file is missing, cannot be decoded or is empty.
    """
    if isinstance(source, np.ndarray):
        img = source
    else:
        if isinstance(source, bytes):
            data = np.frombuffer(source, dtype=np.uint8)
            name = "<bytes>"
        else:
            name = str(source)
            try:
                data = np.fromfile(name, dtype=np.uint8)
            except OSError as exc:
                raise BadImageError(f"{name}: cannot read ({exc}); check the path") from exc
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise BadImageError(f"{name}: not a decodable image; re-export or drop it")
    if img.ndim not in (2, 3) or img.size == 0:
        raise BadImageError("empty image array")
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return img


def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    if img.shape[2] == 1:
        return img[:, :, 0]
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def detect_info_bars(
    img: np.ndarray, max_fraction: float = 0.1, min_fraction: float = 0.012
) -> tuple[int, int]:
    """Heights of the burned-in info bars at the top and bottom of a frame.

    A bar is a run of rows, starting at the image edge, in which nearly every
    pixel is either very dark or very bright (text on a black band), and which
    holds some bright text. Runs shorter than ``min_fraction`` of the height are
    ignored (a dark sky edge); runs are capped at ``max_fraction`` so a night
    frame whose top is black never loses more than that. Cutting a few rows of a
    dark scene costs nothing, while keeping one row of text can create matches.

    Parameters
    ----------
    img:
        Grey or BGR image.
    max_fraction, min_fraction:
        Bounds on a bar's height as a fraction of the image height.

    Returns
    -------
    tuple of int
        ``(top, bottom)`` in pixels, each 0 when no bar is found; a small safety
        margin is included in a non-zero height.
    """
    g = _gray(img)
    h = g.shape[0]
    if h < 20:
        return 0, 0
    dark = (g <= _DARK).mean(axis=1)
    extreme = dark + (g >= _BRIGHT).mean(axis=1)
    # Anti-aliased glyph edges are mid-grey, so a text row is "mostly black, and
    # mostly extreme", not "all extreme".
    barlike = (dark >= 0.5) & (extreme >= 0.75)
    bright = (g >= _BRIGHT).mean(axis=1)
    cap = max(1, int(round(max_fraction * h)))
    floor = max(2, int(round(min_fraction * h)))
    margin = max(2, int(round(0.004 * h)))

    def run(order: np.ndarray) -> int:
        bad = np.flatnonzero(~barlike[order][:cap])
        n = int(bad[0]) if bad.size else cap
        if n < floor:
            return 0
        # Text: a bar without any bright pixel is just a dark scene edge, which is
        # harmless to keep; a bar with text must go.
        if bright[order][:n].max() < 0.004:
            return 0
        return min(n + margin, cap)

    top = run(np.arange(h))
    bottom = run(np.arange(h)[::-1])
    return top, bottom


def normalise_contrast(gray: np.ndarray, clip: float = 2.0, tiles: int = 8) -> np.ndarray:
    """CLAHE: equalise local contrast so night infrared and daylight rosettes look alike."""
    clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles))
    return clahe.apply(gray)


def prepare(
    image: str | Path | bytes | np.ndarray,
    box: tuple[float, float, float, float] | None = None,
    mask: str | Path | np.ndarray | None = None,
    max_side: int = 640,
    clahe: bool = True,
    min_side: int = 32,
    crop_to_mask: bool = True,
) -> Prepared:
    """Crop, clean and scale one annotation's image for feature extraction.

    Parameters
    ----------
    image:
        Path, bytes or array of the full frame.
    box:
        Animal crop ``(x, y, w, h)`` in original pixels, or ``None`` for the frame.
    mask:
        Optional animal mask (path or array, same size as the frame; non-zero = animal).
    max_side:
        Longest side of the working image; larger crops are shrunk.
    clahe:
        Apply contrast-limited histogram equalisation.
    min_side:
        Crops smaller than this (after bar removal) are refused.
    crop_to_mask:
        Without a box, crop to the mask's bounding box (plus 5 %).

    Raises
    ------
    BadImageError
        When the image is unreadable or the crop is too small to hold a pattern.
    """
    img = read_image(image)
    gray = _gray(img)
    h, w = gray.shape
    top, bottom = detect_info_bars(gray)
    x0, y0, x1, y1 = 0, top, w, h - bottom
    mk_full: np.ndarray | None = None
    if mask is not None:
        mk_full = _gray(read_image(mask) if not isinstance(mask, np.ndarray) else mask)
        if mk_full.shape != (h, w):
            mk_full = cv2.resize(mk_full, (w, h), interpolation=cv2.INTER_NEAREST)
        if box is None and crop_to_mask and mk_full.any():
            # Crop to the animal so the working resolution goes to rosettes, not rocks.
            ys, xs = np.nonzero(mk_full)
            mx, my = 0.05 * (xs.max() - xs.min()), 0.05 * (ys.max() - ys.min())
            box = (
                xs.min() - mx,
                ys.min() - my,
                xs.max() - xs.min() + 2 * mx,
                ys.max() - ys.min() + 2 * my,
            )
    if box is not None:
        bx, by, bw, bh = (float(v) for v in box)
        x0 = max(x0, int(np.floor(bx)))
        y0 = max(y0, int(np.floor(by)))
        x1 = min(x1, int(np.ceil(bx + bw)))
        y1 = min(y1, int(np.ceil(by + bh)))
    if x1 - x0 < min_side or y1 - y0 < min_side:
        raise BadImageError(
            f"crop {x1 - x0}x{y1 - y0} px is too small for a pattern (need {min_side}+)"
        )
    crop = gray[y0:y1, x0:x1]
    m: np.ndarray | None = None
    if mk_full is not None:
        m = np.where(mk_full[y0:y1, x0:x1] > 0, 255, 0).astype(np.uint8)
        if m.mean() < 255 * 0.01:
            m = None  # an empty mask is a drawing mistake, not "no animal"
    scale = min(1.0, max_side / max(crop.shape))
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        if m is not None:
            m = cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)
    if clahe:
        crop = normalise_contrast(crop)
    if m is not None:
        # Grow the rough hand-drawn mask a little: rosettes at its edge still count.
        k = max(3, int(0.03 * max(crop.shape)) | 1)
        m = cv2.dilate(m, np.ones((k, k), np.uint8))
    return Prepared(crop, m, scale, (x0, y0), (top, bottom))


def burst_masks(
    frames: list[np.ndarray], work_side: int = 320, threshold: int = 22
) -> list[np.ndarray | None]:
    """Rough animal masks from a burst taken by a fixed camera.

    The camera does not move within a burst, the animal does: the per-pixel
    median of the burst is the background, and what differs from it in a frame
    is the animal. Frames whose difference covers too little (the animal stood
    still) or too much (light changed) get ``None`` (no mask: use the frame).

    Parameters
    ----------
    frames:
        Frames of one burst (grey or BGR, same size); fewer than 3 give no masks.
    work_side:
        Long side of the downscaled frames the masks are computed on.
    threshold:
        Grey-level difference to the background that counts as foreground.

    Returns
    -------
    list
        ``uint8`` mask (255 = animal) at full frame size, or ``None``, per frame.
    """
    if len(frames) < 3:
        return [None] * len(frames)
    grays = [_gray(f) for f in frames]
    shape = grays[0].shape
    if any(g.shape != shape for g in grays):
        return [None] * len(frames)
    s = work_side / max(shape)
    size = (max(1, round(shape[1] * s)), max(1, round(shape[0] * s)))
    small = np.stack(
        [
            cv2.GaussianBlur(cv2.resize(g, size, interpolation=cv2.INTER_AREA), (5, 5), 0)
            for g in grays
        ]
    )
    # Median and difference on normalised brightness: IR flash strength varies.
    small = small.astype(np.float32)
    small *= (np.median(small) / np.maximum(np.median(small, axis=(1, 2)), 1.0))[:, None, None]
    bg = np.median(small, axis=0)
    out: list[np.ndarray | None] = []
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    for fr in small:
        fg = (np.abs(fr - bg) > threshold).astype(np.uint8) * 255
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kern, iterations=2)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(fg)
        if n <= 1:
            out.append(None)
            continue
        # Keep the large blobs (the animal), not flickering grass.
        big = 1 + np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= 0.25 * stats[1:, 4].max())
        m = np.isin(lab, big).astype(np.uint8) * 255
        frac = m.mean() / 255
        if not 0.02 <= frac <= 0.6:
            out.append(None)
            continue
        m = cv2.dilate(m, kern, iterations=2)
        out.append(cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST))
    return out
