"""Public Camtrap DP packages: no precise place of a sensitive species, no people.

Policy under test (see irbis.exchange.camtrapdp_export): when any sensitive
species was observed, *every* deployment is snapped to the grid; a project
without one keeps its exact coordinates.
"""

from __future__ import annotations

import csv
import json
import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import delete, select

from irbis.core.errors import IrbisError
from irbis.core.sensitivity import snap
from irbis.exchange.camtrapdp import export_camtrapdp
from irbis.store.schema import (
    Deployment,
    DetectionBox,
    IngestBatch,
    Media,
    MediaDetection,
    MediaGroup,
    Observation,
    Station,
)

SPECIES = ["Panthera uncia", "Capra sibirica", "Vulpes vulpes", "Homo sapiens", None]
T0 = datetime(2023, 10, 1, 12, 0)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _rows(folder: Path, table: str) -> list[dict[str, str]]:
    with open(folder / f"{table}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _clear(s) -> None:
    for table in (
        DetectionBox,
        MediaDetection,
        Observation,
        Media,
        MediaGroup,
        IngestBatch,
        Deployment,
        Station,
    ):
        s.execute(delete(table))


def _build(project, stations, *, file_dir: Path | None = None) -> dict[str, tuple[float, float]]:
    """Stations with one deployment each and media with one observation each."""
    truth = {}
    with project.session() as s, s.begin():
        _clear(s)
        batch = IngestBatch(source="test", started_utc=T0, status="done")
        s.add(batch)
        s.flush()
        n = 0
        for i, (lat, lon, species_list) in enumerate(stations):
            st = Station(name=f"S{i}", lat=lat, lon=lon, covariates={})
            dep = Deployment(
                code=f"D{i}",
                station=st,
                start_local=T0,
                end_local=T0 + timedelta(days=30),
                timezone="+06:00",
            )
            s.add_all([st, dep])
            s.flush()
            truth[dep.code] = (lat, lon)
            for j, sp in enumerate(species_list):
                n += 1
                local = T0 + timedelta(days=1 + j, minutes=i)
                path = ""
                if file_dir is not None:
                    path = str(file_dir / f"{n}.jpg")
                    Image.new("RGB", (64, 48), (200, 120, 40)).save(path)
                m = Media(
                    sha256=f"{n:064x}",
                    size=1,
                    mediatype="image",
                    mime="image/jpeg",
                    storage="reference",
                    stored_path=path,
                    file_name=f"IMG_{n:04d}.JPG",
                    source_relpath=f"S{i}/IMG_{n:04d}.JPG",
                    batch_id=batch.id,
                    deployment_id=dep.id,
                    timestamp_local=local,
                    timestamp_utc=local - timedelta(hours=6),
                    utc_offset_min=360,
                    time_flag="",
                )
                s.add(m)
                s.flush()
                if sp is not None:
                    human = sp == "Homo sapiens"
                    s.add(
                        Observation(
                            media_id=m.id,
                            species=sp,
                            count=1,
                            source="human",
                            by="tester",
                            created_utc=T0,
                            observation_type="human" if human else "animal",
                        )
                    )
    return truth


def _on_grid(v: float, step: float) -> bool:
    k = v / step - 0.5
    return abs(k - round(k)) < 1e-6


coords = st.tuples(
    st.floats(min_value=-60, max_value=75, allow_nan=False),
    st.floats(min_value=-179.5, max_value=179.5, allow_nan=False),
)
station_lists = st.lists(
    st.tuples(coords, st.lists(st.sampled_from(SPECIES), max_size=3)), min_size=1, max_size=5
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stations=station_lists, step=st.sampled_from([0.01, 0.05, 0.1, 0.25, 1.0]))
def test_public_export_has_no_coordinate_finer_than_the_grid(
    project, tmp_path_factory, stations, step
):
    truth = _build(project, [(lat, lon, sp) for (lat, lon), sp in stations])
    out = tmp_path_factory.mktemp("pub") / "pkg"
    res = export_camtrapdp(project, out, precision_deg=step)
    assert res.validation.valid, res.validation.errors
    sensitive = any(sp == "Panthera uncia" for _, sps in stations for sp in sps)
    desc = json.loads((out / "datapackage.json").read_text())
    deps = _rows(out, "deployments")
    assert len(deps) == len(stations)
    for row in deps:
        lat, lon = float(row["latitude"]), float(row["longitude"])
        true_lat, true_lon = truth[row["deploymentID"]]
        if sensitive:
            # Every coordinate is a cell centre of the configured grid, within half a cell.
            assert _on_grid(lat, step) and _on_grid(lon, step), (lat, lon, step)
            assert (lat, lon) == (snap(true_lat, step), snap(true_lon, step))
            assert abs(lat - true_lat) <= step / 2 + 1e-9
            assert abs(lon - true_lon) <= step / 2 + 1e-9
            assert int(row["coordinateUncertainty"]) >= step * 111_320 / 2
        else:
            assert (lat, lon) == (true_lat, true_lon)
    if sensitive:
        assert desc["coordinatePrecision"] == step
        corners = desc["spatial"]["coordinates"]
        flat = [corners] if desc["spatial"]["type"] == "Point" else corners[0]
        assert all(_on_grid(x, step) and _on_grid(y, step) for x, y in flat)
    else:
        assert "coordinatePrecision" not in desc
    # No person is published: neither their media nor their observations.
    obs = _rows(out, "observations")
    assert all(r["observationType"] != "human" for r in obs)
    n_people = sum(sp == "Homo sapiens" for _, sps in stations for sp in sps)
    assert res.media_persons_left_out == n_people
    assert res.media == sum(len(sps) for _, sps in stations) - n_people


def test_precise_export_keeps_exact_coordinates_and_people(project, tmp_path):
    truth = _build(project, [(38.123456, 72.987654, ["Panthera uncia", "Homo sapiens"])])
    res = export_camtrapdp(project, tmp_path / "pkg", public=False)
    assert res.validation.valid and not res.generalised
    row = _rows(tmp_path / "pkg", "deployments")[0]
    assert (float(row["latitude"]), float(row["longitude"])) == truth["D0"]
    assert {r["observationType"] for r in _rows(tmp_path / "pkg", "observations")} == {
        "animal",
        "human",
    }


def test_detector_boxes_become_machine_observations(project, tmp_path):
    _build(project, [(38.5, 72.5, [None, None, "Capra sibirica"])], file_dir=tmp_path)
    with project.session() as s, s.begin():
        media = s.query(Media).order_by(Media.id).all()
        for m, verdict, cats in zip(
            media,
            ("animal", "person", "animal"),
            (["animal"], ["person"], ["animal"]),
            strict=True,
        ):
            md = MediaDetection(
                media_id=m.id,
                detector="mdlite@0.2",
                model="mdlite",
                model_version="2022.05",
                threshold=0.2,
                verdict=verdict,
                max_score=0.9,
                n_boxes=len(cats),
                created_utc=datetime(2024, 1, 2, 3, 4, 5),
            )
            s.add(md)
            s.flush()
            for c in cats:
                s.add(
                    DetectionBox(
                        result_id=md.id,
                        media_id=m.id,
                        category=c,
                        score=0.87,
                        x=0.1,
                        y=0.2,
                        width=0.95,
                        height=0.3,
                        source="mdlite",
                    )
                )
        ids = [m.id for m in media]

    res = export_camtrapdp(project, tmp_path / "precise", public=False)
    assert res.validation.valid, res.validation.errors
    obs = {r["mediaID"]: r for r in _rows(tmp_path / "precise", "observations")}
    machine = obs[f"m{ids[0]}"]
    assert machine["classificationMethod"] == "machine"
    assert machine["observationType"] == "animal"
    assert machine["classifiedBy"] == "mdlite 2022.05"
    assert machine["classificationProbability"] == "0.87"
    # The box is clipped to the image: x + width <= 1.
    assert (machine["bboxX"], machine["bboxWidth"]) == ("0.1", "0.9")
    assert machine["classificationTimestamp"] == "2024-01-02T03:04:05Z"
    assert obs[f"m{ids[1]}"]["observationType"] == "human"
    # A human's observation wins over the detector, which lends it its box.
    ibex = obs[f"m{ids[2]}"]
    assert (ibex["classificationMethod"], ibex["scientificName"]) == ("human", "Capra sibirica")
    assert ibex["bboxY"] == "0.2"
    assert res.machine_observations == 2

    # Public: the file with a person detection is gone, with its observation.
    res = export_camtrapdp(project, tmp_path / "public")
    assert res.validation.valid
    assert f"m{ids[1]}" not in {r["mediaID"] for r in _rows(tmp_path / "public", "media")}
    assert res.media_persons_left_out == 1


def test_copied_person_images_are_blurred_or_left_out(project, tmp_path):
    from irbis.cli.exchange_cmd import _blur_writer

    files = tmp_path / "files"
    files.mkdir()
    _build(project, [(38.5, 72.5, ["Homo sapiens", "Capra sibirica"])], file_dir=files)
    # A sharp pattern inside the person's box, so blurring shows.
    with project.session() as s:
        person, ibex = s.query(Media).order_by(Media.id).all()
    im = Image.new("RGB", (64, 48), (0, 0, 0))
    for x in range(64):
        for y in range(48):
            if (x + y) % 2:
                im.putpixel((x, y), (255, 255, 255))
    im.save(person.stored_path)

    res = export_camtrapdp(project, tmp_path / "noblur", public=False, media_files="copy")
    assert res.validation.valid and (res.files_copied, res.files_not_copied) == (1, 1)
    rows = {r["mediaID"]: r for r in _rows(tmp_path / "noblur", "media")}
    assert rows[f"m{person.id}"]["filePublic"] == "false"
    assert not rows[f"m{person.id}"]["filePath"].startswith("media/")

    writer = _blur_writer()
    assert writer is not None
    res = export_camtrapdp(
        project, tmp_path / "blur", public=False, media_files="copy", person_writer=writer
    )
    assert res.validation.valid and res.files_blurred == 1
    rows = {r["mediaID"]: r for r in _rows(tmp_path / "blur", "media")}
    copy = Image.open(tmp_path / "blur" / rows[f"m{person.id}"]["filePath"]).convert("L")
    # The checkerboard is gone: neighbouring pixels no longer alternate 0/255.
    diffs = [abs(copy.getpixel((x, 20)) - copy.getpixel((x + 1, 20))) for x in range(10, 50)]
    assert max(diffs) < 100
    # The other file is copied as it is.
    assert (tmp_path / "blur" / rows[f"m{ibex.id}"]["filePath"]).read_bytes() == Path(
        ibex.stored_path
    ).read_bytes()


def _gps_jpeg(path: Path) -> None:
    """A JPEG whose EXIF carries a GPS fix (as phones and some trail cameras write)."""
    img = Image.new("RGB", (64, 48), (90, 140, 60))
    exif = img.getexif()
    exif[0x010F] = "RECONYX"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (49.0, 50.0, 37.3)
    gps[3], gps[4] = "E", (87.0, 39.0, 7.6)
    img.save(path, exif=exif)


def test_public_package_carries_no_gps_and_no_locating_tags(project, tmp_path):
    """Covariates such as lat/elev and the cameras' GPS fixes never reach a public package."""
    files = tmp_path / "files"
    files.mkdir()
    _build(project, [(49.843712, 87.652101, ["Panthera uncia"])], file_dir=files)
    src = files / "1.jpg"
    _gps_jpeg(src)
    with project.session() as s, s.begin():
        st = s.scalars(select(Station)).one()
        st.covariates = {"lat": 49.843712, "elev_m": 3120, "UTM_x": 410000.5, "ridge": "north"}
        m = s.scalars(select(Media)).one()
        m.extra = {"camtrapdp": {"exifData": json.dumps({"Make": "RECONYX", "GPSLatitude": 49.84})}}
    res = export_camtrapdp(project, tmp_path / "pub", media_files="copy")
    assert res.validation.valid, res.validation.errors
    dep = _rows(tmp_path / "pub", "deployments")[0]
    assert dep["deploymentTags"] == "ridge:north"
    media = _rows(tmp_path / "pub", "media")[0]
    assert json.loads(media["exifData"]) == {"Make": "RECONYX"}
    with Image.open(tmp_path / "pub" / media["filePath"]) as im:
        exif = im.getexif()
        assert 0x8825 not in exif and exif[0x010F] == "RECONYX"
    # For cleared partners the covariates and the file stay as they are.
    precise = export_camtrapdp(project, tmp_path / "precise", public=False, media_files="copy")
    assert "lat:49.843712" in _rows(tmp_path / "precise", "deployments")[0]["deploymentTags"]
    row = _rows(tmp_path / "precise", "media")[0]
    assert (tmp_path / "precise" / row["filePath"]).read_bytes() == src.read_bytes()
    assert precise.validation.valid


def test_export_never_replaces_a_folder_it_did_not_write(project, tmp_path):
    _build(project, [(49.8, 87.6, ["Capra sibirica"])])
    theirs = tmp_path / "their-package"
    (theirs / "media").mkdir(parents=True)
    (theirs / "datapackage.json").write_text("{}")
    (theirs / "media" / "IMG_0001.JPG").write_bytes(b"original")
    with pytest.raises(IrbisError, match="not written by `irbis export camtrapdp`"):
        export_camtrapdp(project, theirs)
    assert (theirs / "media" / "IMG_0001.JPG").read_bytes() == b"original"
    # Its own earlier export is replaced; a stray file in it stops the export.
    ours = tmp_path / "ours"
    export_camtrapdp(project, ours)
    export_camtrapdp(project, ours)
    (ours / "notes.txt").write_text("mine")
    with pytest.raises(IrbisError, match="notes.txt"):
        export_camtrapdp(project, ours)
    assert (ours / "notes.txt").read_text() == "mine"


def test_public_package_names_no_team_member_unless_the_project_chose_to(project, tmp_path):
    from irbis.store.schema import User

    _build(project, [(49.8, 87.6, ["Capra sibirica"])])
    with project.session() as s, s.begin():
        s.add(
            User(
                name="tara",
                display_name="Tara N.",
                organisation="Sailyugem NP",
                role="admin",
                created_utc=T0,
            )
        )
    pub = json.loads(
        (export_camtrapdp(project, tmp_path / "pub").path / "datapackage.json").read_text()
    )
    assert "Tara" not in json.dumps(pub) and "Sailyugem NP" not in json.dumps(pub)
    pre = json.loads(
        (
            export_camtrapdp(project, tmp_path / "pre", public=False).path / "datapackage.json"
        ).read_text()
    )
    assert {"title": "Tara N.", "role": "contact", "organization": "Sailyugem NP"} in pre[
        "contributors"
    ]
