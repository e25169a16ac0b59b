"""Content-addressed storage of originals.

A blob lives at ``blobs/ab/cd/abcd...<sha256>.<ext>``. It is written to the
project's ``tmp/`` folder first and renamed into place, so a blob path either
holds the complete original or does not exist: an ingest killed midway leaves
at worst an orphan file in ``tmp/``, never a half-written blob.

Several ingests may run at once on one project (a PostgreSQL team server), so
each run writes into a ``tmp/run-*`` folder of its own, locked (``flock``) for
as long as its process lives; a run clears only folders whose lock is free
(their run ended or died), never another live run's files in flight.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: runs' folders are told stale by age alone
    fcntl = None  # type: ignore[assignment]

RUN_PREFIX = "run-"
_NEW_PREFIX = ".new-run-"
_LOCK_NAME = ".lock"
# Leftovers that cannot be asked (no lock) are cleared once this old.
_STALE_S = 24 * 3600.0
# Loose temp files of runs before run folders existed.
_LOOSE_PREFIXES = ("blob-", "video-")


class BlobStore:
    """Originals stored by their sha256, never modified once written."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        # Where temp files go: the project's tmp/, or this run's folder in it.
        self.tmp = tmp
        self._base_tmp = tmp
        self._lock_fh: BinaryIO | None = None

    @staticmethod
    def relpath(sha256: str, ext: str) -> str:
        ext = ext.lower().lstrip(".")
        return (
            f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"
            if ext
            else f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        )

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def has(self, relpath: str, size: int) -> bool:
        p = self.root / relpath
        try:
            return p.stat().st_size == size
        except FileNotFoundError:
            return False

    def put_bytes(self, data: bytes, sha256: str, ext: str) -> str:
        """Store ``data`` under its hash; return the relative path. Idempotent."""
        rel = self.relpath(sha256, ext)
        if self.has(rel, len(data)):
            return rel
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self._place(tmp_name, rel)
        except BaseException:
            _unlink_quietly(tmp_name)
            raise
        return rel

    def put_file(self, tmp_file: Path, sha256: str, ext: str) -> str:
        """Move an already-complete file from ``tmp/`` into the store."""
        rel = self.relpath(sha256, ext)
        if self.has(rel, tmp_file.stat().st_size):
            tmp_file.unlink()
            return rel
        self._place(str(tmp_file), rel)
        return rel

    def _place(self, tmp_name: str, rel: str) -> None:
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_name, dest)
        # Originals are evidence: make the stored copy read-only.
        os.chmod(dest, 0o444)

    def open(self, relpath: str) -> BinaryIO:
        return open(self.root / relpath, "rb")

    def begin_run(self) -> None:
        """Clear what ended runs left, then write temp files into a locked folder of our own.

        The folder is created and locked under a name :meth:`clear_tmp`
        leaves alone, then renamed to ``run-*``, so no other run can take it
        for a stale one in between.
        """
        self._base_tmp.mkdir(parents=True, exist_ok=True)
        self.clear_tmp()
        new = Path(tempfile.mkdtemp(dir=self._base_tmp, prefix=_NEW_PREFIX))
        fh = open(new / _LOCK_NAME, "wb")  # noqa: SIM115 - held for the whole run
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        run = self._base_tmp / (RUN_PREFIX + new.name[len(_NEW_PREFIX) :])
        new.rename(run)
        self._lock_fh, self.tmp = fh, run

    def end_run(self) -> None:
        """Remove this run's folder and release its lock."""
        if self._lock_fh is None:
            return
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._lock_fh.close()
        self._lock_fh, self.tmp = None, self._base_tmp

    def clear_tmp(self) -> None:
        """Remove partial writes left by runs that ended or died, never a live run's.

        Only what ingests write is touched: ``run-*`` folders whose lock is
        free, and loose ``blob-*``/``video-*`` files (from older versions) or
        half-made run folders a day old. Other things in ``tmp/`` (caches)
        stay.
        """
        if not self._base_tmp.exists():
            return
        now = time.time()
        for p in self._base_tmp.iterdir():
            try:
                old = now - p.stat().st_mtime > _STALE_S
            except FileNotFoundError:
                continue
            if p.is_dir() and p.name.startswith(RUN_PREFIX):
                if p == self.tmp or not _run_is_over(p, old):
                    continue
                shutil.rmtree(p, ignore_errors=True)
            elif p.is_dir() and p.name.startswith(_NEW_PREFIX) and old:
                shutil.rmtree(p, ignore_errors=True)
            elif p.is_file() and p.name.startswith(_LOOSE_PREFIXES) and old:
                _unlink_quietly(str(p))


def _run_is_over(folder: Path, old: bool) -> bool:
    """Whether the run that owns ``folder`` ended (its lock is free)."""
    if fcntl is None:
        return old
    try:
        fh = open(folder / _LOCK_NAME, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return True  # no lock: its run removed it on the way out, or never made one
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        fh.close()  # closing releases the lock just taken
    return True


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)
