"""``irbis demo``: a whole (simulated) field season, from cards to a summary.

It grows with irbis: it lays out a station network, writes the memory cards
the cameras would have filled (with a slow clock, a clock reset to 2000 and a
snowed-in camera among them; snow leopards from a simulated population, tagged
by individual as a team that has sorted its photos would), imports the
registry, ingests the cards, imports the season's field records (sign
transects, scat samples with their laboratory genotypes, snares found on
patrol: :mod:`irbis.demo.field`), reports effort and independent records and
writes the census report (``report.html``) with its population estimates and
its snares per patrol effort.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from irbis.demo.synthetic import make_card, make_network, write_registry_csv
from irbis.ingest.effort import project_effort
from irbis.ingest.records import record_table
from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.store import Project
from irbis.store.project import SETTINGS_FILE
from irbis.store.summary import project_status

#: Event mix of the demo: more snow leopards than a real card, so a one-season
#: demo has recaptures to estimate from.
DEMO_SPECIES_WEIGHTS = {
    "blank": 0.45,
    "snow leopard": 0.25,
    "Siberian ibex": 0.12,
    "livestock": 0.07,
    "person": 0.04,
    "argali": 0.04,
    "wolf": 0.03,
}

#: Share of snow-leopard bursts left without an individual's name: the photos
#: a team has not identified yet, for `irbis identify` and the Identify page.
DEMO_UNTAGGED_SHARE = 0.25


def run_demo(
    path: Path | str,
    *,
    seed: int = 7,
    n_stations: int = 12,
    n_leopards: int = 10,
    report: bool = True,
    console: Console | None = None,
) -> dict:
    """Simulate a season in ``path`` and ingest it; safe to run again.

    Parameters
    ----------
    path:
        Folder for the generated card (``path/card``), registry and project
        (``path/project``).
    seed:
        Seed of the simulated survey.
    n_stations:
        Number of camera stations.
    n_leopards:
        Size of the simulated snow-leopard population.
    report:
        Write the census report ``path/report.html``.
    console:
        Where to print progress and tables; ``None`` stays quiet.

    Returns
    -------
    dict
        The project status, effort and record counts.
    """
    root = Path(path).resolve()
    card_dir, proj_dir = root / "card", root / "project"
    network = make_network(n_stations, seed=seed, start=date(2026, 2, 1), days=60)
    registry = write_registry_csv(network, root / "registry.csv")
    if not card_dir.exists():
        card = make_card(
            card_dir,
            network,
            seed=seed,
            tagged=True,
            individuals=n_leopards,
            species_weights=DEMO_SPECIES_WEIGHTS,
            n_events_per_station=(8, 16),
            untagged_share=DEMO_UNTAGGED_SHARE,
        )
        if console:
            console.print(
                f"simulated {len(card.files)} photos from {n_stations} stations in {card_dir}"
            )
    project = (
        Project.open(proj_dir)
        if (proj_dir / SETTINGS_FILE).exists()
        else Project.init(proj_dir, name="Sailyugem demo survey")
    )
    with project:
        import_registry(project, registry)
        if console:
            with Progress(
                TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), console=console
            ) as bar:
                task = bar.add_task("ingest", total=None)
                result = ingest(
                    project,
                    card_dir,
                    layout="station",
                    progress=lambda d, t, _r: bar.update(task, completed=d, total=t),
                )
        else:
            result = ingest(project, card_dir, layout="station")
        field = _field_season(project, network, root / "field", seed=seed, leopards=n_leopards)
        if console:
            console.print(
                f"field season: {field['transects']} transect walks, {field['signs']} signs, "
                f"{field['scat_samples']} scat samples ({field['genotyped']} genotyped), "
                f"{field['snares']} snare finds"
            )
        status = project_status(project)
        unidentified = _unidentified_leopard_media(project)
        op = project_effort(project)
        records = record_table(project, min_delta_min=60, exclude=["blank"])
        made = None
        if report:
            from irbis.reports import build_report

            if console:
                console.print("writing the census report (estimates, maps, plots)...")
            made = build_report(project, root / "report.html")
    nights = dict(zip(op.stations, (float(v) for v in op.trap_nights()), strict=True))
    per_species: dict[str, int] = {}
    for r in records:
        per_species[r["species"]] = per_species.get(r["species"], 0) + 1
    summary = {
        "project": str(proj_dir),
        "ingest": {
            k: v
            for k, v in result.as_dict().items()
            if k not in ("rejected_files", "flagged_files")
        },
        "status": {k: v for k, v in status.items() if k != "per_deployment"},
        "trap_nights": round(sum(nights.values()), 2),
        "independent_records": per_species,
        "unidentified_leopard_media": unidentified,
        "field": field,
        "report": made["html"] if made else None,
        "estimates": _estimates(made["census"]) if made else None,
    }
    if console:
        _print(console, summary, nights)
    return summary


def _field_season(
    project: Project, network: list[dict], folder: Path, *, seed: int, leopards: int
) -> dict[str, int]:
    """Write and import the season's transects, signs, scat samples, snares and lab results."""
    from irbis.demo.field import make_field_tables
    from irbis.demo.synthetic import CAT_NAMES
    from irbis.exchange.field_csv import read_field_table
    from irbis.store.fieldrecords import save_field_records, save_lab_results, save_transects

    cats = [CAT_NAMES[i] if i < len(CAT_NAMES) else f"SL-{i + 1:02d}" for i in range(leopards)]
    tables = make_field_tables(
        network, folder, seed=seed, start=date(2026, 2, 1), days=60, cats=cats
    )
    tr = read_field_table(tables["transects"], kind="transect")
    save_transects(project, tr.transects, "demo", source=str(tables["transects"]))
    recs = read_field_table(tables["records"])
    save_field_records(project, recs.records, "demo", source=str(tables["records"]))
    lab = read_field_table(tables["lab"], kind="lab")
    save_lab_results(project, lab.lab_results, "demo", source=str(tables["lab"]))
    kinds = [r.kind for r in recs.records]
    return {
        "transects": len(tr.transects),
        "signs": kinds.count("sign"),
        "scat_samples": kinds.count("scat_sample"),
        "genotyped": len(lab.lab_results),
        "snares": sum(r.count or 1 for r in recs.records if r.kind == "snare"),
    }


def _unidentified_leopard_media(project: Project) -> int:
    """Snow-leopard photos (trusted time) that no label names an individual on."""
    from sqlalchemy import func, select

    from irbis.store.individuals import names_individual
    from irbis.store.schema import Media, Observation

    with project.session() as s:
        live = (
            Observation.retracted_utc.is_(None),
            func.lower(Observation.species) == "snow leopard",
        )
        leopards = set(
            s.scalars(
                select(Observation.media_id)
                .join(Media, Media.id == Observation.media_id)
                .where(*live, Media.time_flag == "")
            )
        )
        named = set(s.scalars(select(Observation.media_id).where(*live, names_individual())))
    return len(leopards - named)


def _estimates(census: dict) -> dict:
    """The headline numbers of the report's digest (whatever it fitted)."""
    best = census.get("secr_best")
    secr = [r for r in census.get("estimates", []) if r["kind"] == "secr"]
    return {
        "individuals": census.get("individuals", []),
        "secr_best": next((r for r in secr if r["model"] == best), None),
        "secr_reason": census.get("secr_reason"),
        "closed_reason": census.get("closed_reason"),
    }


def _print(console: Console, summary: dict, nights: dict[str, float]) -> None:
    st = summary["status"]
    console.print(
        f"\n[bold]{st['project']}[/]: {st['stations']} stations, {st['media']} photos, "
        f"{st['sequences']} bursts, {st['events']} independent events, "
        f"{summary['trap_nights']:g} trap-nights"
    )
    if st["flagged"]:
        console.print(
            "untrusted camera times (see `irbis ingest --report`): "
            + ", ".join(f"{k} {v}" for k, v in st["flagged"].items())
        )
    table = Table(title="Independent records (60 min)")
    table.add_column("species")
    table.add_column("records", justify="right")
    table.add_column("per 100 trap-nights", justify="right")
    total = summary["trap_nights"] or 1.0
    for sp, n in sorted(summary["independent_records"].items(), key=lambda kv: -kv[1]):
        table.add_row(sp, str(n), f"{100 * n / total:.1f}")
    console.print(table)
    est = summary.get("estimates")
    if est:
        console.print(f"snow leopards identified: {len(est['individuals'])}")
        b = est["secr_best"]
        if b:
            console.print(
                f"density (SECR, {b['model']}): {b['estimate']:.2f} {b['unit']} "
                f"(95% CI {b['lcl']:.2f}-{b['ucl']:.2f})"
            )
        elif est["secr_reason"]:
            console.print(f"no SECR estimate: {est['secr_reason']}")
    if summary.get("report"):
        console.print(f"census report: {summary['report']}")
    project = summary["project"]
    if summary.get("unidentified_leopard_media"):
        console.print(
            f"{summary['unidentified_leopard_media']} snow-leopard photos are not identified yet: "
            f"`irbis identify {project}` proposes who they are, and the Identify page of "
            f"`irbis serve {project}` is where a person decides"
        )
    console.print(f"project folder: {project}  (try `irbis status {project}`)")
    console.print(
        "the irbis command lives in the virtual environment: `source .venv/bin/activate` "
        "first, or run `.venv/bin/irbis`"
    )
