"""``irbis secr fit`` / ``irbis cr fit`` through Typer's test runner."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from irbis.cli.stats_cmd import secr_app

from .conftest import need_data

runner = CliRunner()


def test_secr_fit_json_matches_reference() -> None:
    folder = need_data("secr", "nemegt")
    res = runner.invoke(
        secr_app,
        [
            "fit",
            "--traps", str(folder / "traps.csv"),
            "--captures", str(folder / "captures.csv"),
            "--mask", str(folder / "mask.csv"),
            "--detector", "count",
            "--detectfn", "HHN",
            "--model", "D~1 lambda0~1 sigma~1",
            "--json",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    with (folder / "secr_reference.csv").open() as fh:
        ref = next(csv.DictReader(fh))
    assert doc["logLik"] == pytest.approx(float(ref["logLik"]), abs=0.01)
    assert doc["npar"] == 3
    assert set(doc["beta"]) == set(doc["beta_se"]) == {"D", "lambda0", "sigma"}
    assert doc["beta"]["D"] == pytest.approx(-9.302442, abs=0.01)
    assert doc["real"]["sigma"]["lcl"] < doc["real"]["sigma"]["estimate"]
    assert doc["density_per_100km2"] == pytest.approx(doc["derived"]["D_per_100km2"]["estimate"])
    assert "AICc" in doc and "AIC" in doc


def test_secr_fit_bad_trap_is_one_line(tmp_path) -> None:
    folder = need_data("secr", "nemegt")
    cap = tmp_path / "captures.csv"
    cap.write_text("ID,occasion,trapID,count\nA,1,SLT014,1\nB,1,NOPE,2\n")
    res = runner.invoke(
        secr_app,
        ["fit", "--traps", str(folder / "traps.csv"), "--captures", str(cap), "--json"],
    )
    assert res.exit_code == 2
    assert "unknown trapID 'NOPE'" in res.output
    assert "captures.csv:3" in res.output
    assert "Traceback" not in res.output


def test_secr_fit_human_output_and_conditional_likelihood() -> None:
    folder = need_data("secr", "tost")
    args = ["fit", "--traps", str(folder / "traps.csv"), "--captures", str(folder / "captures.csv")]
    args += ["--mask", str(folder / "mask.csv"), "--model", "lambda0~Water"]
    res = runner.invoke(secr_app, args)
    assert res.exit_code == 0, res.output
    assert "lambda0.WaterYes" in res.output and "logLik -251.91" in res.output
    res = runner.invoke(secr_app, args + ["--likelihood", "CL", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["likelihood"] == "conditional" and "D" not in doc["beta"]
    # same detection coefficients as the full likelihood with D~1 (R: -0.1110, 0.3907, 8.8085)
    assert doc["beta"]["lambda0.WaterYes"] == pytest.approx(0.3907488, abs=0.01)
    assert doc["derived"]["D_per_100km2"]["estimate"] == pytest.approx(
        np.exp(-8.9986496) * 1e4, rel=0.01
    )
