"""Motion detector for bursts: needs no weights.

Within one burst (frames of one trigger, same camera, seconds apart) the scene
is still and the animal moves. We estimate the background as the per-pixel
median of the burst, difference each frame against it, clean the mask with
morphology and box the connected parts.

Why these choices:

* Frames are compared after dividing by their own median brightness, because an
  infrared flash or auto-exposure changes the whole frame from shot to shot.
* The threshold adapts to each frame's noise (median absolute deviation of the
  difference): night IR frames are grainy, day frames are clean.
* The top and bottom bands are ignored: camera-trap info bars (time,
  temperature, moon) change text between frames of a burst.
* A frame where a large part of the image changed (camera knocked, light
  switched, snow shaken off a branch) gives no boxes: motion is not evidence
  there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from irbis.vision.boxes import Detection

__all__ = ["DEFAULT_THRESHOLD", "MotionDetector", "MotionParams"]

#: Operating point of motion alone: every box it returns (scores only rank them).
DEFAULT_THRESHOLD = 0.0


@dataclass(frozen=True)
class MotionParams:
    """Tuning of :class:`MotionDetector` (defaults chosen on real bursts)."""

    width: int = 320  # analysis width in pixels; height keeps the aspect ratio
    min_frames: int = 3  # a median of fewer frames is not a background
    band: float = 0.07  # fraction of height ignored at top and bottom (info bars)
    k_sigma: float = 5.0  # threshold in robust standard deviations of the difference
    min_abs: float = 0.06  # ... and at least this relative brightness change
    min_area: float = 0.002  # smallest blob, fraction of the analysed image
    max_changed: float = 0.35  # more changed than this: scene change, no boxes
    blur: int = 5  # Gaussian blur kernel before differencing (odd)
    strong: float = 2.5  # a blob must hold pixels this many times over the threshold
    close: int = 9  # closing kernel joining the parts of one animal (analysis pixels)


class MotionDetector:
    """Background-subtraction detector over the frames of one burst.

    Parameters
    ----------
    params
        Thresholds; see :class:`MotionParams`.
    name
        Recorded as the detections' ``source``.
    """

    name = "motion"
    version = "median-bg-1"

    def __init__(self, params: MotionParams | None = None) -> None:
        self.params = params or MotionParams()

    def _prepare(self, frames: Sequence[Image.Image]) -> tuple[np.ndarray, float, float]:
        import cv2

        p = self.params
        w0, h0 = frames[0].size
        h = max(1, round(h0 * p.width / w0))
        stack = []
        for im in frames:
            g = im.convert("L")
            if g.size != (w0, h0):  # a burst with mixed sizes: compare at the first size
                g = g.resize((w0, h0))
            a = np.asarray(g.resize((p.width, h), Image.Resampling.BILINEAR), dtype=np.float32)
            a = cv2.GaussianBlur(a, (p.blur, p.blur), 0)
            # Divide by the frame's own brightness: flashes and exposure differ per shot.
            a = a / max(float(np.median(a)), 8.0)
            stack.append(a)
        return np.stack(stack), w0 / p.width, h0 / h

    def detect_burst(self, frames: Sequence[Image.Image]) -> list[list[Detection]]:
        """Boxes per frame, in original pixels of each frame.

        Bursts shorter than ``min_frames`` give no boxes (no background to compare to).
        """
        import cv2

        p = self.params
        n = len(frames)
        if n < p.min_frames:
            return [[] for _ in frames]
        stack, sx, sy = self._prepare(frames)
        bg = np.median(stack, axis=0)
        h, w = bg.shape
        y0, y1 = int(round(h * p.band)), int(round(h * (1 - p.band)))
        kernel_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        kernel_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (p.close, p.close))
        out: list[list[Detection]] = []
        for i in range(n):
            diff = np.abs(stack[i] - bg)
            diff[:y0] = 0
            diff[y1:] = 0
            core = diff[y0:y1]
            med = float(np.median(core))
            mad = float(np.median(np.abs(core - med))) * 1.4826
            thr = max(med + p.k_sigma * mad, p.min_abs)
            weak = (diff > thr).astype(np.uint8)
            weak = cv2.morphologyEx(weak, cv2.MORPH_OPEN, kernel_open)
            changed = float(weak[y0:y1].mean()) if y1 > y0 else 0.0
            if changed > p.max_changed:
                out.append([])
                continue
            # Hysteresis: texture noise (ripples, grass) crosses the threshold in
            # specks; an animal has a body far above it. Blobs come from the strong
            # mask, so a ripple field touching the animal cannot inflate its box.
            mask = (diff > p.strong * thr).astype(np.uint8)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel_open)
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel_close)
            count, labels, stats, _c = cv2.connectedComponentsWithStats(mask, connectivity=8)
            dets: list[Detection] = []
            for j in range(1, count):
                x, y, bw, bh, area = (int(v) for v in stats[j])
                if area < p.min_area * h * w:
                    continue
                inside = labels[y : y + bh, x : x + bw] == j
                values = diff[y : y + bh, x : x + bw][inside]
                strength = float(np.percentile(values, 90)) / (p.strong * thr)
                score = float(1.0 - np.exp(-strength))
                dets.append(
                    Detection(
                        x * sx,
                        y * sy,
                        (x + bw) * sx,
                        (y + bh) * sy,
                        round(score, 4),
                        "animal",
                        "motion",
                    )
                )
            out.append(sorted(dets, key=lambda d: -d.score))
        return out
