"""What every ``irbis`` command shares: consoles, ``--json`` output, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from irbis.core.jsonsafe import finite

# Messages and progress go to stderr so that stdout carries only results.
err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]

#: ``--ray ADDRESS`` (or ``IRBIS_RAY_ADDRESS``) of the commands that run their
#: per-item work on a Ray cluster (:mod:`irbis.pipeline.cluster`).
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        envvar="IRBIS_RAY_ADDRESS",
        help="Run the per-crop work on a Ray cluster: its address (auto, ray://host:10001, "
        "host:6379), local (a local Ray, one worker per core) or local:N. The project folder "
        "must be at the same path on every node. Needs irbis[ray]. Also IRBIS_RAY_ADDRESS.",
    ),
]


@contextmanager
def ray_errors() -> Iterator[None]:
    """Turn an unreachable Ray cluster into its one-line error (exit 2), as ``--ray`` does."""
    from irbis.pipeline.cluster import RayUnavailableError

    try:
        yield
    except RayUnavailableError as exc:
        err.print(f"[red]error[/] {exc}")
        raise typer.Exit(2) from exc


def emit_json(data: object) -> None:
    """Print ``data`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(finite(data), indent=2, default=str) + "\n")


def progress() -> Progress:
    """A progress bar on stderr showing done/total, times and the current file."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[file]}"),
        console=err,
        transient=False,
    )


@contextmanager
def resumable(kept: str = "what was committed is kept") -> Iterator[None]:
    """Turn Ctrl-C into one line saying that rerunning the command resumes (exit 130).

    Every long irbis command commits in batches, so an interrupted run loses
    at most the batch in flight.
    """
    try:
        yield
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted: {kept}; run the same command again to resume[/]")
        raise typer.Exit(130) from None
