"""``irbis models train reid|species --ray``: a local 2-worker Ray cluster on real photos.

Every Ray run is compared with the single-process run of the same project:
reid (real Tajik snow-leopard crops of three cats), the same evidence per
confirmed crop, so the same fitted weights and held-out figures; species
(camtrapR's species folders, as tests/test_species_classifier.py), the same
embeddings, so the same head and held-out figures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from irbis.pipeline.cluster_train import RayEmbedder, confirmed_matches_ray
from irbis.pipeline.species_stage import train_species
from irbis.pipeline.train_reid import confirmed_matches, train_reid_ranking
from irbis.store import Project

from .test_species_classifier import _card, _project
from .test_train_reid import _season

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")

#: Three cats seen in two encounters each (two frames per encounter): 12 crops,
#: the fewest that train and judge a ranking.
CATS = ("Cat2", "Cat4", "Cat21")
BATCH = 3  # crops per Ray task: 4 tasks per phase

#: Timings in a training summary: everything else must be equal.
TIMINGS = ("match_seconds", "train_seconds")


def _outcome(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in TIMINGS}


def _frames(sm: Any) -> str:
    return json.dumps(sm.as_dict(), sort_keys=True)


@pytest.fixture(scope="module")
def reid_reference(tmp_path_factory) -> tuple[Path, str, dict[str, Any]]:
    """A project of confirmed cats (features cached by identify), one process's answers."""
    root = tmp_path_factory.mktemp("ray-train-reid")
    path = root / "p"
    p = Project.init(path)
    _season(root, p, cats=CATS)
    p.close()
    # The features identify cached are those training reads (same crops, same
    # cache): one process reads them; the first Ray test removes them first.
    single = shutil.copytree(path, root / "single")
    seen: list[Any] = []

    def matches(q: Project, progress: Any) -> Any:
        seen.append(confirmed_matches(q, progress))  # the single-process run, kept
        return seen[-1]

    with Project.open(single) as q:
        outcome = train_reid_ranking(q, install=False, matches=matches)
    sm, errors = seen[0]
    assert not errors and len(sm.frames) == len(CATS) * 2 * 2
    assert "held_out" in outcome.summary  # trained and judged, not refused for too few cats
    return path, _frames(sm), _outcome(outcome.as_dict())


def test_reid_workers_killed_in_both_phases_same_matches_as_one_process(
    reid_reference, ray_cluster, tmp_path
):
    fresh, frames, expected = reid_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    shutil.rmtree(path / "tmp" / "reid")  # every feature is extracted by the workers
    kills = tmp_path / "kills"
    kills.mkdir()

    def die_twice(annotation_ids: list[int]) -> None:
        # Runs in the worker: the first attempt at the first batch of each phase
        # (features: whole bursts, 4 crops; matching: 3 crops) kills its process.
        marker = kills / "-".join(map(str, annotation_ids))
        if min(annotation_ids) == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    stats: list[dict[str, Any]] = []
    ticks: list[int] = []
    with Project.open(path) as p:
        sm, errors = confirmed_matches_ray(
            p,
            batch_size=BATCH,
            hook=die_twice,
            stats=stats,
            progress=lambda done, total: ticks.append(done),
        )
    assert not errors
    # Per first batch (its crops), the process killed running it.
    killed = {len(f.name.split("-")): int(f.read_text()) for f in kills.iterdir()}
    assert len(killed) == 2, "a worker was not killed in each phase"
    n = len(CATS) * 2 * 2
    for phase in ("features", "match"):
        done = [st for st in stats if st["phase"] == phase]
        # Every crop once: the retried batch came back once, from another process.
        assert sum(st["crops"] for st in done) == n
        first = next(st for st in done if st["batch"] == 0)
        assert first["pid"] != killed[first["crops"]]
    assert ticks == sorted(ticks) and ticks[-1] == n
    assert _frames(sm) == frames


def test_reid_training_on_ray_fits_what_one_process_fits(reid_reference, ray_cluster, tmp_path):
    fresh, _, expected = reid_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    with Project.open(path) as p:
        # Ray is up: it is reused.
        matches = partial(confirmed_matches_ray, address="local:2", batch_size=BATCH)
        outcome = train_reid_ranking(p, install=False, matches=matches)
    assert _outcome(outcome.as_dict()) == expected


def test_cli_train_reid_ray(reid_reference, ray_cluster, tmp_path, monkeypatch):
    from irbis.cli.app import app

    fresh, _, expected = reid_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    monkeypatch.setenv("IRBIS_RAY_ADDRESS", "local:2")  # Ray is up: it is reused
    res = CliRunner().invoke(
        app, ["models", "train", "reid", str(path), "--no-install", "--batch-size", "5", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert _outcome(json.loads(res.stdout)) == expected


# -- species ---------------------------------------------------------------------------------

#: camtrapR photos per (station, species folder): 12 crops of 4 species at 3 stations.
PICK = {
    ("StationA", "PBE"): 2,
    ("StationA", "VTA"): 2,
    ("StationB", "MNE"): 2,
    ("StationB", "VTA"): 2,
    ("StationC", "TRA"): 2,
    ("StationC", "PBE"): 2,
}
#: Timings in a species training summary: everything else must be equal.
SPECIES_TIMINGS = ("training_seconds",)


def _species(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in SPECIES_TIMINGS}
    out["embedding"] = {k: v for k, v in doc["embedding"].items() if k != "seconds"}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _embeddings(path: Path) -> dict[str, bytes]:
    """Every cached crop embedding of a project, by crop key."""
    (db,) = (path / "cache" / "species-embeddings").glob("*.sqlite")
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT key, vec FROM emb"))


@pytest.fixture(scope="module")
def species_reference(tmp_path_factory) -> tuple[Path, dict[str, Any], dict[str, bytes]]:
    """A project of labelled camtrapR photos, and one process's training and embeddings."""
    root = tmp_path_factory.mktemp("ray-train-species")
    _project(root / "p", _card(root / "card", PICK)).close()
    single = shutil.copytree(root / "p", root / "single")
    with Project.open(single) as p:
        outcome = train_species(p, install=False)
    assert outcome.summary["embedding"]["embedded"] > 0
    return root / "p", _species(outcome.as_dict()), _embeddings(single)


def test_species_worker_killed_same_embeddings_and_head_as_one_process(
    species_reference, ray_cluster, tmp_path
):
    fresh, expected, vectors = species_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    marker = tmp_path / "killed"

    def die_once(media_ids: list[int]) -> None:
        # Runs in the worker: the first attempt at the first batch kills its process.
        if min(media_ids) == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    stats: list[dict[str, Any]] = []
    with Project.open(path) as p:
        outcome = train_species(
            p, install=False, embed_files=RayEmbedder(batch_size=4, hook=die_once, stats=stats)
        )
    assert marker.exists(), "the worker was not killed"
    first = next(st for st in stats if st["batch"] == 0)
    assert first["pid"] != int(marker.read_text())  # redone by another process
    # Every crop embedded once; the cache written by the driver alone, the same vectors.
    assert sum(st["crops"] for st in stats) == expected["embedding"]["embedded"]
    assert _embeddings(path) == vectors
    assert _species(outcome.as_dict()) == expected


def test_cli_train_species_ray(species_reference, ray_cluster, tmp_path, monkeypatch):
    from irbis.cli.app import app

    fresh, expected, vectors = species_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    # All but three crops cached already: the workers embed those, the rest is read.
    cache = Path("cache", "species-embeddings")
    shutil.copytree(fresh.parent / "single" / cache, path / cache)
    (db,) = (path / cache).glob("*.sqlite")
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM emb WHERE key IN (SELECT key FROM emb ORDER BY key LIMIT 3)")
    res = CliRunner().invoke(
        app,
        ["models", "train", "species", str(path), "--no-install", "--ray", "local:2", "--json"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["embedding"]["cached"], doc["embedding"]["embedded"]) == (len(vectors) - 3, 3)
    # The same head and figures; the counts differ only in what was cached.
    doc["embedding"] = expected["embedding"]
    assert _species(doc) == expected
    assert _embeddings(path) == vectors


def test_unreachable_cluster_is_one_line_for_both_trainings(species_reference, tmp_path):
    """Nothing listens at the address: one line naming it, exit 2, for reid and species."""
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"127.0.0.1:{port}"
    fresh, _, _ = species_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    for kind in ("reid", "species"):
        # A process of its own: this one holds the module's Ray instance, which is reused.
        res = subprocess.run(
            [sys.executable, "-m", "irbis", "models", "train", kind, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "IRBIS_RAY_ADDRESS": address, "COLUMNS": "400"},
        )
        assert res.returncode == 2, res.stderr
        errors = [line for line in res.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and address in errors[0], res.stderr
