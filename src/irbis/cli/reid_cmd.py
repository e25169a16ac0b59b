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
    boxes: Annotated[
        Path | None,
        typer.Option(
            help="boxes.csv (file,x_min,y_min,x_max,y_max as fractions of the frame): crop "
            "each image to its drawn animal box."
        ),
    ] = None,
    masks: Annotated[
        bool, typer.Option("--masks/--no-masks", help="Use the labels' mask column.")
    ] = True,
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
    """Measure top-1/top-5/mAP per encounter and per frame, and clustering precision/recall.

    The encounter is the query: its frames' evidence is pooled into one ranking
    (figures ``per_encounter``); per-frame figures are reported beside them.
    """
    from dataclasses import replace

    from irbis.reid.annotations import attach_boxes, read_boxes, read_labels
    from irbis.reid.evaluate import EvalOptions, evaluate

    try:
        anns = read_labels(labels, images)
        if not masks:
            anns = [replace(a, mask=None) for a in anns]
        if boxes is not None:
            anns, _ = attach_boxes(anns, read_boxes(boxes))
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
        if not per_query:
            doc["per_encounter"] = {
                k: v for k, v in result["per_encounter"].items() if k != "per_query"
            }
        emit_json(doc)
        return
    t = Table(title=f"reid evaluation ({result['method']}, protocol {result['protocol']})")
    t.add_column("figure")
    t.add_column("per encounter", justify="right")
    t.add_column("per frame", justify="right")
    enc = result["per_encounter"]

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for key in ("top1", "top5", "mAP", "macro_top1", "macro_top5", "majority_rate"):
        t.add_row(key, cell(enc.get(key)), cell(result.get(key)))
    t.add_row(
        "queries (closed set)", str(enc["closed_set_encounters"]), str(result["closed_set_queries"])
    )
    t.add_row("open-set queries", str(enc["open_set_encounters"]), str(result["open_set_queries"]))
    for key in ("burst_pooled_top1", "burst_pooled_top5", "pair_precision", "pair_recall"):
        t.add_row(key, "", cell(result.get(key)))
    t.add_row("ms_per_query", "", cell(result.get("ms_per_query")))
    out.print(t)


@reid_app.command("simulate-review")
def simulate_review_cmd(
    images: Annotated[
        Path, typer.Option("--images", help="Folder the label paths are relative to.")
    ],
    labels: Annotated[
        Path,
        typer.Option(
            "--labels", help="CSV: path,individual_id,encounter[,date,time,side,mask...]."
        ),
    ],
    boxes: Annotated[
        Path | None,
        typer.Option(help="boxes.csv (fractions of the frame): crop each image to its box."),
    ] = None,
    masks: Annotated[
        bool, typer.Option("--masks/--no-masks", help="Use the labels' mask column.")
    ] = True,
    top_k: Annotated[int, typer.Option("--top-k", help="Candidates shown per page.")] = 5,
    seconds_per_decision: Annotated[
        float, typer.Option(help="Seconds a person spends on one page of candidates.")
    ] = 20.0,
    auto_accept: Annotated[
        float | None,
        typer.Option(
            help="File the matcher's 'same as X' without a person at this probability or "
            "more (default: a person confirms every encounter)."
        ),
    ] = None,
    miss_rate: Annotated[
        float, typer.Option(help="Chance that the reviewer overlooks the right cat on a page.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the reviewer's misses.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    log: Annotated[
        bool, typer.Option("--log", help="With --json: add one record per encounter.")
    ] = False,
) -> None:
    """Replay a labelled season in time order against a simulated reviewer.

    From an empty catalogue, each encounter is matched as one unit; the reviewer
    pages through the candidates top-k at a time (one decision per page) and
    accepts the right one, else declares a new individual. Reports decisions per
    encounter, manual searches, false merges and splits, and minutes of review.
    """
    from dataclasses import replace

    import cv2

    from irbis.reid.annotations import attach_boxes, read_boxes, read_labels
    from irbis.reid.evaluate import EvalOptions, extract_all
    from irbis.reid.review_sim import Reviewer, simulate_review

    if top_k < 1:
        err.print("[red]error:[/] --top-k must be at least 1")
        raise typer.Exit(2)
    if not 0.0 <= miss_rate <= 1.0 or (auto_accept is not None and not 0 < auto_accept <= 1):
        err.print("[red]error:[/] --miss-rate must lie in 0..1 and --auto-accept in (0, 1]")
        raise typer.Exit(2)
    cv2.setNumThreads(1)  # many tiny matching calls: threads cost more than they give
    try:
        anns = read_labels(labels, images)
        if not masks:
            anns = [replace(a, mask=None) for a in anns]
        if boxes is not None:
            anns, _ = attach_boxes(anns, read_boxes(boxes))
        with progress() as bar:
            tasks: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total, file="")
                bar.update(tasks[stage], completed=done)

            feats, problems = extract_all(anns, EvalOptions(), tick)
            if anns and len(problems) == len(anns):
                raise IrbisError(
                    f"none of the {len(anns)} images could be read (first: {problems[0]}); "
                    "check --images"
                )
            result = simulate_review(
                anns,
                feats,
                Reviewer(
                    top_k=top_k,
                    seconds_per_decision=seconds_per_decision,
                    auto_accept=auto_accept,
                    miss_rate=miss_rate,
                    seed=seed,
                ),
                progress=tick,
            )
    except (IrbisError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    for p in problems:
        err.print(f"[yellow]skipped:[/] {p}")
    if as_json:
        emit_json({k: v for k, v in result.items() if log or k != "log"})
        return
    t = Table(title=f"simulated review ({result['encounters']} encounters, top {top_k} shown)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for key in (
        "decisions",
        "decisions_per_encounter",
        "encounters_manual_search",
        "manual_search_known",
        "manual_search_new",
        "false_merges",
        "false_splits",
        "machine_filed",
        "catalogue_individuals",
        "animals",
        "known_top1",
        "known_top_k",
        "minutes",
    ):
        v = result[key]
        t.add_row(key, "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
    out.print(t)
    out.print(f"minutes at {seconds_per_decision:g} s per decision")
