"""The identify stage: snow-leopard crops → ranked match proposals for people to confirm.

1. *Annotations*: every media file a person or a tag says shows a snow leopard
   gets one annotation per frame from its best animal detection box (or the
   whole frame when the detector found no box). Annotations drawn by people are
   left as they are.
2. *Catalogue*: annotations whose individual a person confirmed
   (``annotations.individual_id``) form the catalogue, one flank side each.
3. *Proposals*: every unconfirmed annotation is matched against the catalogue;
   the best candidates are written as ``match_decisions`` rows with
   ``decision = "proposed"``, ``by = "model:irbis-reid"``, ranked, with score,
   calibrated probability and the matched keypoints (``matches``:
   ``query_xy``/``match_xy`` in original-frame pixels and the matched
   ``annotation_id``) so the review page can draw them. When the matcher
   thinks nobody in the catalogue fits, a row with ``individual_id = NULL``
   and ``rank = 0`` proposes a new individual.
   The encounter is the query: the frames of one sequence (a burst shows one
   animal) are matched each on its own and their evidence pooled
   (:func:`irbis.reid.encounter.pool_encounter`); every frame gets the
   sequence's ranking and decision. A frame keeps its own matches (and
   keypoints) where it has them; a candidate only another frame of the
   sequence found is proposed with that frame's score and probability, no
   keypoints of its own, and ``matches.via_annotation_id`` naming the frame
   whose keypoints show it.

Where ``irbis models train reid`` installed a survey-tuned ranking (it does
so only where that ranking beat the untrained one on the project's own
held-out cats, :mod:`irbis.pipeline.train_reid`), the encounter's
individuals are proposed in its order (:mod:`irbis.pipeline.reid_ranking`);
the summary's ``ranking`` says which order was used.

Nothing a person decided is touched; the stage is idempotent (an annotation
with proposals from the current catalogue is skipped) and commits each
sequence's proposals in one transaction, so it can be interrupted and resumed
with the same result. Features are cached under ``PROJECT/tmp/reid`` by annotation id and
box, so a rerun or a growing catalogue does not re-extract them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from irbis.pipeline.detect_stage import media_path
from irbis.pipeline.reid_ranking import SETTING as RANKING_SETTING
from irbis.pipeline.reid_ranking import TunedRanking
from irbis.reid import Annotation as ReidAnnotation
from irbis.reid import BadImageError, Catalogue, Side, extract, prepare
from irbis.reid.catalogue import Match, QueryResult
from irbis.reid.encounter import encounter_candidates, pool_encounter
from irbis.reid.features import Features
from irbis.reid.preprocess import burst_masks, read_image
from irbis.store import Project
from irbis.store.individuals import merge_roots, names_individual
from irbis.store.schema import (
    Annotation,
    Deployment,
    DetectionBox,
    Individual,
    MatchDecision,
    Media,
    Observation,
)

#: Names under which observations say "snow leopard" (case-insensitive).
SNOW_LEOPARD = ("panthera uncia", "snow leopard", "snow_leopard", "snowleopard", "irbis")
MODEL = "model:irbis-reid"


@dataclass
class IdentifySummary:
    """What one run of the stage did."""

    annotations_created: int = 0
    catalogue_annotations: int = 0
    catalogue_individuals: int = 0
    queried: int = 0
    skipped: int = 0
    proposed_same: int = 0
    proposed_new: int = 0
    unsure: int = 0
    #: "survey-tuned" where ``irbis models train reid`` installed a ranking, else "untrained".
    ranking: str = "untrained"
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create_annotations(
    project: Project, species: Iterable[str] = SNOW_LEOPARD, min_score: float = 0.1
) -> int:
    """Give every snow-leopard media file without an annotation one per best box.

    Parameters
    ----------
    project:
        An open project.
    species:
        Observation species names that mean "snow leopard" (case-insensitive).
    min_score:
        Detection boxes below this score are not used as crops.

    Returns
    -------
    int
        Annotations created.

    Notes
    -----
    A photo whose current label already names the animal (a team that sorted
    its cards by individual, an XMP ``Individual|Khan`` tag, a reviewer's
    observation) gives an annotation confirmed as that individual: it joins
    the catalogue at once. Names not yet in the catalogue become individuals.
    """
    names = [s.lower() for s in species]
    created = 0
    with project.session() as s:
        known = {i.name: i.id for i in s.scalars(select(Individual))}
        named: dict[int, int] = {}
        # The newest current label per media decides who it is.
        for o in s.scalars(
            select(Observation)
            .where(
                Observation.media_id.is_not(None),
                Observation.retracted_utc.is_(None),
                func.lower(Observation.species).in_(names),
                names_individual(),
            )
            .order_by(Observation.created_utc, Observation.id)
        ):
            ind_id = o.individual_id
            if ind_id is None:
                name = o.individual.strip()
                if not name:
                    continue
                if name not in known:
                    ind = Individual(name=name, created_by=o.by or o.source, created_utc=_now())
                    s.add(ind)
                    s.flush()
                    known[name] = ind.id
                ind_id = known[name]
            named[o.media_id] = ind_id
        media_ids = s.scalars(
            select(Observation.media_id)
            .where(
                Observation.media_id.is_not(None),
                Observation.retracted_utc.is_(None),
                func.lower(Observation.species).in_(names),
            )
            .distinct()
        ).all()
        have = set(s.scalars(select(Annotation.media_id).distinct()).all())
        for media_id in sorted(set(media_ids) - have):
            boxes = s.execute(
                select(DetectionBox)
                .where(
                    DetectionBox.media_id == media_id,
                    DetectionBox.category == "animal",
                    DetectionBox.score >= min_score,
                )
                .order_by(DetectionBox.frame, DetectionBox.score.desc())
            ).scalars()
            best: dict[int, DetectionBox] = {}
            for b in boxes:
                best.setdefault(b.frame, b)
            rows = [
                Annotation(
                    media_id=media_id,
                    frame=b.frame,
                    x=b.x,
                    y=b.y,
                    width=b.width,
                    height=b.height,
                    quality=b.score,
                    source="detector",
                    by=b.source,
                    individual_id=named.get(media_id),
                    created_utc=_now(),
                )
                for b in best.values()
            ] or [
                Annotation(
                    media_id=media_id,
                    x=0.0,
                    y=0.0,
                    width=1.0,
                    height=1.0,
                    source="frame",
                    by="irbis",
                    individual_id=named.get(media_id),
                    created_utc=_now(),
                )
            ]
            s.add_all(rows)
            created += len(rows)
        s.commit()
    return created


@dataclass(frozen=True)
class _Crop:
    """One annotation as the matcher needs it, detached from the database.

    Plain data, so a Ray worker receives it by pickling; its attribute names are
    those of :class:`~irbis.store.schema.Annotation`, which the feature cache reads.
    """

    id: int
    media_id: int
    frame: int
    x: float
    y: float
    width: float
    height: float
    source: str | None
    side: str | None

    @classmethod
    def of(cls, ann: Annotation) -> _Crop:
        return cls(
            ann.id, ann.media_id, ann.frame, ann.x, ann.y, ann.width, ann.height, ann.source,
            ann.side,
        )  # fmt: skip


@dataclass(frozen=True)
class _Photo:
    """The media fields the motion masks and error messages need (see :class:`_Crop`)."""

    id: int
    sequence_id: int | None
    mediatype: str
    file_name: str

    @classmethod
    def of(cls, media: Media) -> _Photo:
        return cls(media.id, media.sequence_id, media.mediatype, media.file_name)


@dataclass(frozen=True)
class _Query:
    """One unconfirmed crop to match: what a worker needs, no database handle."""

    crop: _Crop
    photo: _Photo
    ra: ReidAnnotation


def _pixel_box(ann: Annotation, media: Media) -> tuple[float, float, float, float] | None:
    if (ann.x, ann.y, ann.width, ann.height) == (0.0, 0.0, 1.0, 1.0):
        return None
    w, h = media.width or 0, media.height or 0
    if not (w and h):
        return None
    return (ann.x * w, ann.y * h, ann.width * w, ann.height * h)


class _FeatureCache:
    """Features per annotation, kept as ``.npz`` files keyed by id and crop."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _file(self, ann: Annotation | _Crop, variant: str = "") -> Path:
        key = f"{ann.media_id}:{ann.frame}:{ann.x:.5f}:{ann.y:.5f}:{ann.width:.5f}:{ann.height:.5f}"
        if variant:  # a different way of cropping: never served from the old files
            key += f":{variant}"
        return self.folder / f"{ann.id}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"

    def has(self, ann: Annotation | _Crop, variant: str = "") -> bool:
        """Whether the features of this crop are cached."""
        return self._file(ann, variant).exists()

    def get(
        self, ann: Annotation | _Crop, compute: Callable[[], Features], variant: str = ""
    ) -> Features:
        path = self._file(ann, variant)
        if path.exists():
            with np.load(path) as z:
                return Features(z["xy"], z["size"], z["angle"], z["desc"], z["xy_original"])
        feats = compute()
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            xy=feats.xy,
            size=feats.size,
            angle=feats.angle,
            desc=feats.desc,
            xy_original=feats.xy_original,
        )
        tmp.replace(path)
        return feats


def _reid_annotation(
    project: Project,
    ann: Annotation,
    media: Media,
    individual: str | None,
    station_of: dict[int, int],
):
    station = station_of.get(media.deployment_id) if media.deployment_id else None
    return ReidAnnotation(
        id=str(ann.id),
        image=media_path(project, media),
        box=_pixel_box(ann, media),
        side=Side.parse(ann.side),
        quality=ann.quality if ann.quality is not None else 1.0,
        individual=individual,
        encounter=str(media.sequence_id) if media.sequence_id else None,
        # The station, not the deployment: a camera re-mounted at the same post
        # for the next season sees the same rocks, and the background filters
        # (static and shifted scene) must know those frames share a scene.
        camera=f"station:{station}" if station is not None else None,
        station=str(station) if station is not None else None,
    )


#: Annotations irbis made itself (a detection box, or the whole frame): their crop
#: may follow the burst's motion instead. A person's box is always kept as drawn.
MACHINE_CROPS = ("detector", "frame")


class _MotionMasks:
    """Motion masks of photo bursts, computed once per sequence when needed.

    The detector's best box often misses a close cat (a box on its head, or on
    the rocks beside it), and the crop then carries no coat. Within a burst from
    a fixed camera, what moves is the animal (:func:`~irbis.reid.preprocess.burst_masks`).
    On the Tajik set (boxes from the default detector, stage settings) cropping
    to the motion mask where the burst gives one, else to the box, raised
    per-frame top-1 from 0.344 to 0.534 and burst-pooled top-1 from 0.589 to
    0.635 (``irbis reid evaluate`` on labels whose ``box_*`` columns hold those boxes).
    """

    def __init__(
        self,
        project: Project | None = None,
        members: Callable[[int], list[tuple[int, Path]]] | None = None,
    ) -> None:
        if members is None:
            if project is None:
                raise ValueError("_MotionMasks needs a project or a members function")
            members = burst_photos(project)
        self._members = members
        self._masks: dict[int, dict[int, np.ndarray | None]] = {}

    def get(self, media: Media | _Photo) -> np.ndarray | None:
        """The motion mask of ``media`` in its burst, or ``None`` (no burst, no motion)."""
        seq = media.sequence_id
        if seq is None or media.mediatype != "image":
            return None
        if seq not in self._masks:
            members = self._members(seq)  # asked only when a feature is not cached
            frames: list[np.ndarray] = []
            try:
                frames = [read_image(path) for _, path in members]
            except BadImageError:
                frames = []  # one unreadable frame: no motion for this burst, boxes stand
            masks = burst_masks(frames) if len(frames) >= 3 else []
            # Bursts are visited in order; full-size masks of 4K frames are large.
            if len(self._masks) >= 2:
                self._masks.pop(next(iter(self._masks)))
            self._masks[seq] = {i: k for (i, _), k in zip(members, masks, strict=False)}
        return self._masks[seq].get(media.id)


def burst_photos(project: Project) -> Callable[[int], list[tuple[int, Path]]]:
    """A function giving a sequence's photos (media id, original's path) in time order."""

    def members(seq: int) -> list[tuple[int, Path]]:
        with project.session() as s:
            return [
                (m.id, media_path(project, m))
                for m in s.scalars(
                    select(Media)
                    .where(Media.sequence_id == seq, Media.mediatype == "image")
                    .order_by(Media.timestamp_utc, Media.id)
                )
            ]

    return members


def _variant(ann: Annotation | _Crop) -> str:
    """The feature cache's variant of a crop: machine crops follow the burst's motion."""
    return "motion1" if ann.source in MACHINE_CROPS else ""


def _features(
    cache: _FeatureCache,
    ra: ReidAnnotation,
    ann: Annotation | _Crop,
    media: Media | _Photo,
    motion: _MotionMasks,
) -> Features:
    if not _variant(ann):
        return cache.get(ann, lambda: extract(prepare(ra.image, box=ra.box)))

    def compute() -> Features:
        mask = motion.get(media)
        if mask is not None:
            return extract(prepare(ra.image, mask=mask))
        return extract(prepare(ra.image, box=ra.box))

    return cache.get(ann, compute, variant=_variant(ann))


def _proposals(
    ann: Annotation | _Crop,
    probability: float,
    decision: str,
    candidates: list[tuple[Match, Annotation | _Crop]],
    version: str,
    ids_by_name: dict[str, int],
) -> list[MatchDecision]:
    """Proposal rows of one frame: ``candidates`` pair a match with the frame it is from."""
    rows_out: list[MatchDecision] = []
    if decision == "new" or not candidates:
        rows_out.append(
            MatchDecision(
                annotation_id=ann.id,
                individual_id=None,
                decision="proposed",
                rank=0,
                score=None,
                probability=1.0 - probability if candidates else 1.0,
                matches={"catalogue": version},
                side=ann.side,
                by=MODEL,
                created_utc=_now(),
            )
        )
    for rank, (m, source) in enumerate(candidates, 1):
        matches: dict[str, Any] = {
            "catalogue": version,
            "machine_decision": decision,
            "annotation_id": int(m.annotation),
            "inliers": int(m.inliers),
            "query_xy": np.asarray(m.query_xy, float).round(1).tolist(),
            "match_xy": np.asarray(m.match_xy, float).round(1).tolist(),
        }
        if source.id != ann.id:
            # Another frame of the encounter found this one: its keypoints are
            # on that frame, so they are kept there and not drawn on this one.
            matches["via_annotation_id"] = source.id
            matches["via_query_xy"] = matches.pop("query_xy")
            matches["query_xy"] = []
        rows_out.append(
            MatchDecision(
                annotation_id=ann.id,
                individual_id=ids_by_name.get(m.individual or ""),
                decision="proposed",
                rank=rank,
                score=float(m.score),
                probability=float(m.probability),
                matches=matches,
                side=ann.side,
                by=MODEL,
                created_utc=_now(),
            )
        )
    return rows_out


@dataclass
class _IdentifyRun:
    """A started identify run: the catalogue and what is left to match, burst by burst."""

    summary: IdentifySummary
    catalogue: Catalogue
    version: str  # of the catalogue: proposals stamped with another one are redone
    ids_by_name: dict[str, int]
    bursts: list[list[_Query]]  # in the order proposals are written
    cache: _FeatureCache
    motion: _MotionMasks
    total: int  # crops to match
    tuned: TunedRanking | None = None  # the project's survey-tuned ranking, if installed


def _by_sequence(queries: list[_Query]) -> list[list[_Query]]:
    """Queries grouped by their media's sequence (a burst), in order of first appearance."""
    groups: dict[object, list[_Query]] = {}
    for q in queries:
        seq = q.photo.sequence_id
        groups.setdefault(("seq", seq) if seq else ("ann", q.crop.id), []).append(q)
    return list(groups.values())


def _start_identify(
    project: Project,
    min_score: float,
    warm: Callable[[list[list[_Query]]], None] | None = None,
) -> _IdentifyRun:
    """Create annotations, build the catalogue and list the crops still to match.

    Shared by the local run (:func:`run_identify`) and the Ray run
    (:mod:`irbis.pipeline.cluster_identify`), so both match the same crops
    against the same catalogue.

    Parameters
    ----------
    project:
        An open project.
    min_score:
        Smallest detection score used as a crop.
    warm:
        Called with the catalogue crops whose features are not cached yet (by
        burst) before the catalogue is built: the Ray run has its workers
        extract them into the shared cache, so the driver only reads them.

    Returns
    -------
    _IdentifyRun
    """
    summary = IdentifySummary()
    summary.annotations_created = create_annotations(project, min_score=min_score)
    cache = _FeatureCache(project.tmp_dir / "reid")
    catalogue = Catalogue()
    with project.session() as s:
        rows = s.execute(
            select(Annotation, Media, Individual)
            .join(Media, Media.id == Annotation.media_id)
            .join(Individual, Individual.id == Annotation.individual_id, isouter=True)
            .order_by(Annotation.id)
        ).all()
        everyone = list(s.scalars(select(Individual)))
        station_of = dict(s.execute(select(Deployment.id, Deployment.station_id)).tuples().all())
        names = {i.id: i.name for i in everyone}
        # A merged individual's evidence counts for the one it was merged into.
        roots = merge_roots({i.id: i.merged_into_id for i in everyone})

        ids_by_name = {v: k for k, v in names.items()}
        # A catalogue "version": proposals made against a different set of
        # confirmed annotations are stale and are made again.
        confirmed = sorted(
            (a.id, roots[a.individual_id]) for a, _, _ in rows if a.individual_id is not None
        )
        # Installing (or removing) a survey-tuned ranking changes the order, so
        # its stamp is part of the version and every proposal is made again.
        tuned_at = (project.settings.extra.get(RANKING_SETTING) or {}).get("at")
        key = repr(confirmed) + (f"|ranking:{tuned_at}" if tuned_at else "")
        version = hashlib.sha1(key.encode()).hexdigest()[:16]
        stamped = {
            d.annotation_id: d.matches.get("catalogue")
            for d in s.scalars(
                select(MatchDecision).where(
                    MatchDecision.by == MODEL, MatchDecision.decision == "proposed"
                )
            )
        }
        decided_by_people = set(
            s.scalars(select(MatchDecision.annotation_id).where(MatchDecision.by != MODEL)).all()
        )

    motion = _MotionMasks(project)
    known = [  # the catalogue: confirmed crops under the name they count for
        _Query(
            _Crop.of(a),
            _Photo.of(m),
            _reid_annotation(project, a, m, names[roots[ind.id]], station_of),
        )
        for a, m, ind in rows
        if ind is not None
    ]
    if warm is not None:
        cold = [q for q in known if not cache.has(q.crop, _variant(q.crop))]
        if cold:
            warm(_by_sequence(cold))
    for q in known:
        try:
            catalogue.add(q.ra, _features(cache, q.ra, q.crop, q.photo, motion))
        except BadImageError as exc:
            summary.errors.append(
                {"annotation": q.crop.id, "file": q.photo.file_name, "error": str(exc)}
            )
    summary.catalogue_annotations = len(catalogue)
    summary.catalogue_individuals = len(catalogue.individuals())
    tuned = TunedRanking.load(project, catalogue)
    summary.ranking = "survey-tuned" if tuned is not None else "untrained"

    queries = [
        _Query(_Crop.of(a), _Photo.of(m), _reid_annotation(project, a, m, None, station_of))
        for a, m, ind in rows
        if ind is None and a.id not in decided_by_people and stamped.get(a.id) != version
    ]
    summary.skipped = sum(1 for a, _, ind in rows if ind is None) - len(queries)
    return _IdentifyRun(
        summary, catalogue, version, ids_by_name, _by_sequence(queries), cache, motion,
        len(queries), tuned,
    )  # fmt: skip


#: What matching one burst gives: each readable crop with the catalogue's answer,
#: and one error dict per crop that could not be read.
BurstMatches = tuple[list[tuple[_Crop, QueryResult]], list[dict[str, Any]]]


def _match_burst(
    burst: list[_Query], catalogue: Catalogue, cache: _FeatureCache, motion: _MotionMasks
) -> BurstMatches:
    """Match each frame of one burst on its own (pooling is the writer's job).

    The frames' descriptors go to the index in one search
    (:meth:`~irbis.reid.catalogue.Catalogue.query_encounter`); each frame is
    still scored and verified on its own, as a frame-by-frame query would.
    """
    errors: list[dict[str, Any]] = []
    readable: list[tuple[_Query, Features]] = []
    for q in burst:
        try:
            readable.append((q, _features(cache, q.ra, q.crop, q.photo, motion)))
        except BadImageError as exc:
            errors.append({"annotation": q.crop.id, "file": q.photo.file_name, "error": str(exc)})
    answers = catalogue.query_encounter(
        [f for _, f in readable],
        sides=[q.ra.side for q, _ in readable],
        cameras=[q.ra.camera for q, _ in readable],
    )
    return [(q.crop, r) for (q, _), r in zip(readable, answers, strict=True)], errors


def _finish_burst(project: Project, run: _IdentifyRun, matched: BurstMatches, top: int) -> None:
    """Pool one burst's answers into proposals and write them in one transaction.

    Shared by the local and the Ray run. Idempotent: a burst written again
    replaces its machine proposals, so a batch retried on a cluster doubles nothing.
    """
    results, errors = matched
    summary = run.summary
    summary.errors.extend(errors)
    er = pool_encounter([r for _, r in results], run.catalogue.config.decision)
    if run.tuned is not None:
        er = run.tuned.apply(er, [ann.id for ann, _ in results])
    proposals: list[tuple[_Crop, list[MatchDecision]]] = []
    for i, (ann, _) in enumerate(results):
        summary.queried += 1
        candidates = [(m, results[j][0]) for m, j in encounter_candidates(er, i)[:top]]
        decision = er.decision
        if decision == "new" or not candidates:
            summary.proposed_new += 1
        elif decision == "same":
            summary.proposed_same += 1
        else:
            summary.unsure += 1
        proposals.append(
            (
                ann,
                _proposals(ann, er.probability, decision, candidates, run.version, run.ids_by_name),
            )
        )
    # One transaction per burst: an interrupted run leaves a burst all
    # proposed or not at all, so a resumed run pools the same frames.
    with project.session() as s:
        for ann, rows_out in proposals:
            # Older machine proposals for this annotation are replaced, never
            # a person's decision (those are different rows, by != MODEL).
            for old in s.scalars(
                select(MatchDecision).where(
                    MatchDecision.annotation_id == ann.id,
                    MatchDecision.by == MODEL,
                    MatchDecision.decision == "proposed",
                )
            ):
                s.delete(old)
            s.add_all(rows_out)
        s.commit()


def run_identify(
    project: Project,
    *,
    top: int = 5,
    min_score: float = 0.1,
    progress: Callable[[int, int], None] | None = None,
) -> IdentifySummary:
    """Create annotations, build the catalogue and propose matches (see the module doc).

    Parameters
    ----------
    project:
        An open project.
    top:
        Candidate individuals proposed per annotation.
    min_score:
        Smallest detection score used as a crop.
    progress:
        Called with ``(done, total)`` annotations after each sequence is written.

    Returns
    -------
    IdentifySummary
    """
    run = _start_identify(project, min_score)
    done = 0
    for burst in run.bursts:
        _finish_burst(project, run, _match_burst(burst, run.catalogue, run.cache, run.motion), top)
        done += len(burst)
        if progress:
            progress(done, run.total)
    return run.summary
