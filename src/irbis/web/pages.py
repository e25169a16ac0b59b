"""Server-rendered pages. Each page gets its first view from the same service layer
as the API and then talks to ``/api`` with a little hand-written JavaScript."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from irbis.core.errors import BadInputError
from irbis.store.project import Project
from irbis.web import identify, individuals, labels, locations, overview, proposals, sequences
from irbis.web.auth import SESSION_COOKIE, WebUser, end_session, has_users, login
from irbis.web.deps import DbId, current_user, get_project
from irbis.web.errors import TooManyAttemptsError, UnauthorizedError

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
# Templates ship inside the package and do not change while the app runs: no
# stat() of every template file on every page.
templates.env.auto_reload = False
# JSON for data attributes (escaped by autoescape) and for <script> blocks (not
# HTML-escaped, but "</" broken up so no value can close the script element).
templates.env.filters["tojson_safe"] = lambda v: json.dumps(v, default=str)
templates.env.filters["script_json"] = lambda v: Markup(
    json.dumps(v, default=str).replace("</", "<\\/").replace("<!--", "<\\!--")
)

router = APIRouter(include_in_schema=False)
ProjectDep = Annotated[Project, Depends(get_project)]
UserDep = Annotated[WebUser, Depends(current_user)]


def _render(request: Request, name: str, user: WebUser | None, **ctx: Any) -> HTMLResponse:
    project: Project = request.app.state.project
    return templates.TemplateResponse(
        request,
        name,
        {"user": user, "project_name": project.settings.name, "nav": name, **ctx},
    )


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An HTML error page for browsers (the API answers JSON)."""
    resp = _render(request, "error.html", None, status=status, message=message)
    resp.status_code = status
    return resp


@router.get("/", response_class=HTMLResponse)
async def page_overview(request: Request, project: ProjectDep, user: UserDep) -> HTMLResponse:
    return _render(request, "overview.html", user, data=overview.cached_overview(project))


@router.get("/map", response_class=HTMLResponse)
async def page_map(request: Request, project: ProjectDep, user: UserDep) -> HTMLResponse:
    tiles = project.settings.extra.get("map_tiles")
    return _render(
        request,
        "map.html",
        user,
        stations=locations.stations_for(project, user),
        tiles=bool(tiles and Path(tiles).is_dir()),
    )


@router.get("/sequences", response_class=HTMLResponse)
async def page_sequences(request: Request, project: ProjectDep, user: UserDep) -> HTMLResponse:
    params = dict(request.query_params)
    error = None
    try:
        q = sequences.SequenceQuery.from_params(params)
    except BadInputError as exc:
        error, q = str(exc), sequences.SequenceQuery()
    page = sequences.list_sequences(project, q)
    return _render(
        request,
        "sequences.html",
        user,
        page=page,
        q=q,
        filters=q.params(),
        error=error,
        stations=locations.station_names(project),
        species=labels.species_choices(project, limit=50),
        verdicts=sequences.VERDICTS,
        verdict_words=sequences.VERDICT_WORDS,
        sorts=proposals.SORTS,
        sort_words=proposals.SORT_WORDS,
        hotkeys=labels.species_choices(project),
        panel=labels.species_panel(project),
    )


@router.get("/sequences/{seq_id}", response_class=HTMLResponse)
async def page_sequence(
    seq_id: DbId, request: Request, project: ProjectDep, user: UserDep
) -> HTMLResponse:
    q = sequences.SequenceQuery.from_params(dict(request.query_params))
    data = sequences.sequence_detail(project, seq_id)
    data["neighbours"] = sequences.neighbours(
        project, q, seq_id, start=datetime.fromisoformat(data["start_utc"])
    )
    # ``?media=ID`` opens that file (a report's spot-check list links to frames).
    wanted = request.query_params.get("media", "")
    start = next((m["id"] for m in data["media"] if str(m["id"]) == wanted), None)
    return _render(
        request,
        "sequence.html",
        user,
        seq=data,
        filters=q.params(),
        hotkeys=labels.species_choices(project),
        panel=labels.species_panel(project),
        view={"can_edit": user.can("reviewer"), "start_media_id": start},
    )


@router.get("/identify", response_class=HTMLResponse)
async def page_identify(request: Request, project: ProjectDep, user: UserDep) -> HTMLResponse:
    return _render(request, "identify.html", user, queue=identify.review_queue(project, 200))


@router.get("/identify/{ann_id}", response_class=HTMLResponse)
async def page_identify_one(
    ann_id: DbId, request: Request, project: ProjectDep, user: UserDep
) -> HTMLResponse:
    ann = identify.annotation_detail(project, ann_id)
    queue = identify.review_queue(project, 1, ann_id)["items"]
    return _render(
        request,
        "identify_one.html",
        user,
        ann=ann,
        next_id=queue[0]["id"] if queue else None,
        individuals=individuals.list_individuals(project),
    )


@router.get("/individuals", response_class=HTMLResponse)
async def page_individuals(request: Request, project: ProjectDep, user: UserDep) -> HTMLResponse:
    return _render(
        request, "individuals.html", user, individuals=individuals.list_individuals(project)
    )


@router.get("/individuals/{ind_id}", response_class=HTMLResponse)
async def page_individual(
    ind_id: DbId, request: Request, project: ProjectDep, user: UserDep
) -> Response:
    data = individuals.individual_detail(project, ind_id, user)
    if "merged_into" in data:
        return RedirectResponse(f"/individuals/{data['merged_into']}", status_code=303)
    return _render(
        request,
        "individual.html",
        user,
        ind=data,
        others=[i for i in individuals.list_individuals(project) if i["id"] != ind_id],
    )


@router.get("/individuals/{ind_id}/print", response_class=HTMLResponse)
async def page_individual_print(
    ind_id: DbId, request: Request, project: ProjectDep, user: UserDep
) -> Response:
    """A page per individual a ranger can print (photos per flank, encounters)."""
    from irbis.web.individual_print import printable

    data = printable(project, ind_id, user)
    if "merged_into" in data:
        return RedirectResponse(f"/individuals/{data['merged_into']}/print", status_code=303)
    return _render(request, "individual_print.html", user, ind=data)


@router.get("/census", response_class=HTMLResponse)
def page_census(request: Request, project: ProjectDep, user: UserDep) -> HTMLResponse:
    from irbis.web.census import cached

    try:
        import irbis.reports.census  # noqa: F401

        available = True
    except ImportError:
        available = False
    data = cached(request.app.state.census_cache, public=not user.precise_locations)
    return _render(request, "census.html", user, data=data, available=available)


@router.get("/docs", response_class=HTMLResponse)
def page_docs(request: Request) -> HTMLResponse:
    """The API described from the app's own OpenAPI schema (works offline)."""
    schema = request.app.openapi()
    ops = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            params = [
                {
                    "name": p["name"],
                    "in": p["in"],
                    "required": p.get("required", False),
                    "description": p.get("description", ""),
                }
                for p in op.get("parameters", [])
            ]
            body = (
                op.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref", "")
                .rsplit("/", 1)[-1]
            )
            ops.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or ["other"])[0],
                    "params": params,
                    "body": body,
                }
            )
    models = schema.get("components", {}).get("schemas", {})
    return _render(request, "api_docs.html", None, ops=ops, models=models)


@router.get("/login", response_class=HTMLResponse)
def page_login(request: Request, project: ProjectDep, next: str = "/") -> HTMLResponse:
    return _render(request, "login.html", None, next=next, local=not has_users(project), error=None)


@router.post("/login", response_class=HTMLResponse)
def post_login(
    request: Request,
    project: ProjectDep,
    token: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check name and token, open an expiring session and set its cookie.

    The cookie holds a random session id, never the token; it is HttpOnly,
    SameSite=Strict, and Secure when the request came over HTTPS (directly
    with ``irbis serve --tls-cert``, or from a trusted reverse proxy saying
    ``X-Forwarded-Proto: https``).
    """
    ip = request.client.host if request.client else ""
    try:
        new = login(project, name, token, ip=ip, user_agent=request.headers.get("user-agent", ""))
    except (UnauthorizedError, TooManyAttemptsError) as exc:
        resp = _render(
            request, "login.html", None, next=next, local=False, error=str(exc), login_name=name
        )
        resp.status_code = 429 if isinstance(exc, TooManyAttemptsError) else 401
        return resp
    # Only local paths: a login form must not become an open redirect.
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        new.session_id,
        max_age=new.max_age_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    # The permanent-token cookie of earlier versions: gone.
    resp.delete_cookie("irbis_token")
    return resp


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request, project: ProjectDep) -> Response:
    """End this browser's session on the server (not only in the browser) and drop the cookie."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        end_session(project, session_id)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
