"""``irbis reid``: individual identification commands (wired into ``irbis`` by the lead)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irbis.cli.common import emit_json, err, out, progress
from irbis.core.errors import IrbisError

reid_app = typer.Typer(
    help="Identify individual snow leopards by their rosettes.", no_args_is_help=True
)


@reid_app.callback()
def _reid() -> None:
    """Identify individual snow leopards by their rosettes."""


@reid_app.command("evaluate")
def evaluate_cmd(
    images: Annotated[
        Path, typer.Option("--images", help="Folder the label paths are relative to.")
    ],
    labels: Annotated[
        Path, typer.Option("--labels", help="CSV: path,individual_id[,side,encounter,role,mask].")
    ],
    protocol: Annotated[
        str,
        typer.Option(
            help="encounter: never match a query against its own burst; station: nor against "
            "its own station (rosettes only, no scene); image: only itself."
        ),
    ] = "encounter",
    method: Annotated[
        str, typer.Option(help="default (RootSIFT+LNBNN+RANSAC) or baseline (SIFT+ratio+inliers).")
    ] = "default",
    max_queries: Annotated[
        int | None, typer.Option(help="Score an evenly spaced subset of queries (speed).")
    ] = None,
    false_merge_rate: Annotated[
        float, typer.Option(help="Clustering: tolerated probability that an edge is wrong.")
    ] = 0.05,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    per_query: Annotated[
        bool,
        typer.Option(
            "--per-query", help="With --json: add each query's truth and top-5 (per_query)."
        ),
    ] = False,
) -> None:
    """Measure top-1/top-5/mAP and clustering precision/recall on labelled images."""
    from irbis.reid.annotations import read_labels
    from irbis.reid.evaluate import EvalOptions, evaluate

    try:
        anns = read_labels(labels, images)
        opts = EvalOptions(
            method=method,
            protocol=protocol,
            max_queries=max_queries,
            false_merge_rate=false_merge_rate,
        )
        with progress() as bar:
            tasks: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total, file="")
                bar.update(tasks[stage], completed=done)

            result = evaluate(anns, opts, progress=tick)
    except (IrbisError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    for p in result["unusable_images"]:
        err.print(f"[yellow]skipped:[/] {p}")
    if as_json:
        doc = {k: v for k, v in result.items() if per_query or k != "per_query"}
        emit_json(doc)
        return
    t = Table(title=f"reid evaluation ({result['method']}, protocol {result['protocol']})")
    t.add_column("figure")
    t.add_column("value", justify="right")
    keys = ("top1", "top5", "mAP", "macro_top1", "majority_rate", "ms_per_query")
    more = ("burst_pooled_top1", "burst_pooled_top5", "pair_precision", "pair_recall")
    for key in (*keys, *more):
        value = result.get(key)
        t.add_row(key, "n/a" if value is None else f"{value:.3f}")
    t.add_row("queries (closed set)", str(result["closed_set_queries"]))
    t.add_row("open-set queries", str(result["open_set_queries"]))
    out.print(t)
