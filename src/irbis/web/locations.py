"""Station coordinates as a given user may see them: the app's one location policy.

The rule of what is sensitive and how coarse a public location is lives in
:class:`irbis.core.sensitivity.LocationPolicy`; which stations it makes
sensitive is :func:`irbis.store.sensitivity.sensitive_station_ids` (every
species labelled there, by any of its names, and identified animals). This
module applies it to every response that carries a place: a sensitive
station is shown snapped to the policy's grid to users without
``precise_locations``. Projected ``x``/``y`` (metres) are snapped to a grid of
the same size on the ground (``precision_deg`` × 111.32 km, one degree of
latitude).

Sensitivity is read in the request's own transaction, never from a cache:
with several worker processes, a cache cleared by the worker that wrote a
label stayed stale in the others (a viewer got a station's exact place for
up to 24 s after its first snow-leopard label). Only the per-station counts,
which carry no place, are cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from irbis.core.sensitivity import LocationPolicy, snap
from irbis.store.project import Project
from irbis.store.schema import Deployment, Media, Station
from irbis.store.sensitivity import SensitiveNames, policy_and_names
from irbis.store.sensitivity import sensitive_station_ids as _sensitive_ids
from irbis.web.auth import WebUser

METRES_PER_DEGREE = 111_320.0


def policy_of(project: Project) -> LocationPolicy:
    """The project's location policy (``sensitive_species`` etc. in ``Settings.extra``)."""
    return policy_and_names(project)[0]


def sensitive_station_ids(project: Project, policy: LocationPolicy | None = None) -> set[int]:
    """Stations where a sensitive species was recorded (see :mod:`irbis.store.sensitivity`).

    ``policy`` overrides the project's own (its names are still widened through
    the taxa table and the project's species list).
    """
    from irbis.store.sensitivity import sensitive_names
    from irbis.store.species import listed

    if policy is None:
        _, names = policy_and_names(project)
    else:
        names = sensitive_names(policy, listed(project))
    with project.session() as s:
        return _sensitive_ids(s, names)


@dataclass(frozen=True)
class LocationView:
    """What one user may see of station places, decided once per request.

    Attributes
    ----------
    policy:
        The project's location policy.
    names:
        Its sensitive species under every name.
    sensitive:
        Ids of the sensitive stations (as the request's transaction saw them).
    precise:
        Whether the user may see sensitive stations precisely.
    """

    policy: LocationPolicy
    names: SensitiveNames
    sensitive: frozenset[int]
    precise: bool

    def hides(self, station_id: int | None) -> bool:
        """Whether the station's place is generalised for this user."""
        return not self.precise and station_id in self.sensitive

    def point(self, station: Station) -> dict[str, Any]:
        """:func:`station_point` of ``station`` as this user may see it."""
        return station_point(station, generalise=self.hides(station.id), policy=self.policy)


def location_view(project: Project, user: WebUser, s: Session | None = None) -> LocationView:
    """The location policy applied for ``user``, read in ``s`` (or a new session)."""
    policy, names = policy_and_names(project)
    if s is not None:
        ids = _sensitive_ids(s, names)
    else:
        with project.session() as own:
            ids = _sensitive_ids(own, names)
    return LocationView(policy, names, frozenset(ids), bool(user.precise_locations))


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


def _station_counts(project: Project) -> dict[int, tuple[int, int]]:
    """``{station id: (media, deployments)}``: the costly part, which carries no place."""
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
    return {sid: (int(media.get(sid, 0)), int(n)) for sid, n in deps.items()}


def stations_for(project: Project, user: WebUser) -> list[dict[str, Any]]:
    """Every station with its coordinates as ``user`` may see them and its media count.

    The per-station counts are kept for 30 s (see :mod:`irbis.web.cache`);
    which stations are sensitive is read now, in this request (see the module
    docstring), and the generalisation applied for this user. A station's
    coordinates themselves are read now too (a registry update applies at once).

    Returns
    -------
    list of dict
        ``{"id", "name", "lon", "lat", "x", "y", "crs", "elevation", "generalised",
        "sensitive", "media", "deployments"}`` sorted by name.
    """
    from irbis.web.cache import cached

    counts = cached((project.root, "station-counts"), 30.0, lambda: _station_counts(project))
    with project.session() as s:
        view = location_view(project, user, s)
        stations = s.scalars(select(Station).order_by(Station.name)).all()
        out = []
        for st in stations:
            n_media, n_deps = counts.get(st.id, (0, 0))
            out.append(
                {
                    "id": st.id,
                    "name": st.name,
                    **view.point(st),
                    "sensitive": st.id in view.sensitive,
                    "media": n_media,
                    "deployments": n_deps,
                }
            )
    return out


def station_names(project: Project) -> list[str]:
    """Station names, sorted (for filter forms)."""
    with project.session() as s:
        return list(s.scalars(select(Station.name).order_by(Station.name)).all())
