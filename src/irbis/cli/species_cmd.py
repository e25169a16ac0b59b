"""``irbis species``: the project's species list (labels, names, keys) without editing irbis.json.

Wired into :mod:`irbis.cli.app` as::

    from irbis.cli.species_cmd import species_app
    app.add_typer(species_app, name="species")

``irbis species list PROJECT`` shows the list (key, label, scientific and
common name, observations) and the species observed but not listed;
``add``, ``edit``, ``rename`` and ``remove`` change it. The review app reads
the list on its next page (no restart).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irbis.cli.common import JsonOpt, emit_json, err, out

__all__ = ["species_app"]

species_app = typer.Typer(
    help="The project's species: labels, scientific and common names, keys in the app.",
    no_args_is_help=True,
)

ProjectArg = Annotated[Path, typer.Argument(help="Project folder.")]
LabelArg = Annotated[
    str, typer.Argument(help="The label observations store, e.g. 'Panthera uncia'.")
]
ScientificOpt = Annotated[
    str | None, typer.Option("--scientific", help="Scientific name (Camtrap DP scientificName).")
]
VernacularOpt = Annotated[
    str | None, typer.Option("--vernacular", help="Common name, e.g. 'snow leopard'.")
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--key", help="Digit 1..9 that labels with it in the app ('' for none)."),
]
RankOpt = Annotated[
    str | None,
    typer.Option(
        "--rank",
        help="Camtrap DP taxonRank: kingdom, phylum, class, order, family, genus, "
        "species, subspecies ('' to clear).",
    ),
]
TaxonIdOpt = Annotated[
    str | None,
    typer.Option(
        "--taxon-id",
        help="Taxon identifier: a GBIF backbone key (digits) or a checklist's taxon URL "
        "('' to clear).",
    ),
]
NamesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--vernacular-name",
        help="LANG=NAME, a common name in a language (ISO 639-3, en/ru accepted), e.g. "
        "'rus=снежный барс'; repeatable; LANG= removes one (edit).",
    ),
]


def _parse_names(items: list[str] | None) -> dict[str, str]:
    from irbis.core.errors import BadInputError
    from irbis.store.taxa import language

    out: dict[str, str] = {}
    for item in items or []:
        lang, sep, name = item.partition("=")
        if not sep:
            raise BadInputError(
                "--vernacular-name", f"{item!r} has no '='", "write LANG=NAME, e.g. rus=ирбис"
            )
        out[language(lang)] = name.strip()
    return out


def _rows(p) -> list[dict]:
    from irbis.store import species as sp

    counts = dict(sp.observed(p))
    rows = []
    for s in sp.choices(p, list(counts.items())):
        n = counts.get(s.label, 0) + sum(counts.get(a, 0) for a in s.aliases)
        rows.append({**s.to_json(), "aliases": s.aliases, "observations": n})
    return rows


@species_app.command("list")
def species_list(project: ProjectArg, as_json: JsonOpt = False):
    """The species list, then species observed but not listed (with their keys in the app)."""
    from irbis.store import Project

    with Project.open(project) as p:
        rows = _rows(p)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        err.print(
            "no species yet: add one with "
            "`irbis species add PROJECT 'Panthera uncia' --vernacular 'snow leopard'`"
        )
        return
    t = Table("key", "label", "scientific name", "common name", "observations", "listed")
    for r in rows:
        t.add_row(
            r["key"],
            r["label"],
            r["scientific_name"],
            r["vernacular_name"],
            str(r["observations"]),
            "yes" if r["listed"] else "no (observed)",
        )
    out.print(t)
    # Taxa below the table, which stays narrow enough for a field laptop's terminal.
    for r in rows:
        bits = [r["rank"], r["taxon_id"]]
        bits += [f"{k}: {v}" for k, v in r["vernacular_names"].items()]
        if any(bits):
            out.print(f"{r['label']}: " + "; ".join(b for b in bits if b), highlight=False)


@species_app.command("add")
def species_add(
    project: ProjectArg,
    label: LabelArg,
    scientific: ScientificOpt = None,
    vernacular: VernacularOpt = None,
    key: KeyOpt = None,
    rank: RankOpt = None,
    taxon_id: TaxonIdOpt = None,
    vernacular_name: NamesOpt = None,
    table: Annotated[
        bool,
        typer.Option(
            "--table/--no-table",
            help="Fill what is not given from irbis's taxa table of the range's fauna when "
            "the label or scientific name matches an entry.",
        ),
    ] = True,
    as_json: JsonOpt = False,
):
    """Add a species at the end of the list (names and taxon ID from irbis's table when known)."""
    from irbis.store import Project
    from irbis.store import species as sp

    names = _parse_names(vernacular_name)
    with Project.open(project) as p:
        added = sp.add(
            p,
            label,
            scientific_name=scientific or "",
            vernacular_name=vernacular or "",
            key=key or "",
            rank=rank or "",
            taxon_id=taxon_id or "",
            vernacular_names=names,
            use_table=table,
        )
        keyed = next(s for s in sp.choices(p) if s.label == added.label)
    if as_json:
        emit_json(keyed.to_json())
        return
    where = f"key {keyed.key}" if keyed.key else "the species panel (keys 1..9 are taken)"
    err.print(f"added {added.label!r}; in the review app: {where}")
    if added.scientific_name and added.rank:
        tid = added.taxon_id or "no taxon ID (give one with --taxon-id)"
        err.print(f"  {added.scientific_name} ({added.rank}), {tid}")


@species_app.command("edit")
def species_edit(
    project: ProjectArg,
    label: LabelArg,
    scientific: ScientificOpt = None,
    vernacular: VernacularOpt = None,
    key: KeyOpt = None,
    rank: RankOpt = None,
    taxon_id: TaxonIdOpt = None,
    vernacular_name: NamesOpt = None,
    as_json: JsonOpt = False,
):
    """Change a listed species' names, key, rank or taxon ID."""
    from irbis.store import Project
    from irbis.store import species as sp

    names = _parse_names(vernacular_name)
    with Project.open(project) as p:
        changed = sp.edit(
            p,
            label,
            scientific_name=scientific,
            vernacular_name=vernacular,
            key=key,
            rank=rank,
            taxon_id=taxon_id,
            vernacular_names=names,
        )
    if as_json:
        emit_json(changed.to_json())
        return
    err.print(f"changed {changed.label!r}")


@species_app.command("rename")
def species_rename(
    project: ProjectArg,
    old: Annotated[str, typer.Argument(help="The label now.")],
    new: Annotated[str, typer.Argument(help="The new label.")],
    by: Annotated[str | None, typer.Option(help="Who renames (default: this login).")] = None,
    as_json: JsonOpt = False,
):
    """Rename a label in the list and in every observation and individual using it."""
    from irbis.store import Project
    from irbis.store import species as sp

    with Project.open(project) as p:
        res = sp.rename(p, old, new, by=by or getpass.getuser())
    if as_json:
        emit_json(res)
        return
    err.print(
        f"renamed {res['old']!r} to {res['new']!r}: {res['observations']} observations, "
        f"{res['individuals']} individuals (the old label is kept as an alias)"
    )


@species_app.command("remove")
def species_remove(project: ProjectArg, label: LabelArg):
    """Take a species off the list (its observations stay as they are)."""
    from irbis.store import Project
    from irbis.store import species as sp

    with Project.open(project) as p:
        sp.remove(p, label)
    err.print(f"removed {label!r} from the list; its observations are unchanged")
