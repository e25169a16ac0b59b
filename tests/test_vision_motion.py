"""Motion detector on a real night burst, and fusion rules on hand-made boxes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from irbis.vision.boxes import Detection, box_iou
from irbis.vision.fusion import FusionParams, fuse_burst
from irbis.vision.motion import MotionDetector

from .conftest import need_data


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_motion_finds_the_heron_in_the_night_burst() -> None:
    root = need_data("cameratrap", "camtrap-dp-example")
    ids = {r["fileName"]: r["mediaID"] for r in _rows(root / "media.csv")}
    gt = {
        r["mediaID"]: r
        for r in _rows(root / "observations.csv")
        if r["bboxX"] and r["scientificName"].startswith("Ardea")
    }
    files = sorted((root / "media").glob("*.JPG"))
    frames = [Image.open(f) for f in files]
    boxes = MotionDetector().detect_burst(frames)
    hits, false_boxes = 0, 0
    for f, im, dets in zip(files, frames, boxes, strict=True):
        o = gt[ids[f.name]]
        x, y, w, h = (float(o[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight"))
        W, H = im.size
        heron = (x * W, y * H, (x + w) * W, (y + h) * H)
        ious = [box_iou(d, heron) for d in dets]
        hits += any(i >= 0.5 for i in ious)
        false_boxes += sum(i < 0.1 for i in ious)
    assert hits >= 0.8 * len(files)  # "most frames"; today all 10
    assert false_boxes == 0


def test_motion_needs_a_burst_and_ignores_global_change() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(60, 120, (240, 320), dtype=np.uint8)
    frames = []
    for i in range(5):
        a = base.copy()
        a[100:140, 40 + 40 * i : 80 + 40 * i] = 250  # a bright "animal" walking right
        frames.append(Image.fromarray(a))
    det = MotionDetector()
    assert det.detect_burst(frames[:2]) == [[], []]
    out = det.detect_burst(frames)
    for i, dets in enumerate(out):
        assert dets, f"frame {i}: walker missed"
        best = dets[0]
        assert best.x1 <= 40 + 40 * i + 8 and best.x2 >= 80 + 40 * i - 8
    # A whole-frame brightness change (clouds, flash) with nothing moving: no boxes.
    flat = [
        Image.fromarray(np.clip(base.astype(int) + 40 * (i % 2), 0, 255).astype(np.uint8))
        for i in range(4)
    ]
    assert all(not d for d in det.detect_burst(flat))


def _d(x1: float, score: float, source: str = "mdlite") -> Detection:
    return Detection(x1, 10, x1 + 20, 30, score, "animal", source)


def test_fusion_rules() -> None:
    p = FusionParams()
    learned = [[_d(0, 0.6)], [_d(50, 0.03)], [], [_d(200, 0.03)]]
    motion = [[_d(1, 0.9, "motion")], [_d(51, 0.8, "motion")], [_d(100, 0.9, "motion")], []]
    out = fuse_burst(learned, motion, p)
    assert [d.source for d in out[0]] == ["mdlite"]
    assert [d.source for d in out[1]] == ["fused"] and out[1][0].score > 0.03
    assert [d.source for d in out[2]] == ["motion"]  # burst confirmed by frame 0
    assert out[3] == []  # weak learned box with no motion under it: dropped
    # Without a confirming frame, lone motion adds nothing.
    out2 = fuse_burst(learned[1:], motion[1:], p)
    assert out2[1] == []
