"""``irbis secr fit``, ``irbis cr fit`` and ``irbis export secr``: estimates from the CLI.

Thin commands over :mod:`irbis.stats` (and :mod:`irbis.exchange.secr_text`
for a project's own records). With ``--json`` each prints exactly one JSON
document on stdout; messages go to stderr.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irbis.cli.common import emit_json, err, out
from irbis.core.errors import BadInputError, IrbisError

secr_app = typer.Typer(
    help="Spatially explicit capture-recapture (density of identified animals).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cr_app = typer.Typer(
    help="Closed-population capture-recapture (M0, Mt, Mb, Mh, Huggins).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@secr_app.callback()
def _secr_group() -> None:
    """Spatially explicit capture-recapture (density of identified animals)."""


@cr_app.callback()
def _cr_group() -> None:
    """Closed-population capture-recapture (M0, Mt, Mb, Mh, Huggins)."""


def _fail(exc: IrbisError) -> None:
    err.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


@secr_app.command("fit")
def secr_fit_cmd(
    project: Annotated[
        Path | None,
        typer.Argument(help="Project folder: build histories from its identified animals."),
    ] = None,
    traps: Annotated[
        Path | None, typer.Option(help="traps.csv (trapID,x,y[,usage_k][,covs]).")
    ] = None,
    captures: Annotated[
        Path | None, typer.Option(help="captures.csv (ID,occasion,trapID[,count]).")
    ] = None,
    mask: Annotated[
        Path | None, typer.Option(help="mask.csv (x,y[,covs]); default: trap buffer.")
    ] = None,
    detector: Annotated[str, typer.Option(help="proximity, count or multi.")] = "count",
    binom_size: Annotated[
        int, typer.Option(help="count detectors: 0 Poisson, >0 binomial size.")
    ] = 0,
    detectfn: Annotated[str, typer.Option(help="HN, HR, EX, HHN, HHR or HEX.")] = "HHN",
    model: Annotated[str, typer.Option(help='Submodels, e.g. "D~1 lambda0~Topo sigma~1".')] = "",
    likelihood: Annotated[str, typer.Option(help="full (Poisson N) or CL (conditional).")] = "full",
    buffer: Annotated[float, typer.Option(help="Mask buffer around traps, metres.")] = 20000.0,
    spacing: Annotated[float, typer.Option(help="Mask spacing, metres (built masks).")] = 1000.0,
    occasion_days: Annotated[int, typer.Option(help="PROJECT: days per occasion.")] = 0,
    species: Annotated[str | None, typer.Option(help="PROJECT: only this species.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit an SECR model by maximum likelihood (R secr's model, same estimates)."""
    from irbis.stats.secr import secr_fit
    from irbis.stats.secr_data import make_mask, read_captures, read_mask, read_traps

    try:
        if project is not None:
            if traps or captures:
                raise BadInputError(
                    "secr fit", "give a PROJECT or --traps/--captures, not both", "pick one"
                )
            from irbis.exchange.secr_text import project_capthist

            ch = project_capthist(
                project,
                occasion_days=occasion_days or None,
                detector=detector,
                species=species,
            )
        else:
            if traps is None or captures is None:
                raise BadInputError(
                    "secr fit", "--traps and --captures are required", "or give a PROJECT folder"
                )
            tr = read_traps(traps)
            ch = read_captures(captures, tr, detector=detector, binom_size=binom_size)
        if binom_size and project is not None:
            ch.binom_size = binom_size
        m = read_mask(mask) if mask is not None else make_mask(ch.traps, buffer, spacing)
        err.print(
            f"fitting {detectfn} {detector} {model or 'D~1'}: {ch.n} animals, "
            f"{ch.traps.n_traps} traps, {ch.n_occasions} occasions, {m.n_points} mask points"
        )
        fit = secr_fit(ch, m, model=model or None, detectfn=detectfn, likelihood=likelihood)
    except IrbisError as exc:
        _fail(exc)
        return
    doc = fit.to_dict()
    doc["summary"] = ch.summary()
    if as_json:
        emit_json(doc)
        return
    t = Table(title=f"SECR {detectfn} {detector} ({likelihood})")
    for c in ("coefficient", "beta", "SE"):
        t.add_column(c)
    for k, v in doc["beta"].items():
        t.add_row(k, f"{v:.5f}", f"{doc['beta_se'][k]:.5f}")
    out.print(t)
    r = Table(title="Real parameters (base levels), 95% CI")
    for c in ("parameter", "estimate", "SE", "lcl", "ucl"):
        r.add_column(c)
    for k, v in doc["real"].items():
        r.add_row(k, *(f"{v[x]:.5g}" for x in ("estimate", "se", "lcl", "ucl")))
    dd = doc["derived"]["D_per_100km2"]
    r.add_row("D per 100 km²", *(f"{dd[x]:.4g}" for x in ("estimate", "se", "lcl", "ucl")))
    nn = doc["derived"]["N"]
    r.add_row("N in mask", *(f"{nn[x]:.4g}" for x in ("estimate", "se", "lcl", "ucl")))
    out.print(r)
    out.print(
        f"logLik {fit.loglik:.4f}  npar {fit.npar}  AIC {fit.aic:.3f}  AICc {fit.aicc:.3f}"
        + ("" if fit.converged else "  [red]NOT CONVERGED[/]")
    )


def export_secr_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the secr text files.")],
    occasion_days: Annotated[int, typer.Option(help="Days per occasion (0: one occasion).")] = 0,
    species: Annotated[str | None, typer.Option(help="Only this species.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write capthist and trap files (with usage) that R's read.capthist reads."""
    try:
        from irbis.exchange.secr_text import export_secr

        res = export_secr(project, out_dir, occasion_days or None, species=species)
    except IrbisError as exc:
        _fail(exc)
        return
    if as_json:
        emit_json(res)
    else:
        err.print(
            f"wrote {res['captfile']} and {res['trapfile']} "
            f"({res['animals']} animals, {res['occasions']} occasions)"
        )
        err.print(f"in R: {res['r_call']}")


@cr_app.command("fit")
def cr_fit_cmd(
    histories: Annotated[
        Path, typer.Argument(help="CSV: ID,occasion rows, or an ID,1,2,...,T 0/1 matrix.")
    ],
    models: Annotated[
        str, typer.Option(help="Comma-separated: M0,Mt,Mb,Mh2,Mh_chao,huggins.")
    ] = "M0,Mt,Mb,Mh2,Mh_chao",
    formula: Annotated[str, typer.Option(help='Huggins: e.g. "p~sex"; t for occasions.')] = "",
    occasions: Annotated[int, typer.Option(help="ID,occasion layout: number of occasions.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Fit closed-population models and rank them by AICc."""
    from irbis.stats.closed import closed_fit, read_cr_history

    try:
        X, _ids, covs = read_cr_history(histories, occasions or None)
        fits = {}
        for m in [s.strip() for s in models.split(",") if s.strip()]:
            fits[m] = closed_fit(X, m, formula=formula or None, covariates=covs)
    except IrbisError as exc:
        _fail(exc)
        return
    from irbis.stats.closed import aicc_table

    table = {r["model"]: r for r in aicc_table(fits)}
    doc = {
        "n": int(X.shape[0]),
        "occasions": int(X.shape[1]),
        "models": [
            f.to_dict()
            | {
                "likelihood": table[m]["likelihood"] if m in table else None,
                "dAICc": table[m]["dAICc"] if m in table else None,
                "AICcwt": table[m]["AICcwt"] if m in table else None,
            }
            for m, f in fits.items()
        ],
    }
    if as_json:
        emit_json(doc)
        return
    t = Table(title=f"Closed population: {doc['n']} animals, {doc['occasions']} occasions")
    for c in ("model", "N", "SE", "95% CI", "npar", "AICc", "dAICc"):
        t.add_column(c)
    for m, f in fits.items():
        d = table[m]["dAICc"] if m in table else math.nan
        t.add_row(
            f.model,
            f"{f.N:.1f}",
            f"{f.N_se:.1f}",
            f"{f.N_lcl:.1f}-{f.N_ucl:.1f}",
            str(f.npar),
            f"{f.aicc:.2f}",
            f"{d:.2f}",
        )
    out.print(t)
