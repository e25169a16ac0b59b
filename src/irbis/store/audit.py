"""The audit log: who changed or took what, when, with the state before and after.

Writers add a row in the *same* transaction as the change they describe
(:func:`record`), so a change is never stored without its record nor a
record without its change. Readers filter it (:func:`entries`): ``irbis
audit PROJECT`` and ``GET /api/audit``. Rows are only ever added.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError
from irbis.core.jsonsafe import finite
from irbis.store.project import Project
from irbis.store.schema import AuditEntry

#: Actions written by irbis (``irbis audit --action`` accepts these, or a prefix like ``user``).
ACTIONS = (
    "label",
    "label.undo",
    "identify",
    "split",
    "rename",
    "merge",
    "unmerge",
    "registry.import",
    "registry.station",
    "registry.deployment",
    "user.add",
    "user.role",
    "user.revoke",
    "user.token",
    "download",
    "export",
    "field.create",
    "field.edit",
    "transect.create",
    "transect.edit",
    "genotype.link",
    "genotype.unlink",
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def cli_actor() -> str:
    """How a command typed on this machine names its person: ``cli:<login name>``."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without passwd entry)
        who = "unknown"
    return f"cli:{who}"


def _plain(value: Any) -> Any:
    """``value`` as JSON the database stores on both backends (dates as ISO text, no NaN)."""
    return finite(json.loads(json.dumps(value, default=_default))) if value is not None else None


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return str(obj)


def record(
    s: Session,
    actor: str,
    action: str,
    target: str = "",
    *,
    before: Any = None,
    after: Any = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one audit row to session ``s`` (committed with the change it describes).

    Parameters
    ----------
    actor:
        The user name (web), or :func:`cli_actor` for a command.
    action:
        One of :data:`ACTIONS`.
    target:
        What it is about, ``kind:id`` (``individual:12``) or a path.
    before, after:
        The state before and after, JSON-able (datetimes become ISO text).
    detail:
        More context: the client address, options, counts.
    """
    s.add(
        AuditEntry(
            at_utc=_now(),
            actor=actor[:200],
            action=action,
            target=target[:400],
            before=_plain(before),
            after=_plain(after),
            detail=_plain(detail or {}),
        )
    )


def add(project: Project, actor: str, action: str, target: str = "", **kw: Any) -> None:
    """:func:`record` in a transaction of its own (for things that change nothing: downloads,
    exports)."""
    with project.session() as s:
        record(s, actor, action, target, **kw)
        s.commit()


def _when(text: str, option: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(
            f"audit {option} {text}", "not a date or time", "use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def entries(
    project: Project,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Audit rows, newest first, filtered.

    Parameters
    ----------
    action:
        An action, or a prefix ending before a dot (``user`` gives every ``user.*``).
    actor:
        Exact user name (``cli:NAME`` for commands).
    target:
        Exact target (``individual:12``), or a prefix ending with ``:`` (``media:``).
    since, until:
        ISO dates or times (UTC unless they carry an offset); ``until`` is exclusive.
    limit:
        At most this many rows (1..100000).

    Raises
    ------
    BadInputError
        An unknown action, a bad date or limit.
    """
    if not 1 <= limit <= 100_000:
        raise BadInputError(f"audit --limit {limit}", "out of range", "use 1..100000")
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        if action not in ACTIONS and not any(a.startswith(action + ".") for a in ACTIONS):
            raise BadInputError(
                f"audit --action {action}", "unknown action", f"use one of: {', '.join(ACTIONS)}"
            )
        prefix = AuditEntry.action.startswith(action + ".", autoescape=True)
        q = q.where((AuditEntry.action == action) | prefix)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if target:
        if target.endswith(":"):
            q = q.where(AuditEntry.target.startswith(target, autoescape=True))
        else:
            q = q.where(AuditEntry.target == target)
    if since:
        q = q.where(AuditEntry.at_utc >= _when(since, "--since"))
    if until:
        q = q.where(AuditEntry.at_utc < _when(until, "--until"))
    with project.session() as s:
        return [as_dict(e) for e in s.scalars(q)]


def as_dict(e: AuditEntry) -> dict[str, Any]:
    """One audit row as plain JSON-able data."""
    return {
        "id": e.id,
        "at_utc": e.at_utc.isoformat(sep=" ", timespec="seconds"),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "before": e.before,
        "after": e.after,
        "detail": e.detail or {},
    }
