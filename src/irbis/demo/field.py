"""The demo's field season off the cameras: sign transects, scat samples and snares.

:func:`make_field_tables` writes, over the demo network's range (UTM 46N
metres, as the stations), the tables a field team brings back in irbis's
CSV layout (:mod:`irbis.exchange.field_csv`):

- ``transects.csv``: a sign transect near every other station, walked twice
  (once in each half of the season), 2-4 km of straight legs;
- ``field-records.csv``: signs found on each walk (scrapes, tracks, scats,
  claw marks, sprays of snow leopards, and musk-deer tracks), scat samples
  collected for DNA near the stations, and snares: most of them in the
  western valley, set for musk deer, as rangers find them in the Altai;
- ``lab-results.csv``: the laboratory's genotypes for most samples (the cat
  nearest to where each scat was found).

Deterministic for a seed; standard library and numpy only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FIELD_HEADER", "make_field_tables"]

FIELD_HEADER = (
    "record_id", "kind", "date", "time", "timezone", "x", "y", "crs", "observer",
    "organisation", "species", "count", "transect", "sample_id", "lab", "threat_type",
    "status", "target_species", "action_taken", "sign_type", "sign_age", "notes",
)  # fmt: skip
_SIGNS = ("scrape", "track", "scat", "claw_mark", "spray")
_ORG = "Sailyugem National Park"


def _rng(seed: int, *keys: str) -> np.random.Generator:
    import zlib

    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _write(path: Path, header: Sequence[str], rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(header), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


def _walk(rng: np.random.Generator, x0: float, y0: float) -> list[tuple[float, float]]:
    """A 2-4 km line of 4-6 straight legs from near (x0, y0)."""
    heading = rng.uniform(0, 2 * math.pi)
    pts = [(x0 + rng.normal(0, 300), y0 + rng.normal(0, 300))]
    for _ in range(int(rng.integers(4, 7))):
        heading += rng.normal(0, 0.5)
        step = rng.uniform(450, 700)
        x, y = pts[-1]
        pts.append((x + step * math.cos(heading), y + step * math.sin(heading)))
    return pts


def _along(pts: list[tuple[float, float]], f: float) -> tuple[float, float]:
    """The point a fraction ``f`` of the way along a polyline."""
    legs = [math.dist(a, b) for a, b in zip(pts, pts[1:], strict=False)]
    target = f * sum(legs)
    for (a, b), n in zip(zip(pts, pts[1:], strict=False), legs, strict=True):
        if target <= n and n > 0:
            t = target / n
            return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        target -= n
    return pts[-1]


def make_field_tables(
    network: Sequence[Mapping[str, Any]],
    folder: Path | str,
    *,
    seed: int,
    start: date,
    days: int,
    cats: Sequence[str] = (),
) -> dict[str, Path]:
    """Write the demo's transects, field records and lab results.

    Parameters
    ----------
    network:
        Stations from :func:`irbis.demo.synthetic.make_network` (``x``, ``y``, ``crs``,
        ``timezone``).
    folder:
        Where the three CSV files go.
    seed:
        Seed; the same seed gives the same tables.
    start, days:
        The field season.
    cats:
        Names of the simulated snow leopards (the genotypes' individuals).

    Returns
    -------
    dict
        ``transects``, ``records`` and ``lab``: the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, "field")
    crs, tz = str(network[0]["crs"]), str(network[0]["timezone"])
    xs = np.array([float(st["x"]) for st in network])
    west = float(np.quantile(xs, 0.4))  # the poachers' valley: the western stations
    half = max(1, days // 2)
    transects: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []

    def when(day0: int, span: int, hour: tuple[int, int] = (8, 17)) -> datetime:
        d = start + timedelta(days=int(day0 + rng.integers(0, max(1, span))))
        return datetime(d.year, d.month, d.day, int(rng.integers(*hour)), int(rng.integers(60)))

    def place(x: float, y: float) -> dict[str, Any]:
        return {"x": f"{x:.1f}", "y": f"{y:.1f}", "crs": crs, "timezone": tz}

    for i, st in enumerate(network[::2]):
        line = _walk(rng, float(st["x"]), float(st["y"]))
        for walk in (0, 1):
            code = f"SLG-T{i + 1:02d}-{walk + 1}"
            t = when(walk * half, half)
            transects.append(
                {
                    "transect": code,
                    "date": t.date().isoformat(),
                    "observers": "Ivan Petrov;Aigul Saparova",
                    "organisation": _ORG,
                    "crs": crs,
                    "line": ", ".join(f"{x:.1f} {y:.1f}" for x, y in line),
                }
            )
            for k in range(int(rng.poisson(3.0))):
                x, y = _along(line, float(rng.uniform(0, 1)))
                musk = rng.random() < 0.2
                records.append(
                    {
                        "record_id": f"{code}-S{k + 1}",
                        "kind": "sign",
                        "date": t.date().isoformat(),
                        "time": f"{t.hour + k // 2:02d}:{(t.minute + 7 * k) % 60:02d}",
                        **place(x, y),
                        "observer": "Ivan Petrov",
                        "organisation": _ORG,
                        "species": "Moschus moschiferus" if musk else "Panthera uncia",
                        "transect": code,
                        "sign_type": "track" if musk else str(rng.choice(_SIGNS)),
                        "sign_age": str(rng.choice(["fresh", "old"])),
                    }
                )
            if float(st["x"]) <= west:  # snares along the patrols in the western valley
                for k in range(int(rng.poisson(4.0))):
                    x, y = _along(line, float(rng.uniform(0, 1)))
                    removed = rng.random() < 0.8
                    records.append(
                        {
                            "record_id": f"{code}-SN{k + 1}",
                            "kind": "snare",
                            "date": t.date().isoformat(),
                            "time": f"{t.hour:02d}:{(t.minute + 3 * k) % 60:02d}",
                            **place(x, y),
                            "observer": "Ranger patrol 3",
                            "organisation": "WWF Russia",
                            "count": int(rng.integers(1, 4)),
                            "transect": code,
                            "threat_type": "wire snare",
                            "status": "removed" if removed else "found",
                            "target_species": "Moschus moschiferus",
                            "action_taken": "removed and destroyed" if removed else "reported",
                        }
                    )
    lab: list[dict[str, Any]] = []
    sexes = {c: ("male", "female")[k % 2] for k, c in enumerate(cats)}
    for k in range(max(6, 2 * len(network))):
        st = network[int(rng.integers(len(network)))]
        x, y = float(st["x"]) + rng.normal(0, 600), float(st["y"]) + rng.normal(0, 600)
        t = when(0, days)
        sid = f"SLG-S{k + 1:03d}"
        records.append(
            {
                "kind": "scat_sample",
                "date": t.date().isoformat(),
                "time": f"{t.hour:02d}:{t.minute:02d}",
                **place(x, y),
                "observer": "Aigul Saparova",
                "organisation": _ORG,
                "species": "Panthera uncia",
                "sample_id": sid,
                "lab": "IEE RAS",
                "notes": "silica" if k % 2 else "ethanol",
            }
        )
        if cats and rng.random() < 0.7:
            cat = cats[int(rng.integers(len(cats)))]
            lab.append(
                {
                    "sample_id": sid,
                    "lab": "IEE RAS",
                    "genotype": f"G-{cat}",
                    "sex": sexes[cat],
                    "species": "Panthera uncia",
                }
            )
    return {
        "transects": _write(
            folder / "transects.csv",
            ("transect", "date", "observers", "organisation", "crs", "line"),
            transects,
        ),
        "records": _write(folder / "field-records.csv", FIELD_HEADER, records),
        "lab": _write(
            folder / "lab-results.csv", ("sample_id", "lab", "genotype", "sex", "species"), lab
        ),
    }
