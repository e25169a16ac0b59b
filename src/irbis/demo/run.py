"""``irbis demo``: a whole (simulated) field season, from cards to a summary.

It grows with irbis: today it lays out a station network, writes the memory
cards the cameras would have filled (with a slow clock, a clock reset to 2000
and a snowed-in camera among them), imports the registry, ingests the cards
and reports effort and independent records.
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


def run_demo(
    path: Path | str, *, seed: int = 7, n_stations: int = 12, console: Console | None = None
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
        card = make_card(card_dir, network, seed=seed, tagged=True)
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
        status = project_status(project)
        op = project_effort(project)
        records = record_table(project, min_delta_min=60, exclude=["blank"])
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
    }
    if console:
        _print(console, summary, nights)
    return summary


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
    console.print(
        f"project folder: {summary['project']}  (try `irbis status {summary['project']}`)"
    )
