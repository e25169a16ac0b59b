"""Field records, transects and genetic individuals in the app: list, map, review.

Places follow the stations' rule (:mod:`irbis.web.locations`): a sensitive
record (every record unless a person said otherwise) is shown snapped to the
policy's grid, without elevation or notes, to users without precise
locations; a transect's line is left out for them. Reviewers change what
the field may change later (a snare removed, the action taken, notes) and
link genotypes to the catalogue; every change is an audit row.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.core.text import NUL_REASON, has_nul
from irbis.store.fieldrecords import KINDS, load_records, load_transects, update_field_record
from irbis.store.genetics import genotype_catalogue, link_genotype, unlink_genotype
from irbis.store.project import Project
from irbis.store.schema import FieldRecord, Genotype, Individual
from irbis.web.auth import WebUser
from irbis.web.deps import MAX_ID, DbId, current_user, get_project, reviewer
from irbis.web.errors import ForbiddenError, NotFoundError
from irbis.web.locations import policy_of, station_point

router = APIRouter()
ProjectDep = Annotated[Project, Depends(get_project)]
UserDep = Annotated[WebUser, Depends(current_user)]
ReviewerDep = Annotated[WebUser, Depends(reviewer)]
KindQuery = Annotated[str | None, Query(description="scat_sample, snare or sign", max_length=20)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError(f"{NUL_REASON}: remove it")
        return value


class FieldEditIn(_Body):
    """What a reviewer may change on a field record (admins: also make it public)."""

    status: str | None = Field(None, description="Snares: found or removed", max_length=20)
    action_taken: str | None = Field(None, max_length=2000)
    notes: str | None = Field(None, max_length=4000)
    target_species: str | None = Field(None, max_length=200)
    count: int | None = Field(None, ge=0, le=100_000)
    sensitive: bool | None = Field(None, description="False makes the place public (admins)")


class LinkIn(_Body):
    """Link a genotype to an individual of the catalogue."""

    individual_id: int = Field(ge=0, le=MAX_ID)
    allow_conflict: bool = False
    note: str = Field("", max_length=2000)


class UnlinkIn(_Body):
    """Retract a genotype's links (to one individual, or all)."""

    individual_id: int | None = Field(None, ge=0, le=MAX_ID)


def _masked(rec: dict[str, Any], user: WebUser, policy) -> dict[str, Any]:
    """A record as ``user`` may see it: the stations' rule applied to its place."""
    hide = bool(rec["sensitive"]) and not user.precise_locations

    class _Place:  # station_point reads these attributes
        lon, lat, x, y = rec["lon"], rec["lat"], rec["x"], rec["y"]
        crs, elevation = rec["crs"], rec["elevation"]

    out = {**rec, **station_point(_Place, generalise=hide, policy=policy)}  # type: ignore[arg-type]
    if hide:
        out["notes"] = ""
    return out


def field_records_for(
    project: Project, user: WebUser, kind: str | None = None
) -> list[dict[str, Any]]:
    """Every field record (of ``kind``) with its place as ``user`` may see it."""
    if kind is not None and kind not in KINDS:
        raise BadInputError(f"kind {kind}", "unknown kind", f"use one of: {', '.join(KINDS)}")
    policy = policy_of(project)
    with project.session() as s:
        rows = load_records(s, kind)
    return [_masked(r, user, policy) for r in rows]


def transects_for(project: Project, user: WebUser) -> list[dict[str, Any]]:
    """Transects; their lines only for users with precise locations."""
    with project.session() as s:
        rows = load_transects(s)
    for t in rows:
        t["generalised"] = not user.precise_locations
        if t["generalised"]:
            t["line"] = []
    return rows


def _record_or_404(project: Project, rec_id: int) -> None:
    with project.session() as s:
        if s.get(FieldRecord, rec_id) is None:
            raise NotFoundError(f"no field record {rec_id}")


@router.get("/api/field-records", tags=["field"])
async def get_field_records(
    project: ProjectDep, user: UserDep, kind: KindQuery = None
) -> list[dict[str, Any]]:
    """Field records (scat samples, snares, signs); sensitive places generalised by role."""
    return field_records_for(project, user, kind)


@router.get("/api/field-records/{rec_id}", tags=["field"])
async def get_field_record(rec_id: DbId, project: ProjectDep, user: UserDep) -> dict[str, Any]:
    """One field record, its place as the user may see it."""
    _record_or_404(project, rec_id)
    return next(r for r in field_records_for(project, user) if r["id"] == rec_id)


@router.patch("/api/field-records/{rec_id}", tags=["field"])
def patch_field_record(
    rec_id: DbId, body: FieldEditIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Change a record's status, action, notes, target species or count (audited)."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise BadInputError(f"field record {rec_id}", "nothing to change", "send a field")
    if any(v is None for k, v in changes.items() if k in ("status", "sensitive", "count")):
        raise BadInputError(f"field record {rec_id}", "a value is null", "send a value")
    for k in ("action_taken", "notes"):
        if changes.get(k) is None and k in changes:
            changes[k] = ""
    try:
        return update_field_record(
            project, rec_id, changes, user.name, may_unmark_sensitive=user.can("admin")
        )
    except LookupError as exc:
        raise NotFoundError(str(exc)) from None
    except PermissionError as exc:
        raise ForbiddenError(str(exc)) from None


@router.get("/api/transects", tags=["field"])
async def get_transects(project: ProjectDep, user: UserDep) -> list[dict[str, Any]]:
    """Sign transects with their length and signs; lines only with precise locations."""
    return transects_for(project, user)


@router.get("/api/genotypes", tags=["field"])
async def get_genotypes(project: ProjectDep, user: UserDep) -> dict[str, Any]:
    """Genotypes, their links to the catalogue (who, when) and every conflict."""
    return genotype_catalogue(project)


def _genotype_code(project: Project, genotype_id: int) -> str:
    with project.session() as s:
        g = s.get(Genotype, genotype_id)
        if g is None:
            raise NotFoundError(f"no genotype {genotype_id}")
        return g.code


def _individual_name(project: Project, individual_id: int) -> str:
    with project.session() as s:
        ind = s.get(Individual, individual_id)
        if ind is None:
            raise NotFoundError(f"no individual {individual_id}")
        return ind.name


@router.post("/api/genotypes/{genotype_id}/link", tags=["field"])
def post_genotype_link(
    genotype_id: DbId, body: LinkIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Link a genotype to an individual (a conflict is refused unless ``allow_conflict``)."""
    code = _genotype_code(project, genotype_id)
    _individual_name(project, body.individual_id)
    return link_genotype(
        project,
        code,
        body.individual_id,
        user.name,
        allow_conflict=body.allow_conflict,
        note=body.note,
    )


@router.post("/api/genotypes/{genotype_id}/unlink", tags=["field"])
def post_genotype_unlink(
    genotype_id: DbId, body: UnlinkIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Retract a genotype's current links (all, or the one to ``individual_id``)."""
    code = _genotype_code(project, genotype_id)
    if body.individual_id is not None:
        _individual_name(project, body.individual_id)
    return unlink_genotype(project, code, user.name, body.individual_id)


@router.get("/field", response_class=HTMLResponse, include_in_schema=False)
async def page_field(
    request: Request, project: ProjectDep, user: UserDep, kind: KindQuery = None
) -> HTMLResponse:
    """The field-records page: map, records, transects and the genetic catalogue."""
    from irbis.web.pages import _render

    with project.session() as s:
        individuals = [
            {"id": i, "name": n}
            for i, n in s.execute(
                select(Individual.id, Individual.name)
                .where(Individual.merged_into_id.is_(None))
                .order_by(Individual.name)
            )
        ]
    records = field_records_for(project, user, kind)
    points = [
        {
            "name": f"{r['kind']} {r['sample_id'] or r['sign_type'] or r['threat_type'] or ''}",
            "lon": r["lon"],
            "lat": r["lat"],
            "x": r["x"],
            "y": r["y"],
            "generalised": r["generalised"],
        }
        for r in records
    ]
    return _render(
        request,
        "field.html",
        user,
        records=records,
        kind=kind,
        kinds=KINDS,
        transects=transects_for(project, user),
        genetics=genotype_catalogue(project),
        individuals=individuals,
        points=points,
        can_edit=user.can("reviewer"),
    )
