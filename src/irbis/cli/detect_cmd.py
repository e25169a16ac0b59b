"""``irbis detect`` and ``irbis models``: the commands of the detect stage.

Wired into :mod:`irbis.cli.app` as::

    from irbis.cli.detect_cmd import detect, models_app
    app.command()(detect)
    app.add_typer(models_app, name="models")

Like every irbis command: progress and messages on stderr, ``--json`` prints
one JSON document on stdout, errors are one line naming what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from irbis.cli.blobs_cmd import BlobsOpt, EndpointOpt, blob_mirror
from irbis.cli.common import JsonOpt, emit_json, err, out, progress, resumable
from irbis.cli.train_cmd import train_app

__all__ = ["detect", "models_app"]


models_app = typer.Typer(
    help="Detector and classifier models: list, install, verify, train.", no_args_is_help=True
)
models_app.add_typer(train_app, name="train")


def detect(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    detector: Annotated[
        str, typer.Option(help="fused (learned + motion, default) or learned (model alone).")
    ] = "fused",
    model: Annotated[
        str | None,
        typer.Option(
            help="Learned detector from `irbis models list` (default: the project's own, "
            "installed by `irbis models train detector`, else mdlite)."
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Operating point of the learned detector.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for inference (default: all usable).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="auto (default: OpenVINO when installed, else ONNX Runtime), onnxruntime "
            "or openvino. Also IRBIS_ENGINE."
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="OpenVINO precision: f32 (default, same numbers as ONNX Runtime), bf16 "
            "(faster on CPUs with AMX / AVX-512 BF16) or auto (bf16 where the CPU has it). "
            "Also IRBIS_PRECISION."
        ),
    ] = None,
    video_every: Annotated[float, typer.Option(help="Seconds between sampled video frames.")] = (
        1.0
    ),
    video_max_frames: Annotated[int, typer.Option(help="Most frames sampled per video.")] = 30,
    limit: Annotated[
        int | None, typer.Option(help="Stop after this many sequences (rerun to continue).")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            envvar="IRBIS_RAY_ADDRESS",
            help="Run on a Ray cluster: its address (auto, ray://host:10001, host:6379), "
            "local (a local Ray, one worker per core) or local:N. The project folder must be "
            "at the same path on every node. Needs irbis[ray]. Also IRBIS_RAY_ADDRESS.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="With --ray: media per Ray task (whole sequences).")
    ] = 64,
    worker_cpus: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --ray: cores per Ray task. 1 (default): one worker per core, each "
            "decoding between inferences; 2 or more: inference threads plus a decoding thread."
        ),
    ] = 1,
    blobs: BlobsOpt = None,
    s3_endpoint: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find animals, people and vehicles; mark blanks. Safe to interrupt and rerun."""
    from irbis.pipeline.detect_stage import detection_status, run_detect
    from irbis.store import Project
    from irbis.vision.sequence import load_sequence_detector

    if detector not in ("fused", "learned"):
        raise typer.BadParameter("--detector must be fused or learned")
    if model is None:
        from irbis.pipeline.train_detector import project_detector

        model = project_detector(project)
    # The model is loaded (and its sha256 checked) before the project's rows are touched.
    seq = load_sequence_detector(
        detector,
        model=model,
        threshold=threshold,
        threads=threads,
        engine=engine,
        precision=precision,
    )
    with Project.open(project) as p:
        with progress() as bar:
            task = bar.add_task("detect", total=None, file="")

            def tick(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, file=name[-40:])

            with resumable("finished sequences are kept"):
                if ray:
                    res = _detect_on_ray(
                        p,
                        seq,
                        ray,
                        kind=detector,
                        model=model,
                        threshold=threshold,
                        threads=threads,
                        engine=engine,
                        precision=precision,
                        progress=tick,
                        video_every_s=video_every,
                        video_max_frames=video_max_frames,
                        limit=limit,
                        batch_size=batch_size,
                        worker_cpus=worker_cpus,
                        blobs=blob_mirror(blobs, s3_endpoint),
                    )
                else:
                    res = run_detect(
                        p,
                        seq,
                        progress=tick,
                        video_every_s=video_every,
                        video_max_frames=video_max_frames,
                        limit=limit,
                    )
        status = detection_status(p, res.detector)
    engine = seq.params.get("engine", "")
    if as_json:
        emit_json({**res.as_dict(), "engine": engine, "status": status})
        return
    err.print(
        f"{res.media_processed} media ({res.frames} frames) in {res.seconds:.1f} s"
        + (f" on {engine}" if engine else "")
        + f", {res.media_done_before} done before; "
        + ", ".join(f"{k} {v}" for k, v in sorted(res.verdicts.items()))
    )
    for e in res.errors[:20]:
        err.print(f"  [red]error[/] {e['error']}")
    aside = status["set_aside"]
    err.print(
        f"set aside as blank: {aside['sequences']} sequences, {aside['frames']} frames"
        + (
            f"; {aside['too_small_frames']} frames too small for the detector to judge (kept)"
            if aside["too_small_frames"]
            else ""
        )
        + "; spot-check some: irbis blanks sample PROJECT"
    )
    table = Table(title=f"Detections ({res.detector})")
    for col in ("station", "media", "blank", "animal", "person", "vehicle", "sequences"):
        table.add_column(col)
    for row in status["per_station"]:
        seqs = ", ".join(f"{k} {v}" for k, v in sorted(row["sequences"].items()))
        table.add_row(
            row["station"],
            str(row["media"]),
            *(str(row.get(k, 0)) for k in ("blank", "animal", "person", "vehicle")),
            seqs,
        )
    out.print(table)


def _detect_on_ray(p: Any, seq: Any, address: str, *, kind: str, model: str, **kw: Any) -> Any:
    """``irbis detect --ray``: the same stage with Ray workers (:mod:`irbis.pipeline.cluster`)."""
    from irbis.pipeline.cluster import DetectorSpec, RayUnavailableError, run_detect_ray
    from irbis.vision.registry import models_dir

    spec = DetectorSpec(
        kind=kind,
        model=model,
        threshold=kw.pop("threshold"),
        threads=kw.pop("threads"),
        engine=kw.pop("engine"),
        precision=kw.pop("precision"),
        root=str(models_dir()),
    )
    try:
        return run_detect_ray(p, spec, address=address, detector=seq, **kw)
    except RayUnavailableError as exc:
        err.print(f"[red]error[/] {exc}")
        raise typer.Exit(2) from exc


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Known and installed models, with licence and state."""
    from irbis.vision.registry import list_models, models_dir
    from irbis.vision.runtime import describe_engines

    rows = list_models()
    engines = describe_engines()
    if as_json:
        emit_json({"models_dir": str(models_dir()), "models": rows, "engines": engines})
        return
    table = Table(title=f"Models ({models_dir()})")
    for col in ("name", "kind", "version", "licence", "status", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"], r["kind"], r["version"], r["licence"], str(r["status"]), r["description"]
        )
    out.print(table)
    for e in engines:
        extra = e.get("precisions", e.get("providers")) or [e.get("error", "unusable")]
        mark = " (used by default)" if e["default"] else ""
        out.print(f"engine {e['name']} {e['version']}{mark}: {', '.join(map(str, extra))}")


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="Model name, e.g. mdlite.")],
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Install from a local file (the zamba wheel or .pth for mdlite; "
            "an .onnx for your own classifier).",
        ),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Your classifier's labels file (one label per line).")
    ] = None,
    licence: Annotated[str, typer.Option(help="Licence of your own model.")] = "unknown",
    force: Annotated[bool, typer.Option(help="Reinstall even if a valid copy is there.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Install a model into the user cache (checked by sha256)."""
    from irbis.vision import registry

    if labels is not None or (from_file is not None and from_file.suffix == ".onnx"):
        if from_file is None or labels is None:
            raise typer.BadParameter("a classifier needs both --from model.onnx and --labels")
        model = registry.add_onnx_classifier(name, from_file, labels, licence=licence)
    else:
        model = registry.install(
            name, source=from_file, force=force, log=lambda m: err.print(f"[dim]{m}[/]")
        )
    if as_json:
        emit_json(model.as_dict())
    else:
        err.print(f"[green]{model.name} {model.version}[/] ({model.licence}) in {model.root}")


@models_app.command("verify")
def models_verify(
    name: Annotated[
        str | None, typer.Argument(help="Model to check (default: every installed model).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash installed models; exit code 1 when one is missing or damaged."""
    from irbis.vision.registry import ModelError, list_models, verify

    names = [name] if name else [r["name"] for r in list_models() if r["status"] != "missing"]
    results = []
    for n in names:
        try:
            m = verify(n)
            results.append({"name": n, "ok": True, "version": m.version, "error": ""})
        except ModelError as exc:
            results.append({"name": n, "ok": False, "version": "", "error": str(exc)})
    if as_json:
        emit_json({"models": results})
    else:
        for r in results:
            if r["ok"]:
                err.print(f"[green]ok[/] {r['name']} {r['version']}")
            else:
                err.print(f"[red]broken[/] {r['error']}")
        if not results:
            err.print("no models installed (see `irbis models list`)")
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)
