"""``irbis report PROJECT --out report.html --pdf report.pdf`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from .test_report import assert_self_contained, build_leopard_season


def _irbis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irbis", *args], capture_output=True, text=True, timeout=300
    )


def test_report_command_writes_html_and_pdf(project, tmp_path):
    build_leopard_season(tmp_path, project, n_stations=6)
    assert project.root == tmp_path / "project"  # the CLI reopens it from irbis.json
    html, pdf = tmp_path / "out" / "census.html", tmp_path / "out" / "census.pdf"
    html.parent.mkdir()
    res = _irbis(
        "report", str(tmp_path / "project"), "--out", str(html), "--pdf", str(pdf),
        "--pdf-engine", "matplotlib", "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)  # stdout holds only the JSON; the progress bar is on stderr
    assert doc["html"] == str(html) and doc["pdf"] == str(pdf)
    assert doc["public"] is True and doc["main_species"] == "snow leopard"
    assert {r["kind"] for r in doc["estimates"]} == {"closed", "secr"}
    assert "report" in res.stderr
    assert_self_contained(html.read_text(encoding="utf-8"))
    assert pdf.read_bytes().startswith(b"%PDF")
    assert sorted(f.name for f in html.parent.iterdir()) == ["census.html", "census.pdf"]

    # --precise: the cleared readers' edition, with the station coordinate table
    res = _irbis("report", str(tmp_path / "project"), "--out", str(html), "--precise")
    assert res.returncode == 0, res.stderr
    text = html.read_text(encoding="utf-8")
    assert "Precise edition" in text and 'class="coords"' in text


def test_report_command_bad_project_is_one_line(tmp_path):
    res = _irbis("report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r.html"))
    assert res.returncode == 2
    assert "not an irbis project" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "r.html").exists()
