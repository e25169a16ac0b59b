"""Prey from the camera network: relative abundance and occupancy per species.

The leopard census cameras photograph ibex, argali and musk deer too, and
whether a range can hold leopards depends on them. This module turns a
project's independent records and camera effort into:

- :func:`relative_abundance`: independent events per 100 trap-nights (RAI)
  per species, overall and per station, each with its exact Poisson 95%
  interval (:mod:`irbis.stats.rates`);
- :func:`prey_occupancy`: a single-season occupancy model per species
  (:mod:`irbis.stats.occupancy`) on detection histories of ``occasion_days``
  days (an occasion on which no camera worked is missing, not a zero), with
  station covariates from the registry (``elevation`` and every covariate of
  the stations, e.g. ``snow_depth``, ``snow_cover``, ``ruggedness``).

Independent events are the project's record table (:func:`irbis.ingest.records.
record_table`) with the project's event gap unless another is given; effort
is the project's camera operation matrix (:func:`irbis.ingest.effort.
project_effort`), the same numbers ``irbis effort`` and the census report use.

A species is named by any of its names: the taxa table and the project's
species list join ``argali``, ``Ovis ammon`` and ``архар`` into one species,
and the records under each label count together.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date
from typing import Any

import numpy as np

from irbis.core.errors import BadInputError
from irbis.core.sensitivity import LocationPolicy
from irbis.store.project import Project
from irbis.store.sensitivity import name_key, sensitive_names

__all__ = [
    "RAI_PER",
    "prey_occupancy",
    "relative_abundance",
    "species_groups",
    "station_covariates",
]

#: RAI is given per this many trap-nights.
RAI_PER = 100.0

#: labels that mean "nothing there" (as the census report reads them)
_BLANK = frozenset({"blank", "empty", "none", "nothing", ""})


def _records(project: Project, gap_min: float | None) -> tuple[list[dict[str, Any]], float]:
    from irbis.ingest.records import record_table

    gap = float(project.settings.event_gap_min) if gap_min is None else float(gap_min)
    if gap < 0 or not math.isfinite(gap):
        raise BadInputError("--gap", f"{gap_min!r} is not a number of minutes >= 0", "e.g. 60")
    rows = [
        r
        for r in record_table(project, min_delta_min=gap)
        if str(r["species"]).strip().lower() not in _BLANK
    ]
    return rows, gap


def species_groups(
    project: Project, recorded: list[str], wanted: list[str] | None
) -> dict[str, list[str]]:
    """Which recorded labels count as each species asked for.

    Parameters
    ----------
    project:
        The project (its species list widens the names).
    recorded:
        Species labels of the project's records.
    wanted:
        Species asked for, by any name; ``None`` for every species recorded
        (labels naming one taxon together, under the label most records use).

    Returns
    -------
    dict
        ``{name asked for: [recorded labels]}``; a species of the taxa table
        or the species list that was never recorded maps to ``[]``.

    Raises
    ------
    BadInputError
        A name that is neither recorded nor known to the taxa table or the
        project's species list (a typo), naming the recorded species.
    """
    from irbis.store.species import listed
    from irbis.store.taxa import table

    sp_list = listed(project)
    if wanted is None:
        # every recorded label, those naming one taxon together under the commonest
        counts = Counter(recorded)
        groups: dict[str, list[str]] = {}
        placed: set[str] = set()
        for label, _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if label in placed:
                continue
            keys = sensitive_names(LocationPolicy((label,)), sp_list)
            same = sorted(r for r in counts if r not in placed and keys.matches(r))
            groups[label] = same or [label]
            placed.update(groups[label])
        return dict(sorted(groups.items()))
    known = {name_key(sp.label) for sp in sp_list} | {
        name_key(n) for t in table() for n in (t.scientific_name, *t.vernacular_names.values())
    }
    out: dict[str, list[str]] = {}
    for name in wanted:
        keys = sensitive_names(LocationPolicy((name,)), sp_list)
        labels = sorted({r for r in recorded if keys.matches(r)})
        if not labels and name_key(name) not in known and not keys.keys & known:
            raise BadInputError(
                "--species",
                f"{name!r} was never recorded and is not a species irbis knows",
                "recorded: " + (", ".join(sorted(set(recorded))) or "nothing"),
            )
        out[name] = labels
    return out


def station_covariates(project: Project) -> dict[str, dict[str, Any]]:
    """Covariates of every station: ``elevation`` and the registry's own columns.

    Returns
    -------
    dict
        ``{station: {covariate: value}}``; a value the registry left empty is
        ``None``.
    """
    from sqlalchemy import select

    from irbis.store.schema import Site, Station

    out: dict[str, dict[str, Any]] = {}
    with project.session() as s:
        rows = s.execute(
            select(Station.name, Station.elevation, Station.covariates, Site.name).outerjoin(
                Site, Site.id == Station.site_id
            )
        ).all()
    for name, elev, covs, site in rows:
        d: dict[str, Any] = {"elevation": elev}
        if site:
            d["site"] = site
        for k, v in (covs or {}).items():
            d[str(k)] = None if v is None or (isinstance(v, str) and not v.strip()) else v
        out[name] = d
    return out


def relative_abundance(
    project: Project, *, species: list[str] | None = None, gap_min: float | None = None
) -> dict[str, Any]:
    """Independent events per 100 trap-nights, per species and per station.

    Parameters
    ----------
    project:
        An open project.
    species:
        Species to report (any of their names); default every species recorded.
    gap_min:
        Minutes between independent events (default: the project's event gap).

    Returns
    -------
    dict
        ``gap_min``, ``trap_nights`` (all stations), ``species``: one row per
        species with ``events``, ``stations_detected``, ``stations``,
        ``trap_nights``, ``rai``, ``lcl``, ``ucl`` and ``labels``; and
        ``per_station``: one row per species and station with ``events``,
        ``trap_nights`` and ``rai`` (``NaN`` where a station had no effort).
    """
    from irbis.ingest.effort import project_effort
    from irbis.stats.rates import rate

    records, gap = _records(project, gap_min)
    op = project_effort(project)
    nights = {st: float(v) for st, v in zip(op.stations, op.trap_nights(), strict=True)}
    total = float(sum(nights.values()))
    groups = species_groups(project, [r["species"] for r in records], species)
    by = defaultdict(lambda: defaultdict(int))
    label_of: dict[str, list[str]] = defaultdict(list)
    for name, labels in groups.items():
        for lab in labels:
            label_of[lab].append(name)
    for r in records:
        for name in label_of.get(r["species"], ()):
            by[name][r["station"]] += 1
    rows, per_station = [], []
    for name in groups:
        counts = by.get(name, {})
        n = int(sum(counts.values()))
        rt = rate(n, total, RAI_PER)
        rows.append(
            {
                "species": name,
                "labels": groups[name],
                "events": n,
                "stations_detected": sum(1 for v in counts.values() if v),
                "stations": len(op.stations),
                "trap_nights": total,
                "rai": rt["rate"],
                "lcl": rt["lcl"],
                "ucl": rt["ucl"],
            }
        )
        for st in op.stations:
            k, e = int(counts.get(st, 0)), nights.get(st, 0.0)
            per_station.append(
                {
                    "species": name,
                    "station": st,
                    "events": k,
                    "trap_nights": e,
                    "rai": RAI_PER * k / e if e > 0 else float("nan"),
                }
            )
    rows.sort(key=lambda r: (-r["events"], r["species"]))
    return {
        "gap_min": gap,
        "trap_nights": total,
        "per": RAI_PER,
        "stations": len(op.stations),
        "species": rows,
        "per_station": per_station,
    }


def _covariate_arrays(
    variables: list[str],
    stations: list[str],
    covs: dict[str, dict[str, Any]],
    worked: np.ndarray,
    scale: bool,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]]]:
    """Covariate columns (one value per station) for the model's variables.

    Numeric covariates are standardised (mean 0, SD 1 over the stations that
    worked) when ``scale``; the mean and SD used are returned. A station that
    worked but has no value is an error naming it.
    """
    arrays: dict[str, np.ndarray] = {}
    scaling: dict[str, dict[str, float]] = {}
    for var in variables:
        if not any(var in covs.get(st, {}) for st in stations):
            have = sorted({k for st in stations for k in covs.get(st, {})})
            raise BadInputError(
                "--model",
                f"no station has a covariate {var!r}",
                "the registry has: " + (", ".join(have) or "none"),
            )
        values = [covs.get(st, {}).get(var) for st in stations]
        for st, v, w in zip(stations, values, worked, strict=True):
            if w and v is None:
                raise BadInputError(
                    f"station {st}",
                    f"no value for covariate {var!r}",
                    "give every station a value in the registry, or leave it out of --model",
                )
        numeric = all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values
        )
        if not numeric:
            arrays[var] = np.array(["" if v is None else str(v) for v in values], dtype=object)
            continue
        x = np.array([np.nan if v is None else float(v) for v in values])
        if scale:
            used = x[worked & ~np.isnan(x)]
            mu = float(used.mean())
            sd = float(used.std(ddof=1)) if len(used) > 1 else 0.0
            if sd > 0:
                x = (x - mu) / sd
                scaling[var] = {"mean": mu, "sd": sd}
        arrays[var] = np.where(np.isnan(x), 0.0, x)  # rows without a value are dropped
    return arrays, scaling


def prey_occupancy(
    project: Project,
    *,
    species: list[str] | None = None,
    occasion_days: int = 7,
    model: str | None = None,
    scale: bool = True,
    gap_min: float | None = None,
) -> dict[str, Any]:
    """Single-season occupancy of each species from the project's cameras.

    Parameters
    ----------
    project:
        An open project.
    species:
        Species (any of their names); default every species recorded.
    occasion_days:
        Days per sampling occasion; occasions start on the first day of the
        camera operation matrix.
    model:
        Formulas for ``psi`` and ``p`` over station covariates, e.g.
        ``"psi~elevation+snow_cover p~1"`` (default ``psi~1 p~1``).
    scale:
        Standardise numeric covariates (their mean and SD are reported).
    gap_min:
        Minutes between independent events (default: the project's gap).

    Returns
    -------
    dict
        ``occasion_days``, ``n_occasions``, ``stations``, ``model``,
        ``scaling`` and ``species``: one dict per species with the fit
        (:meth:`OccupancyFit.as_dict` plus ``psi_stations``) or ``reason``.
    """
    from irbis.ingest.effort import project_effort
    from irbis.stats.formula import parse_model, variables_of
    from irbis.stats.occupancy import PARAMS, detection_histories, occupancy_fit

    if occasion_days < 1:
        raise BadInputError("--occasion-days", f"{occasion_days} is not a number of days >= 1", "")
    records, gap = _records(project, gap_min)
    op = project_effort(project)
    if not op.days:
        raise BadInputError("project", "no camera was deployed", "import the registry first")
    terms = parse_model(model, PARAMS)
    variables = variables_of([t for ts in terms.values() for t in ts])
    operating = np.nan_to_num(np.asarray(op.values, float), nan=0.0)
    row = {name: i for i, name in enumerate(op.stations)}
    col: dict[date, int] = {d: j for j, d in enumerate(op.days)}
    groups = species_groups(project, [r["species"] for r in records], species)
    empty = detection_histories(np.zeros_like(operating), operating, occasion_days)
    worked = (~np.isnan(empty)).any(axis=1)
    covs, scaling = _covariate_arrays(
        variables, op.stations, station_covariates(project), worked, scale
    )
    results = []
    for name, labels in groups.items():
        wanted = set(labels)
        daily = np.zeros_like(operating)
        outside = 0
        for r in records:
            if r["species"] not in wanted:
                continue
            d = date.fromisoformat(r["date"])
            if r["station"] in row and d in col:
                daily[row[r["station"]], col[d]] += 1
            else:
                outside += 1
        y = detection_histories(daily, operating, occasion_days)
        entry: dict[str, Any] = {
            "species": name,
            "labels": labels,
            "events": int(daily.sum()),
            "events_outside_effort": outside,
            "histories": {
                st: [None if np.isnan(v) else int(v) for v in y[i]]
                for i, st in enumerate(op.stations)
            },
        }
        try:
            fit = occupancy_fit(y, model, covs)
        except BadInputError as exc:
            entry["reason"] = exc.reason + (f" ({exc.hint})" if exc.hint else "")
        else:
            entry.update(fit.as_dict())
            used = (~np.isnan(y)).any(axis=1)
            kept = [st for st, u in zip(op.stations, used, strict=True) if u]
            entry["psi_stations"] = dict(zip(kept, (float(v) for v in fit.psi), strict=True))
            entry["p_stations"] = dict(zip(kept, (float(v) for v in fit.p), strict=True))
        results.append(entry)
    return {
        "occasion_days": occasion_days,
        "n_occasions": int(empty.shape[1]),
        "first_day": op.days[0].isoformat(),
        "stations": len(op.stations),
        "stations_working": int(worked.sum()),
        "gap_min": gap,
        "model": {k: "~" + ("+".join(v) or "1") for k, v in terms.items()},
        "scaling": scaling,
        "species": results,
    }
