"""The census report: what it says equals what irbis computes, it is one offline file,
and its public edition hides sensitive locations.

Projects are built in the test: a simulated season (the demo generator's network
and cards, ingested for real) whose snow-leopard bursts are then identified as
individuals by a reviewer, the way the web app records it (Individual rows,
observations naming the animal, flank annotations); and the camtrapR sample
cards, real images with camtrapR's own results to compare with.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from irbis.core.sensitivity import snap
from irbis.demo.synthetic import make_card, make_network, write_registry_csv
from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.reports.census import density_surface, gather_census, secr_mask_geometry
from irbis.reports.html import render_html
from irbis.store.schema import Annotation, Deployment, Individual, Media, Observation, Station

from .conftest import need_data

N_ANIMALS = 9


def build_leopard_season(root: Path, project, *, seed: int = 5, n_stations: int = 8) -> list:
    """A simulated season with identified snow leopards; returns the station network.

    Every snow-leopard burst is assigned to one of ``N_ANIMALS`` animals whose
    activity centres lie near the stations (the nearer, the likelier), so that
    animals are recaptured, some at several stations.
    """
    network = make_network(n_stations, seed=seed, start=date(2026, 2, 1), days=60)
    registry = write_registry_csv(network, root / "registry.csv")
    make_card(
        root / "card",
        network,
        seed=seed,
        tagged=True,
        image_size=(320, 240),
        burst=2,
        n_events_per_station=(5, 9),
        species_weights={"snow leopard": 0.5, "Siberian ibex": 0.25, "blank": 0.15, "person": 0.1},
    )
    import_registry(project, registry)
    ingest(project, root / "card", layout="station", workers=1)
    rng = np.random.default_rng(seed)
    xy = {st["station"]: np.array([st["x"], st["y"]]) for st in network}
    names = sorted(xy)
    centres = [
        xy[names[i % len(names)]] + rng.normal(0, 2000, 2) for i in rng.permutation(N_ANIMALS)
    ]
    now = datetime(2026, 5, 1)
    with project.session() as s, s.begin():
        animals = [
            Individual(
                name=f"SL{i + 1:02d}",
                species="snow leopard",
                sex=("female", "male")[i % 2],
                created_utc=now,
            )
            for i in range(N_ANIMALS)
        ]
        s.add_all(animals)
        s.flush()
        rows = s.execute(
            select(Media.id, Media.sequence_id, Station.name)
            .join(Observation, Observation.media_id == Media.id)
            .join(Deployment, Deployment.id == Media.deployment_id)
            .join(Station, Station.id == Deployment.station_id)
            .where(Observation.species == "snow leopard")
            .order_by(Media.id)
        ).all()
        bursts: dict[tuple, list[int]] = {}
        for mid, seq, st in rows:
            bursts.setdefault((seq, st), []).append(mid)
        for (_seq, st), mids in sorted(bursts.items(), key=lambda kv: kv[1][0]):
            d2 = np.array([((xy[st] - c) ** 2).sum() for c in centres])
            w = np.exp(-d2 / (2 * 4000.0**2)) + 1e-12
            who = animals[int(rng.choice(N_ANIMALS, p=w / w.sum()))]
            side = str(rng.choice(["left", "right"]))
            for mid in mids:
                s.add(
                    Observation(
                        media_id=mid,
                        species="snow leopard",
                        individual=who.name,
                        individual_id=who.id,
                        side=side,
                        source="human",
                        by="reviewer",
                        created_utc=now,
                    )
                )
                s.add(
                    Annotation(
                        media_id=mid,
                        x=0.2,
                        y=0.3,
                        width=0.5,
                        height=0.4,
                        side=side,
                        quality=float(rng.uniform(0.3, 1.0)),
                        individual_id=who.id,
                        by="reviewer",
                        created_utc=now,
                    )
                )
    return network


class _Refs(HTMLParser):
    """Every src/href/srcset/poster/data attribute value, and <link>/<script> tags."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images += 1
        for k, v in attrs:
            if k in ("src", "href", "srcset", "poster", "data", "action", "xlink:href"):
                self.refs.append((tag, k, v or ""))


def assert_self_contained(html: str) -> _Refs:
    """No reference of any kind leaves the file: only data: URIs and #fragments."""
    p = _Refs()
    p.feed(html)
    for tag, attr, value in p.refs:
        assert value.startswith("data:") or value.startswith("#"), (tag, attr, value[:80])
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    bare = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", html)
    assert "url(" not in bare and "@import" not in bare
    assert "http:" not in bare and "https:" not in bare and "file:" not in bare
    return p


def estimate_rows(html: str) -> dict[tuple[str, str], dict[str, float]]:
    """The estimate rows of the report, read back from their data-* attributes."""
    out = {}
    for m in re.finditer(r'<tr class="estimate[^"]*"([^>]*)>', html):
        attrs = dict(re.findall(r'data-([a-z0-9]+)="([^"]*)"', m.group(1)))
        out[(attrs["kind"], attrs["model"])] = {
            k: float(v) if v else math.nan for k, v in attrs.items() if k not in ("kind", "model")
        }
    return out


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=1e-12)


def test_report_estimates_match_irbis_stats(project, tmp_path):
    """Closed-model and SECR numbers printed in the report are irbis.stats' own fits."""
    from irbis.exchange.secr_text import project_capthist
    from irbis.ingest.effort import project_effort
    from irbis.ingest.records import record_table
    from irbis.stats import secr
    from irbis.stats.closed import closed_fit

    build_leopard_season(tmp_path, project)
    census = gather_census(project, public=False)
    html = render_html(census)
    assert_self_contained(html)
    est = census.estimates
    assert census.main_species == "snow leopard" and est.species == "snow leopard"
    assert est.closed and est.secr, (est.closed_reason, est.secr_reason)

    # Closed models, refitted directly on the same histories.
    ch = project_capthist(project, occasion_days=est.occasion_days, species="snow leopard")
    X = (ch.counts.sum(axis=2) > 0).astype(int)
    assert X.shape[1] == est.n_occasions >= 2
    rows = estimate_rows(html)
    for m in est.closed:
        f = closed_fit(X, m)
        got = rows[("closed", m)]
        for key, want in (("estimate", f.N), ("lcl", f.N_lcl), ("ucl", f.N_ucl), ("se", f.N_se)):
            assert close(got[key], want), (m, key, got[key], want)
        # the table's N is >= the number of animals caught
        assert X.shape[0] - 1e-6 <= f.N

    # SECR, refitted directly on the same capture histories and mask.
    ch1 = project_capthist(project, species="snow leopard")
    first = next(iter(est.secr))
    _, mask, info = secr.fit_with_buffer(ch1, detectfn=first)
    assert info == est.mask
    # the buffer is chosen from sigma-hat: secr's suggest.buffer rule at 0.1 % bias
    assert info["rule"] == "suggest.buffer" and info["relative_bias"] <= info["rb_target"]
    assert 2.5 < info["buffer_sigmas"] < 6.0
    assert secr_mask_geometry(ch1)[0] == info["initial_buffer"]
    fits = {fn: secr.fit(ch1, mask, detectfn=fn) for fn in est.secr}
    for fn, f in fits.items():
        d = f.derived()["D_per_100km2"]
        got = rows[("secr", fn)]
        for key in ("estimate", "lcl", "ucl", "se"):
            assert close(got[key], d[key], rel=1e-6), (fn, key, got[key], d[key])
    table = secr.model_table(fits)
    assert est.secr_best == table[0]["name"]
    assert [r["name"] for r in est.secr_table] == [r["name"] for r in table]
    # the density surface holds the detected animals plus the expected missed ones
    best = fits[est.secr_best]
    surf = density_surface(best)
    logq = best.lik.components(best.beta)[1]
    missed = float(np.exp(best.lik.log_d(best.beta) + logq).sum() * mask.cell_area)
    assert surf.sum() * mask.cell_area == pytest.approx(ch1.n + missed, rel=1e-9)
    assert np.allclose(est.density_per_100km2, surf * 1e4)

    # Relative abundance = independent records / trap-nights * 100, per species.
    nights = float(project_effort(project).trap_nights().sum())
    recs = record_table(project, min_delta_min=project.settings.event_gap_min)
    for r in census.species_rai:
        n = sum(1 for x in recs if x["species"] == r["species"])
        assert r["records"] == n and r["per_100"] == pytest.approx(100 * n / nights)
        m = re.search(rf'data-species="{re.escape(r["species"])}" data-records="(\d+)"', html)
        assert m and int(m.group(1)) == n
    assert "60 minutes" in html  # the independence interval is stated

    # The catalogue shows every animal with flank photos, inline and downscaled.
    assert len(census.catalogue) == N_ANIMALS
    cards = re.findall(r'<div class="card" data-individual="(SL\d\d)">', html)
    assert cards and set(cards) == {c["name"] for c in census.catalogue}
    assert html.count("data:image/jpeg;base64,") >= len(cards)
    # methods cite what was fitted, and only that
    methods = " ".join(census.methods)
    assert "Otis et al." in methods and "Borchers & Efford 2008" in methods
    assert "HHN" in methods and f"{est.occasion_days} days" in methods

    # Occupancy per species: the table's psi is irbis.stats' fit on the same histories.
    from irbis.stats.occupancy import detection_histories, occupancy_fit

    op = project_effort(project)
    fitted = [r for r in census.community if "psi" in r]
    assert fitted and "MacKenzie et al. (2002)" in methods
    for r in fitted:
        daily = np.zeros((len(op.stations), len(op.days)))
        for x in recs:
            day = datetime.fromisoformat(x["time"]).date()
            if x["species"] == r["species"] and day in op.days:
                daily[op.stations.index(x["station"]), op.days.index(day)] += 1
        y = detection_histories(daily, np.nan_to_num(op.values), census.community_occasion_days)
        assert r["psi"] == pytest.approx(occupancy_fit(y).psi_mean, rel=1e-6)
        assert f'data-species="{r["species"]}" data-psi=' in html


def test_public_report_hides_sensitive_locations(project, tmp_path):
    """Public edition: nothing finer than the policy's cell for snow-leopard stations."""
    from irbis.reports.geo import frame_for
    from irbis.reports.maps import map_points

    network = build_leopard_season(tmp_path, project, seed=11, n_stations=6)
    public = gather_census(project, public=True)
    precise = gather_census(project, public=False)
    policy = public.policy
    sensitive = [st for st in precise.stations if st["sensitive"]]
    assert sensitive, "the season must have snow-leopard stations"
    frame, _ = frame_for(precise.stations)
    assert frame.crs == "EPSG:32646"

    def on_grid(x: np.ndarray, y: np.ndarray) -> None:
        lon, lat = frame.to_lonlat(np.asarray(x), np.asarray(y))
        for lo, la in zip(lon, lat, strict=True):
            assert la == pytest.approx(snap(la, policy.precision_deg), abs=1e-6)
            assert lo == pytest.approx(snap(lo, policy.precision_deg), abs=1e-6)

    by_name = {st["name"]: st for st in public.stations}
    for st in sensitive:
        pub = by_name[st["name"]]
        assert pub["generalised"] and pub["lon"] is None and pub["elevation"] is None
        on_grid([pub["map_x"], pub["x"], pub["px"]], [pub["map_y"], pub["y"], pub["py"]])
        # and it really moved: no longer at the station, but within its cell
        assert (pub["map_x"], pub["map_y"]) != (st["x"], st["y"])
        assert math.dist((pub["map_x"], pub["map_y"]), (st["x"], st["y"])) < 12_000
    # what the effort map draws for sensitive stations is on the grid
    drawn = [p for p in map_points(public) if p["generalised"]]
    assert drawn
    on_grid([p["x"] for p in drawn], [p["y"] for p in drawn])
    # the SECR traps and the density surface: cells only
    est = public.estimates
    assert est.secr, est.secr_reason
    assert est.density_xy is None and est.density_cells
    on_grid(est.trap_xy[:, 0], est.trap_xy[:, 1])
    on_grid(
        frame.from_lonlat(*np.array([c["key"] for c in est.density_cells]).T)[0],
        frame.from_lonlat(*np.array([c["key"] for c in est.density_cells]).T)[1],
    )
    # precise numbers appear in the precise edition and nowhere in the public one
    html_pub, html_pre = render_html(public), render_html(precise)
    strip = lambda h: re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", h)  # noqa: E731
    pub_text, pre_text = strip(html_pub), strip(html_pre)
    coords = {st["station"]: (st["x"], st["y"]) for st in network}
    for st in sensitive:
        x, y = coords[st["name"]]
        assert f"{x:.0f}" in pre_text and f"{y:.0f}" in pre_text
        for v in (x, y):
            for fmt in (f"{v:.0f}", f"{v:.1f}", f"{v / 1000:.1f}", f"{v / 1000:.2f}"):
                assert fmt not in pub_text, fmt
    assert "Public edition" in html_pub and "Precise edition" in html_pre
    # same estimates, coarser maps
    np.testing.assert_equal(public.estimate_rows(), precise.estimate_rows())

    # Estimates of a species that is not sensitive still draw every trap: in a
    # public census the stations of the sensitive one (here ibex, by setting)
    # must not show through the density map.
    project.settings.extra["sensitive_species"] = ["Siberian ibex"]
    other = gather_census(project, public=True, species="snow leopard")
    assert any(st["sensitive"] for st in other.stations)
    assert other.estimates.trap_xy is not None and other.estimates.density_xy is None
    on_grid(other.estimates.trap_xy[:, 0], other.estimates.trap_xy[:, 1])


def test_public_report_prints_no_coordinate_of_an_unmapped_sensitive_station(project, tmp_path):
    """A sensitive station with only the other kind of coordinates is not printed either."""
    from irbis.store.schema import Station

    build_leopard_season(tmp_path, project, seed=11, n_stations=6)
    name = next(
        st["name"] for st in gather_census(project, public=False).stations if st["sensitive"]
    )
    with project.session() as s:
        # most stations in lon/lat only; one leopard station keeps x/y only
        for st in s.scalars(select(Station)):
            if st.name == name:
                st.lon = st.lat = None
                x, y = st.x, st.y
            else:
                st.lon, st.lat = 87.6 + 0.01 * st.id, 49.8 + 0.01 * st.id
                st.x = st.y = None
        s.commit()
    census = gather_census(project, public=True)
    st = next(r for r in census.stations if r["name"] == name)
    assert st["sensitive"] and st["x"] is None and st["y"] is None and st["elevation"] is None
    html = render_html(census)
    assert f"{x:.0f}" not in html and f"{y:.0f}" not in html


def test_report_without_identified_animals_says_why(project, tmp_path):
    """Real camtrapR cards, sorted by species: abundance equals camtrapR's, no estimate."""
    import_registry(
        project,
        need_data("cameratrap", "camtrapR", "oracle", "camtraps.csv"),
        date_format="%d/%m/%Y",
    )
    card = need_data("cameratrap", "camtrapR", "pictures", "sample_images_species_dir")
    ingest(project, card, layout="station/species", workers=1)
    census = gather_census(project)
    html = render_html(census)
    assert_self_contained(html)
    with open(need_data("cameratrap", "camtrapR", "oracle", "recordTableSample.csv")) as fh:
        want = list(csv.DictReader(fh))
    # camtrapR's effort for these stations: 42 + 43 + 37.5 camera-days
    assert census.summary["trap_nights"] == pytest.approx(122.5)
    got = {r["species"]: r for r in census.species_rai}
    for sp in {w["Species"] for w in want}:
        n = sum(1 for w in want if w["Species"] == sp)
        assert got[sp]["records"] == n
        assert got[sp]["per_100"] == pytest.approx(100 * n / 122.5)
    assert set(got) - {w["Species"] for w in want} <= {"UNID"}
    est = census.estimates
    assert not est.closed and not est.secr
    assert "identified individually" in est.closed_reason
    assert est.secr_reason in html and 'id="secr-reason"' in html
    assert census.catalogue == []


def test_report_camtrapr_tagged_leopard_cats(project, tmp_path):
    """Real XMP-tagged leopard cats: the catalogue shows them; estimates or a reason."""
    from irbis.exchange.secr_text import project_capthist

    root = need_data("cameratrap", "camtrapR")
    cats = need_data("cameratrap", "camtrapR", "pictures", "sample_images_indiv_tag", "LeopardCat")
    import_registry(project, root / "oracle" / "camtraps.csv", date_format="%d/%m/%Y")
    with project.session() as s:
        deps = {st.name: d.code for d, st in s.execute(select(Deployment, Station).join(Station))}
    for f in sorted(cats.glob("*.JPG")):
        ingest(project, f, deployment=deps[f.name.split("__")[0]], workers=1)
    with (root / "oracle" / "recordTableIndividualSample.csv").open() as fh:
        want = list(csv.DictReader(fh))
    census = gather_census(project, public=False)
    html = render_html(census)
    assert_self_contained(html)
    names = {c["name"] for c in census.catalogue}
    assert names == {w["Individual"] for w in want}
    for c in census.catalogue:
        assert c["photos"], c["name"]
        assert set(c["stations"]) == {w["Station"] for w in want if w["Individual"] == c["name"]}
    ch = project_capthist(project, species=census.main_species)
    assert census.estimates.capthist_summary == ch.summary()
    est = census.estimates
    # three animals cannot carry SECR; the report says so in words
    assert est.secr or est.secr_reason in html
    if not est.closed:
        assert est.closed_reason and est.closed_reason in html
