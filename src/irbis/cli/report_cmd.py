"""``irbis report PROJECT --out report.html [--pdf report.pdf]``: the census report.

A thin command over :mod:`irbis.reports`: gathers the census (with a progress
bar), writes one self-contained HTML file and, on request, a PDF. Public by
default: stations of sensitive species are generalised unless ``--precise``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irbis.cli.common import JsonOpt, emit_json, err, progress
from irbis.core.errors import IrbisError

__all__ = ["report"]


def report(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML report to write.")] = Path(
        "report.html"
    ),
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Also write this PDF.")] = None,
    public: Annotated[
        bool,
        typer.Option(
            "--public/--precise",
            help="Generalise sensitive species' locations (default), or show them exactly "
            "for cleared readers.",
        ),
    ] = True,
    species: Annotated[
        str | None, typer.Option(help="Species to estimate (default: the main sensitive one).")
    ] = None,
    occasion_days: Annotated[
        int, typer.Option(help="Days per occasion of the closed models (0: about 8 occasions).")
    ] = 0,
    pdf_engine: Annotated[
        str, typer.Option(help="auto (Chromium when installed), chromium or matplotlib.")
    ] = "auto",
    spot_check: Annotated[
        int,
        typer.Option(help="Frames set aside as blank listed at random for a person to check."),
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of that sample (same seed, same frames).")] = 15,
    app_url: Annotated[
        str | None,
        typer.Option(
            help="Address of the review app (e.g. http://127.0.0.1:8765): the spot-check "
            "pages become links to it (default: printed as paths; the file links nowhere)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the census report: one self-contained HTML file (and a PDF)."""
    from irbis.reports.census import gather_census
    from irbis.reports.html import render_html
    from irbis.store import Project

    steps = 10 if pdf is not None else 9
    try:
        with Project.open(project) as p, progress() as bar:
            task = bar.add_task("report", total=steps, file="")

            def tick(step: str, done: int, _total: int) -> None:
                bar.update(task, completed=done, file=step)

            census = gather_census(
                p,
                public=public,
                species=species,
                occasion_days=occasion_days or None,
                progress=tick,
                spot_check_n=spot_check,
                spot_check_seed=seed,
            )
            bar.update(task, completed=7, file="figures")
            html = render_html(
                census,
                app_url=app_url,
                progress=lambda what: bar.update(task, completed=8, file=what),
            )
            tmp = out.with_name(out.name + ".part")
            tmp.write_text(html, encoding="utf-8")
            tmp.replace(out)
            bar.update(task, completed=9, file=str(out))
            made = None
            if pdf is not None:
                from irbis.reports.pdf import write_pdf

                bar.update(task, file="pdf")
                made = write_pdf(census, pdf, html=html, engine=pdf_engine)
                bar.update(task, completed=10, file=str(pdf))
            from irbis.store.audit import add, cli_actor

            add(
                p,
                cli_actor(),
                "export",
                str(out.resolve()),
                detail={"format": "report", "public": public, "pdf": str(pdf) if pdf else None},
            )
    except IrbisError as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    doc = {
        "html": str(out),
        "pdf": made["path"] if made else None,
        "pdf_engine": made["engine"] if made else None,
        **census.to_json(),
    }
    if as_json:
        emit_json(doc)
        return
    edition = "public" if public else "PRECISE"
    err.print(
        f"wrote {out} ({edition} edition, {out.stat().st_size / 1e6:.1f} MB)"
        + (f" and {made['path']} ({made['engine']})" if made else "")
    )
    est = census.estimates
    if est.secr_best:
        d = est.secr[est.secr_best]["derived"]["D_per_100km2"]
        err.print(
            f"{est.species}: D = {d['estimate']:.3g} per 100 km² "
            f"(95% CI {d['lcl']:.3g}–{d['ucl']:.3g}, SECR {est.secr_best})"
        )
    elif est.secr_reason:
        err.print(est.secr_reason)
