"""Originals from an S3-compatible object store: ``irbis blobs push`` and ``--ray --blobs``.

The object store is a real S3 protocol server that the test starts on a free
127.0.0.1 port: moto's standalone server (``moto.server.ThreadedMotoServer``).
irbis talks to it over HTTP with boto3, exactly as to MinIO, Ceph or Garage
(path-style requests, signed with the AWS_* credentials); nothing in irbis is
patched or mocked. The Ray runs use a local cluster of 2 worker processes on
the real snow-leopard frames of ``test_ray_detect`` / ``test_ray_identify``
(and, for ``irbis models train reid|species --ray --blobs``, the projects of
``test_ray_train``), with the project's ``blobs/`` folder renamed away while
they run, so the workers can only read the originals from the object store;
the rows (the matches, the embeddings) must equal those of a single-process run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from irbis.store import Project
from irbis.store.schema import Media

from . import test_ray_detect as rd
from . import test_ray_identify as ri
from .conftest import local_ray
from .test_ray_detect import models  # noqa: F401  (a fixture: the installed detector)
from .test_ray_train import (  # the reference fixtures: one process's training answers
    _embeddings,
    _frames,
    _species,
    reid_reference,  # noqa: F401
    species_reference,  # noqa: F401
)

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'irbis[ray]')")
pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'irbis[s3]')")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")

BUCKET = "irbis-originals"
KEYS = {"access_key": "irbis-test", "secret_key": "irbis-test-secret"}


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """An S3 protocol server on a free 127.0.0.1 port with an empty bucket; its endpoint."""
    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def node_cache(tmp_path_factory) -> Iterator[Path]:
    """The node's cache of fetched originals, named in the environment the workers inherit."""
    import os

    folder = tmp_path_factory.mktemp("node-cache")
    before = os.environ.get("IRBIS_BLOB_CACHE")
    os.environ["IRBIS_BLOB_CACHE"] = str(folder)
    yield folder
    if before is None:
        del os.environ["IRBIS_BLOB_CACHE"]
    else:
        os.environ["IRBIS_BLOB_CACHE"] = before


@pytest.fixture(scope="module")
def ray_cluster(node_cache) -> Iterator[None]:
    """A local Ray cluster with 2 worker processes on 127.0.0.1 (started with the cache set)."""
    with local_ray(2):
        yield


def _mirror(endpoint: str, prefix: str, cache: Path) -> Any:
    from irbis.ingest.blob_mirror import BlobMirror

    return BlobMirror(BUCKET, prefix, endpoint=endpoint, cache_dir=str(cache), **KEYS)


@contextmanager
def _blobs_away(path: Path) -> Iterator[None]:
    """The project's blob folder out of reach (renamed) while the block runs."""
    away = path.parent / "blobs-elsewhere"
    (path / "blobs").rename(away)
    try:
        yield
    finally:
        away.rename(path / "blobs")


@pytest.fixture(scope="module")
def detect_reference(tmp_path_factory, models) -> tuple[Path, dict[str, list[Any]]]:  # noqa: F811
    """A fresh detect project and the rows of a single-process run on a copy of it."""
    from irbis.pipeline.cluster import DetectorSpec
    from irbis.pipeline.detect_stage import run_detect

    root = tmp_path_factory.mktemp("s3-detect")
    fresh = rd._build(root)
    single = shutil.copytree(fresh, root / "single")
    with Project.open(single) as p:
        res = run_detect(p, DetectorSpec().load())
    assert res.media_processed == rd.ENCOUNTERS * rd.PER_ENCOUNTER and not res.errors
    return fresh, rd._rows(single)


def test_push_is_idempotent_resumable_and_checked(detect_reference, s3, tmp_path, monkeypatch):
    import boto3

    from irbis.cli.app import app

    fresh, _ = detect_reference
    n = rd.ENCOUNTERS * rd.PER_ENCOUNTER
    url = f"s3://{BUCKET}/push-test"
    monkeypatch.setenv("IRBIS_S3_ENDPOINT", s3)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["secret_key"])
    monkeypatch.setenv("IRBIS_BLOB_CACHE", str(tmp_path / "cache"))
    cli = CliRunner()

    first = cli.invoke(app, ["blobs", "push", str(fresh), url, "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert (doc["media"], doc["uploaded"], doc["skipped"]) == (n, n, 0)
    again = json.loads(cli.invoke(app, ["blobs", "push", str(fresh), url, "--json"]).stdout)
    assert (again["uploaded"], again["skipped"], again["bytes_uploaded"]) == (0, n, 0)

    # Each object is the original, named by its sha256 in the blob layout.
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1")
    with Project.open(fresh) as p, p.session() as s:
        media = s.scalars(select(Media).order_by(Media.id)).all()
    for m in media:
        obj = client.get_object(Bucket=BUCKET, Key=f"push-test/{m.stored_path}")
        assert hashlib.sha256(obj["Body"].read()).hexdigest() == m.sha256
        assert obj["Metadata"]["sha256"] == m.sha256
    ok = cli.invoke(app, ["blobs", "check", str(fresh), url, "--deep", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["present"] == n

    # One object lost (a push interrupted before it): check names it, push resumes.
    lost = media[4]
    client.delete_object(Bucket=BUCKET, Key=f"push-test/{lost.stored_path}")
    bad = cli.invoke(app, ["blobs", "check", str(fresh), url, "--json"])
    assert bad.exit_code == 1
    missing = json.loads(bad.stdout)["missing"]
    assert missing == [f"media {lost.id} ({lost.file_name}): s3://{BUCKET}/push-test/"
                       f"{lost.stored_path}"]  # fmt: skip
    resumed = json.loads(cli.invoke(app, ["blobs", "push", str(fresh), url, "--json"]).stdout)
    assert (resumed["uploaded"], resumed["skipped"]) == (1, n - 1)
    assert cli.invoke(app, ["blobs", "check", str(fresh), url]).exit_code == 0


def test_cli_detect_on_ray_reads_originals_from_s3(
    detect_reference, s3, ray_cluster, node_cache, tmp_path, monkeypatch
):
    from irbis.cli.app import app
    from irbis.ingest.blob_mirror import push

    fresh, expected = detect_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    with Project.open(path) as p:
        push(p, _mirror(s3, "detect", tmp_path / "unused"))
    monkeypatch.setenv("IRBIS_RAY_ADDRESS", "local:2")  # Ray is up: it is reused
    monkeypatch.setenv("IRBIS_BLOBS_URL", f"s3://{BUCKET}/detect")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["secret_key"])
    with _blobs_away(path):
        res = CliRunner().invoke(
            app, ["detect", str(path), "--batch-size", str(rd.BATCH), "--s3-endpoint", s3, "--json"]
        )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["media_processed"] == rd.ENCOUNTERS * rd.PER_ENCOUNTER and not doc["errors"]
    assert rd._rows(path) == expected
    # The workers fetched every original into their node's cache ($IRBIS_BLOB_CACHE), by sha256.
    fetched = sorted(f for f in node_cache.rglob("*") if f.is_file())
    assert len(fetched) == rd.ENCOUNTERS * rd.PER_ENCOUNTER
    assert all(hashlib.sha256(f.read_bytes()).hexdigest() == f.stem for f in fetched)


def test_corrupt_or_missing_object_is_one_line_naming_media_and_key(
    detect_reference, s3, ray_cluster, tmp_path
):
    import boto3

    from irbis.ingest.blob_mirror import BlobFetchError, blob_refs, push
    from irbis.pipeline.cluster import DetectorSpec, run_detect_ray

    fresh, _ = detect_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    mirror = _mirror(s3, "corrupt", tmp_path / "node-cache")
    client = boto3.client(
        "s3",
        endpoint_url=s3,
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
    )
    with Project.open(path) as p:
        push(p, mirror)
        refs = blob_refs(p)
    victim = sorted(refs.values(), key=lambda r: r.media_id)[0]
    key = f"corrupt/{victim.relpath}"
    data = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, the same size: push would skip it
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(data))

    with Project.open(path) as p, _blobs_away(path), pytest.raises(BlobFetchError) as err:
        run_detect_ray(p, DetectorSpec(), batch_size=rd.BATCH, blobs=mirror)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1
    assert f"media {victim.media_id} ({victim.file_name})" in msg
    assert f"s3://{BUCKET}/{key}" in msg and "corrupt" in msg
    assert not (tmp_path / "node-cache" / victim.relpath).exists()  # never cached

    client.delete_object(Bucket=BUCKET, Key=key)
    with pytest.raises(BlobFetchError) as err:
        mirror.fetch(victim)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and f"s3://{BUCKET}/{key} is not in the object" in msg
    assert f"media {victim.media_id} ({victim.file_name})" in msg and "irbis blobs push" in msg


def test_identify_on_ray_reads_originals_from_s3(s3, ray_cluster, tmp_path_factory):
    from irbis.ingest.blob_mirror import push
    from irbis.pipeline.cluster_identify import run_identify_ray
    from irbis.pipeline.identify_stage import run_identify

    root = tmp_path_factory.mktemp("s3-identify")
    fresh = ri._build(root)
    single = shutil.copytree(fresh, root / "single")
    with Project.open(single) as p:
        run_identify(p)
    expected = ri._rows(single)
    path = shutil.copytree(fresh, root / "ray")
    mirror = _mirror(s3, "identify", root / "node-cache")
    stats: list[dict[str, Any]] = []
    with Project.open(path) as p:
        push(p, mirror)
        with _blobs_away(path):
            res = run_identify_ray(p, batch_size=ri.BATCH, blobs=mirror, stats=stats)
    assert res.queried == len(ri.QUERIES) * ri.PER_ENCOUNTER and not res.errors
    # The catalogue's features came from the workers (and back to the project's cache).
    assert sum(st["crops"] for st in stats if st["phase"] == "catalogue") > 0
    assert ri._rows(path) == expected


# -- training (irbis models train reid|species --ray --blobs) ---------------------------------


def test_reid_training_on_ray_reads_originals_from_s3(
    reid_reference,  # noqa: F811
    s3,
    ray_cluster,
    node_cache,
    tmp_path,
):
    from irbis.ingest.blob_mirror import push
    from irbis.pipeline.cluster_train import confirmed_matches_ray

    fresh, frames, _ = reid_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    shutil.rmtree(path / "tmp" / "reid")  # every feature is extracted by the workers
    mirror = _mirror(s3, "train-reid", node_cache)
    stats: list[dict[str, Any]] = []
    with Project.open(path) as p:
        push(p, mirror)
        with _blobs_away(path):
            sm, errors = confirmed_matches_ray(p, batch_size=3, blobs=mirror, stats=stats)
    assert not errors
    # The features came from the workers, back into the project's cache.
    n = len(sm.frames)
    assert sum(st["crops"] for st in stats if st["phase"] == "features") == n
    assert len(list((path / "tmp" / "reid").iterdir())) >= n
    assert _frames(sm) == frames


def test_cli_species_training_on_ray_reads_originals_from_s3(
    species_reference,  # noqa: F811
    s3,
    ray_cluster,
    tmp_path,
    monkeypatch,
):
    from irbis.cli.app import app
    from irbis.ingest.blob_mirror import push

    fresh, expected, vectors = species_reference
    path = shutil.copytree(fresh, tmp_path / "p")
    with Project.open(path) as p:
        push(p, _mirror(s3, "train-species", tmp_path / "unused"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["secret_key"])
    argv = ["models", "train", "species", str(path), "--no-install", "--ray", "local:2"]
    argv += ["--blobs", f"s3://{BUCKET}/train-species", "--s3-endpoint", s3, "--json"]
    with _blobs_away(path):
        res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["embedding"]["embedded"] == len(vectors)
    assert _species(doc) == expected
    assert _embeddings(path) == vectors
