"""Who is using the app: tokens, users, roles.

A token is a random string shown once when the user is created
(``irbis users add``) or given a new one (``irbis users token``); only its
sha256 is stored, and ``irbis users revoke`` clears it. A client sends it as
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
                f"(ask an admin to run: irbis users role PROJECT {self.name} --role {role})"
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


def _user(s, name: str, command: str) -> User:
    """The user called ``name``, or a one-line error naming the command."""
    user = s.scalar(select(User).where(User.name == name.strip()))
    if user is None:
        known = sorted(s.scalars(select(User.name)).all())
        raise BadInputError(
            f"users {command} {name}",
            "no such user",
            f"users: {', '.join(known)}" if known else "the project has no users: irbis users add",
        )
    return user


def list_users(project: Project) -> list[dict]:
    """Every user: name, display name, role, organisation, precise locations, token set.

    The token itself is never readable (only its hash is stored); ``token_set``
    says whether the user has one that works (``False`` after a revoke).
    """
    with project.session() as s:
        return [
            {
                "name": u.name,
                "display_name": u.display_name,
                "role": u.role,
                "organisation": u.organisation,
                "precise_locations": bool(u.precise_locations),
                "token_set": bool(u.token_hash),
                "created_utc": u.created_utc.isoformat(sep=" ", timespec="seconds"),
            }
            for u in s.scalars(select(User).order_by(User.name))
        ]


def set_role(
    project: Project,
    name: str,
    role: str | None = None,
    *,
    precise_locations: bool | None = None,
) -> dict:
    """Change a user's role and/or clearance for precise locations.

    Takes effect at the user's next request (every request reads the user's
    row). ``None`` leaves that setting as it is.

    Returns
    -------
    dict
        ``name``, ``role``, ``precise_locations`` as stored now, and
        ``changed`` (what differs from before, ``{field: [old, new]}``).
    """
    if role is not None and role not in ROLES:
        raise BadInputError(
            f"users role {name}", f"unknown role {role!r}", "use viewer, reviewer or admin"
        )
    with project.session() as s:
        user = _user(s, name, "role")
        changed: dict[str, list] = {}
        if role is not None and role != user.role:
            changed["role"] = [user.role, role]
            user.role = role
        if precise_locations is not None and precise_locations != bool(user.precise_locations):
            changed["precise_locations"] = [bool(user.precise_locations), precise_locations]
            user.precise_locations = precise_locations
        s.commit()
        return {
            "name": user.name,
            "role": user.role,
            "precise_locations": bool(user.precise_locations),
            "changed": changed,
        }


def revoke_token(project: Project, name: str) -> bool:
    """Clear a user's token: it stops working at the next request.

    The user and everything they did stay; ``irbis users token`` gives them a
    new token later. Returns whether the user had a token.
    """
    with project.session() as s:
        user = _user(s, name, "revoke")
        had = user.token_hash is not None
        user.token_hash = None
        s.commit()
    return had


def new_token(project: Project, name: str) -> str:
    """Give a user a new token (returned, shown once); the old one stops working."""
    token = secrets.token_urlsafe(24)
    with project.session() as s:
        user = _user(s, name, "token")
        user.token_hash = hash_token(token)
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
        raise UnauthorizedError(
            "unknown token: check it or ask an admin for a new one (irbis users token PROJECT NAME)"
        )
    return WebUser(row.name, row.role, bool(row.precise_locations))
