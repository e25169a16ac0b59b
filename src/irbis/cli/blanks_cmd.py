"""``irbis blanks``: what is set aside as blank, and frames for a person to spot-check.

Wired into :mod:`irbis.cli.app` as::

    from irbis.cli.blanks_cmd import blanks_app
    app.add_typer(blanks_app, name="blanks")

``irbis blanks status PROJECT`` counts the sequences and frames set aside as
blank per station (and the frames too small to judge, and those people's
reviews keep); ``irbis blanks sample PROJECT --n 20 [--csv out.csv]`` lists a
reproducible random sample of set-aside frames, each with the review app page
where a person looks at it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irbis.cli.common import JsonOpt, emit_json, err, out

__all__ = ["blanks_app"]

blanks_app = typer.Typer(
    help="Frames set aside as blank: counts, and a sample for a person to check.",
    no_args_is_help=True,
)

ProjectArg = Annotated[Path, typer.Argument(help="Project folder.")]
DetectorOpt = Annotated[
    str | None, typer.Option(help="Detector key (default: the one with the most results).")
]
AppUrlOpt = Annotated[
    str,
    typer.Option(help="Address of the review app (`irbis serve`), put before each page's path."),
]


@blanks_app.command("status")
def blanks_status(project: ProjectArg, detector: DetectorOpt = None, as_json: JsonOpt = False):
    """Sequences and frames set aside as blank, per station."""
    from irbis.store import Project
    from irbis.store.blanks import blank_status

    with Project.open(project) as p, p.session() as s:
        data = blank_status(s, detector)
    if as_json:
        emit_json(data)
        return
    if data["detector"] is None:
        err.print("no detector has been run on this project (`irbis detect`)")
        return
    _print_status(data)


def _print_status(data: dict) -> None:
    out.print(
        f"set aside as blank ({data['detector']}): {data['sequences']} sequences, "
        f"{data['frames']} frames"
    )
    if data["too_small_frames"]:
        out.print(
            f"{data['too_small_frames']} frames too small for the detector to judge "
            f"(under {data['min_judge_side']} px): kept for people to look at"
        )
    if data["kept_by_review"]:
        out.print(f"{data['kept_by_review']} sequences the detector called blank kept by reviews")
    table = Table(title="Set aside as blank, per station")
    cols = [
        ("station", "station"),
        ("sequences judged", "sequences_judged"),
        ("set aside", "set_aside_sequences"),
        ("frames set aside", "set_aside_frames"),
        ("too small", "too_small_frames"),
        ("unjudged", "unjudged_frames"),
        ("kept by review", "kept_by_review"),
    ]
    for title, _k in cols:
        table.add_column(title)
    for row in data["per_station"]:
        table.add_row(*(str(row[k]) for _t, k in cols))
    out.print(table)


@blanks_app.command("sample")
def blanks_sample(
    project: ProjectArg,
    n: Annotated[int, typer.Option("--n", help="Frames to sample.", min=0)] = 20,
    share: Annotated[
        float | None,
        typer.Option(help="Instead of --n: this fraction of the set-aside frames (0..1]."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the draw (same seed, same frames; default 15).")
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Also write the sample to this CSV file.")
    ] = None,
    app_url: AppUrlOpt = "http://127.0.0.1:8765",
    detector: DetectorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A random sample of set-aside frames to spot-check, with their review-app pages."""
    from irbis.store import Project
    from irbis.store.blanks import DEFAULT_SEED, gather_blanks, sequence_url, spot_check_sample

    seed = DEFAULT_SEED if seed is None else seed
    if share is not None and not 0.0 < share <= 1.0:
        raise typer.BadParameter("--share must be in (0, 1]")
    with Project.open(project) as p, p.session() as s:
        blanks = gather_blanks(s, detector)
        picked = spot_check_sample(blanks, n=n, share=share, seed=seed)
        base = app_url.rstrip("/")
        rows = [
            {
                "media_id": f.media_id,
                "sequence_id": f.sequence_id,
                "station": f.station,
                "file": f.file_name,
                "time": f.time_local.isoformat(sep=" ") if f.time_local else "",
                "path": str(
                    p.blob_dir / f.stored_path if f.storage == "copy" else Path(f.stored_path)
                ),
                "page": sequence_url(f.sequence_id, f.media_id),
                "url": base + sequence_url(f.sequence_id, f.media_id),
            }
            for f in picked
        ]
    pool = sum(not f.confirmed for f in blanks.frames)
    if csv_out is not None:
        cols = ["media_id", "sequence_id", "station", "file", "time", "url", "path"]
        tmp = csv_out.with_name(csv_out.name + ".part")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        tmp.replace(csv_out)
    if as_json:
        emit_json(
            {
                "detector": blanks.detector,
                "seed": seed,
                "set_aside_frames": len(blanks.frames),
                "pool": pool,
                "frames": rows,
            }
        )
        return
    if blanks.detector is None:
        err.print("no detector has been run on this project (`irbis detect`)")
        return
    err.print(
        f"{len(rows)} of {pool} set-aside frames not yet checked by a person "
        f"(seed {seed}; {blanks.detector})"
    )
    table = Table(title="Spot-check: is any of these not blank?")
    for col in ("station", "time", "file", "page"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["station"], r["time"], r["file"], r["url"])
    out.print(table)
    if csv_out is not None:
        err.print(f"wrote {csv_out}")
