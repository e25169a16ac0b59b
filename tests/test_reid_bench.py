"""The reid benchmarks run end to end on tiny inputs and print the JSON they promise."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from .conftest import need_data

ROOT = Path(__file__).resolve().parents[1]


def _coat(seed: int, h: int = 220, w: int = 340) -> np.ndarray:
    """A fake flank: light fur with random dark rosettes."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 170, np.uint8)
    for _ in range(60):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        ax = (int(rng.uniform(6, 15)), int(rng.uniform(5, 12)))
        ang = float(rng.uniform(0, 180))
        cv2.ellipse(img, c, ax, ang, 0, 360, int(rng.uniform(20, 70)), int(rng.uniform(2, 5)))
    return cv2.GaussianBlur(img, (3, 3), 0)


def _frame(coat: np.ndarray, seed: int, h: int = 300, w: int = 400) -> np.ndarray:
    """The coat slightly rotated and shifted on a noisy scene, with Reconyx-like bars."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.integers(60, 200, (h // 8, w // 8)).astype(np.uint8), (w, h))
    ch, cw = coat.shape
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), float(rng.uniform(-5, 5)), 0.95)
    m[0, 2] += (w - cw) / 2 + rng.uniform(-15, 15)
    m[1, 2] += (h - ch) / 2 + rng.uniform(-10, 10)
    warped = cv2.warpAffine(coat, m, (w, h))
    inside = cv2.warpAffine(np.full_like(coat, 255), m, (w, h)) > 0
    img = np.where(inside, warped, bg).astype(np.float32) + rng.normal(0, 3, (h, w))
    img = np.clip(img, 0, 255).astype(np.uint8)
    img[:18] = 0
    img[-18:] = 0
    cv2.putText(img, "2012-08-23 9:24:36 AM M 3/10", (3, 13), 0, 0.4, 255, 1, cv2.LINE_AA)
    cv2.putText(img, "PANTHERA-22", (3, h - 5), 0, 0.4, 255, 1, cv2.LINE_AA)
    return img


def _dataset(root: Path) -> Path:
    rows = []
    for ind in range(2):
        coat = _coat(10 + ind)
        for enc in range(2):
            for k in range(2):
                name = f"cat{ind}_e{enc}_{k}.jpg"
                cv2.imwrite(str(root / name), _frame(coat, 100 * ind + 10 * enc + k))
                rows.append((name, f"Cat{ind}", f"c{ind}e{enc}"))
    labels = root / "labels.csv"
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "individual_id", "encounter"])
        w.writerows(rows)
    return labels


def _run(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_reid_scale_bench_small() -> None:
    doc = _run("bench/reid_scale.py", "--sizes", "20,60", "--kp", "40", "--queries", "4")
    steps = doc["default"]
    assert [s["annotations"] for s in steps] == [20, 60]
    for s in steps:
        assert s["descriptors"] == s["annotations"] * 40
        assert 0 < s["p50_ms"] <= s["p95_ms"]
        assert s["index_mb"] > 0 and s["index"] == "flat"
    assert doc["growth_last_step"]["annotations_x"] == 3.0


def test_reid_accuracy_bench_on_synthetic_images(tmp_path: Path) -> None:
    _dataset(tmp_path)
    doc = _run("bench/reid_accuracy.py", "--data", str(tmp_path))
    for method in ("default", "baseline"):
        res = doc[method]
        for key in ("top1", "top5", "mAP", "ms_per_query", "pair_precision", "pair_recall"):
            assert key in res, (method, key)
        # Two clean synthetic coats: both matchers must tell them apart.
        assert res["top1"] == 1.0, (method, res)
    assert set(doc["default_wins"]) >= {"top1", "top5", "mAP", "ms_per_query"}


def test_reid_matchable_on_the_real_views() -> None:
    root = need_data("reid", "snowleopard-tajikistan")
    doc = _run("bench/reid_matchable.py", "--data", str(root))
    # Every judged photo is a real row (the script refuses unknown paths), and the
    # two passes cover every photo of the cats other than Cat1, Cat8 and Cat12.
    assert doc["judged_photos"] == 216 and doc["closed_set_queries"] == 474
    bounds = [doc["generous"][p]["top1_bound"] for p in ("first_pass", "second_pass")]
    assert all(0.5 < b <= 1.0 for b in bounds)
    # "Certain" queries need both passes to agree, so there are fewer of them
    # than photos with an agreed flank, and only cats seen in several encounters.
    assert 0 < doc["certain_queries"] <= doc["agreed_flank_photos"]
    assert set(doc["certain_by_individual"]) <= {"Cat2", "Cat3", "Cat4", "Cat5", "Cat21", "Cat23"}
    station = _run("bench/reid_matchable.py", "--data", str(root), "--protocol", "station")
    assert station["closed_set_queries"] < doc["closed_set_queries"]
    assert station["certain_queries"] <= doc["certain_queries"]
