"""The app factory: ``create_app(project)`` wires the API, the pages and the assets."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from irbis.core.errors import BadInputError
from irbis.store.project import Project
from irbis.web.errors import (
    ConflictError,
    ForbiddenError,
    MovedError,
    NotFoundError,
    TooManyAttemptsError,
    UnauthorizedError,
    UnreadableMediaError,
    UnsafeFileError,
)

HERE = Path(__file__).resolve().parent
# Where ``create_app_from_env`` finds the project: uvicorn's worker processes
# build their own app (and database pool) from it.
PROJECT_ENV = "IRBIS_SERVE_PROJECT"
# The address ``irbis serve --host`` listens on, for the workers' Host check.
HOST_ENV = "IRBIS_SERVE_HOST"
#: Host names that always reach this machine itself.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")


def _tune_postgresql(project: Project) -> None:
    """Session settings for the app's short interactive queries on PostgreSQL.

    JIT compilation is off: the grid's per-sequence probes have large
    estimated costs (PostgreSQL cannot know they stop after one page) and
    crossed ``jit_above_cost``, adding tens of milliseconds of compilation to
    a query that runs in a few.
    """
    engine = project.engine
    if engine.dialect.name != "postgresql":
        return
    from sqlalchemy import event

    if not event.contains(engine, "connect", _pg_session_settings):
        event.listen(engine, "connect", _pg_session_settings)
        # Connections pooled before this point lack the settings.
        engine.dispose()


def _pg_session_settings(dbapi_conn, _record) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute("SET jit = off")
    dbapi_conn.commit()


class ServerTiming:
    """ASGI middleware adding ``Server-Timing: app;dur=MS`` to every response.

    Load generators read it to tell the app's own time from queueing and
    network (see ``bench/web_latency.py``); browsers show it in their tools.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()

        async def send_timed(message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - t0) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={ms:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_timed)


def _host_name(header: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:8765`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def allowed_hosts_for(bind_host: str | None = None, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The Host names a local-mode app answers: loopback, the bound address, ``extra``.

    Parameters
    ----------
    bind_host:
        The address the server listens on (``irbis serve --host``).
    extra:
        More names, e.g. a machine name the field team types.

    Returns
    -------
    frozenset of str
        Lower-case host names without ports. ``*`` stands for "any IP address",
        added when the server listens on all interfaces (0.0.0.0 or ::).
    """
    names = {*LOOPBACK_HOSTS, *(h.strip().lower() for h in extra)}
    if bind_host is not None:
        bind = _host_name(bind_host) if bind_host.startswith("[") else bind_host.strip().lower()
        if bind in _WILDCARD_BINDS:
            names.add("*")
        else:
            names.add(bind)
    return frozenset(names)


class Guard:
    """ASGI middleware: ``nosniff`` and no framing on every response
    (:func:`guarded_headers`); the Host check of local mode.

    In local mode (no users) anyone who reaches the app has full rights, so
    only requests naming this machine (loopback, the address it was started
    on) are answered: a page on another site whose name was re-pointed at
    127.0.0.1 (DNS rebinding) sends its own name as Host and gets a 400.
    An IP address as Host can never come from rebinding, so when the app
    listens on every interface any IP address is accepted. Projects with
    users are protected by their tokens and are not checked.
    """

    def __init__(self, app, project: Project, allowed: frozenset[str]) -> None:
        self.app = app
        self.project = project
        self.allowed = allowed

    def _host_ok(self, scope) -> bool:
        host = ""
        for key, value in scope.get("headers", ()):
            if key == b"host":
                host = value.decode("latin-1")
                break
        name = _host_name(host)
        if name in self.allowed or ("*" in self.allowed and _is_ip(name)):
            return True
        from irbis.web.auth import has_users

        return has_users(self.project)  # a token is needed anyway

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = None
        if not self._host_ok(scope):
            refusal = (
                b'{"detail":"this irbis app (local mode, no users) answers only requests to '
                b"localhost or the address it was started on; open it by that address, or "
                b'add users (irbis users add) to serve it under other names"}'
            )
        elif _nul_in_url(scope):
            # PostgreSQL text cannot hold NUL: a filter with one would be a 500 there.
            refusal = (
                b'{"detail":"the address contains a NUL character (%00): '
                b'remove it from the path and query and ask again"}'
            )
        if refusal is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": guarded_headers(
                        [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(refusal)).encode()),
                        ]
                    ),
                }
            )
            await send({"type": "http.response.body", "body": refusal})
            return

        async def send_guarded(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": guarded_headers(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_guarded)


_NO_FRAMES = b"frame-ancestors 'none'"


def guarded_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with what every response carries: nosniff and no framing.

    No page of the app may be shown inside another site's frame (clickjacking
    a reviewer into labelling or an admin into merging): ``X-Frame-Options:
    DENY`` for older browsers and ``frame-ancestors 'none'`` in the
    Content-Security-Policy, added to a response's own policy when it has one.
    """
    kept = [h for h in headers if h[0] not in (b"x-content-type-options", b"x-frame-options")]
    out: list[tuple[bytes, bytes]] = []
    has_csp = False
    for key, value in kept:
        if key == b"content-security-policy":
            has_csp = True
            if b"frame-ancestors" not in value:
                value = value.rstrip(b"; ") + b"; " + _NO_FRAMES
        out.append((key, value))
    if not has_csp:
        out.append((b"content-security-policy", _NO_FRAMES))
    out.append((b"x-content-type-options", b"nosniff"))
    out.append((b"x-frame-options", b"DENY"))
    return out


def _nul_in_url(scope) -> bool:
    """Whether the request's path or query string holds a NUL, raw or %-encoded."""
    if "\x00" in scope.get("path", ""):
        return True
    query = scope.get("query_string", b"")
    return b"\x00" in unquote_to_bytes(query) if query else False


def _leaflet_dir() -> Path:
    import xstatic.pkg.leaflet as leaflet

    return Path(leaflet.BASE_DIR)


def _validation_message(exc: RequestValidationError) -> str:
    """One line naming each bad field and what is wrong with it."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get(
        "accept", ""
    )


def create_app(project: Project, allowed_hosts: frozenset[str] | None = None) -> FastAPI:
    """Build the review app for one open project.

    Parameters
    ----------
    project:
        An open :class:`~irbis.store.project.Project`; the app does not close it.
    allowed_hosts:
        Host names (no ports) a project without users answers; see
        :func:`allowed_hosts_for`. Default: the loopback names and the address
        in ``$IRBIS_SERVE_HOST`` (what ``irbis serve --host`` listens on).

    Returns
    -------
    FastAPI
        Pages at ``/``, JSON API at ``/api`` (OpenAPI schema at ``/openapi.json``,
        a local, offline API page at ``/docs``), assets at ``/static`` and ``/vendor``.
    """
    # FastAPI's own /docs and /redoc load their scripts from a CDN: switched
    # off, replaced by a page of ours built from the same OpenAPI schema.
    app = FastAPI(
        title=f"irbis: {project.settings.name}",
        description="Review camera-trap sequences, identify snow leopards, read the census.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.project = project
    app.state.census_cache = {}
    _tune_postgresql(project)
    if allowed_hosts is None:
        allowed_hosts = allowed_hosts_for(os.environ.get(HOST_ENV))
    from irbis.web.history import AuditDownloads

    app.add_middleware(AuditDownloads, project=project)  # inside the Guard
    app.add_middleware(Guard, project=project, allowed=allowed_hosts)
    app.add_middleware(ServerTiming)

    def _error(status: int, message: str, request: Request) -> Response:
        if _wants_html(request):
            from irbis.web.pages import error_page

            return error_page(request, status, message)
        return JSONResponse({"detail": message}, status_code=status)

    # Service-layer errors and the status each one answers with.
    statuses: dict[type[Exception], int] = {
        NotFoundError: 404,
        ConflictError: 409,
        ForbiddenError: 403,
        UnsafeFileError: 415,
        UnreadableMediaError: 422,
        BadInputError: 422,
        TooManyAttemptsError: 429,
    }

    async def _by_status(request: Request, exc: Exception) -> Response:
        status = next(statuses[c] for c in type(exc).__mro__ if c in statuses)
        return _error(status, str(exc), request)

    for exc_class in statuses:
        app.add_exception_handler(exc_class, _by_status)

    @app.exception_handler(MovedError)
    async def _moved(request: Request, exc: MovedError) -> Response:
        # An id retired by a later ingest: the same path with its successor's id.
        parts = request.url.path.split("/")
        for i in range(1, len(parts)):
            if parts[i - 1] == "sequences" and parts[i] == str(exc.old_id):
                parts[i] = str(exc.new_id)
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse("/".join(parts) + query, status_code=308)
        return _error(404, str(exc), request)

    @app.exception_handler(UnauthorizedError)
    async def _unauthorized(request: Request, exc: UnauthorizedError) -> Response:
        if _wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return JSONResponse({"detail": str(exc)}, status_code=401)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(
            {"detail": _validation_message(exc), "errors": jsonable_encoder(exc.errors())}
            if not _wants_html(request)
            else {"detail": _validation_message(exc)},
            status_code=422,
        )

    from irbis.web.api import router as api_router
    from irbis.web.catalogue_edit import router as catalogue_router
    from irbis.web.field import router as field_router
    from irbis.web.history import router as history_router
    from irbis.web.pages import router as pages_router

    app.include_router(api_router)
    app.include_router(history_router)
    app.include_router(catalogue_router)
    app.include_router(field_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/vendor/leaflet", StaticFiles(directory=_leaflet_dir()), name="leaflet")
    tiles = project.settings.extra.get("map_tiles")
    if tiles and Path(tiles).is_dir():
        # A local tile folder ({z}/{x}/{y}.png) for field offices with a map export.
        app.mount("/tiles", StaticFiles(directory=Path(tiles)), name="tiles")
    return app


def create_app_from_env() -> FastAPI:
    """The app for the project named in ``$IRBIS_SERVE_PROJECT`` (uvicorn ``--factory``).

    ``irbis serve --workers N`` runs N processes; each one opens the project
    (its own connection pool) and builds its own app through this factory.
    The project stays open for the life of the process.

    Returns
    -------
    FastAPI
        As :func:`create_app`.
    """
    root = os.environ.get(PROJECT_ENV)
    if not root:
        raise RuntimeError(f"{PROJECT_ENV} is not set: start the app with `irbis serve PROJECT`")
    # Migrations were run by the parent process before the workers started.
    return create_app(Project.open(root, migrate=False))
