"""The project store: one schema, reached through migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from irbis.core.errors import ProjectError
from irbis.store import Project
from irbis.store.migrate import current
from irbis.store.schema import Base


def test_migrations_build_exactly_the_models(project):
    assert current(project.engine) is not None
    with project.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert {
        "stations",
        "deployments",
        "media",
        "media_groups",
        "observations",
        "rejections",
    } <= set(project.tables())


def test_project_folder_and_settings(project):
    settings = json.loads((project.root / "irbis.json").read_text())
    assert settings["storage"] == "copy" and settings["burst_gap_s"] == 30.0
    assert (project.root / "blobs").is_dir()
    reopened = Project.open(project.root)
    assert reopened.engine.dialect.name == project.engine.dialect.name
    reopened.close()


def test_clear_errors_for_missing_or_existing_projects(tmp_path):
    with pytest.raises(ProjectError, match="not an irbis project"):
        Project.open(tmp_path / "nothing")
    Project.init(tmp_path / "p").close()
    with pytest.raises(ProjectError, match="already an irbis project"):
        Project.init(tmp_path / "p")
    with pytest.raises(ProjectError, match="storage must be"):
        Project.init(tmp_path / "q", storage="move")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "irbis.json").write_text("{not json")
    with pytest.raises(ProjectError, match="not valid JSON"):
        Project.open(tmp_path / "broken")


def test_upgrading_a_populated_project_keeps_its_rows(tmp_path, backend):
    """A project made before the review tables (revision 0002) upgrades in place."""
    from alembic import command
    from sqlalchemy import text

    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest
    from irbis.store.migrate import alembic_config, upgrade

    from .conftest import need_data

    camtrapr = need_data("cameratrap", "camtrapR")
    p = Project.init(tmp_path / "project", db_url=backend)
    try:
        import_registry(p, camtrapr / "oracle" / "camtraps.csv", date_format="%d/%m/%Y")
        ingest(p, camtrapr / "pictures" / "sample_images_species_dir", layout="station/species")
        with p.engine.connect() as conn:
            before = conn.execute(text("select count(*) from observations")).scalar_one()
            n_media = conn.execute(text("select count(*) from media")).scalar_one()
        command.downgrade(alembic_config(p.engine), "0002")
        assert current(p.engine) == "0002"
        upgrade(p.engine)
        with p.engine.connect() as conn:
            rows = conn.execute(
                text("select level, observation_type, retracted_utc from observations")
            ).all()
            assert conn.execute(text("select count(*) from media")).scalar_one() == n_media
        assert len(rows) == before > 0
        assert {(r[0], r[1], r[2]) for r in rows} <= {("media", "animal", None)}
    finally:
        p.close()


def test_sqlite_migrations_are_all_or_nothing(tmp_path):
    """A migration step that fails leaves the SQLite file exactly as it was."""
    from sqlalchemy import inspect, text

    from irbis.store.migrate import migration_engine

    p = Project.init(tmp_path / "project")
    try:
        mig = migration_engine(p.engine)
        with pytest.raises(Exception, match="no such table"), mig.begin() as conn:
            conn.execute(text("CREATE TABLE half_done (id INTEGER)"))
            conn.execute(text("ALTER TABLE media ADD COLUMN half INTEGER"))
            conn.execute(text("INSERT INTO missing_table VALUES (1)"))
        mig.dispose()
        insp = inspect(p.engine)
        assert "half_done" not in insp.get_table_names()
        assert "half" not in {c["name"] for c in insp.get_columns("media")}
    finally:
        p.close()


def test_merge_roots_follow_chains_and_stop_on_loops():
    from irbis.store.individuals import merge_roots

    # 3 was merged into 2, 2 into 1; 4 stands alone; 5 and 6 were merged into each other.
    roots = merge_roots({1: None, 2: 1, 3: 2, 4: None, 5: 6, 6: 5})
    assert roots[1] == roots[2] == roots[3] == 1 and roots[4] == 4
    assert roots[5] in (5, 6) and roots[6] in (5, 6)  # a loop ends, it does not hang
