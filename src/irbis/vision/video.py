"""Sample still frames from camera-trap videos with PyAV, for the detectors.

A trail-camera clip is 5-60 s of a mostly still scene; looking at one frame a
second finds what walks through and costs a few percent of decoding every
frame through a detector. The sampled frames of one clip form one burst for
the motion detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from irbis.core.errors import BadInputError

__all__ = ["VideoFrame", "sample_frames"]


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame: its position in the sample, time offset and pixels."""

    index: int
    time_s: float
    image: Image.Image


def sample_frames(
    path: str | Path, *, every_s: float = 1.0, max_frames: int = 30
) -> list[VideoFrame]:
    """Decode ``path`` and keep one frame every ``every_s`` seconds.

    Parameters
    ----------
    path
        A video file PyAV (FFmpeg) can read.
    every_s
        Seconds between kept frames (the first frame is always kept).
    max_frames
        At most this many frames; a longer clip is sampled more sparsely so the
        kept frames still span all of it.

    Returns
    -------
    list[VideoFrame]
        RGB frames in time order, ``index`` 0, 1, 2...

    Raises
    ------
    BadInputError
        The file is not a readable video or holds no frames.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise BadInputError(
            str(path), f"not a readable video ({exc})", "check the file or re-ingest it"
        ) from exc
    with container:
        if not container.streams.video:
            raise BadInputError(str(path), "no video stream", "is it an audio file?")
        stream = container.streams.video[0]
        # Decode with threads: a 1080p H.264 clip decodes several times faster.
        stream.thread_type = "AUTO"
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        step = every_s
        if duration and max_frames > 0 and duration / step > max_frames:
            # The last frame sits just before ``duration``: spread max_frames
            # samples evenly over [0, duration).
            step = duration / max_frames
        frames: list[VideoFrame] = []
        next_t = 0.0
        first_t: float | None = None
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else len(frames) * step
                if first_t is None:
                    first_t = t
                t -= first_t  # some cameras start their timestamps above zero
                if t + 1e-6 < next_t:
                    continue
                frames.append(VideoFrame(len(frames), t, frame.to_image().convert("RGB")))
                next_t = t + step
                if len(frames) >= max_frames:
                    break
        except (av.FFmpegError, ValueError, EOFError) as exc:
            if not frames:
                raise BadInputError(
                    str(path), f"video cannot be decoded ({exc})", "check the file"
                ) from exc
            # A truncated clip (battery died while writing) still has its first
            # seconds: keep what decoded.
    if not frames:
        raise BadInputError(str(path), "video holds no frames", "check the file")
    return frames
