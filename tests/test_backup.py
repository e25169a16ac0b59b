"""``irbis backup`` / ``restore`` / ``check`` and the hash check of reference originals
(issue 19, item 10), on SQLite and PostgreSQL with the real camtrapR card.

Before this change there was no backup command, nothing checked stored
originals against their sha256, and a ``--storage reference`` original
replaced on disk was served as if it were the photo that was identified.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.store import Project
from irbis.store.schema import Individual, Media, Observation

from .test_web_api import CAMTRAPR, build_project, need_data


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res.stdout


def _fails(*args: str) -> str:
    """Run the installed command as a person would; it must fail with one line."""
    res = subprocess.run(
        [sys.executable, "-m", "irbis", *args], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "━" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def _counts(project: Project) -> dict[str, int]:
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(project.engine)
    with project.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar()
            for t in meta.sorted_tables
            if t.name != "alembic_version"
        }


def _state(project: Project) -> dict:
    with project.session() as s:
        return {
            "media": s.execute(
                select(Media.id, Media.sha256, Media.timestamp_utc, Media.tags).order_by(Media.id)
            ).all(),
            "individuals": s.execute(
                select(Individual.id, Individual.name, Individual.merged_into_id).order_by(
                    Individual.id
                )
            ).all(),
            "observations": s.execute(
                select(Observation.id, Observation.species, Observation.extra).order_by(
                    Observation.id
                )
            ).all(),
        }


@pytest.fixture
def second_pg(pg_server):
    """Another empty PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"irbis_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{pg_server.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_and_restore_round_trip(project, tmp_path, request):
    ids = build_project(project)
    # Merged into a younger individual: the restore must fill the self-reference late.
    with project.session() as s:
        s.get(Individual, ids["khan"]).merged_into_id = ids["bora"]
        s.commit()
    assert ids["khan"] < ids["bora"]
    before, counts = _state(project), _counts(project)
    root = str(project.root)
    res = json.loads(_cli("backup", root, str(tmp_path / "bk"), "--json"))
    assert res["problems"] == [] and res["backend"] == project.engine.dialect.name
    assert res["blobs"] == counts["media"] == before["media"].__len__()
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert manifest["schema_revision"] == res["revision"] and manifest["tables"] == {
        k: v for k, v in counts.items() if k in manifest["tables"]
    }
    settings = json.loads((tmp_path / "bk" / "irbis.json").read_text())
    assert "db_url" not in settings  # a server URL (and its password) stays out
    assert not (tmp_path / "bk.part").exists()
    # The backup folder exists: a second backup there is refused.
    assert "not empty" in _fails("backup", root, str(tmp_path / "bk"))

    targets = [("sqlite", None)]
    if project.engine.dialect.name == "postgresql":
        targets.append(("postgresql", request.getfixturevalue("second_pg")))
    for name, url in targets:
        new = tmp_path / f"restored-{name}"
        args = ["restore", str(tmp_path / "bk"), str(new), "--json"]
        out = json.loads(_cli(*args, *(["--db", url] if url else [])))
        assert out["files_verified"] == len(manifest["files"])
        with Project.open(new) as p:
            assert p.engine.dialect.name == name
            assert _state(p) == before
            after = _counts(p)
            assert {k: after[k] for k in counts if k != "sequence_dirty"} == {
                k: v for k, v in counts.items() if k != "sequence_dirty"
            }
            # Ids continue after the restored ones (PostgreSQL sequences set).
            from irbis.web.auth import create_user

            create_user(p, "after-restore", "viewer")
        check = json.loads(_cli("check", str(new), "--json"))
        assert check["ok"] and check["media_checked"] == counts["media"]


def test_restore_refuses_a_damaged_backup_and_writes_nothing(project, tmp_path):
    build_project(project)
    bk = tmp_path / "bk"
    _cli("backup", str(project.root), str(bk))
    manifest = json.loads((bk / "manifest.json").read_text())
    blob = next(rel for rel in manifest["files"] if rel.startswith("blobs/"))
    data = bytearray((bk / blob).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (bk / blob).write_bytes(bytes(data))
    line = _fails("restore", str(bk), str(tmp_path / "new"))
    assert blob in line and "sha256" in line and "nothing was restored" in line
    assert not (tmp_path / "new").exists()
    data[len(data) // 2] ^= 0x01
    (bk / blob).write_bytes(bytes(data))
    db = next(rel for rel in manifest["files"] if not rel.startswith("blobs/"))
    (bk / db).unlink()
    line = _fails("restore", str(bk), str(tmp_path / "new"))
    assert "missing from the backup" in line and db in line
    assert not (tmp_path / "new").exists()
    assert "not an irbis backup" in _fails("restore", str(tmp_path), str(tmp_path / "new"))


def test_check_and_the_app_catch_a_swapped_reference_original(project, tmp_path):
    from fastapi.testclient import TestClient

    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest
    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    card = tmp_path / "card"
    shutil.copytree(need_data(*CAMTRAPR, "pictures", "sample_images_species_dir"), card)
    import_registry(project, need_data(*CAMTRAPR, "oracle", "camtraps.csv"), date_format="%d/%m/%Y")
    ingest(project, card, layout="station/species", storage="reference")
    root = str(project.root)
    assert json.loads(_cli("check", root, "--json"))["ok"]
    with project.session() as s:
        rows = s.execute(
            select(Media.id, Media.stored_path)
            .where(Media.mediatype == "image", Media.storage == "reference")
            .order_by(Media.id)
            .limit(2)
        ).all()
    (swapped_id, swapped), (good_id, good) = rows
    # Another real photo of the same size put in its place (what a careless or
    # hostile copy does); the size alone cannot tell.
    from pathlib import Path

    size = Path(swapped).stat().st_size
    Path(swapped).write_bytes((Path(good).read_bytes() * 2)[:size])

    c = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
    try:
        r = c.get(f"/api/media/{swapped_id}/file")
        assert r.status_code == 415
        assert "not the file ingested" in r.json()["detail"] and "irbis check" in r.json()["detail"]
        assert c.get(f"/api/media/{swapped_id}/thumb").status_code == 415
        assert c.get(f"/api/media/{good_id}/file").status_code == 200
    finally:
        c.close()

    res = CliRunner().invoke(app, ["check", root, "--json"])
    assert res.exit_code == 1
    rep = json.loads(res.stdout)
    assert [(p["kind"], p["media_id"], p["path"]) for p in rep["problems"]] == [
        ("swapped", swapped_id, swapped)
    ]
    # --quick reads sizes only: same size, so it cannot see this one.
    assert json.loads(_cli("check", root, "--quick", "--json"))["ok"]

    # A dangling reference, written with the database's checks off (a hand edit).
    if project.engine.dialect.name == "postgresql":
        with project.engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            obs = conn.execute(select(Observation.id).limit(1)).scalar()
            conn.execute(update(Observation).where(Observation.id == obs).values(media_id=999999))
    else:
        import sqlite3

        db = sqlite3.connect(project.engine.url.database)  # foreign keys off by default
        with db:
            db.execute(
                "UPDATE observations SET media_id = 999999 "
                "WHERE id = (SELECT min(id) FROM observations)"
            )
        db.close()
    res = CliRunner().invoke(app, ["check", root, "--quick"])
    assert res.exit_code == 1
    assert "observations.media_id: 1 row(s) name a media row that does not exist" in res.stdout
