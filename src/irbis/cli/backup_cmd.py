"""``irbis backup``, ``irbis restore`` and ``irbis check``: keep the census safe and whole."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, out, progress


def backup(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    dest: Annotated[Path, typer.Argument(help="New folder for the backup.")],
    as_json: JsonOpt = False,
) -> None:
    """Back up the database (a consistent copy) and the originals, with a sha256 manifest."""
    from irbis.store import Project
    from irbis.store.backup import backup_project

    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("backup", total=None, file="")

        def tick(step: str, done: int, total: int | None) -> None:
            bar.update(task, description=step, completed=done, total=total)

        res = backup_project(p, dest, progress=tick)
    if as_json:
        emit_json(res.as_dict())
        return
    rows = sum(res.tables.values())
    err.print(
        f"{res.path}: {res.backend} database ({rows} rows, schema {res.revision}), "
        f"{res.blobs} originals, {res.files} files, {res.bytes / 1e6:.1f} MB "
        "(sha256 of each in manifest.json)"
    )
    if res.referenced:
        err.print(
            f"  {res.referenced} --storage reference originals stay where they are "
            "(listed with their sha256; back them up too)"
        )
    for problem in res.problems:
        err.print(f"  [yellow]{problem}[/]")


def restore(
    backup_dir: Annotated[Path, typer.Argument(help="A folder written by irbis backup.")],
    new_project: Annotated[Path, typer.Argument(help="New project folder to create.")],
    db: Annotated[
        str | None,
        typer.Option("--db", help="An empty PostgreSQL database URL (default: a SQLite file)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every file of a backup against its sha256, then restore it as a new project."""
    from irbis.store.backup import restore_project

    with progress() as bar:
        task = bar.add_task("restore", total=None, file="")

        def tick(step: str, done: int, total: int | None) -> None:
            bar.update(task, description=step, completed=done, total=total)

        res = restore_project(backup_dir, new_project, db_url=db, progress=tick)
    if as_json:
        emit_json(res.as_dict())
        return
    err.print(
        f"{res.path}: restored ({res.backend}), {res.files_verified} files verified, "
        f"{res.blobs} originals, {sum(res.tables.values())} rows"
    )


def check(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    quick: Annotated[
        bool, typer.Option("--quick", help="Sizes only: do not read and hash every original.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check originals against their recorded sha256 and every foreign key; exit 1 on problems."""
    from irbis.store import Project
    from irbis.store.integrity import check_project

    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("check", total=None, file="")

        def tick(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, file=name[-60:])

        rep = check_project(p, hashes=not quick, progress=tick)
    if as_json:
        emit_json(rep.as_dict())
    else:
        for problem in rep.problems:
            out.print(problem["message"], highlight=False, soft_wrap=True)
        what = "sizes" if quick else f"sha256 ({rep.bytes_hashed / 1e6:.1f} MB read)"
        verdict = "[green]ok[/]" if rep.ok else f"[red]{len(rep.problems)} problem(s)[/]"
        err.print(
            f"{rep.media_checked} originals ({what}), {rep.foreign_keys_checked} foreign keys: "
            f"{verdict}"
        )
    if not rep.ok:
        raise typer.Exit(1)
