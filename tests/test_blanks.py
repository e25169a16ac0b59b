"""Blank means blank: what is set aside, what people's reviews keep, what the report says.

Projects are ingested in the tests from real frames and judged by the real
default detector (mdlite, installed into the user cache like
``test_detect_real.py`` does):

* camtrapR's sample card (68 thumbnails of 100x75 px, every one sorted into a
  species folder by people, and one black phone video): the detector finds a
  box on 17 thumbnails; the other 51 are too small for it to judge and must
  not be set aside as blank;
* snow-leopard frames from Tajikistan (each shows a cat, drawn in
  ``boxes.csv``): bursts in which the detector finds nothing are set aside,
  until a person draws the cat or marks "animal here".
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.detect_stage import detection_status, run_detect
from irbis.reports.census import gather_census
from irbis.reports.html import render_html
from irbis.store import Project
from irbis.store.blanks import (
    MIN_JUDGE_SIDE,
    gather_blanks,
    spot_check_sample,
)
from irbis.store.boxes import draw_box, mark_animal_present, mark_no_animal
from irbis.store.schema import Media, MediaDetection, SequenceVerdict
from irbis.vision.registry import MODELS_ENV, ModelError, install, models_dir

from .conftest import need_data
from .test_report import assert_self_contained

CAMTRAPR = ("cameratrap", "camtrapR")
TAJIK = ("reid", "snowleopard-tajikistan")


@pytest.fixture(scope="module")
def models() -> Path:
    """The default detector installed in the user cache (a no-op when it is there)."""
    try:
        install("mdlite")
    except ModelError as exc:
        if "could not download" in str(exc) and os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"mdlite cannot be installed here: {exc}")
        raise
    return models_dir()


@pytest.fixture(scope="module")
def camtrapr_detected(tmp_path_factory, models) -> Path:
    """camtrapR's species card ingested as a new user would (default layout), then detected."""
    card = need_data(*CAMTRAPR, "pictures", "sample_images_species_dir")
    root = tmp_path_factory.mktemp("camtrapr") / "p"
    os.environ[MODELS_ENV] = str(models)
    with Project.init(root) as p:
        import_registry(p, need_data(*CAMTRAPR, "oracle", "camtraps.csv"), date_format="%d/%m/%Y")
        ingest(p, card, workers=1)  # layout "station": the species folders are not read
        run_detect(p)
    return root


def test_thumbnails_too_small_to_judge_are_never_set_aside(camtrapr_detected):
    with Project.open(camtrapr_detected) as p:
        with p.session() as s:
            rows = s.execute(
                select(Media.file_name, Media.width, Media.height, MediaDetection.verdict).join(
                    MediaDetection, MediaDetection.media_id == Media.id
                )
            ).all()
            seq = dict(
                s.execute(
                    select(SequenceVerdict.verdict, SequenceVerdict.id).order_by(SequenceVerdict.id)
                ).all()
            )
        thumbs = [r for r in rows if r.file_name.upper().endswith(".JPG")]
        assert len(thumbs) == 68
        assert all(max(r.width, r.height) < MIN_JUDGE_SIDE for r in thumbs)
        by = {}
        for r in thumbs:
            by[r.verdict] = by.get(r.verdict, 0) + 1
        # Before: 17 animal, 51 blank. A thumbnail without a box is now unjudged.
        assert by.get("blank", 0) == 0, by
        assert by["animal"] >= 10 and by["animal"] + by["unjudged"] == 68
        assert "blank" not in seq  # no burst of thumbnails is blank
        status = detection_status(p)
        aside = status["set_aside"]
        assert aside["too_small_frames"] == by["unjudged"]
        # Only the black phone video (1280x720, no trusted time, no burst) is set aside.
        with p.session() as s:
            blanks = gather_blanks(s)
        assert [f.file_name for f in blanks.frames] == ["20251112_100312.mp4"]
        assert aside["sequences"] == 0 and aside["frames"] == 1
        per = {r["station"]: r for r in aside["per_station"]}
        assert sum(r["too_small_frames"] for r in per.values()) == by["unjudged"]
        assert per["StationA"]["set_aside_frames"] == 1

        census = gather_census(p)
        html = render_html(census)
    assert_self_contained(html)
    assert "removed by detection" not in html and not re.search(r"blank[^.<]{0,80}removed", html)
    assert "Set aside as blank" in html
    assert f"{by['unjudged']} photographs were too small" in html
    assert 'data-key="set_aside_media">1 of 69' in html
    assert census.summary["too_small_media"] == by["unjudged"]
    # the spot-check lists the one set-aside frame (a video: no thumbnail), by its file page
    assert [f["file"] for f in census.spot_check] == ["20251112_100312.mp4"]
    assert census.spot_check[0]["page"].startswith("/api/media/")
    assert any("too small for the detector" in m for m in census.methods)


# Real frames with their camera times (byte for byte), from the survey's Station 26:
# a single-frame burst with a cat in it on which the default detector finds nothing,
# a burst with boxes on four frames and none on two, and a lone frame with a cat.
# And a frame of another station without EXIF time (a burst of its own when its
# time is read from the file name, else none) on which the detector finds nothing.
MISSED = "02__Station26__Camera2__2012-8-27__4-35-18(8).JPG"
MIXED = [
    "02__Station26__Camera2__2012-8-7__9-3-20(1).JPG",
    "02__Station26__Camera2__2012-8-7__9-3-22(2).JPG",
    "02__Station26__Camera2__2012-8-7__9-3-22(3).JPG",
    "02__Station26__Camera2__2012-8-7__9-3-24(4).JPG",
    "02__Station26__Camera2__2012-8-7__9-3-24(5).JPG",
    "02__Station26__Camera2__2012-8-7__9-3-26(6).JPG",
]
LONE = "02__Station26__Camera1__2012-8-27__4-36-4(4).JPG"
NO_TIME = "02__Station14__Camera1__2012-7-24__21-55-22(4).JPG"


@pytest.fixture
def tajik(tmp_path, models, monkeypatch) -> tuple[Project, dict]:
    """The frames above ingested into a new project and detected; the drawn cat boxes."""
    root = need_data(*TAJIK)
    monkeypatch.setenv(MODELS_ENV, str(models))
    card = tmp_path / "card"
    card.mkdir()
    for name in [MISSED, *MIXED, LONE, NO_TIME]:
        shutil.copyfile(root / "images" / name, card / name)
    with open(root / "boxes.csv") as fh:
        truth = {
            r["file"]: (
                float(r["x_min"]),
                float(r["y_min"]),
                float(r["x_max"]) - float(r["x_min"]),
                float(r["y_max"]) - float(r["y_min"]),
            )
            for r in csv.DictReader(fh)
        }
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "station,deployment,start,end,timezone\n"
        "TJ26,TJ26-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
    )
    p = Project.init(tmp_path / "p")
    import_registry(p, registry)
    ingest(p, card, deployment="TJ26-2012", workers=1)
    run_detect(p)
    yield p, truth
    p.close()


def _ids(p: Project) -> dict[str, tuple[int, int | None]]:
    with p.session() as s:
        rows = s.execute(select(Media.file_name, Media.id, Media.sequence_id)).all()
        return {r.file_name: (r.id, r.sequence_id) for r in rows}


def _verdicts(p: Project) -> dict[int, str]:
    with p.session() as s:
        return dict(s.execute(select(SequenceVerdict.sequence_id, SequenceVerdict.verdict)).all())


def test_one_frame_with_a_box_keeps_the_burst_and_people_overrule_the_detector(tajik):
    p, truth = tajik
    ids = _ids(p)
    missed_id, missed_seq = ids[MISSED]
    mixed_seqs = {ids[n][1] for n in MIXED}
    loose_id, loose_seq = ids[NO_TIME]
    assert missed_seq is not None and len(mixed_seqs) == 1
    (mixed_seq,) = mixed_seqs
    loose = {loose_seq} - {None}
    with p.session() as s:
        media = dict(s.execute(select(MediaDetection.media_id, MediaDetection.verdict)).all())
    verdicts = _verdicts(p)
    # What the default detector does on these real frames (the premise of the test).
    assert verdicts[missed_seq] == "blank", "mdlite now finds the cat in " + MISSED
    assert media[loose_id] == "blank", "mdlite now finds the cat in " + NO_TIME
    mixed_media = [media[ids[n][0]] for n in MIXED]
    assert "blank" in mixed_media and "animal" in mixed_media, mixed_media
    # A burst with one frame boxed is an animal burst: none of its frames is set aside.
    assert verdicts[mixed_seq] == "animal"

    def aside() -> tuple[set[int], set[int]]:
        with p.session() as s:
            b = gather_blanks(s)
        return {sid for v in b.sequences.values() for sid in v}, {f.media_id for f in b.frames}

    seqs, frames = aside()
    assert seqs == {missed_seq} | loose and frames == {missed_id, loose_id}
    assert not frames & {ids[n][0] for n in MIXED}

    # A person draws the cat: the burst is kept; the detector's verdict stays as it was.
    with p.session() as s, s.begin():
        box = draw_box(s, missed_id, *truth[MISSED], by="ranger")
    seqs, frames = aside()
    assert seqs == loose and frames == {loose_id}
    assert _verdicts(p)[missed_seq] == "blank"
    with p.session() as s:
        b = gather_blanks(s)
        assert b.as_dict()["kept_by_review"] == 1
    # The box retracted (a mistake): set aside again. "Animal here" without a box: kept.
    from irbis.store.boxes import retract_box

    with p.session() as s, s.begin():
        retract_box(s, box.id, by="ranger")
    assert aside()[0] == {missed_seq} | loose
    with p.session() as s, s.begin():
        assert mark_animal_present(s, missed_id, by="checker") is not None
    assert aside()[0] == loose
    # A person's species label on a frame keeps it too.
    from irbis.store.schema import Observation

    with p.session() as s, s.begin():
        s.add(
            Observation(
                media_id=loose_id,
                species="Panthera uncia",
                source="human",
                by="ranger",
                created_utc=datetime(2026, 5, 1),
            )
        )
    assert aside() == (set(), set())


def test_spot_check_sample_is_seeded_and_skips_confirmed_frames(tajik, tmp_path):
    p, _truth = tajik
    ids = _ids(p)
    missed_id, missed_seq = ids[MISSED]
    loose_id, loose_seq = ids[NO_TIME]
    n_seq = 1 + (loose_seq is not None)
    with p.session() as s:
        b = gather_blanks(s)
    every = spot_check_sample(b, n=20)
    assert {f.media_id for f in every} == {missed_id, loose_id}
    one = spot_check_sample(b, n=1, seed=3)
    assert len(one) == 1 and one == spot_check_sample(b, n=1, seed=3)
    picks = {spot_check_sample(b, n=1, seed=k)[0].media_id for k in range(20)}
    assert picks == {missed_id, loose_id}  # the seed chooses; both get chosen
    assert len(spot_check_sample(b, n=None, share=0.5)) == 1
    with pytest.raises(ValueError):
        spot_check_sample(b, share=1.5)
    # Confirmed empty by a person: still set aside, no longer offered for checking.
    with p.session() as s, s.begin():
        mark_no_animal(s, loose_id, by="checker")
    with p.session() as s:
        b = gather_blanks(s)
    assert {f.media_id for f in b.frames} == {missed_id, loose_id}
    assert [f.media_id for f in spot_check_sample(b, n=20)] == [missed_id]
    assert b.as_dict()["frames_confirmed_by_people"] == 1

    # The command line: the same sample as a table, JSON and CSV.
    from irbis.cli.app import app

    root = str(p.root)
    runner = CliRunner()
    out_csv = tmp_path / "check.csv"
    res = runner.invoke(
        app, ["blanks", "sample", root, "--n", "5", "--csv", str(out_csv), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["set_aside_frames"] == 2 and doc["pool"] == 1
    (row,) = doc["frames"]
    assert row["media_id"] == missed_id and row["station"] == "TJ26"
    assert row["url"] == f"http://127.0.0.1:8765/sequences/{missed_seq}?media={missed_id}"
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["media_id"]), r["url"]) for r in rows] == [(missed_id, row["url"])]
    st = runner.invoke(app, ["blanks", "status", root, "--json"])
    assert st.exit_code == 0, st.output
    data = json.loads(st.stdout)
    assert (data["sequences"], data["frames"]) == (n_seq, 2)
    (station,) = data["per_station"]
    assert station["station"] == "TJ26" and station["set_aside_sequences"] == n_seq
    status = runner.invoke(app, ["status", root, "--json"])
    assert json.loads(status.stdout)["detections"]["set_aside"]["frames"] == 2
    text = runner.invoke(app, ["status", root])
    assert f"set aside as blank: {n_seq} sequences, 2 frames" in text.stdout


def test_report_says_set_aside_and_lists_the_spot_check(tajik, tmp_path):
    from irbis.reports.pdf import _blanks_page

    p, _truth = tajik
    ids = _ids(p)
    missed_id, missed_seq = ids[MISSED]
    n_seq = 1 + (ids[NO_TIME][1] is not None)
    census = gather_census(p, spot_check_n=20)
    s = census.summary
    assert (s["set_aside_sequences"], s["set_aside_media"]) == (n_seq, 2)
    assert {f["media_id"] for f in census.spot_check} == {missed_id, ids[NO_TIME][0]}
    html = render_html(census)
    assert_self_contained(html)  # the pages are printed as paths: the file links nowhere
    assert "removed by detection" not in html
    assert f'data-key="set_aside_media">2 of 9 photographs ({n_seq} of' in html
    assert f'<tr data-station="TJ26" data-set-aside="{n_seq}" data-frames="2">' in html
    cards = re.findall(r'<div class="card spot-check" data-media="(\d+)"[^>]*>\s*<img', html)
    assert sorted(map(int, cards)) == sorted(f["media_id"] for f in census.spot_check)
    assert f"<code>/sequences/{missed_seq}?media={missed_id}</code>" in html
    linked = render_html(census, app_url="http://10.0.0.5:8765/")
    assert f'<a href="http://10.0.0.5:8765/sequences/{missed_seq}?media={missed_id}">' in linked
    assert any("set aside by the automatic detector" in m for m in census.methods)
    # The PDF (matplotlib layout) says the same numbers and lists the same frames.
    page = _blanks_page(census)
    words = " ".join(t.get_text() for t in page.texts)
    assert f"{n_seq} bursts (2 photographs) set aside as blank" in words
    assert f"TJ26 /sequences/{missed_seq}?media={missed_id}" in words
    assert len(page.axes) == 2  # two thumbnails
    assert census.to_json()["set_aside_as_blank"]["frames"] == 2
