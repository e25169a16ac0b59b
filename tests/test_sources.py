"""Tests of irbis.ingest.sources: folders, zips and single files as memory cards."""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from irbis.core.errors import BadInputError
from irbis.ingest.metadata import read_metadata, read_video_metadata
from irbis.ingest.sources import Rejected, SourceFile, iter_source

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAMTRAPR = DATA / "cameratrap" / "camtrapR" / "pictures"

needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real test data not found at {DATA} (shared/data beside the repo)"
)


def _jpeg(color: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(buf, "JPEG")
    return buf.getvalue()


def _mp4(path: Path) -> bytes:
    with av.open(str(path), "w") as out:
        out.metadata["creation_time"] = "2023-08-09T10:11:12.000000Z"
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def _split(items: list[SourceFile | Rejected]) -> tuple[dict[str, SourceFile], dict[str, str]]:
    files = {i.relpath: i for i in items if isinstance(i, SourceFile)}
    rejected = {i.relpath: i.reason for i in items if isinstance(i, Rejected)}
    return files, rejected


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


# ---------------------------------------------------------------------------
# folders


@pytest.fixture()
def card(tmp_path: Path) -> Path:
    """A card folder with photos, clutter, sidecars and hazards."""
    root = tmp_path / "card"
    dcim = root / "DCIM" / "100RECNX"
    dcim.mkdir(parents=True)
    (dcim / "IMG0002.JPG").write_bytes(_jpeg((1, 2, 3)))
    (dcim / "IMG0001.JPG").write_bytes(_jpeg((4, 5, 6)))
    (dcim / "IMG0001.THM").write_bytes(b"thumb")
    (dcim / "._IMG0001.JPG").write_bytes(b"apple double")
    (root / ".DS_Store").write_bytes(b"x")
    (root / "Thumbs.db").write_bytes(b"x")
    (root / ".Trashes").mkdir()
    (root / ".Trashes" / "old.JPG").write_bytes(_jpeg())
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "x.JPG").write_bytes(b"x")
    (root / "notes.txt").write_text("battery low")
    (root / "survey.json").write_text("{}")
    (root / "README").write_text("x")
    (root / "backup.zip").write_bytes(b"PK")
    (root / "empty.jpg").write_bytes(b"")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(_jpeg())
    (root / "escape.jpg").symlink_to(outside)
    (root / "escape_dir").symlink_to(tmp_path)
    (root / "alias.jpg").symlink_to(dcim / "IMG0001.JPG")
    (root / "dangling.jpg").symlink_to(root / "gone.jpg")
    os.mkfifo(root / "pipe.jpg")
    return root


def test_folder_card(card: Path) -> None:
    before = _snapshot(card)
    items = list(iter_source(card))
    files, rejected = _split(items)

    assert [i.relpath for i in items] == sorted(i.relpath for i in items)
    assert set(files) == {
        "DCIM/100RECNX/IMG0001.JPG",
        "DCIM/100RECNX/IMG0002.JPG",
        "alias.jpg",  # a link within the card is an ordinary file
        "empty.jpg",  # yielded; read_metadata explains it
    }
    assert rejected == {
        "README": "not a media file (no extension)",
        "backup.zip": "zip file on the card: unpack it first",
        "dangling.jpg": "broken symlink",
        "escape.jpg": "symlink points outside the card",
        "escape_dir": "symlink points outside the card",
        "pipe.jpg": "not a regular file",
        "survey.json": "not a media file (extension .json)",
    }
    img = files["DCIM/100RECNX/IMG0001.JPG"]
    assert img.local_path == card / "DCIM" / "100RECNX" / "IMG0001.JPG"
    assert img.read() == img.local_path.read_bytes()
    assert img.size == len(img.read())
    with img.open() as fh:
        assert fh.read() == img.read()
    assert read_metadata(img.read(), img.relpath).width == 16
    with pytest.raises(BadInputError, match="empty file"):
        read_metadata(files["empty.jpg"].read(), "empty.jpg")
    # Enumeration is repeatable and leaves the card untouched.
    assert [i.relpath for i in iter_source(card)] == [i.relpath for i in items]
    assert _snapshot(card) == before


def test_folder_read_refuses_oversized(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(_jpeg() + bytes(5000))
    (sf,) = iter_source(tmp_path, max_bytes=1000)
    assert isinstance(sf, SourceFile)
    with pytest.raises(BadInputError, match="too large"):
        sf.read()
    with sf.open() as fh:  # streaming is still possible
        assert len(fh.read()) == sf.size


def test_single_file_and_missing_source(tmp_path: Path) -> None:
    photo = tmp_path / "IMG0001.JPG"
    photo.write_bytes(_jpeg())
    (sf,) = iter_source(photo)
    assert isinstance(sf, SourceFile) and sf.relpath == "IMG0001.JPG" and sf.local_path == photo

    sheet = tmp_path / "deployments.csv"
    sheet.write_text("a,b\n")
    (rej,) = iter_source(sheet)
    assert isinstance(rej, Rejected) and rej.reason == "not a media file (extension .csv)"

    with pytest.raises(BadInputError, match="no such file or folder"):
        iter_source(tmp_path / "nope")


@needs_data
def test_real_camtrapr_folder() -> None:
    items = list(iter_source(CAMTRAPR))
    files, rejected = _split(items)
    assert rejected == {}
    assert len(files) == sum(1 for p in CAMTRAPR.rglob("*") if p.is_file())
    assert [i.relpath for i in items] == sorted(files)
    assert "raw_images/StationA/IMG0001.JPG" in files


# ---------------------------------------------------------------------------
# zips


def _set_encrypted(data: bytes, name: bytes) -> bytes:
    """Set the 'encrypted' flag of one entry in both its local and central headers."""
    out = bytearray(data)
    for sig, flag_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 26, 30),
        (b"PK\x01\x02", 8, 28, 46),
    ):
        pos = out.find(sig)
        while pos >= 0:
            (nlen,) = struct.unpack_from("<H", out, pos + name_len_at)
            if bytes(out[pos + name_at : pos + name_at + nlen]) == name:
                (flags,) = struct.unpack_from("<H", out, pos + flag_at)
                struct.pack_into("<H", out, pos + flag_at, flags | 0x1)
            pos = out.find(sig, pos + 4)
    return bytes(out)


@pytest.fixture()
def card_zip(tmp_path: Path) -> Path:
    path = tmp_path / "card.zip"
    link = zipfile.ZipInfo("DCIM/link.jpg")
    link.external_attr = 0o120777 << 16
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("x.jpg", _jpeg())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("DCIM/100/IMG0002.JPG", _jpeg((9, 9, 9)))
        z.writestr("DCIM/100/IMG0001.JPG", _jpeg((1, 1, 1)))
        z.writestr("DCIM\\101\\IMG0003.JPG", _jpeg((2, 2, 2)))  # old Windows zip tools
        z.writestr("DCIM/100/", b"")
        z.writestr("DCIM/100/clip.mp4", _mp4(tmp_path / "clip.mp4"))
        z.writestr("../evil.jpg", _jpeg())
        z.writestr("DCIM/../../evil2.jpg", _jpeg())
        z.writestr("..\\..\\evil3.jpg", _jpeg())
        z.writestr("/etc/evil4.jpg", _jpeg())
        z.writestr("C:/Windows/evil5.jpg", _jpeg())
        z.writestr("__MACOSX/DCIM/._IMG0001.JPG", b"x")
        z.writestr("DCIM/.DS_Store", b"x")
        z.writestr("DCIM/log.txt", b"x")
        z.writestr("DCIM/secret.jpg", _jpeg())
        z.writestr(link, "/etc/passwd")
        z.writestr("nested.zip", inner.getvalue())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicates
            z.writestr("DCIM/100/IMG0001.JPG", _jpeg((7, 7, 7)))
    path.write_bytes(_set_encrypted(path.read_bytes(), b"DCIM/secret.jpg"))
    return path


def test_zip_card(card_zip: Path, tmp_path: Path) -> None:
    before = card_zip.read_bytes()
    items = list(iter_source(card_zip))
    files, rejected = _split(items)

    assert [i.relpath for i in items] == sorted(i.relpath for i in items)
    assert set(files) == {
        "DCIM/100/IMG0001.JPG",
        "DCIM/100/IMG0002.JPG",
        "DCIM/101/IMG0003.JPG",
        "DCIM/100/clip.mp4",
    }
    escape = "path escapes the card (zip entry with ../ or absolute path)"
    assert rejected == {
        "../evil.jpg": escape,
        "DCIM/../../evil2.jpg": escape,
        "..\\..\\evil3.jpg": escape,
        "/etc/evil4.jpg": escape,
        "C:/Windows/evil5.jpg": escape,
        "DCIM/secret.jpg": "encrypted zip entry",
        "DCIM/link.jpg": "symlink inside zip",
        "nested.zip": "zip inside zip: unpack it first",
        # The second entry of that name; the first is kept.
        "DCIM/100/IMG0001.JPG": "duplicate name in zip (only the first is used)",
    }
    first = files["DCIM/100/IMG0001.JPG"]
    assert first.local_path is None
    assert first.where == f"{card_zip}/DCIM/100/IMG0001.JPG"
    data = first.read()
    assert len(data) == first.size
    with Image.open(io.BytesIO(data)) as img:
        assert img.getpixel((8, 6))[0] < 4  # the first (1,1,1) entry, not the (7,7,7)

    # Videos are opened as seekable files, spooled in the given temp folder.
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    clip = files["DCIM/100/clip.mp4"]
    with clip.open(spool_dir) as fh:
        meta = read_video_metadata(fh, clip.relpath)
    assert meta.frame_count == 5 and meta.utc_offset_min == 0
    assert list(spool_dir.iterdir()) == []
    assert card_zip.read_bytes() == before


def test_zip_bomb_rejected_without_inflating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("DCIM/IMG0001.JPG", _jpeg())
        z.writestr("DCIM/IMG0002.JPG", bytes(50 * 1024 * 1024))
    assert path.stat().st_size < 1024 * 1024
    files, rejected = _split(list(iter_source(path)))
    assert set(files) == {"DCIM/IMG0001.JPG"}
    assert rejected["DCIM/IMG0002.JPG"].startswith("zip bomb suspected (compression ratio")

    # A tighter size limit rejects on the declared size alone.
    _, rejected = _split(list(iter_source(path, max_bytes=10 * 1024 * 1024)))
    assert rejected["DCIM/IMG0002.JPG"].startswith("zip entry too large")


def test_zip_read_stops_at_limit(tmp_path: Path) -> None:
    path = tmp_path / "card.zip"
    payload = np.random.default_rng(0).integers(0, 255, 300_000, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.jpg", payload)
    (sf,) = iter_source(path)
    assert isinstance(sf, SourceFile) and sf.read() == payload
    # The bound holds while inflating, whatever the listing said.
    tight = dataclasses.replace(sf, max_bytes=100_000)
    with pytest.raises(BadInputError, match="zip bomb suspected"):
        tight.read()
    with pytest.raises(BadInputError, match="zip bomb suspected"):
        tight.open(tmp_path)


def test_zip_entry_lying_about_its_size(tmp_path: Path) -> None:
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("IMG0001.JPG", bytes(200_000))
    data = bytearray(path.read_bytes())
    # Declare 1000 bytes in both headers while the stream inflates to 200 kB.
    struct.pack_into("<I", data, 22, 1000)
    cd = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 1000)
    path.write_bytes(bytes(data))
    (sf,) = iter_source(path)
    assert isinstance(sf, SourceFile) and sf.size == 1000
    with pytest.raises(BadInputError, match="corrupt zip entry"):
        sf.read()


def test_unreadable_zips(tmp_path: Path, card_zip: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is a text file renamed to zip" * 20)
    with pytest.raises(BadInputError, match="not a readable zip file") as info:
        iter_source(junk)
    assert info.value.hint

    cut = tmp_path / "cut.zip"
    data = card_zip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="not a readable zip file"):
        iter_source(cut)


def test_zip_entry_with_bad_crc(tmp_path: Path) -> None:
    path = tmp_path / "card.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("IMG0001.JPG", _jpeg())
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # flip a byte inside the stored photo
    path.write_bytes(bytes(data))
    (sf,) = iter_source(path)
    assert isinstance(sf, SourceFile)
    with pytest.raises(BadInputError, match="corrupt zip entry") as info:
        sf.read()
    assert info.value.where.endswith("card.zip/IMG0001.JPG")


def test_zip_entries_read_from_threads(tmp_path: Path) -> None:
    path = tmp_path / "card.zip"
    payloads = {f"DCIM/IMG{i:04d}.JPG": _jpeg((i, i, i)) for i in range(40)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in payloads.items():
            z.writestr(name, data)
    files = [i for i in iter_source(path) if isinstance(i, SourceFile)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = dict(zip((f.relpath for f in files), pool.map(SourceFile.read, files), strict=True))
    assert got == payloads
