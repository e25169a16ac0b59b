"""``irbis models train reid``: a ranking tuned on the project's own decisions.

Every annotation a person confirmed as an individual is a labelled query: its
encounter (sequence) is matched against every *other* confirmed encounter,
exactly as the identify stage matches (same crops, same catalogue), and each
(encounter, gallery encounter) pair is a "same" or a "not this one". A pair
model (:mod:`irbis.reid.ranking`) is fitted on those pairs and judged
leave-one-individual-out against the untrained ranking
(:func:`irbis.reid.ranking_eval.evaluate_rankings`, encounter as the query).

It is installed (``irbis.json``, setting ``reid_ranking``) only where it ranks
the project's held-out cats better: per-encounter top-1 higher and top-5 no
lower. Otherwise any earlier tuned ranking is removed, and the identify stage
keeps the untrained one. The summary says which and why either way.

"Not this one" answers about annotations nobody has named yet are not used:
without the right individual such a query has no "same" pair, and its
negatives are already among the confirmed encounters' pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from irbis.pipeline.identify_stage import (
    _FeatureCache,
    _features,
    _MotionMasks,
    _reid_annotation,
)
from irbis.pipeline.reid_ranking import SETTING
from irbis.reid import BadImageError, Catalogue
from irbis.reid.ranking import FrameEvidence, PairModel, frame_evidence
from irbis.reid.ranking_eval import SurveyMatches, evaluate_rankings, fit_on_season
from irbis.store import Project
from irbis.store.individuals import merge_roots
from irbis.store.schema import Annotation, Deployment, Individual, Media

if TYPE_CHECKING:
    from irbis.pipeline.cluster_train import ReidWorkers
    from irbis.reid import Annotation as ReidAnnotation
    from irbis.reid import Features

#: ``(project, progress) -> (matches, errors)``: how the confirmed crops are matched.
Matcher = Callable[
    [Project, Callable[[int, int], None] | None], tuple[SurveyMatches, list[dict[str, Any]]]
]

__all__ = ["SETTING", "ReidTrainOutcome", "installed_ranking", "train_reid_ranking"]

#: Key of the last training's summary, installed or not.
LAST = "reid_ranking_last"
#: Individuals with two confirmed encounters or more needed to judge a ranking.
MIN_INDIVIDUALS = 3


@dataclass
class ReidTrainOutcome:
    """What one training did.

    Attributes
    ----------
    installed:
        The tuned ranking is now the project's.
    reason:
        One sentence: why it was (or was not) installed.
    summary:
        Counts, the leave-individuals-out figures of both rankings, timings.
    """

    installed: bool
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"installed": self.installed, "reason": self.reason, **self.summary}


def installed_ranking(project: Project) -> PairModel | None:
    """The project's survey-tuned ranking, or ``None`` (the untrained one is used)."""
    saved = project.settings.extra.get(SETTING)
    if not saved:
        return None
    return PairModel.from_dict(saved["model"])


def confirmed_matches(
    project: Project,
    progress: Callable[[int, int], None] | None = None,
    workers: ReidWorkers | None = None,
) -> tuple[SurveyMatches, list[dict[str, Any]]]:
    """Match every confirmed annotation against the other confirmed encounters.

    Parameters
    ----------
    project, progress:
        An open project; ``progress(done, total)`` per annotation matched.
    workers:
        Ray workers (:mod:`irbis.pipeline.cluster_train`) that extract the
        features not cached yet and match the annotations; the driver builds
        the same catalogue and gets the same evidence, in the same order.

    Returns
    -------
    matches, errors:
        The labelled season and the annotations whose image could not be read.
    """
    cache = _FeatureCache(project.tmp_dir / "reid")
    motion = _MotionMasks(project)
    errors: list[dict[str, Any]] = []
    with project.session() as s:
        rows = s.execute(
            select(Annotation, Media)
            .join(Media, Media.id == Annotation.media_id)
            .where(Annotation.individual_id.is_not(None))
            .order_by(Annotation.id)
        ).all()
        everyone = list(s.scalars(select(Individual)))
        station_of = dict(s.execute(select(Deployment.id, Deployment.station_id)).all())
    names = {i.id: i.name for i in everyone}
    roots = merge_roots({i.id: i.merged_into_id for i in everyone})
    catalogue = Catalogue()
    items = []
    known = [
        (
            ann,
            media,
            _reid_annotation(project, ann, media, names[roots[ann.individual_id]], station_of),
        )
        for ann, media in rows
    ]
    if workers is not None:
        workers.warm(known)  # features not cached yet: extracted by the workers
    for ann, media, ra in known:
        try:
            feats = _features(cache, ra, ann, media, motion)
        except BadImageError as exc:
            errors.append({"annotation": ann.id, "file": media.file_name, "error": str(exc)})
            continue
        catalogue.add(ra, feats)
        when = media.timestamp_utc.replace(tzinfo=UTC).timestamp() if media.timestamp_utc else None
        items.append((ra, feats, when))
    enc = {ra.id: ra.encounter or f"~ann:{ra.id}" for ra, _, _ in items}
    members: dict[str, list[str]] = {}
    for aid, e in enc.items():
        members.setdefault(e, []).append(aid)
    sm = SurveyMatches([], [], [], [], [])
    found = workers.evidence(catalogue, items, enc, members, progress) if workers else None
    for done, (ra, feats, when) in enumerate(items, 1):
        ev = found[done - 1] if found is not None else evidence(catalogue, ra, feats, enc, members)
        sm.frames.append(ev)
        sm.encounter.append(enc[ra.id])
        sm.individual.append(str(ra.individual))
        sm.station.append(ra.station)
        sm.when.append(when)
        if progress and found is None:
            progress(done, len(items))
    return sm, errors


def evidence(
    catalogue: Catalogue,
    ra: ReidAnnotation,
    feats: Features,
    enc: dict[str, str],
    members: dict[str, list[str]],
) -> FrameEvidence:
    """One confirmed annotation matched against the other encounters (driver or Ray worker).

    Parameters
    ----------
    catalogue:
        Every confirmed annotation.
    ra, feats:
        The annotation and its features.
    enc, members:
        Encounter of each annotation id; annotation ids of each encounter
        (its own encounter is left out of the gallery).

    Returns
    -------
    FrameEvidence
    """
    res = catalogue.query(feats, side=ra.side, exclude=members[enc[ra.id]], camera=ra.camera)
    return frame_evidence(res, enc.__getitem__)


def train_reid_ranking(
    project: Project,
    *,
    install: bool = True,
    l2: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    matches: Matcher | None = None,
) -> ReidTrainOutcome:
    """Fit, judge and (where it is better) install the survey-tuned ranking.

    Parameters
    ----------
    project:
        An open project with confirmed individuals.
    install:
        Install the ranking when it beats the untrained one (else only report).
    l2:
        Ridge penalty of the pair model.
    progress:
        Called with ``(done, total)`` confirmed annotations matched.
    matches:
        What matches the confirmed crops (default :func:`confirmed_matches`;
        :func:`irbis.pipeline.cluster_train.confirmed_matches_ray` on Ray
        workers gives the same matches, so the same fit and figures).

    Returns
    -------
    ReidTrainOutcome
    """
    t0 = time.perf_counter()
    sm, errors = (matches or confirmed_matches)(project, progress)
    match_s = time.perf_counter() - t0
    ind_of = sm.encounter_individual()
    per_ind: dict[str, int] = {}
    for ind in ind_of.values():
        per_ind[ind] = per_ind.get(ind, 0) + 1
    judged = sorted(k for k, v in per_ind.items() if v >= 2)
    summary: dict[str, Any] = {
        "annotations": len(sm.frames),
        "encounters": len(ind_of),
        "individuals": len(per_ind),
        "individuals_with_two_encounters": len(judged),
        "match_seconds": round(match_s, 2),
    }
    if len(judged) < MIN_INDIVIDUALS:
        reason = (
            f"not trained: {len(judged)} individuals have two confirmed encounters or more, "
            f"{MIN_INDIVIDUALS} are needed to judge a ranking on cats it never saw; "
            "the untrained ranking stays"
        )
        return _finish(project, ReidTrainOutcome(False, reason, summary, errors), None, install)
    t1 = time.perf_counter()
    figures = evaluate_rankings(sm, units=("encounter",), l2=l2)["encounter"]
    model = fit_on_season(sm, "encounter", l2=l2)
    summary["train_seconds"] = round(time.perf_counter() - t1, 3)
    summary["held_out"] = {
        m: {k: figures[m][k] for k in ("queries", "top1", "top5", "mAP", "macro_top1")}
        for m in ("default", "tuned", "fusion")
    }
    summary["per_individual_top1"] = {
        m: {k: v["top1"] for k, v in figures[m]["per_individual"].items()}
        for m in ("default", "tuned")
    }
    pairs = zip(model.features, model.weights, strict=True)
    summary["weights"] = {f: round(float(w), 3) for f, w in pairs}
    d, t = figures["default"], figures["tuned"]
    better = t["top1"] > d["top1"] and t["top5"] >= d["top5"]
    verdict = (
        f"per encounter on held-out cats: tuned top-1 {t['top1']:.3f} / top-5 {t['top5']:.3f}, "
        f"untrained {d['top1']:.3f} / {d['top5']:.3f}"
    )
    if better:
        reason = f"installed: the tuned ranking is better ({verdict})"
    else:
        reason = f"not installed: the tuned ranking is not better ({verdict}); the untrained stays"
    if better and not install:
        reason = f"better but not installed (--no-install): {verdict}"
    return _finish(
        project, ReidTrainOutcome(better and install, reason, summary, errors), model, install
    )


def _finish(
    project: Project, outcome: ReidTrainOutcome, model: PairModel | None, install: bool
) -> ReidTrainOutcome:
    """Record the outcome in the project's settings (install or remove the ranking)."""
    if not install:
        return outcome
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    extra = project.settings.extra
    extra[LAST] = {"at": stamp, "reason": outcome.reason, **outcome.summary}
    if outcome.installed and model is not None:
        extra[SETTING] = {"at": stamp, "model": model.as_dict(), "reason": outcome.reason}
    else:
        # A ranking that no longer beats the untrained one on the project's own
        # held-out cats is not kept: the identify stage goes back to the untrained one.
        extra.pop(SETTING, None)
    project.save_settings()
    return outcome
