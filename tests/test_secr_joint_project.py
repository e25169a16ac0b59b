"""A project's cameras and genotyped scats on transects as one SECR survey, and the CLI."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from irbis.core.errors import BadInputError
from irbis.exchange.secr_joint_project import project_joint_survey
from irbis.store.fieldrecords import (
    FieldRecordIn,
    LabResultIn,
    TransectIn,
    save_field_records,
    save_lab_results,
    save_transects,
)
from irbis.store.schema import Individual

from .test_stats_exchange import _make_project

T = datetime(2024, 3, 5, 10, 0)
CRS = "EPSG:32645"


def _scat(uid, x, y, transect=None, **kw):
    return FieldRecordIn(
        where=f"scats.csv:row {uid}", uid=uid, kind="scat_sample", observed_local=T,
        observed_utc=T, utc_offset_min=0, timezone="UTC", x=x, y=y, crs=CRS,
        transect=transect, sample_id=uid, species="Panthera uncia", **kw,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path):
    p = _make_project(tmp_path)  # cameras S0..S5; Agnes, Bold and Cat photographed
    with p.session() as s, s.begin():
        for name in ("Agnes", "Bold"):
            s.add(Individual(name=name, created_by="t", created_utc=T))
    save_transects(
        p,
        [
            TransectIn("t.csv:row 2", "T1", line=[[599000, 4699000], [607000, 4701500]], crs=CRS),
            TransectIn("t.csv:row 3", "T2", line=[[600000, 4704500], [606000, 4704000]], crs=CRS),
        ],
        "tester",
    )
    save_field_records(
        p,
        [
            _scat("S1", 603000, 4700270, "T1"),  # about 20 m off the line
            _scat("S2", 605000, 4700875, "T1"),
            _scat("S3", 601000, 4704417, "T2"),
            _scat("S4", 605500, 4704042, "T2"),
            _scat("S5", 602000, 4704250, "T2"),  # the lab got no genotype
            _scat("S6", 602500, 4702000),  # found off any transect
        ],
        "tester",
    )
    save_lab_results(
        p,
        [
            LabResultIn("lab.csv:row 2", "S1", lab="IPEE", genotype="G1", individual="Agnes"),
            LabResultIn("lab.csv:row 3", "S2", lab="IPEE", genotype="G1"),
            LabResultIn("lab.csv:row 4", "S3", lab="IPEE", genotype="G2"),
            LabResultIn("lab.csv:row 5", "S4", lab="IPEE", genotype="G3", individual="Bold"),
            LabResultIn("lab.csv:row 7", "S6", lab="IPEE", genotype="G2"),
        ],
        "tester",
    )
    yield p
    p.close()


def test_project_survey_links_genotypes_to_photo_ids(project):
    survey, info = project_joint_survey(project, occasion_days=10)
    assert survey.camera.ids == ["Agnes", "Bold", "Cat"]
    assert survey.search.ids == ["Agnes", "genotype:G2", "Bold"]
    assert survey.search.areas.ids == ["T1", "T2"]
    assert survey.summary()["both"] == 2 and survey.summary()["animals"] == 4
    assert info["samples_used"] == 4
    assert (info["no_genotype"], info["off_transect"], info["linked_genotypes"]) == (1, 1, 2)
    assert 15 < info["max_snap_m"] < 25
    # Agnes's two scats, both on T1, moved onto the line
    agnes = survey.search.xy[survey.search.animal == 0]
    assert len(agnes) == 2 and np.all(survey.search.part[survey.search.animal == 0] == 0)


def test_sample_far_from_its_transect_is_named(project):
    with pytest.raises(BadInputError, match=r"scat sample S1: lies 19 m from its transect 'T1'"):
        project_joint_survey(project, occasion_days=10, snap_m=10)


def test_cli_fit_joint(project, tmp_path):
    from irbis.cli.app import app

    root = str(project.root)
    project.close()
    args = ["secr", "fit-joint", root, "--occasion-days", "10", "--buffer", "8000"]
    rdir = tmp_path / "r"
    res = CliRunner().invoke(app, [*args, "--spacing", "1000", "--export-r", str(rdir), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert 'detector = "transect", noccasions = 1' in (rdir / "joint.R").read_text()
    assert len((rdir / "scats_captXY.txt").read_text().splitlines()) == 1 + 4
    assert doc["survey"]["both"] == 2 and doc["linked"] is True
    assert set(doc["beta"]) == {
        "D", "lambda0.camera", "sigma.camera", "lambda0.search", "sigma.search",
    }  # fmt: skip
    assert np.isfinite(doc["loglik"]) and doc["real"]["D_per_100km2"]["estimate"] > 0
    assert doc["samples"]["samples_used"] == 4
    # the same survey and mask fitted directly give the same maximum
    from irbis.cli.secr_joint_cmd import _survey_mask
    from irbis.stats.secr_joint import fit_joint

    survey, _ = project_joint_survey(root, occasion_days=10)
    mask, _ = _survey_mask(survey, 8000, 1000)
    assert doc["mask"]["points"] == mask.n_points
    assert fit_joint(survey, mask).loglik == pytest.approx(doc["loglik"], abs=1e-6)
    text = CliRunner().invoke(app, [*args, "--spacing", "1000", "--unlinked"])
    assert text.exit_code == 0, text.output
    assert "3 animals on camera, 3 from scats (2 both" in text.output
    assert "unlinked" in text.output and "D_per_100km2" in text.output
    bad = CliRunner().invoke(app, [*args, "--snap-m", "5"])
    assert bad.exit_code == 2 and "scat sample S1" in bad.output


def _read_parts(path):
    """secr's polygon detector file read back: ids, vertices, the first vertex's usage."""
    parts, usage = {}, {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        tok = line.split()
        slash = tok.index("/")
        parts.setdefault(tok[0], []).append([float(tok[1]), float(tok[2])])
        usage.setdefault(tok[0], [float(v) for v in tok[3:slash]])
    return parts, usage


def test_secr_text_files_round_trip_the_search_likelihood(tmp_path):
    from irbis.exchange.secr_polygon_text import write_joint_files
    from irbis.stats.secr_data import Mask
    from irbis.stats.secr_polygon import (
        AreaSearchHistory,
        PolygonLikelihood,
        SearchAreas,
        simulate_area_search,
    )

    rng = np.random.default_rng(8)
    polys = [
        np.array([[0, 0], [3000, 0], [3000, 2000], [0, 2000.0]]),
        np.array([[4000, 0], [6000, 500], [5500, 3000], [4200, 2500.0]]),
    ]
    areas = SearchAreas(["P 1", "P2"], polys, "polygon", usage=[[1, 2], [0.5, 1]])
    X, Y = np.meshgrid(np.arange(-3000, 9001, 600.0), np.arange(-3000, 6001, 600.0))
    mask = Mask(np.column_stack([X.ravel(), Y.ravel()]), 600.0)
    centres = rng.uniform([-3000, -3000], [9000, 6000], size=(60, 2))
    hist = simulate_area_search(rng, centres, areas, "polygon", 2, 1.0, 700.0)
    from irbis.stats.secr_data import CaptureHistory, Traps
    from irbis.stats.secr_joint import JointSurvey

    traps = Traps(["C1", "C2"], [[1000, 1000], [5000, 1500]], usage=[[5, 5], [5, 0]])
    cam = CaptureHistory(["A1"], np.array([[[2, 0], [1, 0]]]), traps, "count")
    res = write_joint_files(JointSurvey(cam, hist), mask, tmp_path, "HHN")
    assert 'fmt = "XY", detector = "polygon", noccasions = 2' in res["r_script"]
    assert "lambda0 ~ session, sigma ~ session" in res["r_script"]
    parts, usage = _read_parts(tmp_path / "scats_parts.txt")
    assert list(parts) == ["P_1", "P2"] and usage["P_1"] == [1, 2] and usage["P2"] == [0.5, 1]
    back_areas = SearchAreas(list(parts), [np.array(v) for v in parts.values()], "polygon",
                             usage=np.array(list(usage.values())))  # fmt: skip
    rows = [r.split() for r in (tmp_path / "scats_captXY.txt").read_text().splitlines()[1:]]
    names = list(dict.fromkeys(r[1] for r in rows))
    xy = np.array([[float(r[3]), float(r[4])] for r in rows])
    # as secr does: each place goes to the polygon that holds it
    part = np.array([next(k for k in range(2) if back_areas.contains(p[None], k)[0]) for p in xy])
    animal = np.array([names.index(r[1]) for r in rows])
    occasion = np.array([int(r[2]) - 1 for r in rows])
    back = AreaSearchHistory(names, back_areas, "polygon", 2, animal, occasion, part, xy)
    beta = np.log([0.01, 0.9, 650.0])
    a = PolygonLikelihood(hist, mask).loglik(beta)
    assert PolygonLikelihood(back, mask).loglik(beta) == pytest.approx(a, abs=1e-8)
    capt = (tmp_path / "camera_capt.txt").read_text().splitlines()
    assert capt[1:] == ["1 A1 1 C1", "1 A1 1 C1", "1 A1 2 C1"]
    assert (tmp_path / "camera_traps.txt").read_text().splitlines()[2] == "C2 5000 1500 5 0"


def test_cli_fit_joint_from_files(tmp_path):
    """Camera CSVs and secr polygon files in, the same fit as from the objects."""
    from irbis.cli.app import app
    from irbis.cli.secr_joint_cmd import _survey_mask
    from irbis.exchange.secr_polygon_text import read_search_files, write_search_files
    from irbis.stats.secr_data import Mask, Traps
    from irbis.stats.secr_joint import JointSurvey, fit_joint, simulate_joint
    from irbis.stats.secr_polygon import SearchAreas

    rng = np.random.default_rng(4)
    gx, gy = np.meshgrid(np.arange(4) * 3000.0, np.arange(3) * 3000.0)
    traps = Traps([f"C{i}" for i in range(12)], np.column_stack([gx.ravel(), gy.ravel()]),
                  usage=np.full((12, 3), 10.0))  # fmt: skip
    polys = [np.array([[-1000, -1000], [4000, -1000], [4000, 2000], [-1000, 2000.0]]),
             np.array([[5000, 3000], [10000, 3500], [9500, 7000], [5500, 6500.0]])]  # fmt: skip
    areas = SearchAreas(["P1", "P2"], polys, "polygon", usage=[[1, 1], [1, 0.5]])
    X, Y = np.meshgrid(np.arange(-9000, 18001, 1500.0), np.arange(-9000, 15001, 1500.0))
    big = Mask(np.column_stack([X.ravel(), Y.ravel()]), 1500.0)
    survey = simulate_joint(rng, big, 8e-4, traps, {"lambda0": 0.02, "sigma": 2000.0}, areas,
                            {"lambda0": 3.0, "sigma": 2000.0}, camera_occasions=3,
                            search_occasions=2, search_detector="polygon")  # fmt: skip
    assert survey.summary()["both"] >= 1
    ch = survey.camera
    tcsv = tmp_path / "traps.csv"
    tcsv.write_text(
        "trapID,x,y,usage_1,usage_2,usage_3\n"
        + "".join(
            f"{t},{x:g},{y:g},10,10,10\n" for t, (x, y) in zip(traps.ids, traps.xy, strict=True)
        )
    )
    ccsv = tmp_path / "captures.csv"
    ccsv.write_text(
        "ID,occasion,trapID,count\n"
        + "".join(
            f"{a},{s + 1},{traps.ids[k]},{ch.counts[i, s, k]}\n"
            for i, a in enumerate(ch.ids)
            for s, k in zip(*np.nonzero(ch.counts[i]), strict=True)
        )
    )
    files = write_search_files(survey.search, tmp_path, "scats")
    back = read_search_files(files["trapfile"], files["captfile"], "polygon")
    assert back.ids == survey.search.ids and np.allclose(back.xy, survey.search.xy[
        np.lexsort((survey.search.occasion, survey.search.animal))])  # fmt: skip
    args = ["secr", "fit-joint", "--traps", str(tcsv), "--captures", str(ccsv),
            "--search-parts", files["trapfile"], "--search-captures", files["captfile"],
            "--search-detector", "polygon", "--buffer", "8000", "--spacing", "1500",
            "--json"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    mask, _ = _survey_mask(JointSurvey(ch, back), 8000, 1500)
    assert doc["loglik"] == pytest.approx(fit_joint(JointSurvey(ch, back), mask).loglik, abs=1e-6)
    assert doc["survey"]["search_detector"] == "polygon"
    # a place on no polygon is named by file and line
    lines = (tmp_path / "scats_captXY.txt").read_text().splitlines()
    lines[1] = "1 X9 1 50000 50000"
    (tmp_path / "scats_captXY.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        BadInputError, match=r"scats_captXY.txt:line 2: \(50000, 50000\) lies on no"
    ):
        read_search_files(files["trapfile"], files["captfile"], "polygon")
