"""Keeping the catalogue right: rename an individual, split sightings off it.

Both are admin operations, one transaction each, recorded in the audit log
with what they changed, and both leave capture histories and exports to
follow on their own: those resolve every sighting through
``individual_id`` (and merges) to the individual's current name.

* **Rename** changes the name. Observations that named the animal by text
  only (a folder or XMP tag "Khan", no ``individual_id``) are linked to it
  first, so they keep counting as this animal under its new name instead of
  turning into a separate animal called by the old name.
* **Split** undoes a wrong identification: the chosen sightings (whole
  encounters by sequence, or single annotations or photos) go to another
  individual, existing or new. Confirmed crops (annotations) are re-pointed
  (version bumped); observations naming the animal on those photos are
  corrected the way labels are: the old row is retracted and a copy naming
  the new individual is added, so who said what stays readable. Splitting
  off every sighting is refused (that is a rename or a merge).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import func, inspect, or_, select, update
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError
from irbis.store.audit import record
from irbis.store.individuals import load_merge_roots
from irbis.store.project import Project
from irbis.store.schema import Annotation, Individual, Media, Observation
from irbis.web.auth import WebUser
from irbis.web.deps import MAX_ID, DbId, admin, get_project
from irbis.web.errors import NotFoundError
from irbis.web.individuals import lock_individuals

router = APIRouter(prefix="/api")
ProjectDep = Annotated[Project, Depends(get_project)]
AdminDep = Annotated[WebUser, Depends(admin)]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _find(s: Session, ref: str | int) -> Individual:
    """An individual by id or by name."""
    ind = None
    if isinstance(ref, int) or str(ref).strip().isdigit():
        ind = s.get(Individual, int(ref))
    if ind is None and isinstance(ref, str):
        ind = s.scalar(select(Individual).where(Individual.name == ref.strip()))
    if ind is None:
        raise NotFoundError(f"individual {ref} not found")
    return ind


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise BadInputError("name", "must be 1 to 200 characters", "type a name")
    return name


def _clear_cache(project: Project) -> None:
    from irbis.web.cache import clear

    clear(project.root)


def rename_individual(project: Project, ref: str | int, name: str, actor: str) -> dict[str, Any]:
    """Rename individual ``ref`` (id or name) to ``name`` (see the module docstring).

    Returns
    -------
    dict
        ``{"individual", "old_name", "name", "observations_linked"}``.

    Raises
    ------
    NotFoundError
        No such individual.
    BadInputError
        An empty name, or one another individual has.
    """
    new = _clean_name(name)
    with project.session() as s:
        ind = _find(s, ref)
        lock_individuals(s, [ind.id])
        s.refresh(ind)
        old = ind.name
        if new == old:
            return {"individual": ind.id, "old_name": old, "name": new, "observations_linked": 0}
        if s.scalar(select(Individual.id).where(Individual.name == new)) is not None:
            raise BadInputError(f"name {new!r}", "another individual has it", "choose another")
        linked = s.execute(
            update(Observation)
            .where(Observation.individual_id.is_(None), func.trim(Observation.individual) == old)
            .values(individual_id=ind.id)
            .execution_options(synchronize_session=False)
        ).rowcount
        ind.name = new
        record(
            s,
            actor,
            "rename",
            f"individual:{ind.id}",
            before={"name": old},
            after={"name": new},
            detail={"observations_linked": linked},
        )
        s.commit()
        out = {"individual": ind.id, "old_name": old, "name": new, "observations_linked": linked}
    _clear_cache(project)
    return out


def _copy_observation(o: Observation, individual: Individual, actor: str) -> Observation:
    skip = {"id", "created_utc", "by", "source", "retracted_utc", "retracted_by"}
    values = {a.key: getattr(o, a.key) for a in inspect(Observation).column_attrs}
    for k in skip:
        values.pop(k, None)
    values.update(individual_id=individual.id, individual=individual.name)
    return Observation(**values, by=actor, source="human", created_utc=_now())


def split_individual(
    project: Project,
    ref: str | int,
    *,
    sequences: Iterable[int] = (),
    annotations: Iterable[int] = (),
    media: Iterable[int] = (),
    into: str,
    actor: str,
) -> dict[str, Any]:
    """Move the chosen sightings of individual ``ref`` to individual ``into``.

    Parameters
    ----------
    ref:
        The individual (id or name) the sightings are wrongly filed under; an
        individual merged into another is split through the one it went into.
    sequences, annotations, media:
        What moves: every sighting on the photos of these sequences
        (encounters), these annotations, and the sightings on these photos.
    into:
        Name (or id) of the individual they belong to: an existing one, or a
        new one created with this name.
    actor:
        Who splits (the audit log's actor).

    Returns
    -------
    dict
        ``{"individual", "into", "into_name", "created", "annotations",
        "observations"}`` (ids moved).

    Raises
    ------
    NotFoundError
        No such individual.
    BadInputError
        Nothing chosen, a choice that is not a sighting of the individual,
        splitting into itself, or every sighting chosen.
    """
    seqs, anns, photos = (sorted({int(x) for x in xs}) for xs in (sequences, annotations, media))
    if not (seqs or anns or photos):
        raise BadInputError("split", "nothing chosen", "name sequences, annotations or photos")
    with project.session() as s:
        ind = _find(s, ref)
        roots = load_merge_roots(s)
        root = roots.get(ind.id, ind.id)
        group = [i for i, r in roots.items() if r == root] or [root]
        lock_individuals(s, group)
        ind = s.get(Individual, root)
        names = list(s.scalars(select(Individual.name).where(Individual.id.in_(group))))
        mine_ann = s.execute(
            select(Annotation.id, Annotation.media_id, Media.sequence_id)
            .join(Media, Media.id == Annotation.media_id)
            .where(Annotation.individual_id.in_(group))
        ).all()
        mine_obs = s.execute(
            select(Observation.id, Observation.media_id, Media.sequence_id)
            .join(Media, Media.id == Observation.media_id)
            .where(
                Observation.retracted_utc.is_(None),
                or_(
                    Observation.individual_id.in_(group),
                    Observation.individual_id.is_(None)
                    & func.trim(Observation.individual).in_(names),
                ),
            )
        ).all()
        rows = [*mine_ann, *mine_obs]
        for kind, wanted, col in (
            ("sequence", seqs, 2),
            ("photo", photos, 1),
        ):
            missing = sorted(set(wanted) - {r[col] for r in rows})
            if missing:
                raise BadInputError(
                    f"{kind} {missing[0]}",
                    f"has no sighting of {ind.name}",
                    f"choose {kind}s where {ind.name} was identified",
                )
        missing_ann = sorted(set(anns) - {r[0] for r in mine_ann})
        if missing_ann:
            raise BadInputError(
                f"annotation {missing_ann[0]}",
                f"is not identified as {ind.name}",
                "choose annotations of this individual",
            )
        moved_media = set(photos) | {r[1] for r in mine_ann if r[0] in set(anns)}

        def chosen(media_id: int, seq: int | None) -> bool:
            return media_id in moved_media or (seq is not None and seq in seqs)

        ann_ids = [r[0] for r in mine_ann if r[0] in set(anns) or chosen(r[1], r[2])]
        obs_ids = [r[0] for r in mine_obs if chosen(r[1], r[2])]
        if len(ann_ids) == len(mine_ann) and len(obs_ids) == len(mine_obs):
            raise BadInputError(
                f"split of {ind.name}",
                "every sighting is chosen",
                "rename the individual, or merge it into the right one",
            )
        try:
            target = _find(s, into)
            created = False
        except NotFoundError:
            if str(into).strip().isdigit():
                raise
            target = Individual(
                name=_clean_name(str(into)),
                species=ind.species,
                created_by=actor,
                created_utc=_now(),
            )
            s.add(target)
            s.flush()
            created = True
        target_root = roots.get(target.id, target.id)
        if target_root == root:
            raise BadInputError(f"split into {target.name}", "is the same animal", "choose another")
        target = s.get(Individual, target_root)
        before_ann = dict(
            s.execute(
                select(Annotation.id, Annotation.individual_id).where(Annotation.id.in_(ann_ids))
            )
            .tuples()
            .all()
        )
        if ann_ids:
            s.execute(
                update(Annotation)
                .where(Annotation.id.in_(ann_ids))
                .values(individual_id=target.id, version=Annotation.version + 1)
                .execution_options(synchronize_session=False)
            )
        new_obs: list[int] = []
        now = _now()
        for o in s.scalars(select(Observation).where(Observation.id.in_(obs_ids))):
            o.retracted_utc = now
            o.retracted_by = actor
            copy = _copy_observation(o, target, actor)
            s.add(copy)
            s.flush()
            new_obs.append(copy.id)
        record(
            s,
            actor,
            "split",
            f"individual:{root}",
            before={
                "annotations": {str(k): v for k, v in before_ann.items()},
                "observations": obs_ids,
            },
            after={"into": target.id, "into_name": target.name, "observations": new_obs},
            detail={"created": created, "sequences": seqs, "media": photos, "name": ind.name},
        )
        s.commit()
        out = {
            "individual": root,
            "into": target.id,
            "into_name": target.name,
            "created": created,
            "annotations": sorted(ann_ids),
            "observations": sorted(obs_ids),
        }
    _clear_cache(project)
    return out


class RenameIn(BaseModel):
    """A new name."""

    name: str = Field(..., min_length=1, max_length=200)


class SplitIn(BaseModel):
    """What to split off and where it goes."""

    into: str = Field(..., min_length=1, max_length=200, description="Existing or new individual")
    sequences: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(default_factory=list)
    annotations: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(default_factory=list)
    media: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(default_factory=list)


@router.post("/individuals/{ind_id}/rename", tags=["individuals"])
def post_rename(ind_id: DbId, body: RenameIn, project: ProjectDep, user: AdminDep) -> dict:
    """Rename an individual (its sightings follow); admins only."""
    return rename_individual(project, ind_id, body.name, user.name)


@router.post("/individuals/{ind_id}/split", tags=["individuals"])
def post_split(ind_id: DbId, body: SplitIn, project: ProjectDep, user: AdminDep) -> dict:
    """Move chosen sightings (encounters, annotations, photos) to another individual; admins."""
    return split_individual(
        project,
        ind_id,
        sequences=body.sequences,
        annotations=body.annotations,
        media=body.media,
        into=body.into,
        actor=user.name,
    )
