"""Numbers a reviewer would question: no nan/inf printed, the mask buffer chosen and said,
and `irbis cr fit` on a project and on irbis's own secr export."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from irbis.reports.census import gather_census
from irbis.store import Project

from .test_report import build_leopard_season


def _irbis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irbis", *args], capture_output=True, text=True, timeout=600
    )


NONFINITE = re.compile(r"\b(nan|inf|NaN|Infinity)\b")


def test_cr_fit_says_why_no_interval_instead_of_nan(tmp_path):
    # every animal caught on every occasion: N-hat is the animals caught, no spread
    h = tmp_path / "h.csv"
    h.write_text("ID,1,2,3\n" + "".join(f"A{i},1,1,1\n" for i in range(7)))
    res = _irbis("cr", "fit", str(h))
    assert res.returncode == 0, res.stderr
    assert not NONFINITE.search(res.stdout), res.stdout
    assert "no interval: N̂ sits at the 7 animals caught" in res.stdout
    assert "no AICc: a moment estimator" in res.stdout
    doc = json.loads(_irbis("cr", "fit", str(h), "--json").stdout)
    m0 = next(m for m in doc["models"] if m["model"] == "M0")
    assert m0["N_ucl"] is None and m0["N_ci_reason"].startswith("no interval")
    # a fit that has an interval carries no reason
    h.write_text("ID,1,2,3,4\nA,1,0,0,0\nB,0,1,0,0\nC,0,0,1,0\nD,1,1,0,0\nE,0,0,0,1\nF,0,1,1,0\n")
    doc = json.loads(_irbis("cr", "fit", str(h), "--json", "--models", "M0").stdout)
    (m0,) = doc["models"]
    assert m0["N_ci_reason"] is None and m0["N_lcl"] < m0["N"] < m0["N_ucl"]


@pytest.fixture
def season(tmp_path):
    proj = Project.init(tmp_path / "project")
    with proj:
        build_leopard_season(tmp_path, proj, n_stations=6)
    return tmp_path / "project"


def test_project_and_secr_export_agree_with_the_report(season, tmp_path):
    with Project.open(season) as p:
        census = gather_census(p)
    est = census.estimates
    assert est.mask["rule"] == "suggest.buffer"
    assert est.mask["relative_bias"] <= 0.001

    # SECR: the CLI's default mask is the report's, so HHN gives the report's D
    res = _irbis("secr", "fit", str(season), "--species", "snow leopard", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["mask"]["buffer"] == est.mask["buffer"]
    want = census.estimates.secr["HHN"]["derived"]["D_per_100km2"]["estimate"]
    assert doc["derived"]["D_per_100km2"]["estimate"] == pytest.approx(want, rel=1e-6)
    text = _irbis("secr", "fit", str(season), "--species", "snow leopard").stdout
    assert "suggest.buffer" in text and not NONFINITE.search(text)

    # closed models from the project folder, and from the capthist irbis exports
    k = est.occasion_days
    res = _irbis(
        "cr", "fit", str(season), "--occasion-days", str(k), "--species", "snow leopard", "--json"
    )
    assert res.returncode == 0, res.stderr
    from_project = json.loads(res.stdout)
    assert from_project["n"] == est.n_animals and from_project["occasions"] == est.n_occasions
    out = tmp_path / "secr"
    res = _irbis(
        "export", "secr", str(season), str(out), "--occasion-days", str(k),
        "--species", "snow leopard",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = _irbis("cr", "fit", str(out / "capthist.txt"), "--json")
    assert res.returncode == 0, res.stderr
    from_file = json.loads(res.stdout)
    assert from_file["n"] == from_project["n"]
    assert from_file["occasions"] == from_project["occasions"]
    for a, b in zip(from_file["models"], from_project["models"], strict=True):
        assert a["model"] == b["model"] and a["N"] == pytest.approx(b["N"], rel=1e-9)
    # and the report's closed table is the same fit
    assert est.closed["M0"]["N"] == pytest.approx(from_project["models"][0]["N"], rel=1e-9)

    # one occasion cannot carry a closed model: said in one line
    res = _irbis("export", "secr", str(season), str(tmp_path / "one"))
    assert res.returncode == 0, res.stderr
    res = _irbis("cr", "fit", str(tmp_path / "one" / "capthist.txt"))
    assert res.returncode == 2 and "closed models need at least two" in res.stderr


def test_report_html_has_no_nonfinite_number(season, tmp_path):
    html = tmp_path / "r.html"
    res = _irbis("report", str(season), "--out", str(html))
    assert res.returncode == 0, res.stderr
    text = html.read_text(encoding="utf-8")
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", text, flags=re.S)
    body = re.sub(r"data:[^\"']+", "", body)
    visible = re.sub(r"<[^>]+>", " ", body)
    assert not NONFINITE.search(visible)
    assert "– –" not in visible
    assert "suggest.buffer" in visible and "σ̂" in visible
    assert "identified by their coat patterns" in visible
