"""``irbis records --individuals``: camtrapR's ``recordTableIndividual`` (both backends).

camtrapR's sample card ``sample_images_indiv_tag/LeopardCat`` holds 26 photos
of three leopard cats, the individual in XMP tags (``individual|2``) and the
station in the file name (``StationA__2009-04-21__00-40-00(1).JPG``: camtrapR's
renamed images without station folders). irbis takes stations from folders,
so the test lays the same files out as ``StationA/…`` in a temporary card.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.exchange.individual_records import individual_record_table
from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.store.schema import Media, Observation

from .conftest import need_data

CAMTRAPR = ("cameratrap", "camtrapR")


def stage_indiv_card(dest: Path, stations: tuple[str, ...] = ()) -> Path:
    """camtrapR's individual-tagged card with one folder per station (from file names)."""
    src = need_data(*CAMTRAPR, "pictures", "sample_images_indiv_tag", "LeopardCat")
    for f in sorted(src.iterdir()):
        station = f.name.split("__", 1)[0]
        if stations and station not in stations:
            continue
        (dest / station).mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest / station / f.name)
    return dest


def ingest_indiv_card(project, tmp_path: Path, stations: tuple[str, ...] = ()) -> int:
    import_registry(project, need_data(*CAMTRAPR, "oracle", "camtraps.csv"), date_format="%d/%m/%Y")
    card = stage_indiv_card(tmp_path / "indiv_card", stations)
    res = ingest(project, card, layout="station")
    assert res.n_rejected == 0 and res.n_flagged == 0
    return res.n_new


def _oracle() -> list[dict]:
    with open(need_data(*CAMTRAPR, "oracle", "recordTableIndividualSample.csv")) as fh:
        return list(csv.DictReader(fh))


def test_reproduces_camtrapr_record_table_individual(project, tmp_path):
    """The 18 records camtrapR's current version gives; its older table has 21.

    The stored table (an older camtrapR, minDeltaTime 60, lastRecord) keeps
    both photos of a pair taken at the same second by the same individual
    ("(1)" and "(2)": StationB individual 3 at 04:33, StationC individual 1 at
    03:00 and at 23:30), each 0 s after the other. Under the rule itself (a
    record is independent when at least 60 minutes passed since the previous
    record of that individual there) the second of a pair is not independent,
    which is what camtrapR's own test now expects: 18 records of individuals
    1, 2 and 3. Every other row, time, delta and file agrees with the table.
    """
    assert ingest_indiv_card(project, tmp_path) == 26
    rows = individual_record_table(project, min_delta_min=60)
    table = _oracle()
    assert len(table) == 21
    want, prev = [], None
    for w in table:
        key = (w["Station"], w["Individual"], w["DateTimeOriginal"])
        if key != prev:  # a second photo of one individual at one second
            want.append(w)
        prev = key
    assert len(want) == len(rows) == 18
    assert {r["individual"] for r in rows} == {"1", "2", "3"}
    for g, w in zip(rows, want, strict=True):
        assert (g["station"], g["individual"], g["time"], g["file"]) == (
            w["Station"],
            w["Individual"],
            w["DateTimeOriginal"],
            w["FileName"],
        )
        assert g["species"] == w["metadata_Species"] == "Leopard Cat"
        assert g["delta_s"] == pytest.approx(float(w["delta.time.secs"]))
        assert g["date"] == w["Date"] and g["deployment"] == w["Station"]

    # With no minimum gap every photo is a record.
    assert len(individual_record_table(project, min_delta_min=0)) == 26
    # lastIndependentRecord measures from the last record kept: StationA's
    # individual 2 at 00:07 counts from 20:19 (kept), not 20:21 (dropped).
    last_ind = individual_record_table(
        project, min_delta_min=60, compared_to="lastIndependentRecord"
    )
    a2 = [r for r in last_ind if (r["station"], r["individual"]) == ("StationA", "2")]
    assert [r["time"][11:16] for r in a2] == ["00:40", "20:19", "00:07"]
    assert a2[-1]["delta_s"] == 3 * 3600 + 48 * 60
    # Individual records of one species only, or none when it is left out.
    assert individual_record_table(project, exclude=["Leopard Cat"]) == []
    assert len(individual_record_table(project, species=["Leopard Cat"])) == 18

    # The gap is per individual: a reviewer says the 20:21 photo, two minutes
    # after individual 2's record at 20:19, shows another cat ("4"). It is a
    # record of 4; individual 2's next photo now counts from 20:19.
    with project.session() as s:
        mid = s.scalar(
            select(Media.id).where(Media.file_name == "StationA__2009-04-22__20-21-00(1).JPG")
        )
        s.add(
            Observation(
                media_id=mid,
                species="Leopard Cat",
                individual="4",
                source="human",
                by="tara",
                created_utc=datetime.now(UTC).replace(tzinfo=None),
            )
        )
        s.commit()
    rows = individual_record_table(project, min_delta_min=60)
    assert len(rows) == 19
    a = [
        (r["individual"], r["time"][11:16], r["delta_s"])
        for r in rows
        if r["station"] == "StationA"
    ]
    assert a == [
        ("1", "17:11", 0),
        ("2", "00:40", 0),
        ("2", "20:19", 157140),
        ("2", "00:07", 13680),
        ("4", "20:21", 0),
    ]


def test_cli_records_individuals(project, tmp_path):
    ingest_indiv_card(project, tmp_path)
    root = str(project.root)
    res = CliRunner().invoke(app, ["records", root, "--individuals", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["count"] == 18 and data["records"][0]["individual"] == "1"

    out_csv = tmp_path / "indiv.csv"
    res = CliRunner().invoke(app, ["records", root, "--individuals", "--csv", str(out_csv)])
    assert res.exit_code == 0, res.output
    assert "18 independent records of identified individuals" in res.stdout
    with open(out_csv) as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == 18
    assert list(written[0])[:4] == ["station", "species", "individual", "time"]

    # Without --individuals: the species table, with no individual column.
    res = CliRunner().invoke(app, ["records", root, "--json"])
    species_rows = json.loads(res.stdout)["records"]
    assert species_rows and "individual" not in species_rows[0]

    # A photo whose clock is not trusted is not a record of anyone.
    with project.session() as s:
        s.execute(
            update(Media)
            .where(Media.file_name == "StationC__2009-05-07__18-47-00(1).JPG")
            .values(time_flag="outside_deployment")
        )
        s.commit()
        assert s.scalar(select(Media.id).where(Media.time_flag != "")) is not None
    res = CliRunner().invoke(app, ["records", root, "--individuals", "--json"])
    rows = json.loads(res.stdout)["records"]
    assert len(rows) == 17
    assert ("StationC", "3") not in {(r["station"], r["individual"]) for r in rows}
