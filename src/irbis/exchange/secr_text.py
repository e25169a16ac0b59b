"""Capture histories from a project's own records, and R ``secr`` text files.

:func:`project_capthist` builds an SECR :class:`~irbis.stats.secr_data.CaptureHistory`
from the identified animals of a project: observations with a non-empty
``individual`` on media whose time is trusted (``media.time_flag == ''``),
located through media -> deployment -> station. Traps are the stations with
effort, at their projected ``x``/``y`` (or ``lon``/``lat`` projected to the
local UTM zone); usage per occasion is the operating camera-days from
:func:`irbis.ingest.effort.project_effort`; station covariates become trap
covariates.

A detection is one independent record: media of the same burst (sequence)
count once. For ``count`` detectors the count is the number of such
records per animal, station and occasion; ``proximity`` keeps 0/1.
Corrections are new observation rows, so for each media file only the
observations of its most recent time of creation are used.

:func:`export_secr` writes the same data as the two text files R's
``read.capthist(captfile, trapfile, fmt = "trapID", detector = "count",
noccasions = S, binary.usage = FALSE, trapcovnames = c(...))`` reads (usage
as continuous effort, station covariates after the ``/``).

secr's ``read.traps`` reads a traps file with R's ``read.table`` (fields
split at blanks, ``"`` and ``'`` quote, ``#`` starts a comment), pastes the
fields after ``x y`` together again, splits that text at every ``/`` (usage
before, covariates after) and reads the covariates with ``read.table`` a
second time, after the first read has stripped the quotes. No quoting
survives both reads, and a ``/`` can never be inside a field. So every
trap ID, animal ID and text covariate is written as an R-safe token: blanks,
``/``, ``#``, quotes and backslashes become ``_``, and two values that would
become the same token stay apart (``a/b`` -> ``a_b``, ``a_b`` stays, a second
``a/b``-like value gets ``a_b_2``). :func:`export_secr` returns what it
renamed.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from irbis.core.errors import BadInputError
from irbis.stats.secr_data import CaptureHistory, Traps

__all__ = ["export_secr", "project_capthist", "project_records"]


def _as_project(project: Any) -> tuple[Any, bool]:
    from irbis.store import Project

    if isinstance(project, str | Path):
        return Project.open(project), True
    return project, False


def project_records(project: Any, species: str | None = None) -> list[dict[str, Any]]:
    """Identified detections of a project: one row per media x individual.

    Parameters
    ----------
    project:
        An open :class:`irbis.store.Project` or its folder.
    species:
        Only observations of this species (default: all).

    Returns
    -------
    list of dict
        ``individual``, ``station``, ``time_local`` (naive local datetime),
        ``event`` (burst key: sequence id, else ``m<media id>``), ``media_id``.
    """
    from sqlalchemy import select

    from irbis.store.individuals import load_merge_roots, names_individual
    from irbis.store.schema import Annotation, Deployment, Individual, Media, Observation, Station

    proj, opened = _as_project(project)
    try:
        with proj.session() as s:
            # Merged individuals answer to the one they were merged into.
            roots = load_merge_roots(s)
            names = dict(s.execute(select(Individual.id, Individual.name)).all())

            def resolve(ind_id: int | None, text: str | None) -> str | None:
                if ind_id is not None:
                    return names.get(roots.get(ind_id, ind_id))
                return text

            where_media = (
                Media.time_flag == "",
                Media.timestamp_local.is_not(None),
            )
            q = (
                select(
                    Observation.media_id,
                    Observation.individual,
                    Observation.individual_id,
                    Observation.species,
                    Observation.created_utc,
                    Observation.id,
                    Media.timestamp_local,
                    Media.sequence_id,
                    Station.name,
                )
                .join(Media, Media.id == Observation.media_id)
                .join(Deployment, Deployment.id == Media.deployment_id)
                .join(Station, Station.id == Deployment.station_id)
                .where(Observation.retracted_utc.is_(None))
                .where(names_individual())
                .where(*where_media)
            )
            if species is not None:
                q = q.where(Observation.species == species)
            rows = [
                SimpleNamespace(
                    **{**r._asdict(), "individual": resolve(r.individual_id, r.individual)}
                )
                for r in s.execute(q).all()
            ]
            # A crop a person confirmed as an individual is a capture too.
            confirmed = s.execute(
                select(
                    Annotation.media_id,
                    Annotation.individual_id,
                    Annotation.created_utc,
                    Media.timestamp_local,
                    Media.sequence_id,
                    Station.name,
                )
                .join(Media, Media.id == Annotation.media_id)
                .join(Deployment, Deployment.id == Media.deployment_id)
                .join(Station, Station.id == Deployment.station_id)
                .where(Annotation.individual_id.is_not(None))
                .where(*where_media)
            ).all()
            if species is not None and confirmed:
                # Annotations carry no species: keep those whose media a
                # current observation says show ``species``.
                ok = set(
                    s.scalars(
                        select(Observation.media_id).where(
                            Observation.species == species,
                            Observation.retracted_utc.is_(None),
                        )
                    ).all()
                )
                confirmed = [c for c in confirmed if c.media_id in ok]
    finally:
        if opened:
            proj.close()
    rows = [r for r in rows if r.individual]
    latest: dict[int, datetime] = {}
    for r in rows:
        c = r.created_utc
        if r.media_id not in latest or c > latest[r.media_id]:
            latest[r.media_id] = c
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for r in rows:
        if r.created_utc != latest[r.media_id]:
            continue
        key = (r.media_id, r.individual.strip())
        out[key] = {
            "individual": r.individual.strip(),
            "station": r.name,
            "time_local": r.timestamp_local,
            "event": f"s{r.sequence_id}" if r.sequence_id is not None else f"m{r.media_id}",
            "media_id": r.media_id,
        }
    for c in confirmed:
        name = resolve(c.individual_id, None)
        if not name:
            continue
        out.setdefault(
            (c.media_id, name),
            {
                "individual": name,
                "station": c.name,
                "time_local": c.timestamp_local,
                "event": f"s{c.sequence_id}" if c.sequence_id is not None else f"m{c.media_id}",
                "media_id": c.media_id,
            },
        )
    return sorted(out.values(), key=lambda d: (d["time_local"], d["individual"]))


def _station_table(project: Any) -> dict[str, dict[str, Any]]:
    from sqlalchemy import select

    from irbis.store.schema import Station

    with project.session() as s:
        return {
            st.name: {
                "x": st.x,
                "y": st.y,
                "lon": st.lon,
                "lat": st.lat,
                "crs": st.crs,
                "covariates": dict(st.covariates or {}),
            }
            for st in s.scalars(select(Station))
        }


def _coordinates(names: list[str], table: dict[str, dict[str, Any]]) -> np.ndarray:
    if all(table[n]["x"] is not None and table[n]["y"] is not None for n in names):
        return np.array([(table[n]["x"], table[n]["y"]) for n in names], dtype=float)
    if all(table[n]["lon"] is not None and table[n]["lat"] is not None for n in names):
        from pyproj import Transformer

        lon = np.array([table[n]["lon"] for n in names], dtype=float)
        lat = np.array([table[n]["lat"] for n in names], dtype=float)
        zone = int(math.floor((float(lon.mean()) + 180) / 6)) + 1
        epsg = (32600 if float(lat.mean()) >= 0 else 32700) + zone
        tr = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
        x, y = tr.transform(lon, lat)
        return np.column_stack([x, y])
    bad = [n for n in names if table[n]["x"] is None and table[n]["lon"] is None]
    if bad:
        raise BadInputError(
            f"station {bad[0]}", "no coordinates", "give the station x/y or lon/lat in the registry"
        )
    # Some stations have only projected x/y, others only lon/lat: bring the
    # projected ones to lon/lat (their CRS says how), then project all alike.
    from pyproj import Transformer

    filled = {n: dict(table[n]) for n in names}
    for n, row in filled.items():
        if row["lon"] is not None and row["lat"] is not None:
            continue
        if not row.get("crs"):
            raise BadInputError(
                f"station {n}",
                "has x/y without a CRS while other stations have only lon/lat",
                "give its CRS in the registry (crs column, e.g. EPSG:32646) or its lon/lat",
            )
        tr = Transformer.from_crs(row["crs"], "EPSG:4326", always_xy=True)
        row["lon"], row["lat"] = tr.transform(row["x"], row["y"])
        row["x"] = row["y"] = None
    return _coordinates(names, filled)


def _covariates(names: list[str], table: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    keys = sorted({k for n in names for k in table[n]["covariates"]})
    out: dict[str, np.ndarray] = {}
    for k in keys:
        vals = [table[n]["covariates"].get(k) for n in names]
        try:
            out[k] = np.array([np.nan if v in (None, "") else float(v) for v in vals])
        except (TypeError, ValueError):
            out[k] = np.array(["" if v is None else str(v) for v in vals], dtype=object)
    return out


def project_capthist(
    project: Any,
    occasion_days: int | None = None,
    detector: str = "count",
    species: str | None = None,
) -> CaptureHistory:
    """SECR capture history of a project's identified animals.

    Parameters
    ----------
    project:
        An open :class:`irbis.store.Project` or its folder.
    occasion_days:
        Days per occasion, counted from the first day of effort; ``None``:
        the whole survey is one occasion.
    detector:
        ``count`` (independent records per occasion), ``proximity`` (0/1) or
        ``multi``.
    species:
        Only observations of this species.

    Returns
    -------
    CaptureHistory
        With traps = stations with effort, usage = camera-days per occasion.
    """
    from irbis.ingest.effort import project_effort

    proj, opened = _as_project(project)
    try:
        recs = project_records(proj, species=species)
        op = project_effort(proj)
        table = _station_table(proj)
    finally:
        if opened:
            proj.close()
    where = str(getattr(proj, "root", project))
    if not recs:
        raise BadInputError(
            where,
            "no identified animals with trusted times",
            "identify individuals (observations.individual) first",
        )
    if not op.days:
        raise BadInputError(where, "no deployments", "import the station registry first")
    n_days = len(op.days)
    k = n_days if occasion_days is None else int(occasion_days)
    if k < 1:
        raise BadInputError("--occasion-days", f"{occasion_days} is not >= 1")
    usage_all = np.nan_to_num(op.per_occasion(k), nan=0.0)  # (stations, S)
    S = usage_all.shape[1]
    has_effort = usage_all.sum(axis=1) > 0
    names = [st for st, e in zip(op.stations, has_effort, strict=True) if e]
    if not names:
        raise BadInputError(where, "no station has camera effort", "check the deployments")
    usage = usage_all[has_effort]
    sidx = {n: i for i, n in enumerate(names)}
    day0 = datetime.combine(op.days[0], datetime.min.time()) + timedelta(hours=op.day_start_hour)
    events: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for r in recs:
        if r["station"] not in sidx:
            raise BadInputError(
                f"media {r['media_id']}",
                f"{r['individual']} at station {r['station']} which has no camera effort",
                "check that station's deployments",
            )
        day = (r["time_local"] - day0).days
        if not 0 <= day < n_days:
            raise BadInputError(
                f"media {r['media_id']}",
                f"taken {r['time_local']} outside the deployments' days",
                "check the deployment dates or the clock correction",
            )
        occ = day // k
        events[(r["individual"], occ, sidx[r["station"]])].add(r["event"])
    ids = sorted({key[0] for key in events})
    aidx = {a: i for i, a in enumerate(ids)}
    counts = np.zeros((len(ids), S, len(names)), dtype=np.int64)
    for (a, occ, t), ev in events.items():
        counts[aidx[a], occ, t] = len(ev) if detector == "count" else 1
    for (a, occ, t), _ in events.items():
        if usage[t, occ] <= 0:
            raise BadInputError(
                f"station {names[t]}",
                f"{a} recorded on occasion {occ + 1} when no camera was operating",
                "check the malfunction periods and deployment dates",
            )
    traps = Traps(
        ids=names,
        xy=_coordinates(names, table),
        usage=usage,
        covariates=_covariates(names, table),
    )
    return CaptureHistory(ids=ids, counts=counts, traps=traps, detector=detector)


def _fmt(v: float) -> str:
    return f"{v:.10g}"


#: What no field of a secr text file can hold (see the module notes).
_UNSAFE = re.compile(r"[\s/#\"'\\]")


def r_tokens(values: list[str]) -> dict[str, str]:
    """Each distinct value -> an R-safe token for secr's text files, one-to-one.

    Values that are safe already keep their text; the others get ``_`` for
    each unsafe character and, if that token is taken, ``_2``, ``_3``...
    An empty value is ``NA``.
    """
    distinct = list(dict.fromkeys(values))
    out = {v: v for v in distinct if v and not _UNSAFE.search(v)}
    used = set(out.values())
    for v in distinct:
        if v in out:
            continue
        if not v:
            out[v] = "NA"
            continue
        base = token = _UNSAFE.sub("_", v)
        k = 2
        while token in used:
            token, k = f"{base}_{k}", k + 1
        out[v] = token
        used.add(token)
    return out


def export_secr(
    project: Any,
    out_dir: str | Path,
    occasion_days: int | None = None,
    *,
    species: str | None = None,
    detector: str = "count",
) -> dict[str, Any]:
    """Write ``capthist.txt`` and ``traps.txt`` for R ``secr::read.capthist``.

    ``capthist.txt`` has one line per detection: ``Session ID Occasion
    TrapID`` (a count of 3 is three lines). ``traps.txt`` has ``trapID x y``,
    the usage of every occasion (camera-days, space-separated) and, after a
    ``/``, the station covariates.

    Parameters
    ----------
    project:
        An open project or its folder.
    out_dir:
        Folder to write into (created if missing).
    occasion_days:
        Days per occasion (``None``: one occasion).
    species:
        Only this species.
    detector:
        Detector type for the R call.

    Returns
    -------
    dict
        ``captfile``, ``trapfile``, ``animals``, ``occasions``, ``traps``,
        ``detections``, ``r_call`` (the R line that reads them) and
        ``renamed`` (animal IDs, trap IDs and text covariate values written as
        R-safe tokens: ``{"animals": {...}, "traps": {...}, "covariates":
        {name: {...}}}``).
    """
    ch = project_capthist(project, occasion_days, detector=detector, species=species)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    capt, trap = out / "capthist.txt", out / "traps.txt"
    session = "1"
    animal = r_tokens(list(ch.ids))
    trap_id = r_tokens(list(ch.traps.ids))
    covnames = list(ch.traps.covariates)
    text_cov = {
        c: r_tokens([str(v) for v in ch.traps.covariates[c]])
        for c in covnames
        if any(isinstance(v, str) for v in ch.traps.covariates[c])
    }
    renamed = {
        "animals": {a: t for a, t in animal.items() if a != t},
        "traps": {a: t for a, t in trap_id.items() if a != t},
        "covariates": {
            c: {v: t for v, t in m.items() if v != t and v} for c, m in text_cov.items()
        },
    }
    renamed["covariates"] = {c: m for c, m in renamed["covariates"].items() if m}
    lines = ["# Session ID Occasion TrapID  (irbis export secr)"]
    for i, a in enumerate(ch.ids):
        for s in range(ch.n_occasions):
            for k in range(ch.traps.n_traps):
                lines.extend(
                    f"{session} {animal[a]} {s + 1} {trap_id[ch.traps.ids[k]]}"
                    for _ in range(int(ch.counts[i, s, k]))
                )
    capt.write_text("\n".join(lines) + "\n")
    tl = [f"# trapID x y usage[1..{ch.n_occasions}] / {' '.join(covnames)}".rstrip(" /")]
    usage = ch.traps.usage_matrix(ch.n_occasions)
    for k, tid in enumerate(ch.traps.ids):
        parts = [trap_id[tid], _fmt(ch.traps.xy[k, 0]), _fmt(ch.traps.xy[k, 1])]
        parts += [_fmt(u) for u in usage[k]]
        if covnames:
            parts.append("/")
            for c in covnames:
                v = ch.traps.covariates[c][k]
                if c in text_cov:
                    parts.append(text_cov[c][str(v)])
                else:
                    parts.append("NA" if not np.isfinite(v) else _fmt(float(v)))
        tl.append(" ".join(parts))
    trap.write_text("\n".join(tl) + "\n")
    cov_arg = (
        ", trapcovnames = c(" + ", ".join(f'"{c}"' for c in covnames) + ")" if covnames else ""
    )
    r_call = (
        f'ch <- read.capthist("{capt.name}", "{trap.name}", fmt = "trapID", '
        f'detector = "{detector}", noccasions = {ch.n_occasions}, binary.usage = FALSE{cov_arg})'
    )
    # Trap coordinates are precise: who wrote them where goes into the audit log.
    from irbis.store.audit import add, cli_actor

    proj, opened = _as_project(project)
    try:
        add(
            proj,
            cli_actor(),
            "export",
            str(out.resolve()),
            detail={"format": "secr", "species": species, "traps": ch.traps.n_traps},
        )
    finally:
        if opened:
            proj.close()
    return {
        "captfile": str(capt),
        "trapfile": str(trap),
        "animals": ch.n,
        "occasions": ch.n_occasions,
        "traps": ch.traps.n_traps,
        "detections": int(ch.counts.sum()),
        "r_call": r_call,
        # Values written differently so that R reads them (see the module notes).
        "renamed": renamed,
    }
