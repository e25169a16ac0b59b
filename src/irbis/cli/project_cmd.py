"""``irbis project meta``: the publishing metadata a Camtrap DP export writes.

Wired into :mod:`irbis.cli.app` as ``app.add_typer(project_app, name="project")``.

``irbis project meta PROJECT`` shows title, description, id, contributors,
licences, citation, keywords and sampling design (what an export would write,
and whether each was set, imported from a package or is irbis's default);
options change them (:mod:`irbis.exchange.package_meta`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, out

__all__ = ["project_app"]

project_app = typer.Typer(
    help="The project's publishing metadata (what Camtrap DP exports carry).",
    no_args_is_help=True,
)

@project_app.command("meta")
def project_meta(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    title: Annotated[str | None, typer.Option(help="Title of the published package.")] = None,
    description: Annotated[
        str | None, typer.Option(help="Description of the package (Markdown).")
    ] = None,
    package_id: Annotated[
        str | None, typer.Option("--id", help="Globally unique ID of the package, e.g. a DOI.")
    ] = None,
    contributor: Annotated[
        list[str] | None,
        typer.Option(
            "--contributor",
            help="'Name|role|organisation|email' (role: contact, principalInvestigator, "
            "rightsHolder, publisher, contributor; a 5th part: a web page such as an ORCID). "
            "Repeatable; replaces the list.",
        ),
    ] = None,
    add_contributor: Annotated[
        list[str] | None,
        typer.Option(
            "--add-contributor",
            help="Same form as --contributor: add one (or replace one of the same name).",
        ),
    ] = None,
    remove_contributor: Annotated[
        list[str] | None,
        typer.Option("--remove-contributor", help="Name of a contributor to remove."),
    ] = None,
    licence: Annotated[
        str | None, typer.Option(help="Licence of the data, e.g. CC-BY-4.0, CC0-1.0.")
    ] = None,
    media_licence: Annotated[
        str | None, typer.Option(help="Licence of the media files, e.g. CC-BY-NC-4.0.")
    ] = None,
    citation: Annotated[
        str | None, typer.Option(help="Recommended citation (bibliographicCitation).")
    ] = None,
    keyword: Annotated[
        list[str] | None,
        typer.Option("--keyword", help="A keyword; repeatable; replaces the list ('' clears)."),
    ] = None,
    sampling_design: Annotated[
        str | None,
        typer.Option(
            help="simpleRandom, systematicRandom, clusteredRandom, experimental, targeted or "
            "opportunistic."
        ),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(
            "--unset", help="Forget a field set here (the imported value or default applies)."
        ),
    ] = None,
    as_json: JsonOpt = False,
):
    """Show the publishing metadata, or change it with the options ('' clears a text)."""
    from irbis.exchange import package_meta as pm
    from irbis.store import Project

    changing = any(
        v is not None
        for v in (
            title,
            description,
            package_id,
            contributor,
            add_contributor,
            remove_contributor,
            licence,
            media_licence,
            citation,
            keyword,
            sampling_design,
            unset,
        )
    )
    with Project.open(project) as p:
        if changing:
            meta = pm.update(
                p,
                title=title,
                description=description,
                package_id=package_id,
                contributors=contributor,
                add_contributors=add_contributor,
                remove_contributors=remove_contributor,
                data_licence=licence,
                media_licence=media_licence,
                citation=citation,
                keywords=keyword,
                sampling_design=sampling_design,
                unset=unset,
            )
        else:
            meta = pm.effective(p)
    if as_json:
        emit_json(meta)
        return
    src = meta["sources"]

    def line(label: str, key: str, text: str) -> None:
        origin = src.get(key)
        note = f"  [dim]({origin})[/]" if origin and origin != "set" else ""
        out.print(f"[bold]{label}:[/] {text or '[dim]-[/]'}{note}", highlight=False)

    line("title", "title", meta.get("title", ""))
    line("description", "description", meta.get("description", ""))
    line("id", "id", meta.get("id", ""))
    people = meta.get("contributors") or []
    line("contributors", "contributors", str(len(people)) if people else "")
    for c in people:
        extra = ", ".join(c[k] for k in ("organization", "email", "path") if c.get(k))
        out.print(
            f"  {c.get('title', '')} ({c.get('role', 'contributor')})"
            + (f": {extra}" if extra else ""),
            highlight=False,
        )
    lic = ", ".join(
        f"{x.get('scope', '?')} {x.get('name') or x.get('path')}" for x in meta["licenses"]
    )
    line("licences", "licenses", lic)
    line("citation", "bibliographicCitation", meta.get("bibliographicCitation", ""))
    line("keywords", "keywords", ", ".join(meta.get("keywords") or []))
    line("sampling design", "samplingDesign", meta["samplingDesign"])
    data = next((x.get("name") for x in meta["licenses"] if x.get("scope") == "data"), None)
    if data and data not in pm.GBIF_DATA_LICENCES:
        err.print(
            f"note: GBIF publishes data under {', '.join(pm.GBIF_DATA_LICENCES)} only; "
            f"{data} is fine for other archives"
        )
    if not people:
        err.print(
            "note: no contributors set; the export writes the team's accounts (precise) or "
            "'<project> census team': add people with --add-contributor"
        )
