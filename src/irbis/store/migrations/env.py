"""Alembic environment: the engine comes from irbis, never from an ini file."""

from __future__ import annotations

from alembic import context

from irbis.store.migrate import migration_engine
from irbis.store.project import make_engine
from irbis.store.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or migration_engine(
        make_engine(config.get_main_option("sqlalchemy.url"))
    )
    with engine.connect() as connection, connection.begin():
        sqlite = connection.dialect.name == "sqlite"
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            transactional_ddl=True,
        )
        start = context.get_context().get_current_heads()
        context.run_migrations()
        if sqlite and context.get_context().get_current_heads() != start:
            # Table rebuilds ran with foreign keys off (see migration_engine);
            # refuse to commit a database with dangling references. (Only when
            # a migration ran: a project damaged by hand must still open, so
            # that irbis check can say what is wrong.)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(
                    f"migration left {len(broken)} dangling references: {broken[:3]}"
                )


run_migrations_online()
