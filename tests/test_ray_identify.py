"""``irbis identify --ray``: a local Ray cluster of 2 workers on real snow-leopard frames.

Two cats of the Tajik set: one encounter each is labelled with its name (the
catalogue), three later encounters at other stations or dates are matched.
Every Ray run is compared with the single-process run of the same project, row
by row: the same annotations, and the same proposals (ids, ranks, scores,
probabilities, keypoints).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.cluster import RayUnavailableError, check_reachable
from irbis.pipeline.cluster_identify import run_identify_ray
from irbis.pipeline.identify_stage import MODEL, run_identify
from irbis.store import Project
from irbis.store.schema import Annotation, Individual, MatchDecision, Media, Observation

from .conftest import need_data

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")

TAJIK = ("reid", "snowleopard-tajikistan")
CATALOGUE = {"S04C1_2012-07-05": "Cat1", "S05C1_2012-07-16": "Cat23"}
QUERIES = ("S12C2_2012-06-14", "S13C1_2012-08-16", "S05C1_2012-09-10")
PER_ENCOUNTER = 3  # frames of each burst
BATCH = 3  # crops per Ray task: one burst each, 3 tasks


def _build(root: Path) -> Path:
    """A project of five real bursts at four stations, two of them named by a person."""
    data = need_data(*TAJIK)
    with open(data / "labels.csv") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: (r["date"], r["time"], r["path"]))
    picked: dict[str, list[dict[str, str]]] = {e: [] for e in (*CATALOGUE, *QUERIES)}
    for r in rows:
        if r["encounter"] in picked and len(picked[r["encounter"]]) < PER_ENCOUNTER:
            picked[r["encounter"]].append(r)
    stations = sorted({e.split("C")[0] for e in picked})
    registry = root / "registry.csv"
    registry.write_text(
        "station,deployment,start,end,timezone\n"
        + "".join(
            f"{s},{s}-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
            for s in stations
        )
    )
    p = Project.init(root / "p")
    import_registry(p, registry)
    named: dict[str, str] = {}
    for station in stations:
        card = root / "cards" / station
        card.mkdir(parents=True)
        for enc, rs in picked.items():
            if not enc.startswith(station + "C"):
                continue
            for r in rs:
                name = f"{r['date']} {r['time'].replace(':', '-')} {Path(r['path']).name}"
                shutil.copyfile(data / r["path"], card / name)
                if enc in CATALOGUE:
                    named[name] = CATALOGUE[enc]
        ingest(
            p,
            card,
            deployment=f"{station}-2012",
            time_from="filename",
            time_patterns=["%Y-%m-%d %H-%M-%S"],
        )
    now = datetime(2026, 12, 6)
    with p.session() as s:
        for m in s.scalars(select(Media).order_by(Media.id)):
            s.add(
                Observation(
                    media_id=m.id,
                    species="Panthera uncia",
                    individual=named.get(m.file_name, ""),
                    source="human",
                    by="tester",
                    created_utc=now,
                )
            )
        s.commit()
    p.close()
    return root / "p"


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the identify stage writes, but timestamps."""
    with Project.open(path) as p, p.session() as s:
        return {
            "individuals": [(r.id, r.name) for r in s.scalars(select(Individual))],
            "annotations": [
                (r.id, r.media_id, r.frame, r.x, r.y, r.width, r.height, r.source)
                + (r.individual_id, r.side, r.quality)
                for r in s.scalars(select(Annotation).order_by(Annotation.id))
            ],
            "proposals": [
                (r.id, r.annotation_id, r.individual_id, r.decision, r.rank, r.score)
                + (r.probability, r.side, r.by, json.dumps(r.matches, sort_keys=True))
                for r in s.scalars(select(MatchDecision).order_by(MatchDecision.id))
            ],
        }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, list[tuple[Any, ...]]]]:
    """The fresh project and the rows of a single-process identify on a copy of it."""
    root = tmp_path_factory.mktemp("ray-identify")
    fresh = _build(root)
    single = root / "single"
    shutil.copytree(fresh, single)
    with Project.open(single) as p:
        res = run_identify(p)
    assert res.catalogue_individuals == len(CATALOGUE) and not res.errors
    assert res.queried == len(QUERIES) * PER_ENCOUNTER
    rows = _rows(single)
    # Not a trivial answer: real candidates with scores and keypoints.
    assert any(r[5] and r[5] > 0 and json.loads(r[9])["query_xy"] for r in rows["proposals"])
    return fresh, rows


def test_worker_killed_mid_batch_same_proposals_as_one_process(reference, ray_cluster, tmp_path):
    fresh, expected = reference
    path = shutil.copytree(fresh, tmp_path / "p")
    marker = tmp_path / "killed"
    with Project.open(path) as p, p.session() as s:
        # The second query burst (bursts are matched in media order): its first frame.
        victim_media = min(
            s.scalars(select(Media.id).where(Media.file_name.contains("2012-06-14"))).all()
        )
    victim = next(a[0] for a in expected["annotations"] if a[1] == victim_media)

    def die_once(annotation_ids: list[int]) -> None:
        # Runs in the worker: the first attempt at the victim's batch kills its process.
        if victim in annotation_ids and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    ticks: list[int] = []
    stats: list[dict[str, Any]] = []
    with Project.open(path) as p:
        res = run_identify_ray(
            p,
            batch_size=BATCH,
            hook=die_once,
            stats=stats,
            progress=lambda done, total: ticks.append(done),
        )
    assert marker.exists(), "the worker was not killed"
    killed = int(marker.read_text())
    assert res.queried == len(QUERIES) * PER_ENCOUNTER and not res.errors
    match = [st for st in stats if st["phase"] == "match"]
    assert len(match) == len(QUERIES)  # one result per batch, the retried one included
    assert killed not in {st["pid"] for st in match}  # redone by another worker process
    # The catalogue's features were extracted by the workers, not the driver.
    named = sum(1 for a in expected["annotations"] if a[8] is not None)
    assert sum(st["crops"] for st in stats if st["phase"] == "catalogue") == named > 0
    assert ticks == sorted(ticks) and ticks[-1] == len(QUERIES) * PER_ENCOUNTER
    assert _rows(path) == expected


def test_driver_interrupted_then_rerun_finishes_without_duplicates(
    reference, ray_cluster, tmp_path
):
    fresh, expected = reference
    path = shutil.copytree(fresh, tmp_path / "p")

    def stop_after_first(done: int, total: int) -> None:
        if done >= PER_ENCOUNTER:  # the first burst is written
            raise KeyboardInterrupt

    with Project.open(path) as p, pytest.raises(KeyboardInterrupt):
        run_identify_ray(p, batch_size=BATCH, progress=stop_after_first)
    part = _rows(path)
    n_part = len({r[1] for r in part["proposals"]})
    assert n_part == PER_ENCOUNTER  # one whole burst, nothing of the others
    with Project.open(path) as p:
        res = run_identify_ray(p, batch_size=BATCH)
    assert res.skipped == n_part and res.queried == (len(QUERIES) - 1) * PER_ENCOUNTER
    assert _rows(path) == expected
    with Project.open(path) as p:  # and once more: nothing left to do
        again = run_identify_ray(p, batch_size=BATCH)
    assert again.queried == 0
    assert _rows(path) == expected


def test_cli_identify_ray(reference, ray_cluster, tmp_path, monkeypatch):
    import typer

    from irbis.cli.identify_cmd import identify

    fresh, expected = reference
    path = shutil.copytree(fresh, tmp_path / "p")
    app = typer.Typer()
    app.command()(identify)
    app.command("noop")(lambda: None)  # more than one command: `identify` is a subcommand
    monkeypatch.setenv("IRBIS_RAY_ADDRESS", "local:2")  # Ray is up: it is reused
    res = CliRunner().invoke(app, ["identify", str(path), "--batch-size", "4", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["queried"] == len(QUERIES) * PER_ENCOUNTER
    assert _rows(path) == expected
    assert all(r[8] == MODEL for r in expected["proposals"])


def test_unreachable_cluster_is_one_line_at_once(reference, tmp_path):
    """Nothing listens at the address: a one-line error in seconds, nothing written."""
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"127.0.0.1:{port}"
    with pytest.raises(RayUnavailableError, match=f"no Ray cluster at '{address}'"):
        check_reachable(address)
    fresh, _ = reference
    path = shutil.copytree(fresh, tmp_path / "p")
    t0 = time.perf_counter()
    # A process of its own: this one may hold the module's Ray instance, which is reused.
    res = subprocess.run(
        [sys.executable, "-m", "irbis", "identify", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IRBIS_RAY_ADDRESS": address, "COLUMNS": "400"},
    )
    assert time.perf_counter() - t0 < 60  # the import and start, not Ray's minutes of retries
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and address in errors[0] and "ray-local start" in errors[0], res.stderr
    with Project.open(path) as p, p.session() as s:
        assert s.scalar(select(Annotation.id)) is None  # refused before any work


@pytest.mark.slow
def test_ray_local_script_cluster_serves_the_cli(reference, tmp_path):
    """scripts/ray-local starts a head with 2 workers, the CLI runs on it, stop ends it."""
    import subprocess
    import sys

    from .ray_local import ray_local

    with ray_local(2) as cluster:
        assert f"IRBIS_RAY_ADDRESS=127.0.0.1:{cluster.port}" in cluster.started
        fresh, expected = reference
        path = shutil.copytree(fresh, tmp_path / "p")
        res = subprocess.run(
            [sys.executable, "-m", "irbis", "identify", str(path), "--batch-size", "3"],
            env={**cluster.env, "IRBIS_RAY_ADDRESS": f"127.0.0.1:{cluster.port}"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr
        assert _rows(path) == expected
        pid = int((cluster.state / "head.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the head is gone
