"""The species panel's API, per-observation fields and what counts as reviewed (both backends).

camtrapR's card sorted into species folders: its folder labels are a person's
sorting, so its sequences count as reviewed. Observations written through the
API carry Camtrap DP's sex, lifeStage, behavior, count and comments with who
and when, and the Camtrap DP export writes them (scientific names from the
project's species list).
"""

from __future__ import annotations

import csv
import json

from sqlalchemy import func, select

from irbis.store.schema import Media, MediaGroup, Observation
from irbis.store.sequence_summary import current_labels

from .conftest import need_data
from .test_web_api import CAMTRAPR, _versions, client_of  # noqa: F401 - the fixture


def _sorted_card(project) -> None:
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    import_registry(
        project,
        need_data(*CAMTRAPR, "oracle", "camtraps.csv"),
        date_format="%d/%m/%Y",
        crs="EPSG:32650",
    )
    ingest(
        project,
        need_data(*CAMTRAPR, "pictures", "sample_images_species_dir"),
        layout="station/species",
    )


def _multi(project) -> int:
    with project.session() as s:
        return s.scalar(
            select(MediaGroup.id)
            .where(MediaGroup.kind == "sequence", MediaGroup.n_media > 1)
            .order_by(MediaGroup.id)
        )


def test_folder_sorting_counts_as_reviewed_a_model_does_not():
    rows_folder = [("PBE", None, "animal", None, "folder", "")]
    rows_tag = [(None, None, "animal", "Bora", "xmp", "")]
    rows_model = [("PBE", None, "animal", None, "model:zamba", "")]
    rows_empty_folder = [(None, None, "animal", None, "folder", "")]
    assert current_labels(rows_folder)[1]
    assert current_labels(rows_tag)[1]
    assert not current_labels(rows_model)[1]
    assert not current_labels(rows_empty_folder)[1]
    # A person's label in the app still replaces the folder's as the current label.
    labels, reviewed = current_labels([*rows_folder, ("VTA", 1, "animal", None, "human", "ana")])
    assert reviewed and [lab["species"] for lab in labels] == ["VTA"]


def test_species_panel_api(project, client_of):  # noqa: F811
    _sorted_card(project)
    c = client_of(project)
    # Sorted into species folders: every sequence is reviewed, none left to review.
    ov = c.get("/api/overview").json()
    assert ov["review"]["to_review"] == 0 and ov["review"]["reviewed"] == ov["sequences"]
    assert c.get("/api/sequences", params={"reviewed": "false"}).json()["items"] == []

    # A new project without a list: the species observed (most first), keys 1..9.
    panel = c.get("/api/species/panel").json()
    with project.session() as s:
        observed = s.execute(
            select(Observation.species, func.count())
            .group_by(Observation.species)
            .order_by(func.count().desc(), Observation.species)
        ).all()
    assert [p["label"] for p in panel] == [sp for sp, _ in observed]
    assert not any(p["listed"] for p in panel)
    assert [p["key"] for p in panel[:9]] == [str(k) for k in range(1, min(9, len(panel)) + 1)]

    # An older project's list of plain names is read: listed first, then the rest.
    project.settings.extra["species"] = ["VTA", "Panthera uncia"]
    project.save_settings()
    panel = c.get("/api/species/panel").json()
    assert [(p["label"], p["key"], p["listed"]) for p in panel[:3]] == [
        ("VTA", "1", True),
        ("Panthera uncia", "2", True),
        (next(sp for sp, _ in observed if sp != "VTA"), "3", False),
    ]
    assert c.get("/api/species").json()[:2] == ["VTA", "Panthera uncia"]

    # Admins add a species; a key taken, a bad key or a duplicate is a clear 422.
    r = c.post(
        "/api/species", json={"label": "Ovis ammon", "vernacular_name": "argali", "key": "9"}
    )
    assert r.status_code == 200, r.text
    # Filled from irbis's taxa table, as `irbis species add` does.
    from irbis.store.taxa import lookup

    assert r.json() == {
        "label": "Ovis ammon",
        "scientific_name": "Ovis ammon",
        "vernacular_name": "argali",
        "key": "9",
        "listed": True,
        "rank": "species",
        "taxon_id": lookup("Ovis ammon").taxon_id,
        "vernacular_names": {"eng": "argali", "rus": "архар"},
    }
    assert c.get("/api/species").json()[8] == "Ovis ammon"
    for body, text in (
        ({"label": "VTA"}, "already in the list"),
        ({"label": "Lynx lynx", "key": "9"}, "9 is already 'Ovis ammon'"),
        ({"label": "Lynx lynx", "key": "x"}, "not a digit"),
        ({"label": "blank"}, "not a species"),
    ):
        r = c.post("/api/species", json=body)
        assert r.status_code == 422 and text in r.json()["detail"], (body, r.text)
    saved = json.loads((project.root / "irbis.json").read_text())["extra"]["species"]
    assert saved == [
        {"label": "VTA"},
        {"label": "Panthera uncia"},
        {
            "label": "Ovis ammon",
            "scientific_name": "Ovis ammon",
            "vernacular_name": "argali",
            "key": "9",
            "rank": "species",
            **({"taxon_id": t} if (t := lookup("Ovis ammon").taxon_id) else {}),
            "vernacular_names": {"eng": "argali", "rus": "архар"},
        },
    ]

    # Only admins change the list.
    from irbis.web.auth import create_user

    reviewer = client_of(project, create_user(project, "tara", "reviewer"))
    r = reviewer.post("/api/species", json={"label": "Lynx lynx"})
    assert r.status_code == 403
    assert reviewer.get("/api/species/panel").status_code == 200


def test_observation_fields_api_and_export(project, client_of, tmp_path):  # noqa: F811
    from irbis.exchange.camtrapdp_export import export_camtrapdp
    from irbis.store import species
    from irbis.web.auth import create_user

    _sorted_card(project)
    species.add(
        project, "PBE", scientific_name="Prionailurus bengalensis", vernacular_name="leopard cat"
    )
    tara = client_of(project, create_user(project, "tara", "reviewer"))
    omar = client_of(project, create_user(project, "omar", "reviewer"))
    sid = _multi(project)
    seen = tara.get(f"/api/sequences/{sid}").json()
    v0 = _versions(seen)
    body = {
        "versions": v0,
        "observations": [
            {
                "species": "PBE",
                "count": 1,
                "sex": "female",
                "life_stage": "adult",
                "behavior": "scent marking",
                "comments": "collar scar",
            },
            {"species": "PBE", "count": 2, "life_stage": "juvenile"},
        ],
    }
    r = tara.post(f"/api/sequences/{sid}/observations", json=body)
    assert r.status_code == 200, r.text
    d = tara.get(f"/api/sequences/{sid}").json()
    assert d["reviewed"]
    for m in d["media"]:
        cur = [o for o in m["observations"] if o["current"] and o["source"] == "human"]
        assert [
            (o["species"], o["count"], o["sex"], o["life_stage"], o["behavior"], o["comments"])
            for o in cur
        ] == [
            ("PBE", 1, "female", "adult", "scent marking", "collar scar"),
            ("PBE", 2, None, "juvenile", None, ""),
        ]
        assert {o["by"] for o in cur} == {"tara"} and all(o["created_utc"] for o in cur)
        # The folder's label is kept beside them (a person's label is the current one).
        assert any(o["source"] == "folder" for o in m["observations"])
    assert {(lab["species"], lab["by"]) for lab in d["labels"]} == {("PBE", "tara")}

    # Another person who loaded the sequence before: 409 naming tara, nothing written.
    stale = omar.post(f"/api/sequences/{sid}/observations", json=body)
    assert stale.status_code == 409 and "changed by tara" in stale.json()["detail"]
    # Wrong vocabularies and a blank beside an animal: 422, one line.
    v1 = _versions(tara.get(f"/api/sequences/{sid}").json())
    for obs, text in (
        ([{"species": "PBE", "sex": "hermaphrodite"}], "sex"),
        ([{"species": "PBE", "life_stage": "cub"}], "life_stage"),
        ([{"blank": True}, {"species": "PBE"}], "blank beside other observations"),
        ([{"blank": True, "sex": "male"}], "blank with sex"),
        ([], "observations"),
    ):
        r = tara.post(
            f"/api/sequences/{sid}/observations", json={"versions": v1, "observations": obs}
        )
        assert r.status_code == 422 and text in r.json()["detail"], (obs, r.text)
    # A plain label takes the fields too.
    r = tara.post(
        f"/api/sequences/{sid}/label",
        json={"species": "PBE", "count": 3, "sex": "male", "behavior": "walking", "versions": v1},
    )
    assert r.status_code == 200, r.text
    v2 = _versions(tara.get(f"/api/sequences/{sid}").json())
    # Undo: the two observations come back with their fields, as new rows.
    r = tara.post(f"/api/sequences/{sid}/undo", json={"versions": v2})
    assert r.status_code == 200, r.text
    with project.session() as s:
        mid = s.scalar(select(Media.id).where(Media.sequence_id == sid).order_by(Media.id))
        back = s.execute(
            select(Observation.sex, Observation.life_stage, Observation.behavior, Observation.count)
            .where(
                Observation.media_id == mid,
                Observation.source == "human",
                Observation.retracted_utc.is_(None),
            )
            .order_by(Observation.id)
        ).all()
    assert back == [("female", "adult", "scent marking", 1), (None, "juvenile", None, 2)]

    # Camtrap DP: the fields as observation columns, the list's scientific name.
    res = export_camtrapdp(project, tmp_path / "pkg", public=False)
    assert res.validation.valid, res.validation
    with open(tmp_path / "pkg" / "observations.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["classifiedBy"] == "tara"]
    with project.session() as s:
        n_media = s.scalar(select(func.count()).select_from(Media).where(Media.sequence_id == sid))
    assert len(rows) == 2 * n_media
    got = {
        (
            r["scientificName"],
            r["count"],
            r["sex"],
            r["lifeStage"],
            r["behavior"],
            r["observationComments"],
            r["classificationMethod"],
        )
        for r in rows
    }
    assert got == {
        (
            "Prionailurus bengalensis",
            "1",
            "female",
            "adult",
            "scent marking",
            "collar scar",
            "human",
        ),
        ("Prionailurus bengalensis", "2", "", "juvenile", "", "", "human"),
    }
    assert all(r["classificationTimestamp"] for r in rows)
    desc = json.loads((tmp_path / "pkg" / "datapackage.json").read_text())
    taxa = {t["scientificName"]: t for t in desc["taxonomic"]}
    assert taxa["Prionailurus bengalensis"]["vernacularNames"] == {"und": "leopard cat"}
    assert "PBE" not in taxa  # the label is the list's; its scientific name is exported
