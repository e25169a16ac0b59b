"""``irbis identify``: propose who each snow-leopard crop is, for people to confirm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from irbis.cli.blobs_cmd import BlobsOpt, EndpointOpt, blob_mirror
from irbis.cli.common import JsonOpt, emit_json, err, progress, resumable

__all__ = ["identify"]


def identify(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    top: Annotated[int, typer.Option(help="Candidate individuals proposed per crop.")] = 5,
    min_score: Annotated[
        float, typer.Option(help="Smallest detection score used as a crop.")
    ] = 0.1,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            envvar="IRBIS_RAY_ADDRESS",
            help="Match on a Ray cluster: its address (auto, ray://host:10001, host:6379), "
            "local (a local Ray, one worker per core) or local:N. The project folder must be "
            "at the same path on every node. Needs irbis[ray]. Also IRBIS_RAY_ADDRESS.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="With --ray: crops per Ray task (whole bursts).")
    ] = 16,
    blobs: BlobsOpt = None,
    s3_endpoint: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Match every unconfirmed snow-leopard crop against the catalogue of confirmed ones.

    Proposals (ranked candidates with matched keypoints, or "new individual")
    are stored for review in `irbis serve`; people's decisions are never
    changed. Safe to interrupt and rerun.
    """
    from irbis.pipeline.identify_stage import run_identify
    from irbis.store import Project

    if top < 1:
        raise typer.BadParameter("--top must be at least 1")
    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("identify", total=None, file="")

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        with resumable("proposals made so far are kept"):
            if ray:
                res = _identify_on_ray(
                    p,
                    ray,
                    top=top,
                    min_score=min_score,
                    progress=tick,
                    batch_size=batch_size,
                    blobs=blob_mirror(blobs, s3_endpoint),
                )
            else:
                res = run_identify(p, top=top, min_score=min_score, progress=tick)
    if as_json:
        emit_json(res.as_dict())
        return
    err.print(
        f"{res.annotations_created} new crops; catalogue {res.catalogue_annotations} crops of "
        f"{res.catalogue_individuals} individuals; {res.queried} matched "
        f"(same {res.proposed_same}, new {res.proposed_new}, unsure {res.unsure}), "
        f"{res.skipped} already proposed"
    )
    for e in res.errors[:20]:
        err.print(f"  [red]error[/] {e['file']}: {e['error']}")


def _identify_on_ray(p: Any, address: str, **kw: Any) -> Any:
    """``irbis identify --ray``: the same stage with Ray workers matching."""
    from irbis.pipeline.cluster import RayUnavailableError
    from irbis.pipeline.cluster_identify import run_identify_ray

    try:
        return run_identify_ray(p, address=address, **kw)
    except RayUnavailableError as exc:
        err.print(f"[red]error[/] {exc}")
        raise typer.Exit(2) from exc
