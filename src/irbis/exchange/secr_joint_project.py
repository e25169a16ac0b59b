"""A project's cameras and scat transects as one camera + genetic SECR survey.

- **cameras**: :func:`irbis.exchange.secr_text.project_capthist` (stations
  with effort, identified animals by name);
- **scat searches**: every sign transect with a line is a ``transect``
  detector searched once (one occasion, effort 1; a route walked twice is two
  transects); every genotyped scat sample found on a transect is a detection
  at its place. A genotype linked to a photo-identified individual (a current
  link, see :mod:`irbis.store.genetics`) carries that individual's name, so
  the joint fit treats both as one animal; an unlinked genotype stands as its
  own animal (``genotype:<code>``).

Places are projected to the stations' frame (their x/y, or the UTM zone
``project_capthist`` uses for lon/lat); where the stations have x/y without a
CRS, field x/y are taken to be in that frame and lon/lat are refused. A sample a few metres off its
transect (a GPS fix, a scat beside the path) is moved to the nearest point
of the line when within ``snap_m``; further off is an error naming the sample.
Samples without a genotype or not on a transect are not used (counted).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from irbis.core.errors import BadInputError
from irbis.stats.secr_joint import JointSurvey
from irbis.stats.secr_polygon import AreaSearchHistory, SearchAreas

__all__ = ["project_joint_survey"]


def _frame(stations: list[dict[str, Any]], names: list[str]) -> Any:
    """A function (a, b, crs or None for lon/lat, where) -> metres in the cameras' frame.

    The frame is the one ``project_capthist`` gives the cameras: their own
    x/y (with their CRS), else the UTM zone of their mean longitude.
    """
    from pyproj import Transformer

    rows = [r for r in stations if r["name"] in set(names)]
    if all(r["x"] is not None and r["y"] is not None for r in rows):
        crs = {r["crs"] for r in rows}
        target = crs.pop() if len(crs) == 1 else None
    else:
        lon = np.array([r["lon"] for r in rows if r["lon"] is not None], dtype=float)
        lat = np.array([r["lat"] for r in rows if r["lat"] is not None], dtype=float)
        zone = int(math.floor((float(lon.mean()) + 180) / 6)) + 1
        target = f"EPSG:{(32600 if float(lat.mean()) >= 0 else 32700) + zone}"
    cache: dict[str | None, Any] = {}

    def to_frame(a: np.ndarray, b: np.ndarray, crs: str | None, where: str) -> np.ndarray:
        """``crs=None``: lon/lat; ``""``: x/y of no stated CRS; else x/y in that CRS."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        if crs is not None and (target is None or crs == target):
            # the stations' own x/y frame (without a CRS: field x/y are taken to share it)
            return np.column_stack([a, b])
        if crs == "":
            raise BadInputError(where, "has x/y without a CRS", "give its crs, or its lon/lat")
        if target is None:
            raise BadInputError(
                where,
                "has lon/lat while the stations have x/y without a CRS",
                "give the stations' CRS in the registry (crs column), or the place as x/y",
            )
        src = crs or "EPSG:4326"
        if src not in cache:
            cache[src] = Transformer.from_crs(src, target, always_xy=True)
        x, y = cache[src].transform(a, b)
        return np.column_stack([x, y])

    return to_frame


def _snap(p: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, float]:
    a, b = line[:-1], line[1:]
    ab = b - a
    L2 = np.maximum((ab**2).sum(axis=1), 1e-300)
    t = np.clip(((p - a) * ab).sum(axis=1) / L2, 0, 1)
    near = a + t[:, None] * ab
    d = np.hypot(*(near - p).T)
    j = int(np.argmin(d))
    return near[j], float(d[j])


def project_joint_survey(
    project: Any,
    occasion_days: int | None = None,
    species: str | None = None,
    snap_m: float = 100.0,
    detector: str = "count",
) -> tuple[JointSurvey, dict[str, Any]]:
    """Camera capture histories and scat-transect detections of a project.

    Parameters
    ----------
    project:
        An open :class:`irbis.store.Project` or its folder.
    occasion_days:
        Camera days per occasion (``None``: one occasion).
    species:
        Only camera observations of this species.
    snap_m:
        Largest distance (metres) of a scat sample from its transect that is
        moved onto the line.
    detector:
        Camera detector type (``count``, ``proximity`` or ``multi``).

    Returns
    -------
    survey:
        The joint survey.
    info:
        What was used and left out (``samples_used``, ``no_genotype``,
        ``off_transect``, ``linked_genotypes``, ``max_snap_m``).
    """
    from sqlalchemy import select

    from irbis.exchange.secr_text import _as_project, project_capthist
    from irbis.store.individuals import load_merge_roots
    from irbis.store.schema import (
        FieldRecord,
        Genotype,
        GenotypeLink,
        Individual,
        Station,
        Transect,
    )

    proj, opened = _as_project(project)
    try:
        camera = project_capthist(proj, occasion_days, detector=detector, species=species)
        with proj.session() as s:
            stations = [
                {"name": st.name, "x": st.x, "y": st.y, "lon": st.lon, "lat": st.lat,
                 "crs": st.crs}
                for st in s.scalars(select(Station))
            ]  # fmt: skip
            roots = load_merge_roots(s)
            ind_names = dict(s.execute(select(Individual.id, Individual.name)).all())
            links = {
                g: ind_names.get(roots.get(i, i))
                for g, i in s.execute(
                    select(GenotypeLink.genotype_id, GenotypeLink.individual_id)
                    .where(GenotypeLink.retracted_utc.is_(None))
                    .order_by(GenotypeLink.id)
                ).all()
            }
            codes = dict(s.execute(select(Genotype.id, Genotype.code)).all())
            transects = [
                (t.id, t.code, list(t.line or []), t.crs)
                for t in s.scalars(select(Transect).order_by(Transect.code))
            ]
            samples = [
                (r.sample_id or r.uid, r.genotype_id, r.transect_id, r.x, r.y, r.lon, r.lat, r.crs)
                for r in s.scalars(
                    select(FieldRecord)
                    .where(FieldRecord.kind == "scat_sample")
                    .order_by(FieldRecord.observed_utc, FieldRecord.id)
                )
            ]
    finally:
        if opened:
            proj.close()
    where = str(getattr(proj, "root", project))
    to_frame = _frame(stations, list(camera.traps.ids))
    part_of: dict[int, int] = {}
    parts, part_ids = [], []
    for tid, code, line, crs in transects:
        if len(line) < 2:
            continue
        arr = np.asarray(line, dtype=float)
        part_of[tid] = len(parts)
        parts.append(to_frame(arr[:, 0], arr[:, 1], crs, f"transect {code}"))
        part_ids.append(code)
    if not parts:
        raise BadInputError(where, "no sign transect with a line", "import transects with lines")
    info: dict[str, Any] = {"no_genotype": 0, "off_transect": 0, "samples_used": 0}
    names: list[str] = []
    animal, part, xy, rows = [], [], [], []
    max_snap = 0.0
    for sample, gid, tid, x, y, lon, lat, crs in samples:
        if gid is None:
            info["no_genotype"] += 1
            continue
        if tid is None or tid not in part_of:
            info["off_transect"] += 1
            continue
        label = f"scat sample {sample}"
        if x is not None and y is not None:
            p = to_frame(np.array([x]), np.array([y]), crs or "", label)[0]
        elif lon is not None and lat is not None:
            p = to_frame(np.array([lon]), np.array([lat]), None, label)[0]
        else:
            raise BadInputError(label, "has no coordinates", "give its lon/lat or x/y")
        k = part_of[tid]
        on, dist = _snap(p[None, :], parts[k])
        if dist > snap_m:
            raise BadInputError(
                label,
                f"lies {dist:.0f} m from its transect {part_ids[k]!r}",
                f"fix its place or transect, or allow more with --snap-m (now {snap_m:g} m)",
            )
        max_snap = max(max_snap, dist)
        name = links.get(gid) or f"genotype:{codes.get(gid, gid)}"
        if name not in names:
            names.append(name)
        animal.append(names.index(name))
        part.append(k)
        xy.append(on)
        rows.append(label)
    if not names:
        raise BadInputError(
            where, "no genotyped scat sample on a transect", "import lab results and transects"
        )
    areas = SearchAreas(part_ids, parts, "transect")
    search = AreaSearchHistory(
        ids=names,
        areas=areas,
        detector="transect",
        n_occasions=1,
        animal=np.array(animal),
        occasion=np.zeros(len(animal), dtype=int),
        part=np.array(part),
        xy=np.array(xy),
        where=rows,
    )
    info.update(
        samples_used=len(animal),
        linked_genotypes=sum(1 for n in names if not n.startswith("genotype:")),
        max_snap_m=max_snap,
    )
    return JointSurvey(camera=camera, search=search), info
