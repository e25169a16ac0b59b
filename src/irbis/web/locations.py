"""Station coordinates as a given user may see them.

The rule of what is sensitive and how coarse a public location is lives in
:class:`irbis.core.sensitivity.LocationPolicy`; this module only applies it to
stations: a station where a sensitive species was seen is shown snapped to the
policy's grid to users without ``precise_locations``. Projected ``x``/``y``
(metres) are snapped to a grid of the same size on the ground
(``precision_deg`` × 111.32 km, one degree of latitude).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from irbis.core.sensitivity import LocationPolicy, snap
from irbis.store.project import Project
from irbis.store.schema import Annotation, Deployment, Individual, Media, Observation, Station
from irbis.web.auth import WebUser

METRES_PER_DEGREE = 111_320.0


def policy_of(project: Project) -> LocationPolicy:
    """The project's location policy (``sensitive_species`` etc. in ``Settings.extra``)."""
    return LocationPolicy.from_settings(project.settings.extra)


def sensitive_station_ids(project: Project, policy: LocationPolicy) -> set[int]:
    """Stations where a sensitive species was seen, by any record the report counts.

    A station is sensitive when a current (not retracted) observation names a
    sensitive species, when an observation names an individual of a sensitive
    species, or when a photo there carries an annotation of such an
    individual (identifications count toward the census whatever the
    observation says, so they must hide the station too).
    """
    names = {s.strip().lower() for s in policy.sensitive_species}
    if not names:
        return set()
    out: set[int] = set()
    with project.session() as s:
        # Resolve the names first (a distinct over the species index, and the
        # small individuals table), so each query below is an indexed lookup
        # rather than lower() over every observation.
        species = [
            sp
            for sp in s.scalars(select(Observation.species).distinct())
            if sp and sp.strip().lower() in names
        ]
        inds = list(
            s.scalars(
                select(Individual.id).where(func.lower(Individual.species).in_(sorted(names)))
            )
        )
        conditions = []
        if species:
            conditions.append(Observation.species.in_(species))
        if inds:
            conditions.append(Observation.individual_id.in_(inds))
        for cond in conditions:
            by_media = (
                select(Deployment.station_id)
                .join(Media, Media.deployment_id == Deployment.id)
                .join(Observation, Observation.media_id == Media.id)
                .where(Observation.retracted_utc.is_(None), cond)
            )
            by_event = (
                select(Deployment.station_id)
                .join(Observation, Observation.deployment_id == Deployment.id)
                .where(Observation.media_id.is_(None), Observation.retracted_utc.is_(None), cond)
            )
            for q in (by_media, by_event):
                out |= set(s.scalars(q.distinct()).all())
        if inds:
            by_annotation = (
                select(Deployment.station_id)
                .join(Media, Media.deployment_id == Deployment.id)
                .join(Annotation, Annotation.media_id == Media.id)
                .where(Annotation.individual_id.in_(inds))
            )
            out |= set(s.scalars(by_annotation.distinct()).all())
    return out


def station_point(station: Station, *, generalise: bool, policy: LocationPolicy) -> dict[str, Any]:
    """The coordinates of ``station``, snapped to the policy's grid when ``generalise``."""
    lon, lat, x, y = station.lon, station.lat, station.x, station.y
    if generalise:
        if lat is not None and lon is not None:
            lat, lon = policy.generalise(lat, lon)
        step = policy.precision_deg * METRES_PER_DEGREE
        if x is not None and y is not None:
            x, y = snap(x, step), snap(y, step)
    return {
        "lon": lon,
        "lat": lat,
        "x": x,
        "y": y,
        "crs": station.crs,
        "elevation": None if generalise else station.elevation,
        "generalised": generalise,
    }


def _station_rows(project: Project, policy: LocationPolicy) -> list[tuple[Any, bool, int, int]]:
    """(station, sensitive, media, deployments) per station; the costly, user-free part."""
    sensitive = sensitive_station_ids(project, policy)
    with project.session() as s:
        media = dict(
            s.execute(
                select(Deployment.station_id, func.count(Media.id))
                .join(Media, Media.deployment_id == Deployment.id)
                .group_by(Deployment.station_id)
            ).all()
        )
        deps = dict(
            s.execute(
                select(Deployment.station_id, func.count(Deployment.id)).group_by(
                    Deployment.station_id
                )
            ).all()
        )
        stations = s.scalars(select(Station).order_by(Station.name)).all()
    return [
        (st, st.id in sensitive, int(media.get(st.id, 0)), int(deps.get(st.id, 0)))
        for st in stations
    ]


def stations_for(project: Project, user: WebUser) -> list[dict[str, Any]]:
    """Every station with its coordinates as ``user`` may see them and its media count.

    The per-station counts are kept for 30 s (see :mod:`irbis.web.cache`); the
    generalisation is applied per request, for this user.

    Returns
    -------
    list of dict
        ``{"id", "name", "lon", "lat", "x", "y", "crs", "elevation", "generalised",
        "sensitive", "media", "deployments"}`` sorted by name.
    """
    from irbis.web.cache import cached

    policy = policy_of(project)
    key = (project.root, "stations", policy.sensitive_species, policy.precision_deg)
    rows = cached(key, 30.0, lambda: _station_rows(project, policy))
    out = []
    for st, sensitive, n_media, n_deps in rows:
        hide = sensitive and not user.precise_locations
        out.append(
            {
                "id": st.id,
                "name": st.name,
                **station_point(st, generalise=hide, policy=policy),
                "sensitive": sensitive,
                "media": n_media,
                "deployments": n_deps,
            }
        )
    return out


def station_names(project: Project) -> list[str]:
    """Station names, sorted (for filter forms)."""
    with project.session() as s:
        return list(s.scalars(select(Station.name).order_by(Station.name)).all())
