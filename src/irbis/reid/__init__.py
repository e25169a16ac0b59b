"""Individual identification of snow leopards from their rosette patterns.

Takes images and plain records, returns plain records: no database here.

Typical use::

    from irbis.reid import Annotation, Catalogue

    cat = Catalogue()
    cat.add_annotation(Annotation("a1", "khan_2019.jpg", individual="Khan", side=Side.LEFT))
    result = cat.identify(Annotation("q", "new.jpg", side=Side.LEFT))
    result.decision, result.individual, result.probability, result.candidates[0].query_xy
"""

from irbis.reid.annotations import Annotation, Side, read_labels
from irbis.reid.baseline import baseline_features, baseline_inliers
from irbis.reid.calibration import Calibration, DecisionRule, fit_calibration
from irbis.reid.catalogue import Catalogue, Match, MatchConfig, QueryResult
from irbis.reid.cluster import cluster_annotations, cluster_pairs, pair_scores
from irbis.reid.evaluate import EvalOptions, evaluate
from irbis.reid.features import Features, extract, rootsift
from irbis.reid.preprocess import (
    BadImageError,
    Prepared,
    burst_masks,
    detect_info_bars,
    prepare,
    read_image,
)

__all__ = [
    "Annotation",
    "BadImageError",
    "Calibration",
    "Catalogue",
    "DecisionRule",
    "EvalOptions",
    "Features",
    "Match",
    "MatchConfig",
    "Prepared",
    "QueryResult",
    "Side",
    "baseline_features",
    "baseline_inliers",
    "burst_masks",
    "cluster_annotations",
    "cluster_pairs",
    "detect_info_bars",
    "evaluate",
    "extract",
    "fit_calibration",
    "pair_scores",
    "prepare",
    "read_image",
    "read_labels",
    "rootsift",
]
