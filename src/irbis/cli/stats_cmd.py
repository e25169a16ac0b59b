"""``irbis secr fit``, ``irbis cr fit`` and ``irbis export secr``: estimates from the CLI.

Thin commands over :mod:`irbis.stats` (and :mod:`irbis.exchange.secr_text`
for a project's own records). With ``--json`` each prints exactly one JSON
document on stdout; messages go to stderr.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

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


def _fixed_link(fixed: str, link: str) -> dict:
    """``--fixed sigma=3000`` and ``--link D=identity`` as keyword arguments of the fit."""
    out: dict = {}
    for opt, text, conv in (("fixed", fixed, float), ("link", link, str)):
        pairs = {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            k, sep, v = item.partition("=")
            if not sep or not k.strip() or not v.strip():
                raise BadInputError(f"--{opt}", f"{item!r} is not NAME=VALUE", "e.g. sigma=3000")
            try:
                pairs[k.strip()] = conv(v.strip())
            except ValueError:
                raise BadInputError(
                    f"--{opt}", f"{item!r}: {v.strip()!r} is not a number"
                ) from None
        if pairs:
            out[opt] = pairs
    return out


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
        Path | None,
        typer.Option(
            help="captures.csv ([Session,]ID,occasion,trapID[,count]); several sessions "
            "are fitted together (traps.csv and mask.csv may then have a Session column)."
        ),
    ] = None,
    mask: Annotated[
        Path | None, typer.Option(help="mask.csv (x,y[,covs]); default: trap buffer.")
    ] = None,
    detector: Annotated[str, typer.Option(help="proximity, count or multi.")] = "count",
    binom_size: Annotated[
        int, typer.Option(help="count detectors: 0 Poisson, >0 binomial size.")
    ] = 0,
    detectfn: Annotated[
        str,
        typer.Option(help="HN, HR, EX, HHN, HHR, HEX, CHN, WEX, ANN, CLN, CG, HAN, HCG or HVP."),
    ] = "HHN",
    model: Annotated[
        str,
        typer.Option(
            help='Submodels, e.g. "D~1 lambda0~Topo sigma~1"; with several sessions also '
            '"D~Session" (trend) or "D~session" (one density per session).'
        ),
    ] = "",
    likelihood: Annotated[str, typer.Option(help="full (Poisson N) or CL (conditional).")] = "full",
    fixed: Annotated[
        str,
        typer.Option(help='Real parameters held fixed, as secr\'s fixed: "sigma=3000,g0=0.2".'),
    ] = "",
    link: Annotated[
        str,
        typer.Option(help='Links other than secr\'s defaults: "D=identity,g0=cloglog".'),
    ] = "",
    distribution: Annotated[
        str,
        typer.Option(help="N in the mask: poisson (secr's default) or binomial (full likelihood)."),
    ] = "poisson",
    region: Annotated[
        Path | None,
        typer.Option(
            help="A region polygon (GeoJSON or WKT, mask coordinates): expected and realised "
            "N in it, as secr's region.N."
        ),
    ] = None,
    buffer: Annotated[
        float | None,
        typer.Option(
            help="Mask buffer around traps, metres (default: chosen from the fitted sigma, "
            "secr's suggest.buffer rule, as the report does)."
        ),
    ] = None,
    spacing: Annotated[
        float | None,
        typer.Option(help="Mask spacing, metres (default: about 2500 mask points)."),
    ] = None,
    occasion_days: Annotated[int, typer.Option(help="PROJECT: days per occasion.")] = 0,
    species: Annotated[str | None, typer.Option(help="PROJECT: only this species.")] = None,
    sessions: Annotated[
        str | None,
        typer.Option(
            help="PROJECT: split into sessions by year, month, <N>d (blocks of N days) or a "
            "station covariate (e.g. region) and fit them together."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit an SECR model by maximum likelihood (R secr's model, same estimates)."""
    from irbis.stats.secr import secr_fit
    from irbis.stats.secr_data import make_mask, read_captures, read_mask, read_traps

    try:
        extra = _fixed_link(fixed, link)
        if distribution.lower() != "poisson":
            extra["distribution"] = distribution.lower()
        poly = None
        if region is not None:
            from irbis.stats.secr_region import read_region

            poly = read_region(region)
        if project is not None:
            if traps or captures:
                raise BadInputError(
                    "secr fit", "give a PROJECT or --traps/--captures, not both", "pick one"
                )
            from irbis.exchange.secr_text import project_capthist

            if sessions:
                from irbis.exchange.secr_sessions_text import project_sessions

                ss = project_sessions(
                    project, sessions, occasion_days or None, detector=detector, species=species
                )
                _secr_fit_sessions(
                    None, None, mask, detector, binom_size, detectfn, model,
                    likelihood, buffer, spacing, as_json, sessions=ss, extra=extra, region=poly,
                )  # fmt: skip
                return
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
            from irbis.stats.secr_data import file_sessions

            if len(file_sessions(captures)) > 1 or len(file_sessions(traps)) > 1:
                _secr_fit_sessions(
                    traps, captures, mask, detector, binom_size, detectfn, model,
                    likelihood, buffer, spacing, as_json, extra=extra, region=poly,
                )  # fmt: skip
                return
            tr = read_traps(traps)
            ch = read_captures(captures, tr, detector=detector, binom_size=binom_size)
        if binom_size and project is not None:
            ch.binom_size = binom_size
        err.print(
            f"fitting {detectfn} {detector} {model or 'D~1'}: {ch.n} animals, "
            f"{ch.traps.n_traps} traps, {ch.n_occasions} occasions"
        )
        mask_info: dict = {}
        if mask is None and buffer is None:
            from irbis.stats.secr import fit_with_buffer

            fit, m, mask_info = fit_with_buffer(
                ch, model=model or None, detectfn=detectfn, likelihood=likelihood, **extra
            )
            if spacing is not None and spacing != mask_info["spacing"]:
                m = make_mask(ch.traps, mask_info["buffer"], spacing)
                fit = secr_fit(
                    ch, m, model=model or None, detectfn=detectfn, likelihood=likelihood, **extra
                )
                mask_info |= {"spacing": spacing, "points": m.n_points, "area_km2": m.area / 100}
        else:
            if mask is not None:
                m = read_mask(mask)
            else:
                from irbis.stats.secr import mask_spacing

                assert buffer is not None
                m = make_mask(ch.traps, buffer, spacing or mask_spacing(ch.traps, buffer))
            fit = secr_fit(
                ch, m, model=model or None, detectfn=detectfn, likelihood=likelihood, **extra
            )
            mask_info = {
                "buffer": buffer,
                "spacing": m.spacing,
                "points": m.n_points,
                "area_km2": m.area / 100,
                "rule": "file" if mask is not None else "given",
            }
            if mask is None and buffer is not None:
                from irbis.stats.secr import RB_TARGET, buffer_bias

                rb = buffer_bias(fit, [buffer]) if fit.converged else None
                if rb is not None:
                    mask_info["relative_bias"] = float(rb[0])
                    if rb[0] > RB_TARGET:
                        err.print(
                            f"[yellow]warning[/] a {buffer:g} m buffer biases D by about "
                            f"{100 * rb[0]:.2g} %; leave --buffer out to choose one from sigma"
                        )
    except IrbisError as exc:
        _fail(exc)
        return
    doc = fit.to_dict()
    doc["summary"] = ch.summary()
    doc["mask"] = mask_info
    if poly is not None:
        try:
            doc["region_N"] = fit.region_n(poly)
        except IrbisError as exc:
            _fail(exc)
            return
    if as_json:
        emit_json(doc)
        return
    t = Table(title=f"SECR {detectfn} {detector} ({likelihood})")
    for c in ("coefficient", "beta", "SE"):
        t.add_column(c)
    for k, v in doc["beta"].items():
        t.add_row(k, _num(v, 5), _num(doc["beta_se"][k], 5))
    out.print(t)
    r = Table(title="Real parameters (base levels), 95% CI")
    for c in ("parameter", "estimate", "SE", "lcl", "ucl"):
        r.add_column(c)
    for k, v in doc["real"].items():
        r.add_row(k, *(_g(v[x], 5) for x in ("estimate", "se", "lcl", "ucl")))
    dd = doc["derived"]["D_per_100km2"]
    r.add_row("D per 100 km²", *(_g(dd[x], 4) for x in ("estimate", "se", "lcl", "ucl")))
    nn = doc["derived"]["N"]
    r.add_row("N in mask", *(_g(nn[x], 4) for x in ("estimate", "se", "lcl", "ucl")))
    if "region_N" in doc:
        _region_rows(r, doc["region_N"])
    out.print(r)
    if not all(
        math.isfinite(v[x]) for v in (*doc["real"].values(), dd, nn) for x in ("se", "lcl", "ucl")
    ):
        out.print(
            "– : no standard error or interval: the information matrix is singular at the "
            "estimate (too few recaptures, or a parameter at its boundary)"
        )
    for flag in fit.boundary_flags():
        out.print(f"[yellow]{flag}[/]", soft_wrap=True, highlight=False)
    out.print(
        f"logLik {fit.loglik:.4f}  npar {fit.npar}  AIC {fit.aic:.3f}  AICc "
        + (f"{fit.aicc:.3f}" if math.isfinite(fit.aicc) else "– (more parameters than animals)")
        + ("" if fit.converged else "  [red]NOT CONVERGED[/]")
    )
    mi = doc["mask"]
    line = f"mask {mi['points']} points, {mi['spacing']:g} m spacing"
    if mi.get("buffer") is not None:
        line += f", {mi['buffer']:g} m buffer"
    if mi.get("buffer_sigmas"):
        line += f" = {mi['buffer_sigmas']:.1f} sigma (secr's suggest.buffer rule)"
    if mi.get("relative_bias") is not None:
        line += f"; truncation bias of D about {100 * mi['relative_bias']:.2f} %"
    out.print(line)


def _region_rows(table: Any, rn: dict, prefix: str = "") -> None:
    """Rows for secr's region.N (E.N, R.N) and its notes."""
    area = f"{rn['region_km2']:.4g} km²"
    for key, label in (("E.N", "expected N"), ("R.N", "realised N")):
        v = rn[key]
        table.add_row(f"{prefix}{label} in region ({area})",
                      *(_g(v[x], 4) for x in ("estimate", "se", "lcl", "ucl")))  # fmt: skip
    for note in rn["notes"]:
        out.print(f"region: {note}")


def _secr_fit_sessions(
    traps: Path | None,
    captures: Path | None,
    mask: Path | None,
    detector: str,
    binom_size: int,
    detectfn: str,
    model: str,
    likelihood: str,
    buffer: float | None,
    spacing: float | None,
    as_json: bool,
    sessions: Any = None,
    extra: dict | None = None,
    region: Any = None,
) -> None:
    """``irbis secr fit`` on several sessions: from files, or ``sessions`` already built.

    ``extra`` holds ``fixed``/``link``/``distribution`` from the options.
    """
    from irbis.stats.secr import fit_with_buffer, mask_spacing
    from irbis.stats.secr_data import (
        file_sessions,
        make_mask,
        read_mask,
        read_session_captures,
        read_session_masks,
        read_session_traps,
        read_traps,
    )
    from irbis.stats.secr_sessions import fit_sessions

    try:
        if sessions is None:
            assert traps is not None and captures is not None
            tr = read_session_traps(traps) if file_sessions(traps) else read_traps(traps)
            ss = read_session_captures(captures, tr, detector=detector, binom_size=binom_size)
        else:
            ss = sessions
        err.print(
            f"fitting {detectfn} {detector} {model or 'D~1'} over {ss.n_sessions} sessions "
            f"({', '.join(ss.names)}): {ss.n} animals"
        )
        mask_info: dict = {}
        if mask is not None:
            masks = read_session_masks(mask) if file_sessions(mask) else read_mask(mask)
            mask_info = {"rule": "file"}
        else:
            masks = {}
            for name, ch in ss:
                if buffer is None:
                    # secr's suggest.buffer rule on the session's constant model
                    _, m, info = fit_with_buffer(ch, detectfn=detectfn, likelihood=likelihood)
                    if spacing is not None:
                        m = make_mask(ch.traps, info["buffer"], spacing)
                    mask_info[name] = {k: info[k] for k in ("buffer", "rule", "relative_bias")}
                else:
                    m = make_mask(ch.traps, buffer, spacing or mask_spacing(ch.traps, buffer))
                    mask_info[name] = {"buffer": buffer, "rule": "given"}
                mask_info[name] |= {"spacing": m.spacing, "points": m.n_points}
                masks[name] = m
        fit = fit_sessions(
            ss, masks, model=model or None, detectfn=detectfn, likelihood=likelihood,
            **(extra or {}),
        )  # fmt: skip
    except IrbisError as exc:
        _fail(exc)
        return
    doc = fit.to_dict()
    doc["summary"] = ss.summary()
    doc["mask"] = mask_info
    if region is not None:
        try:
            doc["region_N"] = {s: fit.region_n(s, region) for s in fit.sessions}
        except IrbisError as exc:
            _fail(exc)
            return
    if as_json:
        emit_json(doc)
        return
    t = Table(title=f"SECR {detectfn} {detector} ({likelihood}), {ss.n_sessions} sessions")
    for c in ("coefficient", "beta", "SE"):
        t.add_column(c)
    for k, v in doc["beta"].items():
        t.add_row(k, _num(v, 5), _num(doc["beta_se"][k], 5))
    out.print(t)
    r = Table(title="Per session, 95% CI")
    for c in ("session", "n", "D per 100 km²", "lcl", "ucl", "N in mask", "lcl", "ucl"):
        r.add_column(c)
    for s, d in doc["derived"].items():
        dd, nn = d["D_per_100km2"], d["N"]
        r.add_row(
            s,
            str(d["n"]),
            *(_g(dd[x], 4) for x in ("estimate", "lcl", "ucl")),
            *(_g(nn[x], 4) for x in ("estimate", "lcl", "ucl")),
        )
    out.print(r)
    if "region_N" in doc:
        g = Table(title="Region (secr's region.N), 95% CI")
        for c in ("", "estimate", "SE", "lcl", "ucl"):
            g.add_column(c)
        for s, rn in doc["region_N"].items():
            _region_rows(g, rn, prefix=f"{s}: ")
        out.print(g)
    tr_doc = doc["trend"]
    for st in tr_doc["steps"]:
        out.print(
            f"{st['from']} -> {st['to']}: D ratio {_g(st['estimate'], 4)} "
            f"({_g(st['lcl'], 4)} - {_g(st['ucl'], 4)})"
        )
    if "Session" in tr_doc:
        x = tr_doc["Session"]
        out.print(
            f"trend (D~Session): lambda = {_g(x['estimate'], 4)} per session "
            f"({_g(x['lcl'], 4)} - {_g(x['ucl'], 4)})"
        )
    for flag in fit.boundary_flags():
        out.print(f"[yellow]{flag}[/]", soft_wrap=True, highlight=False)
    out.print(
        f"logLik {fit.loglik:.4f}  npar {fit.npar}  AIC {fit.aic:.3f}  AICc "
        + (f"{fit.aicc:.3f}" if math.isfinite(fit.aicc) else "– (more parameters than animals)")
        + ("" if fit.converged else "  [red]NOT CONVERGED[/]")
    )


def export_secr_cmd(
    project: Annotated[Path, typer.Argument(help="Project folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the secr text files.")],
    occasion_days: Annotated[int, typer.Option(help="Days per occasion (0: one occasion).")] = 0,
    species: Annotated[str | None, typer.Option(help="Only this species.")] = None,
    sessions: Annotated[
        str | None,
        typer.Option(
            help="Multi-session files: sessions by year, month, <N>d (blocks of N days) or a "
            "station covariate (e.g. region); one traps file per session."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write capthist and trap files (with usage) that R's read.capthist reads."""
    try:
        if sessions:
            from irbis.exchange.secr_sessions_text import project_sessions, write_session_text

            ss = project_sessions(project, sessions, occasion_days or None, species=species)
            res = write_session_text(ss, out_dir)
            if as_json:
                emit_json(res)
            else:
                err.print(
                    f"wrote {res['captfile']} and {len(res['trapfiles'])} traps files "
                    f"(sessions {', '.join(res['sessions'])})"
                )
                err.print(f"in R: {res['r_call']}")
            return
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
        Path,
        typer.Argument(
            help="A project folder, the capthist.txt `irbis export secr` writes, or a CSV: "
            "ID,occasion rows or an ID,1,2,...,T 0/1 matrix."
        ),
    ],
    models: Annotated[
        str, typer.Option(help="Comma-separated: M0,Mt,Mb,Mh2,Mh_chao,huggins.")
    ] = "M0,Mt,Mb,Mh2,Mh_chao",
    formula: Annotated[str, typer.Option(help='Huggins: e.g. "p~sex"; t for occasions.')] = "",
    occasions: Annotated[
        int, typer.Option(help="ID,occasion layout or capthist.txt: number of occasions.")
    ] = 0,
    occasion_days: Annotated[
        int, typer.Option(help="Project: days per occasion (default: about 8 occasions).")
    ] = 0,
    species: Annotated[str | None, typer.Option(help="Project: only this species.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit closed-population models and rank them by AICc.

    Where an interval or AICc cannot be given, the table says why instead of
    printing a number that is not one.
    """
    from irbis.stats.closed import closed_fit, read_capthist_text, read_cr_history

    try:
        covs: dict = {}
        if histories.is_dir():
            X, source = _project_histories(histories, occasion_days, species)
        elif _is_capthist_text(histories):
            X, _ids = read_capthist_text(histories, occasions or None)
            source = f"{histories} (secr capthist, occasions = {X.shape[1]})"
        else:
            X, _ids, covs = read_cr_history(histories, occasions or None)
            source = str(histories)
        fits = {}
        for m in [s.strip() for s in models.split(",") if s.strip()]:
            fits[m] = closed_fit(X, m, formula=formula or None, covariates=covs)
    except IrbisError as exc:
        _fail(exc)
        return
    from irbis.stats.closed import aicc_table

    ranked = {m: f for m, f in fits.items() if f.aicc_reason() is None}
    table = {r["model"]: r for r in aicc_table(ranked)} if ranked else {}
    doc = {
        "source": source,
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
    notes: list[str] = []

    def note(text: str | None) -> str:
        if text is None:
            return ""
        if text not in notes:
            notes.append(text)
        return f"({notes.index(text) + 1})"

    for m, f in fits.items():
        ci_why, aicc_why = f.interval_reason(), f.aicc_reason()
        t.add_row(
            f.model,
            _num(f.N, 1),
            _num(f.N_se, 1) if ci_why is None else "–",
            f"{f.N_lcl:.1f}-{f.N_ucl:.1f}" if ci_why is None else note(ci_why),
            str(f.npar),
            _num(f.aicc, 2) if aicc_why is None else note(aicc_why),
            f"{table[m]['dAICc']:.2f}" if m in table else "–",
        )
    out.print(t)
    for i, text in enumerate(notes, 1):
        out.print(f"({i}) {text}")


def _num(v: float | None, digits: int) -> str:
    return f"{v:.{digits}f}" if v is not None and math.isfinite(v) else "–"


def _g(v: float | None, digits: int) -> str:
    return f"{v:.{digits}g}" if v is not None and math.isfinite(v) else "–"


def _is_capthist_text(path: Path) -> bool:
    """A secr capthist text file (``Session ID Occasion TrapID`` rows, ``#`` comments)."""
    if path.suffix.lower() == ".csv" or not path.is_file():
        return False
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            if line.strip() and not line.lstrip().startswith("#"):
                return len(line.split()) >= 4 and "," not in line
    return False


def _project_histories(project: Path, occasion_days: int, species: str | None):
    """Closed-model histories of a project's identified animals (trusted times only)."""
    from irbis.exchange.secr_text import project_capthist
    from irbis.ingest.effort import project_effort
    from irbis.reports.census import auto_occasion_days
    from irbis.store import Project

    with Project.open(project) as p:
        k = occasion_days or auto_occasion_days(len(project_effort(p).days))
        ch = project_capthist(p, occasion_days=k, detector="count", species=species)
    X = (ch.counts.sum(axis=2) > 0).astype(int)
    return X, f"{project} ({k}-day occasions{', ' + species if species else ''})"
