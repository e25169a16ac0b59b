"""``irbis blobs push|check``: the project's originals in an S3-compatible object store."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, out, progress, resumable

if TYPE_CHECKING:
    from irbis.ingest.blob_mirror import BlobMirror

__all__ = ["blob_mirror", "blobs_app"]

blobs_app = typer.Typer(
    help="Mirror the originals in an S3-compatible object store, for Ray workers "
    "without the project folder (irbis detect/identify --ray ... --blobs URL).",
    no_args_is_help=True,
)

UrlArg = Annotated[
    str,
    typer.Argument(
        help="The mirror: s3://BUCKET/PREFIX. Credentials from AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY.",
        envvar="IRBIS_BLOBS_URL",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--s3-endpoint",
        envvar="IRBIS_S3_ENDPOINT",
        help="The S3-compatible server, e.g. http://storage.lan:9000 (MinIO, Ceph, Garage); "
        "none: AWS. Also IRBIS_S3_ENDPOINT.",
    ),
]

#: ``--blobs`` of ``irbis detect|identify|models train reid|species --ray``.
BlobsOpt = Annotated[
    str | None,
    typer.Option(
        "--blobs",
        envvar="IRBIS_BLOBS_URL",
        help="With --ray: workers read the originals from this S3-compatible mirror "
        "(s3://BUCKET/PREFIX, filled by irbis blobs push) into a per-node cache, so "
        "no shared filesystem is needed. Also IRBIS_BLOBS_URL.",
    ),
]


def _mirror(url: str, endpoint: str | None) -> BlobMirror:
    from irbis.ingest.blob_mirror import BlobMirror, BlobMirrorError

    try:
        return BlobMirror.from_url(url, endpoint=endpoint)
    except BlobMirrorError as exc:
        raise typer.BadParameter(str(exc)) from exc


def blob_mirror(url: str | None, endpoint: str | None) -> BlobMirror | None:
    """The mirror of ``--blobs URL`` (``None`` without one) for the ``--ray`` commands."""
    return _mirror(url, endpoint) if url else None


@blobs_app.command("push")
def push_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    url: UrlArg,
    s3_endpoint: EndpointOpt = None,
    threads: Annotated[int, typer.Option(min=1, help="Uploads at a time.")] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Upload the originals the mirror lacks, by sha256. Safe to interrupt and rerun."""
    from irbis.ingest.blob_mirror import BlobMirrorError, push
    from irbis.store import Project

    mirror = _mirror(url, s3_endpoint)
    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("push", total=None, file="")

        def tick(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, file=name[-40:])

        with resumable("uploaded originals are kept"):
            try:
                res = push(p, mirror, progress=tick, threads=threads)
            except BlobMirrorError as exc:
                err.print(f"[red]error[/] {exc}")
                raise typer.Exit(2) from exc
    if as_json:
        emit_json(asdict(res))
    else:
        err.print(
            f"{res.url}: {res.uploaded} uploaded ({res.bytes_uploaded / 1e6:.1f} MB), "
            f"{res.skipped} already there, of {res.media} originals"
        )
        for e in res.errors[:20]:
            err.print(f"  [red]error[/] {e}")
    if res.errors:
        raise typer.Exit(1)


@blobs_app.command("check")
def check_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    url: UrlArg,
    s3_endpoint: EndpointOpt = None,
    deep: Annotated[
        bool, typer.Option(help="Read every object back and check its sha256 (slow).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare the mirror with the project; exit 1 when an original is missing or wrong."""
    from irbis.ingest.blob_mirror import BlobMirrorError, check
    from irbis.store import Project

    mirror = _mirror(url, s3_endpoint)
    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("check", total=None, file="")

        def tick(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, file=name[-40:])

        try:
            res = check(p, mirror, deep=deep, progress=tick)
        except BlobMirrorError as exc:
            err.print(f"[red]error[/] {exc}")
            raise typer.Exit(2) from exc
    if as_json:
        emit_json({**asdict(res), "ok": res.ok})
    else:
        out.print(
            f"{res.url}: {res.present} of {res.media} originals present"
            + (" and checked by sha256" if deep else "")
            + f", {len(res.missing)} missing, {len(res.wrong_size)} of another size"
            + (f", {len(res.corrupt)} corrupt" if deep else "")
            + f"; {res.extra} other objects"
        )
        for line in (res.missing + res.wrong_size + res.corrupt)[:20]:
            err.print(f"  [red]error[/] {line}")
    if not res.ok:
        raise typer.Exit(1)
