"""Closed-population models: CI coverage on simulated data, readers, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from irbis.cli.stats_cmd import cr_app
from irbis.core.errors import BadInputError
from irbis.stats.closed import (
    aicc_table,
    chao_mh,
    closed_fit,
    read_cr_history,
    simulate_closed,
)

N_TRUE = 120


def _coverage(model: str, sim, n_sims: int = 100, seed: int = 7) -> tuple[int, float]:
    rng = np.random.default_rng(seed)
    hits, est = 0, []
    for _ in range(n_sims):
        X, kw = sim(rng)
        f = closed_fit(X, model, **kw)
        hits += f.covers(N_TRUE)
        est.append(f.N)
    return hits, float(np.median(est))


@pytest.mark.parametrize(
    ("model", "sim"),
    [
        ("M0", lambda r: (simulate_closed(N_TRUE, 6, 0.2, rng=r), {})),
        ("Mt", lambda r: (simulate_closed(N_TRUE, 5, [0.1, 0.3, 0.2, 0.25, 0.15], rng=r), {})),
        ("Mb", lambda r: (simulate_closed(N_TRUE, 6, 0.2, c=0.35, rng=r), {})),
        ("Mh_chao", lambda r: (simulate_closed(N_TRUE, 6, mixture=(0.15, 0.35, 0.5), rng=r), {})),
    ],
)
def test_ci_coverage_near_nominal(model: str, sim) -> None:
    hits, med = _coverage(model, sim)
    assert 88 <= hits <= 99, hits
    assert abs(med - N_TRUE) < 0.1 * N_TRUE


def _huggins_sim(rng: np.random.Generator):
    sex = rng.random(N_TRUE) < 0.5
    weight = rng.normal(0, 1, N_TRUE)
    p = 1 / (1 + np.exp(-(-1.5 + 0.8 * sex + 0.4 * weight)))
    X = (rng.random((N_TRUE, 6)) < p[:, None]).astype(float)
    keep = X.sum(axis=1) > 0
    covs = {"sex": np.where(sex[keep], "M", "F"), "weight": weight[keep]}
    return X[keep], {"formula": "p~sex+weight", "covariates": covs}


def test_huggins_covariates_coverage() -> None:
    hits, med = _coverage("huggins", _huggins_sim)
    assert 88 <= hits <= 99, hits
    X, kw = _huggins_sim(np.random.default_rng(3))
    f = closed_fit(X, "huggins", **kw)
    assert f.names == ["p", "p.sexM", "p.weight"]
    assert f.beta[1] > 0 and f.beta[2] > 0


def test_mixture_and_table() -> None:
    X = simulate_closed(N_TRUE, 8, mixture=(0.1, 0.5, 0.5), rng=11)
    fits = {m: closed_fit(X, m) for m in ("M0", "Mt", "Mb", "Mh2")}
    assert fits["Mh2"].loglik >= fits["M0"].loglik - 1e-6  # M0 is nested in Mh2
    assert fits["Mh2"].N >= fits["M0"].N - 1
    fits["huggins"] = closed_fit(X, "huggins")
    fits["chao"] = closed_fit(X, "Mh_chao")
    table = aicc_table(fits)
    assert [r["model"] for r in table][-1] == "huggins"  # its own (conditional) group
    assert table[0]["dAICc"] == 0.0 and table[-1]["dAICc"] == 0.0
    assert "chao" not in {r["model"] for r in table}
    assert sum(r["AICcwt"] for r in table if r["likelihood"] == "full") == pytest.approx(1.0)


def test_chao_known_values() -> None:
    # f1 = 3 animals caught once, f2 = 2 twice, T = 4
    X = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 1, 1, 0]])
    f = chao_mh(X)
    assert pytest.approx(5 + 0.75 * 3 * 2 / 6) == f.N
    assert f.N_lcl >= 5


def test_readers_and_cli(tmp_path) -> None:
    X = simulate_closed(60, 5, 0.3, rng=2)
    long = tmp_path / "long.csv"
    rows = ["ID,occasion"] + [f"a{i},{t + 1}" for i in range(len(X)) for t in range(5) if X[i, t]]
    long.write_text("\n".join(rows) + "\n")
    Y, ids, _ = read_cr_history(long, n_occasions=5)
    assert np.array_equal(Y, X) and len(ids) == len(X)
    mat = tmp_path / "matrix.csv"
    mat.write_text(
        "ID,1,2,3,4,5\n"
        + "\n".join(f"a{i}," + ",".join(str(int(v)) for v in X[i]) for i in range(len(X)))
        + "\n"
    )
    Z, _, _ = read_cr_history(mat)
    assert np.array_equal(Z, X)
    res = CliRunner().invoke(cr_app, ["fit", str(mat), "--models", "M0,Mb,Mh_chao", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["n"] == len(X) and len(doc["models"]) == 3
    m0 = doc["models"][0]
    assert m0["N_lcl"] <= m0["N"] <= m0["N_ucl"]
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,1,2,3\na,0,0,0\n")
    with pytest.raises(BadInputError, match="all-zero"):
        read_cr_history(bad)
    res = CliRunner().invoke(cr_app, ["fit", str(mat), "--models", "M0,Mt,huggins"])
    assert res.exit_code == 0 and "huggins" in res.stdout
    res = CliRunner().invoke(cr_app, ["fit", str(bad)])
    assert res.exit_code == 2 and "all-zero" in res.output


def test_cli_huggins_with_covariate(tmp_path) -> None:
    X, kw = _huggins_sim(np.random.default_rng(5))
    sex = kw["covariates"]["sex"]
    path = tmp_path / "caps.csv"
    lines = ["ID,occasion,sex"] + [
        f"a{i},{t + 1},{sex[i]}" for i in range(len(X)) for t in range(X.shape[1]) if X[i, t]
    ]
    path.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(
        cr_app,
        ["fit", str(path), "--models", "huggins", "--formula", "p~sex", "--occasions", "6",
         "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    hug = doc["models"][0]
    assert set(hug["beta"]) == {"p", "p.sexM"}
    direct = closed_fit(X, "huggins", formula="p~sex", covariates={"sex": sex})
    assert hug["N"] == pytest.approx(direct.N, rel=1e-6)
