"""Species record tables from a project's observations (camtrapR's ``recordTable``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy import select

from irbis.ingest.events import Record, independent_records
from irbis.store.project import Project
from irbis.store.schema import Deployment, Media, Observation, Station


def record_table(
    project: Project,
    *,
    min_delta_min: float = 60.0,
    compared_to: Literal["lastRecord", "lastIndependentRecord"] = "lastRecord",
    exclude: Iterable[str] = (),
    species: Iterable[str] | None = None,
) -> list[dict]:
    """Independent species records per station, one dict per record.

    Only media with a trusted time (no ``time_flag``) count. A media file
    named for one species by both its folder and its XMP tags counts once.

    Returns
    -------
    list of dict
        Keys ``station``, ``species``, ``time`` (local ISO), ``date``,
        ``delta_s``, ``deployment``, ``file`` and ``media_id``, sorted by
        station, species and time like camtrapR's table.
    """
    excluded = set(exclude)
    wanted = set(species) if species is not None else None
    with project.session() as session:
        rows = session.execute(
            select(
                Station.name,
                Observation.species,
                Media.timestamp_local,
                Media.file_name,
                Media.id,
                Deployment.code,
                Media.source_relpath,
            )
            .join(Media, Observation.media_id == Media.id)
            .join(Deployment, Media.deployment_id == Deployment.id)
            .join(Station, Deployment.station_id == Station.id)
            .where(
                Observation.species.is_not(None),
                Observation.retracted_utc.is_(None),
                Media.time_flag == "",
            )
        ).all()
    seen: set[tuple[str, str, int]] = set()
    records = []
    for st, sp, t, name, mid, dep, rel in rows:
        if sp in excluded or (wanted is not None and sp not in wanted) or (st, sp, mid) in seen:
            continue
        seen.add((st, sp, mid))
        records.append(
            Record(
                station=st,
                species=sp,
                time=t,
                payload={"file": name, "media_id": mid, "deployment": dep, "path": rel},
            )
        )
    records.sort(key=lambda r: (r.station, r.species, r.time, r.payload["file"]))
    kept = independent_records(records, min_delta_min, compared_to)
    out = [
        {
            "station": k.record.station,
            "species": k.record.species,
            "time": k.record.time.isoformat(sep=" "),
            "date": k.record.time.date().isoformat(),
            "delta_s": k.delta_s,
            "deployment": k.record.payload["deployment"],
            "file": k.record.payload["file"],
            "media_id": k.record.payload["media_id"],
        }
        for k in kept
    ]
    out.sort(key=lambda r: (r["station"], r["species"], r["time"]))
    return out
