"""``irbis``: the command line. Each command is a thin layer over the library.

Every command that a script may read takes ``--json`` and then prints exactly
one JSON document on stdout; progress bars and messages go to stderr.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irbis import __version__
from irbis.cli.common import JsonOpt, emit_json, err, out, progress, resumable
from irbis.core.errors import IrbisError

app = typer.Typer(
    name="irbis",
    help="Census snow leopards with camera traps: ingest cards, check effort, estimate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
registry_app = typer.Typer(help="Stations, cameras and deployments.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


ProjectArg = Annotated[Path, typer.Argument(help="Project folder.")]


def _open(project: Path):
    from irbis.store import Project

    return Project.open(project)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version.")] = False,
) -> None:
    if version:
        out.print(f"irbis {__version__}")
        raise typer.Exit()


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder for the new project.")],
    db: Annotated[
        str | None, typer.Option(help="postgresql://... for a team server; SQLite file by default.")
    ] = None,
    storage: Annotated[
        str, typer.Option(help="copy originals into the project, or reference them in place.")
    ] = "copy",
    name: Annotated[str, typer.Option(help="Project name (default: folder name).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a census project."""
    from irbis.store import Project

    p = Project.init(path, db_url=db, storage=storage, name=name)
    if as_json:
        emit_json({"root": str(p.root), "database": p.engine.dialect.name, "storage": storage})
    else:
        err.print(
            f"created project [bold]{p.settings.name}[/] in {p.root} ({p.engine.dialect.name})"
        )


@registry_app.command("import")
def registry_import(
    project: ProjectArg,
    table: Annotated[
        Path, typer.Argument(help="camtrapR camtraps.csv, Camtrap DP deployments.csv or irbis CSV.")
    ],
    date_format: Annotated[
        str | None, typer.Option(help="strptime format of camtrapR dates, e.g. %d/%m/%Y.")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            help="Time zone of the stations (IANA name or +HH:MM); a re-import without it "
            "keeps each deployment's zone."
        ),
    ] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of projected x/y, e.g. EPSG:32646.")] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Apply changed time zones, clock offsets and coordinates."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import stations and deployments from a table.

    A re-import changes only what the table says. A changed time zone, clock
    offset or coordinate is listed and asked for; `--yes` applies it, and
    without a terminal to ask on the import refuses.
    """
    from irbis.ingest.registry import plan_registry, save_registry
    from irbis.ingest.registry_csv import read_registry_csv

    opts = {
        k: v for k, v in {"date_format": date_format, "timezone": timezone, "crs": crs}.items() if v
    }
    stations, deps = read_registry_csv(table, **opts)
    with _open(project) as p:
        changes = plan_registry(p, stations, deps)
        if changes and not yes:
            if as_json or not sys.stdin.isatty():
                from irbis.ingest.registry import RegistryChangesError

                raise RegistryChangesError(str(table), changes)
            listing = Table(title=f"{table} would change {len(changes)} stored value(s)")
            for col in ("", "name", "field", "now", "the table says"):
                listing.add_column(col)
            for c in changes:
                listing.add_row(c.kind, c.name, c.field, str(c.old), str(c.new))
            err.print(listing)
            err.print(
                "[yellow]a changed time zone or clock offset re-times every photo of the "
                "deployment; a changed coordinate moves the station[/]"
            )
            if not typer.confirm("apply these changes?", default=False, err=True):
                err.print("nothing was written")
                raise typer.Exit(1)
        res = save_registry(p, stations, deps, apply_changes=True, where=str(table))
    data = {
        "stations_new": res.stations_new,
        "stations_updated": res.stations_updated,
        "deployments_new": res.deployments_new,
        "deployments_updated": res.deployments_updated,
        "changed": [c.as_dict() for c in res.changes],
    }
    if as_json:
        emit_json(data)
    else:
        err.print(
            f"{table}: {res.stations_new} new stations, {res.deployments_new} new deployments "
            f"({res.stations_updated + res.deployments_updated} updated"
            + (f", {len(res.changes)} changed value(s) applied" if res.changes else "")
            + ")"
        )
        for c in res.changes:
            err.print(f"  changed {c}")


@registry_app.command("list")
def registry_list(project: ProjectArg, as_json: JsonOpt = False) -> None:
    """List deployments with their stations, windows and clock corrections."""
    from irbis.ingest.registry import existing_records

    with _open(project) as p, p.session() as s:
        stations, deps = existing_records(s)
    if as_json:
        emit_json(
            {
                "stations": [
                    {
                        "name": st.name,
                        "x": st.x,
                        "y": st.y,
                        "lon": st.lon,
                        "lat": st.lat,
                        "crs": st.crs,
                        "elevation": st.elevation,
                        "covariates": st.covariates,
                    }
                    for st in stations
                ],
                "deployments": [
                    {
                        "code": d.code,
                        "station": d.station,
                        "start": d.start.isoformat(),
                        "end": d.end.isoformat(),
                        "timezone": d.timezone,
                        "clock_offset_s": d.clock_offset_s,
                        "malfunctions": [
                            [m.start.isoformat(), m.end.isoformat()] for m in d.malfunctions
                        ],
                    }
                    for d in deps
                ],
            }
        )
        return
    table = Table(title="Deployments")
    for col in ("code", "station", "start", "end", "tz", "clock", "malfunctions"):
        table.add_column(col)
    for d in deps:
        table.add_row(
            d.code,
            d.station,
            str(d.start),
            str(d.end),
            d.timezone,
            f"{d.clock_offset_s:+g} s" if d.clock_offset_s else "",
            str(len(d.malfunctions)) if d.malfunctions else "",
        )
    out.print(table)


@app.command()
def ingest(
    project: ProjectArg,
    source: Annotated[Path | None, typer.Argument(help="Card: a folder, a zip or a file.")] = None,
    deployment: Annotated[
        str | None, typer.Option(help="Put every file into this deployment.")
    ] = None,
    layout: Annotated[
        str, typer.Option(help="Folder roles, e.g. station, station/species, station/camera.")
    ] = "station",
    storage: Annotated[
        str | None, typer.Option(help="copy or reference (default: the project's).")
    ] = None,
    create_stations: Annotated[
        bool, typer.Option(help="Create unknown stations from folder names.")
    ] = False,
    report: Annotated[
        bool, typer.Option("--report", help="List rejected and flagged files instead.")
    ] = False,
    time_from: Annotated[
        str | None,
        typer.Option(help="Time without EXIF from: stamp,filename (default), filename, none."),
    ] = None,
    time_pattern: Annotated[
        list[str] | None,
        typer.Option(help="File-name time pattern, e.g. '%d-%m-%Y %H-%M-%S' (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a memory card: copy, hash, read times, group bursts. Safe to rerun."""
    from irbis.ingest.report import ingest_report
    from irbis.ingest.runner import ingest as run_ingest

    with _open(project) as p:
        if report or source is None:
            data = ingest_report(p)
            if as_json:
                emit_json(data)
            else:
                _print_report(data)
            return
        with progress() as bar:
            task = bar.add_task("ingest", total=None, file="")

            def tick(done: int, total: int, rel: str) -> None:
                bar.update(task, completed=done, total=total, file=rel[-40:])

            with resumable():
                res = run_ingest(
                    p,
                    source,
                    deployment=deployment,
                    layout=layout,
                    storage=storage,
                    create_stations=create_stations,
                    progress=tick,
                    time_from=time_from,
                    time_patterns=time_pattern,
                )
    if as_json:
        emit_json(res.as_dict())
        return
    err.print(
        f"{res.n_new} new, {res.n_duplicate} already in the project, {res.n_rejected} rejected, "
        f"{res.n_flagged} with an untrusted time "
        f"({res.bytes_read / 1e6:.1f} MB in {res.seconds:.1f} s)"
    )
    err.print("times from: " + ", ".join(f"{k} {v}" for k, v in res.time_sources.items()))
    for w in res.warnings:
        err.print(f"  [yellow]warning[/] {w}")
    for r in res.rejected[:20]:
        err.print(
            f"  [red]rejected[/] {r['file']}: {r['reason']}"
            + (f" ({r['hint']})" if r["hint"] else "")
        )
    if res.n_rejected or res.n_flagged:
        err.print(f"see `irbis ingest {project} --report` for the full list")


def _print_report(data: dict) -> None:
    table = Table(title=f"Rejected files ({len(data['rejected'])})")
    for col in ("source", "file", "reason", "what to do"):
        table.add_column(col)
    for r in data["rejected"]:
        table.add_row(r["source"], r["file"], r["reason"], r["hint"])
    out.print(table)
    table = Table(title=f"Files with an untrusted time ({len(data['flagged'])})")
    for col in ("deployment", "file", "flag", "camera time", "corrected"):
        table.add_column(col)
    for r in data["flagged"]:
        table.add_row(
            r["deployment"] or "",
            r["file"],
            r["flag"],
            r["camera_time"] or "",
            r["corrected"] or "",
        )
    out.print(table)
    out.print("times from: " + ", ".join(f"{k} {v}" for k, v in data["time_sources"].items()))
    table = Table(title=f"Times read from info bars or file names ({len(data['read_times'])})")
    for col in ("deployment", "file", "from", "time", "info bar text", "name says", "bar-name s"):
        table.add_column(col)
    for r in data["read_times"]:
        gap = r["stamp_minus_filename_s"]
        table.add_row(
            *(r[k] or "" for k in ("deployment", "file", "source", "time", "stamp_text")),
            r["filename_time"] or "",
            "" if gap is None else f"{gap:+g}",
        )
    out.print(table)


@app.command()
def clock(
    project: ProjectArg,
    shift_table: Annotated[
        Path | None,
        typer.Option(help="camtrapR time-shift table (Station, camera, timeshift, sign)."),
    ] = None,
    deployment: Annotated[str | None, typer.Option(help="Deployment to correct.")] = None,
    offset: Annotated[
        float | None, typer.Option(help="Seconds to add to the camera clock.")
    ] = None,
    camera_showed: Annotated[
        str | None, typer.Option(help="Reference photo: what the camera showed (ISO time).")
    ] = None,
    true_time: Annotated[
        str | None, typer.Option(help="Reference photo: the true local time then (ISO).")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="A photo of a known time (path on the card or file name): with --true-time, "
            "fixes the files from it (or --from-file) to --to-file (or the last)."
        ),
    ] = None,
    from_file: Annotated[
        str | None, typer.Option("--from-file", help="First file of the range to fix.")
    ] = None,
    to_file: Annotated[
        str | None, typer.Option("--to-file", help="Last file of the range to fix.")
    ] = None,
    undo: Annotated[
        bool, typer.Option("--undo", help="Undo the latest file-range fix of --deployment.")
    ] = False,
    fix_id: Annotated[
        int | None, typer.Option("--fix", help="With --undo: the fix to undo (see --list).")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List every deployment's clock corrections.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Correct camera clocks and re-time the files already ingested.

    Raw camera readings are never changed, so every correction can be redone
    or undone. A clock that reset part-way through a card: give one photo
    after the reset whose true time you know (`--reference FILE --true-time
    T`); the files from it to the end of the card (or `--from-file` /
    `--to-file`) are fixed by the same amount, and `--undo` takes it back.
    """
    from irbis.ingest.clockfix import (
        apply_offset,
        apply_shift_table,
        fix_range,
        list_fixes,
        undo_fix,
    )

    with _open(project) as p:
        if list_:
            rows = list_fixes(p)
            if as_json:
                emit_json({"deployments": rows})
                return
            table = Table(title="Clock corrections")
            for col in ("deployment", "shift", "offset", "fix", "files", "reference", "true time"):
                table.add_column(col)
            for r in rows:
                table.add_row(
                    r["deployment"], r["shift"] or "", f"{r['offset_s']:+g} s", "", "", "", ""
                )
                for f in r["fixes"]:
                    table.add_row(
                        "", "", f"{f['offset_s']:+g} s", str(f["id"]),
                        f"{f['first']} .. {f['last']}", f["reference"], f["true_time"],
                    )  # fmt: skip
            out.print(table)
            return
        if undo:
            if not deployment:
                raise typer.BadParameter("--undo needs --deployment")
            res = undo_fix(p, deployment, fix_id)
        elif reference is not None:
            if not true_time:
                raise typer.BadParameter("--reference needs --true-time (the photo's true time)")
            res = fix_range(
                p,
                reference=reference,
                true_time=_iso_time(true_time, "--true-time"),
                deployment=deployment,
                first=from_file,
                last=to_file,
            )
        elif shift_table is not None:
            res = apply_shift_table(p, shift_table)
        elif deployment and offset is not None:
            res = apply_offset(p, deployment, offset)
        elif deployment and camera_showed and true_time:
            from irbis.ingest.clock import offset_from_reference

            secs = offset_from_reference(
                _iso_time(camera_showed, "--camera-showed"), _iso_time(true_time, "--true-time")
            )
            res = apply_offset(p, deployment, secs)
        else:
            raise typer.BadParameter(
                "give --shift-table, or --deployment with --offset, or --deployment with "
                "--camera-showed and --true-time, or --reference FILE with --true-time"
            )
    if as_json:
        emit_json(res)
        return
    for d in res["deployments"]:
        err.print(
            f"{d['deployment']}: shift {d['shift'] or '-'}, offset {d['offset_s']:+g} s, "
            f"{d['media_changed']} files re-timed"
        )
    if "fix" in res:
        f = res["fix"]
        err.print(
            f"fix {f['id']}: {f['files']} files {f['first']} .. {f['last']} moved "
            f"{f['offset_s']:+g} s ({f['reference']} showed {f['camera_showed']}, true "
            f"{f['true_time']}); trusted times {res['trusted_before']} -> {res['trusted_after']}"
            f" (undo: `irbis clock {project} --deployment {f['deployment']} --undo`)"
        )
    if "undone" in res:
        err.print(
            f"undid fix {res['undone']['id']} ({res['undone']['first']} .. "
            f"{res['undone']['last']}); {res['trusted_after']} files with a trusted time"
        )


def _iso_time(text: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        from irbis.core.errors import BadInputError

        raise BadInputError(
            f"{option} {text}", "not an ISO time", "write it like 2026-03-01T10:07:12"
        ) from None


@app.command()
def status(project: ProjectArg, as_json: JsonOpt = False) -> None:
    """What the project holds."""
    from irbis.ingest.report import time_sources
    from irbis.pipeline.detect_stage import detection_status
    from irbis.store.summary import project_status

    with _open(project) as p:
        data = project_status(p)
        data["detections"] = detection_status(p)
        data["time_sources"] = time_sources(p)
    if as_json:
        emit_json(data)
        return
    out.print(f"[bold]{data['project']}[/] ({data['database']}, {data['storage']})")
    out.print(
        f"{data['stations']} stations, {data['deployments']} deployments, {data['media']} media "
        f"({data['bytes'] / 1e6:.1f} MB), {data['sequences']} sequences, {data['events']} events"
    )
    out.print("times from: " + ", ".join(f"{k} {v}" for k, v in data["time_sources"].items()))
    if data["flagged"]:
        out.print("untrusted times: " + ", ".join(f"{k} {v}" for k, v in data["flagged"].items()))
    if data["rejected"]:
        out.print(f"{data['rejected']} files rejected (see `irbis ingest --report`)")
    if data["species_media"]:
        out.print(
            "species (media): " + ", ".join(f"{k} {v}" for k, v in data["species_media"].items())
        )
    det = data["detections"]
    if det["detector"]:
        out.print(
            f"detections ({det['detector']}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(det["sequences"].items()))
            + " sequences"
        )
        aside = det["set_aside"]
        out.print(
            f"set aside as blank: {aside['sequences']} sequences, {aside['frames']} frames"
            + (
                f"; {aside['too_small_frames']} frames too small for the detector to judge"
                if aside["too_small_frames"]
                else ""
            )
            + " (`irbis blanks sample` lists some to check)"
        )
        table = Table(title="Detections per station (media)")
        cols = ["station", "media", "blank", "unjudged", "animal", "person", "vehicle"]
        for col in cols:
            table.add_column(col)
        for row in det["per_station"]:
            table.add_row(*(str(row.get(c, 0)) for c in cols))
        out.print(table)


@app.command()
def effort(
    project: ProjectArg,
    cameras_independent: Annotated[
        bool, typer.Option(help="Two cameras at a station count twice.")
    ] = True,
    csv: Annotated[
        Path | None, typer.Option(help="Write the daily operation matrix as CSV.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Camera effort: operation days and trap-nights per station (camtrapR cameraOperation)."""
    from irbis.ingest.effort import project_effort

    with _open(project) as p:
        op = project_effort(p, cameras_independent=cameras_independent)
    nights = op.trap_nights()
    if csv is not None:
        with open(csv, "w") as fh:
            fh.write("station," + ",".join(d.isoformat() for d in op.days) + "\n")
            for i, st in enumerate(op.stations):
                fh.write(
                    st + "," + ",".join("" if v != v else f"{v:g}" for v in op.values[i]) + "\n"
                )
    data = {
        "stations": [
            {
                "station": st,
                "trap_nights": round(float(nights[i]), 4),
                "first_day": _first(op, i, first=True),
                "last_day": _first(op, i, first=False),
            }
            for i, st in enumerate(op.stations)
        ],
        "total_trap_nights": round(float(nights.sum()), 4),
        "days": len(op.days),
    }
    if as_json:
        emit_json(data)
        return
    table = Table(title="Camera effort")
    for col in ("station", "first day", "last day", "trap-nights"):
        table.add_column(col)
    for row in data["stations"]:
        table.add_row(
            row["station"], row["first_day"] or "", row["last_day"] or "", f"{row['trap_nights']:g}"
        )
    out.print(table)
    out.print(f"total {data['total_trap_nights']:g} trap-nights")


def _first(op, i: int, *, first: bool) -> str | None:
    import numpy as np

    idx = np.flatnonzero(~np.isnan(op.values[i]))
    if idx.size == 0:
        return None
    return op.days[int(idx[0] if first else idx[-1])].isoformat()


@app.command()
def records(
    project: ProjectArg,
    gap: Annotated[float, typer.Option(help="Minutes between independent records.")] = 60.0,
    compared_to: Annotated[
        str, typer.Option(help="lastRecord or lastIndependentRecord.")
    ] = "lastRecord",
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            help="Species to leave out (repeatable; default UNID, as camtrapR's examples; "
            "--exclude none keeps every label)."
        ),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the record table as CSV.")] = None,
    individuals: Annotated[
        bool,
        typer.Option(
            "--individuals",
            help="One row per independent record of an identified individual at a station "
            "(camtrapR recordTableIndividual; the gap applies per individual).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Independent species records per station (camtrapR recordTable), or of
    identified individuals with --individuals (camtrapR recordTableIndividual)."""
    from irbis.ingest.records import record_table

    if compared_to not in ("lastRecord", "lastIndependentRecord"):
        raise typer.BadParameter("--compared-to must be lastRecord or lastIndependentRecord")
    excluded = _excluded(exclude)
    with _open(project) as p:
        if individuals:
            from irbis.exchange.individual_records import individual_record_table

            rows = individual_record_table(
                p, min_delta_min=gap, compared_to=compared_to, exclude=excluded
            )
        else:
            rows = record_table(p, min_delta_min=gap, compared_to=compared_to, exclude=excluded)
    if csv is not None:
        import csv as csvmod

        with open(csv, "w", newline="") as fh:
            w = csvmod.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["station"])
            w.writeheader()
            w.writerows(rows)
    if as_json:
        emit_json({"records": rows, "count": len(rows)})
        return
    what = "records of identified individuals" if individuals else "records"
    table = Table(title=f"{len(rows)} independent {what} (gap {gap:g} min)")
    cols = ("station", "species", "individual") if individuals else ("station", "species")
    for col in (*cols, "time", "delta (h)", "file"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(r[c] for c in cols), r["time"], f"{r['delta_s'] / 3600:.1f}", r["file"])
    out.print(table)


#: camtrapR's examples leave unidentified animals out: recordTable(..., exclude = "UNID").
DEFAULT_EXCLUDE = ("UNID",)


def _excluded(exclude: list[str] | None) -> tuple[str, ...]:
    if not exclude:
        return DEFAULT_EXCLUDE
    return tuple(e for e in exclude if e.lower() != "none")


@app.command()
def demo(
    path: Annotated[
        Path, typer.Argument(help="Folder for the demo project and its generated cards.")
    ] = Path("irbis-demo"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulated survey.")] = 7,
    stations: Annotated[int, typer.Option(help="Number of camera stations.")] = 12,
    leopards: Annotated[int, typer.Option(help="Size of the simulated leopard population.")] = 10,
    report: Annotated[bool, typer.Option(help="Write the census report (report.html).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a survey, ingest its cards and show what irbis makes of it."""
    from irbis.demo.run import run_demo

    summary = run_demo(
        path,
        seed=seed,
        n_stations=stations,
        n_leopards=leopards,
        report=report,
        console=None if as_json else err,
    )
    if as_json:
        emit_json(summary)


# Commands of the later stages live in their own modules, which import their
# heavy libraries (numpy, scipy, onnxruntime) only when a command runs.
from irbis.cli import secr_joint_cmd  # noqa: E402, F401  (adds `irbis secr fit-joint`)
from irbis.cli.detect_cmd import detect as _detect  # noqa: E402
from irbis.cli.detect_cmd import models_app  # noqa: E402
from irbis.cli.identify_cmd import identify as _identify  # noqa: E402
from irbis.cli.reid_cmd import reid_app  # noqa: E402
from irbis.cli.stats_cmd import cr_app, export_secr_cmd, secr_app  # noqa: E402

app.command("detect")(_detect)
app.command("identify")(_identify)
app.add_typer(models_app, name="models", help="Install and check detection models.")
app.add_typer(reid_app, name="reid", help="Identify individual snow leopards by their rosettes.")
app.add_typer(secr_app, name="secr", help="Spatially explicit capture-recapture.")
app.add_typer(cr_app, name="cr", help="Closed-population capture-recapture.")
export_app = typer.Typer(help="Standard exports.", no_args_is_help=True)
export_app.command("secr")(export_secr_cmd)
app.add_typer(export_app, name="export")

from irbis.cli.exchange_cmd import export_camtrapdp_cmd, import_app  # noqa: E402

export_app.command("camtrapdp")(export_camtrapdp_cmd)
app.add_typer(import_app, name="import", help="Import standard packages (Camtrap DP).")

from irbis.cli.report_cmd import report as _report  # noqa: E402

app.command("report")(_report)
from irbis.cli.blanks_cmd import blanks_app  # noqa: E402

app.add_typer(blanks_app, name="blanks")
from irbis.cli.train_cmd import boxes_app  # noqa: E402

app.add_typer(boxes_app, name="boxes")


def main() -> None:
    """Entry point: one-line errors for the mistakes people make."""
    try:
        app()
    except IrbisError as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        sys.exit(2)


# The review web app (FastAPI/uvicorn are imported only when `serve` runs).
from irbis.cli.web_cmd import serve as _serve  # noqa: E402
from irbis.cli.web_cmd import users_app  # noqa: E402

app.command("serve")(_serve)
app.add_typer(users_app, name="users")

# The species list (`irbis species`).
from irbis.cli.species_cmd import species_app  # noqa: E402

app.add_typer(species_app, name="species")

# Publishing metadata (`irbis project meta`).
from irbis.cli.project_cmd import project_app  # noqa: E402

app.add_typer(project_app, name="project")

# The audit log and undoing merges (`irbis audit`, `irbis individuals unmerge`).
from irbis.cli.audit_cmd import audit as _audit  # noqa: E402
from irbis.cli.audit_cmd import individuals_app  # noqa: E402

app.command("audit")(_audit)
# Rename and split (`irbis individuals rename|split`) join the same group.
import irbis.cli.individuals_cmd  # noqa: E402, F401

app.add_typer(individuals_app, name="individuals")

# Backups and integrity (`irbis backup`, `irbis restore`, `irbis check`).
from irbis.cli.backup_cmd import backup as _backup  # noqa: E402
from irbis.cli.backup_cmd import check as _check  # noqa: E402
from irbis.cli.backup_cmd import restore as _restore  # noqa: E402

app.command("backup")(_backup)
app.command("restore")(_restore)
app.command("check")(_check)

# Field records and genetic individuals (`irbis field`, `irbis genotypes`).
from irbis.cli.field_cmd import field_app, genotypes_app  # noqa: E402

app.add_typer(field_app, name="field")
app.add_typer(genotypes_app, name="genotypes")

# Prey from the cameras (`irbis occupancy`, `irbis rai`).
from irbis.cli.prey_cmd import occupancy_cmd, rai_cmd  # noqa: E402

app.command("occupancy")(occupancy_cmd)
app.command("rai")(rai_cmd)

# Species proposals (`irbis classify`).
from irbis.cli.classify_cmd import classify as _classify  # noqa: E402

app.command("classify")(_classify)

# The originals in an S3-compatible object store, for Ray workers (`irbis blobs`).
from irbis.cli.blobs_cmd import blobs_app  # noqa: E402

app.add_typer(blobs_app, name="blobs")
