"""The catalogue of individuals: list, detail (photos, sightings, range) and merge.

A merged individual keeps its row with ``merged_into_id`` set; reading an
individual gathers the annotations of every row merged into it, so nothing is
rewritten by a merge and old references still resolve.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select, text, update
from sqlalchemy.orm import Session

from irbis.core.errors import BadInputError
from irbis.store.audit import record
from irbis.store.individuals import load_merge_roots
from irbis.store.project import Project
from irbis.store.schema import Annotation, Deployment, Individual, Media, Station
from irbis.web.auth import WebUser
from irbis.web.errors import ConflictError, NotFoundError
from irbis.web.locations import location_view

PHOTOS_PER_SIDE = 4


def _members(project: Project) -> dict[int, int]:
    """Map every individual id to the id it finally resolves to (through merges)."""
    with project.session() as s:
        return load_merge_roots(s)


def list_individuals(project: Project) -> list[dict[str, Any]]:
    """Every individual that is not merged into another, with sighting counts."""
    roots = _members(project)
    # First and last seen come from trusted times only: a photo whose clock is
    # untrusted (time_flag set, e.g. a camera reset to 2000) still counts as a
    # photo of the animal, but its date is not a sighting date.
    trusted_time = case((Media.time_flag == "", Media.timestamp_local))
    with project.session() as s:
        inds = s.scalars(select(Individual).order_by(Individual.name)).all()
        counts = s.execute(
            select(
                Annotation.individual_id,
                func.count(),
                func.min(trusted_time),
                func.max(trusted_time),
            )
            .join(Media, Media.id == Annotation.media_id)
            .where(Annotation.individual_id.is_not(None))
            .group_by(Annotation.individual_id)
        ).all()
    agg: dict[int, list] = defaultdict(lambda: [0, None, None])
    for iid, n, lo, hi in counts:
        r = agg[roots.get(iid, iid)]
        r[0] += n
        r[1] = lo if r[1] is None or (lo and lo < r[1]) else r[1]
        r[2] = hi if r[2] is None or (hi and hi > r[2]) else r[2]
    out = []
    for ind in inds:
        if ind.merged_into_id is not None:
            continue
        n, lo, hi = agg[ind.id]
        out.append(
            {
                "id": ind.id,
                "name": ind.name,
                "sex": ind.sex,
                "species": ind.species,
                "annotations": n,
                "first_seen": lo.isoformat() if lo else None,
                "last_seen": hi.isoformat() if hi else None,
            }
        )
    return out


def _mcp(points: list[tuple[float, float]]) -> dict[str, Any] | None:
    """Minimum convex polygon of the stations (GeoJSON-like) and its area."""
    from shapely.geometry import MultiPoint

    uniq = sorted(set(points))
    if len(uniq) < 3:
        return None
    hull = MultiPoint(uniq).convex_hull
    if hull.geom_type != "Polygon":
        return None
    return {"coordinates": [list(c) for c in hull.exterior.coords], "area": hull.area}


def individual_detail(project: Project, ind_id: int, user: WebUser) -> dict[str, Any]:
    """One individual: best photos per flank, sightings timeline, stations and range.

    Station coordinates follow the project's one location policy for ``user``
    (:func:`irbis.web.locations.location_view`): a station is generalised when
    any sensitive species was recorded there, whatever this individual's own
    species (an animal of another species, or one accepted for a photo taken
    at a snow-leopard station, must not reveal that station). The range (the
    minimum convex polygon of its stations) is computed from the coordinates
    the user may see, in projected metres when stations have ``x``/``y``
    (``area_km2``) and in degrees otherwise.
    """
    roots = _members(project)
    with project.session() as s:
        ind = s.get(Individual, ind_id)
        if ind is None:
            raise NotFoundError(f"individual {ind_id} not found")
        if ind.merged_into_id is not None:
            target = roots.get(ind_id, ind_id)
            return {"id": ind.id, "name": ind.name, "merged_into": target}
        members = [i for i, r in roots.items() if r == ind_id]
        rows = s.execute(
            select(Annotation, Media.timestamp_local, Media.time_flag, Station)
            .join(Media, Media.id == Annotation.media_id)
            .outerjoin(Deployment, Deployment.id == Media.deployment_id)
            .outerjoin(Station, Station.id == Deployment.station_id)
            .where(Annotation.individual_id.in_(members))
            # Trusted times first, in time order; untrusted ones after them.
            .order_by(
                case((Media.time_flag == "", 0), else_=1),
                Media.timestamp_utc,
                Annotation.id,
            )
        ).all()
        merged = s.scalars(
            select(Individual.name).where(Individual.id.in_(members), Individual.id != ind_id)
        ).all()
        view = location_view(project, user, s)
    photos: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a, _, _, _ in sorted(rows, key=lambda r: (-(r[0].quality or 0.0), r[0].id)):
        if len(photos[a.side]) < PHOTOS_PER_SIDE:
            photos[a.side].append(
                {
                    "annotation_id": a.id,
                    "media_id": a.media_id,
                    "box": {"x": a.x, "y": a.y, "width": a.width, "height": a.height},
                    "quality": a.quality,
                }
            )
    stations: dict[int, dict[str, Any]] = {}
    sightings = []
    seen: list[datetime] = []
    for a, t, flag, st in rows:
        # A photo whose camera time is untrusted (time_flag set, e.g. a clock
        # reset to 2000) is still a sighting of the animal, but its time is not
        # a date: it is not given, and it never sets first or last seen.
        trusted = not flag
        if trusted and t is not None:
            seen.append(t)
        sightings.append(
            {
                "annotation_id": a.id,
                "media_id": a.media_id,
                "time_local": t.isoformat() if t and trusted else None,
                "time_trusted": trusted,
                "time_flag": flag or None,
                "station": st.name if st else None,
                "side": a.side,
            }
        )
        if st is not None:
            entry = stations.setdefault(
                st.id,
                {
                    "id": st.id,
                    "name": st.name,
                    **view.point(st),
                    "sightings": 0,
                },
            )
            entry["sightings"] += 1
    st_list = sorted(stations.values(), key=lambda d: d["name"])
    xy = [(d["x"], d["y"]) for d in st_list if d["x"] is not None and d["y"] is not None]
    if len(xy) == len(st_list) and xy:
        mcp = _mcp(xy)
        if mcp:
            mcp["units"] = "m"
            mcp["area_km2"] = round(mcp.pop("area") / 1e6, 3)
    else:
        ll = [(d["lon"], d["lat"]) for d in st_list if d["lon"] is not None]
        mcp = _mcp(ll)
        if mcp:
            mcp["units"] = "deg"
            mcp["area_deg2"] = mcp.pop("area")
    return {
        "id": ind.id,
        "name": ind.name,
        "sex": ind.sex,
        "species": ind.species,
        "notes": ind.notes,
        "created_by": ind.created_by,
        "merged": list(merged),
        "photos": dict(photos),
        "sightings": sightings,
        "first_seen": min(seen).isoformat() if seen else None,
        "last_seen": max(seen).isoformat() if seen else None,
        "stations": st_list,
        "range": mcp,
        "generalised": any(d["generalised"] for d in st_list),
    }


# PostgreSQL advisory lock (two-int form) that merges and unmerges take in turn.
_PG_MERGE_LOCK = 0x6972626D


def lock_individuals(s: Session, ids: list[int]) -> None:
    """Hold the rows of ``ids`` for this transaction before reading merge chains.

    PostgreSQL: one transaction-level advisory lock makes merges and unmerges
    take turns (a merge reads and points at a whole chain, not only its pair:
    with row locks alone three merges racing round a cycle deadlocked, each
    holding its pair and waiting for the root another held), then ``SELECT
    ... FOR NO KEY UPDATE`` in id order holds the rows against other writers
    without blocking foreign-key checks of rows that point at them.
    SQLite: a no-op UPDATE takes the database's write lock now, so what this
    transaction reads next is what it will write over (its reads would
    otherwise be made before another writer's commit).
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key, 0)"), {"key": _PG_MERGE_LOCK})
        s.execute(
            select(Individual.id)
            .where(Individual.id.in_(ids))
            .order_by(Individual.id)
            .with_for_update(key_share=True)
        )
    else:
        s.execute(
            update(Individual)
            .where(Individual.id.in_(ids))
            .values(merged_into_id=Individual.merged_into_id)
        )


def root_of(s: Session, ind_id: int) -> int | None:
    """The individual ``ind_id`` finally resolves to through merges, read in ``s``.

    Returns None when the chain of merges loops (damaged data: no individual
    is the answer, and following it would never end).
    """
    seen: set[int] = set()
    cur: int | None = ind_id
    while cur is not None:
        if cur in seen:
            return None
        seen.add(cur)
        nxt = s.scalar(select(Individual.merged_into_id).where(Individual.id == cur))
        if nxt is None:
            return cur
        cur = nxt
    return None


def merge_individuals(project: Project, source_id: int, into_id: int, user: str) -> dict[str, Any]:
    """Merge individual ``source_id`` into ``into_id`` (the absorbed row is kept, marked).

    The chain of earlier merges is read inside the transaction, with the rows
    held (:func:`lock_individuals`), so two admins merging at once cannot make
    a loop.

    Raises
    ------
    NotFoundError
        Either individual does not exist.
    BadInputError
        Merging an individual into itself (directly or through earlier merges).
    ConflictError
        The merge would make a loop of merges (someone merged the other way
        meanwhile), or the chain of merges already loops.
    """
    with project.session() as s:
        lock_individuals(s, [source_id, into_id])
        src = s.get(Individual, source_id)
        dst = s.get(Individual, into_id)
        if src is None:
            raise NotFoundError(f"individual {source_id} not found")
        if dst is None:
            raise NotFoundError(f"individual {into_id} not found")
        if src.merged_into_id is not None:
            raise BadInputError(
                f"individual {source_id}", "was merged already", "merge the individual it went into"
            )
        target = root_of(s, into_id)
        if target is None:
            raise ConflictError(
                f"individual {into_id}: its merges form a loop; ask an admin to repair "
                "merged_into_id in the database"
            )
        if source_id == into_id:
            raise BadInputError(
                f"individual {source_id}", "cannot merge into itself", "pick two different animals"
            )
        if target == source_id:
            raise ConflictError(
                f"individual {into_id} ({dst.name}) was merged into {source_id} ({src.name}); "
                "merging back would make a loop: reload the catalogue"
            )
        before = {"merged_into_id": src.merged_into_id, "notes": src.notes}
        src.merged_into_id = target
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        src.notes = (src.notes + "\n" if src.notes else "") + f"merged by {user} at {stamp} UTC"
        # The before-state is what irbis individuals unmerge puts back.
        record(
            s,
            user,
            "merge",
            f"individual:{source_id}",
            before=before,
            after={"merged_into_id": target, "notes": src.notes},
            detail={"into": into_id, "name": src.name, "into_name": dst.name},
        )
        s.commit()
        return {"merged": source_id, "into": target}
