"""irbis.reid on synthetic rosette patterns: fast, no real data needed."""

from __future__ import annotations

from pathlib import Path

import cv2
import faiss
import numpy as np
import pytest

from irbis.core.errors import IrbisError
from irbis.reid import (
    Annotation,
    BadImageError,
    Calibration,
    Catalogue,
    MatchConfig,
    Side,
    cluster_annotations,
    cluster_pairs,
    detect_info_bars,
    extract,
    fit_calibration,
    pair_scores,
    prepare,
    read_labels,
)

H, W, BAR = 360, 640, 16


def pattern(seed: int, h: int = 300, w: int = 460) -> np.ndarray:
    """A fake flank: grey fur with random dark rosettes (rings and blobs)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 170, np.uint8)
    img = cv2.add(img, rng.integers(0, 25, (h, w), dtype=np.uint8))
    for _ in range(70):
        c = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        ax = (int(rng.integers(5, 16)), int(rng.integers(5, 16)))
        ang = float(rng.uniform(0, 180))
        if rng.random() < 0.5:
            cv2.ellipse(img, c, ax, ang, 0, 360, 40, thickness=int(rng.integers(2, 5)))
        else:
            cv2.ellipse(img, c, ax, ang, 0, 360, 50, thickness=-1)
    return cv2.GaussianBlur(img, (3, 3), 0)


def frame(
    pat: np.ndarray, seed: int, bar_text: str | None = "2012-08-23 09:24 M 3/10 10C"
) -> np.ndarray:
    """Place a pattern in a frame with a small random similarity warp and info bars."""
    rng = np.random.default_rng(1000 + seed)
    scene = np.full((H, W), 90, np.uint8)
    scene = cv2.add(scene, rng.integers(0, 30, (H, W), dtype=np.uint8))
    ang = float(rng.uniform(-8, 8))
    s = float(rng.uniform(0.9, 1.05))
    m = cv2.getRotationMatrix2D((pat.shape[1] / 2, pat.shape[0] / 2), ang, s)
    m[:, 2] += (float(rng.uniform(60, 110)), float(rng.uniform(25, 40)))
    warped = cv2.warpAffine(pat, m, (W, H), borderValue=0)
    inside = cv2.warpAffine(np.full(pat.shape, 255, np.uint8), m, (W, H)) > 0
    scene[inside] = warped[inside]
    img = cv2.cvtColor(scene, cv2.COLOR_GRAY2BGR)
    if bar_text is not None:
        for y0 in (0, H - BAR):
            img[y0 : y0 + BAR] = 0
            cv2.putText(
                img,
                bar_text,
                (4, y0 + 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            cv2.putText(
                img,
                "PANTHERA-22  RECONYX",
                (360, y0 + 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (230, 230, 230),
                1,
                cv2.LINE_AA,
            )
    return img


def feats_of(img: np.ndarray):
    return extract(prepare(img))


@pytest.fixture(scope="module")
def cats() -> dict[str, list[np.ndarray]]:
    return {f"C{k}": [frame(pattern(k), 10 * k + j) for j in range(2)] for k in range(4)}


def test_info_bars_detected() -> None:
    img = frame(pattern(1), 1)
    top, bottom = detect_info_bars(img)
    assert BAR <= top <= BAR + 8 and BAR <= bottom <= BAR + 8
    assert detect_info_bars(frame(pattern(1), 1, bar_text=None)) == (0, 0)
    p = prepare(img)
    assert p.bars == (top, bottom) and p.gray.shape[0] == H - top - bottom


def test_info_bar_never_drives_a_match() -> None:
    """Two different cats with an identical burned-in bar must not match on it."""
    a, b, c = frame(pattern(21), 1), frame(pattern(22), 2), frame(pattern(23), 3)
    cat = Catalogue()
    # Two individuals, so LNBNN has a competitor to normalise against.
    cat.add(Annotation("a", a, individual="A"), feats_of(a))
    cat.add(Annotation("c", c, individual="C"), feats_of(c))
    res = cat.query(feats_of(b))
    assert res.decision != "same"
    assert all(m.probability < cat.config.decision.same for m in res.candidates)
    for m in res.annotations:  # no evidence ever comes from the bar rows
        assert np.all((m.query_xy[:, 1] >= BAR) & (m.query_xy[:, 1] < H - BAR))
    # Frames that are nothing but bar + featureless scene give no evidence at all.
    blank_scene = np.full((H, W, 3), 120, np.uint8)
    for y0 in (0, H - BAR):
        blank_scene[y0 : y0 + BAR] = a[y0 : y0 + BAR]
    assert len(feats_of(blank_scene)) == 0
    # Without bar removal the text would match: the test has teeth.
    bars_only = extract(prepare(a, box=(0, 0, W, H)))
    assert len(bars_only) > 0


def test_same_cat_is_found(cats: dict[str, list[np.ndarray]]) -> None:
    cat = Catalogue()
    for name, frames in cats.items():
        cat.add(Annotation(f"{name}-0", frames[0], individual=name), feats_of(frames[0]))
    for name, frames in cats.items():
        res = cat.query(feats_of(frames[1]))
        assert res.individual == name
        assert res.decision == "same"
        best = res.candidates[0]
        assert best.inliers >= 6 and best.query_xy.shape == best.match_xy.shape
        # Matched keypoints are in original-frame pixels (below the top bar).
        assert best.query_xy[:, 1].min() >= BAR


def test_left_never_matches_right(cats: dict[str, list[np.ndarray]]) -> None:
    f0, f1 = cats["C1"]
    cat = Catalogue()
    cat.add(Annotation("l", f0, individual="C1", side=Side.LEFT), feats_of(f0))
    assert cat.query(feats_of(f1), side=Side.RIGHT).candidates == []
    assert cat.query(feats_of(f1), side=Side.LEFT).individual == "C1"
    assert cat.query(feats_of(f1), side=Side.UNKNOWN).individual == "C1"
    assert Side.parse("L") is Side.LEFT and Side.parse("") is Side.UNKNOWN


def test_bad_crops(tmp_path: Path) -> None:
    with pytest.raises(BadImageError):
        prepare(np.full((10, 10), 128, np.uint8))
    with pytest.raises(BadImageError):
        prepare(frame(pattern(3), 3), box=(5000, 5000, 50, 50))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(BadImageError, match="broken.jpg"):
        prepare(bad)
    with pytest.raises(BadImageError):
        prepare(tmp_path / "missing.jpg")
    with pytest.raises(BadImageError):
        prepare(b"")
    blank = extract(prepare(np.full((200, 300, 3), 128, np.uint8)))
    assert len(blank) == 0
    cat = Catalogue()
    cat.add(Annotation("blank", "-", individual="X"), blank)  # stored, never matched
    assert cat.query(blank).decision == "new"


def test_empty_catalogue(cats: dict[str, list[np.ndarray]]) -> None:
    res = Catalogue().query(feats_of(cats["C0"][0]))
    assert res.decision == "new" and res.candidates == [] and res.individual is None


def test_incremental_add_remove_merge_split(cats: dict[str, list[np.ndarray]]) -> None:
    cat = Catalogue()
    f = {n: [feats_of(x) for x in fr] for n, fr in cats.items()}
    cat.add(Annotation("c0", cats["C0"][0], individual="C0"), f["C0"][0])
    assert cat.query(f["C2"][1]).individual != "C2"
    cat.add(Annotation("c2", cats["C2"][0], individual="C2"), f["C2"][0])
    assert cat.query(f["C2"][1]).individual == "C2"
    with pytest.raises(IrbisError):
        cat.add(Annotation("c2", cats["C2"][0]), f["C2"][0])
    # Confirming a match re-labels without touching the index.
    n = cat.n_descriptors
    cat.set_individual("c2", "Khan")
    assert cat.query(f["C2"][1]).individual == "Khan" and cat.n_descriptors == n
    assert cat.merge("C0", "Khan") == 1
    assert cat.individuals() == {"C0": ["c0", "c2"]}
    assert cat.split("C0", ["c2"], "Khan") == 1
    cat.remove("c2")
    assert "c2" not in cat and cat.n_descriptors == n - len(f["C2"][0])
    assert cat.query(f["C2"][1]).individual != "Khan"
    with pytest.raises(IrbisError):
        cat.remove("c2")


def test_ivf_index_still_matches(cats: dict[str, list[np.ndarray]]) -> None:
    cat = Catalogue(MatchConfig(ivf_above=300, ivf_codec="Flat", nprobe=64))
    for name, frames in cats.items():
        cat.add(Annotation(name, frames[0], individual=name), feats_of(frames[0]))
    assert cat._ivf
    for name, frames in cats.items():
        assert cat.query(feats_of(frames[1])).individual == name
    cat.remove("C3")
    assert cat.query(feats_of(cats["C3"][1])).individual != "C3"


def test_ivf_retrains_as_it_grows(cats: dict[str, list[np.ndarray]]) -> None:
    cfg = MatchConfig(ivf_above=300, ivf_retrain=1.5, ivf_codec="Flat", nprobe=256)
    cat = Catalogue(cfg)
    # Gallery frames plus distractors (the other frames under other names).
    for name, frames in cats.items():
        cat.add(Annotation(name, frames[0], individual=name), feats_of(frames[0]))
    first = cat._trained_at
    for name, frames in cats.items():
        cat.add(Annotation(f"x{name}", frames[1], individual=f"X{name}"), feats_of(frames[1]))
    assert cat._ivf and cat._trained_at > first >= 300
    assert cat._trained_at > cat.n_descriptors / 1.5
    cat.remove("xC0")
    assert "xC0" not in cat
    assert cat.query(feats_of(cats["C0"][1])).individual == "C0"
    assert cat.memory_bytes()["index"] > 0


def test_a_big_catalogue_switches_to_compact_codes(cats: dict[str, list[np.ndarray]]) -> None:
    cfg = MatchConfig(
        ivf_above=300,
        ivf_codec="Flat",
        compact_above=600,
        compact_codec="SQ8",
        nprobe=256,
        compact_nprobe=256,
    )
    cat = Catalogue(cfg)
    for name, frames in cats.items():
        cat.add(Annotation(name, frames[0], individual=name), feats_of(frames[0]))
    assert cat.n_descriptors > 600
    ivf = faiss.extract_index_ivf(cat._index)
    assert ivf.code_size == 128  # one byte per dimension, not four
    for name, frames in cats.items():
        assert cat.query(feats_of(frames[1])).individual == name
    small = Catalogue(MatchConfig(ivf_above=300, ivf_codec="Flat", nprobe=256))
    for name, frames in cats.items():
        small.add(Annotation(name, frames[0], individual=name), feats_of(frames[0]))
    assert faiss.extract_index_ivf(small._index).code_size == 512  # never compact by default
    small.query(feats_of(cats["C0"][1]))
    # compact_nprobe (16) is not its; nprobe is at most the number of cells.
    small_ivf = faiss.extract_index_ivf(small._index)
    assert small_ivf.nprobe == min(256, small_ivf.nlist) > MatchConfig().compact_nprobe
    assert cat.memory_bytes()["index"] < small.memory_bytes()["index"]


def test_clustering(cats: dict[str, list[np.ndarray]]) -> None:
    anns, feats, truth = [], [], []
    for name, frames in cats.items():
        for j, fr in enumerate(frames):
            anns.append(Annotation(f"{name}{j}", fr, encounter=f"{name}-{j}"))
            feats.append(feats_of(fr))
            truth.append(name)
    labels, edges = cluster_annotations(anns, feats)
    ps = pair_scores(labels, truth)
    assert ps["pair_precision"] == 1.0 and ps["pair_recall"] == 1.0 and edges


def test_cluster_pairs_and_scores() -> None:
    lab = cluster_pairs(5, [(0, 1, 0.99), (2, 3, 0.5)], 0.95, ["a", "b", "c", "d", "d"])
    assert lab[0] == lab[1] and lab[3] == lab[4] and lab[2] != lab[3]
    s = pair_scores(np.array([0, 0, 1]), ["x", "y", "y"])
    assert s["pair_precision"] == 0.0 and s["pair_recall"] == 0.0
    assert cluster_pairs(0, [], 0.5).size == 0


def test_calibration_monotone() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.gamma(4, 5, 200), rng.gamma(1, 1, 400)
    cal = fit_calibration(np.r_[pos, neg], np.r_[np.ones(200), np.zeros(400)])
    p = cal.probability(np.array([0.0, 1.0, 5.0, 50.0]))
    assert np.all(np.diff(p) > 0) and p[0] < 0.3 and p[-1] > 0.9
    assert abs(float(cal.probability(cal.score_for(0.9))) - 0.9) < 1e-6
    assert fit_calibration(np.array([1.0]), np.array([True])) == Calibration()


def test_read_labels(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("path,individual_id,side,role\na.jpg,K,left,query\n")
    (a,) = read_labels(tmp_path / "l.csv")
    assert a.side is Side.LEFT and a.role == "query" and a.image == tmp_path / "a.jpg"
    (tmp_path / "bad.csv").write_text("file,id\na.jpg,K\n")
    with pytest.raises(IrbisError, match="path,individual_id"):
        read_labels(tmp_path / "bad.csv")


def test_shifted_camera_background_is_flagged() -> None:
    from irbis.reid.catalogue import _shifted_background

    rng = np.random.default_rng(3)
    # A re-mounted camera: rocks moved by (-11, -14.5) px, to a fraction of a pixel.
    rocks = np.array([-11.0, -14.5]) + rng.normal(0, 0.3, (12, 2))
    # The animal: displacements all over the place.
    animal = rng.uniform(-300, 300, (25, 2))
    flags = _shifted_background(np.vstack([rocks, animal]), tol=3.0, max_shift=80.0)
    assert flags[:12].all() and not flags[12:].any()
    # Too few agreeing correspondences is no evidence of a shift.
    assert not _shifted_background(rocks[:4], 3.0, 80.0).any()


def test_burst_pooled_answer_sums_frames_scores() -> None:
    """A burst's frames vote together: one weak frame is outvoted, open-set frames don't count."""
    from irbis.reid.annotations import Annotation
    from irbis.reid.evaluate import _burst_pooled

    anns = [
        Annotation(id="q1", image=None, individual="Khan", encounter="e1"),
        Annotation(id="q2", image=None, individual="Khan", encounter="e1"),
        Annotation(id="q3", image=None, individual="Zara", encounter="e2"),
        Annotation(id="g1", image=None, individual="Khan", encounter="e3"),
        Annotation(id="g2", image=None, individual="Zara", encounter="e4"),
        Annotation(id="q4", image=None, individual="Nova", encounter="e5"),  # seen nowhere else
    ]
    enc = [a.encounter for a in anns]
    by_enc: dict[str | None, list[int]] = {}
    for i, e in enumerate(enc):
        by_enc.setdefault(e, []).append(i)
    scores = {
        "e1": [{"Zara": 3.0, "Khan": 2.0}, {"Khan": 5.0}],  # frame 1 alone would say Zara
        "e2": [{"Khan": 1.0}],  # Zara only at rank 2
        "e5": [{"Khan": 9.0}],
    }

    def own_burst(i: int) -> set[int]:
        return set(by_enc[enc[i]])

    top1, top5 = _burst_pooled(anns, [0, 1, 2, 5], enc, own_burst, scores)
    assert top1 == pytest.approx(2 / 3)  # q1 and q2 right through the burst, q3 wrong
    assert top5 == pytest.approx(2 / 3)  # Zara is not among e2's candidates at all
    assert _burst_pooled(anns, [5], enc, own_burst, scores) == (None, None)
    # Excluding more (a station protocol that also hides g1) turns Khan's burst open-set.
    assert _burst_pooled(anns, [0, 1], enc, lambda i: own_burst(i) | {3}, scores) == (None, None)
