"""Tests of irbis.ingest.metadata on real camera-trap files and a corpus of bad ones."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

from irbis.core.errors import BadInputError
from irbis.ingest.metadata import (
    media_kind,
    parse_exif_datetime,
    parse_xmp_tags,
    read_metadata,
    read_video_metadata,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAMTRAPR = DATA / "cameratrap" / "camtrapR" / "pictures"
CAMTRAPDP = DATA / "cameratrap" / "camtrap-dp-example"

needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real test data not found at {DATA} (shared/data beside the repo)"
)

# camtrapR names files "StationA__2009-04-21__00-40-00(1).JPG" from the EXIF time.
_NAME_TIME = re.compile(r"__(\d{4}-\d{2}-\d{2})__(\d{2})-(\d{2})-(\d{2})\(\d+\)")


def _camtrapr_files(sub: str) -> list[Path]:
    return sorted((CAMTRAPR / sub).rglob("*.JPG"))


def _time_from_name(path: Path) -> datetime:
    m = _NAME_TIME.search(path.name)
    assert m, path.name
    return datetime.fromisoformat(f"{m.group(1)} {m.group(2)}:{m.group(3)}:{m.group(4)}")


@pytest.fixture(autouse=True)
def _no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test in which Pillow would decode pixel data (too slow on real cards)."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def _jpeg(size: tuple[int, int] = (40, 30), **save_kw: object) -> bytes:
    """A small Pillow-made JPEG (encoding happens before the no-decode patch matters)."""
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 60)).save(buf, "JPEG", **save_kw)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# media_kind and small parsers


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("IMG0001.JPG", "image"),
        ("a/b/c.jpeg", "image"),
        ("x.Png", "image"),
        ("DCIM\\100\\clip.MP4", "video"),
        ("clip.avi", "video"),
        ("clip.MOV", "video"),
        ("clip.m4v", "video"),
        ("notes.txt", None),
        ("IMG0001.THM", None),
        ("noext", None),
        ("jpg", None),
    ],
)
def test_media_kind(name: str, kind: str | None) -> None:
    assert media_kind(name) == kind


@pytest.mark.parametrize(
    ("raw", "taken", "offset"),
    [
        ("2009:04:21 00:40:00", datetime(2009, 4, 21, 0, 40), None),
        ("2009:04:21 00:40:00\x00\x00", datetime(2009, 4, 21, 0, 40), None),
        (b"2009:04:21 00:40:00\x00", datetime(2009, 4, 21, 0, 40), None),
        ("  2009-04-21 00:40:00  ", datetime(2009, 4, 21, 0, 40), None),
        ("2009/04/21 0:40", datetime(2009, 4, 21, 0, 40), None),
        ("2021-05-31T08:25:38.25+05:30", datetime(2021, 5, 31, 8, 25, 38, 250000), 330),
        ("2021:05:31 08:25:38Z", datetime(2021, 5, 31, 8, 25, 38), 0),
        ("0000:00:00 00:00:00", None, None),
        ("    :  :     :  :  ", None, None),
        ("2009:13:01 00:00:00", None, None),
        ("2009:02:30 10:00:00", None, None),
        ("2009:04:21 24:00:00", None, None),
        ("2009:04:21", None, None),
        ("", None, None),
        (None, None, None),
        ("garbage", None, None),
    ],
)
def test_parse_exif_datetime_odd_strings(
    raw: object, taken: datetime | None, offset: int | None
) -> None:
    assert parse_exif_datetime(raw) == (taken, offset)


def test_parse_xmp_tags_prefixes_and_fallback() -> None:
    packet = (
        b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:L="http://ns.adobe.com/lightroom/1.0/">'
        b"<L:HierarchicalSubject><rdf:Bag><rdf:li>Species|Snow Leopard</rdf:li>"
        b"<rdf:li> individual|Cat23 </rdf:li><rdf:li></rdf:li></rdf:Bag>"
        b"</L:HierarchicalSubject></rdf:Description></rdf:RDF></x:xmpmeta>"
        b'<?xpacket end="w"?>' + b" " * 50 + b"\x00\x00"
    )
    # Any namespace prefix and capitalisation; blanks dropped; padding ignored.
    assert parse_xmp_tags(packet) == ["Species|Snow Leopard", "individual|Cat23"]
    # Not well-formed (undeclared prefix): the regex fallback still finds them.
    broken = b"<lr:hierarchicalSubject><rdf:Bag><rdf:li>Species|PBE</rdf:li>"
    broken += b"</rdf:Bag></lr:hierarchicalSubject><oops>"
    assert parse_xmp_tags(broken) == ["Species|PBE"]
    assert parse_xmp_tags(b"") == []
    assert parse_xmp_tags(b"<not xml") == []


# ---------------------------------------------------------------------------
# real data


@needs_data
def test_camtrapr_exif_times_match_file_names() -> None:
    files = [
        p
        for sub in (
            "sample_images_species_tag",
            "sample_images_indiv_tag",
            "sample_images_species_dir",
        )
        for p in _camtrapr_files(sub)
    ]
    assert len(files) >= 150
    for path in files:
        meta = read_metadata(path.read_bytes(), str(path))
        assert meta.mediatype == "image" and meta.mime == "image/jpeg"
        assert meta.taken == _time_from_name(path), path.name
        assert meta.taken_source == "exif"
        assert meta.utc_offset_min is None  # Cuddeback writes no offset
        # Thumbnails; one (StationB 2009-04-28 17:48 (3)) is stored rotated, 75x100.
        assert {meta.width, meta.height} == {100, 75}
        # The Cuddeback cameras swap the fields: Make "G4"/"G6.1", Model "CUDDEBACK".
        # They are kept as written, padding stripped.
        assert meta.make in {"G4", "G6.1"}
        assert meta.model == "CUDDEBACK"


@needs_data
def test_camtrapr_species_tags_from_xmp() -> None:
    files = _camtrapr_files("sample_images_species_tag")
    species = set()
    for path in files:
        tags = read_metadata(path.read_bytes(), path.name).tags
        assert len(tags) == 1 and tags[0].startswith("Species|"), (path.name, tags)
        species.add(tags[0])
    # Full names, not the folder codes (PBE, ...) of sample_images_species_dir.
    assert {"Species|Leopard Cat", "Species|Malay Civet", "Species|Mouse Deer"} <= species


@needs_data
def test_camtrapr_individual_tags_match_camtrapr_oracle() -> None:
    folder = CAMTRAPR / "sample_images_indiv_tag" / "LeopardCat"
    oracle = DATA / "cameratrap" / "camtrapR" / "oracle" / "recordTableIndividualSample.csv"
    checked = 0
    with oracle.open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = folder / row["FileName"]
            if not path.exists():
                continue
            meta = read_metadata(path.read_bytes(), path.name)
            assert meta.tags == row["HierarchicalSubject"].split(", "), path.name
            assert meta.taken == datetime.fromisoformat(row["DateTimeOriginal"])
            checked += 1
    assert checked >= 15
    individuals = {
        t
        for p in folder.glob("*.JPG")
        for t in read_metadata(p.read_bytes(), p.name).tags
        if t.startswith("individual|")
    }
    assert individuals == {"individual|1", "individual|2", "individual|3"}


@needs_data
def test_raw_images_have_no_xmp() -> None:
    path = CAMTRAPR / "raw_images" / "StationA" / "IMG0001.JPG"
    meta = read_metadata(path.read_bytes(), path.name)
    assert meta.tags == []
    assert meta.taken is not None


@needs_data
def test_camtrap_dp_times_match_media_csv() -> None:
    rows = {}
    with (CAMTRAPDP / "media.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["filePath"].startswith("media/"):
                rows[row["filePath"]] = row
    files = sorted((CAMTRAPDP / "media").glob("*.JPG"))
    assert len(files) == 10 and len(rows) == 10
    for path in files:
        stamp = datetime.fromisoformat(rows[f"media/{path.name}"]["timestamp"])
        assert stamp.utcoffset() == timedelta(hours=1)
        meta = read_metadata(path.read_bytes(), path.name)
        # EXIF holds the local wall clock of media.csv (2021-04-11, not the
        # 2021-05-31 download date in the file names), and no offset.
        assert meta.taken == stamp.replace(tzinfo=None), path.name
        assert meta.utc_offset_min is None
        assert meta.make == "RECONYX"
        assert meta.model == "HYPERFIRE 2 COVERT"  # trailing NUL stripped
        assert (meta.width, meta.height) == (2048, 1440)


@needs_data
def test_size_comes_from_frame_not_stale_exif() -> None:
    # These were resized to 1280 px with EXIF kept: PixelXDimension still says 2048.
    path = (
        DATA
        / "reid"
        / "snowleopard-tajikistan"
        / "images"
        / "01__Station04__Camera2__2012-7-22__1-53-20(0).JPG"
    )
    if not path.exists():
        pytest.skip(f"{path} absent")
    meta = read_metadata(path.read_bytes(), path.name)
    assert (meta.width, meta.height) == (1280, 960)
    assert meta.make == "Panthera V4"
    assert meta.taken == datetime(2012, 7, 22, 0, 53, 20)


@needs_data
def test_real_phone_video_in_camtrapr_folder() -> None:
    path = CAMTRAPR / "sample_images_species_dir" / "StationA" / "PBE" / "20251112_100312.mp4"
    if not path.exists():
        pytest.skip(f"{path} absent")
    meta = read_video_metadata(path, path.name)
    assert meta.mediatype == "video" and meta.mime == "video/mp4"
    # creation_time is UTC (02:03:13Z); the phone named the file in local
    # time at +08:00 (10:03:12, a second earlier: it names at record start).
    assert meta.utc_offset_min == 0
    assert meta.taken == datetime(2025, 11, 12, 2, 3, 13)
    local = meta.taken + timedelta(hours=8)
    assert abs(local - datetime(2025, 11, 12, 10, 3, 12)) <= timedelta(seconds=1)
    assert (meta.width, meta.height) == (1280, 720)
    assert meta.frame_count == 34
    assert meta.duration_s == pytest.approx(1.136, abs=0.01)


# ---------------------------------------------------------------------------
# synthetic images


def _exif_bytes(ifd0: dict[int, object], sub: dict[int, object]) -> bytes:
    exif = Image.Exif()
    for tag, value in ifd0.items():
        exif[tag] = value
    exif_ifd = exif.get_ifd(0x8769)
    for tag, value in sub.items():
        exif_ifd[tag] = value
    return exif.tobytes()


def test_exif_year_2000_with_subsec_offset_serial() -> None:
    exif = _exif_bytes(
        {0x010F: "Bushnell", 0x0110: "Trophy Cam HD", 0x0132: "2024:01:01 00:00:00"},
        {
            0x9003: "2000:01:01 00:00:07",
            0x9291: "25",
            0x9011: "+06:00",
            0xA431: "SN-0042 ",
        },
    )
    meta = read_metadata(_jpeg(exif=exif), "reset_clock.jpg")
    # A camera whose clock was reset: reported as written, the caller flags it.
    assert meta.taken == datetime(2000, 1, 1, 0, 0, 7, 250000)
    assert meta.taken_source == "exif"
    assert meta.utc_offset_min == 360
    assert (meta.make, meta.model, meta.serial) == ("Bushnell", "Trophy Cam HD", "SN-0042")
    assert (meta.width, meta.height) == (40, 30)


def test_exif_falls_back_to_digitized_then_datetime() -> None:
    digitized = _exif_bytes(
        {0x0132: "2011:11:11 11:11:11"},
        {0x9003: "0000:00:00 00:00:00", 0x9004: "2010:10:10 10:10:10", 0x9010: "-03:30"},
    )
    meta = read_metadata(_jpeg(exif=digitized), "d.jpg")
    assert meta.taken == datetime(2010, 10, 10, 10, 10, 10)
    assert meta.utc_offset_min == -210  # OffsetTime used when OffsetTimeDigitized is absent

    only_datetime = _exif_bytes({0x0132: "2011:11:11 11:11:11\x00"}, {})
    meta = read_metadata(_jpeg(exif=only_datetime), "dt.jpg")
    assert meta.taken == datetime(2011, 11, 11, 11, 11, 11)


def test_no_exif_is_not_an_error() -> None:
    meta = read_metadata(_jpeg((64, 48)), "plain.jpg")
    assert meta.taken is None and meta.taken_source is None
    assert meta.make is None and meta.tags == []
    assert (meta.width, meta.height) == (64, 48)


def test_jpeg_xmp_written_by_pillow() -> None:
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:lr="http://ns.adobe.com/lightroom/1.0/">'
        b"<lr:hierarchicalSubject><rdf:Bag><rdf:li>Species|Snow Leopard</rdf:li>"
        b"<rdf:li>individual|F1</rdf:li></rdf:Bag></lr:hierarchicalSubject>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    meta = read_metadata(_jpeg(xmp=xmp), "tagged.jpg")
    assert meta.tags == ["Species|Snow Leopard", "individual|F1"]


def test_png_with_exif_and_xmp() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(
        "XML:com.adobe.xmp",
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:lr="http://ns.adobe.com/lightroom/1.0/">'
        "<lr:hierarchicalSubject><rdf:Bag><rdf:li>Species|Ibex</rdf:li></rdf:Bag>"
        "</lr:hierarchicalSubject></rdf:Description></rdf:RDF></x:xmpmeta>",
        zip=True,
    )
    buf = io.BytesIO()
    exif = _exif_bytes({0x010F: "Reconyx"}, {0x9003: "2022:02:02 02:02:02"})
    Image.new("RGB", (20, 10)).save(buf, "PNG", exif=exif, pnginfo=info)
    meta = read_metadata(buf.getvalue(), "frame.png")
    assert meta.mime == "image/png"
    assert (meta.width, meta.height) == (20, 10)
    assert meta.taken == datetime(2022, 2, 2, 2, 2, 2)
    assert meta.make == "Reconyx"
    assert meta.tags == ["Species|Ibex"]


# ---------------------------------------------------------------------------
# bad images


def _reason(data: bytes, name: str = "bad.jpg") -> BadInputError:
    with pytest.raises(BadInputError) as info:
        read_metadata(data, name)
    err = info.value
    assert err.where == name
    assert err.hint  # every error says what to do
    return err


def test_zero_byte_file() -> None:
    err = _reason(b"")
    assert err.reason == "empty file (0 bytes)"
    assert "copy the file off the card again" in err.hint


def test_text_file_named_jpg() -> None:
    assert _reason(b"Station A, camera 2, retrieved 2024-05-01\n").reason == "not a JPEG/PNG image"


def test_zero_filled_file() -> None:
    assert _reason(bytes(4096)).reason == "file contains only zero bytes"


def test_real_jpeg_cut_in_half_and_padded() -> None:
    data = _jpeg((160, 120), quality=95)
    if DATA.is_dir():
        data = (CAMTRAPDP / "media" / "20210531082538-RCNX0031.JPG").read_bytes()
    half = data[: len(data) // 2]
    assert _reason(half).reason == "truncated JPEG (no end-of-image marker)"
    # A card that lost the tail often pads the file with zeros to its old size.
    padded = half + bytes(len(data) - len(half))
    assert _reason(padded).reason == "truncated JPEG (no end-of-image marker)"
    # The whole file, even with zero padding after its end marker, is fine.
    assert read_metadata(data + bytes(512), "ok.jpg").width is not None


def test_jpeg_cut_inside_header() -> None:
    data = _jpeg(exif=_exif_bytes({0x010F: "X"}, {0x9003: "2020:01:01 00:00:00"}))
    assert _reason(data[:40]).reason == "truncated JPEG (file ends inside the header)"


def test_jpeg_header_pillow_cannot_open() -> None:
    data = _jpeg((16, 16))
    sof = data.rfind(b"\xff\xc0")
    # Claim 2 colour components: no such JPEG colour model.
    broken = data[: sof + 9] + b"\x02" + data[sof + 10 :]
    assert _reason(broken).reason.startswith("corrupt image header")


def test_png_without_iend() -> None:
    buf = io.BytesIO()
    Image.new("L", (30, 30), 7).save(buf, "PNG")
    data = buf.getvalue()
    err = _reason(data[:-12], "frame.png")
    assert err.reason == "truncated PNG (no IEND chunk)"
    assert read_metadata(data, "frame.png").width == 30


# ---------------------------------------------------------------------------
# videos


def _make_video(
    path: Path,
    *,
    frames: int = 10,
    creation_time: str | None = "2024-03-05T06:07:08.000000Z",
    options: dict[str, str] | None = None,
) -> bytes:
    """Write a tiny real video with PyAV (noise frames, so the data has bulk)."""
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", options=options or {}) as out:
        if creation_time:
            out.metadata["creation_time"] = creation_time
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def test_video_mp4_metadata(tmp_path: Path) -> None:
    path = tmp_path / "CLIP0001.MP4"
    _make_video(path)
    meta = read_video_metadata(path, path.name)
    assert meta.mediatype == "video" and meta.mime == "video/mp4"
    assert meta.taken == datetime(2024, 3, 5, 6, 7, 8)
    assert meta.taken_source == "video" and meta.utc_offset_min == 0
    assert (meta.width, meta.height) == (64, 48)
    assert meta.frame_count == 10
    assert meta.duration_s == pytest.approx(1.0, abs=0.05)
    # Same result from a file object (zip entries arrive that way).
    with path.open("rb") as fh:
        assert read_video_metadata(fh, path.name) == meta


def test_video_avi_without_creation_time(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    _make_video(path, creation_time=None)
    meta = read_video_metadata(path, path.name)
    assert meta.mime == "video/x-msvideo"
    assert meta.taken is None and meta.utc_offset_min is None
    assert meta.frame_count == 10


def test_truncated_videos(tmp_path: Path) -> None:
    data = _make_video(tmp_path / "full.mp4")
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError) as info:
        read_video_metadata(tmp_path / "half.mp4", "half.mp4")
    assert "truncated" in info.value.reason and info.value.hint

    # With the index at the front ("faststart") the cut file still opens;
    # counting packets shows the missing tail.
    data = _make_video(tmp_path / "fs.mp4", frames=30, options={"movflags": "faststart"})
    with pytest.raises(BadInputError) as info:
        read_video_metadata(io.BytesIO(data[: len(data) // 2]), "fs.mp4")
    assert re.fullmatch(r"truncated video \(\d+ of 30 frames present\)", info.value.reason)

    for junk, name in ((b"", "empty.mp4"), (b"not a video at all" * 10, "text.mp4")):
        with pytest.raises(BadInputError) as info:
            read_video_metadata(io.BytesIO(junk), name)
        assert info.value.where == name
