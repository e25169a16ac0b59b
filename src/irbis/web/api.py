"""The JSON API under ``/api``: what the pages call, and what scripts may call."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from irbis.core.jsonsafe import finite
from irbis.core.text import NUL_REASON, has_nul
from irbis.store.project import Project
from irbis.web import (
    boxes,
    identify,
    individuals,
    labels,
    locations,
    media,
    overview,
    sequences,
)
from irbis.web.auth import WebUser
from irbis.web.deps import MAX_ID, DbId, admin, current_user, get_project, reviewer


class PlainJSON(Response):
    """JSON written straight by ``json.dumps``.

    The service layer already returns plain dicts of JSON types (times as
    strings); FastAPI's generic encoder walks every value again and cost more
    than the database query on the sequence list (3.3 ms of 5 per page).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:  # almost always: no NaN or infinity anywhere, nothing to rewrite
            text = json.dumps(
                content, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False
            )
        except ValueError:
            text = json.dumps(
                finite(content), ensure_ascii=False, separators=(",", ":"), default=str
            )
        return text.encode("utf-8")


router = APIRouter(prefix="/api")
BodyId = Annotated[int, Field(ge=0, le=MAX_ID)]

ProjectDep = Annotated[Project, Depends(get_project)]
UserDep = Annotated[WebUser, Depends(current_user)]
ReviewerDep = Annotated[WebUser, Depends(reviewer)]
AdminDep = Annotated[WebUser, Depends(admin)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL (a 500 there); SQLite would store it.
        if has_nul(value):
            raise ValueError(f"{NUL_REASON}: remove it")
        return value


Sex = Literal["female", "male"]
LifeStage = Literal["adult", "subadult", "juvenile"]


class ObservationIn(_Strict):
    """One observation of a sequence: a species with its count and Camtrap DP fields."""

    species: str | None = Field(None, max_length=200, description="Species label, or none if blank")
    count: int | None = Field(None, ge=1, le=1000, description="Number of animals")
    blank: bool = Field(False, description="Nothing in the sequence")
    individual: str | None = Field(None, max_length=200)
    sex: Sex | None = Field(None, description="Camtrap DP sex (none: not said)")
    life_stage: LifeStage | None = Field(None, description="Camtrap DP lifeStage")
    behavior: str | None = Field(None, max_length=200, description="Camtrap DP behavior")
    comments: str = Field("", max_length=2000, description="Camtrap DP observationComments")


class LabelIn(ObservationIn):
    """A label for one sequence and the media versions the client saw."""

    versions: dict[BodyId, BodyId] = Field(
        ..., description="review_version of every media of the sequence, as the client saw it"
    )


class ObservationsIn(_Strict):
    """Several observations that together replace the person's label of a sequence."""

    observations: list[ObservationIn] = Field(..., min_length=1, max_length=50)
    versions: dict[BodyId, BodyId] = Field(
        ..., description="review_version of every media of the sequence, as the client saw it"
    )


class SpeciesIn(_Strict):
    """A species added to the project's list."""

    label: str = Field(..., min_length=1, max_length=200, description="What labels store")
    scientific_name: str = Field("", max_length=200)
    vernacular_name: str = Field("", max_length=200)
    key: str = Field("", max_length=1, description="A digit 1..9, or empty")


class VersionsIn(_Strict):
    versions: dict[BodyId, BodyId]


class BulkItem(_Strict):
    sequence_id: BodyId
    versions: dict[BodyId, BodyId]


class BulkLabelIn(_Strict):
    """The same label for several sequences, all or nothing."""

    items: list[BulkItem] = Field(..., min_length=1, max_length=500)
    species: str | None = Field(None, max_length=200)
    count: int | None = Field(None, ge=1, le=1000)
    blank: bool = False
    comments: str = Field("", max_length=2000)


class DecisionIn(_Strict):
    """A reviewer's answer on one annotation."""

    decision: Literal["accept", "reject", "new", "unsure"]
    version: int = Field(..., ge=0, le=MAX_ID, description="The annotation version the client saw")
    side: Literal["left", "right", "unknown"] = "unknown"
    individual_id: int | None = Field(
        None, ge=0, le=MAX_ID, description="The candidate (accept / reject)"
    )
    name: str | None = Field(None, max_length=200, description="Name of a new individual")
    sex: Literal["female", "male", "unknown"] = "unknown"
    encounter: bool = Field(
        False,
        description="Decide every pending annotation of this one's encounter (sequence) alike",
    )


Fraction = Annotated[float, Field(ge=-1.0, le=2.0, allow_inf_nan=False)]
Extent = Annotated[float, Field(gt=0.0, le=2.0, allow_inf_nan=False)]
Seen = Annotated[
    list[BodyId],
    Field(
        max_length=1000,
        description="ids of the frame's current reviewed boxes as the client showed them",
    ),
]


class BoxIn(_Strict):
    """A box a person draws: fractions of the frame, top-left origin (clipped to it)."""

    x: Fraction
    y: Fraction
    width: Extent
    height: Extent
    category: Literal["animal", "person", "vehicle"] = "animal"
    frame: int = Field(0, ge=0, le=10_000_000, description="0 for a photo")
    seen: Seen


class MoveIn(_Strict):
    """The new place (and optionally category) of a reviewed box."""

    x: Fraction
    y: Fraction
    width: Extent
    height: Extent
    category: Literal["animal", "person", "vehicle"] | None = None


class AcceptIn(_Strict):
    """A machine box accepted as it is."""

    detection_id: BodyId
    seen: Seen


class FrameIn(_Strict):
    frame: int = Field(0, ge=0, le=10_000_000, description="0 for a photo")
    seen: Seen


class MergeIn(_Strict):
    into: int = Field(..., ge=0, le=MAX_ID, description="The individual that absorbs this one")


def _label(body: ObservationIn | BulkLabelIn) -> labels.Label:
    return labels.Label(
        species=body.species,
        count=body.count,
        blank=body.blank,
        individual=getattr(body, "individual", None),
        comments=body.comments,
        sex=getattr(body, "sex", None),
        life_stage=getattr(body, "life_stage", None),
        behavior=getattr(body, "behavior", None),
    )


async def sequence_query(
    station: Annotated[str | None, Query(description="Station name")] = None,
    date_from: Annotated[str | None, Query(description="First UTC date, YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(description="Last UTC date, YYYY-MM-DD")] = None,
    species: Annotated[str | None, Query(description="Current label; 'blank' for blanks")] = None,
    verdict: Annotated[
        str | None, Query(description="blank (set aside)|unjudged|animal|person|vehicle|none")
    ] = None,
    min_confidence: Annotated[str | None, Query(description="Detector score 0..1")] = None,
    reviewed: Annotated[str | None, Query(description="true: labelled by a person")] = None,
    proposed: Annotated[
        str | None,
        Query(description="Species the classifier proposes; 'unknown': unsure; 'any'"),
    ] = None,
    min_probability: Annotated[str | None, Query(description="Proposal probability 0..1")] = None,
    max_probability: Annotated[str | None, Query(description="Proposal probability 0..1")] = None,
    sort: Annotated[
        str | None,
        Query(
            description="time (default) | probability (most probable proposal first) | "
            "uncertain | margin (lowest margin first: the active-learning queue)"
        ),
    ] = None,
    limit: Annotated[str | None, Query(description="Page size, 1..500 (48)")] = None,
    after: Annotated[str | None, Query(description="The 'next' cursor of the last page")] = None,
) -> sequences.SequenceQuery:
    """The grid's filters from the query string (empty values mean 'any')."""
    return sequences.SequenceQuery.from_params(
        {
            "station": station,
            "date_from": date_from,
            "date_to": date_to,
            "species": species,
            "verdict": verdict,
            "min_confidence": min_confidence,
            "reviewed": reviewed,
            "proposed": proposed,
            "min_probability": min_probability,
            "max_probability": max_probability,
            "sort": sort,
            "limit": limit,
            "after": after,
        }
    )


QueryDep = Annotated[sequences.SequenceQuery, Depends(sequence_query)]


# Reads that the database answers in milliseconds are ``async def``: they run
# on the worker's event loop, one at a time per process (``irbis serve
# --workers`` gives one process per core). As plain ``def`` each one would hop
# to the thread pool and back, which cost as much CPU as the page itself and
# made the threads of a busy worker fight over the GIL. Endpoints that read
# files, decode images, fit models or write stay ``def``, on the thread pool.


@router.get("/me", tags=["users"])
async def me(user: UserDep) -> dict[str, Any]:
    """Who the request is made as, and what they may do."""
    return {
        "name": user.name,
        "role": user.role,
        "precise_locations": user.precise_locations,
        "local_mode": user.local,
    }


@router.get("/overview", tags=["project"])
async def get_overview(project: ProjectDep, user: UserDep) -> dict[str, Any]:
    """Counts: media, sequences, detector verdicts, reviewed, individuals (kept 10 s)."""
    return overview.cached_overview(project)


@router.get("/stations", tags=["project"])
async def get_stations(project: ProjectDep, user: UserDep) -> list[dict[str, Any]]:
    """Stations; sensitive ones generalised unless the user may see precise locations."""
    return locations.stations_for(project, user)


@router.get("/species", tags=["labels"])
async def get_species(project: ProjectDep, user: UserDep) -> list[str]:
    """The species on hotkeys 1..9, in order ("" where a key has none)."""
    return labels.species_choices(project)


@router.get("/species/panel", tags=["labels"])
def get_species_panel(project: ProjectDep, user: UserDep) -> list[dict[str, Any]]:
    """Every species the app offers: the project's list (``irbis species``), then
    species observed but not listed; each with label, names, key, listed."""
    return labels.species_panel(project)


@router.post("/species", tags=["labels"])
def post_species(body: SpeciesIn, project: ProjectDep, user: AdminDep) -> dict[str, Any]:
    """Add a species to the project's list (as `irbis species add` does)."""
    from irbis.store import species as sp

    added = sp.add(
        project,
        body.label,
        scientific_name=body.scientific_name,
        vernacular_name=body.vernacular_name,
        key=body.key,
    )
    labels.written(project)
    return added.to_json()


@router.get("/sequences", tags=["sequences"], response_class=PlainJSON)
async def get_sequences(project: ProjectDep, user: UserDep, q: QueryDep) -> PlainJSON:
    """A page of sequences matching the filters; pass ``next`` back as ``after``."""
    return PlainJSON(sequences.list_sequences(project, q))


@router.get("/sequences/{seq_id}", tags=["sequences"], response_class=PlainJSON)
async def get_sequence(seq_id: DbId, project: ProjectDep, user: UserDep, q: QueryDep) -> PlainJSON:
    """One sequence: media, boxes, observations; previous/next under the same filters."""
    data = sequences.sequence_detail(project, seq_id)
    data["neighbours"] = sequences.neighbours(
        project, q, seq_id, start=datetime.fromisoformat(data["start_utc"])
    )
    return PlainJSON(data)


@router.post("/sequences/{seq_id}/label", tags=["labels"])
def post_label(
    seq_id: DbId, body: LabelIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Label a sequence. 409 when any of its media changed since the client loaded it."""
    return labels.label_sequences(project, [(seq_id, body.versions)], _label(body), user.name)[0]


@router.post("/sequences/{seq_id}/observations", tags=["labels"])
def post_observations(
    seq_id: DbId, body: ObservationsIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Replace the sequence's label with these observations (sex, life stage,
    behaviour, count and notes each), as new rows with who and when."""
    obs = [_label(o) for o in body.observations]
    return labels.label_sequences(project, [(seq_id, body.versions)], obs, user.name)[0]


@router.post("/sequences/{seq_id}/undo", tags=["labels"])
def post_undo(
    seq_id: DbId, body: VersionsIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Retract the sequence's last human label, bringing back the one before it."""
    return labels.undo_label(project, seq_id, body.versions, user.name)


class AcceptProposalIn(_Strict):
    """Accept the classifier's proposal for a sequence as the person's label."""

    versions: dict[BodyId, BodyId] = Field(
        ..., description="review_version of every media of the sequence, as the client saw it"
    )
    species: str | None = Field(
        None, max_length=200, description="The proposed species the client showed (checked)"
    )


@router.post("/sequences/{seq_id}/accept", tags=["labels"])
def post_accept_proposal(
    seq_id: DbId, body: AcceptProposalIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Label the sequence with its proposed species: machine-proposed, person-confirmed."""
    from irbis.web.proposals import accept_proposal

    return accept_proposal(project, seq_id, body.versions, user.name, species=body.species)


@router.post("/sequences/label", tags=["labels"])
def post_bulk_label(body: BulkLabelIn, project: ProjectDep, user: ReviewerDep) -> dict[str, Any]:
    """The same label for several sequences in one transaction (all or nothing)."""
    items = [(it.sequence_id, it.versions) for it in body.items]
    return {"results": labels.label_sequences(project, items, _label(body), user.name)}


@router.get("/media/{media_id}/file", tags=["media"], response_class=FileResponse)
def get_media_file(media_id: DbId, project: ProjectDep, user: UserDep) -> Response:
    """The original file. Users without precise locations get it without GPS, XMP,
    comments or location atoms (pixels and samples untouched); viewers get people
    blurred (a video showing a person: 403). Only photos and videos (415 otherwise)."""
    # Who asks changes the bytes: a browser shared by two users must not reuse one's copy.
    headers = {**media.FILE_HEADERS, "Vary": "Authorization, Cookie, X-Irbis-Token"}
    path, mime, data = media.original_for(
        project, media_id, precise=user.precise_locations, people=media.sees_people(user)
    )
    if data is None:
        return FileResponse(path, media_type=mime, headers=headers)
    return Response(data, media_type=mime, headers=headers)


@router.get("/media/{media_id}/thumb", tags=["media"], response_class=FileResponse)
def get_media_thumb(
    media_id: DbId, project: ProjectDep, user: UserDep, size: int = Query(320, ge=16, le=2048)
) -> FileResponse:
    """A cached JPEG thumbnail (long side 160, 320 or 640 pixels), without metadata and,
    for viewers, with people blurred; 422 for a damaged file."""
    path = media.thumbnail(project, media_id, size, people=media.sees_people(user))
    headers = {**media.FILE_HEADERS, "Vary": "Authorization, Cookie, X-Irbis-Token"}
    return FileResponse(path, media_type="image/jpeg", headers=headers)


@router.get("/media/{media_id}/boxes", tags=["boxes"])
async def get_media_boxes(media_id: DbId, project: ProjectDep, user: UserDep) -> dict[str, Any]:
    """Every box people drew on this file, and their "no animal" / "animal here" marks,
    current and retracted (the history), with who and when."""
    return boxes.media_boxes(project, media_id)


@router.post("/media/{media_id}/boxes", tags=["boxes"])
def post_box(media_id: DbId, body: BoxIn, project: ProjectDep, user: ReviewerDep) -> dict[str, Any]:
    """Draw a box (a standing "no animal here" is retracted). 409 when the frame's boxes
    changed since the client loaded them (``seen``)."""
    box = (body.x, body.y, body.width, body.height)
    return boxes.draw(
        project,
        media_id,
        box,
        category=body.category,
        frame=body.frame,
        seen=body.seen,
        user=user.name,
    )


@router.post("/media/{media_id}/boxes/accept", tags=["boxes"])
def post_accept_box(
    media_id: DbId, body: AcceptIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Accept a machine box as it is: a reviewed box that names it (``detection_id``)."""
    return boxes.accept(project, media_id, body.detection_id, seen=body.seen, user=user.name)


@router.put("/boxes/{box_id}", tags=["boxes"])
def put_box(box_id: DbId, body: MoveIn, project: ProjectDep, user: ReviewerDep) -> dict[str, Any]:
    """Move or resize a reviewed box (the old row stays, retracted). 409 when someone
    moved or deleted it meanwhile."""
    box = (body.x, body.y, body.width, body.height)
    return boxes.move(project, box_id, box, category=body.category, user=user.name)


@router.delete("/boxes/{box_id}", tags=["boxes"])
def delete_box(box_id: DbId, project: ProjectDep, user: ReviewerDep) -> dict[str, Any]:
    """Delete a reviewed box (its row stays, retracted, with who and when)."""
    return boxes.delete(project, box_id, user=user.name)


@router.post("/media/{media_id}/no-animal", tags=["boxes"])
def post_no_animal(
    media_id: DbId, body: FrameIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Confirm there is no animal in the frame (its reviewed boxes are retracted)."""
    return boxes.no_animal(project, media_id, frame=body.frame, seen=body.seen, user=user.name)


@router.post("/media/{media_id}/animal-here", tags=["boxes"])
def post_animal_here(
    media_id: DbId, body: FrameIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """There is an animal in the frame (no box drawn): its sequence no longer counts as
    blank in the review grid."""
    return boxes.animal_here(project, media_id, frame=body.frame, seen=body.seen, user=user.name)


@router.get("/annotations", tags=["identification"])
async def get_annotations(
    project: ProjectDep,
    user: UserDep,
    limit: int = Query(50, ge=1, le=500),
    after: int = Query(0, ge=0, le=MAX_ID),
    by_encounter: bool = Query(True, description="One item per encounter (sequence)"),
) -> dict[str, Any]:
    """Annotations with machine proposals waiting for a person, one per encounter by default."""
    return identify.review_queue(project, limit, after, by_encounter)


@router.get("/annotations/{ann_id}", tags=["identification"])
async def get_annotation(ann_id: DbId, project: ProjectDep, user: UserDep) -> dict[str, Any]:
    """One annotation with its ranked candidates and matched keypoints."""
    return identify.annotation_detail(project, ann_id)


@router.post("/annotations/{ann_id}/decision", tags=["identification"])
def post_decision(
    ann_id: DbId, body: DecisionIn, project: ProjectDep, user: ReviewerDep
) -> dict[str, Any]:
    """Accept / reject a candidate, name a new individual, or mark unsure (with side).
    Reviewers accept only a proposed candidate (403 otherwise); admins any individual."""
    d = identify.Decision(
        decision=body.decision,
        version=body.version,
        side=body.side,
        individual_id=body.individual_id,
        name=body.name,
        sex=body.sex,
        encounter=body.encounter,
    )
    return identify.decide(project, ann_id, d, user.name, may_choose_any=user.can("admin"))


@router.get("/individuals", tags=["individuals"])
async def get_individuals(project: ProjectDep, user: UserDep) -> list[dict[str, Any]]:
    """The catalogue (merged individuals left out)."""
    return individuals.list_individuals(project)


@router.get("/individuals/{ind_id}", tags=["individuals"])
async def get_individual(ind_id: DbId, project: ProjectDep, user: UserDep) -> dict[str, Any]:
    """Photos per flank, sightings, stations and range (minimum convex polygon)."""
    return individuals.individual_detail(project, ind_id, user)


@router.post("/individuals/{ind_id}/merge", tags=["individuals"])
def post_merge(ind_id: DbId, body: MergeIn, project: ProjectDep, user: AdminDep) -> dict[str, Any]:
    """Merge this individual into another (kept, marked as merged); admins only."""
    return individuals.merge_individuals(project, ind_id, body.into, user.name)


@router.get("/census", tags=["census"])
def get_census(
    request: Request,
    project: ProjectDep,
    user: UserDep,
    refresh: Annotated[
        bool, Query(description="Not accepted: refit with POST /api/census/refit")
    ] = (False),
) -> dict[str, Any]:
    """Population estimates with CIs, effort per station, activity (fitted on first call,
    then the kept result; refitting is ``POST /api/census/refit``)."""
    from irbis.core.errors import BadInputError
    from irbis.web.census import census_data

    if refresh:
        # A GET must not start minutes of model fitting for anyone who can read.
        raise BadInputError(
            "refresh", "GET does not refit the models", "POST /api/census/refit (reviewer or admin)"
        )
    return census_data(project, request.app.state.census_cache, public=not user.precise_locations)


@router.post("/census/refit", tags=["census"])
def post_census_refit(request: Request, project: ProjectDep, user: ReviewerDep) -> dict[str, Any]:
    """Fit the population models again on the current data (reviewers and admins)."""
    from irbis.web.census import census_data

    return census_data(
        project, request.app.state.census_cache, public=not user.precise_locations, refresh=True
    )
