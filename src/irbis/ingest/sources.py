"""Enumerate a memory card given as a folder, a .zip file or a single file.

The card is treated as untrusted: zip entries that would escape the card
(``../``, absolute paths, drive letters), symlinks leading elsewhere,
encrypted entries and zip bombs are reported as :class:`Rejected`, and
reading a zip entry stops as soon as it produces more than it may. Nothing
here writes anywhere except temporary files, and the source is never changed.

Order is deterministic (sorted by relative path) so that two runs over the
same card see the files in the same order.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from irbis.core.errors import BadInputError
from irbis.ingest.metadata import media_kind

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_RATIO",
    "IGNORED_EXTENSIONS",
    "Rejected",
    "SourceFile",
    "iter_source",
]

DEFAULT_MAX_BYTES = 2 * 1024**3
"""Largest file a zip entry may inflate to (2 GiB)."""

DEFAULT_MAX_RATIO = 200.0
"""Largest believable compression ratio for a zip entry over :data:`_RATIO_FLOOR`.

JPEG and video hardly compress at all (ratios near 1:1); text sidecars reach
perhaps 10:1. 200:1 is only reached by runs of identical bytes: a zip bomb.
"""

_RATIO_FLOOR = 1024 * 1024  # small entries may compress as well as they like
_CHUNK = 1024 * 1024
_SPOOL_IN_MEMORY = 16 * 1024 * 1024

IGNORED_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".csv", ".xml", ".ini", ".db", ".thm", ".log"}
)
"""Sidecar files cameras and field laptops leave on cards; skipped silently."""

# Names operating systems scatter on removable media; never camera output.
_SYSTEM_NAMES = frozenset(
    {
        "thumbs.db",
        "desktop.ini",
        "__macosx",
        "system volume information",
        "$recycle.bin",
    }
)

_ZIP_EXTENSIONS = frozenset({".zip"})
_SUPPORTED_COMPRESSION = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_DRIVE_RE = re.compile(r"^[A-Za-z]:")

_HINT_ESCAPE = "the zip was not made from a card folder; unpack it by hand and check its contents"
_HINT_RECOPY = "copy the file off the card again; the card may be damaged"
_HINT_BOMB = "this is not camera output; unpack the zip by hand if you trust it"
_HINT_NOT_MEDIA = "irbis reads .jpg, .jpeg, .png, .mp4, .avi, .mov and .m4v; the file was left out"


@dataclass(slots=True)
class Rejected:
    """A file on the card that will not be ingested, and why.

    Parameters
    ----------
    relpath:
        Path relative to the card root (posix), as found.
    reason:
        What is wrong, in a few words.
    hint:
        What the user can do about it.
    """

    relpath: str
    reason: str
    hint: str


class _ZipArchive:
    """A zip file shared by all its entries, opened once on first use.

    Reopening the archive per entry would re-read the central directory each
    time (quadratic on cards with thousands of photos). ``zipfile`` reads of
    different members through one handle are serialised by its own lock, but
    opening and closing a member update a reference count without it, so
    those two steps are serialised here to share the handle between threads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zf: zipfile.ZipFile | None = None
        self._lock = threading.Lock()

    def handle(self) -> zipfile.ZipFile:
        """Return the open :class:`zipfile.ZipFile`, opening it if needed."""
        with self._lock:
            if self._zf is None:
                self._zf = _open_zip(self.path)
            return self._zf

    @contextmanager
    def member(self, info: zipfile.ZipInfo) -> Iterator[IO[bytes]]:
        """Open one member for reading, closing it (under the lock) afterwards."""
        zf = self.handle()
        with self._lock:
            stream = zf.open(info, "r")
        try:
            yield stream
        finally:
            with self._lock:
                stream.close()


@dataclass(slots=True)
class SourceFile:
    """A file found on the card.

    Parameters
    ----------
    relpath:
        Path relative to the card root, posix separators.
    size:
        Size in bytes (for zip entries: the size the zip declares).
    local_path:
        The file on disk for folder or single-file sources; ``None`` for zip
        entries.
    """

    relpath: str
    size: int
    local_path: Path | None = None
    max_bytes: int = field(default=DEFAULT_MAX_BYTES, repr=False)
    max_ratio: float = field(default=DEFAULT_MAX_RATIO, repr=False)
    _archive: _ZipArchive | None = field(default=None, repr=False, compare=False)
    _info: zipfile.ZipInfo | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        """A readable location for messages: the disk path, or ``card.zip/relpath``."""
        if self.local_path is not None:
            return str(self.local_path)
        if self._archive is not None:
            return f"{self._archive.path}/{self.relpath}"
        return self.relpath

    def read(self) -> bytes:
        """Return the whole content.

        Returns
        -------
        The file's bytes. Zip entries are inflated in chunks and abandoned as
        soon as they exceed ``max_bytes`` or the believable compression ratio.

        Raises
        ------
        BadInputError
            For a zip entry that inflates too far, fails its CRC or is cut
            short, and for a file larger than ``max_bytes``.
        """
        if self.local_path is not None:
            if self.size > self.max_bytes:
                raise BadInputError(
                    self.where,
                    f"file too large to read into memory ({self.size} bytes)",
                    "open it as a stream instead (SourceFile.open)",
                )
            return self.local_path.read_bytes()
        parts: list[bytes] = []
        for chunk in self._inflate():
            parts.append(chunk)
        return b"".join(parts)

    def open(self, tmp_dir: Path | None = None) -> IO[bytes]:
        """Open the content as a seekable binary file (e.g. for PyAV).

        Parameters
        ----------
        tmp_dir:
            Where a zip entry is spooled once it outgrows memory (16 MiB);
            the system temp folder when ``None``. Folder files are opened in
            place, read-only.

        Returns
        -------
        A binary file object positioned at the start; the caller closes it
        (it works as a context manager). Spooled data disappears on close.
        """
        if self.local_path is not None:
            return open(self.local_path, "rb")  # noqa: SIM115 - the caller owns the handle
        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - returned to the caller
            max_size=_SPOOL_IN_MEMORY, mode="w+b", dir=tmp_dir
        )
        try:
            for chunk in self._inflate():
                spool.write(chunk)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool

    def _inflate(self) -> Iterator[bytes]:
        """Yield a zip entry's content in chunks, enforcing size and ratio bounds."""
        if self._archive is None or self._info is None:
            raise BadInputError(self.relpath, "source file has no location", "")
        info = self._info
        # The declared size cannot be trusted (it is what a bomb lies about),
        # so the bound is applied to what actually comes out.
        limit = self.max_bytes
        if info.compress_size > 0:
            limit = min(limit, max(_RATIO_FLOOR, int(info.compress_size * self.max_ratio)))
        produced = 0
        try:
            with self._archive.member(info) as stream:
                while chunk := stream.read(_CHUNK):
                    produced += len(chunk)
                    if produced > limit:
                        raise BadInputError(
                            self.where,
                            f"zip bomb suspected: entry inflates beyond {limit} bytes",
                            _HINT_BOMB,
                        )
                    yield chunk
        except BadInputError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise BadInputError(
                self.where, f"corrupt zip entry ({exc})", "make the zip again from the card"
            ) from exc
        except RuntimeError as exc:  # zipfile raises this for encrypted members
            raise BadInputError(self.where, f"unreadable zip entry ({exc})", _HINT_ESCAPE) from exc


# ---------------------------------------------------------------------------
# classification


def _is_hidden(parts: tuple[str, ...] | list[str]) -> bool:
    """Whether a path is OS clutter: dot-files, Thumbs.db, __MACOSX/, ..."""
    return any(p.startswith(".") or p.lower() in _SYSTEM_NAMES for p in parts)


def _classify(relpath: str, *, in_zip: bool = False) -> Rejected | None | bool:
    """Decide what to do with a regular file, by name alone.

    Returns
    -------
    ``True`` to yield it, ``None`` to skip it silently, or a :class:`Rejected`.
    """
    ext = PurePosixPath(relpath).suffix.lower()
    if media_kind(relpath) is not None:
        return True
    if ext in IGNORED_EXTENSIONS:
        return None
    if ext in _ZIP_EXTENSIONS:
        where = "zip inside zip" if in_zip else "zip file on the card"
        return Rejected(relpath, f"{where}: unpack it first", "or give it as its own source")
    what = f"extension {ext}" if ext else "no extension"
    return Rejected(relpath, f"not a media file ({what})", _HINT_NOT_MEDIA)


# ---------------------------------------------------------------------------
# folders


def _list_folder(root: Path, max_bytes: int, max_ratio: float) -> list[SourceFile | Rejected]:
    """Walk a folder without following symlinks out of it."""
    real_root = root.resolve()
    found: list[SourceFile | Rejected] = []

    def walk_error(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "."
        found.append(Rejected(where, f"folder unreadable ({exc.strerror})", "check permissions"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error, followlinks=False):
        here = Path(dirpath)
        # Prune clutter and sort so the walk itself is deterministic.
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden([d]))
        for d in list(dirnames):
            full = here / d
            if full.is_symlink():
                dirnames.remove(d)  # never descend through links (loops, escapes)
                rel = full.relative_to(root).as_posix()
                if not _inside(full, real_root):
                    found.append(
                        Rejected(rel, "symlink points outside the card", "copy the real files in")
                    )
                # A link to a folder on the card would only list its files twice.
        for fname in filenames:
            if _is_hidden([fname]):
                continue
            full = here / fname
            rel = full.relative_to(root).as_posix()
            item = _folder_entry(full, rel, real_root, max_bytes, max_ratio)
            if item is not None:
                found.append(item)
    found.sort(key=lambda e: e.relpath)
    return found


def _inside(path: Path, real_root: Path) -> bool:
    """Whether ``path`` resolves to somewhere under ``real_root``."""
    try:
        path.resolve(strict=False).relative_to(real_root)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _folder_entry(
    full: Path, rel: str, real_root: Path, max_bytes: int, max_ratio: float
) -> SourceFile | Rejected | None:
    """Turn one directory entry into a SourceFile, a Rejected, or nothing."""
    if full.is_symlink():
        if not _inside(full, real_root):
            return Rejected(rel, "symlink points outside the card", "copy the real file in")
        if not full.exists():
            return Rejected(rel, "broken symlink", "copy the real file in")
    try:
        st = full.stat()
    except OSError as exc:
        return Rejected(rel, f"unreadable ({exc.strerror})", "check permissions")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device would block or stream forever when read.
        return Rejected(rel, "not a regular file", "remove it from the card folder")
    verdict = _classify(rel)
    if verdict is None or isinstance(verdict, Rejected):
        return verdict
    return SourceFile(rel, st.st_size, full, max_bytes=max_bytes, max_ratio=max_ratio)


# ---------------------------------------------------------------------------
# zips


def _open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip, turning every way it can fail into a BadInputError."""
    try:
        return zipfile.ZipFile(path, "r")
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise BadInputError(
            str(path),
            f"not a readable zip file ({exc})",
            "make the zip again from the card, or give the card folder instead",
        ) from exc


def _safe_zip_name(raw: str) -> str | None:
    """Return the entry's posix relpath, or ``None`` if it would escape the card.

    Backslashes count as separators: Windows tools wrote them into old zips,
    and extractors on Windows honour them.
    """
    if "\x00" in raw:
        return None
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE_RE.match(name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return "/".join(parts)


def _list_zip(path: Path, max_bytes: int, max_ratio: float) -> list[SourceFile | Rejected]:
    """List a zip's entries, rejecting the dangerous ones before any is read."""
    # Opened here, not lazily, so that an unreadable zip fails at once.
    archive = _ZipArchive(path)
    infos = archive.handle().infolist()
    found: list[SourceFile | Rejected] = []
    seen: set[str] = set()
    for info in infos:
        raw = info.orig_filename
        if raw.endswith(("/", "\\")) or info.is_dir():
            continue
        rel = _safe_zip_name(raw)
        if rel is None:
            found.append(
                Rejected(
                    raw, "path escapes the card (zip entry with ../ or absolute path)", _HINT_ESCAPE
                )
            )
            continue
        if _is_hidden(rel.split("/")):
            continue
        item = _zip_entry(archive, info, rel, max_bytes, max_ratio)
        if item is None:
            continue
        if rel in seen:
            item = Rejected(rel, "duplicate name in zip (only the first is used)", _HINT_ESCAPE)
        seen.add(rel)
        found.append(item)
    found.sort(key=lambda e: e.relpath)  # stable: duplicates stay after their first
    return found


def _zip_entry(
    archive: _ZipArchive, info: zipfile.ZipInfo, rel: str, max_bytes: int, max_ratio: float
) -> SourceFile | Rejected | None:
    """Check one (safely named) zip entry."""
    if info.flag_bits & 0x1:
        return Rejected(
            rel, "encrypted zip entry", "unzip it with its password and give the folder"
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        return Rejected(rel, "symlink inside zip", _HINT_ESCAPE)
    verdict = _classify(rel, in_zip=True)
    if verdict is None or isinstance(verdict, Rejected):
        return verdict
    if info.compress_type not in _SUPPORTED_COMPRESSION:
        return Rejected(
            rel,
            f"unsupported zip compression (method {info.compress_type})",
            "make the zip again with ordinary (deflate) compression",
        )
    if info.file_size > max_bytes:
        return Rejected(
            rel, f"zip entry too large ({info.file_size} bytes, limit {max_bytes})", _HINT_BOMB
        )
    if info.file_size > _RATIO_FLOOR:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > max_ratio:
            return Rejected(
                rel, f"zip bomb suspected (compression ratio {ratio:.0f}:1)", _HINT_BOMB
            )
    return SourceFile(
        rel,
        info.file_size,
        None,
        max_bytes=max_bytes,
        max_ratio=max_ratio,
        _archive=archive,
        _info=info,
    )


# ---------------------------------------------------------------------------
# entry point


def iter_source(
    source: Path | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> Iterator[SourceFile | Rejected]:
    """Enumerate the files of a card given as a folder, a .zip or one file.

    Parameters
    ----------
    source:
        A folder (the card's root), a ``.zip`` of it, or a single media file.
    max_bytes:
        Largest size a file may have when read into memory or inflated from
        the zip.
    max_ratio:
        Largest compression ratio believed for zip entries over 1 MiB.

    Returns
    -------
    An iterator, sorted by relative path, of :class:`SourceFile` for media
    files and :class:`Rejected` for files that will not be used. Dot-files,
    ``Thumbs.db``, ``__MACOSX/`` and sidecars (.txt .csv .xml .ini .db .thm
    .log) are skipped silently.

    Raises
    ------
    BadInputError
        When the source does not exist or a .zip cannot be read as a zip.
    """
    # Everything is listed before the first item is returned: sorting needs
    # the whole list anyway, and a missing or unreadable source then fails at
    # the call rather than at the first next().
    path = Path(source)
    if not path.exists() and not path.is_symlink():
        raise BadInputError(str(path), "no such file or folder", "check the path to the card")
    if path.is_dir():
        return iter(_list_folder(path, max_bytes, max_ratio))
    if path.suffix.lower() in _ZIP_EXTENSIONS:
        return iter(_list_zip(path, max_bytes, max_ratio))
    # A single file given on purpose: no hidden-file filter, but the same
    # media check, so a stray CSV is still explained rather than ingested.
    item = _folder_entry(path, path.name, path.resolve().parent, max_bytes, max_ratio)
    if item is None:
        ext = path.suffix.lower()
        item = Rejected(path.name, f"not a media file (extension {ext})", _HINT_NOT_MEDIA)
    return iter([item])
