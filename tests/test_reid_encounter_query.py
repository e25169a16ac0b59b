"""One index search per encounter, compact keypoints and annotation-carrying ids."""

from __future__ import annotations

from dataclasses import replace

import faiss
import numpy as np
import pytest

from irbis.core.errors import IrbisError
from irbis.reid import Annotation, Catalogue, Features, MatchConfig, Side
from irbis.reid.catalogue import LOCAL_BITS, QueryResult, _strongest

from .test_reid_synthetic import feats_of, frame, pattern


@pytest.fixture(scope="module")
def cats() -> dict[str, list[Features]]:
    return {f"C{k}": [feats_of(frame(pattern(k), 10 * k + j)) for j in range(3)] for k in range(4)}


def _built(cats: dict[str, list[Features]], cfg: MatchConfig) -> Catalogue:
    cat = Catalogue(cfg)
    for name, fs in cats.items():
        side = Side.LEFT if name == "C3" else Side.UNKNOWN
        cat.add(Annotation(name, None, individual=name, side=side, camera="cam1"), fs[0])
        cat.add(Annotation(f"{name}b", None, individual=name, camera="cam2"), fs[1])
    return cat


def _same(a: QueryResult, b: QueryResult) -> None:
    assert (a.decision, a.individual) == (b.decision, b.individual)
    assert a.probability == pytest.approx(b.probability)
    # Same annotations, inliers and scores; distances of a batched search may
    # differ from a single frame's in the last float32 bits (BLAS blocking).
    assert [(m.annotation, m.inliers) for m in a.annotations] == [
        (m.annotation, m.inliers) for m in b.annotations
    ]
    for x, y in zip(a.annotations, b.annotations, strict=True):
        assert (x.score, x.raw) == pytest.approx((y.score, y.raw), rel=1e-5, abs=1e-4)


@pytest.mark.parametrize(
    "cfg",
    [MatchConfig(), MatchConfig(ivf_above=300, ivf_codec="Flat", nprobe=256)],
    ids=["flat", "ivf"],
)
def test_encounter_query_equals_per_frame_queries(
    cats: dict[str, list[Features]], cfg: MatchConfig
) -> None:
    cat = _built(cats, cfg)
    frames = [fs[2] for fs in cats.values()] + [Features.empty()]
    # Sides differ per frame, so frames exclude different annotations and fetch
    # different numbers of neighbours from the one shared search.
    sides = [Side.UNKNOWN, Side.RIGHT, Side.UNKNOWN, Side.LEFT, Side.UNKNOWN]
    cameras = ["cam1", None, "cam2", "cam1", None]
    got = cat.query_encounter(frames, sides, exclude=["C1b"], cameras=cameras)
    assert len(got) == len(frames)
    for f, side, cam, res in zip(frames, sides, cameras, got, strict=True):
        _same(res, cat.query(f, side=side, exclude=["C1b"], camera=cam))
    assert [r.individual for r in got[:4]] == ["C0", "C1", "C2", "C3"]
    assert got[4].decision == "new"


def test_encounter_cap_keeps_each_frames_strongest(cats: dict[str, list[Features]]) -> None:
    frames = [cats["C0"][2], cats["C1"][2], Features.empty()]
    sizes = [len(f) for f in frames]
    capped = _strongest(frames, 150)
    assert sum(len(f) for f in capped) <= 150
    assert [len(f) for f in capped] == [75, 75, 0]  # an empty frame leaves its share
    assert np.array_equal(capped[0].desc, frames[0].desc[:75])
    assert _strongest(frames, sum(sizes)) == frames
    short = [f if i else _strongest([f], 10)[0] for i, f in enumerate(frames[:2])]
    uneven = _strongest(short, 150)  # a short frame leaves the rest to the others
    assert [len(f) for f in uneven] == [10, 140]
    cat = _built(cats, MatchConfig(encounter_max_descriptors=150))
    plain = _built(cats, MatchConfig())
    for a, b in zip(cat.query_encounter(frames), plain.query_encounter(capped), strict=True):
        _same(a, b)


def test_keypoints_round_trip_and_ids_carry_the_annotation(
    cats: dict[str, list[Features]],
) -> None:
    cat = _built(cats, MatchConfig())
    f = cats["C2"][0]
    back = cat.features("C2")
    # Prepared-crop positions are float16: within half a pixel on crops of <= 640 px.
    assert np.abs(back.xy - f.xy).max() <= 0.5
    assert np.array_equal(back.xy_original, f.xy_original)
    assert len(back) == len(f) and back.desc.shape == (0, 128)
    kp = cat.memory_bytes()["keypoints"]
    assert kp == 12 * cat._kp_xy.shape[0] and cat._kp_xy.shape[0] <= 1.25 * cat._next_id + 1024
    # faiss ids are slot << LOCAL_BITS | keypoint, with no per-descriptor table.
    ids = faiss.vector_to_array(cat._index.id_map).astype(np.int64)
    slot = cat._slot_of["C2"]
    mine = ids[(ids >> LOCAL_BITS) == slot]
    assert np.array_equal(mine & ((1 << LOCAL_BITS) - 1), np.arange(len(f)))
    cat.remove("C2")
    assert cat.n_descriptors == sum(len(fs[0]) + len(fs[1]) for fs in cats.values()) - len(f)
    # The other C2 frame still answers (another camera: no background filter).
    assert cat.query(cats["C2"][2], camera="cam9").individual == "C2"
    assert cat.query(cats["C1"][2], camera="cam9").individual == "C1"


def test_add_many_in_batches_equals_one_by_one(cats: dict[str, list[Features]]) -> None:
    cfg = MatchConfig(ivf_above=300, ivf_retrain=1.5, ivf_codec="Flat", nprobe=256)
    items = [
        (Annotation(f"{name}{j}", None, individual=name, camera=f"c{j}"), fs[j])
        for name, fs in cats.items()
        for j in range(2)
    ]
    one, many = Catalogue(cfg), Catalogue(cfg)
    for ann, f in items:
        one.add(ann, f)
    many.add_many(items, batch=700)  # several batches, retrained between them
    assert many._ivf and many.n_descriptors == one.n_descriptors and len(many) == len(one)
    for name, fs in cats.items():
        assert many.query(fs[2], camera="q").individual == name
        assert one.query(fs[2], camera="q").individual == name
    with pytest.raises(IrbisError, match="already in the catalogue"):
        many.add_many([(Annotation("new", None, individual="N"), cats["C0"][2]), items[0]])
    assert "new" in many and many.n_descriptors == one.n_descriptors + len(cats["C0"][2])


def test_fast_scan_codes_add_retrain_remove(cats: dict[str, list[Features]]) -> None:
    cfg = MatchConfig(ivf_above=300, ivf_retrain=1.5, compact_above=300, nprobe=64)
    assert cfg.compact_nprobe == 16
    cfg = replace(cfg, compact_nprobe=None)  # the tiny test index: search every cell asked
    assert cfg.compact_codec == "PQ64x4fs"
    cat = _built(cats, cfg)
    ivf = faiss.extract_index_ivf(cat._index)
    assert ivf.code_size == 32 and "FastScan" in type(faiss.downcast_index(ivf)).__name__
    assert cat.memory_bytes()["index"] == 40 * cat.n_descriptors + ivf.nlist * 128 * 8
    for name, fs in cats.items():
        assert cat.query(fs[2], camera="q").individual == name
    assert faiss.extract_index_ivf(cat._index).nprobe == 64
    cat.config = replace(cfg, compact_nprobe=8)  # compact cells: their own nprobe
    cat.query(cats["C0"][2], camera="q")
    assert faiss.extract_index_ivf(cat._index).nprobe == 8
    cat.config = cfg
    cat.remove("C1")
    cat.remove("C1b")
    assert cat.query(cats["C1"][2], camera="q").individual != "C1"
