"""Grouping by time and camtrapR's independent records."""

from __future__ import annotations

import csv
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irbis.ingest.events import Record, group_by_gap, independent_records

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAMTRAPR = DATA / "cameratrap" / "camtrapR"
SPECIES_DIR = CAMTRAPR / "pictures" / "sample_images_species_dir"
ORACLE = CAMTRAPR / "oracle" / "recordTableSample.csv"

_NAME = re.compile(r"^(?P<station>.+?)__(?P<date>\d{4}-\d{2}-\d{2})__(?P<time>\d{2}-\d{2}-\d{2})")


def _records_from_species_dir() -> list[Record]:
    records = []
    for path in sorted(SPECIES_DIR.glob("Station*/*/*.JPG")):
        species = path.parent.name
        if species == "UNID":
            continue
        m = _NAME.match(path.name)
        assert m, path.name
        t = datetime.strptime(f"{m['date']} {m['time']}", "%Y-%m-%d %H-%M-%S")
        records.append(Record(station=path.parent.parent.name, species=species, time=t,
                              payload={"file": path.name}))
    return records


def test_reproduces_camtrapr_record_table_sample() -> None:
    for p in (SPECIES_DIR, ORACLE):
        if not p.exists():
            pytest.skip(f"real data not found at {p} (see ../shared/data/README.md)")
    records = _records_from_species_dir()
    assert len(records) == 67  # 68 JPEGs, one of them UNID
    kept = independent_records(records, 60, "lastRecord")

    with ORACLE.open(newline="", encoding="utf-8") as fh:
        oracle = [
            (r["Station"], r["Species"], r["DateTimeOriginal"], float(r["delta.time.secs"]),
             r["FileName"])
            for r in csv.DictReader(fh)
        ]
    assert len(oracle) == 39
    ours = [
        (k.record.station, k.record.species, k.record.time.strftime("%Y-%m-%d %H:%M:%S"),
         k.delta_s, k.record.payload["file"])
        for k in kept
    ]
    assert ours == oracle
    # delta is measured to the previous record, kept or not: 20:12 was dropped.
    tra = [k for k in kept if k.record.station == "StationC" and k.record.species == "TRA"]
    assert tra[6].record.time == datetime(2009, 5, 2, 0, 10) and tra[6].delta_s == 14280


def _r(minutes: float, station: str = "S", species: str = "irbis") -> Record:
    return Record(station, species, datetime(2024, 1, 1) + timedelta(minutes=minutes))


def test_last_record_versus_last_independent_record() -> None:
    # An animal lingering: a photo every 20 minutes for two hours.
    lingering = [_r(m) for m in range(0, 121, 20)]
    last_record = independent_records(lingering, 30, "lastRecord")
    assert [(k.record.time.minute, k.delta_s) for k in last_record] == [(0, 0.0)]
    last_indep = independent_records(lingering, 30, "lastIndependentRecord")
    assert [k.delta_s for k in last_indep] == [0.0, 2400.0, 2400.0, 2400.0]
    assert [k.record.time for k in last_indep] == [
        datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 1, 0, 40),
        datetime(2024, 1, 1, 1, 20), datetime(2024, 1, 1, 2, 0),
    ]


def test_groups_stations_species_and_order() -> None:
    recs = [_r(5, "B"), _r(0, "A", "wolf"), _r(0, "A"), _r(0.5, "A"), _r(70, "A"), _r(0, "A")]
    kept = independent_records(recs, 60)
    assert [(k.record.station, k.record.species, k.delta_s) for k in kept] == [
        ("A", "irbis", 0.0), ("A", "irbis", 4170.0), ("A", "wolf", 0.0), ("B", "irbis", 0.0),
    ]
    # Threshold is inclusive, as in camtrapR (delta >= minDeltaTime).
    assert len(independent_records([_r(0), _r(60)], 60)) == 2
    assert len(independent_records([_r(0), _r(59.9)], 60)) == 1
    # Zero keeps everything, duplicates included.
    assert len(independent_records([_r(0), _r(0)], 0)) == 2
    # Custom key: individuals instead of species.
    ids = [(_r(0), "F1"), (_r(1), "F2"), (_r(2), "F1")]
    by_ind = independent_records(
        [r for r, _ in ids], 60,
        key=lambda r: (r.station, {id(x): i for x, i in ids}[id(r)]),
    )
    assert len(by_ind) == 2
    with pytest.raises(ValueError):
        independent_records(recs, -1)
    with pytest.raises(ValueError):
        independent_records(recs, 1, "firstRecord")  # type: ignore[arg-type]


def test_group_by_gap_examples() -> None:
    t0 = datetime(2024, 1, 1)
    times = [t0 + timedelta(seconds=s) for s in (100, 0, 2, 5, 103, 4, 1000)]
    # A gap of exactly gap_s stays in the group (0-2-4-5 and 100-103).
    assert group_by_gap(times, 3) == [1, 0, 0, 0, 1, 0, 2]
    assert group_by_gap(times, 0) == [4, 0, 1, 3, 5, 2, 6]
    assert group_by_gap([], 10) == []
    assert group_by_gap([t0, t0, t0], 0) == [0, 0, 0]
    with pytest.raises(ValueError):
        group_by_gap(times, -1)


@given(
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=60),
    st.integers(min_value=0, max_value=500),
)
def test_group_by_gap_properties(offsets: list[int], gap: int) -> None:
    t0 = datetime(2024, 6, 1)
    times = [t0 + timedelta(seconds=s) for s in offsets]
    groups = group_by_gap(times, gap)
    assert len(groups) == len(times)
    if not times:
        return
    # Numbered 0..k-1 and ordered like time.
    assert sorted(set(groups)) == list(range(max(groups) + 1))
    spans = {}
    for t, g in zip(times, groups, strict=True):
        lo, hi = spans.get(g, (t, t))
        spans[g] = (min(lo, t), max(hi, t))
    ordered = [spans[g] for g in range(max(groups) + 1)]
    for (_, hi), (lo, _) in zip(ordered, ordered[1:], strict=False):
        # Contiguous in time, and the gap between groups is larger than gap.
        assert (lo - hi).total_seconds() > gap
    for g, (lo, hi) in spans.items():
        members = sorted(t for t, x in zip(times, groups, strict=True) if x == g)
        assert members[0] == lo and members[-1] == hi
        for a, b in zip(members, members[1:], strict=False):
            assert (b - a).total_seconds() <= gap
        # No time of another group falls inside this one's span.
        assert not any(lo <= t <= hi for t, x in zip(times, groups, strict=True) if x != g)
