"""The detect stage over a project: verdicts, boxes, idempotence, resume, bad inputs.

A scripted detector stands in for the ONNX model here (white patches are
animals, blue patches people) so these tests check the stage's bookkeeping
exactly and fast; ``test_detect_real.py`` runs the real default detector.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.detect_stage import detection_status, media_path, run_detect
from irbis.store import Project
from irbis.store.schema import DetectionBox, Media, MediaDetection, SequenceVerdict
from irbis.vision.boxes import Detection
from irbis.vision.registry import MODELS_ENV, ModelError

STATIONS = ["SLG-01", "SLG-02"]
START = datetime(2026, 2, 1, 3, 0, 0)


class ScriptedDetector:
    """White patch → animal box, blue patch → person box; nothing else."""

    key = "scripted:v1:t0.5"
    model = "scripted"
    model_version = "v1"
    threshold = 0.5
    params = {"kind": "scripted"}

    def __init__(self) -> None:
        self.prepared_frames = 0
        self.calls = 0

    def prepare(self, frames):
        self.prepared_frames += len(frames)
        return [np.asarray(f.convert("RGB")) for f in frames]

    def run(self, prepared):
        self.calls += 1
        out = []
        for a in prepared:
            boxes = []
            a = a.astype(int)
            for cat, mask in (
                ("animal", (a > 200).all(-1)),
                ("person", (a[..., 2] > 200) & (a[..., 0] < 60) & (a[..., 1] < 60)),
            ):
                ys, xs = np.nonzero(mask)
                if len(xs) > 20:
                    boxes.append(
                        Detection(
                            float(xs.min()),
                            float(ys.min()),
                            float(xs.max() + 1),
                            float(ys.max() + 1),
                            0.9 if cat == "animal" else 0.8,
                            cat,
                            "scripted",
                        )
                    )
            out.append(boxes)
        return out


def _jpeg(when: datetime, *, patch: str | None, seed: int, x: int = 60, scale: int = 2) -> bytes:
    """A 320x240 frame (``scale`` 2; 1: a 160x120 thumbnail); patch places in 160x120 units."""
    rng = np.random.default_rng(seed)
    a = rng.integers(40, 120, size=(120 * scale, 160 * scale, 3), dtype=np.uint8)
    k = scale
    if patch == "animal":
        a[40 * k : 70 * k, x * k : (x + 40) * k] = 255
    elif patch == "person":
        a[30 * k : 90 * k, x * k : (x + 20) * k] = (10, 10, 255)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "RECONYX", "HYPERFIRE 2"
    exif.get_ifd(0x8769)[36867] = when.strftime("%Y:%m:%d %H:%M:%S")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def _video(path: Path, *, animal_from: int) -> None:
    with av.open(str(path), "w") as out:
        # Trail cameras write the clip's start into the container like this.
        out.metadata["creation_time"] = "2026-02-01T08:00:00.000000Z"
        stream = out.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(16):  # 4 s at 4 fps
            a = np.full((120, 160, 3), 80, np.uint8)
            if i >= animal_from:
                a[40:80, 40:100] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _card(root: Path) -> dict[str, str]:
    """Two stations; bursts of 3 frames 2 s apart, events hours apart.

    Returns file name → expected media verdict.
    """
    plan = {
        "SLG-01": [["animal", None, "animal"], [None, None, None], ["person", None, None]],
        "SLG-02": [[None, None, None], [None, "animal", None]],
    }
    expect: dict[str, str] = {}
    n = 0
    for station, bursts in plan.items():
        folder = root / station
        folder.mkdir(parents=True)
        t = START
        for b, burst in enumerate(bursts):
            t = t + timedelta(hours=3 + b)
            for f, patch in enumerate(burst):
                n += 1
                name = f"IMG_{n:04d}.JPG"
                (folder / name).write_bytes(
                    _jpeg(t + timedelta(seconds=2 * f), patch=patch, seed=n, x=30 + 20 * f)
                )
                expect[name] = patch or "blank"
    _video(root / "SLG-02" / "CLIP_0001.MP4", animal_from=8)
    expect["CLIP_0001.MP4"] = "animal"
    return expect


def _project(root: Path, db_url: str | None) -> Project:
    p = Project.init(root, db_url=db_url)
    save_registry(
        p,
        [StationRecord(name=s) for s in STATIONS],
        [
            DeploymentRecord(
                code=f"{s}-A", station=s, start=datetime(2026, 1, 1), end=datetime(2026, 6, 1)
            )
            for s in STATIONS
        ],
    )
    return p


def _state(p: Project) -> dict:
    """Everything the stage wrote, without ids and times."""
    with p.session() as s:
        name = dict(s.execute(select(Media.id, Media.file_name)).all())
        media = {
            name[r.media_id]: (
                r.detector,
                r.verdict,
                round(r.max_score, 4),
                r.n_boxes,
                r.n_frames,
                r.best_frame,
                r.error != "",
            )
            for r in s.scalars(select(MediaDetection))
        }
        boxes = sorted(
            (name[b.media_id], b.frame, b.category, round(b.score, 4), round(b.x, 4), b.source)
            for b in s.scalars(select(DetectionBox))
        )
        seqs = sorted(
            (v.verdict, name.get(v.best_media_id), v.best_frame, v.n_media, v.n_animal, v.n_blank)
            for v in s.scalars(select(SequenceVerdict))
        )
    return {"media": media, "boxes": boxes, "sequences": seqs}


@pytest.fixture
def card(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "card"
    return root, _card(root)


def test_verdicts_boxes_status_and_rerun(tmp_path, backend, card):
    root, expect = card
    p = _project(tmp_path / "p", backend)
    try:
        ingest(p, root)
        det = ScriptedDetector()
        calls: list[tuple[int, int, str]] = []
        res = run_detect(p, det, progress=lambda d, t, f: calls.append((d, t, f)))
        assert res.media_total == res.media_processed == len(expect)
        assert res.media_done_before == 0 and not res.errors
        assert calls[-1][:2] == (len(expect), len(expect))
        state = _state(p)
        assert {k: v[1] for k, v in state["media"].items()} == expect
        # The video is sampled at 1 frame/s: 4 frames, the animal from 2 s on.
        clip = state["media"]["CLIP_0001.MP4"]
        assert clip[4] == 4 and clip[5] == 2
        with p.session() as s:
            b = s.scalars(
                select(DetectionBox)
                .join(Media, Media.id == DetectionBox.media_id)
                .where(Media.file_name == "IMG_0001.JPG")
            ).one()
            # Boxes are stored as fractions of the frame: patch at x 60..140 of 320.
            assert (b.x, b.y, b.width, b.height) == pytest.approx(
                (30 / 160, 40 / 120, 40 / 160, 30 / 120), abs=0.02
            )
            assert b.category == "animal" and b.source == "scripted"
            r = s.scalars(select(MediaDetection).limit(1)).one()
            assert (r.model, r.model_version, r.threshold) == ("scripted", "v1", 0.5)
        # Sequences: animal / blank / person at SLG-01, blank / animal at SLG-02,
        # and the clip's own sequence (animal); best frame is an animal frame.
        verdicts = sorted(v[0] for v in state["sequences"])
        assert verdicts == ["animal", "animal", "animal", "blank", "blank", "person"]
        best = {v[1] for v in state["sequences"] if v[0] == "animal"}
        assert best <= {n for n, e in expect.items() if e == "animal"}

        st = detection_status(p)
        assert st["detector"] == det.key
        per = {r["station"]: r for r in st["per_station"]}
        assert per["SLG-01"]["animal"] == 2 and per["SLG-01"]["blank"] == 6
        assert per["SLG-01"]["person"] == 1
        assert per["SLG-02"]["animal"] == 2 and per["SLG-02"]["blank"] == 5
        assert per["SLG-02"]["sequences"] == {"animal": 2, "blank": 1}

        # A rerun adds nothing and looks at no frame.
        det2 = ScriptedDetector()
        again = run_detect(p, det2)
        assert again.media_processed == 0 and det2.prepared_frames == 0
        assert again.media_done_before == len(expect)
        assert _state(p) == state
    finally:
        p.close()


def test_interrupt_then_rerun_equals_one_run(tmp_path, card):
    root, expect = card
    clean = _project(tmp_path / "clean", None)
    broken = _project(tmp_path / "broken", None)
    try:
        ingest(clean, root)
        ingest(broken, root)
        run_detect(clean, ScriptedDetector())

        seen = []

        def stop_after_two(done: int, total: int, name: str) -> None:
            seen.append(done)
            if len(seen) == 3:  # the initial call, then two sequences
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_detect(broken, ScriptedDetector(), progress=stop_after_two)
        partial = _state(broken)
        # Only whole sequences were written.
        assert 0 < len(partial["media"]) < len(expect)
        assert len(partial["sequences"]) == 2
        res = run_detect(broken, ScriptedDetector())
        assert res.media_done_before == len(partial["media"])
        assert _state(broken) == _state(clean)
    finally:
        clean.close()
        broken.close()


def test_undecodable_media_is_an_error_row_not_a_crash(tmp_path, card):
    root, expect = card
    p = _project(tmp_path / "p", None)
    try:
        ingest(p, root)
        with p.session() as s:
            m = s.scalars(select(Media).where(Media.file_name == "IMG_0002.JPG")).one()
            path = media_path(p, m)
        path.chmod(0o644)
        path.write_bytes(b"\xff\xd8 truncated on a dying card")
        res = run_detect(p, ScriptedDetector())
        assert [e["file"] for e in res.errors] == ["IMG_0002.JPG"]
        state = _state(p)
        assert state["media"]["IMG_0002.JPG"][1] == "error"
        # The other frames of that burst were still judged.
        assert state["media"]["IMG_0001.JPG"][1] == "animal"
        assert state["media"]["IMG_0003.JPG"][1] == "animal"
        assert run_detect(p, ScriptedDetector()).media_processed == 0
    finally:
        p.close()


def test_broken_model_writes_nothing(tmp_path, card, monkeypatch):
    root, _expect = card
    models = tmp_path / "models"
    (models / "mdlite").mkdir(parents=True)
    (models / "mdlite" / "model.onnx").write_bytes(b"not a model")
    from irbis.vision.registry import KNOWN_MODELS

    (models / "mdlite" / "manifest.json").write_text(
        json.dumps(
            {
                "name": "mdlite",
                "version": KNOWN_MODELS["mdlite"].version,
                "kind": "detector",
                "licence": "MIT",
                "files": {"model.onnx": "0" * 64},
            }
        )
    )
    monkeypatch.setenv(MODELS_ENV, str(models))
    p = _project(tmp_path / "p", None)
    try:
        ingest(p, root)
        with pytest.raises(ModelError, match="irbis models install mdlite --force"):
            run_detect(p)
        monkeypatch.setenv(MODELS_ENV, str(tmp_path / "empty"))
        with pytest.raises(ModelError, match="irbis models install mdlite"):
            run_detect(p)
        with p.session() as s:
            assert s.scalar(select(func.count()).select_from(MediaDetection)) == 0
    finally:
        p.close()


def test_second_card_reuses_judged_bursts(tmp_path, card):
    """Ingest rebuilds sequences; only new or changed bursts are judged again."""
    root, expect = card
    extra = tmp_path / "card2" / "SLG-01"
    extra.mkdir(parents=True)
    t = START + timedelta(hours=3)  # the first burst at SLG-01, one frame later
    (extra / "IMG_0901.JPG").write_bytes(_jpeg(t + timedelta(seconds=6), patch="animal", seed=901))
    late = START + timedelta(days=2)
    for i in range(3):  # and a new burst two days later
        (extra / f"IMG_09{10 + i}.JPG").write_bytes(
            _jpeg(late + timedelta(seconds=2 * i), patch=None, seed=910 + i)
        )
    clean = _project(tmp_path / "clean", None)
    p = _project(tmp_path / "p", None)
    try:
        for proj in (clean, p):
            ingest(proj, root)
        run_detect(p, ScriptedDetector())
        for proj in (clean, p):
            ingest(proj, tmp_path / "card2")
        run_detect(clean, ScriptedDetector())
        det = ScriptedDetector()
        res = run_detect(p, det)
        # The grown burst (3 + 1 frames) and the new one (3) are judged; ingest
        # keeps SLG-01's other two sequences as they were (same ids, same frames),
        # so their verdicts stand and nothing has to be rebuilt.
        assert res.media_processed == 7 and det.prepared_frames == 7
        assert res.sequences_processed == 2 and res.sequences_rebuilt == 0
        assert _state(p) == _state(clean)
    finally:
        clean.close()
        p.close()


def test_long_sequences_are_judged_in_runs(tmp_path, card):
    """A cap on frames judged together (memory) changes nothing for a frame-wise detector."""
    root, _expect = card
    a, b = _project(tmp_path / "a", None), _project(tmp_path / "b", None)
    try:
        ingest(a, root)
        ingest(b, root)
        run_detect(a, ScriptedDetector())
        det = ScriptedDetector()
        run_detect(b, det, max_burst=2)
        # Five 3-photo sequences in runs of 2 + 1, and the clip: 11 bursts.
        assert det.calls == 11
        assert _state(a) == _state(b)
    finally:
        a.close()
        b.close()


def test_small_frames_and_unreadable_bursts_are_unjudged_not_blank(tmp_path):
    """No box on a thumbnail is no verdict; a burst that could not be read is not blank."""
    root = tmp_path / "card"
    (root / "SLG-01").mkdir(parents=True)
    (root / "SLG-02").mkdir(parents=True)
    t = START + timedelta(hours=5)
    # SLG-01: a burst of 160x120 thumbnails without an animal, then one with an animal.
    for i in range(3):
        (root / "SLG-01" / f"T_{i}.JPG").write_bytes(
            _jpeg(t + timedelta(seconds=2 * i), patch=None, seed=200 + i, scale=1)
        )
    for i in range(2):
        (root / "SLG-01" / f"A_{i}.JPG").write_bytes(
            _jpeg(t + timedelta(hours=2, seconds=2 * i), patch="animal", seed=210 + i, scale=1)
        )
    # SLG-02: a burst of full frames without an animal, and one whose frames are unreadable.
    for i in range(2):
        (root / "SLG-02" / f"B_{i}.JPG").write_bytes(
            _jpeg(t + timedelta(seconds=2 * i), patch=None, seed=220 + i)
        )
    for i in range(2):
        (root / "SLG-02" / f"U_{i}.JPG").write_bytes(
            _jpeg(t + timedelta(hours=3, seconds=2 * i), patch=None, seed=230 + i)
        )
    p = _project(tmp_path / "p", None)
    try:
        ingest(p, root)
        with p.session() as s:
            for m in s.scalars(select(Media).where(Media.file_name.like("U_%"))):
                path = media_path(p, m)
                path.chmod(0o644)
                path.write_bytes(b"\xff\xd8 truncated")
        res = run_detect(p, ScriptedDetector())
        state = _state(p)
        verdict = {k: v[1] for k, v in state["media"].items()}
        # A thumbnail with a box is judged; without one it is unjudged, never blank.
        assert [verdict[f"T_{i}.JPG"] for i in range(3)] == ["unjudged"] * 3
        assert [verdict[f"A_{i}.JPG"] for i in range(2)] == ["animal"] * 2
        assert [verdict[f"B_{i}.JPG"] for i in range(2)] == ["blank"] * 2
        assert [verdict[f"U_{i}.JPG"] for i in range(2)] == ["error"] * 2
        assert res.verdicts == {"unjudged": 3, "animal": 2, "blank": 2, "error": 2}
        assert sorted(v[0] for v in state["sequences"]) == [
            "animal", "blank", "unjudged", "unjudged",
        ]  # fmt: skip
        aside = detection_status(p)["set_aside"]
        assert (aside["sequences"], aside["frames"]) == (1, 2)
        assert aside["too_small_frames"] == 3 and aside["unreadable_frames"] == 2
        assert aside["unjudged_sequences"] == 2
        per = {r["station"]: r for r in aside["per_station"]}
        assert per["SLG-01"]["set_aside_sequences"] == 0
        assert per["SLG-01"]["too_small_frames"] == 3
        assert per["SLG-02"]["set_aside_frames"] == 2
        # A rerun rebuilds nothing and changes nothing.
        run_detect(p, ScriptedDetector())
        assert _state(p) == state
    finally:
        p.close()
