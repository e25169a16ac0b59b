"""``irbis audit`` (who changed or took what) and ``irbis individuals unmerge``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, out

individuals_app = typer.Typer(help="The catalogue of known individuals.", no_args_is_help=True)


def audit(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    action: Annotated[
        str | None,
        typer.Option(help="Only this action (label, merge, user, registry, download, export...)."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only this user (cli:NAME for commands).")] = (
        None
    ),
    target: Annotated[
        str | None,
        typer.Option(help="Only this target (individual:12), or a kind ending with ':' (media:)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this UTC date or time (ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this UTC date or time (ISO).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows, newest first.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List the audit log: who, what, when, and the state before and after."""
    from rich.table import Table

    from irbis.store import Project
    from irbis.store.audit import entries

    with Project.open(project) as p:
        rows = entries(
            p, action=action, actor=actor, target=target, since=since, until=until, limit=limit
        )
    if as_json:
        emit_json({"entries": rows, "count": len(rows)})
        return
    if not rows:
        err.print("no audit entries match")
        return
    table = Table(title=f"{len(rows)} audit entries (newest first)")
    for col in ("id", "UTC", "who", "action", "target", "before", "after"):
        table.add_column(col, overflow="fold")

    def short(v: object) -> str:
        text = "" if v is None else json.dumps(v, ensure_ascii=False, default=str)
        return text if len(text) <= 80 else text[:77] + "..."

    for r in rows:
        table.add_row(
            str(r["id"]),
            r["at_utc"],
            r["actor"],
            r["action"],
            r["target"],
            short(r["before"]),
            short(r["after"]),
        )
    out.print(table)


@individuals_app.command("unmerge")
def unmerge(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    individual: Annotated[str, typer.Argument(help="The merged individual: its name or id.")],
    as_json: JsonOpt = False,
) -> None:
    """Undo an individual's last merge, from the state the audit log recorded before it."""
    from irbis.store import Project
    from irbis.store.audit import cli_actor
    from irbis.web.history import unmerge_individual

    with Project.open(project) as p:
        res = unmerge_individual(p, individual, cli_actor())
    if as_json:
        emit_json(res)
        return
    err.print(
        f"individual [bold]{res['name']}[/] ({res['individual']}) is its own again "
        f"(was merged into {res['was_merged_into']}; undoes audit entry {res['undoes']})"
    )
