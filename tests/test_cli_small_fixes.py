"""Smaller first-week fixes: rejected files read later, records without UNID by default."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

from .cards import jpeg_bytes


def _irbis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irbis", *args], capture_output=True, text=True, timeout=300
    )


def _project(tmp_path):
    proj = tmp_path / "p"
    (tmp_path / "r.csv").write_text(
        "station,deployment,start,end,timezone\n"
        "K1,K1-a,2026-02-01T10:00,2026-03-01T10:00,+07:00\n"
    )
    assert _irbis("init", str(proj)).returncode == 0
    assert _irbis("registry", "import", str(proj), str(tmp_path / "r.csv")).returncode == 0
    return proj


def test_status_forgets_a_rejection_once_the_file_is_ingested(tmp_path):
    proj = _project(tmp_path)
    card = tmp_path / "card" / "K1"
    card.mkdir(parents=True)
    good = jpeg_bytes(datetime(2026, 2, 5, 10), seed=1)
    (card / "IMG_0001.JPG").write_bytes(good[: len(good) // 3])  # a half-copied file
    (card / "IMG_0002.JPG").write_bytes(jpeg_bytes(datetime(2026, 2, 6, 10), seed=2))
    assert _irbis("ingest", str(proj), str(tmp_path / "card")).returncode == 0
    assert json.loads(_irbis("status", str(proj), "--json").stdout)["rejected"] == 1
    (card / "IMG_0001.JPG").write_bytes(good)  # copied again from the camera
    res = _irbis("ingest", str(proj), str(tmp_path / "card"), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["new"] == 1
    status = json.loads(_irbis("status", str(proj), "--json").stdout)
    assert status["rejected"] == 0 and status["media"] == 2
    report = json.loads(_irbis("ingest", str(proj), "--report", "--json").stdout)
    assert report["rejected"] == []
    assert "rejected" not in _irbis("status", str(proj)).stdout


def test_records_leave_unid_out_by_default(tmp_path):
    proj = _project(tmp_path)
    t = datetime(2026, 2, 5, 10)
    for i, sp in enumerate(["UNID", "ibex", "UNID", "snow leopard"]):
        folder = tmp_path / "card" / "K1" / sp
        folder.mkdir(parents=True, exist_ok=True)
        when = t + timedelta(hours=3 * i)
        (folder / f"IMG_{i:04d}.JPG").write_bytes(jpeg_bytes(when, seed=i))
    res = _irbis("ingest", str(proj), str(tmp_path / "card"), "--layout", "station/species")
    assert res.returncode == 0, res.stderr
    doc = json.loads(_irbis("records", str(proj), "--json").stdout)
    assert sorted(r["species"] for r in doc["records"]) == ["ibex", "snow leopard"]
    doc = json.loads(_irbis("records", str(proj), "--exclude", "none", "--json").stdout)
    assert sorted(r["species"] for r in doc["records"]) == ["UNID", "UNID", "ibex", "snow leopard"]
    doc = json.loads(_irbis("records", str(proj), "--exclude", "ibex", "--json").stdout)
    assert sorted(r["species"] for r in doc["records"]) == ["UNID", "UNID", "snow leopard"]
