"""Field records (issue 20 item 1): a season of scat samples, snares and sign transects.

The tests write the tables a field team would bring back from a season in
the demo's range (Sailyugem, around 49.8 N 89.1 E): transects walked with
the signs found on them, scat samples collected for DNA, snares found and
removed, in irbis's CSV layout and as a SMART-style patrol export, then
import them with ``irbis field import`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from irbis.cli.app import app
from irbis.core.errors import BadInputError
from irbis.store.schema import AuditEntry, FieldRecord, Transect

runner = CliRunner()

SEASON = date(2026, 3, 1)
RECORD_HEADER = [
    *("record_id", "kind", "date", "time", "timezone", "lat", "lon", "observer"),
    *("organisation", "species", "transect", "sample_id", "threat_type", "status"),
    *("target_species", "action_taken", "sign_type", "sign_age", "notes", "photos"),
]


def write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


def season_tables(folder: Path, seed: int = 20) -> dict[str, Path]:
    """A season: 6 transects with 3-5 signs each, 30 scat samples, 18 snares."""
    rng = random.Random(seed)
    transects, records = [], []
    for t in range(6):
        lat0, lon0 = 49.72 + 0.03 * t, 88.95 + 0.05 * t
        walked = SEASON + timedelta(days=7 * t)
        transects.append(
            {
                "transect": f"SLG-T{t + 1:02d}",
                "date": walked.isoformat(),
                "observers": "Ivan Petrov;Aigul Saparova",
                "organisation": "Sailyugem National Park",
                "line": f"{lon0} {lat0}, {lon0 + 0.01} {lat0 + 0.004}, {lon0 + 0.02} {lat0 + 0.01}",
            }
        )
        for k in range(3 + t % 3):
            records.append(
                {
                    "kind": "sign",
                    "date": walked.isoformat(),
                    "time": f"{9 + k}:{rng.randrange(60):02d}",
                    "lat": round(lat0 + 0.002 * k, 6),
                    "lon": round(lon0 + 0.004 * k, 6),
                    "observer": "Ivan Petrov",
                    "organisation": "Sailyugem National Park",
                    "species": "Panthera uncia",
                    "transect": f"SLG-T{t + 1:02d}",
                    "sign_type": ("scrape", "track", "scat", "claw mark", "spray")[k % 5],
                    "sign_age": ("fresh", "old")[k % 2],
                }
            )
    for i in range(30):
        day = SEASON + timedelta(days=rng.randrange(90))
        records.append(
            {
                "kind": "scat_sample",
                "date": day.isoformat(),
                "time": f"{rng.randrange(8, 17)}:{rng.randrange(60):02d}",
                "lat": round(49.7 + rng.random() * 0.2, 6),
                "lon": round(88.9 + rng.random() * 0.35, 6),
                "observer": "Aigul Saparova",
                "organisation": "Sailyugem National Park",
                "species": "Panthera uncia",
                "sample_id": f"SLG-S{i + 1:03d}",
                "notes": "ethanol tube" if i % 2 else "silica",
            }
        )
    for i in range(18):
        day = SEASON + timedelta(days=rng.randrange(90))
        records.append(
            {
                "record_id": f"SN-{i + 1:02d}",
                "kind": "snare",
                "date": day.isoformat(),
                "time": "07:30",
                "lat": round(49.75 + rng.random() * 0.1, 6),
                "lon": round(89.0 + rng.random() * 0.2, 6),
                "observer": "Ranger patrol 3",
                "organisation": "WWF Russia",
                "threat_type": "wire snare",
                "status": "removed" if i % 3 else "found",
                "target_species": "Moschus moschiferus",
                "action_taken": "removed and destroyed" if i % 3 else "reported",
            }
        )
    tr_header = ["transect", "date", "observers", "organisation", "line"]
    return {
        "transects": write_csv(folder / "transects.csv", tr_header, transects),
        "records": write_csv(folder / "season.csv", RECORD_HEADER, records),
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def cli(*args: str) -> dict:
    res = runner.invoke(app, [*map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def cli_error(*args: str) -> str:
    """The one-line error ``irbis`` would print for a failing command."""
    res = runner.invoke(app, list(map(str, args)))
    assert res.exit_code != 0
    assert isinstance(res.exception, BadInputError), res.output
    return str(res.exception)


def _count(project, model) -> int:
    with project.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _audit(project, prefix: str) -> list[AuditEntry]:
    with project.session() as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.startswith(prefix))
                .order_by(AuditEntry.id)
            )
        )


def test_a_season_imports_once_and_again_changes_only_what_changed(project, tmp_path):
    tables = season_tables(tmp_path)
    # Signs name their transects: without them the table is refused whole.
    msg = cli_error("field", "import", project.root, tables["records"])
    assert "season.csv:row 2: column 'transect': unknown transect 'SLG-T01'" in msg
    assert _count(project, FieldRecord) == 0

    tr = cli("field", "import", project.root, tables["transects"], "--kind", "transect")
    assert tr["new"] == 6
    res = cli("field", "import", project.root, tables["records"], "--timezone", "Asia/Barnaul")
    n_signs = sum(3 + t % 3 for t in range(6))
    assert res["new"] == n_signs + 30 + 18 and res["updated"] == 0
    assert len(_audit(project, "field.create")) == res["new"]

    with project.session() as s:
        recs = list(s.scalars(select(FieldRecord)))
        assert all(r.sensitive for r in recs)  # sensitive by default
        sn = s.scalar(select(FieldRecord).where(FieldRecord.uid == "SN-01"))
        assert sn.status == "found" and sn.target_species == "Moschus moschiferus"
        # 07:30 in Barnaul (UTC+7) is 00:30 UTC.
        assert sn.observed_utc.hour == 0 and sn.utc_offset_min == 420
        claw = s.scalar(select(FieldRecord).where(FieldRecord.sign_type == "claw_mark").limit(1))
        assert claw is not None and claw.transect_id is not None
        t1 = s.scalar(select(Transect).where(Transect.code == "SLG-T01"))
        # Measured along the line: ~0.85 km + ~1.1 km.
        assert 1500 < t1.length_m < 2500 and t1.walked_on == SEASON

    again = cli("field", "import", project.root, tables["records"], "--timezone", "Asia/Barnaul")
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, res["new"])
    assert not _audit(project, "field.edit")

    # The snare found on the first patrol was removed on the next one.
    rows = read_csv(tables["records"])
    for r in rows:
        if r["record_id"] == "SN-01":
            r["status"], r["action_taken"] = "removed", "removed on the second patrol"
    write_csv(tables["records"], RECORD_HEADER, rows)
    third = cli("field", "import", project.root, tables["records"], "--timezone", "Asia/Barnaul")
    assert (third["new"], third["updated"]) == (0, 1)
    (edit,) = _audit(project, "field.edit")
    assert edit.before["status"] == "found" and edit.after["status"] == "removed"
    assert edit.actor.startswith("cli:")


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"lat": ""}, "row 3: column 'lat': missing coordinates"),
        ({"lon": ""}, "row 3: column 'lon': missing coordinates"),
        ({"date": "2026-02-30"}, "row 3: column 'date': bad date '2026-02-30'"),
        ({"date": "05/03/2026"}, "row 3: column 'date': bad date '05/03/2026'"),
        ({"time": "25:61"}, "row 3: column 'time': bad time '25:61'"),
        ({"sign_type": "den"}, "row 3: column 'sign_type': unknown value 'den'"),
        ({"status": "seen"}, "row 3: column 'status': unknown value 'seen'"),
        ({"kind": "camera"}, "row 3: column 'kind': unknown value 'camera'"),
        ({"lat": "91.2"}, "row 3: column 'lat': 91.2 is not a latitude"),
        ({"timezone": "Mars/Olympus"}, "row 3: column 'timezone': unknown time zone"),
        ({"sample_id": "SLG-S001"}, "row 3: column 'sample_id': sample ID 'SLG-S001' appears"),
        ({"photos": "m999"}, "row 3: column 'photos': unknown media id 999"),
        ({"photos": "missing.jpg"}, "row 3: column 'photos': photo file"),
    ],
)
def test_bad_rows_name_their_row_and_column_and_write_nothing(tmp_path, cells, expected):
    from irbis.store import Project

    p = Project.init(tmp_path / "p")
    good = {
        "kind": "scat_sample",
        "date": "2026-03-05",
        "time": "10:20",
        "lat": "49.81",
        "lon": "89.1",
        "sample_id": "SLG-S001",
    }
    bad = {**good, "sample_id": "SLG-S002", **cells}
    if "sign_type" in cells:
        bad["kind"], bad["sample_id"] = "sign", ""
    if "status" in cells:
        bad["kind"], bad["sample_id"] = "snare", ""
    path = write_csv(tmp_path / "bad.csv", RECORD_HEADER, [good, bad])
    msg = cli_error("field", "import", p.root, path)
    assert expected in msg, msg
    assert "\n" not in msg
    assert _count(p, FieldRecord) == 0
    p.close()


def test_unknown_sample_ids_in_lab_results_are_refused(tmp_path):
    from irbis.store import Project

    p = Project.init(tmp_path / "p")
    tables = season_tables(tmp_path)
    cli("field", "import", p.root, tables["transects"], "--kind", "transect")
    cli("field", "import", p.root, tables["records"])
    lab = write_csv(
        tmp_path / "lab.csv",
        ["sample_id", "lab", "genotype", "sex"],
        [
            {"sample_id": "SLG-S001", "lab": "IPEE RAS", "genotype": "G01", "sex": "F"},
            {"sample_id": "SLG-S999", "lab": "IPEE RAS", "genotype": "G02", "sex": "M"},
            {"sample_id": "SLG-S998", "lab": "IPEE RAS", "genotype": "G02", "sex": "M"},
        ],
    )
    msg = cli_error("field", "import", p.root, lab, "--kind", "lab")
    assert "lab.csv:row 3: column 'sample_id': unknown sample ID 'SLG-S999'" in msg
    assert "1 more bad row(s): row 4" in msg
    with p.session() as s:
        assert s.scalar(select(func.count(FieldRecord.genotype_id))) == 0
    p.close()


SMART_HEADER = [
    "Patrol ID",
    "Waypoint ID",
    "Waypoint Date",
    "Waypoint Time",
    "X",
    "Y",
    "Observer",
    "Team",
    "Category 0",
    "Category 1",
    "Category 2",
    "Sample ID",
    "Action taken",
    "Target species",
    "Age",
    "Transect ID",
    "Comment",
]


def test_smart_style_patrol_export(tmp_path):
    from irbis.store import Project

    p = Project.init(tmp_path / "p")
    rows = [
        {
            "Patrol ID": "SLG-2026-014",
            "Waypoint ID": "1",
            "Waypoint Date": "05-Mar-2026",
            "Waypoint Time": "09:40:00",
            "X": "89.1021",
            "Y": "49.8312",
            "Observer": "Ivan Petrov",
            "Team": "Sailyugem NP rangers",
            "Category 0": "Threats",
            "Category 1": "Snare",
            "Action taken": "Removed",
            "Target species": "Musk deer",
        },
        {
            "Patrol ID": "SLG-2026-014",
            "Waypoint ID": "2",
            "Waypoint Date": "05-Mar-2026",
            "Waypoint Time": "10:05:00",
            "X": "89.1102",
            "Y": "49.8344",
            "Observer": "Ivan Petrov",
            "Category 0": "Wildlife",
            "Category 1": "Snow leopard",
            "Category 2": "Scrape",
            "Age": "Fresh",
        },
        {
            "Patrol ID": "SLG-2026-014",
            "Waypoint ID": "3",
            "Waypoint Date": "05-Mar-2026",
            "Waypoint Time": "10:30:00",
            "X": "89.1150",
            "Y": "49.8360",
            "Observer": "Ivan Petrov",
            "Category 0": "Wildlife",
            "Category 1": "Snow leopard",
            "Category 2": "Scat sample",
            "Sample ID": "SLG-S101",
        },
        {
            "Patrol ID": "SLG-2026-014",
            "Waypoint ID": "4",
            "Waypoint Date": "05-Mar-2026",
            "Waypoint Time": "11:00:00",
            "X": "89.12",
            "Y": "49.84",
            "Category 0": "Wildlife",
            "Category 1": "Siberian ibex",
            "Category 2": "Sighting",
        },
    ]
    path = write_csv(tmp_path / "smart.csv", SMART_HEADER, rows)
    res = cli("field", "import", p.root, path, "--timezone", "+07:00")
    assert res["layout"] == "smart" and res["new"] == 3 and res["skipped"] == 1
    assert res["skipped_categories"] == {"Wildlife > Siberian ibex > Sighting": 1}
    with p.session() as s:
        by_kind = {r.kind: r for r in s.scalars(select(FieldRecord))}
    snare = by_kind["snare"]
    assert snare.status == "removed" and snare.target_species == "Musk deer"
    assert snare.uid == "smart:SLG-2026-014:1" and (snare.lon, snare.lat) == (89.1021, 49.8312)
    assert snare.organisation == "Sailyugem NP rangers" and snare.observed_utc.hour == 2
    sign = by_kind["sign"]
    assert (sign.sign_type, sign.sign_age, sign.species) == ("scrape", "fresh", "Snow leopard")
    assert by_kind["scat_sample"].sample_id == "SLG-S101"
    # Again: nothing new. A row without coordinates names SMART's own column.
    assert cli("field", "import", p.root, path, "--timezone", "+07:00")["unchanged"] == 3
    rows[1]["X"] = ""
    write_csv(path, SMART_HEADER, rows)
    assert "smart.csv:row 3: column 'X': missing coordinates" in cli_error(
        "field", "import", p.root, path
    )
    p.close()


def test_csv_export_public_and_precise_round_trip(tmp_path):
    from irbis.store import Project

    p = Project.init(tmp_path / "p")
    tables = season_tables(tmp_path)
    cli("field", "import", p.root, tables["transects"], "--kind", "transect")
    cli("field", "import", p.root, tables["records"])
    # One snare marked not sensitive by a person: it keeps its place in public.
    with p.session() as s:
        rec = s.scalar(select(FieldRecord).where(FieldRecord.uid == "SN-02"))
        rec.sensitive = False
        exact = (rec.lat, rec.lon)
        s.commit()
    out = tmp_path / "public.csv"
    res = cli("field", "export", p.root, out)
    rows = read_csv(out)
    assert (
        res["rows"] == len(rows) == _count(p, FieldRecord) and res["generalised"] == len(rows) - 1
    )
    src = {r["sample_id"]: r for r in read_csv(tables["records"])}
    for r in rows:
        assert r["observer"] == ""
        if r["record_id"] == "SN-02":
            assert (float(r["lat"]), float(r["lon"])) == exact
        else:
            # Snapped to the centre of a 0.1-degree cell.
            assert round(float(r["lat"]) * 20) % 2 == 1 and round(float(r["lon"]) * 20) % 2 == 1
            if r["sample_id"]:
                assert r["lat"] != src[r["sample_id"]]["lat"] and r["notes"] == ""
    precise = tmp_path / "precise.csv"
    cli("field", "export", p.root, precise, "--precise")
    back = cli("field", "import", p.root, precise)
    assert (back["new"], back["updated"]) == (0, 0)
    assert [e.action for e in _audit(p, "export")] == ["export", "export"]
    p.close()


def test_camtrapdp_packages_carry_field_records_generalised_as_stations(project, tmp_path):
    """Custom resources beside the three tables; the public package snaps their places."""
    from frictionless import Resource

    from irbis.exchange.camtrapdp import export_camtrapdp

    from .test_exchange_camtrapdp_public import _build

    _build(project, [(49.81234, 89.10567, ["Capra sibirica"]), (49.9, 89.3, ["Vulpes vulpes"])])
    tables = season_tables(tmp_path)
    cli("field", "import", project.root, tables["transects"], "--kind", "transect")
    cli("field", "import", project.root, tables["records"])
    with project.session() as s:
        s.scalar(select(FieldRecord).where(FieldRecord.uid == "SN-02")).sensitive = False
        s.commit()
    exact = {r["record_id"] or f"scat:{r['sample_id']}": r for r in read_csv(tables["records"])}

    def package(name: str, **kw) -> tuple[dict, list[dict[str, str]], list[dict[str, str]]]:
        res = export_camtrapdp(project, tmp_path / name, **kw)
        assert res.validation.valid, res.validation.errors
        desc = json.loads((tmp_path / name / "datapackage.json").read_text())
        by_name = {r["name"]: r for r in desc["resources"]}
        for extra in ("field-records", "transects"):
            # Each custom resource is a tabular resource its own schema validates.
            report = Resource(by_name[extra], basepath=str(tmp_path / name)).validate()
            assert report.valid, report.flatten(["rowNumber", "fieldName", "message"])
        return (
            desc,
            read_csv(tmp_path / name / "field-records.csv"),
            read_csv(tmp_path / name / "transects.csv"),
        )

    # No sensitive species on camera: stations stay exact, sensitive field records do not.
    desc, recs, trs = package("public")
    assert len(recs) == _count(project, FieldRecord) and len(trs) == 6
    for r in recs:
        src = exact.get(r["record_id"])
        assert r["observer"] == ""
        if r["record_id"] == "SN-02":
            assert (r["lat"], r["lon"]) == (src["lat"], src["lon"])
        elif src is not None:
            assert (r["lat"], r["lon"]) != (src["lat"], src["lon"])
            assert round(float(r["lat"]) * 20) % 2 == 1
    assert all(t["line"] == "" and float(t["length_m"]) > 1000 for t in trs)

    # A leopard on camera generalises every station, and every field record with them.
    _build(project, [(49.81234, 89.10567, ["Panthera uncia"])])
    desc, recs, _ = package("public2")
    assert desc["coordinatePrecision"] == 0.1
    sn2 = next(r for r in recs if r["record_id"] == "SN-02")
    assert (sn2["lat"], sn2["lon"]) != (exact["SN-02"]["lat"], exact["SN-02"]["lon"])

    # Precise packages carry the places, observers and lines as stored.
    _, recs, trs = package("precise", public=False)
    for r in recs:
        if r["record_id"] in exact:
            src = exact[r["record_id"]]
            assert float(r["lat"]) == float(src["lat"]) and r["observer"] == src["observer"]
    assert all(t["line"].count(",") == 2 for t in trs)


def _genetics_setup(project, tmp_path: Path) -> dict[str, int]:
    """The season, three photo-identified cats, and the lab's genotypes for six samples."""
    from datetime import datetime

    from irbis.store.schema import Individual

    tables = season_tables(tmp_path)
    cli("field", "import", project.root, tables["transects"], "--kind", "transect")
    cli("field", "import", project.root, tables["records"])
    ids = {}
    with project.session() as s:
        for name, sex in (("Khan", "male"), ("Altyn", "female"), ("Kara", "female")):
            ind = Individual(name=name, sex=sex, created_by="t", created_utc=datetime(2026, 4, 1))
            s.add(ind)
            s.flush()
            ids[name] = ind.id
        s.commit()
    lab = write_csv(
        tmp_path / "lab.csv",
        ["sample_id", "lab", "genotype", "sex", "individual"],
        [
            {
                "sample_id": "SLG-S001",
                "lab": "IPEE",
                "genotype": "G01",
                "sex": "M",
                "individual": "Khan",
            },
            {"sample_id": "SLG-S002", "lab": "IPEE", "genotype": "G01", "sex": "M"},
            {
                "sample_id": "SLG-S003",
                "lab": "IPEE",
                "genotype": "G02",
                "sex": "F",
                "individual": "Altyn",
            },
            {"sample_id": "SLG-S004", "lab": "IPEE", "genotype": "G03", "sex": "F"},
            {"sample_id": "SLG-S005", "lab": "IPEE", "genotype": "G03", "sex": "F"},
            {"sample_id": "SLG-S006", "lab": "", "genotype": "", "sex": ""},
        ],
    )
    res = cli("field", "import", project.root, lab, "--kind", "lab")
    assert (res["updated"], res["genotypes_new"], res["links_new"]) == (5, 3, 2)
    assert res["unchanged"] == 1
    assert cli("field", "import", project.root, lab, "--kind", "lab")["unchanged"] == 6
    return ids


def test_genotypes_link_stand_alone_and_conflicts(project, tmp_path):
    from irbis.store.genetics import conflicts

    ids = _genetics_setup(project, tmp_path)
    data = cli("genotypes", "list", project.root)
    by_code = {g["code"]: g for g in data["genotypes"]}
    assert by_code["G01"]["status"] == "linked" and by_code["G01"]["samples"] == 2
    assert by_code["G01"]["links"][0]["individual"] == "Khan"
    assert by_code["G01"]["links"][0]["linked_by"].startswith("cli:")
    assert by_code["G01"]["sex"] == "male"
    assert by_code["G03"]["status"] == "own individual" and by_code["G03"]["samples"] == 2
    assert data["conflicts"] == []

    # One genotype on two individuals: refused in one line, nothing written.
    msg = cli_error("genotypes", "link", project.root, "G01", "Kara")
    assert (
        "genotype G01: not linked to Kara: genotype G01 is already linked to individual Khan" in msg
    )
    assert msg.count("\n") == 0 and "G01" in msg
    # G03 (female) onto Khan (male, already G01): refused as well.
    assert "already linked to genotype G01" in cli_error(
        "genotypes", "link", project.root, "G03", "Khan"
    )
    # A person who knows better records it anyway: the conflicts are shown.
    linked = cli("genotypes", "link", project.root, "G01", "Kara", "--allow-conflict")
    assert linked["linked"] and "already linked" in linked["conflict"]
    res = runner.invoke(app, ["genotypes", "conflicts", str(project.root)])
    assert res.exit_code == 1
    assert "genotype G01 is linked to 2 individuals (Kara, Khan)" in res.output.replace("\n", " ")
    with project.session() as s:
        kinds = sorted(c.kind for c in conflicts(s))
    # G01 is male, Kara female: a second conflict.
    assert kinds == ["genotype_on_two_individuals", "sex_differs"]
    # A lab table assigning a genotype across an existing link is refused by row and column.
    bad = write_csv(
        tmp_path / "lab2.csv",
        ["sample_id", "genotype", "individual"],
        [{"sample_id": "SLG-S004", "genotype": "G03", "individual": "Altyn"}],
    )
    msg = cli_error("field", "import", project.root, bad, "--kind", "lab")
    assert "lab2.csv:row 2: column 'individual': genotype conflict: individual Altyn is " in msg

    # Unlinking settles it; links and unlinks are audit rows with who and when.
    cli("genotypes", "unlink", project.root, "G01", "Kara")
    assert runner.invoke(app, ["genotypes", "conflicts", str(project.root)]).exit_code == 0
    actions = [e.action for e in _audit(project, "genotype.")]
    assert actions == ["genotype.link"] * 3 + ["genotype.unlink"]
    assert ids


def test_merging_two_linked_individuals_shows_two_genotypes_on_one(project, tmp_path):
    from irbis.store.genetics import conflicts
    from irbis.store.schema import Individual

    ids = _genetics_setup(project, tmp_path)
    cli("genotypes", "link", project.root, "G03", "Kara")
    with project.session() as s:
        assert conflicts(s) == []
        # Altyn (G02) turns out to be Kara (G03) on the photos: merged into Kara.
        s.get(Individual, ids["Altyn"]).merged_into_id = ids["Kara"]
        s.commit()
    with project.session() as s:
        (c,) = conflicts(s)
    assert c.kind == "individual_with_two_genotypes"
    assert c.genotypes == ("G02", "G03") and c.individuals == ("Kara",)
    g02 = next(g for g in cli("genotypes", "list", project.root)["genotypes"] if g["code"] == "G02")
    assert g02["links"][0]["individual"] == "Kara" and g02["links"][0]["linked_to"] == "Altyn"
    assert g02["status"] == "conflict"


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project, token: str):
        c = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
        c.headers["Authorization"] = f"Bearer {token}"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def test_web_lists_maps_and_masks_field_records_by_role(project, tmp_path, client_of):
    from irbis.web.auth import create_user

    ids = _genetics_setup(project, tmp_path)
    exact = {r["sample_id"]: r for r in read_csv(tmp_path / "season.csv")}
    viewer = client_of(project, create_user(project, "ranger", "viewer"))
    reviewer = client_of(project, create_user(project, "tara", "reviewer"))
    cleared = client_of(project, create_user(project, "boss", "admin", precise_locations=True))

    seen = {r["sample_id"]: r for r in cleared.get("/api/field-records?kind=scat_sample").json()}
    hidden = {r["sample_id"]: r for r in viewer.get("/api/field-records?kind=scat_sample").json()}
    assert len(seen) == len(hidden) == 30
    s1 = exact["SLG-S001"]
    assert (seen["SLG-S001"]["lat"], seen["SLG-S001"]["lon"]) == (
        float(s1["lat"]),
        float(s1["lon"]),
    )
    assert not seen["SLG-S001"]["generalised"] and seen["SLG-S002"]["notes"]
    for sid, r in hidden.items():
        assert r["generalised"] and r["notes"] == "" and r["elevation"] is None
        assert (r["lat"], r["lon"]) != (float(exact[sid]["lat"]), float(exact[sid]["lon"]))
    assert all(t["line"] == [] for t in viewer.get("/api/transects").json())
    assert all(len(t["line"]) == 3 for t in cleared.get("/api/transects").json())
    page = viewer.get("/field", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "SLG-S001" in page.text and 'id="map"' in page.text
    assert s1["lat"] not in page.text and s1["lon"] not in page.text
    assert s1["lat"] in cleared.get("/field").text

    # A viewer changes nothing; a reviewer marks a snare removed (audited by name).
    snare = next(
        r for r in reviewer.get("/api/field-records?kind=snare").json() if r["status"] == "found"
    )
    url = f"/api/field-records/{snare['id']}"
    assert viewer.patch(url, json={"status": "removed"}).status_code == 403
    assert reviewer.patch(url, json={"status": "gone"}).status_code == 422
    assert reviewer.patch(url, json={"sensitive": False}).status_code == 403
    r = reviewer.patch(url, json={"status": "removed", "action_taken": "cut and taken away"})
    assert r.status_code == 200 and r.json()["changed"] == ["action_taken", "status"]
    (edit,) = [e for e in _audit(project, "field.edit") if e.target == f"field:{snare['id']}"]
    assert edit.actor == "tara" and edit.before["status"] == "found"
    assert viewer.get(url).json()["status"] == "removed"
    assert reviewer.get("/api/field-records/999999").status_code == 404

    # Genotype links from the app: a conflict is refused unless asked for, and listed.
    g01 = next(g for g in viewer.get("/api/genotypes").json()["genotypes"] if g["code"] == "G01")
    link = f"/api/genotypes/{g01['id']}/link"
    assert viewer.post(link, json={"individual_id": ids["Kara"]}).status_code == 403
    r = reviewer.post(link, json={"individual_id": ids["Kara"]})
    assert r.status_code == 422 and "already linked to individual Khan" in r.json()["detail"]
    r = reviewer.post(link, json={"individual_id": ids["Kara"], "allow_conflict": True})
    assert r.status_code == 200
    assert "genotype G01 is linked to 2 individuals" in viewer.get("/field").text
    r = reviewer.post(f"/api/genotypes/{g01['id']}/unlink", json={"individual_id": ids["Kara"]})
    assert r.status_code == 200 and r.json()["unlinked"] == ["Kara"]
    assert viewer.get("/api/genotypes").json()["conflicts"] == []
    assert [e.actor for e in _audit(project, "genotype.")][-2:] == ["tara", "tara"]
