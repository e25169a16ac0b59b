"""What the audit log gives the app: undoing a merge, reading the log, logging downloads.

``POST /api/individuals/{id}/unmerge`` (admins) puts back the state a merge
recorded before it changed anything; ``GET /api/audit`` (admins) lists the
log; :class:`AuditDownloads` records who downloaded which original.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.store import audit
from irbis.store.project import Project
from irbis.store.schema import AuditEntry, Individual
from irbis.web.auth import WebUser
from irbis.web.deps import DbId, admin, get_project
from irbis.web.errors import ConflictError, NotFoundError
from irbis.web.individuals import lock_individuals

router = APIRouter(prefix="/api")
ProjectDep = Annotated[Project, Depends(get_project)]
AdminDep = Annotated[WebUser, Depends(admin)]


def _individual(s, ref: str | int) -> Individual:
    """An individual by id or by name."""
    ind = None
    if isinstance(ref, int) or str(ref).strip().isdigit():
        ind = s.get(Individual, int(ref))
    if ind is None and isinstance(ref, str):
        ind = s.scalar(select(Individual).where(Individual.name == ref.strip()))
    if ind is None:
        raise NotFoundError(f"individual {ref} not found")
    return ind


def unmerge_individual(project: Project, ref: str | int, actor: str) -> dict[str, Any]:
    """Undo the last merge of an individual from the before-state its audit row recorded.

    The absorbed individual becomes its own again (``merged_into_id`` and its
    notes as they were before the merge); its photos and sightings, which
    were never moved, are its own again. Individuals merged into it stay
    merged into it. The undo is itself recorded (``unmerge``).

    Parameters
    ----------
    ref:
        The individual's id or name.
    actor:
        Who undoes it.

    Returns
    -------
    dict
        ``{"individual", "name", "was_merged_into", "merged_into", "undoes"}``.

    Raises
    ------
    NotFoundError
        No such individual.
    BadInputError
        It is not merged, or its merge predates the audit log (no before-state).
    ConflictError
        It was merged again differently since the recorded merge.
    """
    with project.session() as s:
        ind = _individual(s, ref)
        lock_individuals(s, [ind.id])
        s.refresh(ind)
        where = f"individual {ind.id} ({ind.name})"
        if ind.merged_into_id is None:
            raise BadInputError(where, "is not merged", "nothing to undo")
        target = f"individual:{ind.id}"
        entry = s.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "merge", AuditEntry.target == target)
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
        if entry is None or not isinstance(entry.before, dict):
            raise BadInputError(
                where,
                "its merge was made before the audit log existed: no recorded before-state",
                "an admin can set merged_into_id to NULL in the database",
            )
        recorded = (entry.after or {}).get("merged_into_id")
        if recorded != ind.merged_into_id:
            raise ConflictError(
                f"{where} is merged into {ind.merged_into_id} now, not into {recorded} as the "
                f"recorded merge (audit {entry.id}) left it: reload and check the audit log"
            )
        before = {"merged_into_id": ind.merged_into_id, "notes": ind.notes}
        ind.merged_into_id = entry.before.get("merged_into_id")
        if ind.notes == (entry.after or {}).get("notes"):
            ind.notes = entry.before.get("notes") or ""
        else:  # notes edited since the merge: keep them, say what happened
            stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
            ind.notes = (ind.notes + "\n" if ind.notes else "") + f"unmerged by {actor} at {stamp}"
        audit.record(
            s,
            actor,
            "unmerge",
            target,
            before=before,
            after={"merged_into_id": ind.merged_into_id, "notes": ind.notes},
            detail={"undoes": entry.id, "name": ind.name},
        )
        s.commit()
        out = {
            "individual": ind.id,
            "name": ind.name,
            "was_merged_into": before["merged_into_id"],
            "merged_into": ind.merged_into_id,
            "undoes": entry.id,
        }
    from irbis.web.cache import clear

    clear(project.root)
    return out


@router.post("/individuals/{ind_id}/unmerge", tags=["individuals"])
def post_unmerge(ind_id: DbId, project: ProjectDep, user: AdminDep) -> dict[str, Any]:
    """Undo this individual's last merge from the audit log's before-state; admins only."""
    return unmerge_individual(project, ind_id, user.name)


class AuditPage(BaseModel):
    """Audit rows, newest first."""

    entries: list[dict[str, Any]]
    count: int


@router.get("/audit", tags=["audit"])
def get_audit(
    project: ProjectDep,
    user: AdminDep,
    action: Annotated[str | None, Query(max_length=40)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    target: Annotated[str | None, Query(max_length=400)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> AuditPage:
    """The audit log (who, what, when, before/after), filtered; admins only."""
    rows = audit.entries(
        project, action=action, actor=actor, target=target, since=since, until=until, limit=limit
    )
    return AuditPage(entries=rows, count=len(rows))


_FILE = re.compile(r"^/api/media/(\d+)/file$")


class AuditDownloads:
    """ASGI middleware recording each original served (``GET /api/media/N/file``, 200).

    The row is written after the response has gone out, off the event loop.
    One user fetching the same file again within :attr:`repeat_s` seconds
    (the viewer reloading it) is not recorded again by this process.
    """

    repeat_s = 600.0

    def __init__(self, app, project: Project) -> None:
        self.app = app
        self.project = project
        self._seen: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def _fresh(self, user: str, media_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 50_000:
                self._seen.clear()
            last = self._seen.get((user, media_id))
            if last is not None and now - last < self.repeat_s:
                return False
            self._seen[(user, media_id)] = now
            return True

    async def __call__(self, scope, receive, send) -> None:
        match = _FILE.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        # The user dependency leaves the user in the request state (this dict).
        state = scope.setdefault("state", {})
        status = 0

        async def send_seen(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_seen)
        user = state.get("user")
        media_id = int(match.group(1))
        if status != 200 or user is None or not self._fresh(user.name, media_id):
            return
        client = scope.get("client") or ("", 0)
        from anyio import to_thread

        await to_thread.run_sync(
            partial(
                audit.add,
                self.project,
                user.name,
                "download",
                f"media:{media_id}",
                detail={"precise": bool(user.precise_locations), "ip": client[0]},
            )
        )
