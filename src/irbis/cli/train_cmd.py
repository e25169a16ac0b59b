"""``irbis models train detector`` and ``irbis boxes import``: learning the survey.

Wired into :mod:`irbis.cli.detect_cmd` (``models train``) and :mod:`irbis.cli.app`
(``boxes``).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.blobs_cmd import BlobsOpt, EndpointOpt, blob_mirror
from irbis.cli.common import JsonOpt, RayOpt, emit_json, err, out, progress, ray_errors

__all__ = ["boxes_app", "train_app"]

train_app = typer.Typer(
    help="Tune models on the project's own reviews (needs `pip install irbis[train]`).",
    no_args_is_help=True,
)
boxes_app = typer.Typer(help="Reviewed boxes: what people say is in a frame.", no_args_is_help=True)


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise typer.BadParameter(
            "training needs PyTorch: install the extra with `pip install 'irbis[train]'` "
            "(a CPU build is enough)"
        ) from None


@train_app.command("detector")
def train_detector_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    parent: Annotated[
        str | None,
        typer.Option(help="Model to start from (default: the project's detector, else mdlite)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name of the tuned model (default <project>-detector-vN).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training frames.")] = 8,
    size: Annotated[
        int,
        typer.Option(help="Training input size (multiple of 32; the model still detects at 640)."),
    ] = 416,
    batch: Annotated[int, typer.Option(help="Frames per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 0.002,
    holdout: Annotated[
        float, typer.Option(help="Share of encounters held out to compare before and after.")
    ] = 0.25,
    freeze_backbone: Annotated[
        bool, typer.Option(help="Train only neck and head (faster, usually a little weaker).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split, augmentation and order.")] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all).")] = None,
    install: Annotated[
        bool, typer.Option(help="Install the tuned model when it is not worse than its parent.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune the detector on the project's reviewed boxes; install it unless it is worse.

    Whole encounters are held out; the parent and the tuned model are judged on
    them (a box ON the animal, false boxes per frame). Ctrl-C keeps the last
    completed epoch, which is then measured as usual.
    """
    _need_torch()
    from irbis.pipeline.train_detector import train_project_detector
    from irbis.store import Project
    from irbis.vision.train.detector import TrainConfig

    try:
        config = TrainConfig(
            epochs=epochs,
            image_size=size,
            batch_size=batch,
            lr=lr,
            freeze_backbone=freeze_backbone,
            seed=seed,
            threads=threads or os.cpu_count(),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with Project.open(project) as p, progress() as bar:
        task = bar.add_task("train", total=epochs, file="")

        def tick(r) -> None:  # noqa: ANN001 - EpochReport
            bar.update(
                task,
                completed=r.epoch - 1 + r.step / r.steps,
                file=f"epoch {r.epoch}/{r.epochs} loss {r.loss:.3f} "
                f"{r.images_per_s:.2f} img/s, ~{r.eta_s / 60:.0f} min left",
            )

        outcome = train_project_detector(
            p,
            parent=parent,
            name=name,
            config=config,
            holdout=holdout,
            install=install,
            progress=tick,
        )
    if as_json:
        emit_json(outcome.as_dict())
        return
    b, a = outcome.before, outcome.after
    out.print(
        f"held out: {outcome.held_frames} frames of {outcome.held_encounters} encounters "
        f"(trained on {outcome.train_frames}); parent at score >= "
        f"{outcome.parent_threshold}, tuned at >= {outcome.threshold} "
        "(no more false boxes than the parent)"
    )
    out.print(f"{'':24}{'parent':>10}{'tuned':>10}")
    out.print(f"{'box on the animal':24}{b.box_recall:>10.3f}{a.box_recall:>10.3f}")
    out.print(f"{'false boxes per frame':24}{b.false_per_frame:>10.3f}{a.false_per_frame:>10.3f}")
    out.print(
        f"{'encounters found':24}{b.encounters_found:>10}{a.encounters_found:>10}"
        f"  of {len(a.encounters)}"
    )
    for group, vals in a.by_group.get("lighting", {}).items():
        bv = b.by_group.get("lighting", {}).get(group, {})
        out.print(
            f"{'  ' + group:24}{bv.get('box_recall', 0):>10.3f}{vals['box_recall']:>10.3f}"
            f"  ({vals['frames_with_animal']} frames)"
        )
    for note in outcome.notes:
        err.print(f"[yellow]{note}[/]")
    t = outcome.training
    err.print(
        f"{t['epochs_done']} epochs, {t['seconds_per_image_epoch']:.2f} s per image per epoch"
    )
    if outcome.refused:
        err.print(
            "[red]refused[/]: the tuned model is worse than its parent on held-out encounters: "
            + "; ".join(outcome.refused)
        )
        raise typer.Exit(1)
    if outcome.installed:
        err.print(
            f"[green]installed {outcome.name} {outcome.version}[/]; `irbis detect {project}` "
            "now uses it (its detections are kept apart from the parent's)"
        )
    else:
        err.print("not installed (--no-install)")


@train_app.command("species")
def train_species_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    name: Annotated[
        str | None, typer.Option(help="Name of the model (default <project>-species-vN).")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Below this probability a proposal is 'unknown'.")
    ] = 0.5,
    side: Annotated[int, typer.Option(help="Crop size in pixels (multiple of 14).")] = 168,
    target_accuracy: Annotated[
        float,
        typer.Option(help="Say how many more labelled crops the learning curve needs for this."),
    ] = 0.9,
    install: Annotated[
        bool, typer.Option(help="Install the model and make it the project's species model.")
    ] = True,
    ray: RayOpt = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="With --ray: crops per Ray task (whole files).")
    ] = 16,
    blobs: BlobsOpt = None,
    s3_endpoint: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn species from the project's reviewed labels (no PyTorch needed).

    A logistic regression on crop embeddings (dinov2-s), calibrated on
    held-out encounters, judged with whole encounters and whole stations held
    out; the training summary holds both confusion matrices. With --ray the
    crops not embedded yet are embedded on Ray workers (same embeddings, same
    model); with --blobs too, the workers read the originals from an
    S3-compatible mirror instead of the project folder.
    """
    from irbis.pipeline.species_stage import train_species
    from irbis.store import Project

    with Project.open(project) as p, progress() as bar, ray_errors():
        task = bar.add_task("embed crops", total=None, file="")
        embed_files = None
        if ray:
            from irbis.pipeline.cluster_train import RayEmbedder

            mirror = blob_mirror(blobs, s3_endpoint)
            embed_files = RayEmbedder(ray, batch_size, blobs=mirror, project=p)
        outcome = train_species(
            p,
            name=name,
            threshold=threshold,
            side=side,
            target_accuracy=target_accuracy,
            install=install,
            progress=lambda d, t: bar.update(task, completed=d, total=t),
            embed_files=embed_files,
        )
    if as_json:
        emit_json(outcome.as_dict())
        return
    sm = outcome.summary
    out.print(
        f"{sm['crops']} crops of {len(sm['labels'])} species from {sm['encounters']} "
        f"encounters at {sm['stations']} stations"
    )
    for split, ev in sm["evaluation"].items():
        at = ev["at_threshold"]
        out.print(
            f"held out {split.removeprefix('by_')}: accuracy {ev['accuracy']:.3f} "
            f"(majority {ev['majority_rate']:.3f}), macro F1 {ev['macro_f1']:.3f}; "
            f"p >= {at['threshold']:g}: {at['coverage']:.0%} proposed, "
            f"{at['accuracy_of_proposed']:.3f} of them right"
        )
        labels = ev["labels"]
        out.print("  true \\ said  " + " ".join(f"{lab[:7]:>7}" for lab in labels))
        for lab, row in zip(labels, ev["confusion"], strict=False):
            out.print(f"  {lab[:12]:12} " + " ".join(f"{v:>7}" for v in row))
    lc = sm["learning_curve"]
    if "points" in lc:
        out.print(
            "learning curve (labelled crops: held-out accuracy): "
            + ", ".join(f"{n:.0f}: {a:.3f}" for n, a in lc["points"])
        )
        if lc.get("further_labels") is not None:
            lo, hi = lc["interval_80"]
            out.print(
                f"to reach {lc['target_accuracy']:.0%}: about {lc['further_labels']} more "
                f"labelled crops (80% interval {lo if lo is not None else '?'}"
                f"..{hi if hi is not None else 'never'}; "
                f"{lc['reached_share']:.0%} of bootstrap curves reach it)"
            )
    if lc.get("note"):
        err.print(f"[yellow]learning curve: {lc['note']}[/]")
    for note in outcome.notes:
        err.print(f"[yellow]{note}[/]")
    if outcome.name:
        err.print(
            f"[green]installed {outcome.name} {outcome.version}[/]; "
            f"`irbis classify {project}` proposes species with it"
        )


@train_app.command("reid")
def train_reid_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    install: Annotated[
        bool,
        typer.Option(help="Install the ranking where it beats the untrained one on held-out cats."),
    ] = True,
    ray: RayOpt = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="With --ray: confirmed crops per Ray task.")
    ] = 16,
    blobs: BlobsOpt = None,
    s3_endpoint: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn a reid ranking from the project's confirmed individuals (no PyTorch needed).

    Every confirmed encounter is matched against the other confirmed ones; a
    pair model on the match features is judged leave-one-individual-out and
    used by `irbis identify` only where it ranks held-out cats better. With
    --ray the features and the matching run on Ray workers (same matches, same
    ranking); with --blobs too, the workers read the originals from an
    S3-compatible mirror instead of the project folder.
    """
    from irbis.pipeline.train_reid import train_reid_ranking
    from irbis.store import Project

    with Project.open(project) as p, progress() as bar, ray_errors():
        task = bar.add_task("match confirmed crops", total=None, file="")
        tick = lambda d, t: bar.update(task, completed=d, total=t)  # noqa: E731
        matches = None
        if ray:
            from irbis.pipeline.cluster_train import confirmed_matches_ray

            matches = partial(
                confirmed_matches_ray,
                address=ray,
                batch_size=batch_size,
                blobs=blob_mirror(blobs, s3_endpoint),
            )
        outcome = train_reid_ranking(p, install=install, progress=tick, matches=matches)
    if as_json:
        emit_json(outcome.as_dict())
        return
    sm = outcome.summary
    out.print(
        f"{sm['annotations']} confirmed crops, {sm['encounters']} encounters, "
        f"{sm['individuals']} individuals "
        f"({sm['individuals_with_two_encounters']} seen twice or more)"
    )
    if "held_out" in sm:
        out.print(
            f"{'per encounter, held-out cats':30}{'top-1':>8}{'top-5':>8}{'mAP':>8}{'macro':>8}"
        )
        for m, f in sm["held_out"].items():
            out.print(
                f"{m:30}{f['top1']:>8.3f}{f['top5']:>8.3f}{f['mAP']:>8.3f}{f['macro_top1']:>8.3f}"
            )
    for e in outcome.errors[:10]:
        err.print(f"[yellow]unreadable[/] {e['file']}: {e['error']}")
    colour = "green" if outcome.installed else "yellow"
    err.print(f"[{colour}]{outcome.reason}[/]")


@boxes_app.command("import")
def boxes_import(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    table: Annotated[
        Path,
        typer.Argument(
            help="CSV: file, and x_min,y_min,x_max,y_max or x,y,width,height (fractions); "
            "optional category (animal, person, vehicle, blank)."
        ),
    ],
    by: Annotated[str, typer.Option(help="Who drew the boxes (kept with every row).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Import boxes drawn elsewhere as reviewed boxes (importing twice adds nothing)."""
    from irbis.store import Project
    from irbis.store.boxes import import_boxes_csv

    with Project.open(project) as p, p.session() as s:
        res = import_boxes_csv(s, table, by=by or table.name)
        s.commit()
    data = {
        "added": res.added,
        "unchanged": res.unchanged,
        "frames": res.frames,
        "unmatched": list(res.unmatched),
    }
    if as_json:
        emit_json(data)
        return
    err.print(
        f"{res.added} boxes added, {res.unchanged} already there, on {res.frames} frames"
        + (f"; {len(res.unmatched)} rows name no ingested photo" if res.unmatched else "")
    )
    for name in res.unmatched[:10]:
        err.print(f"  [yellow]not in the project[/] {name}")
