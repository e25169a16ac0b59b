"""A card full of trouble: each bad file is refused with a reason, good ones still come in."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import datetime
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import ingest
from irbis.store.schema import Media


def _jpeg(when: str | None, *, size=(320, 240), color=(90, 110, 130)) -> bytes:
    img = Image.new("RGB", size, color)
    buf = io.BytesIO()
    if when is None:
        img.save(buf, "JPEG", quality=80)
    else:
        exif = Image.Exif()
        exif[0x010F] = "RECONYX"
        exif[0x0110] = "HYPERFIRE 2"
        exif.get_ifd(0x8769)[36867] = when
        img.save(buf, "JPEG", quality=80, exif=exif)
    return buf.getvalue()


def _registry(project):
    save_registry(
        project,
        [StationRecord(name="SLG-01"), StationRecord(name="SLG-02")],
        [
            DeploymentRecord(
                code="SLG-01-A",
                station="SLG-01",
                start=datetime(2026, 2, 1),
                end=datetime(2026, 4, 1),
                timezone="Asia/Barnaul",
            ),
            DeploymentRecord(
                code="SLG-02-A",
                station="SLG-02",
                start=datetime(2026, 2, 1),
                end=datetime(2026, 4, 1),
                timezone="Asia/Barnaul",
            ),
        ],
    )


def _snapshot(root: Path, skip: Path) -> set[str]:
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        if Path(dirpath).is_relative_to(skip):
            continue
        for f in files:
            out.add(str(Path(dirpath, f).relative_to(root)))
    return out


def test_bad_card_is_quarantined_with_reasons(project, tmp_path):
    _registry(project)
    card = tmp_path / "card"
    st = card / "SLG-01"
    st.mkdir(parents=True)
    good = _jpeg("2026:03:01 04:10:00")
    (st / "IMG_0001.JPG").write_bytes(good)
    (st / "IMG_0002.JPG").write_bytes(_jpeg("2026:03:01 04:10:01", color=(91, 110, 130)))
    (st / "EMPTY.JPG").write_bytes(b"")
    (st / "HALF.JPG").write_bytes(good[: len(good) // 2])
    (st / "NOTES.JPG").write_text("battery low, replaced 3 March\n")
    (st / "NOEXIF.JPG").write_bytes(_jpeg(None, color=(10, 20, 30)))
    (st / "Y2000.JPG").write_bytes(_jpeg("2000:01:01 00:03:12", color=(40, 50, 60)))

    zpath = card / "SLG-02.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("SLG-02/IMG_0100.JPG", _jpeg("2026:03:05 22:00:00", color=(5, 5, 5)))
        z.writestr("../evil.jpg", good)
    bomb = card / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("SLG-02/HUGE.JPG", b"\0" * (64 << 20))

    before = _snapshot(tmp_path, project.root)
    res = ingest(project, st.parent / "SLG-01", deployment="SLG-01-A")
    reasons = {r["file"].split("/")[-1]: r["reason"] for r in res.rejected}
    assert res.n_new == 4  # two good, one without EXIF, one with a year-2000 clock
    assert set(reasons) == {"EMPTY.JPG", "HALF.JPG", "NOTES.JPG"}
    assert "empty" in reasons["EMPTY.JPG"]
    assert "truncated" in reasons["HALF.JPG"]
    assert "not a JPEG" in reasons["NOTES.JPG"] or "not an image" in reasons["NOTES.JPG"]
    flags = {f["file"].split("/")[-1]: f["flag"] for f in res.flagged}
    assert flags == {"NOEXIF.JPG": "no_timestamp", "Y2000.JPG": "implausible_date"}

    zres = ingest(project, zpath, layout="station")
    zreasons = {r["file"]: r["reason"] for r in zres.rejected}
    assert zres.n_new == 1
    assert any("evil" in f for f in zreasons) and any(
        "escape" in r or ".." in r for r in zreasons.values()
    )
    bres = ingest(project, bomb, layout="station")
    assert bres.n_new == 0 and bres.n_rejected == 1
    assert "bomb" in bres.rejected[0]["reason"] or "ratio" in bres.rejected[0]["reason"]

    # Nothing was written outside the project folder; the card is untouched.
    assert _snapshot(tmp_path, project.root) == before
    assert not (tmp_path / "evil.jpg").exists()
    assert (st / "HALF.JPG").read_bytes() == good[: len(good) // 2]

    with project.session() as s:
        media = s.scalars(select(Media)).all()
    assert len(media) == 5
    for m in media:
        blob = project.blob_dir / m.stored_path
        assert blob.exists()
        import hashlib

        assert hashlib.sha256(blob.read_bytes()).hexdigest() == m.sha256


def test_reference_mode_leaves_files_in_place(project, tmp_path):
    _registry(project)
    st = tmp_path / "card" / "SLG-01"
    st.mkdir(parents=True)
    (st / "IMG_0001.JPG").write_bytes(_jpeg("2026:03:01 04:10:00"))
    res = ingest(project, st, deployment="SLG-01-A", storage="reference")
    assert res.n_new == 1
    with project.session() as s:
        m = s.scalars(select(Media)).one()
    assert m.storage == "reference" and Path(m.stored_path) == (st / "IMG_0001.JPG").resolve()
    assert not any(p.is_file() for p in project.blob_dir.rglob("*"))


def _mp4(path: Path, frames: int = 10) -> bytes:
    """Write a real short MP4 (MPEG-4 Part 2, index at the end) with PyAV."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            img = np.full((48, 64, 3), i * 20, np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path.read_bytes()


def test_truncated_video_is_rejected_at_any_cut(tmp_path):
    from irbis.core.errors import BadInputError
    from irbis.ingest.metadata import read_video_metadata

    data = _mp4(tmp_path / "whole.mp4")
    assert read_video_metadata(io.BytesIO(data), "whole.mp4").frame_count == 10
    # Cut at every byte: the file reads whole or is refused in one line, never a traceback.
    # (Losing only the trailing user-data atom leaves every frame and its index intact.)
    n_bad = 0
    for cut in range(1, len(data)):
        try:
            meta = read_video_metadata(io.BytesIO(data[:cut]), "CUT.MP4")
        except BadInputError as exc:
            n_bad += 1
            assert str(exc).startswith("CUT.MP4: ") and "\n" not in str(exc)
            assert "truncated" in exc.reason or "unreadable" in exc.reason
        else:
            assert meta.frame_count == 10 and meta.width == 64
    assert n_bad > len(data) * 0.9


def test_truncated_video_does_not_stop_the_card(project, tmp_path):
    _registry(project)
    st = tmp_path / "card" / "SLG-01"
    st.mkdir(parents=True)
    data = _mp4(tmp_path / "whole.mp4")
    # Cut inside the index at the end of the file: the stream opens with no codec.
    (st / "VID_0001.MP4").write_bytes(data[: len(data) - 545])
    (st / "IMG_0001.JPG").write_bytes(_jpeg("2026:03:01 04:10:00"))
    (st / "IMG_0002.JPG").write_bytes(_jpeg("2026:03:01 04:10:01", color=(91, 110, 130)))
    for _run in range(2):  # and a rerun does not trip over it either
        res = ingest(project, st, deployment="SLG-01-A")
        assert [r["file"].split("/")[-1] for r in res.rejected] == ["VID_0001.MP4"]
        reason = res.rejected[0]["reason"]
        assert "truncated or corrupt video" in reason and "\n" not in reason
    with project.session() as s:
        names = sorted(m.file_name for m in s.scalars(select(Media)))
    assert names == ["IMG_0001.JPG", "IMG_0002.JPG"]
