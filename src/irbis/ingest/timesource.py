"""Where a capture time comes from when the file has no EXIF time.

Order of trust, and why:

1. **EXIF** (or a video's creation time): the camera's clock, written by the
   camera. Always first.
2. **Info bar** (``stamp``): the same camera clock, burned into the pixels by
   the camera's firmware; it survives any copying or EXIF-stripping tool.
3. **File name** (``filename``): written by whoever renamed the files, often
   after a time-zone or daylight-saving "correction" of their own. On the real
   cards irbis is tested on, file-name times disagree with the camera: the
   Tajik survey's names are 13 hours off the info bar (AM/PM lost and one
   hour shifted: ``2012-7-18__6-46-58`` for a bar reading 7:46:58 PM) and
   1 hour off EXIF where EXIF survived; the Camtrap DP example's names
   (``20210531082538-RCNX0031``) are seven weeks off its EXIF and bar.

So the stamp wins over the file name by default. Both readings are kept on the
media row (``Media.extra["time_read"]``) so a disagreement stays visible, and
the chosen source is ``Media.taken_source``. A project can change the order or
drop a source (``Settings.extra["time_from"]``, ``irbis ingest --time-from``)
and add file-name or stamp patterns (``filename_time_patterns``,
``stamp_time_patterns``; ``--time-pattern``), tried before the built-in ones.
A frame with none of these is left without a time and flagged, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

from irbis.core.errors import BadInputError
from irbis.ingest.stamp import read_stamp, tesseract_path
from irbis.ingest.timepatterns import (
    DEFAULT_FILENAME_PATTERNS,
    DEFAULT_STAMP_PATTERNS,
    TimePattern,
    compile_patterns,
    first_time,
)

__all__ = ["SOURCES", "TimeFallback", "TimeReading"]

SOURCES = ("stamp", "filename")
DEFAULT_ORDER = ("stamp", "filename")


@dataclass(slots=True)
class TimeReading:
    """The time found for a file without EXIF time, and what was read.

    Attributes
    ----------
    taken:
        The time chosen (naive, the camera's or the name's clock), or ``None``.
    source:
        ``"stamp"`` or ``"filename"`` (``None`` when nothing was read).
    record:
        Every reading tried, for ``Media.extra["time_read"]``: per source the
        time read (ISO), the pattern that read it, and for the stamp the OCR
        text and the bar; empty when nothing was tried.
    tesseract_missing:
        The stamp was wanted but Tesseract is not installed.
    """

    taken: datetime | None = None
    source: str | None = None
    record: dict = field(default_factory=dict)
    tesseract_missing: bool = False


@dataclass(frozen=True, slots=True)
class TimeFallback:
    """The project's rules for times without EXIF.

    Build it with :meth:`from_settings`; :meth:`read` applies it to one file.
    """

    order: tuple[str, ...] = DEFAULT_ORDER
    filename_patterns: tuple[TimePattern, ...] = ()
    stamp_patterns: tuple[TimePattern, ...] = ()
    tesseract: str | None = None

    @classmethod
    def from_settings(
        cls,
        extra: dict | None,
        *,
        order: str | list[str] | None = None,
        filename_patterns: list[str] | None = None,
    ) -> TimeFallback:
        """Read and check the project's settings and the ingest options.

        Parameters
        ----------
        extra:
            ``Settings.extra`` of the project: ``time_from`` (list or
            comma-separated order of ``stamp``/``filename``; ``[]`` or
            ``"none"`` for neither), ``filename_time_patterns`` and
            ``stamp_time_patterns`` (lists of patterns, see
            :mod:`irbis.ingest.timepatterns`).
        order:
            ``--time-from``: overrides ``time_from`` for this ingest.
        filename_patterns:
            ``--time-pattern``: tried before the project's and the built-in
            file-name patterns.

        Returns
        -------
        The checked rules.

        Raises
        ------
        BadInputError
            One line naming the bad setting or pattern and what to write.
        """
        extra = extra or {}
        raw_order = order if order is not None else extra.get("time_from", DEFAULT_ORDER)
        parsed_order = _parse_order(raw_order)
        names = list(filename_patterns or []) + _pattern_list(extra, "filename_time_patterns")
        stamps = _pattern_list(extra, "stamp_time_patterns")
        return cls(
            order=parsed_order,
            filename_patterns=tuple(compile_patterns(names + list(DEFAULT_FILENAME_PATTERNS))),
            stamp_patterns=tuple(
                compile_patterns(stamps + list(DEFAULT_STAMP_PATTERNS), stamp=True)
            ),
            tesseract=tesseract_path() if "stamp" in parsed_order else None,
        )

    @property
    def tesseract_missing(self) -> bool:
        """Whether the stamp is wanted but cannot be read on this machine."""
        return "stamp" in self.order and self.tesseract is None

    def read(self, relpath: str, data: bytes | None) -> TimeReading:
        """Find a time for one file that has none in its metadata.

        Parameters
        ----------
        relpath:
            The file's path on the card; only its name (without extension)
            is searched for a time.
        data:
            The image's bytes for the stamp; ``None`` for a video (its bar is
            in the frames, not read here).

        Returns
        -------
        A :class:`TimeReading`: the first source in ``order`` that gave a
        time, with every source's reading recorded.
        """
        out = TimeReading()
        stem = PurePosixPath(relpath.replace("\\", "/")).stem
        for source in self.order:
            if source == "filename":
                found = first_time(stem, list(self.filename_patterns))
                if found is not None:
                    out.record["filename"] = {"time": found[0].isoformat(), "pattern": found[1]}
                    if out.taken is None:
                        out.taken, out.source = found[0], "filename"
            elif source == "stamp" and data is not None:
                if self.tesseract is None:
                    out.tesseract_missing = True
                    continue
                reading = read_stamp(data, list(self.stamp_patterns), exe=self.tesseract)
                if reading is None:
                    continue
                out.record["stamp"] = {
                    "time": reading.taken.isoformat() if reading.taken else None,
                    "text": reading.text[:300],
                    "bar": reading.bar,
                    "pattern": reading.pattern,
                }
                if reading.taken is not None and out.taken is None:
                    out.taken, out.source = reading.taken, "stamp"
        if out.record:
            out.record["source"] = out.source
        return out


def _parse_order(raw: object) -> tuple[str, ...]:
    """``"stamp,filename"`` / ``["filename"]`` / ``"none"`` -> a checked tuple."""
    if isinstance(raw, str):
        items = [p.strip().lower() for p in raw.split(",") if p.strip()]
    elif isinstance(raw, list | tuple):
        items = [str(p).strip().lower() for p in raw]
    else:
        raise BadInputError(
            "time_from setting", f"not a list ({raw!r})", 'write e.g. ["stamp", "filename"]'
        )
    if items in (["none"], []):
        return ()
    bad = [p for p in items if p not in SOURCES] or [
        p for i, p in enumerate(items) if p in items[:i]
    ]
    if bad:
        raise BadInputError(
            f"time source {','.join(items)!r}",
            f"unknown or repeated source {bad[0]!r}",
            "use stamp, filename, both in the order to try (stamp,filename), or none",
        )
    return tuple(items)


def _pattern_list(extra: dict, key: str) -> list[str]:
    """A list of patterns from the settings (one string allowed)."""
    value = extra.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInputError(
            f"{key} setting", "not a list of patterns", 'write e.g. ["%Y-%m-%d %H-%M-%S"]'
        )
    return value
