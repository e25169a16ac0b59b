"""`irbis clock --reference FILE --true-time T`: a clock that reset part-way through a card."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from irbis.store import Project
from irbis.store.schema import Media

from .cards import jpeg_bytes


def _irbis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irbis", *args], capture_output=True, text=True, timeout=300
    )


RESET_AT = 7  # IMG_0007 is the first frame after the battery swap
START = datetime(2026, 2, 3, 8, 0)


def true_time(n: int) -> datetime:
    return START + timedelta(hours=9 * n)


def camera_time(n: int) -> datetime:
    if n < RESET_AT:
        return true_time(n)
    return datetime(2000, 1, 1) + (true_time(n) - true_time(RESET_AT))


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "p"
    (tmp_path / "r.csv").write_text(
        "station,deployment,start,end,timezone\n"
        "K1,K1-a,2026-02-01T10:00,2026-03-01T10:00,Asia/Barnaul\n"
    )
    card = tmp_path / "card" / "K1"
    card.mkdir(parents=True)
    for n in range(1, 13):
        (card / f"IMG_{n:04d}.JPG").write_bytes(jpeg_bytes(camera_time(n), seed=n))
    assert _irbis("init", str(proj)).returncode == 0
    assert _irbis("registry", "import", str(proj), str(tmp_path / "r.csv")).returncode == 0
    res = _irbis("ingest", str(proj), str(tmp_path / "card"))
    assert res.returncode == 0, res.stderr
    return proj


def _media(proj: Path) -> dict[str, Media]:
    with Project.open(proj) as p, p.session() as s:
        return {m.file_name: m for m in s.scalars(select(Media))}


def test_reset_part_way_fixed_from_one_photo_and_undone(tmp_path):
    proj = _project(tmp_path)
    before = _media(proj)
    assert [n for n, m in sorted(before.items()) if m.time_flag] == [
        f"IMG_{n:04d}.JPG" for n in range(RESET_AT, 13)
    ]
    raw = {n: m.taken_raw for n, m in before.items()}

    # the ranger stood in front of camera K1 in IMG_0009 at a known time
    known = true_time(9)
    res = _irbis(
        "clock", str(proj), "--reference", "K1/IMG_0009.JPG", "--true-time",
        known.isoformat(), "--from-file", f"IMG_{RESET_AT:04d}.JPG", "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["fix"]["files"] == 12 - RESET_AT + 1
    assert doc["trusted_before"] == RESET_AT - 1 and doc["trusted_after"] == 12
    after = _media(proj)
    for n in range(1, 13):
        m = after[f"IMG_{n:04d}.JPG"]
        assert m.time_flag == "" and m.timestamp_local == true_time(n), n
        assert m.taken_raw == raw[m.file_name]  # the camera's reading is never changed
        assert m.sequence_id is not None  # now grouped into bursts

    listed = json.loads(_irbis("clock", str(proj), "--list", "--json").stdout)
    (dep,) = listed["deployments"]
    assert [f["reference"] for f in dep["fixes"]] == ["K1/IMG_0009.JPG"]

    res = _irbis("clock", str(proj), "--deployment", "K1-a", "--undo")
    assert res.returncode == 0, res.stderr
    assert "undid fix 1" in res.stderr
    undone = _media(proj)
    for name, m in undone.items():
        was = before[name]
        assert (m.time_flag, m.timestamp_local) == (was.time_flag, was.timestamp_local)


def test_range_fix_errors_are_one_line(tmp_path):
    proj = _project(tmp_path)
    res = _irbis(
        "clock", str(proj), "--reference", "IMG_0099.JPG", "--true-time", "2026-02-05T10:00"
    )
    assert res.returncode == 2 and "IMG_0099.JPG" in res.stderr and "Traceback" not in res.stderr
    res = _irbis(
        "clock", str(proj), "--reference", "IMG_0009.JPG", "--true-time", "yesterday"
    )
    assert res.returncode == 2 and "not an ISO time" in res.stderr
    res = _irbis(
        "clock", str(proj), "--reference", "IMG_0009.JPG", "--true-time", "2026-02-06T10:00",
        "--from-file", "IMG_0010.JPG", "--to-file", "IMG_0008.JPG",
    )  # fmt: skip
    assert res.returncode == 2 and "swap them" in res.stderr
    res = _irbis("clock", str(proj), "--deployment", "K1-a", "--undo")
    assert res.returncode == 2 and "no file-range clock fix" in res.stderr
