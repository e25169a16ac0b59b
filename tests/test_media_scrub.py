"""Media without the place they were taken (issue 19 item 2), and people blurred for viewers.

Files are built by the test with a real encoder (Pillow, FFmpeg through PyAV)
carrying the place the way cameras and phones write it: Exif GPS, XMP and a
comment in a JPEG; ``eXIf``, ``tEXt``, ``iTXt`` and ``zTXt`` in a PNG; the
``loci`` atom FFmpeg writes into an MP4, the ``©xyz`` atom it writes into a
MOV, and a GPS track. The real camtrapR and Camtrap DP example files are
cleaned too, pixel for pixel. Then the review app and the public Camtrap DP
export are checked to hand out only cleaned files to people without the
right. Each check of a served or exported file failed before these fixes.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import select

from irbis.store.schema import DetectionBox, Media, MediaDetection
from irbis.store.scrub import ScrubError, scrub

from .conftest import DATA
from .test_web_api import _now, build_project

#: How the tests' place is spelled inside files (decimal and NMEA forms).
PLACE = (b"49.8123", b"87.6543", b"4948.74", b"08739.25")


def _exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TrailCam"
    exif.get_ifd(0x8769)[0x9003] = "2024:03:01 04:05:06"
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x0049.812345 87.654321"  # UserComment
    exif.get_ifd(0x8825).update({1: "N", 2: (49.0, 48.0, 44.4), 3: "E", 4: (87.0, 39.0, 15.5)})
    return exif


def _picture() -> Image.Image:
    img = Image.new("RGB", (96, 64))
    img.putdata(
        [((x * 5) % 256, (y * 9) % 256, (x * y) % 256) for y in range(64) for x in range(96)]
    )
    return img


def jpeg_with_place() -> bytes:
    """A JPEG naming the place in Exif GPS, UserComment, XMP, a comment, IPTC and a trailer."""
    buf = io.BytesIO()
    xmp = b'<x:xmpmeta><rdf:Description exif:GPSLatitude="49.81234N"/></x:xmpmeta>'
    _picture().save(
        buf, "JPEG", quality=90, exif=_exif_with_gps().tobytes(), xmp=xmp, comment=b"49.812345"
    )
    data = buf.getvalue()
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x5a\x00\x0749.8123"
    app13 = b"\xff\xed" + (len(iptc) + 2).to_bytes(2, "big") + iptc
    return data[:2] + app13 + data[2:] + b"TRAILER 87.6543"


def png_with_place() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "camera at 49.812345, 87.654321")
    info.add_text("Location", "49.8123 87.6543", zip=True)
    info.add_itxt("XML:com.adobe.xmp", '<x exif:GPSLatitude="49.8123"/>')
    buf = io.BytesIO()
    _picture().save(buf, "PNG", exif=_exif_with_gps().tobytes(), pnginfo=info)
    data = buf.getvalue()
    # A private chunk a vendor might use, before IEND.
    body = b"lat=49.8123"
    chunk = struct.pack(">I", len(body)) + b"gpSx" + body
    chunk += struct.pack(">I", zlib.crc32(b"gpSx" + body) & 0xFFFFFFFF)
    return data[:-12] + chunk + data[-12:]


def video_with_place(fmt: str) -> bytes:
    """A short video written by FFmpeg with its ``location`` tag.

    FFmpeg writes it as a ``loci`` atom into an MP4 and as ``©xyz`` into a MOV.
    """
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        c.metadata["location"] = "+49.8123+087.6543/"
        c.metadata["comment"] = "ridge camera 49.8123 87.6543"
        s = c.add_stream("mpeg4", rate=5)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, i * 10 : i * 10 + 10] = 200
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def with_gps_track(data: bytes) -> bytes:
    """``data`` (moov last) with a timed-metadata track whose one sample is an NMEA fix."""
    i = 0
    while True:
        size = int.from_bytes(data[i : i + 4], "big")
        if data[i + 4 : i + 8] == b"moov":
            break
        i += size
    assert i + size == len(data)  # moov is the last box
    sample = b"$GPRMC,040506,A,4948.7407,N,08739.2593,E,0.0,0.0,010324,,*00"
    full = b"\x00\x00\x00\x00"
    hdlr = _box(b"hdlr", full + b"\x00" * 4 + b"meta" + b"\x00" * 12 + b"GPS\x00")

    def stbl(offset: int) -> bytes:
        return _box(
            b"stbl",
            _box(b"stsd", full + struct.pack(">I", 0))
            + _box(b"stts", full + struct.pack(">I", 0))
            + _box(b"stsc", full + struct.pack(">IIII", 1, 1, 1, 1))
            + _box(b"stsz", full + struct.pack(">II", 0, 1) + struct.pack(">I", len(sample)))
            + _box(b"stco", full + struct.pack(">II", 1, offset)),
        )

    def trak(offset: int) -> bytes:
        return _box(b"trak", _box(b"mdia", hdlr + _box(b"minf", stbl(offset))))

    moov_body = data[i + 8 :]
    new_moov_len = 8 + len(moov_body) + len(trak(0))
    offset = i + new_moov_len + 8  # the sample sits in an mdat right after the new moov
    moov = _box(b"moov", moov_body + trak(offset))
    assert len(moov) == new_moov_len
    return data[:i] + moov + _box(b"mdat", sample)


def _frames(data: bytes) -> list[bytes]:
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray().tobytes() for f in c.decode(video=0)]


def _places(data: bytes) -> list[bytes]:
    return [p for p in PLACE if p in data]


# -- the parsers ------------------------------------------------------------------------


def test_jpeg_loses_every_place_and_keeps_its_pixels_byte_for_byte():
    original = jpeg_with_place()
    assert _places(original) and Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)
    clean = scrub(original)
    assert not _places(clean) and b"GPS" not in clean and b"TRAILER" not in clean
    with Image.open(io.BytesIO(clean)) as im:
        exif = im.getexif()
        assert 0x8825 not in exif and not exif.get_ifd(0x8825)
        assert exif[0x010F] == "TrailCam"
        assert exif.get_ifd(0x8769)[0x9003] == "2024:03:01 04:05:06"
        assert "comment" not in im.info and "xmp" not in im.info
        assert im.tobytes() == Image.open(io.BytesIO(original)).tobytes()
    # The entropy-coded scan is copied as it is, not recompressed.
    sos = original.index(b"\xff\xda")
    assert clean.endswith(original[sos : original.rindex(b"\xff\xd9") + 2])
    assert scrub(clean) == clean


def test_png_loses_exif_gps_text_and_private_chunks():
    original = png_with_place()
    assert _places(original)
    clean = scrub(original)
    assert not _places(clean) and b"GPS" not in clean
    with Image.open(io.BytesIO(clean)) as im:
        im.load()
        assert im.getexif()[0x010F] == "TrailCam" and not im.getexif().get_ifd(0x8825)
        assert not im.text
        assert im.tobytes() == Image.open(io.BytesIO(original)).tobytes()


@pytest.mark.parametrize("fmt", ["mp4", "mov"])
def test_videos_lose_location_atoms_and_gps_tracks_and_still_play(fmt):
    plain = video_with_place(fmt)
    atom = b"loci" if fmt == "mp4" else b"\xa9xyz"
    assert atom in plain
    original = with_gps_track(plain)
    assert b"4948.7407" in original
    clean = scrub(original)
    assert len(clean) == len(original)  # nothing moved: chunk offsets stay valid
    assert atom not in clean and not _places(clean) and b"ridge camera" not in clean
    assert b"GPRMC" not in clean
    assert _frames(clean) == _frames(plain)
    assert scrub(clean) == clean


def test_damaged_or_unknown_files_are_refused_not_passed_through():
    for bad in (b"GIF89a" + b"\0" * 20, b"II*\x00" + b"\0" * 20, b"<html>", b""):
        with pytest.raises(ScrubError):
            scrub(bad)
    jpeg = jpeg_with_place()
    with pytest.raises(ScrubError):
        scrub(jpeg[:30])  # cut inside the Exif segment
    mp4 = video_with_place("mp4")
    moov = mp4.index(b"moov") - 4
    with pytest.raises(ScrubError):
        scrub(mp4[: moov + 100])  # the movie header cut short
    heif = b"\x00\x00\x00\x18ftypheic" + b"\0" * 12
    with pytest.raises(ScrubError):
        scrub(heif)


def test_real_files_are_cleaned_without_touching_their_pixels():
    root = DATA / "cameratrap"
    if not root.exists():
        pytest.skip(f"real data not found at {root} (see ../shared/data/README.md)")
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".mp4")
    )
    assert len(files) > 100
    for path in files:
        data = path.read_bytes()
        clean = scrub(data)
        assert scrub(clean) == clean, path
        if path.suffix.lower() == ".mp4":
            assert len(clean) == len(data) and _frames(clean) == _frames(data), path
            continue
        with Image.open(io.BytesIO(clean)) as im:
            assert not im.getexif().get_ifd(0x8825) and "xmp" not in im.info, path
            assert im.tobytes() == Image.open(path).tobytes(), path


# -- served and exported ------------------------------------------------------------------


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project, token: str):
        c = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
        c.headers["Authorization"] = f"Bearer {token}"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def _point(project, media_id: int, path: Path, mediatype: str, mime: str) -> None:
    """Make a media row the ingest of ``path`` by reference (with its hash)."""
    with project.session() as s:
        m = s.get(Media, media_id)
        m.storage, m.stored_path, m.mediatype, m.mime = "reference", str(path), mediatype, mime
        m.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        s.commit()


def test_downloads_are_cleaned_for_users_without_precise_locations(project, client_of, tmp_path):
    from irbis.web.auth import create_user

    build_project(project)
    with project.session() as s:
        ids = list(s.scalars(select(Media.id).order_by(Media.id)).all())[:4]
    files = {
        "jpg": (jpeg_with_place(), "image", "image/jpeg"),
        "png": (png_with_place(), "image", "image/png"),
        "mp4": (with_gps_track(video_with_place("mp4")), "video", "video/mp4"),
        "mov": (video_with_place("mov"), "video", "video/quicktime"),
    }
    for mid, (ext, (data, kind, mime)) in zip(ids, files.items(), strict=True):
        path = tmp_path / f"f.{ext}"
        path.write_bytes(data)
        _point(project, mid, path, kind, mime)
    viewer = client_of(project, create_user(project, "ranger", "viewer"))
    reviewer = client_of(project, create_user(project, "rev", "reviewer"))
    cleared = client_of(project, create_user(project, "sci", "reviewer", precise_locations=True))
    for mid, (data, _, _) in zip(ids, files.values(), strict=True):
        for c in (viewer, reviewer):
            r = c.get(f"/api/media/{mid}/file")
            assert r.status_code == 200, r.text
            assert not _places(r.content) and b"GPS" not in r.content
            assert b"loci" not in r.content and b"\xa9xyz" not in r.content
        assert cleared.get(f"/api/media/{mid}/file").content == data


def _person_setup(project, tmp_path: Path) -> tuple[int, int]:
    """A sharp checkerboard photo with a person box, and a video with a person box."""
    build_project(project)
    with project.session() as s:
        photo, video = list(s.scalars(select(Media.id).order_by(Media.id)).all())[:2]
    img = Image.new("L", (64, 48))
    img.putdata([255 * ((x + y) % 2) for y in range(48) for x in range(64)])
    path = tmp_path / "person.png"
    img.convert("RGB").save(path)
    _point(project, photo, path, "image", "image/png")
    vpath = tmp_path / "person.mp4"
    vpath.write_bytes(video_with_place("mp4"))
    _point(project, video, vpath, "video", "video/mp4")
    with project.session() as s:
        for mid in (photo, video):
            res = MediaDetection(
                media_id=mid,
                detector="t",
                model="t",
                model_version="1",
                threshold=0.2,
                verdict="person",
                max_score=0.9,
                n_boxes=1,
                created_utc=_now(),
            )
            s.add(res)
            s.flush()
            s.add(
                DetectionBox(
                    result_id=res.id,
                    media_id=mid,
                    frame=0,
                    category="person",
                    score=0.9,
                    x=0.25,
                    y=0.25,
                    width=0.5,
                    height=0.5,
                    source="t",
                )
            )
        s.commit()
    return photo, video


def _alternates(im: Image.Image) -> int:
    """Largest jump between neighbours along the middle row inside the person's box.

    255 for the sharp checkerboard; the box spans 25 %..75 % of the width.
    """
    g = im.convert("L")
    y = g.height // 2
    xs = range(int(g.width * 0.3), int(g.width * 0.7))
    return max(abs(g.getpixel((x, y)) - g.getpixel((x + 1, y))) for x in xs)


def test_people_are_blurred_for_viewers(project, client_of, tmp_path):
    from irbis.web.auth import create_user

    photo, video = _person_setup(project, tmp_path)
    viewer = client_of(project, create_user(project, "ranger", "viewer", precise_locations=True))
    reviewer = client_of(project, create_user(project, "rev", "reviewer"))

    seen = Image.open(io.BytesIO(viewer.get(f"/api/media/{photo}/file").content))
    assert _alternates(seen) < 100
    # Outside the person's box the picture is as it was.
    assert [seen.convert("L").getpixel((x, 2)) for x in (2, 3)] == [0, 255]
    sharp = Image.open(io.BytesIO(reviewer.get(f"/api/media/{photo}/file").content))
    assert _alternates(sharp) == 255
    thumb = viewer.get(f"/api/media/{photo}/thumb?size=160")
    assert thumb.status_code == 200 and _alternates(Image.open(io.BytesIO(thumb.content))) < 100
    assert viewer.get(f"/api/media/{video}/file").status_code == 403
    assert reviewer.get(f"/api/media/{video}/file").status_code == 200


def test_public_export_copies_cleaned_media(project, tmp_path):
    from irbis.exchange.camtrapdp import export_camtrapdp

    from .test_exchange_camtrapdp_public import _build, _rows

    files = tmp_path / "files"
    files.mkdir()
    _build(project, [(49.8123, 87.6543, ["Panthera uncia", "Panthera uncia"])], file_dir=files)
    with project.session() as s:
        first, second = s.scalars(select(Media).order_by(Media.id)).all()
        Path(first.stored_path).write_bytes(jpeg_with_place())
        mp4 = files / "clip.mp4"
        mp4.write_bytes(video_with_place("mp4"))
        second.stored_path, second.mediatype, second.mime = str(mp4), "video", "video/mp4"
        second.file_name = "clip.mp4"
        s.commit()
    res = export_camtrapdp(project, tmp_path / "pub", media_files="copy")
    assert res.validation.valid and res.files_copied == 2
    for row in _rows(tmp_path / "pub", "media"):
        data = (tmp_path / "pub" / row["filePath"]).read_bytes()
        assert not _places(data) and b"loci" not in data and b"GPS" not in data, row
    precise = export_camtrapdp(project, tmp_path / "all", public=False, media_files="copy")
    assert precise.files_copied == 2
    copies = [
        (tmp_path / "all" / r["filePath"]).read_bytes() for r in _rows(tmp_path / "all", "media")
    ]
    assert any(b"loci" in c for c in copies)
