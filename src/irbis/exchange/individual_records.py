"""Independent records of identified individuals (camtrapR's ``recordTableIndividual``).

One row per independent record of one individual at one station: the rule of
``irbis records`` (``minDeltaTime`` and ``deltaTimeComparedTo``) applied per
station, species and individual instead of per station and species.

The detections are those every capture history of irbis is built from
(:func:`irbis.exchange.secr_text.project_records`): current observations
naming an individual (folder names, XMP tags, people's labels, imported
packages) and crops a person confirmed in the app, merged individuals under
the name they were merged into, and only media whose time is trusted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from irbis.ingest.events import Record, independent_records

__all__ = ["individual_record_table"]


def individual_record_table(
    project: Any,
    *,
    min_delta_min: float = 60.0,
    compared_to: Literal["lastRecord", "lastIndependentRecord"] = "lastRecord",
    exclude: Iterable[str] = (),
    species: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Independent records of identified individuals, one dict per record.

    Parameters
    ----------
    project:
        An open :class:`irbis.store.Project` or its folder.
    min_delta_min:
        Minutes between independent records of the same individual at the
        same station (camtrapR ``minDeltaTime``).
    compared_to:
        ``lastRecord`` or ``lastIndependentRecord`` (camtrapR
        ``deltaTimeComparedTo``).
    exclude:
        Species to leave out.
    species:
        Only these species (default: every species).

    Returns
    -------
    list of dict
        Keys ``station``, ``species``, ``individual``, ``time`` (local ISO),
        ``date``, ``delta_s``, ``deployment``, ``file`` and ``media_id``,
        sorted by station, species, individual and time like camtrapR's table.
        Two photos of one individual at the same second are one record (the
        second is 0 s after the first).
    """
    from irbis.exchange.secr_text import _as_project, project_records

    proj, opened = _as_project(project)
    try:
        detections = project_records(proj)
        about = _media_facts(proj, {d["media_id"] for d in detections})
    finally:
        if opened:
            proj.close()
    excluded = set(exclude)
    wanted = set(species) if species is not None else None
    records = []
    for d in detections:
        facts = about[d["media_id"]]
        sp = facts["species"].get(d["individual"]) or facts["fallback_species"] or ""
        if sp in excluded or (wanted is not None and sp not in wanted):
            continue
        records.append(
            Record(
                station=d["station"],
                species=sp,
                time=d["time_local"],
                payload={
                    "individual": d["individual"],
                    "file": facts["file"],
                    "deployment": facts["deployment"],
                    "media_id": d["media_id"],
                },
            )
        )
    records.sort(
        key=lambda r: (r.station, r.species, r.payload["individual"], r.time, r.payload["file"])
    )
    kept = independent_records(
        records,
        min_delta_min,
        compared_to,
        key=lambda r: (r.station, r.species, r.payload["individual"]),
    )
    out = [
        {
            "station": k.record.station,
            "species": k.record.species,
            "individual": k.record.payload["individual"],
            "time": k.record.time.isoformat(sep=" "),
            "date": k.record.time.date().isoformat(),
            "delta_s": k.delta_s,
            "deployment": k.record.payload["deployment"],
            "file": k.record.payload["file"],
            "media_id": k.record.payload["media_id"],
        }
        for k in kept
    ]
    out.sort(key=lambda r: (r["station"], r["species"], r["individual"], r["time"], r["file"]))
    return out


def _media_facts(project: Any, media_ids: set[int]) -> dict[int, dict[str, Any]]:
    """File name, deployment and species of each media file.

    ``species`` maps an individual's name to the species its observation
    gives; ``fallback_species`` is the media's species where the observation
    naming the individual gives none (a crop confirmed in the app): the
    latest current label of the media, else the catalogue's species.
    """
    from sqlalchemy import select

    from irbis.store.individuals import load_merge_roots
    from irbis.store.schema import Annotation, Deployment, Individual, Media, Observation

    facts: dict[int, dict[str, Any]] = {}
    if not media_ids:
        return facts
    ids = sorted(media_ids)
    with project.session() as s:
        roots = load_merge_roots(s)
        inds = {i.id: i for i in s.scalars(select(Individual))}

        def name_of(ind_id: int | None, text: str | None) -> str | None:
            if ind_id is not None:
                ind = inds.get(roots.get(ind_id, ind_id))
                return ind.name if ind else None
            return text.strip() if text else None

        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for mid, name, dep in s.execute(
                select(Media.id, Media.file_name, Deployment.code)
                .join(Deployment, Deployment.id == Media.deployment_id)
                .where(Media.id.in_(chunk))
            ):
                facts[mid] = {
                    "file": name,
                    "deployment": dep,
                    "species": {},
                    "fallback_species": None,
                }
            obs = s.execute(
                select(
                    Observation.media_id,
                    Observation.species,
                    Observation.individual,
                    Observation.individual_id,
                )
                .where(
                    Observation.media_id.in_(chunk),
                    Observation.retracted_utc.is_(None),
                    Observation.species.is_not(None),
                )
                .order_by(Observation.created_utc, Observation.id)
            ).all()
            for mid, sp, text, ind_id in obs:
                f = facts[mid]
                f["fallback_species"] = sp  # the latest label wins
                who = name_of(ind_id, text)
                if who:
                    f["species"][who] = sp
            for mid, ind_id in s.execute(
                select(Annotation.media_id, Annotation.individual_id).where(
                    Annotation.media_id.in_(chunk), Annotation.individual_id.is_not(None)
                )
            ):
                f = facts[mid]
                ind = inds.get(roots.get(ind_id, ind_id))
                if ind is not None and f["fallback_species"] is None:
                    f["fallback_species"] = ind.species
    return facts
