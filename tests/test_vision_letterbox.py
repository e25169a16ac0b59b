"""The fast letterbox is the reference pre-processing, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from irbis.vision.detector import letterbox, letterbox_reference

from .conftest import need_data


def _same(image: Image.Image, size: int) -> None:
    got, r1 = letterbox(image, size)
    ref, r2 = letterbox_reference(image, size)
    assert got.dtype == ref.dtype == np.float32
    assert got.shape == ref.shape == (3, size, size)
    assert r1 == r2
    assert np.array_equal(got, ref)


def test_real_frames_identical_to_reference() -> None:
    base = need_data("cameratrap")
    files = sorted(p for p in base.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    leopards = need_data("reid", "snowleopard-tajikistan", "images")
    files += sorted(leopards.glob("*.JPG"))[::40]
    assert len(files) > 20
    for f in files:
        with Image.open(f) as im:
            im.load()
            _same(im, 640)


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (3, 900), (900, 3), (641, 640), (640, 641), (639, 427), (100, 75), (961, 1281)],
)
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_any_shape_and_mode_identical_to_reference(shape: tuple[int, int], mode: str) -> None:
    h, w = shape
    rng = np.random.default_rng(h * 7 + w)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    im = im.convert("I;16") if mode == "I;16" else im.convert(mode)
    _same(im, 640)
    _same(im, 320)


def test_open_image_decodes_large_jpeg_reduced_and_small_ones_exactly(tmp_path) -> None:
    from irbis.vision.detector import open_image

    base = need_data("cameratrap", "camtrap-dp-example", "media")
    src = sorted(base.glob("*.JPG"))[0]
    with Image.open(src) as im:
        frame = im.convert("RGB")
    # Frames under twice min_side are decoded exactly as Pillow decodes them.
    same = open_image(src, min_side=1280)
    assert same.size == frame.size and np.array_equal(np.asarray(same), np.asarray(frame))
    # A 26-megapixel frame built from it is decoded at 1/4 scale, never below min_side.
    big = tmp_path / "big.jpg"
    frame.resize((frame.width * 3, frame.height * 3), Image.Resampling.LANCZOS).save(
        big, quality=92
    )
    small = open_image(big, min_side=1280)
    assert small.mode == "RGB" and small.size == (1536, 1080)
    assert max(small.size) >= 1280
    full = open_image(big)
    assert full.size == (6144, 4320)
    # What the network sees differs little: letterboxed inputs agree closely.
    a, _ = letterbox(full, 640)
    b, _ = letterbox(small, 640)
    assert np.abs(a - b).mean() < 2.0
    # Not a JPEG: never reduced.
    png = tmp_path / "big.png"
    Image.open(big).save(png)
    assert open_image(png, min_side=1280).size == (6144, 4320)
