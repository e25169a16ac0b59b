"""Video frame sampling (PyAV) and blurring people before export."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from irbis.core.errors import BadInputError
from irbis.vision.boxes import Detection
from irbis.vision.privacy import blur_people
from irbis.vision.video import sample_frames


def _clip(path: Path, seconds: float, fps: int = 5) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * fps)):
            # Brightness encodes the frame number so the test can tell which was kept.
            a = np.full((48, 64, 3), min(250, 10 + 4 * i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_one_frame_per_second_and_a_cap(tmp_path):
    clip = tmp_path / "c.mp4"
    _clip(clip, 6.0)
    frames = sample_frames(clip)
    assert [f.index for f in frames] == list(range(6))
    assert [round(f.time_s, 2) for f in frames] == [0, 1, 2, 3, 4, 5]
    means = [np.asarray(f.image).mean() for f in frames]
    assert means == sorted(means) and frames[0].image.size == (64, 48)
    # A cap spreads the kept frames over the whole clip.
    capped = sample_frames(clip, max_frames=3)
    assert len(capped) == 3 and capped[-1].time_s >= 4.0


def test_unreadable_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00 not a video at all")
    with pytest.raises(BadInputError, match="bad.mp4"):
        sample_frames(bad)


def test_people_are_blurred_and_nothing_else():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img = Image.fromarray(a)
    person = Detection(20, 20, 60, 100, 0.6, "person", "mdlite")
    animal = Detection(100, 20, 150, 80, 0.9, "animal", "mdlite")
    out = np.asarray(blur_people(img, [person, animal])).astype(int)
    inside = slice(25, 95), slice(25, 55)
    # The person's pixels lose their detail (noise std collapses) ...
    assert out[inside].std() < 0.35 * a[inside].std()
    # ... the animal and the rest stay untouched, and the input is not modified.
    assert np.array_equal(out[20:80, 100:150], a[20:80, 100:150])
    assert np.array_equal(np.asarray(img), a)
