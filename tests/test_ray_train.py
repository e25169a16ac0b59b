"""``irbis models train reid|species --ray``: a local 2-worker Ray cluster on real Tajik crops.

Every Ray run is compared with the single-process run of the same project:
reid, the same evidence per confirmed crop (so the same fitted weights and
held-out figures); species, the same embeddings (so the same head).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from irbis.pipeline.cluster_train import confirmed_matches_ray
from irbis.pipeline.train_reid import confirmed_matches, train_reid_ranking
from irbis.store import Project

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
    """A project of confirmed cats without cached features, and one process's answers."""
    root = tmp_path_factory.mktemp("ray-train-reid")
    path = root / "p"
    p = Project.init(path)
    _season(root, p, cats=CATS)
    p.close()
    shutil.rmtree(path / "tmp" / "reid")  # identify cached them: the workers extract them
    single = shutil.copytree(path, root / "single")
    with Project.open(single) as q:
        sm, errors = confirmed_matches(q)
        assert not errors and len(sm.frames) == len(CATS) * 2 * 2
        outcome = train_reid_ranking(q, install=False)
    assert "held_out" in outcome.summary  # trained and judged, not refused for too few cats
    return path, _frames(sm), _outcome(outcome.as_dict())


def test_reid_workers_killed_in_both_phases_same_matches_as_one_process(
    reid_reference, ray_cluster, tmp_path
):
    fresh, frames, expected = reid_reference
    path = shutil.copytree(fresh, tmp_path / "p")
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
