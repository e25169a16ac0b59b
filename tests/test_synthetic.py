"""Tests for the synthetic camera-trap data generator (irbis.demo.synthetic)."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from irbis.demo.synthetic import (
    CAMERA_MAKE,
    CAMERA_MODEL,
    CLOCK_RESET_TO,
    REGISTRY_HEADER,
    SLOW_CLOCK_S,
    SPECIES,
    CardSummary,
    camera_clock,
    make_card,
    make_large_jpegs,
    make_network,
    write_registry_csv,
)

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 36867
BODY_SERIAL = 0xA431
START = date(2026, 2, 1)


def _exif(path: Path) -> tuple[dict[int, object], dict[int, object]]:
    with Image.open(path) as im:
        exif = im.getexif()
        return dict(exif), dict(exif.get_ifd(EXIF_IFD))


def _taken(path: Path) -> datetime:
    _, sub = _exif(path)
    return datetime.strptime(str(sub[DATETIME_ORIGINAL]), "%Y:%m:%d %H:%M:%S")


@pytest.fixture(scope="module")
def network() -> list[dict]:
    return make_network(6, seed=11, start=START, days=60)


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory, network: list[dict]) -> CardSummary:
    out = tmp_path_factory.mktemp("card")
    return make_card(
        out, network, seed=5, image_size=(240, 180), n_events_per_station=(4, 8), tagged=True
    )


# -- network ----------------------------------------------------------------


def test_network_layout(network: list[dict]) -> None:
    assert [st["station"] for st in network] == [f"SLG-{i:02d}" for i in range(1, 7)]
    assert len({st["camera_serial"] for st in network}) == len(network)
    for st in network:
        assert st["deployment"] == f"{st['station']}-2026A"
        assert 400_000 <= st["x"] <= 430_000
        assert 5_540_000 <= st["y"] <= 5_570_000
        assert 2000 <= st["elevation"] <= 3500
        assert st["crs"] == "EPSG:32646"
        assert st["timezone"] == "Asia/Barnaul"
        assert (st["camera_make"], st["camera_model"]) == (CAMERA_MAKE, CAMERA_MODEL)
        assert START <= st["start"].date() < st["end"].date() < START + timedelta(days=60)
        if st["malfunction_start"] is not None:
            assert st["start"] < st["malfunction_start"] < st["malfunction_end"] < st["end"]


def test_network_field_trouble(network: list[dict]) -> None:
    slow = [st for st in network if st["clock_offset_s"] == SLOW_CLOCK_S]
    reset = [st for st in network if st["clock_reset"] is not None]
    broken = [st for st in network if st["malfunction_start"] is not None]
    assert len(slow) == 1 and len(reset) == 1 and 1 <= len(broken) <= 2
    assert slow[0] is not reset[0]
    r = reset[0]
    assert r["start"] < r["clock_reset"] < r["end"]


def test_network_deterministic() -> None:
    a = make_network(5, seed=3, start=START, days=30)
    b = make_network(5, seed=3, start=START, days=30)
    c = make_network(5, seed=4, start=START, days=30)
    assert a == b
    assert a != c


def test_camera_clock() -> None:
    t = datetime(2026, 3, 1, 12, 0, 0)
    assert camera_clock({"clock_offset_s": 420.0}, t) == t - timedelta(minutes=7)
    reset_at = datetime(2026, 2, 20, 8, 0, 0)
    st = {"clock_offset_s": None, "clock_reset": reset_at}
    assert camera_clock(st, t) == CLOCK_RESET_TO + (t - reset_at)
    assert camera_clock(st, reset_at - timedelta(seconds=1)) == reset_at - timedelta(seconds=1)


def test_registry_csv(tmp_path: Path, network: list[dict]) -> None:
    path = write_registry_csv(network, tmp_path / "registry.csv")
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == (
        "station,deployment,start,end,timezone,x,y,crs,elevation,camera_make,camera_model,"
        "camera_serial,clock_offset_s,malfunction_start,malfunction_end"
    )
    rows = list(csv.DictReader(text.splitlines()))
    assert tuple(rows[0]) == REGISTRY_HEADER
    assert [r["station"] for r in rows] == [st["station"] for st in network]
    for row, st in zip(rows, network, strict=True):
        assert datetime.fromisoformat(row["start"]) == st["start"]
        assert datetime.fromisoformat(row["end"]) == st["end"]
        assert len(row["start"]) == len("2026-02-01T10:00:00")
        if st["clock_offset_s"] == SLOW_CLOCK_S:
            assert float(row["clock_offset_s"]) == SLOW_CLOCK_S
        else:
            assert row["clock_offset_s"] == ""
        if st["malfunction_start"] is None:
            assert row["malfunction_start"] == row["malfunction_end"] == ""
        else:
            assert datetime.fromisoformat(row["malfunction_end"]) == st["malfunction_end"]


# -- cards --------------------------------------------------------------------


def test_card_layout_and_summary(card: CardSummary, network: list[dict]) -> None:
    assert card.n_files == len(card.species) == sum(card.per_station.values())
    assert card.total_bytes == sum(p.stat().st_size for p in card.files)
    assert card.n_events == len(card.events)
    assert set(card.per_station) == {st["station"] for st in network}
    for st in network:
        names = sorted(p.name for p in (card.root / st["station"]).iterdir())
        n = card.per_station[st["station"]]
        assert names == [f"IMG_{i:04d}.JPG" for i in range(1, n + 1)]
        assert 4 * 3 <= n <= 8 * 3
    assert set(card.species.values()) <= set(SPECIES)
    for event in card.events:
        assert len(event.files) == 3
        times = [card.true_times[f] for f in event.files]
        assert times == [event.true_start + timedelta(seconds=k) for k in range(3)]


def test_card_respects_deployments(card: CardSummary, network: list[dict]) -> None:
    by_name = {st["station"]: st for st in network}
    for rel, true_dt in card.true_times.items():
        st = by_name[rel.split("/")[0]]
        assert st["start"] < true_dt < st["end"]
        if st["malfunction_start"] is not None:
            assert not st["malfunction_start"] <= true_dt < st["malfunction_end"]


def test_card_exif(card: CardSummary, network: list[dict]) -> None:
    by_name = {st["station"]: st for st in network}
    for rel in list(card.species)[::5]:
        ifd0, sub = _exif(card.root / rel)
        st = by_name[rel.split("/")[0]]
        assert ifd0[0x010F] == "RECONYX"
        assert ifd0[0x0110] == "HYPERFIRE 2"
        assert sub[BODY_SERIAL] == st["camera_serial"]
        assert _taken(card.root / rel) == card.camera_times[rel]


def test_card_clock_faults(card: CardSummary, network: list[dict]) -> None:
    slow = next(st for st in network if st["clock_offset_s"] == SLOW_CLOCK_S)
    reset = next(st for st in network if st["clock_reset"] is not None)
    for rel, true_dt in card.true_times.items():
        station = rel.split("/")[0]
        taken = _taken(card.root / rel)
        if station == slow["station"]:
            assert taken == true_dt - timedelta(seconds=SLOW_CLOCK_S)
        elif station == reset["station"]:
            assert (taken.year == 2000) == (true_dt >= reset["clock_reset"])
        else:
            assert taken == true_dt


def test_card_xmp_tags(card: CardSummary) -> None:
    for rel, species in card.species.items():
        with Image.open(card.root / rel) as im:
            xmp = im.info.get("xmp")
        if species == "blank":
            assert not xmp
        else:
            assert xmp, rel
            text = xmp.decode("utf-8") if isinstance(xmp, bytes) else str(xmp)
            assert "hierarchicalSubject" in text
            assert f"Species|{species}" in text


def test_card_untagged_has_no_xmp(tmp_path: Path, network: list[dict]) -> None:
    summary = make_card(
        tmp_path, network[:2], seed=1, image_size=(160, 120), n_events_per_station=(2, 3)
    )
    for path in summary.files:
        with Image.open(path) as im:
            assert not im.info.get("xmp")


def test_card_deterministic(tmp_path: Path, network: list[dict]) -> None:
    kwargs = {"image_size": (160, 120), "n_events_per_station": (2, 4), "tagged": True}
    a = make_card(tmp_path / "a", network[:3], seed=9, **kwargs)
    b = make_card(tmp_path / "b", network[:3], seed=9, **kwargs)
    c = make_card(tmp_path / "c", network[:3], seed=10, **kwargs)
    assert list(a.species) == list(b.species)
    for rel in a.species:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes()
    assert a.species != c.species or any(
        (a.root / rel).read_bytes() != (c.root / rel).read_bytes()
        for rel in set(a.species) & set(c.species)
    )


def test_card_species_weights(tmp_path: Path, network: list[dict]) -> None:
    summary = make_card(
        tmp_path,
        network[:2],
        seed=2,
        image_size=(160, 120),
        n_events_per_station=(3, 3),
        species_weights={"snow leopard": 1.0},
    )
    assert set(summary.species.values()) == {"snow leopard"}
    assert summary.event_counts() == {"snow leopard": 6}
    with pytest.raises(ValueError):
        make_card(tmp_path, network[:1], seed=2, species_weights={"tiger": 1.0})


# -- large JPEGs ----------------------------------------------------------------


def test_large_jpegs_small_deterministic(tmp_path: Path) -> None:
    kwargs = {"seed": 4, "image_size": (800, 600), "megabytes": (0.1, 0.3)}
    a = make_large_jpegs(tmp_path / "a", 3, **kwargs)
    b = make_large_jpegs(tmp_path / "b", 3, **kwargs)
    assert [p.name for p in a] == ["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.JPG"]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
        assert 0.1e6 <= pa.stat().st_size <= 0.3e6


@pytest.mark.slow
def test_large_jpegs_sizes(tmp_path: Path) -> None:
    paths = make_large_jpegs(tmp_path, 2, seed=1)
    assert len(paths) == 2
    for path in paths:
        assert 3e6 <= path.stat().st_size <= 6e6
        with Image.open(path) as im:
            assert im.size == (4000, 3000)
        ifd0, _ = _exif(path)
        assert ifd0[0x010F] == "RECONYX"
    assert _taken(paths[1]) - _taken(paths[0]) == timedelta(seconds=1)
