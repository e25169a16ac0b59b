"""Grouping a season's annotations into putative individuals, without a catalogue.

Every annotation is matched against all others (never its own burst); a
verified match whose calibrated probability reaches ``1 - false_merge_rate``
becomes an edge; frames of one encounter are joined (a burst shows one
animal); connected components of that graph are the proposed individuals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from irbis.reid.annotations import Annotation
from irbis.reid.calibration import Calibration

#: Calibration of *catalogue-free* match scores. Without labels every
#: encounter votes as its own name, so a descriptor's LNBNN normaliser is often
#: another encounter of the same cat and scores run lower than against a
#: labelled catalogue. Fitted (penalised logistic, :func:`fit_calibration`) on
#: the verified cross-encounter edges of the Tajik set; refit on a survey's
#: own confirmed pairs where they exist.
BLIND_CALIBRATION = Calibration(a=4.9, b=0.05)


def cluster_pairs(
    n: int,
    edges: Iterable[tuple[int, int, float]],
    threshold: float,
    encounters: Sequence[str | None] | None = None,
) -> np.ndarray:
    """Connected components of the graph of edges with weight ``>= threshold``.

    Parameters
    ----------
    n:
        Number of annotations.
    edges:
        ``(i, j, weight)`` evidence that ``i`` and ``j`` show the same animal.
    threshold:
        Minimum weight of an edge that joins two annotations.
    encounters:
        Optional encounter key per annotation: equal keys are always joined.

    Returns
    -------
    numpy.ndarray
        Cluster label per annotation (``0..k-1``).
    """
    rows: list[int] = []
    cols: list[int] = []
    for i, j, w in edges:
        if w >= threshold and i != j:
            rows.append(i)
            cols.append(j)
    if encounters is not None:
        first: dict[str, int] = {}
        for i, e in enumerate(encounters):
            if e is None:
                continue
            if e in first:
                rows.append(first[e])
                cols.append(i)
            else:
                first[e] = i
    if n == 0:
        return np.zeros(0, np.int64)
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    return labels.astype(np.int64)


def pair_scores(labels: np.ndarray, truth: Sequence[str], mask: np.ndarray | None = None) -> dict:
    """Pairwise precision and recall of a clustering against true individuals.

    Parameters
    ----------
    labels:
        Cluster label per annotation.
    truth:
        True individual per annotation.
    mask:
        Optional ``(n, n)`` boolean of the pairs to count (e.g. only pairs from
        different encounters); all pairs ``i < j`` by default.
    """
    lab = np.asarray(labels)
    t = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)[1]
    same_c = lab[:, None] == lab[None, :]
    same_t = t[:, None] == t[None, :]
    upper = np.triu(np.ones_like(same_c, dtype=bool), 1)
    if mask is not None:
        upper &= mask
    tp = int((same_c & same_t & upper).sum())
    fp = int((same_c & ~same_t & upper).sum())
    fn = int((~same_c & same_t & upper).sum())
    return {
        "pair_precision": tp / (tp + fp) if tp + fp else 1.0,
        "pair_recall": tp / (tp + fn) if tp + fn else 1.0,
        "clusters": int(lab.max() + 1) if lab.size else 0,
    }


def cluster_annotations(
    anns: Sequence[Annotation],
    feats: Sequence,
    false_merge_rate: float = 0.05,
    config: object | None = None,
    calibration: Calibration | None = BLIND_CALIBRATION,
) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """Cluster annotations (any ``individual`` they carry is ignored).

    Parameters
    ----------
    anns, feats:
        Annotations and their :class:`~irbis.reid.features.Features`.
    false_merge_rate:
        Tolerated probability that an edge joins two different animals; edges
        need a calibrated match probability of at least ``1 - false_merge_rate``.
    config:
        :class:`~irbis.reid.catalogue.MatchConfig` (default parameters if ``None``).
    calibration:
        Score → probability of catalogue-free edges (default
        :data:`BLIND_CALIBRATION`); ``None`` keeps the config's own.

    Returns
    -------
    labels, edges:
        Cluster label per annotation and the ``(i, j, probability)`` edges found.
    """
    from dataclasses import replace

    from irbis.reid.catalogue import Catalogue, MatchConfig

    cfg = config if isinstance(config, MatchConfig) else MatchConfig()
    if calibration is not None:
        cfg = replace(cfg, calibration=calibration)
    cat = Catalogue(cfg)
    blind = [replace(a, individual=None, id=str(i)) for i, a in enumerate(anns)]
    for a, f in zip(blind, feats, strict=True):
        cat.add(a, f)
    by_enc: dict[str | None, list[str]] = {}
    for a in blind:
        by_enc.setdefault(a.encounter, []).append(a.id)
    edges: list[tuple[int, int, float]] = []
    for a, f in zip(blind, feats, strict=True):
        excl = by_enc[a.encounter] if a.encounter is not None else [a.id]
        res = cat.query(f, side=a.side, exclude=excl, camera=a.camera)
        for m in res.annotations:
            if m.probability > 0:
                edges.append((int(a.id), int(m.annotation), m.probability))
    labels = cluster_pairs(len(anns), edges, 1.0 - false_merge_rate, [a.encounter for a in anns])
    return labels, edges
