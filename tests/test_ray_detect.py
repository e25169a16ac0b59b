"""``irbis detect --ray``: a local Ray cluster of 2 workers on real snow-leopard frames.

One Ray instance for the module (starting one takes seconds). Every run is
compared with the single-process run of the same project, row by row: the
same ids, verdicts, boxes and scores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.cluster import DetectorSpec, batches, run_detect_ray
from irbis.pipeline.detect_stage import run_detect
from irbis.store import Project
from irbis.store.schema import DetectionBox, Media, MediaDetection, SequenceVerdict
from irbis.vision.registry import ModelError, install, models_dir

from .conftest import need_data

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")

TAJIK = ("reid", "snowleopard-tajikistan")
ENCOUNTERS = 4  # bursts
PER_ENCOUNTER = 3  # frames each
BATCH = 3  # media per Ray task: 4 tasks


@pytest.fixture(scope="module")
def models() -> Path:
    """The default detector in the user cache (installed from the cache, no download)."""
    try:
        install("mdlite")
    except ModelError as exc:
        if "could not download" in str(exc) and os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"mdlite cannot be installed here: {exc}")
        raise
    return models_dir()


def _build(root: Path) -> Path:
    """A project with real Tajik snow-leopard bursts (times from the file names)."""
    data = need_data(*TAJIK)
    with open(data / "labels.csv") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["path"])
    by_enc: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_enc.setdefault(r["encounter"], []).append(r)
    picked = [e for e in sorted(by_enc) if len(by_enc[e]) >= PER_ENCOUNTER][:ENCOUNTERS]
    card = root / "card"
    card.mkdir(parents=True)
    for e in picked:
        for r in by_enc[e][:PER_ENCOUNTER]:
            stamp = f"{r['date']} {r['time'].replace(':', '-')}"
            shutil.copyfile(data / r["path"], card / f"{stamp} {Path(r['path']).name}")
    registry = root / "registry.csv"
    registry.write_text(
        "station,deployment,start,end,timezone\n"
        "TJ,TJ-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
    )
    p = Project.init(root / "p")
    import_registry(p, registry)
    ingest(p, card, deployment="TJ-2012", time_from="filename", time_patterns=["%Y-%m-%d %H-%M-%S"])
    p.close()
    return root / "p"


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every detect-stage row but its timestamp."""
    with Project.open(path) as p, p.session() as s:
        return {
            "media": [
                (r.id, r.media_id, r.detector, r.model_version, r.verdict, r.max_score)
                + (r.n_boxes, r.n_frames, r.best_frame, r.burst, r.error, json.dumps(r.params))
                for r in s.scalars(select(MediaDetection).order_by(MediaDetection.id))
            ],
            "boxes": [
                (r.id, r.result_id, r.media_id, r.frame, r.time_s, r.category, r.score)
                + (r.x, r.y, r.width, r.height, r.source)
                for r in s.scalars(select(DetectionBox).order_by(DetectionBox.id))
            ],
            "sequences": [
                (r.id, r.sequence_id, r.detector, r.verdict, r.best_media_id, r.best_frame)
                + (r.best_score, r.n_media, r.n_blank, r.n_animal, r.n_person, r.n_vehicle)
                for r in s.scalars(select(SequenceVerdict).order_by(SequenceVerdict.id))
            ],
        }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, models) -> tuple[Path, dict[str, list[tuple[Any, ...]]]]:
    """The fresh project and the rows of a single-process run on a copy of it."""
    root = tmp_path_factory.mktemp("ray")
    fresh = _build(root)
    single = root / "single"
    shutil.copytree(fresh, single)
    with Project.open(single) as p:
        res = run_detect(p, DetectorSpec().load())
    assert res.media_processed == ENCOUNTERS * PER_ENCOUNTER and not res.errors
    rows = _rows(single)
    assert rows["boxes"] and len(rows["sequences"]) == ENCOUNTERS
    return fresh, rows


def _copy(fresh: Path, dst: Path) -> Path:
    shutil.copytree(fresh, dst)
    return dst


def test_batches_keep_sequences_whole():
    from irbis.pipeline.detect_stage import _Item, _Unit

    units = [_Unit(i, [_Item(10 * i + k, "f", "photo", Path("x")) for k in range(n)])
             for i, n in enumerate([5, 1, 1, 2, 70, 1])]  # fmt: skip
    got = batches(units, 4)
    assert [[u.sequence_id for u in b] for b in got] == [[0], [1, 2, 3], [4], [5]]
    assert [u for b in got for u in b] == units


def test_batches_for_workers_finish_together():
    """With ``parts`` workers: a multiple of ``parts`` batches of nearly equal weight."""
    sizes = [12] * 40  # 480 media: 7 batches of 64 would leave a worker idle at the end
    units = list(range(40))
    got = batches(units, 64, weight=sizes.__getitem__, parts=2)
    assert [u for b in got for u in b] == units
    weights = [sum(sizes[u] for u in b) for b in got]
    assert len(got) == 6 and min(weights) >= 64 and max(weights) - min(weights) <= 12
    odd = [5, 30, 2, 2, 40, 9, 1, 33, 17, 8, 8, 8, 60, 4]  # 227 media
    got = batches(list(range(len(odd))), 50, weight=odd.__getitem__, parts=2)
    assert len(got) == 4 and [u for b in got for u in b] == list(range(len(odd)))
    # Too little for two batches per worker: the one-worker cut.
    assert batches(units[:5], 64, weight=sizes.__getitem__, parts=2) == [units[:5]]


def test_worker_killed_mid_batch_same_rows_as_one_process(reference, ray_cluster, tmp_path):
    fresh, expected = reference
    path = _copy(fresh, tmp_path / "p")
    with Project.open(path) as p, p.session() as s:
        # The third burst's first frame: its batch starts while others are running.
        victim = s.scalars(select(Media.id).order_by(Media.timestamp_utc, Media.id)).all()[6]
    marker = tmp_path / "killed"

    def die_once(media_ids: list[int]) -> None:
        # Runs in the worker: the first attempt at the victim's batch kills its process.
        if victim in media_ids and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    ticks: list[int] = []
    stats: list[dict[str, Any]] = []
    with Project.open(path) as p:
        res = run_detect_ray(
            p,
            DetectorSpec(),
            batch_size=BATCH,
            hook=die_once,
            stats=stats,
            progress=lambda done, total, name: ticks.append(done),
        )
    assert marker.exists(), "the worker was not killed"
    killed = int(marker.read_text())
    assert res.media_processed == ENCOUNTERS * PER_ENCOUNTER and not res.errors
    assert len(stats) == ENCOUNTERS  # one result per batch, the retried one included
    # The victim's batch was redone by another (new) worker process.
    assert stats[2]["pid"] != killed
    assert ticks == sorted(ticks) and ticks[-1] == ENCOUNTERS * PER_ENCOUNTER
    assert _rows(path) == expected


def test_driver_interrupted_then_rerun_finishes_without_duplicates(
    reference, ray_cluster, tmp_path
):
    fresh, expected = reference
    path = _copy(fresh, tmp_path / "p")

    def stop_after_first(done: int, total: int, name: str) -> None:
        if done >= PER_ENCOUNTER:  # the first burst is written
            raise KeyboardInterrupt

    with Project.open(path) as p, pytest.raises(KeyboardInterrupt):
        run_detect_ray(p, DetectorSpec(), batch_size=BATCH, progress=stop_after_first)
    part = _rows(path)
    assert 0 < len(part["sequences"]) < ENCOUNTERS
    with Project.open(path) as p:
        res = run_detect_ray(p, DetectorSpec(), batch_size=BATCH)
    assert res.media_done_before == len(part["media"])
    assert res.media_processed == ENCOUNTERS * PER_ENCOUNTER - len(part["media"])
    assert _rows(path) == expected
    with Project.open(path) as p:  # and once more: nothing left to do
        again = run_detect_ray(p, DetectorSpec(), batch_size=BATCH)
    assert again.media_processed == 0
    assert _rows(path) == expected


def test_cli_detect_ray(reference, ray_cluster, tmp_path, monkeypatch):
    import typer

    from irbis.cli.detect_cmd import detect

    fresh, expected = reference
    path = _copy(fresh, tmp_path / "p")
    app = typer.Typer()
    app.command()(detect)
    app.command("noop")(lambda: None)  # more than one command: `detect` is a subcommand
    monkeypatch.setenv("IRBIS_RAY_ADDRESS", "local:2")  # Ray is up: it is reused
    res = CliRunner().invoke(app, ["detect", str(path), "--batch-size", "4", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["media_processed"] == ENCOUNTERS * PER_ENCOUNTER
    assert doc["status"]["sequences"] == dict(Counter(r[3] for r in expected["sequences"]))
    assert _rows(path) == expected


def test_two_core_workers_decode_beside_inference_same_rows(reference, ray_cluster, tmp_path):
    """``worker_cpus=2``: one worker with two inference threads and a decoding thread."""
    fresh, expected = reference
    path = _copy(fresh, tmp_path / "p")
    stats: list[dict[str, Any]] = []
    with Project.open(path) as p:
        res = run_detect_ray(p, DetectorSpec(), batch_size=BATCH, worker_cpus=2, stats=stats)
    assert res.media_processed == ENCOUNTERS * PER_ENCOUNTER
    assert _rows(path) == expected
    assert sum(s["media"] for s in stats) == ENCOUNTERS * PER_ENCOUNTER


def test_more_cores_per_worker_than_any_node_fails_in_one_line(reference, ray_cluster, tmp_path):
    from irbis.pipeline.cluster import RayUnavailableError

    fresh, _ = reference
    path = _copy(fresh, tmp_path / "p")
    with Project.open(path) as p, pytest.raises(RayUnavailableError) as info:
        run_detect_ray(p, DetectorSpec(), batch_size=BATCH, worker_cpus=3)
    msg = str(info.value)
    assert "\n" not in msg and "more than 2 cores" in msg
    with Project.open(path) as p, p.session() as s:  # nothing was written
        assert s.scalar(select(MediaDetection.id).limit(1)) is None
