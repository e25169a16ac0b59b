"""Deterministic synthetic camera-trap data: a station network and its memory cards.

The generator imitates what a snow-leopard survey in the Sailyugem range of the
Russian Altai brings back from the field:

* :func:`make_network` lays out stations along a ridge system in projected metres
  (UTM zone 46N, ``EPSG:32646``) between 2000 and 3500 m, one RECONYX HYPERFIRE 2
  per station, with the usual field trouble: a camera whose clock runs 7 minutes
  slow, one whose clock was reset to 2000-01-01 half-way through the deployment,
  and one or two malfunction periods (snow on the lens, flat batteries).
* :func:`write_registry_csv` writes that network in irbis's own registry layout.
* :func:`make_card` fills a fake memory card, ``OUT/STATION/IMG_0001.JPG ...``,
  with bursts of small JPEGs that look like camera-trap frames (sky, rock, a dark
  animal, the burned-in black info bar) and carry EXIF and, optionally, XMP
  species tags.
* :func:`make_large_jpegs` writes many 3-6 MB, 12-megapixel JPEGs quickly, for the
  ingest benchmark.

Everything is deterministic for a given seed (same seed, same bytes, on the same
Pillow/libjpeg build). Only the standard library, numpy and Pillow are used.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "CAMERA_MAKE",
    "CAMERA_MODEL",
    "CLOCK_RESET_TO",
    "CRS",
    "DEFAULT_SPECIES_WEIGHTS",
    "REGISTRY_HEADER",
    "SLOW_CLOCK_S",
    "SPECIES",
    "TIMEZONE",
    "CardSummary",
    "SyntheticEvent",
    "camera_clock",
    "make_card",
    "make_large_jpegs",
    "make_network",
    "write_registry_csv",
]

CRS = "EPSG:32646"
"""Projected CRS of the station coordinates (WGS 84 / UTM zone 46N)."""

TIMEZONE = "Asia/Barnaul"
"""Local time zone of the Altai Republic (UTC+7, no daylight saving)."""

CAMERA_MAKE = "RECONYX"
CAMERA_MODEL = "HYPERFIRE 2"

CLOCK_RESET_TO = datetime(2000, 1, 1, 0, 0, 0)
"""What a camera's clock shows right after a reset (battery swap without a clock set)."""

SLOW_CLOCK_S = 420.0
"""The slow camera's drift: its clock shows 7 minutes less than the true local time."""

REGISTRY_HEADER: tuple[str, ...] = (
    "station",
    "deployment",
    "start",
    "end",
    "timezone",
    "x",
    "y",
    "crs",
    "elevation",
    "camera_make",
    "camera_model",
    "camera_serial",
    "clock_offset_s",
    "malfunction_start",
    "malfunction_end",
)
"""Columns of irbis's simple station/deployment registry CSV, in order."""

SPECIES: tuple[str, ...] = (
    "snow leopard",
    "Siberian ibex",
    "argali",
    "wolf",
    "livestock",
    "person",
    "blank",
)
"""Labels used on synthetic cards; ``blank`` is a wind or snow trigger."""

DEFAULT_SPECIES_WEIGHTS: dict[str, float] = {
    "blank": 0.55,
    "Siberian ibex": 0.13,
    "snow leopard": 0.09,
    "livestock": 0.09,
    "person": 0.06,
    "argali": 0.05,
    "wolf": 0.03,
}
"""Relative event frequencies: most triggers of an alpine camera are wind and snow."""

# EXIF tag numbers (IFD0 and the Exif sub-IFD).
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_SOFTWARE = 0x0131
_TAG_DATETIME = 0x0132
_IFD_EXIF = 0x8769
_TAG_DATETIME_ORIGINAL = 0x9003  # 36867
_TAG_DATETIME_DIGITIZED = 0x9004
_TAG_BODY_SERIAL = 0xA431

_EXIF_DATE_FMT = "%Y:%m:%d %H:%M:%S"
_ISO_FMT = "%Y-%m-%dT%H:%M:%S"

# Pillow writes an XMP APP1 segment itself from version 11 on.
_PIL_WRITES_XMP = int(PIL.__version__.split(".")[0]) >= 11

# Ridge crest (UTM 46N metres) running WSW-ENE through the survey block.
_RIDGE_A = np.array([404_000.0, 5_548_500.0])
_RIDGE_B = np.array([426_000.0, 5_561_500.0])
_BLOCK_X = (400_500.0, 429_500.0)
_BLOCK_Y = (5_540_500.0, 5_569_500.0)

# Rough monthly mean air temperature at 2500 m in the south-eastern Altai (deg C).
_MONTHLY_MEAN_2500M = (-22, -20, -14, -6, 1, 6, 9, 8, 2, -6, -15, -20)

_MIN_EVENT_GAP_S = 90 * 60  # events further apart than irbis's default 60 min independence


# ---------------------------------------------------------------------------
# Records returned to callers
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyntheticEvent:
    """One trigger of a camera: a burst of frames showing one species (or nothing).

    Attributes
    ----------
    station:
        Station name, e.g. ``SLG-03``.
    species:
        True label, one of :data:`SPECIES`.
    true_start:
        True local (station wall clock) time of the first frame, naive.
    camera_start:
        What the camera's clock said for the first frame (the EXIF date), naive.
    files:
        Card-relative POSIX paths of the frames, e.g. ``SLG-03/IMG_0004.JPG``.
    individual:
        Which snow leopard of the simulated population it was, if any.
    """

    station: str
    species: str
    true_start: datetime
    camera_start: datetime
    files: tuple[str, ...]
    individual: str | None = None


@dataclass(slots=True)
class CardSummary:
    """What :func:`make_card` wrote, for checking ingest results against the truth.

    Attributes
    ----------
    root:
        The card folder.
    files:
        Absolute paths of every file written, in writing order.
    total_bytes:
        Sum of the file sizes.
    per_station:
        Number of files per station folder.
    n_events:
        Number of triggers (bursts) written.
    species:
        True species per card-relative POSIX path (``SLG-03/IMG_0004.JPG``).
    true_times:
        True local time per card-relative path.
    camera_times:
        Camera clock reading (EXIF DateTimeOriginal) per card-relative path.
    events:
        The triggers, in station order and then in time order.
    """

    root: Path
    files: list[Path]
    total_bytes: int
    per_station: dict[str, int]
    n_events: int
    species: dict[str, str]
    true_times: dict[str, datetime]
    camera_times: dict[str, datetime]
    events: list[SyntheticEvent]

    @property
    def n_files(self) -> int:
        """Number of files written."""
        return len(self.files)

    def event_counts(self, *, include_blank: bool = True) -> dict[str, int]:
        """Number of events per species.

        Parameters
        ----------
        include_blank:
            Whether to count the wind/snow triggers too.

        Returns
        -------
        dict[str, int]
            Species label to number of events.
        """
        counts = Counter(e.species for e in self.events)
        if not include_blank:
            counts.pop("blank", None)
        return dict(counts)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and string keys (stable across processes)."""
    entropy = [int(seed) % (1 << 63)] + [zlib.crc32(k.encode("utf-8")) for k in keys]
    return np.random.default_rng(entropy)


def _at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second)


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.strftime(_ISO_FMT)


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def camera_clock(station: Mapping[str, Any], true_local: datetime) -> datetime:
    """What a station's camera clock shows at a true local time.

    Parameters
    ----------
    station:
        A station dict from :func:`make_network`.
    true_local:
        True wall-clock time at the station, naive.

    Returns
    -------
    datetime
        The camera's reading, as written to EXIF ``DateTimeOriginal``. Follows the
        registry convention: true time = camera time + ``clock_offset_s``. After a
        clock reset the camera counts from :data:`CLOCK_RESET_TO`.
    """
    reset = station.get("clock_reset")
    if reset is not None and true_local >= reset:
        return CLOCK_RESET_TO + (true_local - reset)
    offset = station.get("clock_offset_s") or 0.0
    return true_local - timedelta(seconds=offset)


# ---------------------------------------------------------------------------
# Network and registry
# ---------------------------------------------------------------------------


def _ridge_positions(rng: np.random.Generator, n: int) -> list[tuple[float, float, float, float]]:
    """Station sites along the ridge: ``(t, x, y, elevation)`` sorted west to east."""
    axis = _RIDGE_B - _RIDGE_A
    normal = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
    phase = rng.uniform(0, 2 * math.pi)
    min_dist = 900.0
    sites: list[tuple[float, float, float, float]] = []
    while len(sites) < n:
        for _ in range(300):
            t = rng.uniform(0.02, 0.98)
            spur = rng.uniform(-1.0, 1.0)
            bend = 2500.0 * math.sin(2 * math.pi * 1.3 * t + phase)
            x, y = _RIDGE_A + t * axis + normal * (bend + spur * 4200.0)
            x = float(np.clip(x, *_BLOCK_X))
            y = float(np.clip(y, *_BLOCK_Y))
            if all(math.hypot(x - sx, y - sy) >= min_dist for _, sx, sy, _ in sites):
                crest = 3250.0 + 220.0 * math.sin(math.pi * t) + 60.0 * math.sin(9.0 * t + phase)
                elev = crest - 1150.0 * abs(spur) ** 1.3 + rng.normal(0.0, 60.0)
                sites.append((t, x, y, float(np.clip(elev, 2000.0, 3500.0))))
                break
        else:
            min_dist *= 0.8  # crowded block: accept closer stations
    sites.sort()
    return sites


def make_network(n_stations: int, *, seed: int, start: date, days: int) -> list[dict[str, Any]]:
    """Lay out a camera-trap station network on a Sailyugem-like ridge system.

    Parameters
    ----------
    n_stations:
        Number of stations (one deployment each).
    seed:
        Seed; the same seed gives the same network.
    start:
        First day of the field season (cameras are set up within a few days of it).
    days:
        Length of the season in days (at least 2).

    Returns
    -------
    list[dict]
        One dict per station, west to east, with keys ``station`` (``SLG-07``),
        ``deployment`` (``SLG-07-2026A``), ``start`` and ``end`` (naive local
        setup/retrieval datetimes), ``timezone``, ``x``, ``y``, ``crs``,
        ``elevation``, ``camera_make``, ``camera_model``, ``camera_serial``,
        ``clock_offset_s`` (seconds to add to the camera clock to get true local
        time, or None), ``clock_reset`` (true local time at which the clock was
        reset to :data:`CLOCK_RESET_TO`, or None), ``malfunction_start``,
        ``malfunction_end`` and ``malfunction_reason`` (or None) and ``notes``.

        The first station of a random permutation has a clock running 7 minutes
        slow (``clock_offset_s`` = 420); with two or more stations another one has
        its clock reset midway (its offset is left unknown, as in the field); one
        station (two from six stations on) has a malfunction period.
    """
    if n_stations < 1:
        raise ValueError(f"n_stations must be at least 1, not {n_stations}")
    if days < 2:
        raise ValueError(f"days must be at least 2, not {days}")
    rng = _rng(seed, "network")
    sites = _ridge_positions(rng, n_stations)
    width = max(2, len(str(n_stations)))
    serials = rng.choice(9_000_000, size=n_stations, replace=False) + 1_000_000
    margin = min(3, days // 4)

    network: list[dict[str, Any]] = []
    for i, (_, x, y, elev) in enumerate(sites):
        name = f"SLG-{i + 1:0{width}d}"
        setup_day = start + timedelta(days=int(rng.integers(0, margin + 1)))
        end_day = start + timedelta(days=days - 1 - int(rng.integers(0, margin + 1)))
        setup = _at(setup_day, int(rng.integers(9, 14)), int(rng.integers(0, 60)))
        retrieval = _at(end_day, int(rng.integers(14, 18)), int(rng.integers(0, 60)))
        network.append(
            {
                "station": name,
                "deployment": f"{name}-{start.year}A",
                "start": setup,
                "end": retrieval,
                "timezone": TIMEZONE,
                "x": round(x, 1),
                "y": round(y, 1),
                "crs": CRS,
                "elevation": round(elev),
                "camera_make": CAMERA_MAKE,
                "camera_model": CAMERA_MODEL,
                "camera_serial": f"H2{int(serials[i]):07d}",
                "clock_offset_s": None,
                "clock_reset": None,
                "malfunction_start": None,
                "malfunction_end": None,
                "malfunction_reason": None,
                "notes": "",
            }
        )

    order = [int(k) for k in rng.permutation(n_stations)]
    slow = network[order[0]]
    slow["clock_offset_s"] = SLOW_CLOCK_S
    slow["notes"] = "camera clock found 7 min slow at retrieval"
    if n_stations >= 2:
        st = network[order[1]]
        span = st["end"] - st["start"]
        reset = st["start"] + span * float(rng.uniform(0.4, 0.6))
        st["clock_reset"] = reset.replace(microsecond=0)
        st["notes"] = f"clock reset to {CLOCK_RESET_TO:%Y-%m-%d} after battery change"
    broken = [order[2] if n_stations >= 3 else order[0]]
    if n_stations >= 6:
        broken.append(order[3])
    for k in broken:
        st = network[k]
        span = st["end"] - st["start"]
        m_start = st["start"] + span * float(rng.uniform(0.2, 0.5))
        m_end = m_start + span * float(rng.uniform(0.1, 0.25))
        st["malfunction_start"] = m_start.replace(second=0, microsecond=0)
        st["malfunction_end"] = m_end.replace(second=0, microsecond=0)
        st["malfunction_reason"] = str(rng.choice(["snow on lens", "batteries depleted"]))
    return network


def write_registry_csv(network: Sequence[Mapping[str, Any]], path: Path | str) -> Path:
    """Write a network as irbis's simple station/deployment registry CSV.

    Parameters
    ----------
    network:
        Station dicts from :func:`make_network`.
    path:
        CSV file to write (UTF-8, ``\\n`` line ends, header :data:`REGISTRY_HEADER`).

    Returns
    -------
    Path
        The path written.

    Notes
    -----
    Datetimes are naive local ISO 8601 (``YYYY-MM-DDTHH:MM:SS``); optional
    fields (clock offset, malfunction period) are left empty when absent.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(REGISTRY_HEADER)
        for st in network:
            writer.writerow(
                [
                    st["station"],
                    st["deployment"],
                    _iso(st["start"]),
                    _iso(st["end"]),
                    st["timezone"],
                    _number(st["x"], 1),
                    _number(st["y"], 1),
                    st["crs"],
                    _number(st["elevation"], 0),
                    st["camera_make"],
                    st["camera_model"],
                    st["camera_serial"],
                    _number(st.get("clock_offset_s"), 1),
                    _iso(st.get("malfunction_start")),
                    _iso(st.get("malfunction_end")),
                ]
            )
    return path


# ---------------------------------------------------------------------------
# Metadata writing
# ---------------------------------------------------------------------------


def _exif_bytes(make: str, model: str, serial: str, taken: datetime) -> bytes:
    """EXIF block with Make, Model, DateTime(Original/Digitized) and BodySerialNumber."""
    exif = Image.Exif()
    stamp = taken.strftime(_EXIF_DATE_FMT)
    exif[_TAG_MAKE] = make
    exif[_TAG_MODEL] = model
    exif[_TAG_SOFTWARE] = "irbis synthetic 1.0"
    exif[_TAG_DATETIME] = stamp
    sub = exif.get_ifd(_IFD_EXIF)
    sub[_TAG_DATETIME_ORIGINAL] = stamp
    sub[_TAG_DATETIME_DIGITIZED] = stamp
    sub[_TAG_BODY_SERIAL] = serial
    return exif.tobytes()


def _xmp_packet(tags: Sequence[str]) -> bytes:
    """An XMP packet carrying ``lr:hierarchicalSubject`` keywords."""
    items = "".join(f"<rdf:li>{_xml_escape(t)}</rdf:li>" for t in tags)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:lr="http://ns.adobe.com/lightroom/1.0/">\n'
        f"   <lr:hierarchicalSubject><rdf:Bag>{items}</rdf:Bag></lr:hierarchicalSubject>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _insert_xmp_segment(jpeg: bytes, xmp: bytes) -> bytes:
    """Insert an XMP APP1 segment after the leading APPn segments (old Pillow)."""
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    pos = 2
    while jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    return jpeg[:pos] + segment + jpeg[pos:]


def _encode_jpeg(im: Image.Image, *, quality: int, exif: bytes, xmp: bytes | None) -> bytes:
    buf = io.BytesIO()
    extra: dict[str, Any] = {}
    if xmp is not None and _PIL_WRITES_XMP:
        extra["xmp"] = xmp
    im.save(buf, "JPEG", quality=quality, exif=exif, **extra)
    data = buf.getvalue()
    if xmp is not None and not _PIL_WRITES_XMP:
        data = _insert_xmp_segment(data, xmp)
    return data


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` pixels (bitmap font on old Pillow)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def _upsampled_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid upsampled bicubically."""
    h, w = shape
    coarse = rng.integers(0, 256, (h // cell + 2, w // cell + 2), dtype=np.uint8)
    big = Image.fromarray(coarse, "L").resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255.0


def _horizon(rng: np.random.Generator, w: int, h: int, lo: float, hi: float) -> np.ndarray:
    """A ridge line: for every column the first row of ground."""
    steps = rng.normal(0.0, h * 0.006, w + 40).cumsum()
    steps = np.convolve(steps, np.ones(41) / 41.0, mode="valid")[:w]
    steps -= steps.mean()
    line = h * rng.uniform(lo, hi) + steps + h * 0.05 * np.sin(np.linspace(0, rng.uniform(2, 5), w))
    return np.clip(line, h * 0.1, h * 0.7).astype(np.float32)


def _scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A station's daylight view: sky gradient over snowy rock. Returns (rgb, horizon)."""
    w, h = size
    rows = np.arange(h, dtype=np.float32)[:, None]
    horizon = _horizon(rng, w, h, 0.28, 0.42)
    # Sky: deep blue at the top to pale at the horizon.
    frac = np.clip(rows / np.maximum(horizon[None, :], 1.0), 0.0, 1.0)[..., None]
    top = np.array([62, 108, 178], dtype=np.float32)
    low = np.array([188, 206, 226], dtype=np.float32)
    sky = top + (low - top) * frac
    # Rock: coarse and medium relief, fine grain, snow in the hollows.
    coarse = _upsampled_noise(rng, (h, w), max(8, w // 16))
    medium = _upsampled_noise(rng, (h, w), max(3, w // 80))
    grain = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    shade = 0.45 + 0.55 * coarse + 0.35 * (medium - 0.5) + 0.06 * grain
    tint = np.array([118, 110, 98], dtype=np.float32) * rng.uniform(0.85, 1.15, 3).astype(
        np.float32
    )
    rock = tint * shade[..., None]
    snow = np.clip((0.55 * coarse + 0.45 * medium - 0.64) * 7.0, 0.0, 1.0)[..., None] * 0.9
    snow_rgb = np.array([228, 232, 238], dtype=np.float32) * (0.92 + 0.08 * medium[..., None])
    ground = rock * (1.0 - snow) + snow_rgb * snow
    # Foreground is closer and darker.
    depth = np.clip((rows - horizon[None, :]) / h, 0.0, 1.0)[..., None]
    ground = ground * (1.0 - 0.35 * depth)
    is_ground = (rows >= horizon[None, :])[..., None]
    rgb = np.where(is_ground, ground, sky)
    return np.clip(rgb, 0, 255).astype(np.float32), horizon


def _temperature(st: Mapping[str, Any], when: datetime, rng: np.random.Generator) -> int:
    """Air temperature shown on the info bar (deg C)."""
    base = _MONTHLY_MEAN_2500M[when.month - 1] - 0.0065 * (float(st["elevation"]) - 2500.0)
    hour = when.hour + when.minute / 60.0
    diurnal = 5.0 * math.cos(2 * math.pi * (hour - 15.0) / 24.0)
    return round(base + diurnal + rng.normal(0.0, 1.5))


def _sun_hours(when: datetime) -> tuple[float, float]:
    """Local (UTC+7) sunrise and sunset hours at the survey block (~49.8 N, 88.5 E)."""
    doy = when.timetuple().tm_yday
    decl = math.radians(-23.44 * math.cos(2 * math.pi * (doy + 10) / 365.0))
    lat = math.radians(49.8)
    half_day = math.degrees(math.acos(-math.tan(lat) * math.tan(decl))) / 15.0
    solar_noon = 12.0 + (105.0 - 88.5) / 15.0  # UTC+7 runs ahead of the sun here
    return solar_noon - half_day, solar_noon + half_day


_PALETTE: dict[str, tuple[int, int, int]] = {
    "snow leopard": (156, 150, 140),
    "Siberian ibex": (112, 88, 60),
    "argali": (146, 116, 84),
    "wolf": (96, 90, 84),
    "person": (52, 60, 48),
}


def _quadruped(
    draw: ImageDraw.ImageDraw,
    x: float,
    y: float,
    s: float,
    facing: int,
    colour: tuple[int, int, int],
    species: str,
    night: bool,
    spots: list[tuple[float, float]],
) -> None:
    """Draw a four-legged animal standing with its feet at row ``y``, centred on ``x``."""
    leg = {"Siberian ibex": 0.42, "argali": 0.42, "wolf": 0.38, "livestock": 0.3}.get(species, 0.26)
    body_h = s * (0.36 if species == "snow leopard" else 0.42)
    top = y - s * leg - body_h
    dark = tuple(max(0, c - 45) for c in colour)
    lw = max(1, round(s * 0.06))
    for fx in (-0.36, -0.24, 0.26, 0.38):
        lx = x + fx * s
        draw.line([(lx, top + body_h * 0.7), (lx + facing * s * 0.02, y)], fill=dark, width=lw)
    draw.ellipse([x - s / 2, top, x + s / 2, top + body_h], fill=colour)
    head = s * (0.26 if species in ("snow leopard", "wolf") else 0.22)
    low_head = species in ("snow leopard", "wolf")
    hx = x + facing * s * 0.56
    hy = top + head * 0.15 if low_head else top - head * 0.55
    draw.line(
        [(x + facing * s * 0.3, top + body_h * 0.35), (hx, hy)],
        fill=colour,
        width=max(2, round(head * 0.7)),
    )
    draw.ellipse([hx - head / 2, hy - head / 2, hx + head / 2, hy + head / 2], fill=colour)
    if species == "wolf":
        draw.polygon(
            [
                (hx, hy - head * 0.2),
                (hx + facing * head * 0.9, hy + head * 0.1),
                (hx, hy + head * 0.3),
            ],
            fill=colour,
        )
    if species == "snow leopard":
        # The long, thick tail, curled up at the tip, and rosettes on the flank.
        tx = x - facing * s / 2
        pts = [
            (tx, top + body_h * 0.4),
            (tx - facing * s * 0.35, top + body_h * 0.9),
            (tx - facing * s * 0.75, top + body_h * 0.8),
            (tx - facing * s * 0.9, top + body_h * 0.3),
        ]
        draw.line(pts, fill=colour, width=max(2, round(s * 0.1)), joint="curve")
        r = max(1.0, s * 0.035)
        for sx, sy in spots:
            cx, cy = x + sx * s * 0.4, top + body_h * (0.5 + sy * 0.35)
            draw.ellipse(
                [cx - r, cy - r, cx + r, cy + r], fill=(60, 58, 55) if not night else (70, 70, 70)
            )
    elif species == "wolf":
        tx = x - facing * s / 2
        draw.line(
            [(tx, top + body_h * 0.3), (tx - facing * s * 0.3, top + body_h * 1.1)],
            fill=colour,
            width=max(2, round(s * 0.07)),
        )
    elif species in ("Siberian ibex", "argali"):
        if night:
            horn: tuple[int, ...] = (110, 110, 110)
        else:
            horn = (70, 60, 45) if species == "Siberian ibex" else (170, 150, 120)
        if species == "Siberian ibex":
            # Long scimitar horns sweeping back over the body.
            pts = [
                (hx, hy - head * 0.35),
                (hx - facing * head * 0.3, hy - head * 1.3),
                (hx - facing * head * 0.9, hy - head * 1.8),
                (hx - facing * head * 1.7, hy - head * 1.6),
            ]
            hw = max(2, round(s * 0.045))
        else:
            # Heavy curled horns around the side of the head.
            cx, cy, r = hx - facing * head * 0.2, hy - head * 0.05, head * 0.62
            pts = [
                (cx + facing * r * math.sin(a), cy - r * math.cos(a))
                for a in np.linspace(-0.3, -0.3 - 1.7 * math.pi, 12)
            ]
            hw = max(2, round(s * 0.08))
        draw.line(pts, fill=horn, width=hw, joint="curve")
    if night:
        # Eyeshine in the infrared flash.
        er = max(1.0, s * 0.025)
        ex = hx + facing * head * 0.25
        draw.ellipse([ex - er, hy - er, ex + er, hy + er], fill=(250, 250, 250))


def _person(
    draw: ImageDraw.ImageDraw, x: float, y: float, s: float, colour: tuple[int, int, int]
) -> None:
    """Draw a person (ranger, herder) standing at ``x`` with the feet at ``y``."""
    height = s * 1.5
    w = s * 0.32
    lw = max(2, round(s * 0.1))
    draw.line([(x - w * 0.25, y - height * 0.45), (x - w * 0.3, y)], fill=(30, 30, 35), width=lw)
    draw.line([(x + w * 0.25, y - height * 0.45), (x + w * 0.3, y)], fill=(30, 30, 35), width=lw)
    draw.rounded_rectangle(
        [x - w / 2, y - height * 0.85, x + w / 2, y - height * 0.4], radius=w * 0.25, fill=colour
    )
    head = s * 0.2
    draw.ellipse(
        [x - head / 2, y - height - head * 0.1, x + head / 2, y - height * 0.85],
        fill=(170, 130, 105),
    )


def _render_frame(
    scene: np.ndarray,
    horizon: np.ndarray,
    rng: np.random.Generator,
    *,
    true_dt: datetime,
    species: str,
    actor: Mapping[str, Any],
    frame: int,
    burst: int,
    bar_text: str,
) -> Image.Image:
    """Compose one frame: lighting, sensor noise, the animal and the info bar."""
    h, w = scene.shape[:2]
    hour = true_dt.hour + true_dt.minute / 60.0
    sunrise, sunset = _sun_hours(true_dt)
    night = not sunrise <= hour < sunset
    if night:
        # Infrared flash: monochrome, bright centre, dark sky.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (0.7 * w)) ** 2 + ((yy - h * 0.62) / (0.8 * h)) ** 2
        falloff = np.exp(-2.2 * r2)
        gray = scene.mean(axis=2) * falloff * 0.85
        gray += rng.normal(0.0, 7.0, (h, w)).astype(np.float32)
        arr = np.repeat(gray[..., None], 3, axis=2)
    else:
        light = 0.5 + 0.55 * math.sin(math.pi * (hour - sunrise) / (sunset - sunrise))
        arr = scene * light + rng.normal(0.0, 3.0, (h, w, 1)).astype(np.float32)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)

    if species == "blank":
        if actor["snow"]:
            n = int(actor["flakes"])
            xs = rng.uniform(0, w, n)
            ys = rng.uniform(0, h, n)
            rs = rng.uniform(0.6, 2.6, n) * (w / 640.0)
            for fx, fy, fr in zip(xs, ys, rs, strict=True):
                draw.ellipse([fx - fr, fy - fr, fx + fr, fy + fr], fill=(236, 238, 242))
    else:
        x = float(actor["x"]) + actor["facing"] * actor["speed"] * frame
        y = float(actor["y"])
        s = float(actor["scale"])
        if night:
            c = int(sum(actor["colour"]) / 3 * 0.9 + 35)
            colour = (c, c, c)
        else:
            colour = tuple(actor["colour"])
        if species == "person":
            _person(draw, x, y, s, colour)
        else:
            _quadruped(draw, x, y, s, actor["facing"], colour, species, night, actor["spots"])

    bar = max(14, round(h * 0.045))
    draw.rectangle([0, h - bar, w, h], fill=(0, 0, 0))
    font = _font(max(8, round(bar * 0.72)))
    pad = max(3, bar // 4)
    draw.text((pad, h - bar / 2), bar_text, fill=(255, 255, 255), font=font, anchor="lm")
    draw.text(
        (w - pad, h - bar / 2), f"{frame + 1}/{burst}", fill=(255, 255, 255), font=font, anchor="rm"
    )
    return im


def _actor(
    rng: np.random.Generator, species: str, size: tuple[int, int], horizon: np.ndarray
) -> dict[str, Any]:
    """Random placement and look of what triggers the camera."""
    w, h = size
    x = float(rng.uniform(0.15 * w, 0.85 * w))
    ground = float(horizon[min(w - 1, max(0, int(x)))])
    y = float(rng.uniform(max(ground + 0.08 * h, 0.55 * h), 0.9 * h))
    nearness = (y - ground) / max(1.0, h - ground)
    colour = _PALETTE.get(species, (0, 0, 0))
    if species == "livestock":
        colour = (206, 200, 188) if rng.random() < 0.6 else (42, 36, 32)  # sheep or yak
    return {
        "x": x,
        "y": y,
        "scale": w * (0.12 + 0.22 * nearness) * float(rng.uniform(0.85, 1.15)),
        "facing": 1 if rng.random() < 0.5 else -1,
        "speed": w * float(rng.uniform(0.01, 0.04)),
        "colour": colour,
        "spots": [(float(a), float(b)) for a, b in rng.uniform(-1, 1, (9, 2))],
        "snow": bool(rng.random() < 0.5),
        "flakes": int(rng.integers(60, 400)),
    }


# ---------------------------------------------------------------------------
# Cards
# ---------------------------------------------------------------------------


def _event_times(
    rng: np.random.Generator, st: Mapping[str, Any], n: int, burst: int
) -> list[datetime]:
    """``n`` sorted true trigger times inside the working part of the deployment."""
    first = st["start"] + timedelta(minutes=15)
    last = st["end"] - timedelta(minutes=15, seconds=burst)
    windows: list[tuple[datetime, datetime]] = [(first, last)]
    m0, m1 = st.get("malfunction_start"), st.get("malfunction_end")
    if m0 is not None and m1 is not None:
        windows = [(first, min(last, m0 - timedelta(seconds=burst))), (max(first, m1), last)]
    windows = [(a, b) for a, b in windows if b > a]
    lengths = np.array([(b - a).total_seconds() for a, b in windows], dtype=float)
    total = float(lengths.sum())
    if n == 0 or total <= 0:
        return []

    def to_time(pos: float) -> datetime:
        for (a, _), length in zip(windows, lengths, strict=True):
            if pos <= length:
                return a + timedelta(seconds=int(pos))
            pos -= length
        return windows[-1][1]

    gap = min(_MIN_EVENT_GAP_S, total / (2 * n))
    for _ in range(200):
        pos = np.sort(rng.uniform(0.0, total, n))
        if n == 1 or np.diff(pos).min() >= gap:
            break
    else:  # crowded: spread the triggers evenly
        pos = (np.arange(n) + 0.5) * total / n
    return [to_time(float(p)) for p in pos]


CAT_NAMES = (
    "Khan",
    "Altai",
    "Bars",
    "Sailyu",
    "Chuya",
    "Argut",
    "Ulagan",
    "Tabyn",
    "Kosh",
    "Mongun",
    "Shapshal",
    "Tolbo",
    "Jazator",
    "Kurai",
    "Belukha",
    "Karakol",
    "Ak-Oyuk",
    "Tarkhata",
)
"""Names of the simulated snow leopards (Khan, the dominant male, first)."""


def _population(
    network: Sequence[Mapping[str, Any]], n: int, sigma_m: float, seed: int
) -> list[tuple[str, float, float]]:
    """``n`` cats with activity centres spread over the stations' extent plus 2 sigma."""
    if n <= 0:
        return []
    rng = _rng(seed, "population")
    xs = [float(st["x"]) for st in network]
    ys = [float(st["y"]) for st in network]
    pad = 2 * sigma_m
    names = [CAT_NAMES[i] if i < len(CAT_NAMES) else f"SL-{i + 1:02d}" for i in range(n)]
    return [
        (
            names[i],
            float(rng.uniform(min(xs) - pad, max(xs) + pad)),
            float(rng.uniform(min(ys) - pad, max(ys) + pad)),
        )
        for i in range(n)
    ]


def _who(
    cats: Sequence[tuple[str, float, float]],
    station: Mapping[str, Any],
    sigma_m: float,
    seed: int,
    when: datetime,
) -> str | None:
    """Which cat made a snow-leopard event at ``station`` (half-normal in distance)."""
    if not cats:
        return None
    d2 = np.array(
        [(x - float(station["x"])) ** 2 + (y - float(station["y"])) ** 2 for _, x, y in cats]
    )
    w = np.exp(-d2 / (2 * sigma_m**2)) + 1e-12
    rng = _rng(seed, "who", str(station["station"]), when.isoformat())
    return cats[int(rng.choice(len(cats), p=w / w.sum()))][0]


def _coat(seed: int, cat: str) -> list[tuple[float, float]]:
    """The rosette positions of one simulated cat (flank coordinates in [-1, 1])."""
    rng = _rng(seed, "coat", cat)
    return [(float(a), float(b)) for a, b in rng.uniform(-1, 1, (14, 2))]


def make_card(
    out_dir: Path | str,
    network: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    image_size: tuple[int, int] = (640, 480),
    quality: int = 85,
    species_weights: Mapping[str, float] | None = None,
    n_events_per_station: tuple[int, int] = (3, 12),
    burst: int = 3,
    tagged: bool = False,
    individuals: int = 0,
    sigma_m: float = 4000.0,
    untagged_share: float = 0.0,
) -> CardSummary:
    """Write a fake memory card with a folder of JPEGs per station.

    Parameters
    ----------
    out_dir:
        Card root; ``out_dir/STATION/IMG_0001.JPG`` ... are written.
    network:
        Station dicts from :func:`make_network`.
    seed:
        Seed; the same seed and network give the same bytes.
    image_size:
        Width and height of the frames in pixels.
    quality:
        JPEG quality.
    species_weights:
        Relative event frequency per species label (see :data:`SPECIES`);
        :data:`DEFAULT_SPECIES_WEIGHTS` by default. Missing labels get weight 0.
    n_events_per_station:
        Inclusive range of triggers per station.
    burst:
        Frames per trigger, one second apart.
    tagged:
        Write XMP ``lr:hierarchicalSubject`` tags ``Species|<label>`` on the
        frames that show something (never on blanks), as a tagging tool would.
    individuals:
        Size of a simulated snow-leopard population (0: none). Each cat has an
        activity centre near the ridge; a snow-leopard event at a station is
        made by cat *i* with probability proportional to a half-normal of the
        distance, as in SECR, and tagged ``Individual|<name>`` when ``tagged``.
    sigma_m:
        Scale of that half-normal, in metres.
    untagged_share:
        Share of snow-leopard events whose individual is left untagged (the
        species tag stays): photos a team has not yet identified, for
        ``irbis identify`` to propose. The truth stays in the summary's events.

    Returns
    -------
    CardSummary
        The files written and the truth behind them.

    Notes
    -----
    Frames carry the camera's clock reading (see :func:`camera_clock`) in EXIF
    and in the burned-in info bar; no frames fall in a malfunction period.
    """
    weights = dict(DEFAULT_SPECIES_WEIGHTS if species_weights is None else species_weights)
    unknown = set(weights) - set(SPECIES)
    if unknown:
        raise ValueError(f"unknown species in species_weights: {sorted(unknown)}")
    labels = [s for s in SPECIES if weights.get(s, 0.0) > 0]
    if not labels:
        raise ValueError("species_weights gives no species a positive weight")
    probs = np.array([weights[s] for s in labels], dtype=float)
    probs /= probs.sum()
    lo, hi = n_events_per_station
    if lo < 0 or hi < lo:
        raise ValueError(f"bad n_events_per_station: {n_events_per_station}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, not {burst}")

    cats = _population(network, individuals, sigma_m, seed)
    root = Path(out_dir)
    summary = CardSummary(
        root=root,
        files=[],
        total_bytes=0,
        per_station={},
        n_events=0,
        species={},
        true_times={},
        camera_times={},
        events=[],
    )
    for st in network:
        name = str(st["station"])
        rng = _rng(seed, "card", name)
        scene, horizon = _scene(rng, image_size)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        counter = 0
        n_events = int(rng.integers(lo, hi + 1))
        for t0 in _event_times(rng, st, n_events, burst):
            species = labels[int(rng.choice(len(labels), p=probs))]
            actor = _actor(rng, species, image_size, horizon)
            temp = _temperature(st, t0, rng)
            cat = _who(cats, st, sigma_m, seed, t0) if species == "snow leopard" else None
            if cat:
                # A cat's coat is its own: the same rosettes on every photo of it.
                actor["spots"] = _coat(seed, cat)
            untagged = bool(
                cat
                and untagged_share > 0
                and _rng(seed, "untagged", name, t0.isoformat()).random() < untagged_share
            )
            tags = [f"Species|{species}"] + ([f"Individual|{cat}"] if cat and not untagged else [])
            xmp = _xmp_packet(tags) if tagged and species != "blank" else None
            rel_files: list[str] = []
            for frame in range(burst):
                true_dt = t0 + timedelta(seconds=frame)
                cam_dt = camera_clock(st, true_dt)
                counter += 1
                fname = f"IMG_{counter:04d}.JPG"
                text = f"{name}   {temp:+d}\u00b0C   {cam_dt:%Y-%m-%d %H:%M:%S}"
                im = _render_frame(
                    scene,
                    horizon,
                    rng,
                    true_dt=true_dt,
                    species=species,
                    actor=actor,
                    frame=frame,
                    burst=burst,
                    bar_text=text,
                )
                exif = _exif_bytes(
                    str(st["camera_make"]),
                    str(st["camera_model"]),
                    str(st["camera_serial"]),
                    cam_dt,
                )
                data = _encode_jpeg(im, quality=quality, exif=exif, xmp=xmp)
                path = folder / fname
                path.write_bytes(data)
                rel = f"{name}/{fname}"
                rel_files.append(rel)
                summary.files.append(path)
                summary.total_bytes += len(data)
                summary.species[rel] = species
                summary.true_times[rel] = true_dt
                summary.camera_times[rel] = cam_dt
            summary.events.append(
                SyntheticEvent(name, species, t0, camera_clock(st, t0), tuple(rel_files), cat)
            )
        summary.per_station[name] = counter
    summary.n_events = len(summary.events)
    return summary


# ---------------------------------------------------------------------------
# Large JPEGs for the benchmark
# ---------------------------------------------------------------------------


def _large_texture(
    rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Base scene (float32 RGB) and a luminance noise field, both padded for crops.

    The scene is smooth, so it is drawn at a quarter of the size and upscaled; the
    noise field supplies the fine grain (and most of the JPEG size).
    """
    small, _ = _scene(rng, (max(16, width // 4), max(16, height // 4)))
    big = Image.fromarray(small.astype(np.uint8), "RGB").resize(
        (width, height), Image.Resampling.BICUBIC
    )
    rgb = np.asarray(big, dtype=np.float32)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    noise[: int(height * 0.3)] *= 0.35  # the sky is smoother than the rock
    return rgb, noise


def _textured(rgb: np.ndarray, noise: np.ndarray, amp: float) -> np.ndarray:
    out = rgb + noise[..., None] * np.float32(amp)
    return np.clip(out, 0, 255).astype(np.uint8)


def _jpeg_size(arr: np.ndarray, quality: int) -> int:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=quality)
    return buf.tell()


def make_large_jpegs(
    out_dir: Path | str,
    n: int,
    *,
    seed: int,
    megabytes: tuple[float, float] = (3.0, 6.0),
    image_size: tuple[int, int] = (4000, 3000),
    quality: int = 92,
    workers: int | None = None,
    station: str = "BENCH-01",
    start: datetime = datetime(2026, 2, 1, 5, 30),
) -> list[Path]:
    """Write ``n`` camera-trap-sized JPEGs (12 MP, 3-6 MB by default) quickly.

    A few textured variants of one scene are made once, their noise level
    calibrated so the encoded sizes spread over ``megabytes``; every image is a
    shifted, possibly mirrored crop of one of them with its own info bar and
    EXIF (Make, Model, BodySerialNumber, DateTimeOriginal: bursts of three
    frames one second apart).

    Parameters
    ----------
    out_dir:
        Folder to write ``IMG_0001.JPG`` ... into (created if needed).
    n:
        Number of images.
    seed:
        Seed; the same arguments give the same bytes.
    megabytes:
        Inclusive range of file sizes in MB (10**6 bytes).
    image_size:
        Width and height in pixels.
    quality:
        Starting JPEG quality; nudged per image when a size falls outside the range.
    workers:
        Encoding threads (Pillow releases the GIL while encoding); by default
        ``min(8, os.cpu_count())``.
    station:
        Station name burned into the info bar.
    start:
        Camera time of the first frame.

    Returns
    -------
    list[Path]
        The files written, in order.

    Raises
    ------
    ValueError
        If the size range cannot be reached at this image size and quality.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, not {n}")
    lo_mb, hi_mb = float(megabytes[0]), float(megabytes[1])
    if not 0 < lo_mb < hi_mb:
        raise ValueError(f"bad megabytes range: {megabytes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if n == 0:
        return []
    width, height = image_size
    pad = 192
    rng = _rng(seed, "large")
    rgb, noise = _large_texture(rng, width + pad, height + pad)

    # Calibrate noise amplitude -> file size on four full-width strips (1/4 of the area).
    strip = height // 16
    rows = np.concatenate(
        [np.arange(k * (height // 4), k * (height // 4) + strip) for k in range(4)]
    )
    amps = np.array([0.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0])
    sizes = np.array(
        [_jpeg_size(_textured(rgb[rows, :width], noise[rows, :width], a), quality) for a in amps],
        dtype=float,
    )
    sizes = np.maximum.accumulate(sizes * height / (4 * strip))
    lo_b, hi_b = lo_mb * 1e6, hi_mb * 1e6
    span = hi_b - lo_b
    n_variants = min(4, n)
    targets = (
        np.linspace(lo_b + 0.2 * span, hi_b - 0.2 * span, n_variants)
        if n_variants > 1
        else np.array([(lo_b + hi_b) / 2])
    )
    if targets[-1] > sizes[-1] or targets[0] < sizes[0]:
        raise ValueError(
            f"cannot make {lo_mb}-{hi_mb} MB JPEGs at {width}x{height}, quality {quality} "
            f"(reachable: {sizes[0] / 1e6:.1f}-{sizes[-1] / 1e6:.1f} MB)"
        )
    variants: list[tuple[Image.Image, Image.Image]] = []
    for amp in np.interp(targets, sizes, amps):
        tile = Image.fromarray(_textured(rgb, noise, float(amp)), "RGB")
        variants.append((tile, tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    del rgb, noise

    make, model = CAMERA_MAKE, CAMERA_MODEL
    serial = f"H2{int(rng.integers(1_000_000, 9_999_999)):07d}"
    digits = max(4, len(str(n)))
    jobs: list[dict[str, Any]] = []
    when = start
    for i in range(n):
        if i and i % 3 == 0:
            when += timedelta(seconds=int(rng.integers(600, 6 * 3600)))
        elif i:
            when += timedelta(seconds=1)
        jobs.append(
            {
                "path": out / f"IMG_{i + 1:0{digits}d}.JPG",
                "variant": int(rng.integers(n_variants)),
                "dy": int(rng.integers(0, pad + 1)),
                "dx": int(rng.integers(0, pad + 1)),
                "flip": int(rng.random() < 0.5),
                "when": when,
                "temp": int(rng.integers(-28, -5)),
                "frame": i % 3,
            }
        )

    bar = max(14, round(height * 0.045))
    font = _font(max(8, round(bar * 0.72)))
    pad_txt = max(3, bar // 4)

    def write(job: dict[str, Any]) -> Path:
        tile = variants[job["variant"]][job["flip"]]
        im = tile.crop((job["dx"], job["dy"], job["dx"] + width, job["dy"] + height))
        draw = ImageDraw.Draw(im)
        draw.rectangle([0, height - bar, width, height], fill=(0, 0, 0))
        text = f"{station}   {job['temp']:+d}\u00b0C   {job['when']:%Y-%m-%d %H:%M:%S}"
        draw.text((pad_txt, height - bar / 2), text, fill=(255, 255, 255), font=font, anchor="lm")
        draw.text(
            (width - pad_txt, height - bar / 2),
            f"{job['frame'] + 1}/3",
            fill=(255, 255, 255),
            font=font,
            anchor="rm",
        )
        exif = _exif_bytes(make, model, serial, job["when"])
        q = quality
        data = _encode_jpeg(im, quality=q, exif=exif, xmp=None)
        for _ in range(6):
            if len(data) < lo_b and q < 100:
                q = min(100, q + 2)
            elif len(data) > hi_b and q > 50:
                q = max(50, q - 3)
            else:
                break
            data = _encode_jpeg(im, quality=q, exif=exif, xmp=None)
        job["path"].write_bytes(data)
        return job["path"]

    n_workers = workers or min(8, os.cpu_count() or 1)
    if n_workers <= 1:
        return [write(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(write, jobs))
