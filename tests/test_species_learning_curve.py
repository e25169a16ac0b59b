"""How many more labels: the learning curve of the species head, checked against the truth.

The data are built here: five "species" as Gaussian clouds in 48 numbers,
close enough that a head on a few hundred labels is far from perfect. The
curve is fitted on 300 labels (grouped in encounters of three); the truth is
what heads trained on fresh labels of the same survey score on 6,000 more.
"""

from __future__ import annotations

import numpy as np
import pytest

from irbis.vision.species import (
    expected_labels,
    fit_head,
    fit_inverse_power,
    grouped_folds,
    labels_for_accuracy,
    nested_subset_outcomes,
)

K, D = 5, 48
CENTRES = np.random.default_rng(3).normal(size=(K, D)) * 0.3


def _draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    y = r.integers(0, K, n)
    return CENTRES[y] + r.normal(size=(n, D)), y


def _true_accuracy(n: int, test: tuple[np.ndarray, np.ndarray], seeds=(100,)) -> float:
    xt, yt = test
    out = []
    for s in seeds:
        x, y = _draw(n, s)
        w, b, c = fit_head(x, y, K)
        out.append(float((((xt - c) @ w + b).argmax(1) == yt).mean()))
    return float(np.mean(out))


def test_inverse_power_law_is_recovered_and_solved() -> None:
    n = np.array([50.0, 100, 200, 400, 800])
    a, b = 2.0, 0.4
    got = fit_inverse_power(n, a * n**-b)
    assert got[0] == pytest.approx(a, rel=1e-6) and got[1] == pytest.approx(b, rel=1e-6)
    assert got[2] == 0.0
    # With a floor: 0.1 of error no label removes.
    fa, fb, fc = fit_inverse_power(n, a * n**-b + 0.1, floor=True)
    assert fc == pytest.approx(0.1, abs=0.01) and fb == pytest.approx(b, abs=0.05)
    # err = 2 n^-0.4 = 0.1  ->  n = 20^(1/0.4)
    assert labels_for_accuracy((a, b, 0.0), 0.9) == pytest.approx(20 ** (1 / 0.4))
    assert labels_for_accuracy((a, b, 0.15), 0.9) == float("inf")


def test_expected_labels_bracket_what_more_labels_really_give() -> None:
    have = 300
    x, y = _draw(have, 5)
    folds = grouped_folds(np.arange(have) // 3, 5)
    sizes, correct = nested_subset_outcomes(x, y, K, folds)
    # Nested subsets: growing sizes, the last about the training folds' size.
    assert np.all(np.diff(sizes) > 0) and sizes[-1] == pytest.approx(have * 0.8, rel=0.05)
    target = 0.8
    lc = expected_labels(sizes, correct, target, have=have, n_boot=100)
    acc = [a for _, a in lc["points"]]
    assert acc[-1] < target and acc[-1] > acc[0]  # learning, not there yet
    lo, hi = lc["interval_80"]
    assert lc["reached_share"] >= 0.9 and hi is not None and 0 < lo < lc["further_labels"] < hi
    # The truth, from heads trained on fresh labels: at the interval's low end the
    # target is not reached yet; at its high end it is.
    test = _draw(6000, 99)
    assert _true_accuracy(have + lo, test) < target
    assert _true_accuracy(have + hi, test) > target
    assert "extrapolation" in lc["note"]
    # Already there: zero more; too few examples: said so, no numbers.
    easy = expected_labels(sizes, correct, 0.3, have=have, n_boot=20)
    assert easy["further_labels"] == 0 and "already" in easy["note"]
    few = expected_labels(sizes, correct[:, :5], target, have=5, n_boot=20)
    assert "too few" in few["note"] and "further_labels" not in few
