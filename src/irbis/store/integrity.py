"""Is the project whole? Originals against their recorded sha256, and every foreign key.

``irbis check PROJECT`` runs :func:`check_project`. The web app calls
:func:`verify_original` before serving a ``--storage reference`` original:
such a file lives outside the project (on a card copy, a NAS) and may have
been replaced since ingest, and what is served must be what was identified.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, and_, func, select
from sqlalchemy.engine import Connection

from irbis.store.project import Project
from irbis.store.schema import Media

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# (device, inode, size, mtime, ctime) of files whose content was hashed and matched.
# ctime cannot be set back by a user, so a replaced or rewritten file is hashed again.
_verified: dict[str, tuple[tuple[int, ...], str]] = {}
_verified_lock = threading.Lock()


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verify_original(path: Path, sha256: str) -> bool:
    """Whether the file at ``path`` still has the content ingested as ``sha256``.

    The hash is computed once per file version and remembered by this process
    for as long as the file's device, inode, size, mtime and ctime stay the
    same (any replacement or rewrite changes its ctime).
    """
    st = path.stat()
    stamp = _stamp(st)
    key = str(path)
    with _verified_lock:
        known = _verified.get(key)
    if known == (stamp, sha256):
        return True
    digest = sha256_of(path)
    if digest != sha256:
        return False
    if _stamp(path.stat()) != stamp:
        return False  # changed while it was read: do not trust either version
    with _verified_lock:
        if len(_verified) > 200_000:
            _verified.clear()
        _verified[key] = (stamp, sha256)
    return True


def original_path(project: Project, storage: str, stored_path: str) -> Path | None:
    """Where a media row's original is: in the blob store (copy) or at its path (reference)."""
    if not stored_path:
        return None
    if storage == "copy":
        return project.blob_dir / stored_path
    if storage == "reference":
        return Path(stored_path)
    return None


@dataclass
class CheckReport:
    """What :func:`check_project` found."""

    media_checked: int = 0
    bytes_hashed: int = 0
    foreign_keys_checked: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "media_checked": self.media_checked,
            "bytes_hashed": self.bytes_hashed,
            "foreign_keys_checked": self.foreign_keys_checked,
            "problems": self.problems,
        }


def dangling_references(conn: Connection, *, sample: int = 5) -> tuple[int, list[dict[str, Any]]]:
    """Rows whose foreign key names a row that does not exist, for every foreign key.

    Works on both backends from the database's own catalogue (SQLite lets
    such rows in when foreign keys were off; a restore or hand edit may too).

    Returns
    -------
    tuple
        (number of foreign keys checked, one problem per broken key with a count and sample ids).
    """
    meta = MetaData()
    meta.reflect(conn)
    problems: list[dict[str, Any]] = []
    n = 0
    for table in meta.sorted_tables:
        for fk in table.foreign_key_constraints:
            n += 1
            parent = fk.referred_table
            cols = list(fk.columns)
            refs = [e.column for e in fk.elements]
            p = parent.alias("p")
            join_on = and_(*(p.c[r.name] == c for c, r in zip(cols, refs, strict=True)))
            missing = (
                select(*cols)
                .select_from(table.outerjoin(p, join_on))
                .where(and_(*(c.is_not(None) for c in cols)))
                .where(p.c[refs[0].name].is_(None))
            )
            count = conn.execute(select(func.count()).select_from(missing.subquery())).scalar()
            if count:
                key = "id" if "id" in table.c else cols[0].name
                ids = conn.execute(
                    select(table.c[key])
                    .select_from(table.outerjoin(p, join_on))
                    .where(and_(*(c.is_not(None) for c in cols)))
                    .where(p.c[refs[0].name].is_(None))
                    .limit(sample)
                ).scalars()
                problems.append(
                    {
                        "kind": "foreign_key",
                        "table": table.name,
                        "column": ",".join(c.name for c in cols),
                        "references": parent.name,
                        "count": int(count),
                        "sample_ids": list(ids),
                        "message": (
                            f"{table.name}.{','.join(c.name for c in cols)}: {count} row(s) "
                            f"name a {parent.name} row that does not exist"
                        ),
                    }
                )
    return n, problems


def check_project(
    project: Project,
    *,
    hashes: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> CheckReport:
    """Check every original against its recorded sha256, and every foreign key.

    Parameters
    ----------
    hashes:
        Read and hash every original (all bytes); ``False`` checks only that
        each exists with its recorded size.
    progress:
        Called as ``progress(done, total, file)``.

    Returns
    -------
    CheckReport
        ``problems``: ``missing`` (no file), ``size`` / ``hash`` (a copied blob
        damaged, or a ``reference`` original replaced since ingest: kind
        ``swapped``), ``foreign_key`` (dangling references).
    """
    report = CheckReport()
    with project.session() as s:
        rows = s.execute(
            select(Media.id, Media.sha256, Media.size, Media.storage, Media.stored_path).order_by(
                Media.id
            )
        ).all()
    total = len(rows)
    for i, (mid, sha, size, storage, stored) in enumerate(rows, 1):
        path = original_path(project, storage, stored or "")
        report.media_checked += 1
        if progress is not None:
            progress(i - 1, total, str(path or stored or mid))
        where = f"media {mid} ({storage})"
        if path is None:
            if storage == "reference" and not stored:
                continue  # imported without a local file: nothing to check
            report.problems.append(
                {"kind": "missing", "media_id": mid, "path": stored, "message": f"{where}: no path"}
            )
            continue
        if not path.is_file():
            report.problems.append(
                {
                    "kind": "missing",
                    "media_id": mid,
                    "path": str(path),
                    "message": f"{where}: original missing at {path}",
                }
            )
            continue
        actual_size = path.stat().st_size
        kind = "swapped" if storage == "reference" else "damaged"
        if size is not None and actual_size != size:
            report.problems.append(
                {
                    "kind": kind,
                    "media_id": mid,
                    "path": str(path),
                    "message": f"{where}: {path} has {actual_size} bytes, {size} were ingested",
                }
            )
            continue
        if hashes:
            digest = sha256_of(path)
            report.bytes_hashed += actual_size
            if digest != sha:
                report.problems.append(
                    {
                        "kind": kind,
                        "media_id": mid,
                        "path": str(path),
                        "expected_sha256": sha,
                        "sha256": digest,
                        "message": (
                            f"{where}: {path} is not the file ingested (sha256 {digest[:12]}..., "
                            f"recorded {sha[:12]}...)"
                        ),
                    }
                )
    if progress is not None:
        progress(total, total, "")
    with project.engine.connect() as conn:
        report.foreign_keys_checked, fk = dangling_references(conn)
    report.problems.extend(fk)
    return report
