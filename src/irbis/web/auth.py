"""Who is using the app: tokens, users, roles.

A token is a random string shown once when the user is created
(``irbis users add``); only its sha256 is stored. A client sends it as
``Authorization: Bearer TOKEN``, as ``X-Irbis-Token`` or in the ``irbis_token``
cookie that the login form sets. A project without any user runs in
single-user local mode (a field laptop): everyone is ``local`` with full rights.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from irbis.core.errors import BadInputError
from irbis.store.project import Project
from irbis.store.schema import User
from irbis.web.errors import ForbiddenError, UnauthorizedError

ROLES = ("viewer", "reviewer", "admin")
COOKIE = "irbis_token"
#: How machine results name themselves in ``by`` columns (``model:irbis-reid``).
MACHINE_PREFIX = "model"


@dataclass(frozen=True)
class WebUser:
    """The user behind one request."""

    name: str
    role: str
    precise_locations: bool
    local: bool = False

    def can(self, role: str) -> bool:
        """Whether this user's role is at least ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: str) -> None:
        """Raise :class:`ForbiddenError` unless the user's role is at least ``role``."""
        if not self.can(role):
            raise ForbiddenError(
                f"user {self.name!r} is a {self.role}; this needs the {role} role "
                f"(ask an admin: irbis users add NAME --role {role})"
            )


LOCAL_USER = WebUser("local", "admin", True, local=True)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create_user(
    project: Project,
    name: str,
    role: str,
    *,
    precise_locations: bool = False,
    display_name: str = "",
    organisation: str = "",
) -> str:
    """Add a user and return their new token (shown once, stored hashed).

    Parameters
    ----------
    name:
        Login name, unique in the project.
    role:
        ``viewer`` (read only), ``reviewer`` (labels and identifications) or ``admin``.
    precise_locations:
        Whether the user may see sensitive species' stations at full precision.

    Returns
    -------
    str
        The token to give to the user.
    """
    name = name.strip()
    if not name:
        raise BadInputError("users add", "the user name is empty", "give a name")
    if name.lower().startswith(MACHINE_PREFIX):
        # Decisions and labels "by" a name starting with "model" are read as a
        # machine's (they are not a person's confirmation): a person cannot use it.
        raise BadInputError(
            f"users add {name}",
            f"names starting with {MACHINE_PREFIX!r} are reserved for machine results",
            "choose another name",
        )
    if role not in ROLES:
        raise BadInputError(
            f"users add {name}", f"unknown role {role!r}", "use viewer, reviewer or admin"
        )
    token = secrets.token_urlsafe(24)
    with project.session() as s:
        if s.scalar(select(User.id).where(User.name == name)) is not None:
            raise BadInputError(
                f"users add {name}", "a user of that name exists", "choose another name"
            )
        s.add(
            User(
                name=name,
                display_name=display_name or name,
                organisation=organisation,
                role=role,
                precise_locations=precise_locations,
                token_hash=hash_token(token),
                created_utc=_now(),
            )
        )
        s.commit()
    return token


def has_users(project: Project) -> bool:
    """Whether the project has users (otherwise it runs in local single-user mode)."""
    with project.session() as s:
        return bool(s.scalar(select(func.count()).select_from(User)))


def resolve_user(project: Project, token: str | None) -> WebUser:
    """The user a token belongs to; the local user when the project has none.

    Raises
    ------
    UnauthorizedError
        The project has users and the token is missing or unknown.
    """
    # Core statements, no ORM session: this runs for every request.
    with project.engine.connect() as conn:
        if not conn.execute(select(func.count()).select_from(User)).scalar():
            return LOCAL_USER
        if not token:
            raise UnauthorizedError("log in first: send your token (irbis users add gives one)")
        row = conn.execute(
            select(User.name, User.role, User.precise_locations).where(
                User.token_hash == hash_token(token)
            )
        ).first()
    if row is None:
        raise UnauthorizedError("unknown token: check it or ask an admin for a new one")
    return WebUser(row.name, row.role, bool(row.precise_locations))
