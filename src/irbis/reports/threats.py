"""Threat maps and the field records of a census: snares per patrol effort, samples, signs.

:func:`gather_field` reads a project's field records (:mod:`irbis.store.
fieldrecords`) into plain data the census report lays out:

- **Snares per patrol effort** (issue 20 item 4): snares found (a record's
  ``count``, else 1) per 10 km of sign transects and patrols walked
  (``transects.length_m``), on the location policy's longitude/latitude grid
  (:class:`irbis.core.sensitivity.LocationPolicy`: the same cells public
  places are snapped to), per valley or region, and per season with a
  log-linear trend (:func:`irbis.stats.rates.rate_trend`). A transect's
  length is shared among the cells its line crosses in proportion to the
  part of the line in each (the line split exactly where it crosses a cell
  edge); a transect without a line counts in the season totals only.
- **Overlap**: which cells with snares also hold records of snow leopards and
  of musk deer (camera records at stations, and field records naming them, by
  any of their names), and how many snares lie in such cells.
- **Scat samples and sign transects**: samples collected, genotyped, the
  genetic individuals and their links to photo-identified ones; signs per km
  of each transect.

Regions: the stations' ``valley`` (else ``region``) covariate, else their
site; a snare or a piece of transect belongs to the region of the nearest
station. Seasons are meteorological: winter is December to February (a
December belongs to the next year's winter, ``2025/26 winter``), spring
March to May, summer June to August, autumn September to November.

Public editions hold cells (their centres on the policy grid), regions and
seasons only: no snare, sample or sign place and no transect line. Precise
editions add the snare places for the map.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import select

from irbis.core.sensitivity import LocationPolicy, snap
from irbis.store.project import Project
from irbis.store.sensitivity import SensitiveNames, sensitive_names

__all__ = [
    "LEOPARD",
    "MUSK_DEER",
    "PER_KM",
    "gather_field",
    "line_cells",
    "season_of",
]

#: Snares are given per this many kilometres walked.
PER_KM = 10.0
LEOPARD = "Panthera uncia"
MUSK_DEER = "Moschus moschiferus"
_SEASONS = ("winter", "spring", "summer", "autumn")
#: metres per degree of latitude, and of longitude at the equator (for splitting lines)
_M_LAT, _M_LON = 110_574.0, 111_320.0


def season_of(day: date) -> tuple[int, str]:
    """Ordinal and name of the meteorological season of ``day``.

    Returns
    -------
    tuple
        ``(4 * year + k, label)``: consecutive seasons differ by 1;
        ``2026 spring``, ``2025/26 winter`` (December 2025 to February 2026).
    """
    m = day.month
    year = day.year + (1 if m == 12 else 0)
    k = 0 if m in (12, 1, 2) else 1 if m <= 5 else 2 if m <= 8 else 3
    label = f"{year - 1}/{year % 100:02d} winter" if k == 0 else f"{year} {_SEASONS[k]}"
    return 4 * year + k, label


@lru_cache(maxsize=16)
def _transformer(crs: str):
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _lonlat(
    lon: float | None, lat: float | None, x: float | None, y: float | None, crs: str | None
) -> tuple[float, float] | None:
    """A place as longitude/latitude, or ``None`` when it cannot be placed."""
    if lon is not None and lat is not None:
        return float(lon), float(lat)
    if x is not None and y is not None and crs:
        a, b = _transformer(crs).transform(float(x), float(y))
        return float(a), float(b)
    return None


def _cell(lon: float, lat: float, step: float) -> tuple[float, float]:
    """The policy cell holding a point, as its centre ``(lon, lat)``."""
    return snap(lon, step), snap(lat, step)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Length of a short lon/lat segment (equirectangular at its middle latitude)."""
    mid = math.radians((a[1] + b[1]) / 2)
    return math.hypot((b[0] - a[0]) * _M_LON * math.cos(mid), (b[1] - a[1]) * _M_LAT)


def line_cells(
    line: list[tuple[float, float]], step: float
) -> list[tuple[tuple[float, float], float, tuple[float, float]]]:
    """Split a lon/lat polyline where it crosses the edges of ``step``-degree cells.

    Parameters
    ----------
    line:
        ``[(lon, lat), ...]``, two points or more.
    step:
        Cell size in degrees (cells start at 0, as :func:`irbis.core.sensitivity.snap`'s).

    Returns
    -------
    list
        ``(cell centre, metres, midpoint)`` for each piece.
    """
    pieces = []
    for a, b in zip(line, line[1:], strict=False):
        ts = {0.0, 1.0}
        for i in (0, 1):
            lo, hi = sorted((a[i], b[i]))
            if hi > lo:
                k = math.floor(lo / step) + 1
                while k * step < hi:
                    ts.add((k * step - a[i]) / (b[i] - a[i]))
                    k += 1
        cuts = sorted(ts)
        for t0, t1 in zip(cuts, cuts[1:], strict=False):
            p0 = (a[0] + t0 * (b[0] - a[0]), a[1] + t0 * (b[1] - a[1]))
            p1 = (a[0] + t1 * (b[0] - a[0]), a[1] + t1 * (b[1] - a[1]))
            mid = ((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2)
            length = _metres(p0, p1)
            if length > 0:
                pieces.append((_cell(mid[0], mid[1], step), length, mid))
    return pieces


def _names(project: Project, scientific: str) -> SensitiveNames:
    from irbis.store.species import listed

    return sensitive_names(LocationPolicy((scientific,)), listed(project))


def _region_key(covs: list[dict[str, Any]]) -> str | None:
    for key in ("valley", "region"):
        if any((c or {}).get(key) not in (None, "") for c in covs):
            return key
    return None


def _stations(project: Project) -> tuple[list[dict[str, Any]], str | None]:
    """Stations with a lon/lat place and their region, and what the region is read from."""
    from irbis.store.schema import Site, Station

    with project.session() as s:
        rows = s.execute(
            select(
                Station.name, Station.lon, Station.lat, Station.x, Station.y, Station.crs,
                Station.covariates, Site.name,
            ).outerjoin(Site, Site.id == Station.site_id)
        ).all()  # fmt: skip
    key = _region_key([r[6] for r in rows])
    out = []
    for name, lon, lat, x, y, crs, covs, site in rows:
        ll = _lonlat(lon, lat, x, y, crs)
        region = (covs or {}).get(key) if key else site
        out.append({"name": name, "ll": ll, "region": str(region) if region else None})
    return out, key or ("site" if any(st["region"] for st in out) else None)


def _nearest_region(stations: list[dict[str, Any]], ll: tuple[float, float]) -> str | None:
    best, region = math.inf, None
    for st in stations:
        if st["ll"] is None or st["region"] is None:
            continue
        d = _metres(ll, st["ll"])
        if d < best:
            best, region = d, st["region"]
    return region


def _rate(count: float, metres: float) -> dict[str, Any]:
    from irbis.stats.rates import rate

    r = rate(int(count), metres / 1000.0, PER_KM)
    return {"snares": int(count), "km": metres / 1000.0, "rate": r["rate"], "lcl": r["lcl"],
            "ucl": r["ucl"]}  # fmt: skip


def gather_field(
    project: Project, *, public: bool, policy: LocationPolicy | None = None
) -> dict[str, Any]:
    """Snares per patrol effort, overlap, scat samples and sign transects of ``project``.

    Parameters
    ----------
    project:
        An open project.
    public:
        Public edition: cells, regions and seasons only (no place finer than
        the policy's cell).
    policy:
        The location policy (default: the project's).

    Returns
    -------
    dict
        ``cell_deg``, ``threats`` (``snares``, ``km``, ``cells``, ``regions``,
        ``region_key``, ``seasons``, ``trend``, ``overlap``, ``unplaced``,
        ``points`` in precise editions), ``samples``, ``transects``; empty
        when the project holds no field record or transect.
    """
    from irbis.ingest.records import record_table
    from irbis.stats.rates import rate_trend
    from irbis.store.schema import FieldRecord, Genotype, GenotypeLink, Transect

    policy = policy or LocationPolicy.from_settings(project.settings.extra)
    step = policy.precision_deg
    with project.session() as s:
        recs = s.scalars(select(FieldRecord).order_by(FieldRecord.id)).all()
        transects = s.scalars(select(Transect).order_by(Transect.code)).all()
        n_genotypes = s.scalar(select(Genotype.id).limit(1)) is not None
        genotypes = s.execute(select(Genotype.id, Genotype.code)).all() if n_genotypes else []
        links = s.execute(select(GenotypeLink.genotype_id)).all() if n_genotypes else []
        s.expunge_all()
    if not recs and not transects:
        return {}
    stations, region_key = _stations(project)
    leopard, musk = _names(project, LEOPARD), _names(project, MUSK_DEER)

    # --- effort: transect pieces per cell, region, season
    cell_m: dict[tuple, float] = defaultdict(float)
    region_m: dict[str, float] = defaultdict(float)
    season_m: dict[int, float] = defaultdict(float)
    labels: dict[int, str] = {}
    unplaced_m = 0.0
    total_m = 0.0
    tr_rows = []
    for t in transects:
        line = []
        for a, b in t.line or []:
            ll = _lonlat(a, b, None, None, None) if not t.crs else _lonlat(None, None, a, b, t.crs)
            if ll is not None:
                line.append(ll)
        pieces = line_cells(line, step) if len(line) >= 2 else []
        measured = sum(p[1] for p in pieces)
        length = float(t.length_m) if t.length_m else measured
        total_m += length
        if t.walked_on is not None:
            k, lab = season_of(t.walked_on)
            season_m[k] += length
            labels[k] = lab
        if measured > 0:
            for cell, m, mid in pieces:
                share = length * m / measured
                cell_m[cell] += share
                reg = _nearest_region(stations, mid)
                if reg is not None:
                    region_m[reg] += share
        else:
            unplaced_m += length
        signs = [r for r in recs if r.kind == "sign" and r.transect_id == t.id]
        tr_rows.append(
            {
                "transect": t.code,
                "walked_on": t.walked_on.isoformat() if t.walked_on else None,
                "km": length / 1000.0,
                "signs": len(signs),
                "fresh": sum(1 for r in signs if r.sign_age == "fresh"),
                "by_type": dict(Counter(r.sign_type for r in signs if r.sign_type)),
                "per_km": len(signs) / (length / 1000.0) if length > 0 else float("nan"),
                "leopard_signs": sum(1 for r in signs if leopard.matches(r.species)),
            }
        )

    # --- snares
    cell_n: dict[tuple, int] = defaultdict(int)
    region_n: dict[str, int] = defaultdict(int)
    season_n: dict[int, int] = defaultdict(int)
    points = []
    n_snares = unplaced_n = 0
    status = Counter()
    for r in recs:
        if r.kind != "snare":
            continue
        n = int(r.count) if r.count else 1
        n_snares += n
        status[r.status or "found"] += n
        k, lab = season_of(r.observed_local.date())
        season_n[k] += n
        labels[k] = lab
        ll = _lonlat(r.lon, r.lat, r.x, r.y, r.crs)
        if ll is None:
            unplaced_n += n
            continue
        cell_n[_cell(*ll, step)] += n
        reg = _nearest_region(stations, ll)
        if reg is not None:
            region_n[reg] += n
        points.append({"lon": ll[0], "lat": ll[1], "count": n, "status": r.status or "found"})

    # --- where leopards and musk deer were recorded (cells)
    st_ll = {st["name"]: st["ll"] for st in stations}
    presence: dict[str, set[tuple]] = {"leopard": set(), "musk_deer": set()}
    for row in record_table(project, min_delta_min=0):
        ll = st_ll.get(row["station"])
        for key, names in (("leopard", leopard), ("musk_deer", musk)):
            if ll is not None and names.matches(row["species"]):
                presence[key].add(_cell(*ll, step))
    for r in recs:
        ll = _lonlat(r.lon, r.lat, r.x, r.y, r.crs)
        if ll is None or r.kind == "snare":
            continue
        for key, names in (("leopard", leopard), ("musk_deer", musk)):
            if names.matches(r.species):
                presence[key].add(_cell(*ll, step))

    cells = []
    for cell in sorted(set(cell_m) | set(cell_n)):
        row = {"lon": cell[0], "lat": cell[1], **_rate(cell_n.get(cell, 0), cell_m.get(cell, 0.0))}
        row["leopard"] = cell in presence["leopard"]
        row["musk_deer"] = cell in presence["musk_deer"]
        cells.append(row)
    snare_cells = [c for c in cells if c["snares"]]
    overlap = {
        "snare_cells": len(snare_cells),
        **{
            f"{key}_{what}": (
                len([c for c in snare_cells if c[key]])
                if what == "cells"
                else sum(c["snares"] for c in snare_cells if c[key])
            )
            for key in ("leopard", "musk_deer")
            for what in ("cells", "snares")
        },
        "both_cells": len([c for c in snare_cells if c["leopard"] and c["musk_deer"]]),
        "both_snares": sum(c["snares"] for c in snare_cells if c["leopard"] and c["musk_deer"]),
        "leopard_cells_total": len(presence["leopard"]),
        "musk_deer_cells_total": len(presence["musk_deer"]),
    }
    regions = [
        {"region": reg, **_rate(region_n.get(reg, 0), region_m.get(reg, 0.0))}
        for reg in sorted(set(region_m) | set(region_n))
    ]
    order = sorted(set(season_m) | set(season_n))
    seasons = [
        {"season": labels[k], "ordinal": k, **_rate(season_n.get(k, 0), season_m.get(k, 0.0))}
        for k in order
    ]
    trend = rate_trend(
        [season_n.get(k, 0) for k in order], [season_m.get(k, 0.0) for k in order], order
    )
    threats = {
        "snares": n_snares,
        "status": dict(status),
        "km": total_m / 1000.0,
        **_rate(n_snares, total_m),
        "cells": cells,
        "regions": regions,
        "region_key": region_key,
        "seasons": seasons,
        "trend": trend.as_dict(),
        "overlap": overlap,
        "unplaced": {"snares": unplaced_n, "km": unplaced_m / 1000.0},
    }
    if not public:
        threats["points"] = points

    samples = [r for r in recs if r.kind == "scat_sample"]
    linked = {g for (g,) in links}
    sample_doc = {
        "samples": len(samples),
        "genotyped": sum(1 for r in samples if r.genotype_id is not None),
        "leopard": sum(1 for r in samples if leopard.matches(r.species)),
        "genotypes": len(genotypes),
        "genotypes_linked": len(linked),
        "by_sex": dict(Counter(r.sex or "unknown" for r in samples if r.genotype_id is not None)),
        "per_genotype": dict(
            Counter(code for r in samples for gid, code in genotypes if r.genotype_id == gid)
        ),
    }
    return {
        "cell_deg": step,
        "public": public,
        "threats": threats,
        "samples": sample_doc,
        "transects": tr_rows,
        "signs": sum(1 for r in recs if r.kind == "sign"),
    }
