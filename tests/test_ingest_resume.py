"""Killing an ingest midway and running it again ends where one clean run ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import BATCH_SIZE, ingest
from irbis.store import Project
from irbis.store.schema import Deployment, Media, MediaGroup, Observation

from .cards import write_card

STATIONS = ["SLG-01", "SLG-02"]


def _new_project(root: Path, db_url: str | None) -> Project:
    p = Project.init(root, db_url=db_url)
    save_registry(
        p,
        [StationRecord(name=s) for s in STATIONS],
        [
            DeploymentRecord(
                code=f"{s}-A",
                station=s,
                start=datetime(2026, 1, 1),
                end=datetime(2026, 6, 1),
                timezone="Asia/Barnaul",
            )
            for s in STATIONS
        ],
    )
    return p


def _state(p: Project) -> dict:
    with p.session() as s:
        groups = {
            g.id: (g.kind, g.start_utc, g.end_utc, g.n_media) for g in s.scalars(select(MediaGroup))
        }
        media = {}
        for m, code in s.execute(
            select(Media, Deployment.code).join(Deployment, Media.deployment_id == Deployment.id)
        ):
            media[m.sha256] = (
                code,
                m.source_relpath,
                m.stored_path,
                m.timestamp_local,
                m.timestamp_utc,
                m.time_flag,
                groups.get(m.sequence_id),
                groups.get(m.event_id),
            )
        obs = sorted(
            (o.media_id is not None, o.species, o.source) for o in s.scalars(select(Observation))
        )
    blobs = sorted(str(x.relative_to(p.blob_dir)) for x in p.blob_dir.rglob("*") if x.is_file())
    return {"media": media, "groups": sorted(groups.values()), "obs": obs, "blobs": blobs}


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from irbis.store import Project
    from irbis.ingest.runner import ingest
    stop_after = int(sys.argv[3])
    def progress(done, total, rel):
        if done == stop_after:
            os.kill(os.getpid(), signal.SIGKILL)
    ingest(Project.open(sys.argv[1]), sys.argv[2], progress=progress)
    """
)


def test_kill_and_rerun_equals_clean_run(tmp_path, backend, request):
    card = tmp_path / "card"
    files = write_card(card, STATIONS, start=datetime(2026, 2, 1), events=30, burst=3)
    assert len(files) == 180 > 2 * BATCH_SIZE

    clean = _new_project(tmp_path / "clean", backend)
    ingest(clean, card)
    want = _state(clean)
    clean.close()
    if backend is not None:
        backend = _second_pg(request)  # a second fresh database for the interrupted run

    killed = _new_project(tmp_path / "killed", backend)
    stop = BATCH_SIZE + 30  # one batch committed, the next half done
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(killed.root), str(card), str(stop)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    partial = _state(killed)
    assert 0 < len(partial["media"]) < len(want["media"])

    res = ingest(killed, card)
    assert res.n_duplicate == len(partial["media"])
    assert _state(killed) == want
    # Reruns change nothing and leave no partial files behind.
    again = ingest(killed, card)
    assert again.n_new == 0 and _state(killed) == want
    assert not any(killed.tmp_dir.iterdir())
    killed.close()


def _second_pg(request) -> str:
    import uuid

    import psycopg

    admin = request.getfixturevalue("pg_server")
    name = f"irbis_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return admin.rsplit("/", 1)[0] + "/" + name


def test_cli_json_outputs(tmp_path):
    """`irbis init/registry/ingest/status/effort --json` as a script would use them."""
    card = tmp_path / "card"
    write_card(card, STATIONS, start=datetime(2026, 2, 1), events=4, burst=2)
    reg = tmp_path / "registry.csv"
    reg.write_text(
        "station,deployment,start,end,timezone,x,y,crs\n"
        "SLG-01,SLG-01-A,2026-01-10T12:00:00,2026-03-10T12:00:00,Asia/Barnaul,410000,5550000,EPSG:32646\n"
        "SLG-02,SLG-02-A,2026-01-10T12:00:00,2026-03-10T12:00:00,Asia/Barnaul,412000,5551000,EPSG:32646\n"
    )
    proj = tmp_path / "proj"
    exe = [sys.executable, "-m", "irbis"]
    env = {**os.environ, "COLUMNS": "120"}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([*exe, *args], capture_output=True, text=True, env=env, timeout=120)
        assert (proc.returncode == 0) == ok, proc.stderr
        return proc

    run("init", str(proj))
    assert json.loads(run("registry", "import", str(proj), str(reg), "--json").stdout) == {
        "stations_new": 2,
        "stations_updated": 0,
        "deployments_new": 2,
        "deployments_updated": 0,
        "changed": [],
    }
    ing = json.loads(run("ingest", str(proj), str(card), "--json").stdout)
    assert ing["new"] == 16 and ing["rejected"] == 0 and ing["duplicates"] == 0
    assert json.loads(run("ingest", str(proj), str(card), "--json").stdout)["new"] == 0
    status = json.loads(run("status", str(proj), "--json").stdout)
    assert status["media"] == 16 and status["stations"] == 2 and status["events"] == 8
    effort = json.loads(run("effort", str(proj), "--json").stdout)
    assert effort["total_trap_nights"] == 2 * 59.0
    report = json.loads(run("ingest", str(proj), "--report", "--json").stdout)
    assert report == {
        "rejected": [],
        "flagged": [],
        "time_sources": {"exif": 16},
        "read_times": [],
    }
    assert status["time_sources"] == {"exif": 16}

    # Mistakes get one line naming the problem, exit code 2, no traceback.
    bad = run("ingest", str(proj), str(tmp_path / "nope"), ok=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "no such file or folder" in bad.stderr
    overlap = tmp_path / "overlap.csv"
    overlap.write_text(
        "station,deployment,start,end,timezone,camera_serial\n"
        "SLG-01,X1,2026-01-10T12:00:00,2026-03-10T12:00:00,UTC,S123\n"
        "SLG-02,X2,2026-02-10T12:00:00,2026-04-10T12:00:00,UTC,S123\n"
    )
    bad = run("registry", "import", str(proj), str(overlap), ok=False)
    assert "Traceback" not in bad.stderr and "overlap" in bad.stderr
    assert json.loads(run("status", str(proj), "--json").stdout)["deployments"] == 2


def test_registry_correction_retimes_ingested_files(tmp_path):
    """Fixing a deployment's clock offset in the registry re-times its files."""
    card = tmp_path / "card"
    write_card(card, STATIONS, start=datetime(2026, 2, 1), events=3, burst=2)
    p = _new_project(tmp_path / "p", None)
    ingest(p, card)
    with p.session() as s:
        before = {m.sha256: m.timestamp_local for m in s.scalars(select(Media))}
    save_registry(
        p,
        [],
        [
            DeploymentRecord(
                code="SLG-01-A",
                station="SLG-01",
                start=datetime(2026, 1, 1),
                end=datetime(2026, 6, 1),
                timezone="Asia/Barnaul",
                clock_offset_s=420,
            )
        ],
        apply_changes=True,  # a changed clock offset is confirmed
    )
    with p.session() as s:
        rows = s.execute(
            select(Media.sha256, Media.taken_raw, Media.timestamp_local, Deployment.code).join(
                Deployment, Media.deployment_id == Deployment.id
            )
        ).all()
    for sha, raw, local, code in rows:
        shift = 420 if code == "SLG-01-A" else 0
        assert (local - raw).total_seconds() == shift
        assert (local - before[sha]).total_seconds() == shift
    p.close()


def test_ctrl_c_says_how_to_resume_and_rerun_completes(tmp_path):
    """Ctrl-C during `irbis ingest`: exit 130, one line saying to rerun; the rerun finishes."""
    import signal
    import sqlite3
    import time

    card = tmp_path / "card"
    files = write_card(card, STATIONS, start=datetime(2026, 2, 1), events=400, burst=3)
    p = _new_project(tmp_path / "p", None)
    db = p.root / "irbis.db"
    p.close()
    def ctrl_c_as_in_a_terminal() -> None:
        # A child inherits an ignored or blocked SIGINT from whatever this test
        # process ran before (libraries do both); a user's shell gives the default.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    parent_sigint = (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, []))
    proc = subprocess.Popen(
        [sys.executable, "-m", "irbis", "ingest", str(tmp_path / "p"), str(card)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,  # noqa: PLW1509 - the test process has no threads forking here
    )
    try:
        committed = 0
        deadline = time.monotonic() + 120
        while committed < BATCH_SIZE and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            with sqlite3.connect(db) as conn:
                committed = conn.execute("select count(*) from media").fetchone()[0]
        assert proc.poll() is None, "the ingest finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (parent_sigint, stderr)
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    with Project.open(tmp_path / "p") as again:
        res = ingest(again, card)
        assert res.n_new + res.n_duplicate == len(files)
        with again.session() as s:
            assert len(s.scalars(select(Media.id)).all()) == len(files)
