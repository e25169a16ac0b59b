"""Score → match probability (logistic / Platt calibration) and decisions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


@dataclass(frozen=True, slots=True)
class Calibration:
    """``p = sigmoid(a * log1p(score) + b)``; log1p tames the heavy score tail.

    The default values were fitted on the Tajikistan evaluation set (encounter
    protocol, default method); refit with :func:`fit_calibration` on a survey's
    own confirmed matches when they exist.
    """

    a: float = 4.3
    b: float = -1.8

    def probability(self, score: np.ndarray | float) -> np.ndarray:
        """Match probability of verified scores (array in, array out)."""
        s = np.log1p(np.maximum(np.asarray(score, dtype=np.float64), 0.0))
        return 1.0 / (1.0 + np.exp(-(self.a * s + self.b)))

    def score_for(self, probability: float) -> float:
        """Inverse: the score at which the probability reaches ``probability``."""
        p = min(max(probability, 1e-9), 1 - 1e-9)
        return float(np.expm1((np.log(p / (1 - p)) - self.b) / self.a))


def fit_calibration(scores: np.ndarray, same: np.ndarray, l2: float = 1e-3) -> Calibration:
    """Fit a :class:`Calibration` by penalised maximum likelihood.

    Parameters
    ----------
    scores:
        Verified scores of candidate pairs (query, best annotation of a candidate).
    same:
        Booleans: the pair truly shows the same individual.
    l2:
        Small ridge penalty so separable data still gives finite parameters.
    """
    s = np.log1p(np.maximum(np.asarray(scores, np.float64), 0.0))
    y = np.asarray(same, dtype=np.float64)
    if s.size == 0 or y.min() == y.max():
        return Calibration()

    def nll(theta: np.ndarray) -> float:
        z = theta[0] * s + theta[1]
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + l2 * theta @ theta)

    res = minimize(nll, np.array([1.0, -3.0]), method="L-BFGS-B")
    return Calibration(float(res.x[0]), float(res.x[1]))


@dataclass(frozen=True, slots=True)
class DecisionRule:
    """Thresholds on the best candidate's probability.

    ``p >= same`` → "same as X"; ``p < new`` → "new individual"; otherwise
    "unsure" and a person reviews it.
    """

    same: float = 0.9
    new: float = 0.2

    def decide(self, probability: float) -> str:
        """One of ``"same"``, ``"new"``, ``"unsure"``."""
        if probability >= self.same:
            return "same"
        if probability < self.new:
            return "new"
        return "unsure"
