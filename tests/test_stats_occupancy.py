"""Occupancy (MacKenzie et al. 2002) and activity overlap (Ridout & Linkie 2009)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from irbis.core.errors import BadInputError
from irbis.stats.activity import activity_density, overlap
from irbis.stats.occupancy import detection_histories, occupancy_fit


def _simulate(rng, n_sites, n_occ, psi, p, missing=0.0):
    z = rng.random(n_sites) < psi
    y = ((rng.random((n_sites, n_occ)) < p) & z[:, None]).astype(float)
    y[rng.random((n_sites, n_occ)) < missing] = np.nan
    return y


def test_likelihood_equals_the_sum_over_latent_states():
    """The fitted log-likelihood is the brute-force one at the fitted values."""
    rng = np.random.default_rng(1)
    y = _simulate(rng, 40, 5, 0.6, 0.4, missing=0.1)
    fit = occupancy_fit(y)
    psi, p = special.expit(fit.beta)
    ll = 0.0
    for row in y:
        obs = row[~np.isnan(row)]
        occupied = psi * np.prod(np.where(obs == 1, p, 1 - p))
        ll += math.log(occupied + (1 - psi) * (obs.sum() == 0))
    assert fit.loglik == pytest.approx(ll, abs=1e-6)
    assert fit.npar == 2 and fit.aic == pytest.approx(4 - 2 * ll)


def test_recovers_psi_and_p_with_covered_intervals():
    rng = np.random.default_rng(7)
    hits_psi = hits_p = 0
    runs = 60
    for _ in range(runs):
        fit = occupancy_fit(_simulate(rng, 120, 6, 0.55, 0.3, missing=0.15))
        hits_psi += fit.psi_ci[0] <= 0.55 <= fit.psi_ci[1]
        hits_p += fit.p_ci[0] <= 0.3 <= fit.p_ci[1]
    # 95% intervals: at least 50 of 60 (P(X < 50) < 0.5% under nominal coverage)
    assert hits_psi >= 50 and hits_p >= 50


def test_covariate_on_psi_is_estimated_and_named_like_r():
    rng = np.random.default_rng(3)
    elev = rng.normal(size=300)
    habitat = np.where(rng.random(300) < 0.5, "rock", "meadow")
    psi = special.expit(0.2 + 1.2 * elev)
    z = rng.random(300) < psi
    y = ((rng.random((300, 8)) < 0.35) & z[:, None]).astype(float)
    fit = occupancy_fit(
        y, "psi~elev p~habitat", {"elev": elev, "habitat": habitat.astype(object)}
    )
    assert fit.names == ["psi", "psi.elev", "p", "p.habitatrock"]
    coef = dict(zip(fit.names, fit.beta, strict=True))
    assert abs(coef["psi.elev"] - 1.2) < 3 * fit.se[1]
    assert abs(coef["p.habitatrock"]) < 3 * fit.se[3]  # no real effect


def test_naive_occupancy_underestimates_and_model_corrects():
    rng = np.random.default_rng(11)
    y = _simulate(rng, 400, 4, 0.7, 0.2)
    fit = occupancy_fit(y)
    assert fit.naive < 0.55 < fit.psi_mean
    assert abs(fit.psi_mean - 0.7) < 0.12


def test_detection_histories_from_daily_records_and_camera_operation():
    days = np.zeros((3, 10))
    days[0, 1] = 2
    days[1, 8] = 1
    op = np.ones((3, 10))
    op[2, :] = 0  # never worked
    op[1, 7:] = 0  # broke on day 8, yet a photo on day 9 shows it ran: count it
    y = detection_histories(days, op, occasion_days=5)
    assert y.shape == (3, 2)
    assert y[0].tolist() == [1.0, 0.0]
    assert y[1].tolist() == [0.0, 1.0]
    assert np.isnan(y[2]).all()


@pytest.mark.parametrize(
    "y, match",
    [
        (np.array([[0, 2], [1, 0]], float), "row 1, occasion 2"),
        (np.zeros((3, 4)), "never detected"),
        (np.full((2, 2), np.nan), "no station"),
    ],
)
def test_bad_histories_are_refused_clearly(y, match):
    with pytest.raises(BadInputError, match=match):
        occupancy_fit(y)


def test_overlap_identical_disjoint_and_partial():
    rng = np.random.default_rng(5)
    night = np.mod(rng.normal(0, 1.5, 80), 24)
    day = rng.normal(12, 1.5, 80)
    same = overlap(night, night, n_boot=0)
    assert same.estimate == pytest.approx(1.0, abs=1e-9) and same.estimator == "Dhat4"
    apart = overlap(night, day, n_boot=0)
    assert apart.estimate < 0.05
    dusk = rng.normal(3, 1.5, 30)
    part = overlap(night, dusk, n_boot=100, seed=1)
    assert part.estimator == "Dhat1" and 0.2 < part.estimate < 0.8
    assert part.ci[0] < part.estimate < part.ci[1]
    # Dhat1 is the area under the smaller of the two kernel densities.
    grid = np.linspace(0, 24, 4801)[:-1]
    area = np.minimum(activity_density(night, grid), activity_density(dusk, grid)).sum() * (
        24 / len(grid)
    )
    assert part.estimate == pytest.approx(area, abs=2e-3)


def test_activity_density_integrates_to_one():
    hours = [0.5, 1.0, 2.0, 23.5, 22.0, 3.0]
    grid = np.linspace(0, 24, 2401)[:-1]
    assert activity_density(hours, grid).sum() * 0.01 == pytest.approx(1.0, abs=1e-6)


def test_profile_interval_stays_finite_when_every_station_is_used():
    """psi-hat at 1 (all stations detected): a one-sided profile interval, not NaN."""
    rng = np.random.default_rng(2)
    y = (rng.random((12, 8)) < 0.3).astype(float)
    y[:, 0] = 1.0
    fit = occupancy_fit(y)
    assert fit.psi_mean > 0.999
    lo, hi = fit.psi_ci
    assert 0.3 < lo < 0.95 and hi > 0.999
    assert 0 < fit.p_ci[0] < fit.p_mean < fit.p_ci[1] < 1
