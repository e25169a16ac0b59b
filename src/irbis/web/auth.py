"""Who is using the app: tokens, browser sessions, users, roles.

A token is a random string shown once when the user is created
(``irbis users add``) or given a new one (``irbis users token``); only its
sha256 is stored, and ``irbis users revoke`` clears it. A program sends it as
``Authorization: Bearer TOKEN`` or ``X-Irbis-Token``.

A browser logs in once with its user name and token (``/login``) and gets a
*session*: a separate random id in the ``irbis_session`` cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS), stored as its sha256, expiring after
:data:`SESSION_HOURS` hours, ended by ``/logout`` and by ``irbis users
revoke``. The token itself never sits in a cookie. Every login attempt is
kept in ``login_attempts`` and logged (logger ``irbis.web.auth``); after
:data:`MAX_FAILURES_USER_IP` failures for one name from one address, or
:data:`MAX_FAILURES_IP` from one address, within
:data:`FAILURE_WINDOW_MIN` minutes, further attempts are refused (HTTP 429).

A project without any user runs in single-user local mode (a field laptop):
everyone is ``local`` with full rights; ``irbis serve`` refuses that on any
address but loopback unless told ``--insecure-open``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, select, update

from irbis.core.errors import BadInputError
from irbis.store.audit import cli_actor, record
from irbis.store.project import Project
from irbis.store.schema import LoginAttempt, User, WebSession
from irbis.web.errors import ForbiddenError, TooManyAttemptsError, UnauthorizedError

ROLES = ("viewer", "reviewer", "admin")
#: The browser session cookie (a random session id, never the token).
SESSION_COOKIE = "irbis_session"
#: How long a browser session lasts from its login (project setting ``session_hours``).
SESSION_HOURS = 12.0
#: Failed logins for one user name from one address before further tries are refused.
MAX_FAILURES_USER_IP = 5
#: Failed logins from one address (whatever the names) before further tries are refused.
MAX_FAILURES_IP = 20
#: The window, in minutes, in which failures are counted.
FAILURE_WINDOW_MIN = 15
log = logging.getLogger("irbis.web.auth")
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
    actor: str | None = None,
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
    actor:
        Who adds them, for the audit log (default: this machine's login, ``cli:NAME``).

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
        record(
            s,
            actor or cli_actor(),
            "user.add",
            f"user:{name}",
            after={
                "role": role,
                "precise_locations": precise_locations,
                "organisation": organisation,
            },
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
    actor: str | None = None,
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
        if changed:
            record(
                s,
                actor or cli_actor(),
                "user.role",
                f"user:{user.name}",
                before={k: v[0] for k, v in changed.items()},
                after={k: v[1] for k, v in changed.items()},
            )
        s.commit()
        return {
            "name": user.name,
            "role": user.role,
            "precise_locations": bool(user.precise_locations),
            "changed": changed,
        }


def revoke_token(project: Project, name: str, *, actor: str | None = None) -> bool:
    """Clear a user's token: it stops working at the next request.

    The user and everything they did stay; ``irbis users token`` gives them a
    new token later. Returns whether the user had a token.
    """
    with project.session() as s:
        user = _user(s, name, "revoke")
        had = user.token_hash is not None
        user.token_hash = None
        # Browsers logged in with that token are logged out too.
        ended = _end_user_sessions(s, user.id)
        record(
            s,
            actor or cli_actor(),
            "user.revoke",
            f"user:{user.name}",
            before={"token_set": had},
            after={"token_set": False},
            detail={"sessions_ended": ended},
        )
        s.commit()
    return had


def new_token(project: Project, name: str, *, actor: str | None = None) -> str:
    """Give a user a new token (returned, shown once); the old one stops working."""
    token = secrets.token_urlsafe(24)
    with project.session() as s:
        user = _user(s, name, "token")
        had = user.token_hash is not None
        user.token_hash = hash_token(token)
        # A new token is given when the old one may have leaked: end its sessions.
        ended = _end_user_sessions(s, user.id)
        record(
            s,
            actor or cli_actor(),
            "user.token",
            f"user:{user.name}",
            before={"token_set": had},
            after={"token_set": True},
            detail={"sessions_ended": ended},
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
        raise UnauthorizedError(
            "unknown token: check it or ask an admin for a new one (irbis users token PROJECT NAME)"
        )
    return WebUser(row.name, row.role, bool(row.precise_locations))


# -- browser sessions ---------------------------------------------------------------------


def _end_user_sessions(s, user_id: int) -> int:
    """Revoke every open session of one user in session ``s``; returns how many."""
    res = s.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_utc.is_(None))
        .values(revoked_utc=_now())
    )
    return res.rowcount or 0


def session_hours(project: Project) -> float:
    """How long a browser session lasts (project setting ``session_hours``, default 12)."""
    try:
        hours = float(project.settings.extra.get("session_hours", SESSION_HOURS))
    except (TypeError, ValueError):
        return SESSION_HOURS
    return hours if 0 < hours <= 24 * 30 else SESSION_HOURS


@dataclass(frozen=True)
class NewSession:
    """A session just opened by :func:`login`: the cookie value (shown once) and the user."""

    session_id: str
    user: WebUser
    expires_utc: datetime
    max_age_s: int


def _record_attempt(s, name: str, ip: str, ok: bool, outcome: str) -> None:
    s.add(
        LoginAttempt(user_name=name[:200], ip=ip[:64], ok=ok, outcome=outcome, created_utc=_now())
    )
    (log.info if ok else log.warning)("login %s for %r from %s", outcome, name, ip)


def _check_rate(s, name: str, ip: str) -> None:
    """Raise TooManyAttemptsError when this name and address failed too often lately."""
    since = _now() - timedelta(minutes=FAILURE_WINDOW_MIN)
    failed = and_(
        LoginAttempt.ip == ip, LoginAttempt.ok.is_(False), LoginAttempt.created_utc >= since
    )
    by_ip = s.scalar(select(func.count()).select_from(LoginAttempt).where(failed)) or 0
    by_user = (
        s.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(failed, LoginAttempt.user_name == name)
        )
        or 0
    )
    if by_user >= MAX_FAILURES_USER_IP or by_ip >= MAX_FAILURES_IP:
        who = f"user {name!r}" if by_user >= MAX_FAILURES_USER_IP else "this address"
        raise TooManyAttemptsError(
            f"too many failed logins for {who} from {ip}: wait {FAILURE_WINDOW_MIN} minutes "
            "and try again, or ask an admin for a new token (irbis users token PROJECT NAME)"
        )


def login(
    project: Project, name: str, token: str, *, ip: str = "", user_agent: str = ""
) -> NewSession:
    """Check a user name and token from the login form and open a browser session.

    Every attempt is recorded (``login_attempts``) and logged. The name may be
    empty (older forms sent only the token); the rate limit then counts the
    attempts under the empty name.

    Raises
    ------
    TooManyAttemptsError
        Too many recent failures for this name from this address, or from this address.
    UnauthorizedError
        The token is unknown, revoked, or belongs to another user than ``name``.
    """
    name = name.strip()
    token = token.strip()
    with project.session() as s:
        try:
            _check_rate(s, name, ip)
        except TooManyAttemptsError:
            _record_attempt(s, name, ip, False, "rate limited")
            s.commit()
            raise
        user = s.scalar(select(User).where(User.token_hash == hash_token(token))) if token else None
        if user is None or (name and not hmac.compare_digest(user.name, name)):
            _record_attempt(s, name, ip, False, "unknown token" if user is None else "wrong user")
            s.commit()
            raise UnauthorizedError(
                "unknown user name or token: check them or ask an admin for a new token "
                "(irbis users token PROJECT NAME)"
            )
        sid = secrets.token_urlsafe(32)
        hours = session_hours(project)
        now = _now()
        expires = now + timedelta(hours=hours)
        s.add(
            WebSession(
                id_hash=hash_token(sid),
                user_id=user.id,
                created_utc=now,
                expires_utc=expires,
                ip=ip[:64],
                user_agent=user_agent[:300],
            )
        )
        _record_attempt(s, user.name, ip, True, "ok")
        s.commit()
        return NewSession(
            sid,
            WebUser(user.name, user.role, bool(user.precise_locations)),
            expires,
            int(hours * 3600),
        )


def resolve_session(project: Project, session_id: str) -> WebUser:
    """The user of an open, unexpired, unrevoked browser session.

    The user's row is read at every request, so a role change applies at once.

    Raises
    ------
    UnauthorizedError
        The session is unknown, expired or was ended (logout, revoke, new token).
    """
    with project.engine.connect() as conn:
        row = conn.execute(
            select(
                User.name,
                User.role,
                User.precise_locations,
                WebSession.expires_utc,
                WebSession.revoked_utc,
            )
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.id_hash == hash_token(session_id))
        ).first()
    if row is None or row.revoked_utc is not None:
        raise UnauthorizedError("your session has ended: log in again")
    if row.expires_utc <= _now():
        raise UnauthorizedError("your session has expired: log in again")
    return WebUser(row.name, row.role, bool(row.precise_locations))


def end_session(project: Project, session_id: str) -> bool:
    """Revoke one browser session (``/logout``); returns whether it was open."""
    with project.session() as s:
        res = s.execute(
            update(WebSession)
            .where(WebSession.id_hash == hash_token(session_id), WebSession.revoked_utc.is_(None))
            .values(revoked_utc=_now())
        )
        s.commit()
        return bool(res.rowcount)
