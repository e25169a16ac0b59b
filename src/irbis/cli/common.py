"""What every ``irbis`` command shares: consoles, ``--json`` output, progress bars."""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any

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

# Messages and progress go to stderr so that stdout carries only results.
err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _finite(obj: Any) -> Any:
    """Non-finite floats become null: the output stays strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def emit_json(data: object) -> None:
    """Print ``data`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(_finite(data), indent=2, default=str) + "\n")


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
