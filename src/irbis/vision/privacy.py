"""Blur people before an image leaves the project.

Camera traps photograph rangers, herders and poachers. Anything irbis exports
(reports, web pages, Camtrap DP media, crops for identification) passes its
frames through :func:`blur_people` with the frame's detections: every
``person`` box is blurred so strongly that no face or clothing stays
recognisable, and a little beyond the box, because detector boxes are tight.
"""

from __future__ import annotations

from collections.abc import Iterable

from PIL import Image, ImageFilter

from irbis.vision.boxes import Detection

__all__ = ["blur_people"]


def blur_people(
    image: Image.Image,
    detections: Iterable[Detection],
    *,
    margin: float = 0.15,
    min_score: float = 0.0,
) -> Image.Image:
    """A copy of ``image`` with every ``person`` box blurred beyond recognition.

    Parameters
    ----------
    image
        The frame (not modified).
    detections
        Boxes in this frame's pixels; only ``category == "person"`` ones count.
    margin
        Each box is grown by this fraction of its size on every side.
    min_score
        Ignore person boxes below this score (default: blur them all; a
        missed blur is worse than a blurred bush).

    Returns
    -------
    PIL.Image.Image
        The blurred copy (the same image object's copy even when nothing is blurred).
    """
    out = image.copy()
    for d in detections:
        if d.category != "person" or d.score < min_score:
            continue
        w, h = d.x2 - d.x1, d.y2 - d.y1
        x1 = max(0, int(d.x1 - margin * w))
        y1 = max(0, int(d.y1 - margin * h))
        x2 = min(out.width, int(d.x2 + margin * w + 1))
        y2 = min(out.height, int(d.y2 + margin * h + 1))
        if x2 <= x1 or y2 <= y1:
            continue
        region = out.crop((x1, y1, x2, y2))
        # Pixelate then blur: a Gaussian alone can be partly inverted, a
        # mosaic of 16 px blocks cannot.
        small = region.resize(
            (max(1, (x2 - x1) // 16), max(1, (y2 - y1) // 16)), Image.Resampling.BILINEAR
        )
        region = small.resize(region.size, Image.Resampling.NEAREST)
        radius = max(2, min(x2 - x1, y2 - y1) // 10)
        out.paste(region.filter(ImageFilter.GaussianBlur(radius)), (x1, y1))
    return out
