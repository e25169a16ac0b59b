"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).with_name("migrations")


def migration_engine(engine: Engine) -> Engine:
    """An engine for running migrations: on SQLite, one whose DDL is transactional.

    Python's sqlite3 driver commits before every CREATE/ALTER/DROP on its own,
    so a migration that fails half-way would leave a half-rebuilt database.
    Here the driver's own transaction handling is switched off and irbis emits
    BEGIN itself, so a whole migration commits or rolls back as one. Foreign
    keys are off for the copy-and-rename table rebuilds (the environment checks
    them before committing).
    """
    if engine.dialect.name != "sqlite":
        return engine
    mig = create_engine(engine.url, future=True)

    @event.listens_for(mig, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(mig, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return mig


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = migration_engine(engine)
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema of ``engine``'s database to ``revision``."""
    cfg = alembic_config(engine)
    try:
        command.upgrade(cfg, revision)
    finally:
        if cfg.attributes["engine"] is not engine:
            cfg.attributes["engine"].dispose()


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
