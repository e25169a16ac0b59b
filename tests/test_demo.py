"""`irbis demo` builds a project from data it generates itself, and can run again."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from irbis.demo.run import run_demo
from irbis.demo.synthetic import CAT_NAMES, make_card, make_network
from irbis.exchange.secr_text import project_records
from irbis.pipeline.identify_stage import run_identify
from irbis.store import Project
from irbis.store.schema import Annotation, Individual


def test_demo_season_end_to_end(tmp_path):
    first = run_demo(tmp_path / "demo", seed=3, n_stations=4, report=False)
    st = first["status"]
    assert st["stations"] == 4 and st["deployments"] == 4
    assert first["ingest"]["new"] == st["media"] > 0
    assert first["ingest"]["rejected"] == 0
    # One camera's clock was reset to 2000 midway: its later files are flagged.
    assert st["flagged"].get("implausible_date", 0) > 0
    assert first["trap_nights"] > 4 * 50
    assert sum(first["independent_records"].values()) > 0

    again = run_demo(tmp_path / "demo", seed=3, n_stations=4, report=False)
    assert again["ingest"]["new"] == 0
    assert again["ingest"]["duplicates"] == first["ingest"]["new"]
    assert again["status"]["media"] == st["media"]


def test_demo_leopards_are_tagged_individuals_near_their_centres(tmp_path):
    """Each snow-leopard burst carries the simulated cat's name, and cats stay local."""
    network = make_network(8, seed=5, start=date(2026, 2, 1), days=60)
    card = make_card(
        tmp_path / "card",
        network,
        seed=5,
        tagged=True,
        individuals=6,
        sigma_m=3000,
        species_weights={"snow leopard": 1.0},
        n_events_per_station=(6, 6),
        burst=1,
    )
    cats = {e.individual for e in card.events}
    assert None not in cats and cats <= set(CAT_NAMES[:6]) and len(cats) >= 3
    # Half-normal use of space: a cat is seen at fewer stations than there are.
    per_cat = {c: {e.station for e in card.events if e.individual == c} for c in cats}
    assert max(len(v) for v in per_cat.values()) < len(network)
    # Without a population nothing changes: same bytes as before the option existed.
    plain = make_card(tmp_path / "plain", network, seed=5, n_events_per_station=(1, 2))
    assert all(e.individual is None for e in plain.events)


def test_demo_writes_a_report_with_the_simulated_cats(tmp_path):
    out = run_demo(tmp_path / "demo", seed=7, n_stations=6, n_leopards=6)
    assert out["report"] and (tmp_path / "demo" / "report.html").stat().st_size > 10_000
    with Project.open(tmp_path / "demo" / "project") as p:
        seen = {r["individual"] for r in project_records(p)}
    assert seen and seen == set(out["estimates"]["individuals"])
    assert seen <= set(CAT_NAMES)
    # Photos tagged by individual are the catalogue the identify stage starts from.
    with Project.open(tmp_path / "demo" / "project") as p:
        res = run_identify(p)
        assert res.catalogue_individuals == len(seen) and res.queried == 0
        with p.session() as s:
            names = set(s.scalars(select(Individual.name)))
            unconfirmed = s.scalars(
                select(Annotation).where(Annotation.individual_id.is_(None))
            ).all()
        assert names == seen and unconfirmed == []
