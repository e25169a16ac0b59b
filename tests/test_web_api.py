"""The review app's JSON API on a real card (camtrapR sample images), on SQLite and PostgreSQL.

Every endpoint is exercised with good and bad ids and payloads; labelling is
checked for provenance (nothing deleted, previous labels retracted), for the
optimistic version check (409) and for undo; roles and the generalisation of
sensitive stations are checked with real users and tokens.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from irbis.store.schema import (
    Annotation,
    DetectionBox,
    Individual,
    MatchDecision,
    Media,
    MediaDetection,
    Observation,
    SequenceVerdict,
)

from .conftest import need_data

CAMTRAPR = ("cameratrap", "camtrapR")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def unannotated_sequence(s, n: int) -> list[int]:
    """Media ids, in time order, of the first sequence with ``n`` or more photos
    that no annotation is on yet (only those photos)."""
    used = set(s.scalars(select(Annotation.media_id)).all())
    seq = s.execute(
        select(Media.sequence_id)
        .where(Media.sequence_id.is_not(None), Media.id.not_in(used))
        .group_by(Media.sequence_id)
        .having(func.count() >= n)
        .order_by(Media.sequence_id)
    ).first()[0]
    return list(
        s.scalars(
            select(Media.id)
            .where(Media.sequence_id == seq, Media.id.not_in(used))
            .order_by(Media.timestamp_local, Media.id)
        )
    )


def build_project(project):
    """Ingest camtrapR's species_dir card and add what later stages would write.

    Adds a detector result (verdict, boxes) for every sequence of StationA and
    an identification set-up: two known individuals, one confirmed annotation
    each at StationA/StationB, and one unconfirmed annotation at StationC with
    two machine proposals carrying matched keypoints.
    """
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    import_registry(project, need_data(*CAMTRAPR, "oracle", "camtraps.csv"), date_format="%d/%m/%Y")
    ingest(
        project,
        need_data(*CAMTRAPR, "pictures", "sample_images_species_dir"),
        layout="station/species",
    )
    now = _now()
    with project.session() as s:
        rows = s.execute(
            select(Media.id, Media.sequence_id, Media.deployment_id, Media.file_name)
            .where(Media.sequence_id.is_not(None))
            .order_by(Media.id)
        ).all()
        first_dep = min(r[2] for r in rows)
        for mid, sid, dep, _ in rows:
            if dep != first_dep:
                continue
            res = MediaDetection(
                media_id=mid,
                detector="test-detector",
                model="t",
                model_version="1",
                threshold=0.2,
                verdict="animal",
                max_score=0.9,
                n_boxes=1,
                created_utc=now,
            )
            s.add(res)
            s.flush()
            s.add(
                DetectionBox(
                    result_id=res.id,
                    media_id=mid,
                    frame=0,
                    category="animal",
                    score=0.9,
                    x=0.1,
                    y=0.2,
                    width=0.3,
                    height=0.4,
                    source="t",
                )
            )
            if (
                s.scalar(select(SequenceVerdict.id).where(SequenceVerdict.sequence_id == sid))
                is None
            ):
                s.add(
                    SequenceVerdict(
                        sequence_id=sid,
                        detector="test-detector",
                        model="t",
                        model_version="1",
                        threshold=0.2,
                        verdict="animal",
                        best_media_id=mid,
                        best_score=0.9,
                        n_media=1,
                        n_animal=1,
                        created_utc=now,
                    )
                )
        by_dep: dict[int, int] = {}
        for mid, _, dep, _ in rows:
            by_dep.setdefault(dep, mid)
        deps = sorted(by_dep)
        khan = Individual(name="Khan", sex="male", created_by="t", created_utc=now)
        bora = Individual(name="Bora", sex="female", created_by="t", created_utc=now)
        s.add_all([khan, bora])
        s.flush()
        box = dict(x=0.1, y=0.1, width=0.8, height=0.8)
        known_a = Annotation(
            media_id=by_dep[deps[0]],
            side="left",
            individual_id=khan.id,
            quality=0.9,
            created_utc=now,
            **box,
        )
        known_b = Annotation(
            media_id=by_dep[deps[1]],
            side="left",
            individual_id=bora.id,
            quality=0.8,
            created_utc=now,
            **box,
        )
        query = Annotation(media_id=by_dep[deps[2]], side="left", created_utc=now, **box)
        s.add_all([known_a, known_b, query])
        s.flush()
        for rank, (ind, ref) in enumerate(((khan, known_a), (bora, known_b)), 1):
            s.add(
                MatchDecision(
                    annotation_id=query.id,
                    individual_id=ind.id,
                    decision="proposed",
                    rank=rank,
                    score=10.0 / rank,
                    probability=0.9 / rank,
                    matches={
                        "annotation_id": ref.id,
                        "inliers": 2,
                        "query_xy": [[10, 10], [20, 30]],
                        "match_xy": [[12, 11], [25, 28]],
                    },
                    side="left",
                    by="model:irbis-reid",
                    created_utc=now,
                )
            )
        s.commit()
        ids = {
            "query": query.id,
            "khan": khan.id,
            "bora": bora.id,
            "known_a": known_a.id,
            "known_b": known_b.id,
        }
    return ids


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project, token: str | None = None):
        # TestClient sends ``Host: testserver``; local mode answers only the names it is given.
        c = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
        if token:
            c.headers["Authorization"] = f"Bearer {token}"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def _versions(detail: dict) -> dict[str, int]:
    return {str(m["id"]): m["review_version"] for m in detail["media"]}


def test_read_endpoints_and_pagination(project, client_of):
    build_project(project)
    c = client_of(project)
    me = c.get("/api/me").json()
    assert me == {"name": "local", "role": "admin", "precise_locations": True, "local_mode": True}

    ov = c.get("/api/overview").json()
    assert ov["media"] == 69 and ov["cards_imported"] == 1
    # Every photo of the card was sorted into species folders: that is the review.
    assert ov["review"]["reviewed"] == ov["review"]["sequences"] == ov["sequences"]
    assert ov["review"]["to_review"] == 0
    assert ov["individuals"] == 2 and ov["identifications_pending"] == 1

    stations = c.get("/api/stations").json()
    assert [s["name"] for s in stations] == ["StationA", "StationB", "StationC"]
    assert stations[0]["x"] == 526000.0 and stations[0]["y"] == 604000.0

    species = c.get("/api/species").json()
    assert species[0] == "PBE" and "VTA" in species

    # Keyset pages cover every sequence exactly once, in time order.
    seen, after = [], None
    while True:
        page = c.get("/api/sequences", params={"limit": 7, **({"after": after} if after else {})})
        assert page.status_code == 200
        data = page.json()
        seen += data["items"]
        after = data["next"]
        if after is None:
            break
    n_seq = ov["sequences"]
    assert len(seen) == n_seq == len({i["id"] for i in seen})
    assert [i["start_utc"] for i in seen] == sorted(i["start_utc"] for i in seen)
    assert all(i["labels"] and i["labels"][0]["provenance"] == "import" for i in seen)

    # Filters.
    vta = c.get("/api/sequences", params={"species": "VTA", "limit": 500}).json()["items"]
    assert vta and all(any(lab["species"] == "VTA" for lab in i["labels"]) for i in vta)
    st_b = c.get("/api/sequences", params={"station": "StationB", "limit": 500}).json()["items"]
    assert st_b and {i["station"] for i in st_b} == {"StationB"}
    animal = c.get("/api/sequences", params={"verdict": "animal", "limit": 500}).json()["items"]
    assert animal and {i["station"] for i in animal} == {"StationA"}
    assert all(i["confidence"] == pytest.approx(0.9) for i in animal)
    assert c.get("/api/sequences", params={"min_confidence": 0.95}).json()["items"] == []
    none = c.get("/api/sequences", params={"verdict": "none", "limit": 500}).json()["items"]
    assert len(none) + len(animal) == n_seq
    day = seen[0]["start_utc"][:10]
    same_day = c.get("/api/sequences", params={"date_from": day, "date_to": day}).json()["items"]
    assert same_day and all(i["start_utc"].startswith(day) for i in same_day)
    assert c.get("/api/sequences", params={"reviewed": "false"}).json()["items"] == []

    # Detail: media, boxes, observations with provenance; neighbours follow the filters.
    first = animal[0]["id"]
    d = c.get(f"/api/sequences/{first}", params={"verdict": "animal"}).json()
    assert d["verdict"] == "animal" and d["media"][0]["boxes"][0]["category"] == "animal"
    assert d["media"][0]["observations"][0]["provenance"] == "import"
    assert d["neighbours"]["previous"] is None
    assert d["neighbours"]["next"] == (animal[1]["id"] if len(animal) > 1 else None)

    # Media: the original byte for byte, and a cached JPEG thumbnail.
    mid = d["media"][0]["id"]
    raw = c.get(f"/api/media/{mid}/file")
    with project.session() as s:
        sha = s.scalar(select(Media.sha256).where(Media.id == mid))
    assert raw.status_code == 200 and hashlib.sha256(raw.content).hexdigest() == sha
    th = c.get(f"/api/media/{mid}/thumb", params={"size": 160})
    assert th.status_code == 200 and th.content[:2] == b"\xff\xd8"
    assert (project.root / "thumbs" / sha[:2] / f"{sha}_160_n.jpg").exists()

    # Bad ids: 404 with a message naming what is missing.
    for path in (
        "/api/sequences/999999",
        "/api/media/999999/file",
        "/api/media/999999/thumb",
        "/api/annotations/999999",
        "/api/individuals/999999",
    ):
        r = c.get(path)
        assert r.status_code == 404, path
        assert "999999 not found" in r.json()["detail"]
    # Bad filters: 422 naming the parameter.
    for params, word in (
        ({"date_from": "5/4/2009"}, "date_from"),
        ({"limit": 0}, "limit"),
        ({"verdict": "cat"}, "verdict"),
        ({"after": "nonsense"}, "after"),
        ({"min_confidence": "high"}, "min_confidence"),
        ({"reviewed": "maybe"}, "reviewed"),
    ):
        r = c.get("/api/sequences", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"].startswith(word), r.json()


def test_label_conflict_undo_and_bulk(project, client_of):
    build_project(project)
    alice = client_of(project)
    seqs = alice.get("/api/sequences", params={"limit": 500}).json()["items"]
    multi = next(i for i in seqs if i["n_media"] > 1)
    sid = multi["id"]
    seen = alice.get(f"/api/sequences/{sid}").json()
    v0 = _versions(seen)

    r = alice.post(
        f"/api/sequences/{sid}/label", json={"species": "VTA", "count": 2, "versions": v0}
    )
    assert r.status_code == 200, r.text
    v1 = {k: int(v) for k, v in r.json()["versions"].items()}
    assert all(v1[k] == v0[k] + 1 for k in v0)
    d = alice.get(f"/api/sequences/{sid}").json()
    assert d["reviewed"] and d["labels"] == [
        {
            "species": "VTA",
            "type": "animal",
            "count": 2,
            "individual": None,
            "source": "human",
            "by": "local",
            "provenance": "human",
        }
    ]
    # One human observation per media; imported labels kept, not deleted.
    with project.session() as s:
        media_ids = [int(k) for k in v0]
        human = s.scalars(
            select(Observation).where(
                Observation.media_id.in_(media_ids), Observation.source == "human"
            )
        ).all()
        assert len(human) == len(media_ids)
        folder = s.scalar(
            select(func.count()).where(
                Observation.media_id.in_(media_ids), Observation.source == "folder"
            )
        )
        assert folder == len(media_ids)

    # A second reviewer who loaded the sequence before: 409, nothing written.
    stale = alice.post(f"/api/sequences/{sid}/label", json={"blank": True, "versions": v0})
    assert stale.status_code == 409
    msg = stale.json()["detail"]
    assert f"sequence {sid} was changed by local" in msg and "reload" in msg
    with project.session() as s:
        assert s.scalar(
            select(func.count()).where(
                Observation.media_id.in_(media_ids), Observation.source == "human"
            )
        ) == len(v0)

    # Relabel with fresh versions: the first human label is retracted, not deleted.
    r = alice.post(f"/api/sequences/{sid}/label", json={"blank": True, "versions": v1})
    assert r.status_code == 200
    v2 = r.json()["versions"]
    d = alice.get(f"/api/sequences/{sid}").json()
    assert [lab["type"] for lab in d["labels"]] == ["blank"]
    obs = [o for m in d["media"] for o in m["observations"] if o["source"] == "human"]
    assert sum(1 for o in obs if not o["current"]) == len(v0)
    assert all(o["retracted_by"] == "local" for o in obs if not o["current"])
    assert (
        alice.get("/api/sequences", params={"species": "blank", "limit": 500}).json()["items"][0][
            "id"
        ]
        == sid
    )

    # Undo brings the VTA label back (as new rows), a second undo the imported labels.
    r = alice.post(f"/api/sequences/{sid}/undo", json={"versions": v2})
    assert r.status_code == 200, r.text
    d = alice.get(f"/api/sequences/{sid}").json()
    assert [(lab["species"], lab["count"]) for lab in d["labels"]] == [("VTA", 2)]
    r = alice.post(f"/api/sequences/{sid}/undo", json={"versions": _versions(d)})
    assert r.status_code == 200
    d = alice.get(f"/api/sequences/{sid}").json()
    # The folder's label again: still reviewed (sorted into a species folder).
    assert d["reviewed"] and {lab["provenance"] for lab in d["labels"]} == {"import"}
    r = alice.post(f"/api/sequences/{sid}/undo", json={"versions": _versions(d)})
    assert r.status_code == 422 and "no human label to undo" in r.json()["detail"]
    stale_undo = alice.post(f"/api/sequences/{sid}/undo", json={"versions": v0})
    assert stale_undo.status_code in (409, 422)

    # Bulk: all or nothing.
    a, b = seqs[0], seqs[1]
    items = [
        {"sequence_id": i["id"], "versions": {str(m["id"]): m["version"] for m in i["media"]}}
        for i in (a, b)
    ]
    bad = [items[0], {**items[1], "versions": {k: v + 5 for k, v in items[1]["versions"].items()}}]
    r = alice.post("/api/sequences/label", json={"species": "PBE", "items": bad})
    assert r.status_code == 409
    assert {
        lab["provenance"] for lab in alice.get(f"/api/sequences/{a['id']}").json()["labels"]
    } == {"import"}
    r = alice.post("/api/sequences/label", json={"species": "PBE", "count": 1, "items": items})
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    pbe = alice.get("/api/sequences", params={"species": "PBE", "limit": 500}).json()["items"]
    for i in (a, b):
        tile = next(t for t in pbe if t["id"] == i["id"])
        assert [(lab["provenance"], lab["by"]) for lab in tile["labels"]] == [("human", "local")]

    # Bad payloads: 422 with a one-line reason.
    vv = _versions(alice.get(f"/api/sequences/{a['id']}").json())
    cases = [
        ({"species": "VTA", "blank": True, "versions": vv}, "blank and a species"),
        ({"versions": vv}, "no species and not blank"),
        ({"species": "VTA"}, "versions: Field required"),
        ({"species": "VTA", "versions": {"999999": 0}}, "versions must list exactly"),
        ({"species": "VTA", "versions": vv, "colour": "red"}, "colour: Extra inputs"),
        ({"species": "VTA", "count": "many", "versions": vv}, "count: Input should be"),
    ]
    for body, text in cases:
        r = alice.post(f"/api/sequences/{a['id']}/label", json=body)
        assert r.status_code == 422, body
        assert text in r.json()["detail"], r.json()["detail"]
    assert (
        alice.post(
            "/api/sequences/999999/label", json={"species": "VTA", "versions": {}}
        ).status_code
        == 404
    )
    assert alice.post("/api/sequences/label", json={"species": "x", "items": []}).status_code == 422


def test_identification_review_and_individuals(project, client_of):
    ids = build_project(project)
    c = client_of(project)
    queue = c.get("/api/annotations").json()
    assert queue["pending"] == 1 and queue["items"][0]["id"] == ids["query"]
    assert [x["name"] for x in queue["items"][0]["candidates"]] == ["Khan", "Bora"]
    ann = c.get(f"/api/annotations/{ids['query']}").json()
    top = ann["proposals"][0]
    assert top["matches"]["query_xy"] == [[10, 10], [20, 30]]
    assert top["photo"]["annotation_id"] == ids["known_a"]

    url = f"/api/annotations/{ids['query']}/decision"
    # Reject Khan; a stale version is then a conflict; accept Bora with the flank side.
    r = c.post(
        url, json={"decision": "reject", "individual_id": ids["khan"], "version": 0, "side": "left"}
    )
    assert r.status_code == 200 and r.json()["decision"] == "different"
    assert c.get("/api/annotations").json()["pending"] == 1
    r = c.post(url, json={"decision": "accept", "individual_id": ids["bora"], "version": 0})
    assert r.status_code == 409 and "reload" in r.json()["detail"]
    r = c.post(
        url,
        json={"decision": "accept", "individual_id": ids["bora"], "version": 1, "side": "right"},
    )
    assert r.status_code == 200 and r.json()["individual"] == "Bora"
    assert c.get("/api/annotations").json()["pending"] == 0
    ann = c.get(f"/api/annotations/{ids['query']}").json()
    assert ann["individual"]["name"] == "Bora" and ann["side"] == "right"
    assert [(d["decision"], d["by"]) for d in ann["decisions"]] == [
        ("different", "local"),
        ("same", "local"),
    ]

    # Bad decisions.
    for body, text in (
        ({"decision": "maybe", "version": 2}, "decision: Input should be"),
        ({"decision": "accept", "version": 2}, "accept needs the candidate"),
        ({"decision": "accept", "version": 2, "individual_id": 999999}, "999999 not found"),
        ({"decision": "unsure", "version": 2, "side": "top"}, "side: Input should be"),
    ):
        r = c.post(url, json=body)
        assert r.status_code in (404, 422), body
        assert text in r.json()["detail"], r.json()["detail"]

    # A new individual from the known annotation of Khan (re-decided as new).
    r = c.post(
        f"/api/annotations/{ids['known_a']}/decision",
        json={"decision": "new", "version": 0, "name": "Bora"},
    )
    assert r.status_code == 422 and "name is taken" in r.json()["detail"]
    r = c.post(
        f"/api/annotations/{ids['known_a']}/decision",
        json={"decision": "new", "version": 0, "name": "Ayan", "sex": "female"},
    )
    assert r.status_code == 200 and r.json()["individual"] == "Ayan"

    inds = c.get("/api/individuals").json()
    assert [i["name"] for i in inds] == ["Ayan", "Bora", "Khan"]
    bora = c.get(f"/api/individuals/{ids['bora']}").json()
    assert {s["name"] for s in bora["stations"]} == {"StationB", "StationC"}
    assert bora["range"] is None  # two stations: no polygon
    assert bora["photos"]["left"][0]["annotation_id"] == ids["known_b"]
    assert len(bora["sightings"]) == 2

    # Merge Ayan (StationA) into Bora: three stations, a minimum convex polygon.
    ayan = inds[0]["id"]
    r = c.post(f"/api/individuals/{ayan}/merge", json={"into": ids["bora"]})
    assert r.status_code == 200 and r.json() == {"merged": ayan, "into": ids["bora"]}
    bora = c.get(f"/api/individuals/{ids['bora']}").json()
    assert bora["merged"] == ["Ayan"] and len(bora["stations"]) == 3
    # Triangle A (526000, 604000), B (523000, 606000), C (525000, 607050): area by hand.
    area = (
        abs(526000 * (606000 - 607050) + 523000 * (607050 - 604000) + 525000 * (604000 - 606000))
        / 2
    )
    assert bora["range"]["area_km2"] == pytest.approx(area / 1e6, abs=1e-3)
    assert c.get(f"/api/individuals/{ayan}").json()["merged_into"] == ids["bora"]
    assert [i["name"] for i in c.get("/api/individuals").json()] == ["Bora", "Khan"]
    r = c.post(f"/api/individuals/{ayan}/merge", json={"into": ids["bora"]})
    assert r.status_code == 422
    assert c.post(f"/api/individuals/{ids['khan']}/merge", json={"into": 999999}).status_code == 404
    assert c.post(f"/api/individuals/{ids['khan']}/merge", json={}).status_code == 422


def test_roles_tokens_and_login(project, client_of):
    from irbis.web.auth import create_user

    ids = build_project(project)
    tokens = {role: create_user(project, role, role) for role in ("viewer", "reviewer", "admin")}
    anon = client_of(project)
    r = anon.get("/api/overview")
    assert r.status_code == 401 and "log in" in r.json()["detail"]
    page = anon.get("/sequences", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert client_of(project, "wrong").get("/api/me").status_code == 401

    viewer = client_of(project, tokens["viewer"])
    assert viewer.get("/api/me").json()["role"] == "viewer"
    item = viewer.get("/api/sequences").json()["items"][0]
    vv = {str(m["id"]): m["version"] for m in item["media"]}
    r = viewer.post(f"/api/sequences/{item['id']}/label", json={"species": "VTA", "versions": vv})
    assert r.status_code == 403 and "needs the reviewer role" in r.json()["detail"]
    r = viewer.post(
        f"/api/annotations/{ids['query']}/decision", json={"decision": "unsure", "version": 0}
    )
    assert r.status_code == 403

    reviewer = client_of(project, tokens["reviewer"])
    r = reviewer.post(f"/api/sequences/{item['id']}/label", json={"species": "VTA", "versions": vv})
    assert r.status_code == 200
    d = reviewer.get(f"/api/sequences/{item['id']}").json()
    assert d["labels"][0]["by"] == "reviewer"
    r = reviewer.post(f"/api/individuals/{ids['khan']}/merge", json={"into": ids["bora"]})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    admin = client_of(project, tokens["admin"])
    r = admin.post(f"/api/individuals/{ids['khan']}/merge", json={"into": ids["bora"]})
    assert r.status_code == 200

    # The login form sets a cookie that then authenticates pages and API calls.
    form = client_of(project)
    bad = form.post("/login", data={"token": "nope", "next": "/sequences"})
    assert bad.status_code == 401 and "unknown user name or token" in bad.text
    ok = form.post(
        "/login",
        data={"token": tokens["viewer"], "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert form.get("/api/me").json()["name"] == "viewer"
    assert form.get("/sequences").status_code == 200
    with project.session() as s:
        from irbis.store.schema import User

        hashes = s.scalars(select(User.token_hash)).all()
    assert all(tok not in hashes for tok in tokens.values())  # only hashes are stored


def test_sensitive_station_generalised(project, client_of):
    from irbis.web.auth import create_user

    ids = build_project(project)
    # Leopard cats (PBE) were photographed at every station; make them sensitive.
    project.settings.extra.update({"sensitive_species": ["PBE"], "public_precision_deg": 0.1})
    project.save_settings()
    plain = client_of(project, create_user(project, "ranger", "viewer"))
    cleared = client_of(
        project, create_user(project, "scientist", "viewer", precise_locations=True)
    )
    step = 0.1 * 111_320.0
    for st in plain.get("/api/stations").json():
        assert st["sensitive"] and st["generalised"]
        assert (st["x"] / step) % 1 == pytest.approx(0.5, abs=1e-6)
    precise = {s["name"]: (s["x"], s["y"]) for s in cleared.get("/api/stations").json()}
    assert precise["StationA"] == (526000.0, 604000.0)
    # Individuals of a sensitive species: stations generalised on their page too.
    with project.session() as s:
        s.get(Individual, ids["khan"]).species = "PBE"
        s.commit()
    khan = plain.get(f"/api/individuals/{ids['khan']}").json()
    assert khan["generalised"] and khan["stations"][0]["x"] != 526000.0
    khan = cleared.get(f"/api/individuals/{ids['khan']}").json()
    assert not khan["generalised"] and khan["stations"][0]["x"] == 526000.0
    # Not sensitive any more: everyone sees the stations precisely.
    project.settings.extra["sensitive_species"] = []
    project.save_settings()
    assert plain.get("/api/stations").json()[0]["x"] == 526000.0


def test_pages_docs_and_no_external_urls(project, client_of):
    ids = build_project(project)
    c = client_of(project)
    seq = c.get("/api/sequences").json()["items"][0]["id"]
    pages = [
        "/",
        "/map",
        "/sequences",
        f"/sequences/{seq}",
        "/identify",
        f"/identify/{ids['query']}",
        "/individuals",
        f"/individuals/{ids['bora']}",
        "/census",
        "/docs",
        "/login",
    ]
    assets = [
        "/static/app.css",
        "/static/common.js",
        "/static/grid.js",
        "/static/viewer.js",
        "/static/identify.js",
        "/static/map.js",
        "/static/crops.js",
        "/static/individual.js",
        "/vendor/leaflet/leaflet.js",
        "/vendor/leaflet/leaflet.css",
    ]
    for path in pages + assets:
        r = c.get(path)
        assert r.status_code == 200, path
        if path.startswith("/vendor"):
            continue  # Leaflet's own source mentions its homepage in comments only
        # XML namespace names (SVG) are identifiers, never fetched.
        text = r.text.replace("http://www.w3.org/", "")
        for bad in ("https://", "http://", "cdn.", "//unpkg", "//fonts."):
            assert bad not in text, (path, bad)
    docs = c.get("/docs").text
    assert "/api/sequences/{seq_id}/label" in docs and "LabelIn" in docs
    schema = c.get("/openapi.json").json()
    assert "/api/annotations/{ann_id}/decision" in schema["paths"]
    assert c.get("/redoc").status_code == 404
    r = c.get("/sequences", params={"date_from": "yesterday"})
    assert r.status_code == 200 and "date_from" in r.text
    assert c.get("/sequences/999999", headers={"Accept": "text/html"}).status_code == 404


def test_users_cli_prints_token_once(project):
    from typer.testing import CliRunner

    from irbis.cli.app import app
    from irbis.web.auth import resolve_user

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "users",
            "add",
            str(project.root),
            "tara",
            "--role",
            "admin",
            "--precise-locations",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    import json

    token = json.loads(res.stdout)["token"]
    user = resolve_user(project, token)
    assert (user.name, user.role, user.precise_locations) == ("tara", "admin", True)
    bad = runner.invoke(app, ["users", "add", str(project.root), "x", "--role", "boss"])
    assert bad.exit_code != 0
