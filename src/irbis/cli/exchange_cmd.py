"""``irbis export camtrapdp`` and ``irbis import camtrapdp``: Camtrap DP out and in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, progress

import_app = typer.Typer(help="Read standard packages into a project.", no_args_is_help=True)


def _blur_writer():
    """A person-blurring copier built on :mod:`irbis.pipeline.media_export`.

    Returns None when that module is not available, and the export then never
    copies a person image.
    """
    try:
        from irbis.pipeline.media_export import write_blurred_copy
    except ImportError:
        return None
    from irbis.core.errors import BadInputError

    def write(src: Path, dst: Path, boxes: list[tuple[float, float, float, float]]) -> bool:
        # A person known without a box (a folder or tag said "human") has no
        # place to blur: blur the whole frame rather than copy it as it is.
        try:
            write_blurred_copy(src, boxes or [(0.0, 0.0, 1.0, 1.0)], dst)
        except (BadInputError, OSError):
            return False
        return True

    return write


def export_camtrapdp_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the package (created).")],
    public: Annotated[
        bool,
        typer.Option(
            "--public/--precise",
            help="Public: generalise coordinates when a sensitive species was seen and leave "
            "out photos of people. Precise: exact data for cleared partners.",
        ),
    ] = True,
    precision_deg: Annotated[
        float | None,
        typer.Option(help="Grid size in degrees for public coordinates (default: project's)."),
    ] = None,
    media_files: Annotated[
        str, typer.Option(help="none: reference the originals; copy: copy them into media/.")
    ] = "none",
    media_base_url: Annotated[
        str | None,
        typer.Option(
            help="With --media-files none: public http(s) address of the media/ folder a "
            "copy export writes; filePath becomes URL/<deploymentID>/<fileName>. Without it "
            "the files are left out (filePath names each by its SHA-256, filePublic false).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the project as a Camtrap DP 1.0.2 package, validated offline."""
    from irbis.exchange.camtrapdp import export_camtrapdp
    from irbis.exchange.camtrapdp_media_links import check_base_url
    from irbis.store import Project

    if media_base_url is not None:
        check_base_url(media_base_url)  # refuse before any progress is drawn
    writer = _blur_writer() if media_files == "copy" else None
    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("export", total=None, file="")

        def tick(step: str, done: int, total: int | None) -> None:
            bar.update(task, description=step, completed=done, total=total)

        res = export_camtrapdp(
            p,
            out_dir,
            public=public,
            precision_deg=precision_deg,
            media_files=media_files,
            media_base_url=media_base_url,
            person_writer=writer,
            progress=tick,
        )
        from irbis.store.audit import add, cli_actor

        add(
            p,
            cli_actor(),
            "export",
            str(Path(res.path).resolve()),
            detail={
                "format": "camtrapdp",
                "public": public,
                "media_files": media_files,
                "deployments": res.deployments,
                "media": res.media,
                "generalised": bool(res.generalised),
            },
        )
    if as_json:
        emit_json(res.as_dict())
        return
    mode = "public" if public else "precise"
    err.print(
        f"{res.path}: valid Camtrap DP ({mode}): {res.deployments} deployments, "
        f"{res.media} media, {res.observations} observations"
    )
    if res.generalised:
        err.print(f"  coordinates generalised to a {res.precision_deg:g} degree grid")
    if res.media_persons_left_out:
        err.print(f"  {res.media_persons_left_out} media showing people left out")
    if res.media_untimed:
        err.print(f"  {res.media_untimed} media without a trusted time left out")
    if res.exif_dropped:
        err.print(f"  exifData of {res.exif_dropped} media was text naming GPS fields: left out")
    for note in res.notes:
        if note.startswith("media: "):
            err.print(f"  {note}")
    if media_files == "copy":
        err.print(
            f"  {res.files_copied} files copied ({res.files_blurred} with people blurred), "
            f"{res.files_not_copied} not copied"
        )


@import_app.command("camtrapdp")
def import_camtrapdp_cmd(
    package: Annotated[Path, typer.Argument(help="Folder of a Camtrap DP package.")],
    project: Annotated[Path, typer.Argument(help="Project folder (created if it is none).")],
    as_json: JsonOpt = False,
) -> None:
    """Import a Camtrap DP package (TRAPPER, Agouti, Timelapse...) into a project.

    With ``--json`` a failure is a JSON document too (``ok`` false, ``error``
    the one-line reason; nothing was stored) and the exit status is 2.
    """
    from irbis.core.errors import IrbisError
    from irbis.exchange.camtrapdp import import_camtrapdp
    from irbis.store import Project
    from irbis.store.project import SETTINGS_FILE

    created = not (project / SETTINGS_FILE).exists()
    try:
        opened = Project.init(project) if created else Project.open(project)
        with opened as p, progress() as bar:
            task = bar.add_task("import", total=None, file="")

            def tick(table: str, done: int, _total: int | None) -> None:
                bar.update(task, description=table, completed=done)

            res = import_camtrapdp(package, p, progress=tick)
    except IrbisError as exc:
        if not as_json:
            raise
        emit_json(
            {
                "ok": False,
                "error": str(exc),
                "package": str(package),
                "project": str(project),
                "project_created": created,
            }
        )
        raise typer.Exit(2) from exc
    data = {"ok": True} | res.as_dict() | {"project_created": created}
    if as_json:
        emit_json(data)
        return
    err.print(
        f"{package}: {res.deployments} deployments, {res.media} media "
        f"({res.media_files_found} files in the package), {res.observations} observations, "
        f"{res.individuals_new} new individuals" + (" (new project)" if created else "")
    )
    for note in res.notes:
        err.print(f"  {note}")
