"""``irbis backup`` / ``irbis restore``: the database and the originals, verified by hash.

A backup is a folder::

    manifest.json     format, schema revision, backend, sha256 and size of every file below
    irbis.json        the project's settings (without the database URL: no password travels)
    irbis.db          SQLite projects: a consistent copy made with SQLite's online backup API
    tables/NAME.jsonl PostgreSQL projects: every table, one JSON object per row, read in one
                      REPEATABLE READ snapshot (portable: restores into SQLite or PostgreSQL)
    blobs/...         every copied original the database names, at its blob-store path

It is written to ``DEST.part`` and renamed to ``DEST`` when complete, so a
folder named ``DEST`` is always a whole backup. ``--storage reference``
originals stay where they are; the manifest lists them with their sha256
(``irbis check`` tells whether they are still the files ingested).

A restore first checks every file against the manifest, then writes a new
project; nothing is written when any hash differs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Date, DateTime, Engine, MetaData, inspect, select, text

from irbis.core.errors import BadInputError
from irbis.store.integrity import CHUNK, sha256_of
from irbis.store.project import SETTINGS_FILE, SQLITE_FILE, Project, make_engine

FORMAT = "irbis-backup"
VERSION = 1
MANIFEST = "manifest.json"
#: Rows per INSERT batch when loading tables.
BATCH = 1000

Progress = Callable[[str, int, int | None], None]


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    raise TypeError(f"cannot write {type(obj).__name__} to a backup")


def _copy_hashed(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` and return the sha256 and size of what was written."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n = 0
    with src.open("rb") as fi, dst.open("wb") as fo:
        while chunk := fi.read(CHUNK):
            h.update(chunk)
            fo.write(chunk)
            n += len(chunk)
    shutil.copystat(src, dst)
    return h.hexdigest(), n


def _safe_relative(stored: str) -> PurePosixPath | None:
    """A blob-store path that stays inside the store, or None."""
    rel = PurePosixPath(stored.replace("\\", "/"))
    if not stored or rel.is_absolute() or ".." in rel.parts:
        return None
    return rel


@dataclass
class BackupResult:
    """What :func:`backup_project` wrote."""

    path: Path
    backend: str
    revision: str | None
    files: int = 0
    bytes: int = 0
    blobs: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    referenced: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "backend": self.backend,
            "revision": self.revision,
            "files": self.files,
            "bytes": self.bytes,
            "blobs": self.blobs,
            "tables": self.tables,
            "referenced_originals": self.referenced,
            "problems": self.problems,
        }


def _sqlite_snapshot(project: Project, out: Path) -> None:
    """A consistent copy of the project's SQLite database (online backup API)."""
    db = project.engine.url.database
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    dst = sqlite3.connect(out)
    try:
        with dst:
            src.backup(dst)
    finally:
        src.close()
        dst.close()


def _dump_tables(conn, out_dir: Path, progress: Progress | None) -> tuple[dict[str, int], list]:
    """Every table (but Alembic's) as JSON lines; returns row counts and the media rows."""
    meta = MetaData()
    meta.reflect(conn)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    order = [t for t in meta.sorted_tables if t.name != "alembic_version"]
    for i, table in enumerate(order):
        if progress is not None:
            progress(f"table {table.name}", i, len(order))
        pk = list(table.primary_key.columns) or list(table.c)
        n = 0
        with (out_dir / f"{table.name}.jsonl").open("w", encoding="utf-8") as fh:
            for row in conn.execute(select(table).order_by(*pk)).mappings():
                fh.write(json.dumps(dict(row), default=_json_default, ensure_ascii=False))
                fh.write("\n")
                n += 1
        counts[table.name] = n
    media = conn.execute(
        text("SELECT id, sha256, storage, stored_path FROM media ORDER BY id")
    ).all()
    return counts, media


def backup_project(
    project: Project, dest: Path | str, *, progress: Progress | None = None
) -> BackupResult:
    """Write a verified, restorable backup of ``project`` to the new folder ``dest``.

    Parameters
    ----------
    dest:
        A folder that does not exist yet (or is empty).
    progress:
        Called as ``progress(step, done, total)``.

    Returns
    -------
    BackupResult
        ``problems`` lists originals that were missing or did not match their
        recorded sha256 (they are left out or kept as found, and named here).

    Raises
    ------
    BadInputError
        ``dest`` exists and is not empty.
    """
    from irbis import __version__

    dest = Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BadInputError(
            str(dest), "exists and is not empty", "give a new folder for the backup"
        )
    part = dest.with_name(dest.name + ".part")
    if part.exists():
        shutil.rmtree(part)  # an earlier interrupted backup
    part.mkdir(parents=True)
    backend = project.engine.dialect.name
    result = BackupResult(dest, backend, None)
    files: dict[str, dict[str, Any]] = {}

    def add(rel: str, path: Path, digest: str | None = None, size: int | None = None) -> None:
        if digest is None:
            digest, size = sha256_of(path), path.stat().st_size
        files[rel] = {"sha256": digest, "size": size}

    if backend == "sqlite":
        if progress is not None:
            progress("database", 0, None)
        _sqlite_snapshot(project, part / SQLITE_FILE)
        snap = sqlite3.connect(part / SQLITE_FILE)
        try:
            media = snap.execute("SELECT id, sha256, storage, stored_path FROM media").fetchall()
            names = [
                r[0]
                for r in snap.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            result.tables = {
                n: snap.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]
                for n in sorted(names)
                if n != "alembic_version"
            }
            row = snap.execute("SELECT version_num FROM alembic_version").fetchone()
            result.revision = row[0] if row else None
        finally:
            snap.close()
        add(SQLITE_FILE, part / SQLITE_FILE)
        database = {"kind": "sqlite-file", "path": SQLITE_FILE}
    else:
        with project.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.execute(text("SET TRANSACTION READ ONLY"))
                result.tables, media = _dump_tables(conn, part / "tables", progress)
                result.revision = conn.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        for name in result.tables:
            add(f"tables/{name}.jsonl", part / "tables" / f"{name}.jsonl")
        database = {"kind": "tables", "path": "tables"}

    referenced = []
    copied = [m for m in media if m[2] == "copy"]
    for i, (mid, sha, storage, stored) in enumerate(media):
        if storage == "reference":
            if stored:
                referenced.append({"media_id": mid, "path": stored, "sha256": sha})
            continue
        if progress is not None:
            progress("originals", i, len(copied))
        rel = _safe_relative(stored or "")
        if rel is None:
            result.problems.append(f"media {mid}: blob path {stored!r} is outside the store")
            continue
        src = project.blob_dir / rel
        if not src.is_file():
            result.problems.append(f"media {mid}: original missing at {src}")
            continue
        digest, size = _copy_hashed(src, part / "blobs" / rel)
        if digest != sha:
            result.problems.append(
                f"media {mid}: {src} does not match its recorded sha256 (backed up as found)"
            )
        add(f"blobs/{rel.as_posix()}", part / "blobs" / rel, digest, size)
        result.blobs += 1
    result.referenced = len(referenced)

    settings = json.loads((project.root / SETTINGS_FILE).read_text())
    settings.pop("db_url", None)  # a server URL may carry a password
    (part / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    add(SETTINGS_FILE, part / SETTINGS_FILE)

    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_utc": _now(),
        "irbis_version": __version__,
        "project": project.settings.name,
        "backend": backend,
        "schema_revision": result.revision,
        "database": database,
        "settings": SETTINGS_FILE,
        "tables": result.tables,
        "files": files,
        "referenced_originals": referenced,
    }
    (part / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    result.files = len(files)
    result.bytes = sum(f["size"] for f in files.values())
    if dest.exists():
        dest.rmdir()
    part.rename(dest)
    return result


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the backup in ``src``, checked for form (one-line errors)."""
    path = src / MANIFEST
    if not path.is_file():
        raise BadInputError(
            str(src), "not an irbis backup (no manifest.json)", "give the folder irbis backup wrote"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInputError(str(path), f"not valid JSON ({exc})", "the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadInputError(
            str(path), "not an irbis backup manifest", "give the folder irbis backup wrote"
        )
    if manifest.get("version") != VERSION or not isinstance(manifest.get("files"), dict):
        raise BadInputError(
            str(path),
            f"backup format version {manifest.get('version')!r} is not {VERSION}",
            "use the irbis that wrote it",
        )
    return manifest


def verify_backup(src: Path | str, *, progress: Progress | None = None) -> dict[str, Any]:
    """Check every file of a backup against its manifest; return the manifest.

    Raises
    ------
    BadInputError
        Naming the first file that is missing, outside the backup, of another
        size or whose sha256 differs.
    """
    src = Path(src).resolve()
    manifest = read_manifest(src)
    files = manifest["files"]
    for i, (rel, info) in enumerate(sorted(files.items())):
        if progress is not None:
            progress("verify", i, len(files))
        path = (src / rel).resolve()
        where = str(src / rel)
        if not path.is_relative_to(src) or not isinstance(info, dict):
            raise BadInputError(
                where, "named by the manifest outside the backup", "the manifest was changed"
            )
        if not path.is_file():
            raise BadInputError(where, "missing from the backup", "restore from another copy")
        if path.stat().st_size != info.get("size") or sha256_of(path) != info.get("sha256"):
            raise BadInputError(
                where,
                "differs from the manifest's sha256 (the backup is damaged or was changed)",
                "nothing was restored; restore from another copy",
            )
    for key in ("database", "settings"):
        if key not in manifest:
            raise BadInputError(
                str(src / MANIFEST), f"no {key!r} entry", "the manifest was changed"
            )
    return manifest


def _jsonl_tables(folder: Path, names: Iterable[str]) -> Iterator[tuple[str, Iterator[dict]]]:
    def rows(path: Path) -> Iterator[dict]:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    for name in names:
        yield name, rows(folder / f"{name}.jsonl")


def _sqlite_tables(path: Path) -> Iterator[tuple[str, Iterator[dict]]]:
    engine = make_engine(f"sqlite:///{path}")
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                if table.name == "alembic_version":
                    continue
                pk = list(table.primary_key.columns) or list(table.c)
                yield (
                    table.name,
                    (dict(r) for r in conn.execute(select(table).order_by(*pk)).mappings()),
                )
    finally:
        engine.dispose()


def _convert(col_type: Any) -> Callable[[Any], Any]:
    if isinstance(col_type, DateTime):
        return lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(col_type, Date):
        return lambda v: date.fromisoformat(v) if isinstance(v, str) else v
    return lambda v: v


def load_tables(engine: Engine, tables: Iterable[tuple[str, Iterable[dict]]]) -> dict[str, int]:
    """Insert dumped rows into the (empty) tables of ``engine``, in one transaction.

    A column naming a row of its own table (an individual merged into
    another) is filled after all that table's rows are in. On PostgreSQL the
    id sequences continue after the largest id restored.
    """
    meta = MetaData()
    meta.reflect(engine)
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for name, rows in tables:
            table = meta.tables.get(name)
            if table is None:
                raise BadInputError(
                    f"backup table {name}",
                    "unknown to this schema",
                    "restore with the irbis that wrote it",
                )
            conv = {c.name: _convert(c.type) for c in table.c}
            self_refs = [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]
            later: list[tuple[Any, dict[str, Any]]] = []
            batch: list[dict[str, Any]] = []
            n = 0
            for row in rows:
                unknown = set(row) - set(conv)
                if unknown:
                    raise BadInputError(
                        f"backup table {name}",
                        f"unknown columns {sorted(unknown)}",
                        "restore with the irbis that wrote it",
                    )
                row = {k: conv[k](v) for k, v in row.items()}
                refs = {c: row[c] for c in self_refs if row.get(c) is not None}
                if refs:
                    later.append((row["id"], refs))
                    row.update(dict.fromkeys(refs))
                batch.append(row)
                n += 1
                if len(batch) >= BATCH:
                    conn.execute(table.insert(), batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
            for pk, refs in later:
                conn.execute(table.update().where(table.c.id == pk).values(**refs))
            counts[name] = n
        if engine.dialect.name == "postgresql":
            for table in meta.sorted_tables:
                if "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement:
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f'COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{table.name}"'
                        )
                    )
    return counts


@dataclass
class RestoreResult:
    """What :func:`restore_project` made."""

    path: Path
    backend: str
    files_verified: int
    blobs: int
    tables: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "backend": self.backend,
            "files_verified": self.files_verified,
            "blobs": self.blobs,
            "tables": self.tables,
        }


def restore_project(
    src: Path | str,
    new_root: Path | str,
    *,
    db_url: str | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Make a new project from a backup, after checking every file's sha256.

    Parameters
    ----------
    src:
        The backup folder.
    new_root:
        The new project's folder: must not exist yet, or be empty.
    db_url:
        A PostgreSQL database (empty) for the new project; its own SQLite file otherwise.

    Raises
    ------
    BadInputError
        The backup fails verification (nothing is written), the folder is not
        empty, or the PostgreSQL database already has tables.
    """
    from irbis.store.migrate import upgrade
    from irbis.store.sequence_summary import refresh

    src = Path(src).resolve()
    new_root = Path(new_root).resolve()
    if new_root.exists() and (not new_root.is_dir() or any(new_root.iterdir())):
        raise BadInputError(str(new_root), "exists and is not empty", "restore into a new folder")
    manifest = verify_backup(src, progress=progress)
    database = manifest["database"]
    revision = manifest.get("schema_revision") or "head"
    created = not new_root.exists()
    new_root.mkdir(parents=True, exist_ok=True)
    engine = None
    try:
        url = db_url or f"sqlite:///{new_root / SQLITE_FILE}"
        if database.get("kind") == "sqlite-file" and db_url is None:
            shutil.copyfile(src / database["path"], new_root / SQLITE_FILE)
            tables = dict(manifest.get("tables") or {})
        else:
            engine = make_engine(url)
            if inspect(engine).get_table_names():
                raise BadInputError(
                    url.split("@")[-1], "the database already has tables", "give an empty database"
                )
            upgrade(engine, revision)
            if database.get("kind") == "sqlite-file":
                source = _sqlite_tables(src / database["path"])
            else:
                source = _jsonl_tables(src / database["path"], manifest.get("tables") or {})
            if progress is not None:
                progress("tables", 0, None)
            tables = load_tables(engine, source)
            engine.dispose()
            engine = None
        blobs = 0
        for rel in sorted(manifest["files"]):
            if rel.startswith("blobs/"):
                dst = new_root / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst)
                blobs += 1
        settings = json.loads((src / manifest["settings"]).read_text())
        settings["db_url"] = db_url
        (new_root / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        with Project.open(new_root) as p:  # brings an older backup's schema up to date
            refresh(p.engine)
            backend = p.engine.dialect.name
    except BaseException:
        if engine is not None:
            engine.dispose()
        if created:
            shutil.rmtree(new_root, ignore_errors=True)
        else:
            for child in new_root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return RestoreResult(new_root, backend, len(manifest["files"]), blobs, tables)
