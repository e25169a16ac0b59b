"""Multi-session SECR: checked against separate fits, a brute-force likelihood and simulation.

- With every parameter varying by ``session`` the joint model is the
  separate single-session models side by side: its logLik must be the sum of
  theirs and its coefficients theirs.
- With shared detection and a density trend (``D~Session``) the logLik at the
  fitted coefficients must equal a likelihood written out term by term here
  (``brute_loglik`` of the boundary tests, summed over sessions), and that
  brute-force likelihood must be at its maximum there.
- Simulated surveys with a known trend: the trend's interval covers the truth
  about as often as it should (the 200-survey run is ``bench/secr_sessions.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.secr_data import (
    SessionHistories,
    Traps,
    read_session_captures,
    read_session_traps,
)
from irbis.stats.secr_sessions import fit_sessions
from irbis.stats.simulate import simulate_capthist, simulate_popn

from .test_stats_secr_boundary import brute_loglik


def _survey(rng: np.random.Generator, D0: float, lam: float, n_sessions: int = 3):
    """Sessions with their own layouts (shifted grids, some cameras off) and masks."""
    g = np.arange(5) * 1500.0
    chs, masks = [], []
    for s in range(n_sessions):
        xy = [(x + 400.0 * s, y - 250.0 * s) for x in g for y in g]
        usage = np.ones((25, 2))
        usage[s::7, 1] = 0.0  # a few cameras down on the second occasion
        tr = Traps([f"S{s}T{i}" for i in range(25)], xy, usage)
        m = secr.make_mask(tr, 5000.0, 800.0)
        pop = simulate_popn(m, D0 * lam**s, rng=rng)
        chs.append(simulate_capthist(tr, pop, "HHN", {"lambda0": 0.25, "sigma": 1200.0}, rng=rng))
        masks.append(m)
    return SessionHistories([str(2019 + s) for s in range(n_sessions)], chs), masks


def test_everything_by_session_equals_separate_fits() -> None:
    ss, masks = _survey(np.random.default_rng(2), 0.01, 1.3)
    joint = fit_sessions(ss, masks, model="D~session lambda0~session sigma~session")
    assert joint.converged
    sep = [secr.fit(ch, m) for (_, ch), m in zip(ss, masks, strict=True)]
    assert joint.loglik == pytest.approx(sum(f.loglik for f in sep), abs=1e-6)
    assert joint.lik.session_logliks(joint.beta) == pytest.approx([f.loglik for f in sep], abs=1e-4)
    b = joint.beta_dict()
    assert joint.n == sum(f.n for f in sep)
    derived = joint.derived()
    for i, (name, f) in enumerate(zip(ss.names, sep, strict=True)):
        sb = f.beta_dict()
        for p in ("D", "lambda0", "sigma"):
            got = b[p] + (b[f"{p}.session{name}"] if i else 0.0)
            assert got == pytest.approx(sb[p], abs=1e-3), (name, p)
        d_sep = f.density()["per_100km2"]
        d_joint = derived[name]["D_per_100km2"]
        assert d_joint["estimate"] == pytest.approx(d_sep["estimate"], rel=1e-3)
        assert d_joint["se"] == pytest.approx(d_sep["se"], rel=0.02)
        real = joint.real(name)
        assert real["sigma"]["estimate"] == pytest.approx(f.real()["sigma"]["estimate"], rel=1e-3)


def test_shared_detection_and_trend_against_brute_force() -> None:
    ss, masks = _survey(np.random.default_rng(5), 0.008, 1.25)
    fit = fit_sessions(ss, masks, model="D~Session lambda0~1 sigma~1")
    assert fit.names == ["D", "D.Session", "lambda0", "sigma"]
    assert fit.converged and fit.boundary == {}

    def brute(beta: np.ndarray) -> float:
        b = dict(zip(fit.names, beta, strict=True))
        total = 0.0
        for s, ((_, ch), m) in enumerate(zip(ss, masks, strict=True)):
            K = ch.traps.n_traps
            D = math.exp(b["D"] + b["D.Session"] * s)
            lam0 = np.full(K, math.exp(b["lambda0"]))
            total += brute_loglik(ch, m, D, lam0, np.full(K, math.exp(b["sigma"])))
        return total

    assert fit.loglik == pytest.approx(brute(fit.beta), abs=1e-6)
    # the brute-force likelihood is at its maximum at the fitted coefficients
    h = 1e-3
    for j in range(fit.npar):
        e = np.zeros(fit.npar)
        e[j] = h
        up, down = brute(fit.beta + e), brute(fit.beta - e)
        assert up < fit.loglik and down < fit.loglik, fit.names[j]
        assert abs(up - down) / (2 * h) < 1e-2, fit.names[j]
    # derived: D per session follows the trend, N = D x mask area
    tr = fit.trend()
    lam = math.exp(fit.beta_dict()["D.Session"])
    assert tr["Session"]["estimate"] == pytest.approx(lam)
    assert tr["Session"]["lcl"] < lam < tr["Session"]["ucl"]
    for st in tr["steps"]:
        assert st["estimate"] == pytest.approx(lam, rel=1e-6)
        assert st["se"] == pytest.approx(tr["Session"]["se"], rel=1e-3)
    d = fit.derived()
    for s, name in enumerate(ss.names):
        est = d[name]["D_per_ha"]["estimate"]
        assert est == pytest.approx(math.exp(fit.beta[0] + fit.beta[1] * s), rel=1e-9)
        assert d[name]["N"]["estimate"] == pytest.approx(est * masks[s].area, rel=1e-9)
    assert json.dumps(fit.to_dict())  # JSON-able
    assert "3 sessions" in str(fit)
    # shared vs. varying detection in one AIC table (n summed over sessions, as secr)
    fit2 = fit_sessions(ss, masks, model="D~session lambda0~1 sigma~1")
    table = secr.model_table({"trend": fit, "session": fit2})
    assert {r["name"] for r in table} == {"trend", "session"}
    assert fit.aicc == pytest.approx(-2 * fit.loglik + 8 + 2 * 4 * 5 / (ss.n - 4 - 1))


def test_conditional_likelihood_sessions() -> None:
    ss, masks = _survey(np.random.default_rng(9), 0.01, 1.0, n_sessions=2)
    full = fit_sessions(ss, masks, model="D~session")
    cl = fit_sessions(ss, masks, likelihood="CL")
    assert cl.names == ["lambda0", "sigma"]
    assert np.allclose(cl.beta, [full.beta_dict()["lambda0"], full.beta_dict()["sigma"]], atol=2e-3)
    for name in ss.names:
        a, b = cl.derived()[name]["D_per_ha"], full.derived()[name]["D_per_ha"]
        assert a["estimate"] == pytest.approx(b["estimate"], rel=2e-3)
        assert a["se"] == pytest.approx(b["se"], rel=0.05)
    step_cl, step_full = cl.trend()["steps"][0], full.trend()["steps"][0]
    assert step_cl["estimate"] == pytest.approx(step_full["estimate"], rel=3e-3)
    assert step_cl["se"] == pytest.approx(step_full["se"], rel=0.05)


def test_small_simulation_covers_the_trend() -> None:
    """12 simulated 3-session surveys: the 95% interval of lambda holds the truth most times.

    With true coverage 0.95, 9 or fewer hits in 12 has probability 0.02.
    """
    rng = np.random.default_rng(2024)
    lam_true, hits, ests = 1.2, 0, []
    for _ in range(12):
        ss, masks = _survey(rng, 0.008, lam_true)
        t = fit_sessions(ss, masks, model="D~Session").trend()["Session"]
        hits += t["lcl"] <= lam_true <= t["ucl"]
        ests.append(t["estimate"])
    assert hits >= 10
    assert abs(np.mean(ests) / lam_true - 1) < 0.08


def test_session_model_errors() -> None:
    ss, masks = _survey(np.random.default_rng(1), 0.008, 1.0, n_sessions=2)
    one = SessionHistories(["only"], ss.histories[:1])
    with pytest.raises(BadInputError, match="two or more sessions"):
        fit_sessions(one, masks[0], model="D~Session")
    with pytest.raises(BadInputError, match="masks for 2 sessions"):
        fit_sessions(ss, masks[:1], model="D~Session")
    with pytest.raises(BadInputError, match="no covariate 'elev'"):
        fit_sessions(ss, masks, model="sigma~elev")


def _write_session_files(tmp_path: Path, ss: SessionHistories) -> tuple[Path, Path]:
    caps = ["Session,ID,occasion,trapID,count"]
    trows = ["Session,trapID,x,y,usage_1,usage_2"]
    for name, ch in ss:
        for i, a in enumerate(ch.ids):
            for s, k in zip(*np.nonzero(ch.counts[i]), strict=True):
                caps.append(f"{name},{a},{s + 1},{ch.traps.ids[k]},{ch.counts[i, s, k]}")
        for k, tid in enumerate(ch.traps.ids):
            x, y = ch.traps.xy[k]
            u = ch.traps.usage[k]
            trows.append(f"{name},{tid},{x},{y},{u[0]:g},{u[1]:g}")
    c, t = tmp_path / "captures.csv", tmp_path / "traps.csv"
    c.write_text("\n".join(caps) + "\n")
    t.write_text("\n".join(trows) + "\n")
    return c, t


def test_session_files_and_cli(tmp_path: Path) -> None:
    from irbis.cli.stats_cmd import secr_app

    ss, masks = _survey(np.random.default_rng(3), 0.008, 1.2, n_sessions=2)
    c, t = _write_session_files(tmp_path, ss)
    traps = read_session_traps(t)
    back = read_session_captures(c, traps)
    assert back.names == ss.names
    for (_, a), (_, b) in zip(back, ss, strict=True):
        order = [a.ids.index(i) for i in b.ids]
        assert np.array_equal(a.counts[order], b.counts)
        assert np.array_equal(a.traps.usage, b.traps.usage)
    res = CliRunner().invoke(
        secr_app,
        ["fit", "--traps", str(t), "--captures", str(c), "--model", "D~Session",
         "--buffer", "5000", "--spacing", "800", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    direct = fit_sessions(ss, masks, model="D~Session")
    assert doc["sessions"] == ss.names and doc["n"] == ss.n
    assert doc["logLik"] == pytest.approx(direct.loglik, abs=1e-4)
    assert set(doc["derived"]) == set(ss.names) and "Session" in doc["trend"]
    res = CliRunner().invoke(
        secr_app,
        ["fit", "--traps", str(t), "--captures", str(c), "--model", "D~Session",
         "--buffer", "5000", "--spacing", "800"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "trend (D~Session): lambda =" in res.output and "2019 -> 2020" in res.output


def test_separable_model_fitted_session_by_session_in_threads() -> None:
    ss, masks = _survey(np.random.default_rng(8), 0.01, 1.2)
    model = "D~session lambda0~session sigma~session"
    joint = fit_sessions(ss, masks, model, separate=False)
    apart = fit_sessions(ss, masks, model, threads=2)
    assert apart.message.startswith("sessions fitted separately")
    assert apart.names == joint.names and apart.converged
    assert apart.loglik == pytest.approx(joint.loglik, abs=1e-6)
    assert apart.lik(apart.beta) == pytest.approx(apart.loglik, abs=1e-6)
    np.testing.assert_allclose(apart.beta, joint.beta, atol=2e-3)
    np.testing.assert_allclose(apart.beta_se, joint.beta_se, rtol=2e-2)
    for s in ss.names:
        a, b = apart.derived()[s]["D_per_ha"], joint.derived()[s]["D_per_ha"]
        assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-3)
        assert a["se"] == pytest.approx(b["se"], rel=2e-2)
    with pytest.raises(BadInputError, match="share coefficients"):
        fit_sessions(ss, masks, "D~session", separate=True)
