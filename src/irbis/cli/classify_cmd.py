"""``irbis classify PROJECT``: species proposals for the sequences nobody labelled."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, out, progress

__all__ = ["classify"]


def classify(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    model: Annotated[
        str | None,
        typer.Option(help="Species model (default: the one `irbis models train species` made)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose a species, with its probability, for every sequence nobody has labelled.

    Proposals are machine observations (kept apart from people's labels, which
    replace them); rerunning the same model adds nothing.
    """
    from irbis.pipeline.species_stage import run_classify
    from irbis.store import Project

    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("classify", total=None, file="")
        res = run_classify(
            p, model=model, progress=lambda d, t: bar.update(task, completed=d, total=t)
        )
    if as_json:
        emit_json(res.as_dict())
        return
    out.print(
        f"{res.proposed} sequences proposed by {res.model} ({res.unknown} unknown); "
        f"{res.reviewed} already labelled by people, {res.already} already proposed, "
        f"{res.blank} blank"
    )
    for sp, n in sorted(res.by_species.items(), key=lambda t: -t[1]):
        out.print(f"  {sp:24} {n}")
    if res.no_crop:
        err.print(
            f"[yellow]{res.no_crop} sequences had no usable crop (too small or unreadable)[/]"
        )
