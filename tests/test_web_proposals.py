"""The classifier's proposals in the review grid (API): shown, sorted, filtered, accepted.

camtrapR's real card is ingested by station only (nobody has labelled
anything); the proposals are written for a few sequences as ``irbis classify``
writes them (:func:`irbis.pipeline.species_stage.write_proposal`) with chosen
probabilities, so every order and filter has a known answer. Accepting one is
checked in the database (who, when, which model said what), in undo and in the
Camtrap DP export.
"""

from __future__ import annotations

import csv

import numpy as np
from sqlalchemy import select

from irbis.store.schema import Media, MediaGroup, Observation

from .conftest import need_data
from .test_web_api import CAMTRAPR, _versions, client_of  # noqa: F401 - the fixture

LABELS = ("ibex", "argali", "wolf")
#: Per proposed sequence (in id order): probabilities of LABELS. Threshold 0.5.
PROBS = [
    [0.93, 0.05, 0.02],  # ibex 0.93, margin 0.88
    [0.40, 0.35, 0.25],  # unknown (ibex 0.40), margin 0.05
    [0.10, 0.80, 0.10],  # argali 0.80, margin 0.70
    [0.55, 0.44, 0.01],  # ibex 0.55, margin 0.11
    [0.05, 0.25, 0.70],  # wolf 0.70, margin 0.45
]


def _ingest(project) -> None:
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    import_registry(
        project,
        need_data(*CAMTRAPR, "oracle", "camtraps.csv"),
        date_format="%d/%m/%Y",
        crs="EPSG:32650",
    )
    ingest(project, need_data(*CAMTRAPR, "pictures", "sample_images_species_dir"), layout="station")


def propose(project, probs=PROBS, model: str = "demo-species-v1") -> list[int]:
    """Write proposals for the first ``len(probs)`` sequences; their ids in that order."""
    from irbis.pipeline.species_stage import write_proposal

    with project.session() as s:
        seqs = s.scalars(
            select(MediaGroup.id).where(MediaGroup.kind == "sequence").order_by(MediaGroup.id)
        ).all()[: len(probs)]
        for sid, p in zip(seqs, probs, strict=True):
            media = s.scalars(select(Media.id).where(Media.sequence_id == sid)).all()
            write_proposal(
                s,
                media,
                np.asarray(p),
                LABELS,
                model=model,
                version="202612061000-abc",
                threshold=0.5,
                sequence_id=sid,
            )
        s.commit()
    return list(seqs)


def _ids(c, **params) -> list[int]:
    r = c.get("/api/sequences", params=params)
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["items"]]


def test_grid_shows_sorts_and_filters_by_proposal(project, client_of) -> None:  # noqa: F811
    _ingest(project)
    seqs = propose(project)
    c = client_of(project)
    page = c.get("/api/sequences", params={"limit": 500}).json()["items"]
    shown = {i["id"]: i["proposal"] for i in page}
    assert shown[seqs[0]] == {
        "species": "ibex",
        "best": "ibex",
        "probability": 0.93,
        "margin": 0.88,
        "model": "demo-species-v1",
    }
    assert shown[seqs[1]]["species"] is None and shown[seqs[1]]["best"] == "ibex"
    assert sum(v is not None for v in shown.values()) == 5

    # Most probable first; least probable first; lowest margin first.
    assert _ids(c, sort="probability") == [seqs[i] for i in (0, 2, 4, 3, 1)]
    assert _ids(c, sort="uncertain") == [seqs[i] for i in (1, 3, 4, 2, 0)]
    assert _ids(c, sort="margin") == [seqs[i] for i in (1, 3, 4, 2, 0)]
    # Pages of two follow the same order to the end.
    got, after = [], None
    while True:
        params = {"sort": "margin", "limit": 2} | ({"after": after} if after else {})
        r = c.get("/api/sequences", params=params).json()
        got += [i["id"] for i in r["items"]]
        after = r["next"]
        if not after:
            break
    assert got == [seqs[i] for i in (1, 3, 4, 2, 0)]
    # Filters: proposed species, unsure, probability bounds, combined with the order.
    assert _ids(c, proposed="ibex", sort="probability") == [seqs[0], seqs[3]]
    assert _ids(c, proposed="unknown") == [seqs[1]]
    assert set(_ids(c, proposed="any")) == set(seqs)
    assert _ids(c, min_probability="0.6", max_probability="0.9", sort="probability") == [
        seqs[2],
        seqs[4],
    ]
    # Previous / next of the detail page follow the order too.
    nb = c.get(f"/api/sequences/{seqs[4]}", params={"sort": "margin"}).json()["neighbours"]
    assert nb == {"previous": seqs[3], "next": seqs[2]}
    # A cursor of another order, an unknown order, a probability out of range: one line.
    for params, word in (
        ({"sort": "best"}, "sort"),
        ({"sort": "margin", "after": r["next"] or "bm9wZQ=="}, "after"),
        ({"max_probability": "2"}, "max_probability"),
    ):
        r2 = c.get("/api/sequences", params=params)
        assert r2.status_code == 422 and r2.json()["detail"].startswith(word), r2.text
    # The HTML grid shows it on the tile.
    html = c.get("/sequences", params={"sort": "probability"}).text
    assert "proposed: ibex 0.93" in html and "proposed: unknown (ibex?) 0.40" in html


def test_accept_is_machine_proposed_person_confirmed(project, client_of, tmp_path) -> None:  # noqa: F811
    from irbis.exchange.camtrapdp_export import export_camtrapdp

    _ingest(project)
    seqs = propose(project)
    c = client_of(project)
    sid = seqs[0]
    v0 = _versions(c.get(f"/api/sequences/{sid}").json())

    # The client showed another species (the model ran again since): nothing written.
    r = c.post(f"/api/sequences/{sid}/accept", json={"versions": v0, "species": "wolf"})
    assert r.status_code == 409 and "now ibex 0.93" in r.json()["detail"]
    r = c.post(f"/api/sequences/{sid}/accept", json={"versions": v0, "species": "ibex"})
    assert r.status_code == 200, r.text
    assert r.json()["species"] == "ibex"
    d = c.get(f"/api/sequences/{sid}").json()
    assert d["reviewed"] and [(lab["species"], lab["provenance"]) for lab in d["labels"]] == [
        ("ibex", "human")
    ]
    with project.session() as s:
        rows = s.scalars(
            select(Observation)
            .join(Media, Media.id == Observation.media_id)
            .where(Media.sequence_id == sid, Observation.retracted_utc.is_(None))
            .order_by(Observation.id)
        ).all()
    human = [o for o in rows if o.source == "human"]
    machine = [o for o in rows if o.source == "model:demo-species-v1"]
    assert len(human) == len(machine) == len(v0)  # the model's rows stay beside
    for o in human:
        assert o.by == "local" and o.species == "ibex" and o.created_utc is not None
        assert o.extra["proposal"] == {
            "model": "demo-species-v1",
            "by": "demo-species-v1 202612061000-abc",
            "species": "ibex",
            "probability": 0.93,
            "margin": 0.88,
            "accepted_by": "local",
        }

    # Unsure, no proposal, stale versions: refused in one line, nothing written.
    v_unsure = _versions(c.get(f"/api/sequences/{seqs[1]}").json())
    r = c.post(f"/api/sequences/{seqs[1]}/accept", json={"versions": v_unsure})
    assert r.status_code == 422 and "unsure (best ibex 0.40" in r.json()["detail"]
    other = next(i["id"] for i in c.get("/api/sequences").json()["items"] if i["id"] not in seqs)
    v_other = _versions(c.get(f"/api/sequences/{other}").json())
    r = c.post(f"/api/sequences/{other}/accept", json={"versions": v_other})
    assert r.status_code == 422 and "no species proposal" in r.json()["detail"]
    r = c.post(f"/api/sequences/{sid}/accept", json={"versions": v0})
    assert r.status_code == 409

    # The export: the person's row and the machine's row, each as what it is.
    pkg = export_camtrapdp(project, tmp_path / "dp", public=False)
    assert pkg.validation.valid
    with open(tmp_path / "dp" / "observations.csv", newline="") as fh:
        obs = list(csv.DictReader(fh))
    mids = {m["mediaID"] for m in obs}
    assert mids  # the card has trusted times
    person = [r for r in obs if "machine-proposed-person-confirmed" in r["observationTags"]]
    model = [r for r in obs if r["classifiedBy"].startswith("demo-species-v1")]
    assert len(person) == len(v0) and len(model) >= len(v0)
    for row in person:
        assert row["classificationMethod"] == "human" and row["classifiedBy"] == "local"
        assert row["classificationTimestamp"] and row["classificationProbability"] == ""
        assert "proposedBy:demo-species-v1 202612061000-abc" in row["observationTags"]
        assert "proposedProbability:0.93" in row["observationTags"]
    accepted = {r["mediaID"] for r in person}
    for row in model:
        assert row["classificationMethod"] == "machine"
        assert 0 < float(row["classificationProbability"]) <= 1
    assert accepted <= {r["mediaID"] for r in model}

    # Undo takes the accepted label back like any label.
    v1 = {k: v + 1 for k, v in v0.items()}
    r = c.post(f"/api/sequences/{sid}/undo", json={"versions": v1})
    assert r.status_code == 200, r.text
    d = c.get(f"/api/sequences/{sid}").json()
    assert not d["reviewed"] and d["labels"][0]["provenance"] == "machine"


def test_margin_queue_puts_unreviewed_first_by_margin(project, client_of) -> None:  # noqa: F811
    """The active-learning queue: not yet reviewed, smallest margin first."""
    _ingest(project)
    seqs = propose(project)
    c = client_of(project)
    v = _versions(c.get(f"/api/sequences/{seqs[3]}").json())
    assert c.post(f"/api/sequences/{seqs[3]}/accept", json={"versions": v}).status_code == 200
    assert _ids(c, sort="margin", reviewed="false") == [seqs[i] for i in (1, 4, 2, 0)]
    # The same queue from the command line's side.
    from irbis.pipeline.species_stage import review_queue

    queue = review_queue(project, 3)
    assert [q["sequence_id"] for q in queue] == [seqs[i] for i in (1, 4, 2)]
    assert queue[0] == {
        "sequence_id": seqs[1],
        "species": None,
        "best": "ibex",
        "probability": 0.4,
        "margin": 0.05,
    }
