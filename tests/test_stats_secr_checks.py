"""Derived values and checks of SECR fits: ESA with SE, deviance, parametric-bootstrap GoF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.secr_checks import deviance, df_residual, gof_bootstrap, saturated_loglik
from irbis.stats.secr_data import CaptureHistory, Mask, Traps
from irbis.stats.simulate import simulate_capthist, simulate_popn


def _grid(n: int, step: float) -> Traps:
    xy = np.array([(x * step, y * step) for x in range(n) for y in range(n)])
    return Traps([f"T{i}" for i in range(len(xy))], xy)


def _mask(lo: float, hi: float, step: float) -> Mask:
    g = np.arange(lo, hi, step)
    gx, gy = np.meshgrid(g, g)
    return Mask(np.column_stack([gx.ravel(), gy.ravel()]), step)


def test_saturated_loglik_by_hand() -> None:
    t = _grid(2, 100.0)
    c = np.zeros((3, 1, 4), dtype=int)
    c[0, 0, 0] = c[1, 0, 0] = 1  # two identical histories
    c[2, 0, 3] = 2
    ch = CaptureHistory(["a", "b", "c"], c, t, "count")
    multi = -math.log(2) + 2 * math.log(2 / 3) + math.log(1 / 3)
    assert abs(saturated_loglik(ch, "full") - (multi + 3 * math.log(3) - 3)) < 1e-12
    assert abs(saturated_loglik(ch, "conditional") - (multi + math.log(6))) < 1e-12


@pytest.fixture(scope="module")
def survey() -> tuple[CaptureHistory, Mask]:
    rng = np.random.default_rng(21)
    traps, mask = _grid(5, 600.0), _mask(-1800.0, 4300.0, 300.0)
    centres = simulate_popn(mask, 0.01, rng=rng)
    ch = simulate_capthist(traps, centres, "HHN", {"lambda0": 0.3, "sigma": 450.0},
                           detector="proximity", n_occasions=4, rng=rng)  # fmt: skip
    return ch, mask


def test_conditional_derived_density_and_esa(survey: tuple[CaptureHistory, Mask]) -> None:
    ch, mask = survey
    full = secr.fit(ch, mask)
    cl = secr.fit(ch, mask, likelihood="CL")
    d = cl.derived()
    esa = d["esa"]
    # n / esa is the density; the full fit's D agrees closely with D~1
    assert abs(d["D_per_ha"]["estimate"] - ch.n / (esa["estimate"] * 100)) < 1e-12
    assert abs(d["D_per_ha"]["estimate"] / full.real()["D"]["estimate"] - 1) < 0.01
    # secr's derived SE: var(D) = n / a^2 + n^2 var(a) / a^4 (a in hectares)
    a, se_a = esa["estimate"] * 100, esa["se"] * 100
    want = math.sqrt(ch.n / a**2 + ch.n**2 * se_a**2 / a**4)
    assert abs(d["D_per_ha"]["se"] / want - 1) < 1e-6
    assert esa["lcl"] < esa["estimate"] < esa["ucl"] and esa["se"] > 0


def test_gof_bootstrap(survey: tuple[CaptureHistory, Mask]) -> None:
    ch, mask = survey
    f = secr.fit(ch, mask, "lambda0~1")
    ll_sat = saturated_loglik(ch)
    assert abs(deviance(f) - (-2 * (f.loglik - ll_sat))) < 1e-12
    assert df_residual(f) == len(np.unique(ch.counts.reshape(ch.n, -1), axis=0)) - 3
    a = gof_bootstrap(f, 9, rng=4)
    b = gof_bootstrap(f, 9, rng=4)
    assert a == b  # seeded
    assert len(a["simulated"]) == 9 and a["n_sims"] == 9
    sims = np.array(a["simulated"])
    assert a["p"] == (1 + (sims < a["observed"]).sum() + 0.5 * (sims == a["observed"]).sum()) / 10
    assert a["c_hat"] == pytest.approx(a["observed"] / sims.mean())
    # a model simulated from itself is not flagged
    assert 0.1 <= a["p"] <= 1.0 and 0.5 < a["c_hat"] < 2.0
    with pytest.raises(BadInputError, match="1 to 999"):
        gof_bootstrap(f, 5000)
