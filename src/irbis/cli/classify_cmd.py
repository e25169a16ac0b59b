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
    queue: Annotated[
        int,
        typer.Option(
            help="Then list this many unlabelled sequences whose label would teach the "
            "classifier most (smallest margin between its two best species first)."
        ),
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Propose a species, with its probability, for every sequence nobody has labelled.

    Proposals are machine observations (kept apart from people's labels, which
    replace them); rerunning the same model adds nothing. ``--queue N`` lists
    the review queue of active learning; the grid shows the same order with
    ``?sort=margin&reviewed=false``.
    """
    from irbis.pipeline.species_stage import review_queue, run_classify
    from irbis.store import Project

    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("classify", total=None, file="")
        res = run_classify(
            p, model=model, progress=lambda d, t: bar.update(task, completed=d, total=t)
        )
        todo = review_queue(p, queue) if queue > 0 else []
    if as_json:
        emit_json(res.as_dict() | ({"queue": todo} if queue > 0 else {}))
        return
    out.print(
        f"{res.proposed} sequences proposed by {res.model} ({res.unknown} unknown); "
        f"{res.reviewed} already labelled by people, {res.already} already proposed, "
        f"{res.blank} blank"
    )
    for sp, n in sorted(res.by_species.items(), key=lambda t: -t[1]):
        out.print(f"  {sp:24} {n}")
    if queue > 0:
        out.print(f"label these first ({len(todo)}, smallest margin first):")
        for it in todo:
            said = it["species"] or f"unknown ({it['best']}?)"
            out.print(
                f"  sequence {it['sequence_id']:>8}  {said:24} p {it['probability']:.2f}  "
                f"margin {it['margin']:.2f}"
            )
    if res.no_crop:
        err.print(
            f"[yellow]{res.no_crop} sequences had no usable crop (too small or unreadable)[/]"
        )
