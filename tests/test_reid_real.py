"""irbis.reid on the real Tajik snow-leopard photographs (subset, to stay fast).

Reads ../shared/data/reid/snowleopard-tajikistan in place (no licence: never
copied). Skips with a reason where the data is absent.
"""

from __future__ import annotations

from collections import defaultdict

import cv2
import pytest

from irbis.reid import EvalOptions, detect_info_bars, evaluate, read_image, read_labels

from .conftest import need_data

FRAMES_PER_ENCOUNTER = 3
MAX_QUERIES = 40


@pytest.fixture(scope="module")
def subset():
    root = need_data("reid", "snowleopard-tajikistan")
    anns = read_labels(root / "labels.csv")
    by_enc = defaultdict(list)
    for a in anns:
        by_enc[a.encounter].append(a)
    out = []
    for members in by_enc.values():
        members.sort(key=lambda a: a.id)
        step = max(1, len(members) // FRAMES_PER_ENCOUNTER)
        out += members[::step][:FRAMES_PER_ENCOUNTER]
    return out


def test_info_bars_found_on_every_bar_frame(subset) -> None:
    for a in subset:
        img = read_image(a.image)
        top, bottom = detect_info_bars(img)
        if img.shape[0] == 720:  # the 1280x720 frames carry the Reconyx bars
            assert top >= 20 and bottom >= 20, a.id
        assert top + bottom <= 0.2 * img.shape[0] + 1


@pytest.mark.slow
def test_default_beats_baseline(subset) -> None:
    cv2.setNumThreads(1)
    res = {
        m: evaluate(subset, EvalOptions(method=m, max_queries=MAX_QUERIES))
        for m in ("default", "baseline")
    }
    d, b = res["default"], res["baseline"]
    assert d["closed_set_queries"] >= 30
    assert d["top1"] > b["top1"]
    assert d["mAP"] > b["mAP"]
    assert d["top5"] >= b["top5"]
    assert d["ms_per_query"] < b["ms_per_query"]
