"""SECR fits reproduce R secr 2.10.3 on the Tost and Nemegt snow-leopard data."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from irbis.stats.secr import SecrLikelihood, aic_table, secr_fit
from irbis.stats.secr_data import read_captures, read_mask, read_traps

from .conftest import need_data

_CACHE: dict[str, tuple] = {}


def _region(name: str):
    if name not in _CACHE:
        folder = need_data("secr", name)
        traps = read_traps(folder / "traps.csv")
        ch = read_captures(folder / "captures.csv", traps, detector="count")
        mask = read_mask(folder / "mask.csv")
        with (folder / "secr_reference.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        _CACHE[name] = (ch, mask, rows)
    return _CACHE[name]


def _model(r_model: str) -> str:
    """``list(D = ~1, lambda0 = ~Topo, sigma = ~1)`` -> ``D~1 lambda0~Topo sigma~1``."""
    inner = r_model.strip()[len("list(") : -1]
    return " ".join(re.sub(r"\s*=\s*", "", part.strip()) for part in inner.split(","))


CASES = [("tost", i) for i in range(4)] + [("nemegt", i) for i in range(3)]


@pytest.mark.parametrize(("region", "row"), CASES)
def test_reproduces_r_secr(region: str, row: int) -> None:
    ch, mask, rows = _region(region)
    ref = rows[row]
    fit = secr_fit(ch, mask, model=_model(ref["model"]), detectfn=ref["detectfn"])
    names = ref["betanames"].split(";")
    beta = [float(v) for v in ref["beta"].split(";")]
    se = [float(v) for v in ref["beta_se"].split(";")]
    assert fit.names == names
    assert fit.npar == int(ref["npar"])
    assert fit.converged
    assert abs(fit.loglik - float(ref["logLik"])) <= 0.01
    got_b, got_se = fit.beta_dict(), fit.se_dict()
    for n, b, s in zip(names, beta, se, strict=True):
        assert abs(got_b[n] - b) <= 0.01, n
        assert abs(got_se[n] / s - 1) <= 0.03, n


@pytest.mark.parametrize("region", ["tost", "nemegt"])
def test_loglik_at_r_betas_exact(region: str) -> None:
    ch, mask, rows = _region(region)
    for ref in rows:
        lik = SecrLikelihood(ch, mask, model=_model(ref["model"]), detectfn="HHN")
        beta = np.array([float(v) for v in ref["beta"].split(";")])
        assert lik.loglik(beta) == pytest.approx(float(ref["logLik"]), abs=1e-6)


def test_derived_density_and_table() -> None:
    ch, mask, rows = _region("tost")
    fit = secr_fit(ch, mask, model="D~1 lambda0~1 sigma~1", detectfn="HHN")
    d = fit.derived()
    # D~1: the mean density is exp(beta_D); per 100 km^2 = per ha * 1e4
    assert d["D_per_100km2"]["estimate"] == pytest.approx(np.exp(-9.00414) * 1e4, rel=1e-3)
    assert d["N"]["estimate"] == pytest.approx(np.exp(-9.00414) * mask.area, rel=1e-3)
    real = fit.real()
    assert real["D"]["lcl"] < real["D"]["estimate"] < real["D"]["ucl"]
    assert real["sigma"]["estimate"] == pytest.approx(np.exp(8.79811), rel=1e-3)
    doc = fit.to_dict()
    assert set(doc["beta"]) == {"D", "lambda0", "sigma"}
    fit2 = secr_fit(ch, mask, model="D~1 lambda0~Topo sigma~1", detectfn="HHN")
    table = aic_table({"null": fit, "topo": fit2})
    assert table[0]["dAICc"] == 0.0
    assert sum(r["AICcwt"] for r in table) == pytest.approx(1.0)
    # AICc as secr: n = 21 animals
    assert fit.aicc == pytest.approx(-2 * fit.loglik + 6 + 2 * 3 * 4 / (21 - 3 - 1))
