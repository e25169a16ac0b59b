"""``irbis field`` (scat samples, snares, signs, transects) and ``irbis genotypes``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, out

field_app = typer.Typer(
    help="Field records: scat samples, snares and signs found on foot, and sign transects.",
    no_args_is_help=True,
)
genotypes_app = typer.Typer(
    help="Genetic individuals: genotypes, their links to the catalogue, conflicts.",
    no_args_is_help=True,
)

ProjectArg = Annotated[Path, typer.Argument(help="Project folder.")]


def _default_timezone(project) -> str:
    """The zone most of the project's deployments use (UTC without deployments)."""
    from sqlalchemy import select

    from irbis.store.schema import Deployment

    with project.session() as s:
        zones = Counter(s.scalars(select(Deployment.timezone)))
    return zones.most_common(1)[0][0] if zones else "UTC"


def _import_gpx(project: Path, gpx: Path, timezone: str | None, as_json: bool) -> None:
    """Patrol tracks of a GPX file stored as transects (re-importing changes what changed)."""
    from irbis.exchange.gpx_tracks import read_gpx_tracks
    from irbis.store import Project
    from irbis.store.audit import cli_actor
    from irbis.store.fieldrecords import save_transects

    with Project.open(project) as p:
        data = read_gpx_tracks(gpx, timezone=timezone or _default_timezone(p))
        res = save_transects(p, data.transects, cli_actor(), source=str(gpx))
    km = sum(_line_km(t.line) for t in data.transects)
    summary = {
        "table": str(gpx),
        "layout": "gpx",
        "kind": "transect",
        **res.as_dict(),
        "km": km,
        "waypoints_skipped": data.waypoints_skipped,
        "routes_skipped": data.routes_skipped,
        "short_segments_skipped": data.short_segments_skipped,
    }
    if as_json:
        emit_json(summary)
        return
    err.print(
        f"{gpx}: {len(data.transects)} patrol track(s), {km:.1f} km walked: {res.new} new, "
        f"{res.updated} updated, {res.unchanged} unchanged transects"
    )
    left = {
        "waypoints": data.waypoints_skipped,
        "routes (plans, not walks)": data.routes_skipped,
        "segments with one point": data.short_segments_skipped,
    }
    if any(left.values()):
        err.print("left out: " + ", ".join(f"{v} {k}" for k, v in left.items() if v))


def _line_km(line: list[list[float]]) -> float:
    from irbis.store.fieldrecords import line_length_m

    return line_length_m(line, None) / 1000.0


@field_app.command("import")
def field_import(
    project: ProjectArg,
    table: Annotated[
        Path,
        typer.Argument(
            help="CSV: irbis layout, SMART-style export, ...; or a .gpx file of patrol tracks "
            "(each track segment becomes a walked transect: the patrol effort)."
        ),
    ],
    kind: Annotated[
        str | None,
        typer.Option(
            help="scat_sample, snare or sign (every row), transect (a transect table), lab "
            "(laboratory results naming sample IDs); default: each row's kind column."
        ),
    ] = None,
    layout: Annotated[str, typer.Option(help="auto, irbis or smart.")] = "auto",
    timezone: Annotated[
        str | None,
        typer.Option(help="Zone of the times (default: the deployments' zone, else UTC)."),
    ] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of projected x/y, e.g. EPSG:32646.")] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strptime format of non-ISO dates, e.g. %d/%m/%Y.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import field records, transects or laboratory results; a re-import changes only
    what changed, and a table with a bad row writes nothing."""
    from irbis.exchange.field_csv import blob_writer, read_field_table
    from irbis.store import Project
    from irbis.store.audit import cli_actor
    from irbis.store.fieldrecords import save_field_records, save_lab_results, save_transects

    if table.suffix.lower() == ".gpx":
        _import_gpx(project, table, timezone, as_json)
        return
    with Project.open(project) as p:
        data = read_field_table(
            table,
            kind=kind,
            layout=layout,
            timezone=timezone,
            crs=crs,
            date_format=date_format,
            default_timezone=_default_timezone(p),
        )
        actor, where = cli_actor(), str(table)
        if data.kind == "transect":
            res = save_transects(p, data.transects, actor, source=where)
        elif data.kind == "lab":
            res = save_lab_results(p, data.lab_results, actor, source=where)
        else:
            res = save_field_records(
                p, data.records, actor, source=where, file_writer=blob_writer(p)
            )
    summary = {
        "table": str(table),
        "layout": data.layout,
        "kind": data.kind,
        **res.as_dict(),
        "skipped": data.skipped,
        "skipped_categories": data.skipped_categories,
    }
    if as_json:
        emit_json(summary)
        return
    what = {"transect": "transects", "lab": "lab results"}.get(data.kind, "field records")
    err.print(
        f"{table}: {res.new} new, {res.updated} updated, {res.unchanged} unchanged {what}"
        + (f"; {res.genotypes_new} new genotype(s)" if res.genotypes_new else "")
        + (f"; {res.links_new} genotype link(s)" if res.links_new else "")
    )
    if data.skipped:
        cats = ", ".join(f"{k} ({v})" for k, v in sorted(data.skipped_categories.items()))
        err.print(f"skipped {data.skipped} row(s) that are not field records: {cats}")


@field_app.command("list")
def field_list(
    project: ProjectArg,
    kind: Annotated[str | None, typer.Option(help="scat_sample, snare or sign.")] = None,
    transects: Annotated[bool, typer.Option("--transects", help="List transects.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List field records (exact places: this is the project's own machine) or transects."""
    from rich.table import Table

    from irbis.store import Project
    from irbis.store.fieldrecords import load_records, load_transects

    with Project.open(project) as p, p.session() as s:
        rows = load_transects(s) if transects else load_records(s, kind)
    if as_json:
        emit_json({"transects" if transects else "records": rows, "count": len(rows)})
        return
    if transects:
        table = Table(title=f"{len(rows)} transects")
        for col in ("transect", "date", "length (m)", "signs", "observers"):
            table.add_column(col)
        for t in rows:
            table.add_row(
                t["code"],
                t["date"] or "",
                f"{t['length_m'] or 0:.0f}",
                str(t["signs"]),
                t["observers"],
            )
        out.print(table)
        return
    table = Table(title=f"{len(rows)} field records")
    for col in ("id", "kind", "local time", "place", "what", "observer"):
        table.add_column(col, overflow="fold")
    for r in rows:
        place = f"{r['lat']:.5f}, {r['lon']:.5f}" if r["lat"] is not None else f"{r['x']}, {r['y']}"
        what = {
            "scat_sample": f"{r['sample_id']}" + (f" -> {r['genotype']}" if r["genotype"] else ""),
            "snare": f"{r['threat_type']} ({r['status']})",
            "sign": f"{r['sign_type']}"
            + (f" ({r['sign_age']})" if r["sign_age"] else "")
            + (f" on {r['transect']}" if r["transect"] else ""),
        }[r["kind"]]
        table.add_row(str(r["id"]), r["kind"], r["observed_local"], place, what, r["observer"])
    out.print(table)


@field_app.command("export")
def field_export(
    project: ProjectArg,
    out_csv: Annotated[Path, typer.Argument(help="CSV file to write (irbis layout).")],
    kind: Annotated[str | None, typer.Option(help="Only scat_sample, snare or sign.")] = None,
    public: Annotated[
        bool,
        typer.Option(
            "--public/--precise",
            help="Public: sensitive places snapped to the policy's grid, no observers. "
            "Precise: everything, for cleared partners (imports again unchanged).",
        ),
    ] = True,
    precision_deg: Annotated[
        float | None, typer.Option(help="Grid size of public places (default: project's).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the field records as plain CSV in the layout `irbis field import` reads."""
    from irbis.exchange.field_csv import RECORD_COLUMNS, export_rows, write_rows
    from irbis.store import Project
    from irbis.store.audit import add, cli_actor

    with Project.open(project) as p:
        rows = export_rows(p, public=public, kind=kind, precision_deg=precision_deg)
        write_rows(rows, out_csv, (*RECORD_COLUMNS, "files"))
        add(
            p,
            cli_actor(),
            "export",
            str(out_csv.resolve()),
            detail={"what": "field records", "public": public, "rows": len(rows)},
        )
    n_gen = sum(1 for r in rows if r["generalised"])
    if as_json:
        emit_json({"path": str(out_csv), "rows": len(rows), "generalised": n_gen})
        return
    err.print(
        f"wrote {len(rows)} field records to {out_csv}"
        + (f" ({n_gen} places generalised)" if n_gen else "")
    )


@genotypes_app.command("list")
def genotypes_list(project: ProjectArg, as_json: JsonOpt = False) -> None:
    """Genotypes with their samples, the individuals they are linked to, and conflicts."""
    from rich.table import Table

    from irbis.store import Project
    from irbis.store.genetics import genotype_catalogue

    with Project.open(project) as p:
        data = genotype_catalogue(p)
    if as_json:
        emit_json(data)
        return
    table = Table(title=f"{len(data['genotypes'])} genotypes")
    for col in ("genotype", "sex", "samples", "first", "last", "individual", "status"):
        table.add_column(col)
    for g in data["genotypes"]:
        linked = ", ".join(
            lk["individual"]
            + (f" (via {lk['linked_to']})" if lk["linked_to"] != lk["individual"] else "")
            + f" by {lk['linked_by']}"
            for lk in g["links"]
        )
        table.add_row(
            g["code"],
            g["sex"],
            str(g["samples"]),
            g["first"] or "",
            g["last"] or "",
            linked or "-",
            g["status"],
        )
    out.print(table)
    _print_conflicts(data["conflicts"])


def _print_conflicts(conflicts: list[dict]) -> None:
    if not conflicts:
        err.print("no conflicts")
        return
    for c in conflicts:
        err.print(f"[red]conflict:[/] {c['message']}", soft_wrap=True, highlight=False)


@genotypes_app.command("conflicts")
def genotypes_conflicts(project: ProjectArg, as_json: JsonOpt = False) -> None:
    """Only the conflicts (exit 1 when there are any)."""
    from irbis.store import Project
    from irbis.store.genetics import conflicts

    with Project.open(project) as p, p.session() as s:
        found = [c.as_dict() for c in conflicts(s)]
    if as_json:
        emit_json({"conflicts": found, "count": len(found)})
    else:
        _print_conflicts(found)
    if found:
        raise typer.Exit(1)


@genotypes_app.command("link")
def genotypes_link(
    project: ProjectArg,
    genotype: Annotated[str, typer.Argument(help="The genotype's code.")],
    individual: Annotated[str, typer.Argument(help="The catalogue individual's name or id.")],
    note: Annotated[str, typer.Option(help="Why (lab report, matching photos...).")] = "",
    allow_conflict: Annotated[
        bool, typer.Option("--allow-conflict", help="Record it even if it makes a conflict.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Say a genotype is an individual of the photo catalogue (recorded with who and when)."""
    from irbis.store import Project
    from irbis.store.audit import cli_actor
    from irbis.store.genetics import link_genotype

    with Project.open(project) as p:
        res = link_genotype(
            p, genotype, individual, cli_actor(), allow_conflict=allow_conflict, note=note
        )
    if as_json:
        emit_json(res)
        return
    if not res["linked"]:
        err.print(f"genotype {res['genotype']} was already linked to {res['individual']}")
    else:
        err.print(f"genotype [bold]{res['genotype']}[/] linked to [bold]{res['individual']}[/]")
    if res["conflict"]:
        err.print(f"[red]conflict recorded:[/] {res['conflict']}")


@genotypes_app.command("unlink")
def genotypes_unlink(
    project: ProjectArg,
    genotype: Annotated[str, typer.Argument(help="The genotype's code.")],
    individual: Annotated[
        str | None, typer.Argument(help="Only its link to this individual (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Retract a genotype's links (kept in the history and the audit log)."""
    from irbis.store import Project
    from irbis.store.audit import cli_actor
    from irbis.store.genetics import unlink_genotype

    with Project.open(project) as p:
        res = unlink_genotype(p, genotype, cli_actor(), individual)
    if as_json:
        emit_json(res)
        return
    err.print(f"genotype {res['genotype']} unlinked from {', '.join(res['unlinked'])}")
