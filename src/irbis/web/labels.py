"""Human labels of sequences, written per media file, with optimistic concurrency.

A label (species and count, or blank) becomes one human observation per media
file of the sequence: human data is anchored to media, never to the sequence,
because sequences are rebuilt when clocks are corrected. The person's previous
observations on those files are *retracted*, never deleted, and the new rows
remember which they replaced (``extra["replaces"]``) so an undo can bring them
back as fresh rows.

Concurrency: the client sends the ``review_version`` of every media file as it
saw them. Each file's version is bumped with a compare-and-set
(``UPDATE ... WHERE review_version = seen``); if any file moved on, the whole
request is rolled back and answered with a conflict naming who labelled it
last. Two reviewers therefore never silently overwrite each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError
from irbis.core.text import check_no_nul
from irbis.store.audit import record
from irbis.store.groups import successor
from irbis.store.project import Project
from irbis.store.schema import Media, MediaGroup, Observation
from irbis.store.sequence_summary import HUMAN
from irbis.web.errors import ConflictError, MovedError, NotFoundError

#: Camtrap DP's vocabularies of the per-observation fields.
SEXES = ("female", "male")
LIFE_STAGES = ("adult", "subadult", "juvenile")


@dataclass(frozen=True)
class Label:
    """What a person says is in a sequence: a species with a count, or blank.

    ``sex``, ``life_stage``, ``behavior`` and ``comments`` are Camtrap DP's
    per-observation fields (``sex``, ``lifeStage``, ``behavior``,
    ``observationComments``); ``count`` is the number of animals this
    observation is about (a mother and two cubs: two observations, 1 and 2).
    """

    species: str | None = None
    count: int | None = None
    blank: bool = False
    individual: str | None = None
    comments: str = ""
    sex: str | None = None
    life_stage: str | None = None
    behavior: str | None = None

    def individual_name(self) -> str | None:
        """The individual's name without surrounding spaces; None when empty or blank."""
        return (self.individual or "").strip() or None

    def check(self) -> None:
        """Raise :class:`BadInputError` for a label that says nothing or contradicts itself."""
        check_no_nul(
            (
                (f"label.{k}", getattr(self, k))
                for k in ("species", "individual", "comments", "sex", "life_stage", "behavior")
            ),
            "label",
            "remove it and send the label again",
        )
        species = (self.species or "").strip()
        if self.blank and species:
            raise BadInputError("label", "blank and a species at once", "send one of them")
        if not self.blank and not species:
            raise BadInputError("label", "no species and not blank", "send species or blank")
        if self.count is not None and self.count < 1:
            raise BadInputError("label.count", f"{self.count} animals", "count is 1 or more")
        if self.sex and self.sex not in SEXES:
            raise BadInputError("label.sex", f"{self.sex!r}", "use " + " or ".join(SEXES))
        if self.life_stage and self.life_stage not in LIFE_STAGES:
            raise BadInputError(
                "label.life_stage", f"{self.life_stage!r}", "use " + ", ".join(LIFE_STAGES)
            )
        if self.blank and (self.sex or self.life_stage or (self.behavior or "").strip()):
            raise BadInputError(
                "label", "blank with sex, life stage or behaviour", "a blank has no animal"
            )


def check_labels(labels: Sequence[Label]) -> list[Label]:
    """The observations of one write, checked: one blank alone, or animals."""
    labels = list(labels)
    if not labels:
        raise BadInputError("observations", "none", "send at least one")
    for lab in labels:
        lab.check()
    if len(labels) > 1 and any(lab.blank for lab in labels):
        raise BadInputError("observations", "blank beside other observations", "send blank alone")
    return labels


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _media_of(s: Session, seq_id: int) -> list[int]:
    kind = s.scalar(select(MediaGroup.kind).where(MediaGroup.id == seq_id))
    if kind != "sequence":
        moved = successor(s, seq_id)
        if moved is not None:
            raise MovedError("sequence", seq_id, moved)
        raise NotFoundError(f"sequence {seq_id} not found")
    return list(
        s.scalars(select(Media.id).where(Media.sequence_id == seq_id).order_by(Media.id)).all()
    )


def _lock_media(s: Session, media_ids: Iterable[object]) -> None:
    """PostgreSQL: hold the media rows a bulk label will bump, in id order first.

    Every writer that holds several media rows takes them in id order (an
    ingest regrouping a deployment too), so none waits for another in a
    cycle; bumping sequence after sequence in the order sent could deadlock.
    """
    if s.get_bind().dialect.name != "postgresql":
        return
    ids = sorted({int(m) for m in media_ids if 0 <= int(m) <= 2**31 - 1})  # integer keys
    if len(ids) > 1:
        s.execute(
            select(Media.id)
            .where(Media.id.in_(ids))
            .order_by(Media.id)
            .with_for_update(key_share=True)
        ).all()


def _check_versions(seq_id: int, media: list[int], versions: Mapping[int, int]) -> None:
    missing = [m for m in media if m not in versions]
    extra = [m for m in versions if m not in set(media)]
    if missing or extra:
        raise BadInputError(
            f"sequence {seq_id}",
            "versions must list exactly the media of the sequence "
            f"(missing {missing}, not in it {extra})",
            "reload the sequence and send the versions it shows",
        )


def _bump(s: Session, seq_id: int, versions: Mapping[int, int]) -> dict[int, int]:
    """Compare-and-set every media's review_version; raise ConflictError if one moved."""
    out = {}
    for mid in sorted(versions):
        seen = int(versions[mid])
        res = s.execute(
            update(Media)
            .where(Media.id == mid, Media.review_version == seen)
            .values(review_version=Media.review_version + 1)
        )
        if res.rowcount != 1:
            s.rollback()
            last = s.execute(
                select(Observation.by, Observation.created_utc, Media.review_version)
                .join(Media, Media.id == Observation.media_id)
                .where(Observation.media_id == mid, Observation.source == HUMAN)
                .order_by(Observation.id.desc())
                .limit(1)
            ).first()
            who = f" by {last[0]} at {last[1]:%Y-%m-%d %H:%M:%S} UTC" if last else ""
            now = last[2] if last else s.scalar(select(Media.review_version).where(Media.id == mid))
            raise ConflictError(
                f"sequence {seq_id} was changed{who} after you loaded it "
                f"(media {mid} is at version {now}, you saw {seen}); "
                "reload it to see the current label, then label again"
            )
        out[mid] = seen + 1
    return out


def _current_human(s: Session, media: Sequence[int]) -> list[Observation]:
    return list(
        s.scalars(
            select(Observation)
            .where(
                Observation.media_id.in_(media),
                Observation.source == HUMAN,
                Observation.retracted_utc.is_(None),
            )
            .order_by(Observation.id)
        ).all()
    )


def label_sequences(
    project: Project,
    items: Sequence[tuple[int, Mapping[int, int]]],
    label: Label | Sequence[Label],
    user: str,
    *,
    proposal: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Label one or more sequences in one transaction (all or nothing).

    Parameters
    ----------
    items:
        ``(sequence_id, {media_id: review_version seen})`` per sequence.
    label:
        The species and count, or blank; or several observations (each its
        own species, count, sex, life stage, behaviour and notes) that
        together replace the person's label: one row per observation per file.
    user:
        Who says so (kept in ``observations.by``).
    proposal:
        When the person accepted a classifier's proposal: which model said
        what with which probability (kept in each row's ``extra["proposal"]``
        and in the audit record: machine-proposed, person-confirmed).

    Returns
    -------
    list of dict
        Per sequence: ``{"sequence_id", "action", "versions": {media_id: new version}}``.

    Raises
    ------
    NotFoundError, BadInputError, ConflictError
        Nothing is written in any of these cases.
    """
    labels = check_labels([label] if isinstance(label, Label) else label)
    if not items:
        raise BadInputError("items", "no sequence to label", "send at least one sequence")
    now = _now()
    out = []
    with project.session() as s:
        _lock_media(s, [m for _, versions in items for m in versions])
        for seq_id, versions in items:
            media = _media_of(s, seq_id)
            _check_versions(seq_id, media, versions)
            new_versions = _bump(s, seq_id, versions)
            action = uuid.uuid4().hex
            old = _current_human(s, media)
            replaced: dict[int, list[int]] = {m: [] for m in media}
            for o in old:
                o.retracted_utc = now
                o.retracted_by = user
                replaced[o.media_id].append(o.id)
            for mid in media:
                for lab in labels:
                    row = _row(mid, lab, user, now, action, replaced[mid])
                    if proposal is not None:
                        row.extra = {**row.extra, "proposal": dict(proposal)}
                    s.add(row)
            record(
                s,
                user,
                "label",
                f"sequence:{seq_id}",
                before=_label_state(old),
                after=[_label_json(lab) for lab in labels],
                detail={"action": action, "media": media}
                | ({"proposal": dict(proposal)} if proposal is not None else {}),
            )
            out.append({"sequence_id": seq_id, "action": action, "versions": new_versions})
        s.commit()
    written(project)
    return out


def _label_json(lab: Label) -> dict[str, Any]:
    """A label as the audit log keeps it (what a person chose, not per-file rows)."""
    if lab.blank:
        return {"blank": True}
    out = {
        "species": lab.species.strip(),
        "count": lab.count or 1,
        "individual": lab.individual_name(),
        "sex": lab.sex or None,
        "life_stage": lab.life_stage or None,
        "behavior": (lab.behavior or "").strip() or None,
        "comments": (lab.comments or "").strip(),
    }
    return {k: v for k, v in out.items() if v not in (None, "")}


def _label_state(rows: Sequence[Observation]) -> list[dict[str, Any]]:
    """The distinct labels of a sequence's observation rows (one per label, not per file)."""
    seen: dict[str, dict[str, Any]] = {}
    for o in rows:
        item = (
            {"blank": True, "by": o.by}
            if o.observation_type == "blank"
            else {
                "species": o.species,
                "count": o.count,
                "individual": o.individual,
                "sex": o.sex,
                "life_stage": o.life_stage,
                "behavior": o.behavior,
                "comments": o.comments or "",
                "by": o.by,
            }
        )
        item = {k: v for k, v in item.items() if v not in (None, "")}
        seen.setdefault(repr(sorted(item.items())), item)
    return list(seen.values())


def _row(
    mid: int, lab: Label, user: str, now: datetime, action: str, replaces: list[int]
) -> Observation:
    return Observation(
        media_id=mid,
        level="media",
        species=None if lab.blank else lab.species.strip(),
        count=None if lab.blank else (lab.count or 1),
        individual=lab.individual_name() if not lab.blank else None,
        observation_type="blank" if lab.blank else "animal",
        sex=None if lab.blank else (lab.sex or None),
        life_stage=None if lab.blank else (lab.life_stage or None),
        behavior=None if lab.blank else ((lab.behavior or "").strip() or None),
        source=HUMAN,
        by=user,
        created_utc=now,
        comments=(lab.comments or "").strip(),
        extra={"action": action, "replaces": replaces},
    )


def undo_label(
    project: Project, seq_id: int, versions: Mapping[int, int], user: str
) -> dict[str, Any]:
    """Retract the last human label of a sequence and bring back the one it replaced.

    The brought-back observations are new rows (copies) carrying the replaced
    rows' own history, so undoing again goes one step further back.

    Returns
    -------
    dict
        ``{"sequence_id", "undone": action or None, "versions"}``.
    """
    now = _now()
    with project.session() as s:
        media = _media_of(s, seq_id)
        _check_versions(seq_id, media, versions)
        current = _current_human(s, media)
        if not current:
            raise BadInputError(
                f"sequence {seq_id}", "has no human label to undo", "label it first"
            )
        new_versions = _bump(s, seq_id, versions)
        last = max(current, key=lambda o: o.id)
        action = (last.extra or {}).get("action")
        undone = (
            [o for o in current if (o.extra or {}).get("action") == action] if action else [last]
        )
        restore_ids = [i for o in undone for i in (o.extra or {}).get("replaces", [])]
        for o in undone:
            o.retracted_utc = now
            o.retracted_by = user
        redo = uuid.uuid4().hex
        restored: list[Observation] = []
        if restore_ids:
            restore = select(Observation).where(Observation.id.in_(restore_ids))
            for old in s.scalars(restore.order_by(Observation.id)):
                restored.append(old)
                s.add(
                    Observation(
                        media_id=old.media_id,
                        level=old.level,
                        species=old.species,
                        count=old.count,
                        individual=old.individual,
                        observation_type=old.observation_type,
                        sex=old.sex,
                        life_stage=old.life_stage,
                        behavior=old.behavior,
                        source=HUMAN,
                        by=old.by,
                        created_utc=now,
                        comments=old.comments,
                        extra={
                            "action": redo,
                            "restored_from": old.id,
                            "undo_by": user,
                            "replaces": (old.extra or {}).get("replaces", []),
                        }
                        | (
                            {"proposal": old.extra["proposal"]}
                            if "proposal" in (old.extra or {})
                            else {}
                        ),
                    )
                )
        record(
            s,
            user,
            "label.undo",
            f"sequence:{seq_id}",
            before=_label_state(undone),
            after=_label_state(restored),
            detail={"undone": action, "action": redo, "media": media},
        )
        s.commit()
    written(project)
    return {"sequence_id": seq_id, "undone": action, "versions": new_versions}


def written(project: Project) -> None:
    """Counts shown elsewhere (overview, stations) changed: recompute them next time."""
    from irbis.web.cache import clear

    clear(project.root)


def species_panel(project: Project) -> list[dict[str, Any]]:
    """The species the app offers (:func:`irbis.store.species.choices`) as JSON.

    The project's list, then species observed but not listed (most first),
    each with its key where one of 1..9 is left.
    """
    from irbis.store import species as sp
    from irbis.web.cache import cached

    observed = cached((project.root, "species-observed"), 30.0, lambda: sp.observed(project))
    return [s.to_json() for s in sp.choices(project, observed)]


def species_choices(project: Project, limit: int = 9) -> list[str]:
    """The species offered on hotkeys 1..9 (``[i]`` on key ``i+1``; "" for a free key).

    With ``limit`` above 9: every label of the panel, in its order (filters).
    """
    from irbis.store import species as sp

    panel = species_panel(project)
    if limit > 9:
        return [s["label"] for s in panel][:limit]
    return sp.hotkeys([sp.Species(s["label"], key=s["key"]) for s in panel])[:limit]
