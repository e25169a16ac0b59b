"""Times for frames without EXIF: file-name patterns and the info bar, on real frames.

Real frames are read in place; EXIF-less copies are made in tmp_path with
Pillow (re-encoded without EXIF, as an exporting tool would), never committed.
"""

from __future__ import annotations

import csv
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.ingest.metadata import read_metadata
from irbis.ingest.registry import import_registry
from irbis.ingest.report import ingest_report
from irbis.ingest.runner import ingest
from irbis.ingest.stamp import TESSERACT_MISSING, read_stamp, tesseract_path
from irbis.ingest.timepatterns import (
    DEFAULT_FILENAME_PATTERNS,
    DEFAULT_STAMP_PATTERNS,
    compile_pattern,
    compile_patterns,
    first_time,
)
from irbis.ingest.timesource import TimeFallback
from irbis.store.schema import Media, MediaGroup

from .conftest import need_data

TAJIK = ("reid", "snowleopard-tajikistan")
HERON = ("cameratrap", "camtrap-dp-example", "media")
MOUSEDEER = ("cameratrap", "camtrapR", "pictures", "full_size_for_ocr", "StationA", "mousedeer.JPG")


@pytest.fixture
def project_factory(tmp_path):
    """Embedded projects by name: the OCR tests are slow, one backend is enough."""
    from irbis.store import Project

    return lambda name: Project.init(tmp_path / name)


def need_tesseract() -> str:
    """The tesseract program; `make test` installs it, so CI must have it."""
    exe = tesseract_path()
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(TESSERACT_MISSING)
        pytest.skip(TESSERACT_MISSING)
    return exe


def strip_exif(src: Path, dst: Path, quality: int = 95) -> Path:
    """An EXIF-less copy of a real frame (pixels re-encoded, nothing else kept)."""
    with Image.open(src) as img:
        img.save(dst, "JPEG", quality=quality)
    assert read_metadata(dst.read_bytes(), dst.name).taken is None
    return dst


def tajik_labels() -> list[dict]:
    with open(need_data(*TAJIK, "labels.csv")) as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- patterns


def test_default_patterns_read_every_tajik_file_name_as_labelled():
    patterns = compile_patterns(DEFAULT_FILENAME_PATTERNS)
    rows = tajik_labels()
    assert len(rows) == 478
    for r in rows:
        stem = Path(r["path"]).stem  # 01__Station04__Camera2__2012-7-22__1-53-20(0)
        got = first_time(stem, patterns)
        assert got is not None, stem
        assert got[0] == datetime.fromisoformat(f"{r['date']}T{r['time']}"), stem


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("20210531082538-RCNX0031", datetime(2021, 5, 31, 8, 25, 38)),  # Camtrap DP example
        ("20251112_100312", datetime(2025, 11, 12, 10, 3, 12)),  # camtrapR sample video
        ("IMG_20230105_142233", datetime(2023, 1, 5, 14, 22, 33)),
        ("StationA__Cam1__2009-04-21__00-40-00(1)", datetime(2009, 4, 21, 0, 40)),
        ("Arroyo Seco 2010 01 22 13 22 07", datetime(2010, 1, 22, 13, 22, 7)),
        ("RCNX0031", None),
        ("IMAG0001", None),
        ("IMG_0001", None),
        ("2012-13-40__25-61-00", None),  # impossible date: no time rather than a wrong one
    ],
)
def test_default_patterns_on_camera_and_renamer_names(name, want):
    got = first_time(name, compile_patterns(DEFAULT_FILENAME_PATTERNS))
    assert (got[0] if got else None) == want


def test_own_pattern_reads_a_day_first_name():
    pat = compile_pattern("%d.%m.%Y_%H%M%S")
    assert pat.search("S12_23.08.2012_092615") == datetime(2012, 8, 23, 9, 26, 15)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("%Y-%m-%d %H-%q", "unknown field %q"),
        ("%Y-%m-%d", "has no hour"),
        ("%m-%d %H:%M", "has no year"),
        ("%Y-%m-%d %I:%M", "%I and %p"),
        ("%Y-%m-%d %H:%M %Y", "given twice"),
        ("", "empty"),
        ("%Y-%m-%d %H:%M%", "lone %"),
    ],
)
def test_bad_pattern_is_a_one_line_error_naming_it(pattern, says):
    with pytest.raises(BadInputError) as err:
        compile_pattern(pattern)
    msg = str(err.value)
    assert says in msg and repr(pattern) in msg and "\n" not in msg


def test_bad_settings_stop_ingest_before_anything_is_written(project, tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    project.settings.extra["filename_time_patterns"] = ["%Y-%m-%d %H:%Q"]
    with pytest.raises(BadInputError, match="unknown field %Q"):
        ingest(project, card, deployment=None, layout=None)
    project.settings.extra.clear()
    with pytest.raises(BadInputError, match="unknown or repeated source 'exif'"):
        ingest(project, card, time_from="exif,stamp")


def test_stamp_patterns_keep_am_pm_and_refuse_a_garbled_one():
    pats = compile_patterns(DEFAULT_STAMP_PATTERNS, stamp=True)
    assert first_time("2012-07-18 7:46:57 PM M 2/10 20 5", pats)[0] == datetime(
        2012, 7, 18, 19, 46, 57
    )
    assert first_time("2012-08-23 12:05:00 AM", pats)[0] == datetime(2012, 8, 23, 0, 5)
    assert first_time("08/23/2012 09:26:15 PM", pats)[0] == datetime(2012, 8, 23, 21, 26, 15)
    # "P" alone: a 12-hour stamp whose M was lost is not read as 09:26 in 24 h.
    assert first_time("2012-08-23 9:26:15 P", pats) is None
    # A second glued to a letter was cut short by OCR ("0S"), not read.
    assert first_time("2012-08-23 9:26:0S AM", pats) is None


# ---------------------------------------------------------------- the info bar


def test_stamp_reads_the_camtrapdp_frames_as_their_exif():
    exe = need_tesseract()
    pats = compile_patterns(DEFAULT_STAMP_PATTERNS, stamp=True)
    frames = sorted(need_data(*HERON).glob("*.JPG"))
    assert len(frames) == 10
    for f in frames:
        data = f.read_bytes()
        exif = read_metadata(data, f.name).taken
        reading = read_stamp(data, pats, exe=exe)
        assert reading is not None and reading.bar == "top", f.name
        assert reading.taken == exif, (f.name, reading.text)


def test_stamp_reads_the_camtrapr_mousedeer():
    exe = need_tesseract()
    data = need_data(*MOUSEDEER).read_bytes()
    reading = read_stamp(data, compile_patterns(DEFAULT_STAMP_PATTERNS, stamp=True), exe=exe)
    # Read by eye on the frame: "2018-10-19 10:35:09 PM  M 2/3".
    assert reading is not None and reading.taken == datetime(2018, 10, 19, 22, 35, 9)


def test_stamp_on_tajik_frames_is_the_name_time_plus_13_hours():
    """labels.csv's date/time are the file names' times, which are not the camera's:
    every bar read by eye (e.g. 02__Station13__Camera1__2012-8-22__20-26-14(9):
    "2012-08-23 9:26:15 AM", a daylight frame) is 13 hours later, the names
    having lost AM/PM and an hour. So the bar must read labels + 13 h (+0/+1 s:
    the names round odd seconds down)."""
    exe = need_tesseract()
    pats = compile_patterns(DEFAULT_STAMP_PATTERNS, stamp=True)
    root = need_data(*TAJIK)
    rows = [r for r in tajik_labels() if Image.open(root / r["path"]).size == (1280, 720)]
    sample = rows[::20]
    assert len(sample) >= 20
    read = right = 0
    for r in sample:
        reading = read_stamp((root / r["path"]).read_bytes(), pats, exe=exe)
        assert reading is not None, r["path"]  # every one of them has a bar
        if reading.taken is None:
            continue
        read += 1
        name_time = datetime.fromisoformat(f"{r['date']}T{r['time']}")
        right += (reading.taken - name_time - timedelta(hours=13)).total_seconds() in (0, 1)
    assert read >= 0.85 * len(sample)
    assert right >= read - 1  # at most one misreading in the sample


def test_frames_without_bar_have_no_stamp(tmp_path):
    exe = need_tesseract()
    # The Tajik frames that kept EXIF were cropped: no bar at all.
    root = need_data(*TAJIK, "images")
    f = root / "02__Station26__Camera2__2012-8-7__9-3-20(1).JPG"
    assert read_stamp(f.read_bytes(), compile_patterns(DEFAULT_STAMP_PATTERNS), exe=exe) is None


def test_missing_tesseract_is_said_not_crashed():
    fallback = TimeFallback(
        order=("stamp", "filename"),
        filename_patterns=tuple(compile_patterns(DEFAULT_FILENAME_PATTERNS)),
        tesseract=None,
    )
    reading = fallback.read("TJ/02__Station13__Camera1__2012-8-22__20-26-14(9).JPG", b"\xff\xd8")
    assert reading.tesseract_missing
    assert reading.source == "filename" and reading.taken == datetime(2012, 8, 22, 20, 26, 14)
    assert "tesseract-ocr" in TESSERACT_MISSING and "\n" not in TESSERACT_MISSING


# ---------------------------------------------------------------- ingest


def _groups(project) -> list[list[str]]:
    """Each sequence as its sorted file names (originals' names, EXIF or not)."""
    with project.session() as s:
        rows = s.execute(select(Media.file_name, Media.sequence_id)).all()
        seqs = {g.id for g in s.scalars(select(MediaGroup).where(MediaGroup.kind == "sequence"))}
    out: dict[int, list[str]] = {}
    for name, seq in rows:
        assert seq in seqs, name
        out.setdefault(seq, []).append(name)
    return sorted(sorted(v) for v in out.values())


def _registry(project, tmp_path, code, start, end):
    reg = tmp_path / f"{code}.csv"
    reg.write_text(f"station,deployment,start,end,timezone\nS,{code},{start},{end},UTC\n")
    import_registry(project, reg)


def test_exif_stripped_heron_burst_gets_exif_times_from_its_info_bar(tmp_path, project_factory):
    need_tesseract()
    frames = sorted(need_data(*HERON).glob("*.JPG"))
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for f in frames:
        strip_exif(f, stripped / f.name)

    with_exif = project_factory("exif")
    without = project_factory("noexif")
    for p in (with_exif, without):
        _registry(p, tmp_path, "H", "2021-01-01T00:00:00", "2021-12-31T00:00:00")
    ingest(with_exif, need_data(*HERON), deployment="H", storage="reference")
    res = ingest(without, stripped, deployment="H")
    assert res.time_sources == {"stamp": 10} and res.n_flagged == 0

    def times(p):
        with p.session() as s:
            return {m.file_name: m.taken_raw for m in s.scalars(select(Media))}

    assert times(without) == times(with_exif)
    assert _groups(without) == _groups(with_exif)
    with without.session() as s:
        m = s.scalars(select(Media).order_by(Media.file_name)).first()
        assert m.taken_source == "stamp"
        record = m.extra["time_read"]
        # Both readings stay: the bar's, and the name's (seven weeks off).
        assert record["stamp"]["time"] == "2021-04-11T20:43:09"
        assert record["filename"]["time"] == "2021-05-31T08:25:38"
    report = ingest_report(without)
    assert report["time_sources"] == {"stamp": 10}
    assert len(report["read_times"]) == 10
    assert report["read_times"][0]["stamp_text"].startswith("2021-04-11 20:43:09")


def test_exif_stripped_tajik_frames_form_the_same_bursts_from_their_names(
    tmp_path, project_factory
):
    # The 49 Tajik frames that kept EXIF have no bar: stripped, only the name is left.
    root = need_data(*TAJIK, "images")
    frames = [f for f in sorted(root.glob("*.JPG")) if read_metadata(f.read_bytes(), f.name).taken]
    assert len(frames) == 49
    card = tmp_path / "card"
    card.mkdir()
    originals = tmp_path / "originals"  # the same 49 as they are, EXIF kept
    originals.mkdir()
    for f in frames:
        strip_exif(f, card / f.name)
        shutil.copyfile(f, originals / f.name)  # a card in tmp, removed with it
    blind = tmp_path / "blind"  # no EXIF, no bar, no time in the name
    blind.mkdir()
    strip_exif(frames[0], blind / "IMG_0001.JPG", quality=80)  # other bytes: not a duplicate

    with_exif = project_factory("exif")
    without = project_factory("noexif")
    for p in (with_exif, without):
        _registry(p, tmp_path, "TJ", "2012-05-01T00:00:00", "2012-10-01T00:00:00")
    assert ingest(with_exif, originals, deployment="TJ").time_sources == {"exif": 49}
    res = ingest(without, card, deployment="TJ", time_from="stamp,filename")
    assert res.time_sources == {"filename": 49} and res.n_flagged == 0
    assert _groups(without) == _groups(with_exif)
    with without.session() as s:
        m = s.scalar(select(Media).where(Media.file_name == frames[0].name))
        # The raw reading is the name's, an hour off the lost EXIF: kept as read.
        assert m.taken_raw == datetime(2012, 7, 22, 1, 53, 20)
        assert m.extra["time_read"]["filename"]["pattern"] == "%Y-%m-%d %H-%M-%S"

    blind_res = ingest(without, blind, deployment="TJ")
    assert [f["flag"] for f in blind_res.flagged] == ["no_timestamp"]
    assert blind_res.time_sources == {"none": 1}


def test_tajik_burst_without_exif_is_timed_from_its_bar_and_names_follow_it(
    tmp_path, project_factory
):
    need_tesseract()
    project = project_factory("tj")
    root = need_data(*TAJIK, "images")
    # One encounter (Station13, 18 July 2012, 10 frames): bars read 7:46-7:48 PM.
    frames = sorted(root.glob("02__Station13__Camera1__2012-7-18__*.JPG"))
    assert len(frames) >= 8
    card = tmp_path / "card"
    card.mkdir()
    for f in frames:
        shutil.copyfile(f, card / f.name)
    _registry(project, tmp_path, "TJ", "2012-05-01T00:00:00", "2012-10-01T00:00:00")
    res = ingest(project, card, deployment="TJ")
    assert res.n_flagged == 0
    assert set(res.time_sources) <= {"stamp", "filename"} and res.time_sources["stamp"] >= 5
    with project.session() as s:
        media = list(s.scalars(select(Media)))
    for m in media:
        name_time = first_time(Path(m.file_name).stem, compile_patterns(DEFAULT_FILENAME_PATTERNS))
        # Every frame is on the bar's clock, whichever source it came from:
        # a misread or unread bar takes the name + the deployment's offset.
        assert (m.taken_raw - name_time[0]).total_seconds() in (46800, 46801), m.extra
    assert len(_groups(project)) == 1  # one burst, as the camera took it

    only_names = ingest(project, card, deployment="TJ", time_from="filename")
    assert only_names.n_new == 0  # already in: a rerun adds nothing
