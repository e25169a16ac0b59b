"""``irbis occupancy`` and ``irbis rai``: prey species from the camera network.

Thin commands over :mod:`irbis.reports.prey`. With ``--json`` each prints
one JSON document on stdout; ``--csv`` writes the table a spreadsheet or R
reads (``read.csv``); messages go to stderr.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from irbis.cli.common import JsonOpt, emit_json, err, out
from irbis.core.errors import IrbisError

SpeciesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--species",
        help="Species by any of its names (repeatable); default every species recorded.",
    ),
]
GapOpt = Annotated[
    float | None,
    typer.Option(help="Minutes between independent events (default: the project's event gap)."),
]

#: Columns of ``irbis occupancy --csv``.
OCCUPANCY_COLUMNS = (
    "species", "events", "n_sites", "n_occasions", "n_detected", "naive", "psi", "psi_lcl",
    "psi_ucl", "p", "p_lcl", "p_ucl", "loglik", "npar", "aic", "psi_formula", "p_formula",
    "reason",
)  # fmt: skip
#: Columns of ``irbis rai --csv``: species totals (station empty), then per station.
RAI_COLUMNS = ("species", "station", "events", "trap_nights", "rai", "rai_lcl", "rai_ucl")


def _fail(exc: IrbisError) -> None:
    err.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.10g}"
    return str(v)


def _g(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def _ci(lo: Any, hi: Any) -> str:
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi)):
        return "–"
    return f"{_g(lo)}–{_g(hi)}"


def occupancy_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    species: SpeciesOpt = None,
    occasion_days: Annotated[int, typer.Option(help="Days per sampling occasion.")] = 7,
    model: Annotated[
        str,
        typer.Option(
            help='Formulas over station covariates, e.g. "psi~elevation+snow_cover p~1" '
            "(the registry's elevation and covariate columns; default psi~1 p~1)."
        ),
    ] = "",
    scale: Annotated[
        bool, typer.Option(help="Standardise numeric covariates (mean 0, SD 1).")
    ] = True,
    gap: GapOpt = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write one row per species as CSV.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Single-season occupancy (psi, p with 95% CIs) per species from the cameras."""
    from irbis.reports.prey import prey_occupancy
    from irbis.store import Project

    try:
        with Project.open(project) as p:
            res = prey_occupancy(
                p,
                species=species or None,
                occasion_days=occasion_days,
                model=model or None,
                scale=scale,
                gap_min=gap,
            )
    except IrbisError as exc:
        _fail(exc)
        return
    if csv_path is not None:
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(OCCUPANCY_COLUMNS)
            for r in res["species"]:
                ci = {
                    "psi_lcl": (r.get("psi_ci") or [None, None])[0],
                    "psi_ucl": (r.get("psi_ci") or [None, None])[1],
                    "p_lcl": (r.get("p_ci") or [None, None])[0],
                    "p_ucl": (r.get("p_ci") or [None, None])[1],
                    "psi_formula": res["model"]["psi"],
                    "p_formula": res["model"]["p"],
                }
                w.writerow([_cell(ci.get(c, r.get(c))) for c in OCCUPANCY_COLUMNS])
        err.print(f"wrote {csv_path}")
    if as_json:
        emit_json(res)
        return
    t = Table(
        title=f"Occupancy (psi{res['model']['psi']} p{res['model']['p']}), "
        f"{res['n_occasions']} occasions of {res['occasion_days']} days from "
        f"{res['first_day']}, {res['stations_working']} stations"
    )
    for c in ("species", "events", "naive", "psi", "95% CI", "p", "95% CI", "AIC"):
        t.add_column(c)
    notes = []
    for r in res["species"]:
        if "reason" in r:
            notes.append(f"{r['species']}: {r['reason']}")
            t.add_row(r["species"], str(r["events"]), "–", "–", "", "–", "", "–")
            continue
        t.add_row(
            r["species"],
            str(r["events"]),
            _g(r["naive"]),
            _g(r["psi"]),
            _ci(*r["psi_ci"]),
            _g(r["p"]),
            _ci(*r["p_ci"]),
            _g(r["aic"], 5),
        )
    out.print(t)
    for n in notes:
        out.print(n, soft_wrap=True, highlight=False)
    for var, sc in res["scaling"].items():
        out.print(f"{var} standardised: mean {sc['mean']:.6g}, SD {sc['sd']:.6g}")


def rai_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    species: SpeciesOpt = None,
    gap: GapOpt = None,
    by_station: Annotated[
        bool, typer.Option("--by-station", help="Show every species x station row too.")
    ] = False,
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", help="Write species totals and species x station rows as CSV."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Relative abundance: independent events per 100 trap-nights per species and station."""
    from irbis.reports.prey import relative_abundance
    from irbis.store import Project

    try:
        with Project.open(project) as p:
            res = relative_abundance(p, species=species or None, gap_min=gap)
    except IrbisError as exc:
        _fail(exc)
        return
    if csv_path is not None:
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(RAI_COLUMNS)
            for r in res["species"]:
                w.writerow(
                    [_cell(x) for x in (r["species"], "", r["events"], r["trap_nights"],
                                        r["rai"], r["lcl"], r["ucl"])]
                )  # fmt: skip
            for r in res["per_station"]:
                w.writerow(
                    [_cell(x) for x in (r["species"], r["station"], r["events"],
                                        r["trap_nights"], r["rai"], None, None)]
                )  # fmt: skip
        err.print(f"wrote {csv_path}")
    if as_json:
        emit_json(res)
        return
    t = Table(
        title=f"Independent events per {res['per']:g} trap-nights "
        f"({res['trap_nights']:g} trap-nights at {res['stations']} stations, "
        f"gap {res['gap_min']:g} min)"
    )
    for c in ("species", "events", "stations", "RAI", "95% CI"):
        t.add_column(c)
    for r in res["species"]:
        t.add_row(
            r["species"],
            str(r["events"]),
            f"{r['stations_detected']}/{r['stations']}",
            _g(r["rai"]),
            _ci(r["lcl"], r["ucl"]),
        )
    out.print(t)
    if by_station:
        s = Table(title="Per station")
        for c in ("species", "station", "events", "trap-nights", "RAI"):
            s.add_column(c)
        for r in res["per_station"]:
            s.add_row(
                r["species"], r["station"], str(r["events"]), f"{r['trap_nights']:g}", _g(r["rai"])
            )
        out.print(s)
