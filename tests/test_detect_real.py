"""``irbis detect`` and ``irbis models`` with the real default detector on real frames."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from irbis.cli.detect_cmd import detect, models_app
from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.store import Project
from irbis.store.schema import Media, SequenceVerdict
from irbis.vision.registry import MODELS_ENV, ModelError, install, models_dir

from .conftest import need_data

HERON_DEPLOYMENT = "62c200a9"


@pytest.fixture(scope="module")
def models() -> Path:
    """The default detector installed in the user cache (a no-op when it is there)."""
    try:
        install("mdlite")
    except ModelError as exc:
        if "could not download" in str(exc) and os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"mdlite cannot be installed here: {exc}")
        raise
    return models_dir()


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(detect)
    app.add_typer(models_app, name="models")
    return app


def test_detect_command_on_the_heron_burst(tmp_path, models, monkeypatch):
    pkg = need_data("cameratrap", "camtrap-dp-example")
    monkeypatch.setenv(MODELS_ENV, str(models))
    p = Project.init(tmp_path / "p")
    import_registry(p, pkg / "deployments.csv")
    ingest(p, pkg / "media", deployment=HERON_DEPLOYMENT)
    p.close()
    runner = CliRunner()
    app = _cli()

    res = runner.invoke(app, ["detect", str(tmp_path / "p"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["media_processed"] == 10 and doc["frames"] == 10
    assert doc["model"] == "mdlite" and doc["detector"].startswith("fused:mdlite@")
    assert doc["engine"] in ("openvino-f32", "onnxruntime")  # float32 unless asked otherwise
    assert not doc["errors"]
    # One burst of a grey heron at night: an animal sequence, its best frame one of the ten.
    assert doc["status"]["sequences"] == {"animal": 1}
    with Project.open(tmp_path / "p") as p, p.session() as s:
        v = s.scalars(select(SequenceVerdict)).one()
        best = s.get(Media, v.best_media_id)
        assert v.verdict == "animal" and v.n_media == 10 and best is not None
        assert v.best_score >= 0.1

    # `irbis status` counts blanks and animals per station after detection.
    from irbis.cli.app import app as irbis_app

    st = runner.invoke(irbis_app, ["status", str(tmp_path / "p"), "--json"])
    assert st.exit_code == 0, st.output
    det = json.loads(st.stdout)["detections"]
    assert det["sequences"] == {"animal": 1}
    (row,) = det["per_station"]
    assert row["media"] == 10 and row["animal"] == 10 and row.get("blank", 0) == 0

    again = runner.invoke(app, ["detect", str(tmp_path / "p"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["media_processed"] == 0

    listed = runner.invoke(app, ["models", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(listed.stdout)["models"]}
    assert rows["mdlite"]["status"] == "ok" and rows["mdlite"]["licence"] == "MIT"
    engines = json.loads(listed.stdout)["engines"]
    assert [e["name"] for e in engines if e["default"]] in (["openvino"], ["onnxruntime"])
    assert engines[0]["name"] == "onnxruntime" and engines[0]["version"]
    ok = runner.invoke(app, ["models", "verify", "mdlite", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["models"][0]["ok"]


def test_models_verify_fails_on_a_damaged_copy(tmp_path, models, monkeypatch):
    import shutil

    shutil.copytree(models / "mdlite", tmp_path / "mdlite")
    onnx_file = tmp_path / "mdlite" / "model.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[1000] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    res = CliRunner().invoke(_cli(), ["models", "verify", "--json"])
    assert res.exit_code == 1
    (row,) = json.loads(res.stdout)["models"]
    assert not row["ok"] and "irbis models install mdlite --force" in row["error"]
