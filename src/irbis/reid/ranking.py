"""A survey-tuned ranking: a pair model learned from a survey's own decisions.

Every confirmed "same" and "not this one" is a labelled pair: an encounter
(the query) and a gallery encounter that does or does not show the same
animal. The untrained ranking (:mod:`irbis.reid.encounter`) orders
individuals by summed verified evidence, then by summed reciprocal ranks; a
fixed rule. The pair model instead weighs a handful of *match features* of
each (query, gallery encounter) pair by penalised logistic regression fitted
on a survey's labelled pairs:

``evidence``
    ``log1p`` of the verified score summed over the query's frames (each
    frame's best match into the gallery encounter).
``best_score``, ``best_inliers``
    ``log1p`` of the strongest single frame's verified score and inlier count.
``verified_share``
    Share of the query's frames with a verified match into it.
``raw_share``
    Mean over frames of its raw LNBNN votes relative to the frame's best.
``reciprocal_rank``
    Mean over frames of ``1 / rank`` of the gallery encounter in the frame's
    list of gallery encounters (ranked by verified score, then raw votes).
``same_station``
    1 where both encounters were taken at one station: snow leopards keep
    home ranges, and a survey's own pairs say how much that is worth.

An individual scores its best gallery encounter, so the model ranks
individuals and gallery encounters alike, and its probabilities serve
catalogue-free clustering (:mod:`irbis.reid.pair_cluster`). Nothing here
reads images: the features come from the matcher's
:class:`~irbis.reid.catalogue.QueryResult` of each frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from irbis.reid.catalogue import QueryResult
from irbis.reid.encounter import EncounterResult

__all__ = [
    "FEATURES",
    "FrameEvidence",
    "PairModel",
    "fit_pair_model",
    "frame_evidence",
    "pair_features",
    "rank_individuals",
    "rerank_encounter",
]

#: Match features of one (query, gallery encounter) pair, in column order.
FEATURES = (
    "evidence",
    "best_score",
    "best_inliers",
    "verified_share",
    "raw_share",
    "reciprocal_rank",
    "same_station",
)


@dataclass(frozen=True, slots=True)
class FrameEvidence:
    """One query frame's matches, reduced to its best per gallery encounter.

    Attributes
    ----------
    keys:
        Gallery encounters the frame found any evidence in.
    score, inliers, raw:
        Per key: best verified score, its inliers, best raw votes.
    ranked:
        The frame's ranked individuals (the matcher's candidate order).
    verified:
        Per individual, the frame's verified score (the untrained ranking's input).
    """

    keys: tuple[str, ...]
    score: np.ndarray
    inliers: np.ndarray
    raw: np.ndarray
    ranked: tuple[str, ...]
    verified: Mapping[str, float]

    def as_dict(self) -> dict:
        """Plain data (JSON), for caches."""
        return {
            "keys": list(self.keys),
            "score": self.score.round(4).tolist(),
            "inliers": self.inliers.astype(int).tolist(),
            "raw": self.raw.round(4).tolist(),
            "ranked": list(self.ranked),
            "verified": {k: round(float(v), 4) for k, v in self.verified.items()},
        }

    @staticmethod
    def from_dict(d: Mapping) -> FrameEvidence:
        """Inverse of :meth:`as_dict`."""
        return FrameEvidence(
            tuple(d["keys"]),
            np.asarray(d["score"], np.float64),
            np.asarray(d["inliers"], np.float64),
            np.asarray(d["raw"], np.float64),
            tuple(d["ranked"]),
            dict(d["verified"]),
        )


def frame_evidence(result: QueryResult, encounter_of: Callable[[str], str]) -> FrameEvidence:
    """Reduce one frame's query result to its best evidence per gallery encounter.

    Parameters
    ----------
    result:
        The catalogue's answer for the frame.
    encounter_of:
        Gallery encounter key of a catalogue annotation id.

    Returns
    -------
    FrameEvidence
    """
    best: dict[str, list[float]] = {}
    for m in result.annotations:
        key = encounter_of(m.annotation)
        cur = best.setdefault(key, [0.0, 0.0, 0.0])
        if m.score > cur[0]:
            cur[0], cur[1] = float(m.score), float(m.inliers)
        cur[2] = max(cur[2], float(m.raw))
    keys = tuple(sorted(best))
    arr = np.array([best[k] for k in keys], np.float64).reshape(-1, 3)
    ranked = tuple(c.individual for c in result.candidates if c.individual is not None)
    verified = {
        c.individual: float(c.score)
        for c in result.candidates
        if c.individual is not None and c.score > 0
    }
    return FrameEvidence(keys, arr[:, 0], arr[:, 1], arr[:, 2], ranked, verified)


def pair_features(
    frames: Sequence[FrameEvidence],
    gallery: Sequence[str],
    query_station: str | None = None,
    station_of: Mapping[str, str | None] | None = None,
) -> np.ndarray:
    """Feature rows (:data:`FEATURES`) of one query against each gallery encounter.

    Parameters
    ----------
    frames:
        The query's frames (one for a per-frame query).
    gallery:
        Gallery encounter keys, one row each.
    query_station, station_of:
        Station of the query and of each gallery encounter (unknown: ``None``).

    Returns
    -------
    numpy.ndarray
        ``(len(gallery), len(FEATURES))``.
    """
    g = len(gallery)
    pos = {k: i for i, k in enumerate(gallery)}
    score_sum = np.zeros(g)
    best = np.zeros(g)
    inl = np.zeros(g)
    verified = np.zeros(g)
    raw_share = np.zeros(g)
    rr = np.zeros(g)
    for f in frames:
        idx = np.array([pos.get(k, -1) for k in f.keys], np.int64)
        ok = idx >= 0
        idx, s, n, r = idx[ok], f.score[ok], f.inliers[ok], f.raw[ok]
        if idx.size == 0:
            continue
        score_sum[idx] += s
        better = s > best[idx]
        inl[idx[better]] = n[better]
        best[idx] = np.maximum(best[idx], s)
        verified[idx] += s > 0
        raw_share[idx] += r / max(float(r.max()), 1e-9)
        order = np.lexsort((-r, -s))
        rr[idx[order]] += 1.0 / np.arange(1, order.size + 1)
    nf = max(1, len(frames))
    stations = station_of or {}
    same = np.array(
        [float(query_station is not None and stations.get(k) == query_station) for k in gallery]
    )
    return np.column_stack(
        [
            np.log1p(score_sum),
            np.log1p(best),
            np.log1p(inl),
            verified / nf,
            raw_share / nf,
            rr / nf,
            same,
        ]
    )


@dataclass(frozen=True, slots=True)
class PairModel:
    """Logistic pair model: ``p(same) = sigmoid(w . (x - mean) / scale + b)``.

    Attributes
    ----------
    weights, bias, mean, scale:
        Parameters on standardised features.
    features:
        Feature names the columns follow (:data:`FEATURES` when trained here).
    """

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    features: tuple[str, ...] = FEATURES

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of "same animal" per feature row."""
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return z @ self.weights + self.bias

    def probability(self, x: np.ndarray) -> np.ndarray:
        """Probability of "same animal" per feature row."""
        return 1.0 / (1.0 + np.exp(-self.logit(x)))

    def as_dict(self) -> dict:
        """Plain data (JSON), for the project's settings."""
        return {
            "features": list(self.features),
            "weights": [float(v) for v in self.weights],
            "bias": float(self.bias),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
        }

    @staticmethod
    def from_dict(d: Mapping) -> PairModel:
        """Inverse of :meth:`as_dict`; refuses a model of other features."""
        feats = tuple(d["features"])
        if feats != FEATURES:
            raise ValueError(
                f"the saved reid ranking uses features {feats}, this irbis computes {FEATURES}: "
                "train it again with `irbis models train reid PROJECT`"
            )
        return PairModel(
            np.asarray(d["weights"], np.float64),
            float(d["bias"]),
            np.asarray(d["mean"], np.float64),
            np.asarray(d["scale"], np.float64),
            feats,
        )


def fit_pair_model(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> PairModel:
    """Fit a :class:`PairModel` by L2-penalised maximum likelihood.

    Parameters
    ----------
    x:
        ``(n, len(FEATURES))`` feature rows.
    y:
        Booleans: the pair shows one animal.
    l2:
        Ridge penalty on the standardised weights (not the bias); keeps a model
        fitted on a few hundred pairs of a small survey from trusting one feature.

    Returns
    -------
    PairModel

    Raises
    ------
    ValueError
        Without both same and different pairs.
    """
    x = np.asarray(x, np.float64)
    t = np.asarray(y, np.float64)
    if x.shape[0] == 0 or t.min() == t.max():
        raise ValueError("a pair model needs both 'same' and 'not the same' pairs")
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    d = z.shape[1]

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        s = z @ w + b
        p = 1.0 / (1.0 + np.exp(-s))
        loss = float(np.sum(np.logaddexp(0.0, s) - t * s) + 0.5 * l2 * w @ w)
        grad_s = p - t
        return loss, np.concatenate([z.T @ grad_s + l2 * w, [grad_s.sum()]])

    res = minimize(nll, np.zeros(d + 1), jac=True, method="L-BFGS-B")
    return PairModel(res.x[:d].copy(), float(res.x[d]), mean, scale)


def rank_individuals(
    logits: np.ndarray, gallery: Sequence[str], individual_of: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Individuals and gallery encounters ranked by the pair model.

    Parameters
    ----------
    logits:
        Pair model log-odds per gallery encounter.
    gallery:
        Gallery encounter keys, in the order of ``logits``.
    individual_of:
        Individual of each gallery encounter.

    Returns
    -------
    individuals, encounters:
        Best first; an individual scores its best encounter; ties by name.
    """
    order = sorted(range(len(gallery)), key=lambda i: (-float(logits[i]), gallery[i]))
    encounters = [gallery[i] for i in order]
    seen: dict[str, None] = {}
    for e in encounters:
        seen.setdefault(individual_of[e], None)
    return list(seen), encounters


def rerank_encounter(
    er: EncounterResult,
    model: PairModel,
    encounter_of: Callable[[str], str],
    gallery: Sequence[str],
    individual_of: Mapping[str, str],
    station: str | None = None,
    station_of: Mapping[str, str | None] | None = None,
) -> EncounterResult:
    """An encounter's answer with its individuals in the pair model's order.

    Only the order changes: every individual keeps its evidence (the matches a
    reviewer is shown). A machine "same" stands only where the tuned ranking
    agrees with the untrained one on the best individual; otherwise a person
    decides ("unsure").

    Parameters
    ----------
    er:
        The untrained answer (:func:`irbis.reid.encounter.pool_encounter`).
    model:
        The survey-tuned pair model.
    encounter_of:
        Gallery encounter key of a catalogue annotation id.
    gallery, individual_of:
        Catalogue encounters and the individual of each.
    station, station_of:
        Station of the query and of each gallery encounter.
    """
    if not er.ranking or not gallery:
        return er
    frames = [frame_evidence(r, encounter_of) for r in er.frames]
    x = pair_features(frames, gallery, station, station_of)
    order, _ = rank_individuals(model.logit(x), gallery, individual_of)
    pos = {k: i for i, k in enumerate(order)}
    ranking = sorted(er.ranking, key=lambda t: pos.get(t[0], len(pos)))
    top = ranking[0][0]
    decision = er.decision
    probability = er.probability
    if top != er.individual:
        probability = float(er.evidence[top][1].probability) if top in er.evidence else 0.0
        if decision == "same":
            decision = "unsure"
    return EncounterResult(decision, top, probability, ranking, er.evidence, er.frames)
