"""Small camera-trap cards built by the tests themselves (Pillow JPEGs with EXIF)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(
    when: datetime | str | None,
    *,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    make: str = "RECONYX",
    model: str = "HYPERFIRE 2",
) -> bytes:
    """A small noisy JPEG whose EXIF DateTimeOriginal is ``when`` (no EXIF if None)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(pixels, "RGB")
    buf = io.BytesIO()
    if when is None:
        img.save(buf, "JPEG", quality=70)
        return buf.getvalue()
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    text = when if isinstance(when, str) else when.strftime("%Y:%m:%d %H:%M:%S")
    exif.get_ifd(0x8769)[36867] = text
    img.save(buf, "JPEG", quality=70, exif=exif)
    return buf.getvalue()


def write_card(
    root: Path, stations: list[str], *, start: datetime, events: int, burst: int = 3, seed: int = 0
) -> list[Path]:
    """Write ``events`` bursts of ``burst`` frames per station under ``root/STATION/``."""
    paths = []
    n = 0
    for s_idx, station in enumerate(stations):
        folder = root / station
        folder.mkdir(parents=True, exist_ok=True)
        t = start + timedelta(hours=s_idx)
        for e in range(events):
            t = t + timedelta(hours=5 + (e * 7) % 13, minutes=(e * 17) % 60)
            for b in range(burst):
                n += 1
                p = folder / f"IMG_{n:05d}.JPG"
                p.write_bytes(jpeg_bytes(t + timedelta(seconds=b), seed=seed * 100000 + n))
                paths.append(p)
    return paths
