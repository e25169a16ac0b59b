"""A species classifier learned from a survey's own labels, on crop embeddings.

The backbone (:class:`irbis.vision.embed.CropEmbedder`) turns an animal crop
into 768 numbers; this module learns, from the crops a team has labelled, a
multinomial logistic regression ("softmax head") from those numbers to the
survey's species, with

* probabilities calibrated by one temperature fitted on held-out
  predictions (a crop of a new station is not as easy as a training crop);
* an ``unknown`` outcome: the best probability below a threshold;
* evaluation in which whole groups (stations, encounters) are held out, so a
  scene or a burst seen in training never counts as a success;
* a saved form (``head.npz`` + manifest) installed in the model registry
  next to the backbone it was trained on.

numpy and scipy only; nothing here knows the database.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

__all__ = [
    "UNKNOWN",
    "SpeciesHead",
    "classification_metrics",
    "expected_labels",
    "fit_head",
    "fit_inverse_power",
    "fit_temperature",
    "grouped_folds",
    "held_out_probabilities",
    "install_species_head",
    "labels_for_accuracy",
    "load_species_head",
    "nested_subset_outcomes",
]

#: What the head answers when no species is probable enough.
UNKNOWN = "unknown"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class SpeciesHead:
    """A softmax head over crop embeddings.

    Attributes
    ----------
    labels : tuple of str
        Species, in output order.
    weights : ndarray of shape (n_features, n_labels)
    bias : ndarray of shape (n_labels,)
    centre : ndarray of shape (n_features,)
        Subtracted from every embedding before the head (the training mean).
    temperature : float
        Logits are divided by it (fitted on held-out predictions; 1 = none).
    threshold : float
        Below this best probability the answer is :data:`UNKNOWN`.
    meta : dict
        What it was trained on (backbone, crop settings, training summary).
    """

    labels: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    centre: np.ndarray
    temperature: float = 1.0
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Raw scores, shape (n, n_labels)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"embeddings of shape {x.shape}: this head takes (n, {self.weights.shape[0]})"
            )
        return (x - self.centre) @ self.weights + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n, n_labels), rows summing to 1."""
        return _softmax(self.logits(x) / self.temperature)

    def predict(self, x: np.ndarray) -> list[tuple[str, float]]:
        """Best species and its probability per row; :data:`UNKNOWN` below the threshold."""
        p = self.predict_proba(x)
        best = p.argmax(axis=1)
        return [
            (self.labels[b] if p[i, b] >= self.threshold else UNKNOWN, float(p[i, b]))
            for i, b in enumerate(best)
        ]

    def to_bytes(self) -> bytes:
        """The arrays as an ``.npz`` file's bytes (labels and settings in the manifest)."""
        buf = io.BytesIO()
        np.savez(
            buf,
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            centre=self.centre.astype(np.float32),
        )
        return buf.getvalue()


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    n_labels: int,
    *,
    l2: float = 1e-3,
    balanced: bool = True,
    max_iter: int = 500,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a multinomial logistic regression with an L2 penalty (L-BFGS).

    Parameters
    ----------
    x : ndarray of shape (n, d)
        Embeddings.
    y : ndarray of shape (n,)
        Label indices in ``0 .. n_labels - 1``.
    n_labels : int
        Number of outputs (labels absent from ``y`` get a low bias).
    l2 : float
        Penalty on the weights (not the bias), per example.
    balanced : bool
        Weight each example by ``n / (n_labels_present * n_of_its_label)`` so a
        species with 5 crops is not drowned by one with 500.
    max_iter : int
        L-BFGS iterations.

    Returns
    -------
    weights : ndarray of shape (d, n_labels)
    bias : ndarray of shape (n_labels,)
    centre : ndarray of shape (d,)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n, d = x.shape
    centre = x.mean(axis=0)
    xc = x - centre
    counts = np.bincount(y, minlength=n_labels).astype(np.float64)
    if balanced:
        present = np.count_nonzero(counts)
        w_ex = n / (present * counts[y])
    else:
        w_ex = np.ones(n)
    w_ex = w_ex / w_ex.sum()
    onehot = np.zeros((n, n_labels))
    onehot[np.arange(n), y] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: d * n_labels].reshape(d, n_labels)
        b = theta[d * n_labels :]
        z = xc @ w + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -(w_ex * (onehot * logp).sum(axis=1)).sum()
        g = (np.exp(logp) - onehot) * w_ex[:, None]
        gw = xc.T @ g + 2 * l2 * w
        gb = g.sum(axis=0)
        return nll + l2 * float((w * w).sum()), np.concatenate([gw.ravel(), gb])

    theta0 = np.zeros(d * n_labels + n_labels)
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w = res.x[: d * n_labels].reshape(d, n_labels)
    b = res.x[d * n_labels :].copy()
    b[counts == 0] = b.min() - 10.0  # never propose a species it has not seen
    return w, b, centre


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the held-out negative log-likelihood.

    Parameters
    ----------
    logits : ndarray of shape (n, k)
        Held-out raw scores.
    y : ndarray of shape (n,)
        True label indices.

    Returns
    -------
    float
        In [0.05, 20]; 1.0 when there is nothing to fit on.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -float(logp[np.arange(len(y)), y].mean())

    from scipy.optimize import minimize_scalar

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def grouped_folds(groups: Sequence[object], n_folds: int | None = None) -> list[np.ndarray]:
    """Test-set indices of folds that never split a group.

    ``n_folds=None``: one fold per group (leave one group out). Otherwise the
    groups, largest first, go to the fold with the fewest items so far.
    """
    keys = np.asarray([str(g) for g in groups])
    uniq, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    if n_folds is None or n_folds >= len(uniq):
        return [np.flatnonzero(inverse == i) for i in range(len(uniq))]
    load = np.zeros(n_folds)
    assign = np.empty(len(uniq), dtype=np.int64)
    for gi in np.argsort(-sizes, kind="stable"):
        f = int(load.argmin())
        assign[gi] = f
        load[f] += sizes[gi]
    return [np.flatnonzero(assign[inverse] == f) for f in range(n_folds)]


def held_out_probabilities(
    x: np.ndarray,
    y: np.ndarray,
    n_labels: int,
    folds: Sequence[np.ndarray],
    *,
    l2: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every example from a head that never saw its fold.

    Returns
    -------
    logits : ndarray of shape (n, n_labels)
        NaN rows for examples in no fold.
    seen : ndarray of bool, shape (n,)
        Whether the example's label was among the training fold's labels
        (a species seen at one station only cannot be learned for another).
    """
    logits = np.full((len(y), n_labels), np.nan)
    seen = np.zeros(len(y), dtype=bool)
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        if len(train) == 0 or len(np.unique(y[train])) < 2:
            continue
        w, b, c = fit_head(x[train], y[train], n_labels, l2=l2)
        logits[test] = (x[test] - c) @ w + b
        seen[test] = np.isin(y[test], y[train])
    return logits, seen


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix.

    ``y_pred`` may hold ``-1`` (unknown): it counts as wrong and gets the
    confusion matrix's last column. Macro F1 averages over the labels present
    in ``y_true``.

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``macro_f1``, ``per_label`` (precision, recall,
        F1, support), ``confusion`` (rows true labels, columns predicted
        labels then ``unknown``) and ``labels``.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    k = len(labels)
    cm = np.zeros((k, k + 1), dtype=np.int64)
    for a, b in zip(t, p, strict=True):
        cm[a, b if b >= 0 else k] += 1
    per: dict[str, dict[str, float]] = {}
    f1s = []
    for i, lab in enumerate(labels):
        support = int(cm[i].sum())
        tp = int(cm[i, i])
        pred_i = int(cm[:, i].sum())
        prec = tp / pred_i if pred_i else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[lab] = {"precision": prec, "recall": rec, "f1": f1, "support": support}
        if support:
            f1s.append(f1)
    n = len(t)
    return {
        "n": n,
        "accuracy": float((t == p).mean()) if n else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "per_label": per,
        "labels": [*labels, UNKNOWN],
        "confusion": cm.tolist(),
    }


def install_species_head(
    name: str,
    head: SpeciesHead,
    backbone: Any,
    *,
    summary: dict[str, Any],
    root: Path | None = None,
) -> Any:
    """Install a trained head in the model registry as a model of its own.

    Parameters
    ----------
    name : str
        Registry name (never a built-in one; never replaces an installed model).
    head : SpeciesHead
        The trained head.
    backbone : InstalledModel
        The encoder whose embeddings it was trained on (recorded as its parent;
        :func:`load_species_head` refuses another version).
    summary : dict
        The training summary (kept in the manifest).
    root : Path, optional
        Registry folder (default: the user's model cache).

    Returns
    -------
    InstalledModel
        The verified entry (kind ``species``, main file ``head.npz``).
    """
    from irbis.vision import registry as reg

    if name in reg.known_models():
        raise reg.ModelError.for_model(
            name, "this name belongs to a built-in model", "choose another"
        )
    base = root or reg.models_dir()
    if reg.installed(name, base) is not None:
        raise reg.ModelError.for_model(
            name,
            "a model of this name is installed already (trained models are never replaced)",
            "choose another --name",
        )
    data = head.to_bytes()
    digest = hashlib.sha256(data).hexdigest()
    spec = reg.ModelSpec(
        name=name,
        version=f"{datetime.now(UTC).strftime('%Y%m%d%H%M')}-{digest[:10]}",
        kind="species",
        licence="trained on the survey's own labels; backbone: " + backbone.licence,
        description=f"species head over {backbone.name} crop embeddings",
        source=f"trained on {backbone.name} {backbone.version} (irbis models train species)",
    )
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        (tmp / "head.npz").write_bytes(data)
        extra = {
            "main": "head.npz",
            "classes": list(head.labels),
            "temperature": head.temperature,
            "threshold": head.threshold,
            "parent": {
                "name": backbone.name,
                "version": backbone.version,
                "sha256": backbone.files.get(backbone.meta.get("main", "model.onnx"), ""),
            },
            **{k: v for k, v in head.meta.items() if k in ("side", "context", "centre")},
            "training": summary,
        }
        reg._write_manifest(tmp, spec, extra)
        reg._swap_in(tmp, base / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return reg.verify(name, base)


def load_species_head(name: str, root: Path | None = None) -> SpeciesHead:
    """A verified installed species head (sha256 checked), ready to predict.

    Raises
    ------
    ModelError
        Not installed, damaged, or not a species head.
    """
    from irbis.vision.registry import ModelError, verify

    model = verify(name, root)
    if model.kind != "species":
        raise ModelError.for_model(
            name,
            f"is a {model.kind}, not a species classifier",
            "name a model from `irbis models train species`",
        )
    with np.load(model.path) as z:
        w, b, c = z["weights"], z["bias"], z["centre"]
    meta = dict(model.meta)
    meta["name"], meta["version"] = model.name, model.version
    return SpeciesHead(
        labels=tuple(model.labels),
        weights=w.astype(np.float64),
        bias=b.astype(np.float64),
        centre=c.astype(np.float64),
        temperature=float(meta.get("temperature", 1.0)),
        threshold=float(meta.get("threshold", 0.5)),
        meta=meta,
    )


# -- how many more labels ---------------------------------------------------------------------


def nested_subset_outcomes(
    x: np.ndarray,
    y: np.ndarray,
    n_labels: int,
    folds: Sequence[np.ndarray],
    *,
    fractions: Sequence[float] = (0.2, 0.35, 0.5, 0.7, 1.0),
    l2: float = 1e-3,
    repeats: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out right/wrong of heads trained on growing nested subsets of the labels.

    In every fold, the training examples are put in one random order and the
    head is trained on its first 20 %, 35 %, ... 100 % (each subset holds
    the smaller ones: the curve of one growing labelling effort, not of
    unrelated samples). Every subset is judged on the same held-out fold.

    Parameters
    ----------
    x, y, n_labels, folds, l2
        As :func:`held_out_probabilities`.
    fractions : sequence of float
        Shares of each fold's training examples, increasing, the last 1.0.
    repeats : int
        Random orders per fold; an example's outcome is its share right over
        them (a few hundred held-out examples make a noisy curve otherwise).
    seed : int
        Seed of the orders.

    Returns
    -------
    sizes : ndarray of shape (n_fractions,)
        Mean number of training examples per subset size (over the folds).
    correct : ndarray of shape (n_fractions, n)
        Share of the repeats in which the example was right; NaN for examples
        in no fold or whose species a subset lacked (those say nothing about
        this head's accuracy).
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    right = np.zeros((len(fractions), n))
    judged = np.zeros((len(fractions), n))
    lacking = np.zeros((len(fractions), n), dtype=bool)
    sizes = np.zeros(len(fractions))
    counted = 0
    for test in folds:
        rest = np.setdiff1d(np.arange(n), test)
        if len(rest) == 0:
            continue
        for _ in range(max(1, repeats)):
            train = rng.permutation(rest)
            counted += 1
            for i, f in enumerate(fractions):
                sub = train[: max(2, int(round(f * len(train))))]
                sizes[i] += len(sub)
                known = np.isin(y[test], y[sub])
                lacking[i, test[~known]] = True
                if len(np.unique(y[sub])) < 2:
                    lacking[i, test] = True
                    continue
                w, b, c = fit_head(x[sub], y[sub], n_labels, l2=l2)
                pred = ((x[test] - c) @ w + b).argmax(axis=1)
                right[i, test] += pred == y[test]
                judged[i, test] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        correct = np.where((judged > 0) & ~lacking, right / np.maximum(judged, 1), np.nan)
    return sizes / max(counted, 1), correct


def fit_inverse_power(
    sizes: np.ndarray, error: np.ndarray, *, floor: bool = False
) -> tuple[float, float, float]:
    """Fit ``error(n) = a * n ** -b + c``, an inverse power law learning curve.

    Parameters
    ----------
    sizes, error : ndarray
        Training examples and held-out error at each point (errors of 0 are
        taken as half an example wrong in a thousand).
    floor : bool
        Fit ``c``, the error no number of labels removes (bounded to
        ``[0, min(error)]``). Without it (``c = 0``) the fit is a straight
        line in log-log space: stable on the few noisy points of a small
        survey, and optimistic when the error has a floor; with it, three
        parameters on five points often see a plateau that is noise.

    Returns
    -------
    (a, b, c)
        ``b`` in [0.01, 2].
    """
    n = np.asarray(sizes, dtype=np.float64)
    e = np.maximum(np.asarray(error, dtype=np.float64), 5e-4)
    if not floor:
        slope, intercept = np.polyfit(np.log(n), np.log(e), 1)
        b = float(np.clip(-slope, 0.01, 2.0))
        a = float(np.exp(np.mean(np.log(e) + b * np.log(n))))
        return a, b, 0.0
    from scipy.optimize import least_squares

    lowest = float(e.min())

    def resid(t: np.ndarray) -> np.ndarray:
        return t[0] * n ** -t[1] + t[2] - e

    b0 = 0.5
    a0 = max((e.max() - lowest * 0.5) * n.min() ** b0, 1e-6)
    res = least_squares(
        resid, x0=[a0, b0, lowest * 0.5], bounds=([0.0, 0.01, 0.0], [np.inf, 2.0, lowest])
    )
    a, b, c = (float(v) for v in res.x)
    return a, b, c


def labels_for_accuracy(curve: tuple[float, float, float], target: float) -> float:
    """Training examples at which the fitted curve reaches ``target`` accuracy (inf: never)."""
    a, b, c = curve
    gap = (1.0 - target) - c
    if gap <= 0:
        return float("inf")
    if a <= 0:
        return 0.0
    return float((a / gap) ** (1.0 / b))


#: Beyond this many times the labels there are, a learning curve's answer is "never".
FAR = 100


def expected_labels(
    sizes: np.ndarray,
    correct: np.ndarray,
    target: float,
    *,
    have: int,
    n_boot: int = 300,
    seed: int = 0,
) -> dict[str, Any]:
    """How many more labels the learning curve says reach ``target`` accuracy, with its spread.

    The curve (:func:`fit_inverse_power`) is fitted to the held-out error at
    each subset size; its uncertainty comes from a bootstrap of the held-out
    examples (the same resample at every size, so the points move together
    as they would with another set of labels), refitting each time.

    Parameters
    ----------
    sizes, correct
        From :func:`nested_subset_outcomes`.
    target : float
        Accuracy wanted (held out by encounter, as the evaluation).
    have : int
        Labelled examples now (the curve's last point is at about
        ``have * (folds - 1) / folds``: the head trained on all of them should
        do at least as well).
    n_boot : int
        Bootstrap resamples.
    seed : int

    Returns
    -------
    dict
        ``target_accuracy``, ``labels_now``, ``points`` ([training examples,
        held-out accuracy]), ``curve`` (a, b of the error, c = 0),
        ``plateau_accuracy`` (where a curve with an error floor levels
        off), ``labels_needed`` (total, median of the bootstrap; None when
        the median curve never reaches it),
        ``further_labels`` (``labels_needed - labels_now``, at least 0),
        ``interval_80`` (10th and 90th percentiles of the further labels,
        None for never), ``reached_share`` (share of bootstrap curves that
        reach the target at all) and ``note``.
    """
    ok = ~np.isnan(correct).any(axis=0)
    c_ok = correct[:, ok]
    out: dict[str, Any] = {"target_accuracy": target, "labels_now": int(have)}
    if c_ok.shape[1] < 10 or len(sizes) < 3:
        out["note"] = "too few held-out examples to fit a learning curve"
        return out
    acc = c_ok.mean(axis=1)
    out["points"] = [
        [round(float(s), 1), round(float(a), 4)] for s, a in zip(sizes, acc, strict=True)
    ]
    curve = fit_inverse_power(sizes, 1.0 - acc)
    out["curve"] = {"a": round(curve[0], 5), "b": round(curve[1], 4), "c": round(curve[2], 4)}
    rng = np.random.default_rng(seed)
    needed = np.empty(n_boot)
    m = c_ok.shape[1]
    for i in range(n_boot):
        pick = rng.integers(0, m, m)
        needed[i] = labels_for_accuracy(
            fit_inverse_power(sizes, 1.0 - c_ok[:, pick].mean(axis=1)), target
        )
    # A nearly flat curve "reaches" any target at astronomic numbers: beyond a
    # hundred times the labels there are, say never (no survey labels that much).
    needed[needed > FAR * max(have, 1)] = np.inf
    further = np.maximum(needed - have, 0.0)
    reached = np.isfinite(needed)
    out["reached_share"] = round(float(reached.mean()), 3)
    median = float(np.median(needed))  # inf sorts last: a median of inf means mostly never
    out["labels_needed"] = None if not np.isfinite(median) else int(np.ceil(median))
    out["further_labels"] = None if not np.isfinite(median) else int(np.ceil(max(median - have, 0)))
    lo, hi = np.percentile(further, [10, 90], method="nearest")
    out["interval_80"] = [
        None if not np.isfinite(lo) else int(np.ceil(lo)),
        None if not np.isfinite(hi) else int(np.ceil(hi)),
    ]
    # The same points with an error floor: a plateau under the target is a warning
    # (not the estimate: three parameters on five noisy points see plateaus in noise).
    plateau = 1.0 - fit_inverse_power(sizes, 1.0 - acc, floor=True)[2]
    out["plateau_accuracy"] = round(plateau, 4)
    if acc[-1] >= target:
        out["note"] = "held-out accuracy already reaches the target"
    elif out["labels_needed"] is None:
        out["note"] = (
            f"not within {FAR} times the labels there are: held-out accuracy barely grows "
            "with more of them (better crops, or another backbone, might)"
        )
    elif plateau < target:
        out["note"] = (
            f"with an error floor the curve levels off at about {plateau:.0%}, under the "
            "target: more labels of the same kind may never get there (better crops might)"
        )
    else:
        out["note"] = (
            "an extrapolation of an inverse power law; beyond about twice the labels "
            "it was fitted on, read it as an order of magnitude"
        )
    return out
