"""``irbis secr fit-joint``: one density from camera traps and genotyped scats together.

A thin command over :func:`irbis.exchange.secr_joint_project.project_joint_survey`
and :func:`irbis.stats.secr_joint.fit_joint`. With ``--json`` it prints
exactly one JSON document on stdout; messages go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from irbis.cli.common import emit_json, err, out
from irbis.cli.stats_cmd import JsonOpt, secr_app
from irbis.core.errors import IrbisError


def _survey_mask(survey: Any, buffer: float | None, spacing: float | None) -> Any:
    """A mask within ``buffer`` of any camera or any point of a transect."""
    import numpy as np

    from irbis.stats.secr import initial_buffer, mask_spacing
    from irbis.stats.secr_data import Traps, make_mask
    from irbis.stats.secr_polygon import quadrature

    buf = float(buffer) if buffer else initial_buffer(survey.camera)
    cams = survey.camera.traps.xy
    step = max(buf / 8, 50.0)
    lines = quadrature(survey.search.areas.parts, 1, step, order=1).xy
    pts = np.vstack([cams, lines])
    outline = Traps([f"p{i}" for i in range(len(pts))], pts)
    sp = float(spacing) if spacing else mask_spacing(outline, buf)
    return make_mask(outline, buf, sp), buf


def _audit_export(project: Path, folder: Path, survey: Any) -> None:
    """Precise places left the project: who wrote them where goes into the audit log."""
    from irbis.exchange.secr_text import _as_project
    from irbis.store.audit import add, cli_actor

    proj, opened = _as_project(project)
    try:
        add(proj, cli_actor(), "export", str(Path(folder).resolve()),
            detail={"format": "secr-joint", **survey.summary()})  # fmt: skip
    finally:
        if opened:
            proj.close()


def _survey_from_files(
    traps: Path | None,
    captures: Path | None,
    parts: Path | None,
    search: Path | None,
    detector: str,
    search_detector: str,
) -> tuple[Any, dict[str, Any]]:
    """A joint survey from camera CSVs and secr's polygon/transect text files."""
    from irbis.core.errors import BadInputError
    from irbis.exchange.secr_polygon_text import read_search_files
    from irbis.stats.secr_data import read_captures, read_traps
    from irbis.stats.secr_joint import JointSurvey

    if not (traps and captures and parts and search):
        raise BadInputError(
            "secr fit-joint",
            "give a PROJECT, or --traps, --captures, --search-parts and --search-captures",
            "see irbis secr fit-joint --help",
        )
    tr = read_traps(traps)
    camera = read_captures(captures, tr, detector=detector)
    hist = read_search_files(parts, search, search_detector)
    return JointSurvey(camera=camera, search=hist), {"samples_used": len(hist.xy)}


@secr_app.command("fit-joint")
def secr_fit_joint_cmd(
    project: Annotated[
        Path | None, typer.Argument(help="Project folder (cameras, scat samples, transects).")
    ] = None,
    traps: Annotated[Path | None, typer.Option(help="Without PROJECT: camera traps.csv.")] = None,
    captures: Annotated[
        Path | None, typer.Option(help="Without PROJECT: camera captures.csv.")
    ] = None,
    search_parts: Annotated[
        Path | None,
        typer.Option(help="Without PROJECT: secr polygon/transect file (polyID x y, usage, /)."),
    ] = None,
    search_captures: Annotated[
        Path | None, typer.Option(help="Without PROJECT: secr XY captures (Session ID Occ x y).")
    ] = None,
    search_detector: Annotated[
        str, typer.Option(help="Files: polygon, polygonX, transect or transectX.")
    ] = "transect",
    occasion_days: Annotated[int, typer.Option(help="Camera days per occasion (0: one).")] = 0,
    species: Annotated[
        str | None, typer.Option(help="Only camera records of this species.")
    ] = None,
    detector: Annotated[str, typer.Option(help="Cameras: count, proximity or multi.")] = "count",
    detectfn: Annotated[str, typer.Option(help="HHN, HEX or HHR (both detector types).")] = "HHN",
    unlinked: Annotated[
        bool,
        typer.Option(
            "--unlinked",
            help="Ignore genotype-photo links (secr's multi-session trick with shared D).",
        ),
    ] = False,
    snap_m: Annotated[
        float, typer.Option(help="Move scat samples this close (m) onto their transect.")
    ] = 100.0,
    buffer: Annotated[
        float | None, typer.Option(help="Mask buffer, metres (default: from the cameras).")
    ] = None,
    spacing: Annotated[float | None, typer.Option(help="Mask spacing, metres.")] = None,
    export_r: Annotated[
        Path | None,
        typer.Option(help="Also write secr text files and joint.R (R's shared-D fit) here."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit D~1 to cameras and scat searches together: one density, detection per type.

    From a PROJECT (genotyped scats on sign transects), or from files: camera
    traps/captures CSVs and secr's polygon or transect text files (equal
    animal IDs in the two are one animal unless --unlinked).
    """
    from irbis.exchange.secr_joint_project import project_joint_survey
    from irbis.stats.secr_joint import fit_joint

    try:
        if project is not None:
            survey, info = project_joint_survey(
                project, occasion_days or None, species, snap_m=snap_m, detector=detector
            )
        else:
            survey, info = _survey_from_files(
                traps, captures, search_parts, search_captures, detector, search_detector
            )
        mask, buf = _survey_mask(survey, buffer, spacing)
        fit = fit_joint(survey, mask, detectfn, detectfn, linked=not unlinked)
        written = None
        if export_r is not None:
            from irbis.exchange.secr_polygon_text import write_joint_files

            written = write_joint_files(survey, mask, export_r, detectfn.upper())
            if project is not None:
                _audit_export(project, export_r, survey)
    except IrbisError as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    doc = fit.to_dict()
    doc.update(
        samples=info,
        mask={"points": mask.n_points, "spacing": mask.spacing, "buffer": buf},
        detectfn=detectfn.upper(),
    )
    if written:
        doc["r_files"] = {"folder": str(export_r), "script": written["rfile"]}
    if as_json:
        emit_json(doc)
        return
    s = doc["survey"]
    where = "transects" if survey.search.areas.kind == "transect" else "polygons"
    out.print(
        f"{s['camera_animals']} animals on camera, {s['search_animals']} from scats "
        f"({s['both']} both; {info['samples_used']} samples on {s['search_parts']} {where}); "
        f"{'unlinked' if unlinked else 'linked'} fit, logLik {fit.loglik:.3f}, AIC {fit.aic:.2f}"
    )
    t = Table("parameter", "estimate", "SE", "lcl", "ucl")
    for name, r in doc["real"].items():
        t.add_row(name, *(f"{r[k]:.4g}" for k in ("estimate", "SE", "lcl", "ucl")))
    out.print(t)
    if not fit.converged:
        err.print("[yellow]warning:[/] the information matrix is not positive definite")
