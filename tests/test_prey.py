"""Prey from the cameras (issue 20 item 5): ``irbis rai`` and ``irbis occupancy``.

The test builds a two-week season by hand: nine stations with covariates,
the ninth snowed in for the whole deployment (no effort), and independent
events of Siberian ibex and argali (under two names) at known times, so every
number below is worked out here from the events listed, not taken from irbis.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.core.types import DeploymentRecord, MalfunctionPeriod, StationRecord
from irbis.ingest.registry import save_registry
from irbis.stats.occupancy import occupancy_fit
from irbis.store.schema import IngestBatch, Media, Observation

runner = CliRunner()
T0 = datetime(2024, 6, 1)
DAYS = 14
ELEV = [2100, 2350, 2500, 2650, 2800, 2950, 3100, 3300, 3400]
SNOW = [0.1, 0.4, 0.2, 0.6, 0.3, 0.8, 0.5, 0.7, 0.9]

# (station index, day offset, label): the events of the season
EVENTS = [
    (0, 0.5, "Siberian ibex"),
    (0, 0.5 + 20 / 1440, "Siberian ibex"),  # 20 min later: the same event
    (0, 3.5, "Siberian ibex"),
    (0, 9.5, "Siberian ibex"),
    (1, 1.4, "Siberian ibex"),
    (1, 8.4, "Siberian ibex"),
    (2, 6.9, "Siberian ibex"),  # last day of week 1
    (2, 7.1, "Siberian ibex"),  # first day of week 2, 4.8 h later
    (3, 2.5, "Siberian ibex"),
    (4, 13.5, "Siberian ibex"),
    (5, 2.0, "argali"),
    (6, 10.0, "Ovis ammon"),  # argali under its scientific name
    (7, 4.0, "blank"),
]


def build(project) -> None:
    """The season above in ``project`` (registry, media, observations)."""
    stations = [
        StationRecord(
            name=f"S{i + 1}",
            x=600000.0 + 2000 * i,
            y=5500000.0,
            crs="EPSG:32646",
            elevation=float(ELEV[i]),
            covariates={"snow_cover": SNOW[i], "valley": "Kalguty" if i < 4 else "Tarkhata"}
            | ({"ruggedness": 0.1 * i} if i != 2 else {}),
        )
        for i in range(9)
    ]
    deps = [
        DeploymentRecord(
            code=f"D{i + 1}", station=f"S{i + 1}", start=T0, end=T0 + timedelta(days=DAYS)
        )
        for i in range(9)
    ]
    deps[8].malfunctions = [MalfunctionPeriod(T0, T0 + timedelta(days=DAYS))]
    save_registry(project, stations, deps)
    from sqlalchemy import select

    from irbis.store.schema import Deployment

    with project.session() as s, s.begin():
        batch = IngestBatch(source="test", started_utc=T0)
        s.add(batch)
        s.flush()
        dep = {d.code: d.id for d in s.scalars(select(Deployment))}
        for j, (st, day, label) in enumerate(EVENTS):
            t = T0 + timedelta(days=day)
            m = Media(
                sha256=f"{j:064d}", size=1, mediatype="image", mime="image/jpeg",
                storage="copy", stored_path=f"x/{j}", file_name=f"{j}.jpg",
                source_relpath=f"{j}.jpg", batch_id=batch.id, deployment_id=dep[f"D{st + 1}"],
                timestamp_local=t, timestamp_utc=t, time_flag="",
            )  # fmt: skip
            s.add(m)
            s.flush()
            s.add(Observation(media_id=m.id, species=label, source="human", created_utc=T0))


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and stdout (JSON) of an ``irbis`` command, or its whole output on error."""
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout if res.exit_code == 0 else res.output


def test_rai_by_hand(project, tmp_path):
    build(project)
    root = str(project.root)
    code, text = invoke("rai", root, "--gap", "60", "--json")
    assert code == 0, text
    doc = json.loads(text)
    # 8 stations x 14 full days; the snowed-in ninth adds nothing
    assert doc["trap_nights"] == pytest.approx(112.0)
    rows = {r["species"]: r for r in doc["species"]}
    # "argali" and "Ovis ammon" are one species (the taxa table says so)
    assert set(rows) == {"Siberian ibex", "Ovis ammon"}
    assert rows["Ovis ammon"]["labels"] == ["Ovis ammon", "argali"]
    assert rows["Ovis ammon"]["events"] == 2
    ibex = rows["Siberian ibex"]
    # S1: 3 events (two photos 20 min apart are one), S2 2, S3 2, S4 1, S5 1
    assert ibex["events"] == 9 and ibex["stations_detected"] == 5 and ibex["stations"] == 9
    assert ibex["rai"] == pytest.approx(100 * 9 / 112)
    lo, hi = stats.chi2.ppf(0.025, 18) / 2, stats.chi2.ppf(0.975, 20) / 2
    assert ibex["lcl"] == pytest.approx(100 * lo / 112) and ibex["ucl"] == pytest.approx(
        100 * hi / 112
    )
    per = {(r["species"], r["station"]): r for r in doc["per_station"]}
    assert per[("Siberian ibex", "S1")]["events"] == 3
    assert per[("Siberian ibex", "S1")]["rai"] == pytest.approx(300 / 14)
    assert per[("Siberian ibex", "S6")]["rai"] == 0.0
    assert per[("Siberian ibex", "S9")]["trap_nights"] == 0.0
    assert per[("Siberian ibex", "S9")]["rai"] is None  # no effort: no index (JSON null)

    # no gap: the two photos 20 minutes apart are two events
    code, text = invoke("rai", root, "--gap", "0", "--json", "--species", "ibex")
    assert code == 0, text
    (only,) = json.loads(text)["species"]
    assert only["species"] == "ibex" and only["labels"] == ["Siberian ibex"]
    assert only["events"] == 10

    # a species by any name gathers its labels; one never seen has RAI 0
    out_csv = tmp_path / "rai.csv"
    code, text = invoke(
        "rai", root, "--species", "argali", "--species", "musk deer", "--csv", str(out_csv)
    )
    assert code == 0, text
    with open(out_csv, newline="") as fh:
        table = list(csv.DictReader(fh))
    tot = {r["species"]: r for r in table if not r["station"]}
    assert int(tot["argali"]["events"]) == 2
    assert float(tot["argali"]["rai"]) == pytest.approx(200 / 112)
    assert int(tot["musk deer"]["events"]) == 0 and float(tot["musk deer"]["rai_lcl"]) == 0
    assert float(tot["musk deer"]["rai_ucl"]) == pytest.approx(
        100 * stats.chi2.ppf(0.975, 2) / 2 / 112
    )
    st = {(r["species"], r["station"]): r for r in table if r["station"]}
    assert int(st[("argali", "S7")]["events"]) == 1
    assert st[("argali", "S9")]["rai"] == ""

    # a typo is one clear line
    code, text = invoke("rai", root, "--species", "argalli")
    assert code == 2
    assert "'argalli' was never recorded" in text and "Siberian ibex" in text


def test_occupancy_constant_model_by_hand(project, tmp_path):
    """psi~1 p~1 with two 7-day occasions has a closed form.

    Detected stations S1, S2, S3 (both weeks), S4 (week 1), S5 (week 2): 5 of
    8 working stations, 8 detections. The MLE solves
    ``d / (n_det K) = p / (1 - (1 - p)^K)``, which for K = 2 is ``1 / (2 - p)``:
    8 / 10 = 1 / (2 - p), so p = 0.75; and ``psi (1 - (1 - p)^2) = 5 / 8``, so
    psi = 0.625 / 0.9375 = 2/3.
    """
    build(project)
    csv_out = tmp_path / "occ.csv"
    code, text = invoke(
        "occupancy", str(project.root), "--species", "Capra sibirica", "--occasion-days", "7",
        "--gap", "60", "--json", "--csv", str(csv_out),
    )  # fmt: skip
    assert code == 0, text
    doc = json.loads(text)
    assert doc["n_occasions"] == 2 and doc["stations_working"] == 8
    (ibex,) = doc["species"]
    assert ibex["labels"] == ["Siberian ibex"]
    h = ibex["histories"]
    assert h["S1"] == [1, 1] and h["S3"] == [1, 1] and h["S4"] == [1, 0] and h["S5"] == [0, 1]
    assert h["S6"] == [0, 0] and h["S9"] == [None, None]
    assert ibex["n_sites"] == 8 and ibex["n_detected"] == 5 and ibex["naive"] == 5 / 8
    assert ibex["p"] == pytest.approx(0.75, abs=1e-5)
    assert ibex["psi"] == pytest.approx(2 / 3, abs=1e-5)
    ll = 5 * math.log(2 / 3) + 8 * math.log(0.75) + 2 * math.log(0.25)
    ll += 3 * math.log(2 / 3 * 0.25**2 + 1 / 3)
    assert ibex["loglik"] == pytest.approx(ll, abs=1e-7)
    lo, hi = ibex["psi_ci"]
    assert lo < 2 / 3 < hi
    with open(csv_out, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["psi"]) == pytest.approx(2 / 3, abs=1e-5)
    assert float(row["psi_lcl"]) == pytest.approx(lo) and row["psi_formula"] == "~1"


def test_occupancy_with_registry_covariates(tmp_path):
    from irbis.store import Project

    with Project.init(tmp_path / "p") as p:
        build(p)
        root = str(p.root)
    code, text = invoke(
        "occupancy", root, "--species", "Siberian ibex", "--model",
        "psi~elevation p~snow_cover", "--json",
    )  # fmt: skip
    assert code == 0, text
    doc = json.loads(text)
    (ibex,) = doc["species"]
    # the same fit on the histories and standardised covariates written here
    y = np.array([[1, 1], [1, 1], [1, 1], [1, 0], [0, 1], [0, 0], [0, 0], [0, 0]], float)
    elev, snow = np.array(ELEV[:8], float), np.array(SNOW[:8], float)
    z = lambda v: (v - v.mean()) / v.std(ddof=1)  # noqa: E731
    covs = {"elevation": z(elev), "snow_cover": z(snow)}
    ref = occupancy_fit(y, "psi~elevation p~snow_cover", covs)
    assert ibex["loglik"] == pytest.approx(ref.loglik, abs=1e-6)
    for name, c in ibex["coefficients"].items():
        i = ref.names.index(name)
        assert c["beta"] == pytest.approx(ref.beta[i], abs=1e-3)
    assert doc["scaling"]["elevation"]["mean"] == pytest.approx(elev.mean())
    assert doc["scaling"]["snow_cover"]["sd"] == pytest.approx(snow.std(ddof=1))
    # a factor covariate of the registry
    code, text = invoke("occupancy", root, "--species", "ibex", "--model", "psi~valley", "--json")
    assert code == 0, text
    assert "psi.valleyTarkhata" in json.loads(text)["species"][0]["coefficients"]
    # a station without a value, and a covariate nobody has: one line each
    code, text = invoke("occupancy", root, "--model", "psi~ruggedness")
    assert code == 2 and "station S3: no value for covariate 'ruggedness'" in text
    code, text = invoke("occupancy", root, "--model", "psi~slope")
    assert code == 2 and "no station has a covariate 'slope'" in text
    assert "elevation" in text and "snow_cover" in text
    # a species never detected gets its reason, the others their fit
    code, text = invoke("occupancy", root, "--species", "musk deer", "--species", "ibex")
    assert code == 0, text
    assert "musk deer: the species was never detected" in text
