"""Identification review: machine proposals in, people's decisions out.

The identify stage writes ranked ``match_decisions`` with ``decision =
"proposed"`` (``by = "model:..."``) and the matched keypoints. A reviewer
answers with a new row per decision: ``same`` (accept a candidate), ``different``
(reject one), ``new`` (a new individual) or ``unsure``. Accepting or naming a
new individual also sets the annotation's ``individual_id``; the annotation's
``version`` is checked and bumped like a media file's ``review_version``, so
two reviewers never silently overwrite each other's identification.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from irbis.core.errors import BadInputError
from irbis.reid.flank import propose_side, travel_for
from irbis.store.audit import record
from irbis.store.project import Project
from irbis.store.schema import (
    Annotation,
    Deployment,
    Individual,
    MatchDecision,
    Media,
    Station,
)
from irbis.web.errors import ConflictError, ForbiddenError, NotFoundError
from irbis.web.individuals import root_of

DECISIONS = {"accept": "same", "reject": "different", "new": "new", "unsure": "unsure"}
SIDES = ("left", "right", "unknown")
#: Human decisions that settle an annotation (a rejection only rules out one candidate).
SETTLING = ("same", "new", "unsure")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _is_machine(by: str) -> bool:
    return by.startswith("model")


# Built once: an alias copies every column of its table, which cost more than
# the queue's own queries when done per request.
_PROPOSED = aliased(MatchDecision, name="proposed")
_HUMAN = aliased(MatchDecision, name="human")


def _pending_clause():
    """Annotations with machine proposals, no individual, and no settling human decision."""
    proposed, human = _PROPOSED, _HUMAN
    return (
        Annotation.individual_id.is_(None),
        exists().where(proposed.annotation_id == Annotation.id, proposed.decision == "proposed"),
        ~exists().where(
            human.annotation_id == Annotation.id,
            human.decision.in_(SETTLING),
            ~human.by.like("model%"),
        ),
    )


def _box(a: Any) -> dict[str, float]:
    """The box of an annotation (ORM object or Core row)."""
    return {"x": a.x, "y": a.y, "width": a.width, "height": a.height}


def review_queue(
    project: Project, limit: int = 50, after: int = 0, by_encounter: bool = True
) -> dict[str, Any]:
    """Annotations waiting for a person, with their top candidates.

    The encounter is the unit of review: by default the queue lists one item
    per encounter (a sequence; an annotation without one is its own), the
    encounter's first pending annotation, with every pending annotation of
    that encounter in ``encounter.pending``. The identify stage gives all of
    them the encounter's candidates, so one decision can settle them all
    (:class:`Decision` with ``encounter=True``). ``by_encounter=False`` lists
    every annotation.

    Returns
    -------
    dict
        ``{"items": [{"id", "media_id", "side", "box", "station", "time_local",
        "sequence_id", "encounter": {"sequence_id", "pending": [ids]},
        "candidates": [{"individual_id", "name", "rank", "score", "probability"}]}],
        "next": id or None, "pending": annotations, "pending_encounters": encounters}``.
    """
    if not 1 <= limit <= 500:
        raise BadInputError("limit", f"{limit} is out of range", "use 1..500")
    a, d = Annotation, MatchDecision
    clause = _pending_clause()
    group = func.coalesce(Media.sequence_id, -a.id)
    with project.engine.connect() as conn:  # Core rows: this list is read at every page turn
        total = conn.execute(select(func.count()).select_from(a).where(*clause)).scalar()
        firsts = (
            select(func.min(a.id).label("first"))
            .join(Media, Media.id == a.media_id)
            .where(*clause)
            .group_by(group)
        )
        encounters = conn.execute(select(func.count()).select_from(firsts.subquery())).scalar()
        q = (
            select(
                a.id,
                a.media_id,
                a.side,
                a.x,
                a.y,
                a.width,
                a.height,
                a.version,
                Media.timestamp_local,
                Media.sequence_id,
                Station.name,
            )
            .join(Media, Media.id == a.media_id)
            .outerjoin(Deployment, Deployment.id == Media.deployment_id)
            .outerjoin(Station, Station.id == Deployment.station_id)
            .where(*clause, a.id > after)
        )
        if by_encounter:
            q = q.where(a.id.in_(firsts.scalar_subquery()))
        rows = conn.execute(q.order_by(a.id).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        members: dict[int, list[int]] = defaultdict(list)
        seqs = sorted({r.sequence_id for r in rows if r.sequence_id is not None})
        if seqs:
            for ann_id, seq in conn.execute(
                select(a.id, Media.sequence_id)
                .join(Media, Media.id == a.media_id)
                .where(*clause, Media.sequence_id.in_(seqs))
                .order_by(a.id)
            ):
                members[seq].append(ann_id)
        cands: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if rows:
            for ann_id, ind, rank, score, prob, name in conn.execute(
                select(
                    d.annotation_id,
                    d.individual_id,
                    d.rank,
                    d.score,
                    d.probability,
                    Individual.name,
                )
                .outerjoin(Individual, Individual.id == d.individual_id)
                .where(d.annotation_id.in_([r.id for r in rows]), d.decision == "proposed")
                .order_by(d.annotation_id, d.rank)
            ):
                cands[ann_id].append(
                    {
                        "individual_id": ind,
                        "name": name,
                        "rank": rank,
                        "score": score,
                        "probability": prob,
                    }
                )
    items = [
        {
            "id": r.id,
            "media_id": r.media_id,
            "side": r.side,
            "box": _box(r),
            "station": r.name,
            "time_local": r.timestamp_local.isoformat() if r.timestamp_local else None,
            "version": r.version,
            "sequence_id": r.sequence_id,
            "encounter": {
                "sequence_id": r.sequence_id,
                "pending": members.get(r.sequence_id, [r.id]) if r.sequence_id else [r.id],
            },
            "candidates": cands.get(r.id, []),
        }
        for r in rows
    ]
    return {
        "items": items,
        "next": rows[-1].id if more and rows else None,
        "pending": total,
        "pending_encounters": encounters,
    }


def _best_photo(s: Session, individual_id: int, side: str | None) -> dict[str, Any] | None:
    """The best confirmed annotation of an individual, preferring the given flank."""
    q = select(Annotation).where(Annotation.individual_id == individual_id)
    rows = s.scalars(q).all()
    if not rows:
        return None
    rows.sort(key=lambda a: (a.side != side, -(a.quality or 0.0), a.id))
    a = rows[0]
    return {"annotation_id": a.id, "media_id": a.media_id, "side": a.side, "box": _box(a)}


def annotation_detail(project: Project, ann_id: int) -> dict[str, Any]:
    """One annotation with its proposals (keypoints included) and every human decision."""
    with project.session() as s:
        row = s.execute(
            select(Annotation, Media, Station.name)
            .join(Media, Media.id == Annotation.media_id)
            .outerjoin(Deployment, Deployment.id == Media.deployment_id)
            .outerjoin(Station, Station.id == Deployment.station_id)
            .where(Annotation.id == ann_id)
        ).first()
        if row is None:
            raise NotFoundError(f"annotation {ann_id} not found")
        a, m, station = row
        decisions = s.execute(
            select(MatchDecision, Individual.name)
            .outerjoin(Individual, Individual.id == MatchDecision.individual_id)
            .where(MatchDecision.annotation_id == ann_id)
            .order_by(MatchDecision.rank, MatchDecision.id)
        ).all()
        burst = _burst(s, m)
        proposed_side = _proposed_side(a.side, m.id, _box(a), burst)
        # The candidate's photo shown beside the crop: the same flank where known or proposed.
        flank = proposed_side["side"] if proposed_side else a.side
        proposals, history = [], []
        for d, name in decisions:
            item = {
                "id": d.id,
                "individual_id": d.individual_id,
                "name": name,
                "decision": d.decision,
                "rank": d.rank,
                "score": d.score,
                "probability": d.probability,
                "side": d.side,
                "by": d.by,
                "created_utc": d.created_utc.isoformat() if d.created_utc else None,
            }
            if d.decision == "proposed":
                matches = d.matches or {}
                item["matches"] = {
                    "annotation_id": matches.get("annotation_id"),
                    "inliers": matches.get("inliers"),
                    "query_xy": matches.get("query_xy", []),
                    "match_xy": matches.get("match_xy", []),
                    # Found by another frame of the encounter (its keypoints are there).
                    "via_annotation_id": matches.get("via_annotation_id"),
                }
                ref = matches.get("annotation_id")
                other = s.get(Annotation, ref) if ref is not None else None
                if other is not None:
                    item["photo"] = {
                        "annotation_id": other.id,
                        "media_id": other.media_id,
                        "side": other.side,
                        "box": _box(other),
                    }
                elif d.individual_id is not None:
                    item["photo"] = _best_photo(s, d.individual_id, flank)
                proposals.append(item)
            else:
                history.append(item)
        individual = s.get(Individual, a.individual_id) if a.individual_id else None
    history.sort(key=lambda x: x["id"])
    return {
        "id": a.id,
        "media_id": a.media_id,
        "media": {"width": m.width, "height": m.height, "file_name": m.file_name},
        "frame": a.frame,
        "side": a.side,
        "box": _box(a),
        "quality": a.quality,
        "source": a.source,
        "version": a.version,
        "station": station,
        "time_local": m.timestamp_local.isoformat() if m.timestamp_local else None,
        "individual": (
            {"id": individual.id, "name": individual.name} if individual is not None else None
        ),
        "proposals": proposals,
        "decisions": history,
        "sequence_id": m.sequence_id,
        "burst": burst,
        # Only for a side still "unknown"; stored nowhere: the reviewer's choice is.
        "proposed_side": proposed_side,
    }


def _proposed_side(
    side: str, media_id: int, box: dict[str, float], burst: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The flank proposed from the animal's travel across its burst, or None.

    A side a person chose (left/right) gets no proposal. The other frames'
    boxes (drawn or the detector's) give the heading (:mod:`irbis.reid.flank`).
    """
    at = next((i for i, f in enumerate(burst) if f["media_id"] == media_id), None)
    if side != "unknown" or at is None or len(burst) < 2:
        return None

    def xywh(b: dict[str, float]) -> tuple[float, float, float, float]:
        return (b["x"], b["y"], b["width"], b["height"])

    frames = [[xywh(an["box"]) for an in f["annotations"]] for f in burst]
    stamps = [f["time_local"] for f in burst]
    times = [datetime.fromisoformat(t).timestamp() for t in stamps] if all(stamps) else None
    prop = propose_side(side, travel=travel_for(frames, at, xywh(box), times))
    return prop.as_dict() if prop is not None else None


#: Frames of a burst shown beside the crop (the ones around it when there are more).
_BURST_MAX = 40


def _burst(s: Session, m: Media) -> list[dict[str, Any]]:
    """Every frame of the annotation's burst, in time order, with the animals boxed on it.

    The reviewer sees the crop beside the whole frame and the frames around it:
    the pose, the flank turned to the camera and the light are often plainer
    there than in the one crop the matcher chose.
    """
    if m.sequence_id is None:
        frames = [m]
    else:
        frames = list(
            s.scalars(
                select(Media)
                .where(Media.sequence_id == m.sequence_id)
                .order_by(Media.timestamp_local, Media.id)
            )
        )
    if len(frames) > _BURST_MAX:  # a long video sequence: the frames around this one
        at = next((i for i, f in enumerate(frames) if f.id == m.id), 0)
        lo = max(0, min(at - _BURST_MAX // 2, len(frames) - _BURST_MAX))
        frames = frames[lo : lo + _BURST_MAX]
    anns = s.execute(
        select(Annotation, Individual.name)
        .outerjoin(Individual, Individual.id == Annotation.individual_id)
        .where(Annotation.media_id.in_([f.id for f in frames]))
        .order_by(Annotation.id)
    ).all()
    by_media: dict[int, list[dict[str, Any]]] = {}
    for an, name in anns:
        by_media.setdefault(an.media_id, []).append(
            {"id": an.id, "box": _box(an), "side": an.side, "individual": name}
        )
    return [
        {
            "media_id": f.id,
            "mediatype": f.mediatype,
            "time_local": f.timestamp_local.isoformat() if f.timestamp_local else None,
            "annotations": by_media.get(f.id, []),
        }
        for f in frames
    ]


@dataclass(frozen=True)
class Decision:
    """A reviewer's answer about one annotation."""

    decision: str  # accept | reject | new | unsure
    version: int
    side: str = "unknown"
    individual_id: int | None = None
    name: str | None = None
    sex: str = "unknown"
    #: Also decide every other pending annotation of the same encounter (sequence).
    encounter: bool = False

    def check(self) -> None:
        if self.decision not in DECISIONS:
            raise BadInputError(
                "decision", f"unknown decision {self.decision!r}", "use " + ", ".join(DECISIONS)
            )
        if self.side not in SIDES:
            raise BadInputError("side", f"unknown side {self.side!r}", "use left, right or unknown")
        if self.decision in ("accept", "reject") and self.individual_id is None:
            raise BadInputError(
                "individual_id", f"{self.decision} needs the candidate", "send individual_id"
            )


def _next_name(s: Session) -> str:
    n = s.scalar(select(func.count()).select_from(Individual)) or 0
    while True:
        n += 1
        name = f"SL-{n:03d}"
        if s.scalar(select(Individual.id).where(Individual.name == name)) is None:
            return name


def _new_individual(s: Session, name: str, sex: str, user: str) -> Individual:
    """Add a new individual named ``name`` (or the next free SL-NNN) in ``s``'s transaction.

    Two reviewers naming new animals at once can both pick the same next
    SL-NNN; the loser's insert hits the unique name, is rolled back to a
    savepoint and takes the next free name. A name the reviewer chose that
    someone else took meanwhile is a 409.
    """
    chosen = bool(name)
    for _ in range(20):
        candidate = name if chosen else _next_name(s)
        if chosen and s.scalar(select(Individual.id).where(Individual.name == candidate)):
            s.rollback()
            raise BadInputError(
                f"individual {candidate!r}", "the name is taken", "choose another name"
            )
        ind = Individual(name=candidate, sex=sex, created_by=user, created_utc=_now())
        try:
            with s.begin_nested():
                s.add(ind)
        except IntegrityError:
            if chosen:
                s.rollback()
                raise ConflictError(
                    f"individual {candidate!r} was just created by someone else; "
                    "choose another name"
                ) from None
            continue
        return ind
    s.rollback()
    raise ConflictError("could not find a free SL-NNN name (many new individuals at once); retry")


def decide(
    project: Project, ann_id: int, d: Decision, user: str, *, may_choose_any: bool = False
) -> dict[str, Any]:
    """Record a reviewer's decision on an annotation (one transaction).

    ``accept`` names one of the annotation's candidates: an individual the
    matcher proposed for it (or the one a proposed individual was merged
    into). Accepting any other individual needs ``may_choose_any`` (admins):
    an identification puts the individual's pages on that photo's station, so
    a reviewer must not be able to attach any animal to any photo.

    Returns
    -------
    dict
        ``{"annotation_id", "decision", "individual_id", "individual", "version"}``.

    Raises
    ------
    NotFoundError
        The annotation or the candidate individual does not exist.
    ConflictError
        Someone decided on this annotation after the client loaded it.
    """
    d.check()
    with project.session() as s:
        a = s.get(Annotation, ann_id)
        if a is None:
            raise NotFoundError(f"annotation {ann_id} not found")
        before = {"individual_id": a.individual_id, "side": a.side}
        target: Individual | None = None
        if d.individual_id is not None:
            target = s.get(Individual, d.individual_id)
            if target is None:
                raise NotFoundError(f"individual {d.individual_id} not found")
            root = root_of(s, target.id)
            if root is None:
                raise ConflictError(
                    f"individual {d.individual_id}: its merges form a loop; ask an admin "
                    "to repair merged_into_id in the database"
                )
            target = s.get(Individual, root)
            if d.decision == "accept" and not may_choose_any:
                proposed = s.scalars(
                    select(MatchDecision.individual_id).where(
                        MatchDecision.annotation_id == ann_id,
                        MatchDecision.decision == "proposed",
                        MatchDecision.individual_id.is_not(None),
                    )
                ).all()
                if root not in {root_of(s, i) for i in proposed}:
                    raise ForbiddenError(
                        f"annotation {ann_id}: individual {d.individual_id} is not one of its "
                        "proposed candidates; a reviewer accepts only those (choose a "
                        "candidate, name a new individual, or ask an admin to assign it)"
                    )
        res = s.execute(
            update(Annotation)
            .where(Annotation.id == ann_id, Annotation.version == d.version)
            .values(version=Annotation.version + 1)
        )
        if res.rowcount != 1:
            s.rollback()
            last = s.execute(
                select(MatchDecision.by, MatchDecision.decision)
                .where(MatchDecision.annotation_id == ann_id, ~MatchDecision.by.like("model%"))
                .order_by(MatchDecision.id.desc())
                .limit(1)
            ).first()
            who = f" ({last[0]} said {last[1]})" if last else ""
            raise ConflictError(
                f"annotation {ann_id} was decided by someone else after you loaded it{who}; "
                "reload it and decide again"
            )
        values: dict[str, Any] = {}
        if d.side != "unknown":
            values["side"] = d.side
        if d.decision == "new":
            target = _new_individual(s, (d.name or "").strip(), d.sex or "unknown", user)
        if d.decision in ("accept", "new"):
            values["individual_id"] = target.id
        if values:
            s.execute(update(Annotation).where(Annotation.id == ann_id).values(**values))
        s.add(
            MatchDecision(
                annotation_id=ann_id,
                individual_id=target.id if target is not None else None,
                decision=DECISIONS[d.decision],
                side=d.side,
                by=user,
                matches={},
                created_utc=_now(),
            )
        )
        after = {**before, **values, "decision": DECISIONS[d.decision]}
        moved = before["individual_id"] is not None and values.get("individual_id") not in (
            None,
            before["individual_id"],
        )
        # A photo taken from one individual's record to another's: the catalogue's split.
        action = "split" if moved else "identify"
        record(s, user, action, f"annotation:{ann_id}", before=before, after=after)
        decided = [ann_id]
        if d.encounter:
            decided += _decide_siblings(s, a, d, target, user, may_choose_any)
        s.commit()
        from irbis.web.cache import clear

        clear(project.root)
        return {
            "annotation_id": ann_id,
            "decision": DECISIONS[d.decision],
            "individual_id": target.id if target is not None else None,
            "individual": target.name if target is not None else None,
            "version": d.version + 1,
            "annotations": decided,
        }


def _decide_siblings(
    s: Session,
    a: Annotation,
    d: Decision,
    target: Individual | None,
    user: str,
    may_choose_any: bool,
) -> list[int]:
    """The same decision on the other pending annotations of ``a``'s encounter.

    Each sibling gets its own decision row, version bump and audit entry. A
    sibling someone else decided meanwhile is left alone (its version or
    individual changed), and an accepted individual that was not proposed for
    a sibling is not forced on it (unless ``may_choose_any``): those stay in
    the queue. The reviewer's flank side is not copied: a burst can show both.

    Returns
    -------
    list
        Ids of the siblings decided.
    """
    seq = s.scalar(select(Media.sequence_id).where(Media.id == a.media_id))
    if seq is None:
        return []
    siblings = s.scalars(
        select(Annotation)
        .join(Media, Media.id == Annotation.media_id)
        .where(Media.sequence_id == seq, Annotation.id != a.id, *_pending_clause())
        .order_by(Annotation.id)
    ).all()
    done: list[int] = []
    for sib in siblings:
        if d.decision == "accept" and target is not None and not may_choose_any:
            proposed = s.scalars(
                select(MatchDecision.individual_id).where(
                    MatchDecision.annotation_id == sib.id,
                    MatchDecision.decision == "proposed",
                    MatchDecision.individual_id.is_not(None),
                )
            ).all()
            if target.id not in {root_of(s, i) for i in proposed}:
                continue
        values: dict[str, Any] = {"version": sib.version + 1}
        if d.decision in ("accept", "new") and target is not None:
            values["individual_id"] = target.id
        res = s.execute(
            update(Annotation)
            .where(
                Annotation.id == sib.id,
                Annotation.version == sib.version,
                Annotation.individual_id.is_(None),
            )
            .values(**values)
        )
        if res.rowcount != 1:
            continue
        s.add(
            MatchDecision(
                annotation_id=sib.id,
                individual_id=target.id if target is not None else None,
                decision=DECISIONS[d.decision],
                side=sib.side,
                by=user,
                matches={"encounter_of": a.id},
                created_utc=_now(),
            )
        )
        record(
            s,
            user,
            "identify",
            f"annotation:{sib.id}",
            before={"individual_id": None, "side": sib.side},
            after={
                "individual_id": values.get("individual_id"),
                "side": sib.side,
                "decision": DECISIONS[d.decision],
                "encounter_of": a.id,
            },
        )
        done.append(sib.id)
    return done
