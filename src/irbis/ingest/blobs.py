"""Content-addressed storage of originals.

A blob lives at ``blobs/ab/cd/abcd...<sha256>.<ext>``. It is written to the
project's ``tmp/`` folder first and renamed into place, so a blob path either
holds the complete original or does not exist: an ingest killed midway leaves
at worst an orphan file in ``tmp/``, never a half-written blob.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO


class BlobStore:
    """Originals stored by their sha256, never modified once written."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

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

    def clear_tmp(self) -> None:
        """Remove partial writes left by an interrupted run."""
        if self.tmp.exists():
            for p in self.tmp.iterdir():
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    _unlink_quietly(str(p))


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)
