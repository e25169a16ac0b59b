"""Exported media: stored person boxes are blurred, everything else is left as it was."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.media_export import export_image, person_boxes, write_blurred_copy
from irbis.store import Project
from irbis.store.schema import DetectionBox, Media, MediaDetection

W, H = 320, 240
PERSON = (0.25, 0.2, 0.25, 0.5)  # x, y, width, height as fractions of the frame


def _frame(seed: int = 0) -> np.ndarray:
    """A frame whose 'person' region carries a fine checkerboard (high detail)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(60, 140, size=(H, W, 3), dtype=np.uint8)
    x, y, w, h = (int(v * s) for v, s in zip(PERSON, (W, H, W, H), strict=True))
    yy, xx = np.mgrid[0:h, 0:w]
    a[y : y + h, x : x + w] = np.where(((yy // 2 + xx // 2) % 2)[..., None] == 1, 250, 5)
    return a


def _region(a: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x, y, w, h = box
    return a[int(y * H) : int((y + h) * H), int(x * W) : int((x + w) * W)].astype(float)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_blurred_copy_hides_the_person_and_keeps_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "frame.png"
    original = _frame()
    Image.fromarray(original).save(src)
    before = _sha(src)
    res = write_blurred_copy(src, [PERSON], tmp_path / "out.png")
    assert res.blurred == 1 and res.path == tmp_path / "out.png"
    assert _sha(src) == before  # the original is never touched
    out = np.asarray(Image.open(res.path).convert("RGB"))
    assert out.shape == original.shape
    # The checkerboard (std ≈ 122) is gone: what is left is a smooth blur.
    assert _region(original, PERSON).std() > 100
    assert _region(out, PERSON).std() < 25
    # Neighbouring pixel differences (the detail a face is made of) vanish.
    reg = _region(out, PERSON)
    assert np.abs(np.diff(reg, axis=1)).mean() < 3
    # Far from the box (beyond the blur margin) the pixels are the original ones.
    assert np.array_equal(out[:, int(0.7 * W) :], original[:, int(0.7 * W) :])
    assert np.array_equal(out[int(0.85 * H) :], original[int(0.85 * H) :])


def test_no_person_is_a_byte_copy_and_a_folder_keeps_the_name(tmp_path: Path) -> None:
    src = tmp_path / "frame.jpg"
    Image.fromarray(_frame()).save(src, quality=90)
    dest = tmp_path / "export"
    dest.mkdir()
    res = write_blurred_copy(src, [], dest)
    assert res.blurred == 0 and res.path == dest / "frame.jpg"
    assert _sha(res.path) == _sha(src)
    assert [p.name for p in dest.iterdir()] == ["frame.jpg"]  # no temporary file left


def test_undecodable_image_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "broken.jpg"
    src.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(BadInputError, match="broken.jpg: cannot decode"):
        write_blurred_copy(src, [PERSON], tmp_path / "out.jpg")
    assert not (tmp_path / "out.jpg").exists()


def _project_with_photo(tmp_path: Path) -> tuple[Project, int, Path]:
    card = tmp_path / "card" / "SLG-01"
    card.mkdir(parents=True)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2026:02:01 03:00:00"
    photo = card / "IMG_0001.JPG"
    Image.fromarray(_frame(1)).save(photo, quality=95, exif=exif)
    p = Project.init(tmp_path / "p")
    save_registry(
        p,
        [StationRecord(name="SLG-01")],
        [
            DeploymentRecord(
                code="SLG-01-A",
                station="SLG-01",
                start=datetime(2026, 1, 1),
                end=datetime(2026, 6, 1),
            )
        ],
    )
    ingest(p, tmp_path / "card")
    with p.session() as s:
        media_id = s.scalar(select(Media.id))
    assert media_id is not None
    return p, media_id, photo


def _store_result(p: Project, media_id: int, boxes: list[tuple[str, tuple[float, ...]]]) -> None:
    """What ``irbis detect`` writes for a photo: one result row and its boxes."""
    with p.session() as s, s.begin():
        row = MediaDetection(
            media_id=media_id,
            detector="test:boxes",
            model="test",
            model_version="1",
            threshold=0.1,
            verdict="person" if any(c == "person" for c, _b in boxes) else "blank",
            max_score=0.9,
            n_boxes=len(boxes),
            n_frames=1,
            best_frame=0,
            error="",
            burst="",
            params={},
            created_utc=datetime(2026, 2, 2),
        )
        s.add(row)
        s.flush()
        for cat, (x, y, w, h) in boxes:
            s.add(
                DetectionBox(
                    result_id=row.id,
                    media_id=media_id,
                    frame=0,
                    time_s=None,
                    category=cat,
                    score=0.9,
                    x=x,
                    y=y,
                    width=w,
                    height=h,
                    source="test",
                )
            )


def test_export_image_blurs_stored_person_boxes_only(tmp_path: Path) -> None:
    p, media_id, photo = _project_with_photo(tmp_path)
    try:
        # Not detected yet: exported as it is, and the result says it was not checked.
        res = export_image(p, media_id, tmp_path / "unchecked.jpg")
        assert (res.blurred, res.checked) == (0, False)
        assert _sha(res.path) == _sha(photo)

        animal = (0.7, 0.6, 0.2, 0.3)
        _store_result(p, media_id, [("person", PERSON), ("animal", animal)])
        boxes, checked = person_boxes(p, media_id)
        assert checked and len(boxes) == 1 and boxes[0] == pytest.approx(PERSON)
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        res = export_image(p, media_id, out_dir)
        assert (res.blurred, res.checked) == (1, True)
        assert res.path == out_dir / "IMG_0001.JPG"
        got = np.asarray(Image.open(res.path).convert("RGB"))
        orig = np.asarray(Image.open(photo).convert("RGB"))
        assert _region(orig, PERSON).std() > 80
        assert _region(got, PERSON).std() < 25
        # The animal box is not blurred: its noise texture survives (JPEG
        # re-encoding of pure noise changes pixels by a few levels only).
        a_orig, a_got = _region(orig, animal), _region(got, animal)
        assert np.abs(a_got - a_orig).mean() < 8
        assert a_got.std() > 0.8 * a_orig.std()
        assert np.abs(_region(got, PERSON) - _region(orig, PERSON)).mean() > 50
        # The capture time survives the export (EXIF kept).
        assert Image.open(res.path).getexif().get_ifd(0x8769).get(36867) == "2026:02:01 03:00:00"
    finally:
        p.close()


def test_export_image_unknown_media_is_a_clear_error(tmp_path: Path) -> None:
    p, media_id, _photo = _project_with_photo(tmp_path)
    try:
        with pytest.raises(BadInputError, match="no such media"):
            export_image(p, media_id + 100, tmp_path / "x.jpg")
    finally:
        p.close()
