"""A census project: a folder holding the settings, the blob store and (by
default) the SQLite database.

``PROJECT/irbis.json``   settings (database URL when not the embedded file)
``PROJECT/irbis.db``     the embedded SQLite database (WAL mode)
``PROJECT/blobs/``       originals, content-addressed by sha256
``PROJECT/tmp/``         partial writes, renamed into place when complete
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from irbis.core.errors import ProjectError

SETTINGS_FILE = "irbis.json"
SQLITE_FILE = "irbis.db"


@dataclass
class Settings:
    """Per-project settings written to ``irbis.json``.

    ``burst_gap_s``: frames closer than this belong to one sequence (burst).
    ``event_gap_min``: sequences closer than this belong to one independent event.
    ``storage``: ``copy`` originals into the blob store, or ``reference`` them in place.
    """

    name: str = ""
    db_url: str | None = None
    storage: str = "copy"
    burst_gap_s: float = 30.0
    event_gap_min: float = 60.0
    earliest_plausible: str = "2005-01-01"
    extra: dict = field(default_factory=dict)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    # WAL lets the web app read while an ingest writes; foreign keys are off by
    # default in SQLite and we rely on them.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings irbis relies on."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Project:
    """An opened census project.

    Use :meth:`Project.init` to create one and :meth:`Project.open` to open it.
    """

    def __init__(self, root: Path, settings: Settings, engine: Engine) -> None:
        self.root = root
        self.settings = settings
        self.engine = engine
        self._sessionmaker = sessionmaker(engine, expire_on_commit=False)

    # -- paths -------------------------------------------------------------
    @property
    def blob_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def db_url(self) -> str:
        return self.settings.db_url or f"sqlite:///{self.root / SQLITE_FILE}"

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def init(
        cls, root: Path | str, *, db_url: str | None = None, storage: str = "copy", name: str = ""
    ) -> Project:
        """Create a project folder and its database schema.

        Parameters
        ----------
        root:
            Folder to create (it may exist but must not hold a project already).
        db_url:
            A PostgreSQL URL for a team server; the embedded SQLite file otherwise.
        storage:
            ``copy`` (originals copied into the blob store) or ``reference``
            (originals left where they are, recorded by absolute path).
        """
        root = Path(root).resolve()
        if (root / SETTINGS_FILE).exists():
            raise ProjectError(f"{root}: already an irbis project (open it instead of init)")
        if storage not in ("copy", "reference"):
            raise ProjectError(f"storage must be 'copy' or 'reference', not {storage!r}")
        root.mkdir(parents=True, exist_ok=True)
        settings = Settings(name=name or root.name, db_url=db_url, storage=storage)
        project = cls(root, settings, make_engine(db_url or f"sqlite:///{root / SQLITE_FILE}"))
        project.blob_dir.mkdir(exist_ok=True)
        project.tmp_dir.mkdir(exist_ok=True)
        from irbis.store.migrate import upgrade

        upgrade(project.engine)
        (root / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=2) + "\n")
        return project

    @classmethod
    def open(cls, root: Path | str, *, migrate: bool = True) -> Project:
        """Open an existing project, bringing its schema up to date."""
        root = Path(root).resolve()
        path = root / SETTINGS_FILE
        if not path.exists():
            raise ProjectError(
                f"{root}: not an irbis project (create one with `irbis init {root}`)"
            )
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ProjectError(f"{path}: settings file is not valid JSON ({exc})") from exc
        known = {f for f in Settings.__dataclass_fields__}
        settings = Settings(**{k: v for k, v in raw.items() if k in known})
        project = cls(
            root, settings, make_engine(settings.db_url or f"sqlite:///{root / SQLITE_FILE}")
        )
        project.tmp_dir.mkdir(exist_ok=True)
        project.blob_dir.mkdir(exist_ok=True)
        if migrate:
            from irbis.store.migrate import upgrade

            upgrade(project.engine)
        return project

    def save_settings(self) -> None:
        (self.root / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=2) + "\n")

    def session(self) -> Session:
        """A new ORM session (use as a context manager)."""
        return self._sessionmaker()

    def tables(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
