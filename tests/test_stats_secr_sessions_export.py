"""A project's survey split into SECR sessions; the multi-session files R's read.capthist reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from irbis.exchange.secr_sessions_text import project_sessions, write_session_text
from irbis.exchange.secr_text import project_capthist

from .test_stats_exchange import _make_project


def test_sessions_by_blocks_of_days_match_the_single_history(tmp_path) -> None:
    p = _make_project(tmp_path)
    ss = project_sessions(p, "10d", occasion_days=5)
    whole = project_capthist(p, occasion_days=5)  # 4 five-day occasions over the 20 days
    p.close()
    assert ss.names == ["1", "2"]
    for s, (_, ch) in enumerate(ss):
        occ = slice(2 * s, 2 * s + 2)
        k = [whole.traps.ids.index(t) for t in ch.traps.ids]
        assert np.allclose(ch.traps.usage, whole.traps.usage[k, occ])
        # stations left out are those with no camera-days in the session (S5 broke down)
        left = set(whole.traps.ids) - set(ch.traps.ids)
        assert all(whole.traps.usage[whole.traps.ids.index(t), occ].sum() == 0 for t in left)
        for i, a in enumerate(ch.ids):
            assert np.array_equal(ch.counts[i], whole.counts[whole.ids.index(a)][occ][:, k])
        seen = whole.counts[:, occ].reshape(whole.n, -1).sum(axis=1) > 0
        assert sorted(ch.ids) == sorted(np.array(whole.ids)[seen].tolist())
    assert "S5" in ss.histories[0].traps.ids and "S5" not in ss.histories[1].traps.ids
    assert ss.histories[0].ids == ["Agnes", "Bold"] and ss.histories[1].ids == ["Agnes", "Cat"]


def test_sessions_by_station_covariate_and_written_files(tmp_path) -> None:
    p = _make_project(tmp_path)
    ss = project_sessions(p, "Topo", occasion_days=10)
    p.close()
    assert ss.names == ["Canyon", "Saddle"]
    assert ss.histories[0].traps.ids == ["S0", "S2", "S4"]
    assert ss.histories[1].traps.ids == ["S1", "S3", "S5"]
    res = write_session_text(ss, tmp_path / "out")
    rows = [
        r.split()
        for r in (tmp_path / "out" / "capthist.txt").read_text().splitlines()
        if not r.startswith("#")
    ]
    assert len(rows) == res["detections"] == sum(int(ch.counts.sum()) for _, ch in ss)
    assert rows.count(["Canyon", "Agnes", "1", "S0"]) == 2
    assert ["Saddle", "Agnes", "2", "S1"] in rows and ["Saddle", "Cat", "2", "S3"] in rows
    # each detection line names a trap of its own session's traps file
    traps = {}
    for s, f in zip(res["sessions"], res["trapfiles"], strict=True):
        lines = [r.split() for r in Path(f).read_text().splitlines() if not r.startswith("#")]
        traps[s] = {r[0]: r for r in lines}
    assert all(r[3] in traps[r[0]] for r in rows)
    s5 = traps["Saddle"]["S5"]
    assert s5[3:6] == ["10", "0", "/"]  # camera-days per occasion, then covariates
    assert 'c("traps_Canyon.txt", "traps_Saddle.txt")' in res["r_call"]
    assert "noccasions = c(2, 2)" in res["r_call"] and "binary.usage = FALSE" in res["r_call"]


def test_export_and_fit_cli_with_sessions(tmp_path) -> None:
    import typer

    from irbis.cli.stats_cmd import export_secr_cmd, secr_app

    p = _make_project(tmp_path)
    p.close()
    app = typer.Typer()
    app.command()(export_secr_cmd)
    proj = str(tmp_path / "proj")
    res = CliRunner().invoke(
        app, [proj, str(tmp_path / "o"), "--occasion-days", "5", "--sessions", "10d", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["sessions"] == ["1", "2"] and len(doc["trapfiles"]) == 2
    assert doc["animals"] == {"1": 2, "2": 2}
    res = CliRunner().invoke(app, [proj, str(tmp_path / "o2"), "--sessions", "elevation"])
    assert res.exit_code == 2 and "station covariates: Topo, rgd" in res.output
    res = CliRunner().invoke(
        secr_app,
        ["fit", proj, "--sessions", "10d", "--occasion-days", "5", "--buffer", "12000",
         "--spacing", "1500", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    fit = json.loads(res.stdout)
    assert fit["sessions"] == ["1", "2"] and fit["n"] == 4
    assert fit["summary"]["per_session"]["2"]["traps"] == 5
