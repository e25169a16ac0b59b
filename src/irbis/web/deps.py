"""Request-level dependencies: the project and the user behind a request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request

from irbis.store.project import Project
from irbis.web.auth import SESSION_COOKIE, WebUser, has_users, resolve_session, resolve_user

#: Largest value of the databases' integer keys and versions (PostgreSQL's
#: ``integer`` is 32-bit): a bigger id in a path, query or body is a clear 422,
#: not an overflow deep in the database driver (a 500 on PostgreSQL).
MAX_ID = 2**31 - 1
#: A database id in a URL path.
DbId = Annotated[int, Path(ge=0, le=MAX_ID, description="Database id")]


# Dependencies that do no blocking work are ``async``: FastAPI runs a plain
# ``def`` dependency on its thread pool, a thread hop per dependency per request.
async def get_project(request: Request) -> Project:
    return request.app.state.project


def token_of(request: Request) -> str | None:
    """The API token from ``Authorization: Bearer`` or ``X-Irbis-Token`` (never a cookie)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-irbis-token") or None


async def current_user(request: Request) -> WebUser:
    """The user of this request: by API token, else by browser session, else local mode.

    Raises UnauthorizedError when the project has users and neither a valid
    token nor an open session comes with the request.
    """
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    project = request.app.state.project
    token = token_of(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if token is None and session_id and has_users(project):
        user = resolve_session(project, session_id)
    else:  # a token, or local mode (a stale cookie is ignored there)
        user = resolve_user(project, token)
    request.state.user = user
    return user


async def reviewer(request: Request) -> WebUser:
    user = await current_user(request)
    user.require("reviewer")
    return user


async def admin(request: Request) -> WebUser:
    user = await current_user(request)
    user.require("admin")
    return user
