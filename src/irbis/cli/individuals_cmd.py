"""``irbis individuals rename`` and ``irbis individuals split``: keeping the catalogue right."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.audit_cmd import individuals_app
from irbis.cli.common import JsonOpt, emit_json, err


@individuals_app.command("rename")
def rename(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    individual: Annotated[str, typer.Argument(help="The individual: its name or id.")],
    name: Annotated[str, typer.Argument(help="Its new name.")],
    as_json: JsonOpt = False,
) -> None:
    """Rename an individual; its sightings, capture histories and exports follow."""
    from irbis.store import Project
    from irbis.store.audit import cli_actor
    from irbis.web.catalogue_edit import rename_individual

    with Project.open(project) as p:
        res = rename_individual(p, individual, name, cli_actor())
    if as_json:
        emit_json(res)
        return
    err.print(
        f"individual {res['individual']} [bold]{res['old_name']}[/] is now [bold]{res['name']}[/]"
        + (
            f" ({res['observations_linked']} observations naming it linked)"
            if res["observations_linked"]
            else ""
        )
    )


@individuals_app.command("split")
def split(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    individual: Annotated[str, typer.Argument(help="The individual: its name or id.")],
    into: Annotated[
        str, typer.Option(help="Where the sightings go: an individual's name or id, or a new name.")
    ],
    sequence: Annotated[
        list[int] | None, typer.Option(help="Move every sighting of this encounter (repeatable).")
    ] = None,
    annotation: Annotated[
        list[int] | None, typer.Option(help="Move this identified crop (repeatable).")
    ] = None,
    media: Annotated[
        list[int] | None, typer.Option(help="Move the sightings on this photo (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move chosen sightings of an individual to another (existing or new) individual."""
    from irbis.store import Project
    from irbis.store.audit import cli_actor
    from irbis.web.catalogue_edit import split_individual

    with Project.open(project) as p:
        res = split_individual(
            p,
            individual,
            sequences=sequence or (),
            annotations=annotation or (),
            media=media or (),
            into=into,
            actor=cli_actor(),
        )
    if as_json:
        emit_json(res)
        return
    err.print(
        f"moved {len(res['annotations'])} crops and {len(res['observations'])} observations "
        f"to [bold]{res['into_name']}[/]{' (new)' if res['created'] else ''}"
    )
