"""Boxes: the detection record every backend returns, IoU and greedy NMS.

Coordinates are ``x1, y1, x2, y2`` in pixels of the original image (not the
network input), as floats; :meth:`Detection.normalized` gives Camtrap DP's
``x, y, width, height`` as fractions of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "CATEGORIES",
    "Detection",
    "box_iou",
    "iou_matrix",
    "nms",
    "overlap_fraction",
    "suppress_inside",
]

# The verdict vocabulary shared with the database and MegaDetector.
CATEGORIES = ("animal", "person", "vehicle")


@dataclass(frozen=True, slots=True)
class Detection:
    """One box in one frame.

    Attributes
    ----------
    x1, y1, x2, y2
        Corners in original-image pixels.
    score
        Confidence in 0..1 (for the learned detector, objectness × class probability).
    category
        ``animal``, ``person`` or ``vehicle``.
    source
        What produced it: a model name (``mdlite``), ``motion`` or ``fused``.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    category: str = "animal"
    source: str = ""

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def normalized(self, width: int, height: int) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` as fractions of the image, clipped to ``[0, 1]``."""
        x1 = min(max(self.x1 / width, 0.0), 1.0)
        y1 = min(max(self.y1 / height, 0.0), 1.0)
        x2 = min(max(self.x2 / width, 0.0), 1.0)
        y2 = min(max(self.y2 / height, 0.0), 1.0)
        return (x1, y1, x2 - x1, y2 - y1)

    def with_(self, **changes: object) -> Detection:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def box_iou(a: tuple[float, ...] | Detection, b: tuple[float, ...] | Detection) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes."""
    ax1, ay1, ax2, ay2 = a.xyxy if isinstance(a, Detection) else a[:4]
    bx1, by1, bx2, by2 = b.xyxy if isinstance(b, Detection) else b[:4]
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def overlap_fraction(a: Detection, b: Detection) -> float:
    """Fraction of the smaller box covered by the other (1 when one holds the other)."""
    iw = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    ih = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    small = min(a.area, b.area)
    return iw * ih / small if small > 0 else 0.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(n, 4)`` and ``(m, 4)`` ``x1, y1, x2, y2`` arrays."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms`` does it.

    Boxes are visited by descending score; a box is dropped when its IoU with
    an already kept box is *greater than* ``iou_threshold``.

    Parameters
    ----------
    boxes
        ``(n, 4)`` array of ``x1, y1, x2, y2``.
    scores
        ``(n,)`` scores.
    iou_threshold
        Suppression threshold.

    Returns
    -------
    numpy.ndarray
        Indices of the kept boxes, highest score first.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    # Stable sort so ties keep input order (deterministic across platforms).
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def suppress_inside(detections: list[Detection], fraction: float) -> list[Detection]:
    """Drop a box when ``fraction`` of its area lies inside a higher-scoring kept box.

    NMS keeps a box on a large cat's head beside the box on the whole cat
    (their IoU is small); this keeps the whole cat only. Input in any order;
    output highest score first.
    """
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: -d.score):
        area = max(0.0, d.x2 - d.x1) * max(0.0, d.y2 - d.y1)
        inside = False
        for k in kept:
            iw = max(0.0, min(d.x2, k.x2) - max(d.x1, k.x1))
            ih = max(0.0, min(d.y2, k.y2) - max(d.y1, k.y1))
            if area > 0 and iw * ih >= fraction * area:
                inside = True
                break
        if not inside:
            kept.append(d)
    return kept
