"""A factor level at a detection-free trap is fitted as R secr fits it: at its boundary, flagged.

The Tost snow-leopard survey with one camera that saw nothing (SLT026) given
a Topo level of its own ("Steppe"): R secr returns ``D~1 lambda0~Topo
sigma~1`` with ``lambda0.TopoSteppe`` run to the edge of the link scale and
a meaningless SE. The supremum of the likelihood is the fit in which that
trap detects nothing, i.e. the fit without the trap, so the boundary fit
must reach that logLik; and the logLik it reports must be the likelihood of
its own coefficients, checked by an independent evaluation written here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gammaln, logsumexp

from irbis.stats import secr
from irbis.stats.secr_data import CaptureHistory, Traps

from .conftest import need_data

pytestmark = pytest.mark.filterwarnings("ignore:at boundary")


def _tost_with_steppe():
    folder = need_data("secr", "tost")
    traps = secr.read_traps(folder / "traps.csv")
    ch = secr.read_captures(folder / "captures.csv", traps)
    mask = secr.read_mask(folder / "mask.csv")
    k = traps.ids.index("SLT026")
    assert ch.counts[:, :, k].sum() == 0  # a camera that saw no snow leopard
    topo = traps.covariates["Topo"].copy()
    topo[k] = "Steppe"
    covs = dict(traps.covariates) | {"Topo": topo}
    traps2 = Traps(list(traps.ids), traps.xy, traps.usage, covs)
    return CaptureHistory(list(ch.ids), ch.counts, traps2, "count"), mask, k


def brute_loglik(ch: CaptureHistory, mask, D: float, lam0_k: np.ndarray, sigma_k: np.ndarray):
    """Full Poisson-count HHN SECR log-likelihood, written out term by term.

    ``log L = -sum_m D a p.(m) + sum_i log sum_m D a Pr(w_i | m) - sum_w log n_w!``
    with ``Pr(w_i | m) = prod_{s,k} Poisson(c_isk; u_ks lambda0_k exp(-d_mk^2 / 2 sigma_k^2))``.
    """
    a = mask.spacing**2 / 1e4
    u = ch.traps.usage_matrix(ch.n_occasions)  # K x S
    d2 = ((mask.xy[:, None, :] - ch.traps.xy[None, :, :]) ** 2).sum(-1)  # M x K
    lam = lam0_k[None, :] * np.exp(-d2 / (2 * sigma_k[None, :] ** 2))  # M x K
    total_mean = lam * u.sum(axis=1)[None, :]
    pdot = 1.0 - np.exp(-total_mean.sum(axis=1))
    ll = -D * a * pdot.sum()
    for i in range(ch.n):
        lp = np.zeros(mask.n_points)
        for s in range(ch.n_occasions):
            for k in range(ch.traps.n_traps):
                mu = u[k, s] * lam[:, k]
                c = ch.counts[i, s, k]
                lp += c * np.log(np.maximum(mu, 1e-300)) - mu - gammaln(c + 1)
        ll += logsumexp(lp) + math.log(D * a)
    _, mult = np.unique(ch.counts.reshape(ch.n, -1), axis=0, return_counts=True)
    return ll - gammaln(mult + 1).sum()


def test_level_at_detection_free_trap_is_fitted_at_its_boundary_and_flagged() -> None:
    ch, mask, k = _tost_with_steppe()
    with pytest.warns(RuntimeWarning, match="at boundary: lambda0.TopoSteppe"):
        fit = secr.fit(ch, mask, model="D~1 lambda0~Topo sigma~1", detectfn="HHN")
    assert fit.names == ["D", "lambda0", "lambda0.TopoSaddle", "lambda0.TopoSteppe", "sigma"]
    assert fit.converged
    b = fit.beta_dict()
    assert b["lambda0.TopoSteppe"] <= -15  # R: about -16.7, "SE ~ 1e-7"
    flags = fit.boundary_flags()
    assert len(flags) == 1
    assert flags[0].startswith("at boundary: lambda0.TopoSteppe = ")
    assert "no detections at the only trap with Topo = Steppe" in flags[0]
    assert flags[0].endswith("SE not meaningful")
    se = fit.se_dict()
    assert math.isnan(se["lambda0.TopoSteppe"])
    assert all(math.isfinite(se[n]) and se[n] > 0 for n in fit.names if n != "lambda0.TopoSteppe")
    assert flags[0] in str(fit) and fit.to_dict()["at_boundary"] == flags
    # the boundary coefficient adds no variance to other levels or derived values
    assert math.isfinite(fit.real()["lambda0"]["se"]) and fit.real()["lambda0"]["se"] > 0
    assert math.isfinite(fit.derived()["N"]["se"]) and fit.derived()["N"]["se"] > 0

    # the reported logLik is the likelihood of the reported coefficients
    topo = ch.traps.covariates["Topo"]
    lam0 = np.exp(
        b["lambda0"]
        + b["lambda0.TopoSaddle"] * (topo == "Saddle")
        + b["lambda0.TopoSteppe"] * (topo == "Steppe")
    ).astype(float)
    sig = np.full(ch.traps.n_traps, math.exp(b["sigma"]))
    assert fit.loglik == pytest.approx(
        brute_loglik(ch, mask, math.exp(b["D"]), lam0, sig), abs=1e-6
    )

    # ... and it is the supremum: the fit in which that trap detects nothing
    keep = [j for j in range(ch.traps.n_traps) if j != k]
    t3 = Traps(
        [ch.traps.ids[j] for j in keep],
        ch.traps.xy[keep],
        None,
        {c: v[keep] for c, v in ch.traps.covariates.items()},
    )
    ch3 = CaptureHistory(list(ch.ids), ch.counts[:, :, keep], t3, "count")
    limit = secr.fit(ch3, mask, model="D~1 lambda0~Topo sigma~1", detectfn="HHN")
    assert limit.boundary == {}
    assert fit.loglik == pytest.approx(limit.loglik, abs=1e-6)
    lb = limit.beta_dict()
    for n in ("D", "lambda0", "lambda0.TopoSaddle", "sigma"):
        assert b[n] == pytest.approx(lb[n], abs=1e-3), n
        assert se[n] == pytest.approx(limit.se_dict()[n], rel=1e-2), n
    ll_limit = brute_loglik(ch3, mask, math.exp(lb["D"]), *_real(lb, t3))
    assert limit.loglik == pytest.approx(ll_limit, abs=1e-6)

    # the AIC table ranks it with the others and carries the flag
    null = secr.fit(ch, mask, model="D~1 lambda0~1 sigma~1", detectfn="HHN")
    table = secr.model_table({"null": null, "topo": fit})
    row = next(r for r in table if r["name"] == "topo")
    assert row["flags"] == flags and row["npar"] == 5
    assert row["AIC"] == pytest.approx(-2 * fit.loglik + 10)
    assert next(r for r in table if r["name"] == "null")["flags"] == []


def _real(b: dict[str, float], traps: Traps) -> tuple[np.ndarray, np.ndarray]:
    topo = traps.covariates["Topo"]
    lam0 = np.exp(b["lambda0"] + b["lambda0.TopoSaddle"] * (topo == "Saddle")).astype(float)
    return lam0, np.full(traps.n_traps, math.exp(b["sigma"]))


def test_sigma_level_at_detection_free_traps_runs_to_its_boundary() -> None:
    """sigma~hab with a level whose two traps saw nothing: sigma there shrinks to 0."""
    ch, mask, _ = _tost_with_steppe()
    per = ch.counts.sum(axis=(0, 1))
    hab = np.where(np.arange(ch.traps.n_traps) % 2 == 0, "a", "b").astype(object)
    empty = [j for j in np.flatnonzero(per == 0)[:2]]
    hab[empty] = "z"
    traps = Traps(list(ch.traps.ids), ch.traps.xy, None, {"hab": hab})
    ch2 = CaptureHistory(list(ch.ids), ch.counts, traps, "count")
    with pytest.warns(RuntimeWarning, match="at boundary: sigma.habz"):
        fit = secr.fit(ch2, mask, model="sigma~hab", detectfn="HHN")
    assert "no detections at all 2 traps with hab = z" in fit.boundary["sigma.habz"]
    b = fit.beta_dict()
    lam0 = np.full(traps.n_traps, math.exp(b["lambda0"]))
    sig = np.exp(b["sigma"] + b["sigma.habb"] * (hab == "b") + b["sigma.habz"] * (hab == "z"))
    ll = brute_loglik(ch2, mask, math.exp(b["D"]), lam0, sig.astype(float))
    assert fit.loglik == pytest.approx(ll, abs=1e-6)
    assert math.isnan(fit.se_dict()["sigma.habz"]) and math.isfinite(fit.se_dict()["sigma.habb"])


def test_level_at_one_trap_with_detections_is_estimable() -> None:
    """A level at a single trap that did detect animals is an ordinary coefficient (no flag)."""
    from irbis.stats.simulate import simulate_capthist, simulate_popn

    g = np.arange(5) * 1500.0
    base = Traps([f"T{i}" for i in range(25)], [(x, y) for x in g for y in g])
    mask = secr.make_mask(base, 6000.0, 750.0)
    rng = np.random.default_rng(4)
    pop = simulate_popn(mask, 0.02, rng=rng)
    ch = simulate_capthist(base, pop, "HHN", {"lambda0": 0.3, "sigma": 1200.0}, rng=rng)
    k = int(np.argmax(ch.counts.sum(axis=(0, 1))))
    topo = np.array(["Canyon"] * 25, dtype=object)
    topo[k] = "Saddle"
    traps = Traps(list(base.ids), base.xy, None, {"Topo": topo})
    ch = CaptureHistory(list(ch.ids), ch.counts, traps, "count")
    fit = secr.fit(ch, mask, model="lambda0~Topo")
    assert fit.names == ["D", "lambda0", "lambda0.TopoSaddle", "sigma"]
    assert fit.converged and fit.boundary == {} and fit.boundary_flags() == []
    assert np.all(np.isfinite(fit.beta_se))


def test_cli_prints_the_boundary_flag(tmp_path) -> None:
    import csv

    from typer.testing import CliRunner

    from irbis.cli.stats_cmd import secr_app

    folder = need_data("secr", "tost")
    with (folder / "traps.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    i = rows[0].index("Topo")
    for r in rows[1:]:
        if r[0] == "SLT026":
            r[i] = "Steppe"
    traps = tmp_path / "traps.csv"
    with traps.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    args = ["fit", "--traps", str(traps), "--captures", str(folder / "captures.csv")]
    args += ["--mask", str(folder / "mask.csv"), "--model", "D~1 lambda0~Topo sigma~1"]
    res = CliRunner().invoke(secr_app, args)
    assert res.exit_code == 0, res.output
    assert "at boundary: lambda0.TopoSteppe = -20.0 (no detections at the only trap" in res.output
