"""Fused detector on real snow-leopard bursts (subset) and its precision guard.

The full measurement over all 478 frames is ``bench/detect_recall.py``.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from irbis.vision.boxes import Detection, box_iou
from irbis.vision.detector import YoloxDetector, load_detector
from irbis.vision.fusion import FusionParams, fuse_burst
from irbis.vision.motion import MotionDetector
from irbis.vision.registry import ModelError, install, models_dir

from .conftest import need_data

# Night bursts where the learned detector alone is weak (8 of 25 frames at 0.1).
HARD_ENCOUNTERS = ("S14C1_2012-08-08", "S14C1_2012-07-24")


@pytest.fixture(scope="module")
def detector() -> YoloxDetector:
    try:
        install("mdlite", root=models_dir())
    except ModelError as exc:
        if "could not download" in str(exc):
            pytest.skip(f"mdlite not installable here: {exc}")
        raise
    return load_detector("mdlite", conf=FusionParams().confirm_threshold)


def _run(detector: YoloxDetector, frames: list[Image.Image]) -> tuple[list, list]:
    learned = detector.detect(frames, conf=FusionParams().confirm_threshold)
    return learned, fuse_burst(learned, MotionDetector().detect_burst(frames))


def test_fusion_recovers_night_bursts(detector: YoloxDetector) -> None:
    root = need_data("reid", "snowleopard-tajikistan")
    with (root / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["encounter"] in HARD_ENCOUNTERS]
    by_enc: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_enc[r["encounter"]].append(r)
    n_learned = n_fused = n = 0
    for enc_rows in by_enc.values():
        enc_rows.sort(key=lambda r: datetime.fromisoformat(f"{r['date']}T{r['time']}"))
        frames = [Image.open(root / r["path"]) for r in enc_rows]
        learned, fused = _run(detector, frames)
        n += len(frames)
        n_learned += sum(any(d.score >= 0.1 for d in ds) for ds in learned)
        n_fused += sum(bool(ds) for ds in fused)
    assert n == 25
    assert n_learned <= 10  # the case this test is about: the learned detector misses
    assert n_fused >= 0.9 * n


def _new_boxes(learned: list[Detection], fused: list[Detection]) -> list[Detection]:
    base = [d for d in learned if d.score >= 0.1]
    return [f for f in fused if not any(box_iou(f, b) >= 0.5 for b in base)]


def test_fusion_adds_no_box_on_camtrapr_scenes(detector: YoloxDetector) -> None:
    pics = need_data("cameratrap", "camtrapR", "pictures")
    unique: dict[str, Path] = {}
    for p in sorted(pics.rglob("*.JPG")):
        unique.setdefault(hashlib.sha256(Image.open(p).tobytes()).hexdigest(), p)
    by_station: dict[str, list[tuple[datetime, Path]]] = defaultdict(list)
    for p in unique.values():
        station = next((s for s in p.parts if s.startswith("Station")), p.parent.name)
        exif = Image.open(p).getexif()
        raw = exif.get_ifd(0x8769).get(36867) or exif.get(306) or "1970:01:01 00:00:00"
        by_station[station].append((datetime.strptime(str(raw).strip(), "%Y:%m:%d %H:%M:%S"), p))
    new = []
    for items in by_station.values():
        items.sort()
        burst: list[Path] = []
        for k, (t, p) in enumerate(items):
            if burst and (t - items[k - 1][0]).total_seconds() > 30:
                new += _burst_new(detector, burst)
                burst = []
            burst.append(p)
        new += _burst_new(detector, burst)
    assert len(unique) > 50
    assert new == []


def _burst_new(detector: YoloxDetector, paths: list[Path]) -> list[tuple[str, Detection]]:
    learned, fused = _run(detector, [Image.open(p) for p in paths])
    return [
        (p.name, d)
        for p, ls, fs in zip(paths, learned, fused, strict=True)
        for d in _new_boxes(ls, fs)
    ]
