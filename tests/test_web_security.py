"""What the review app refuses to serve or accept, on the real camtrapR card (SQLite and
PostgreSQL).

Media rows are rewritten the way a hostile or broken Camtrap DP package would
leave them (paths out of the project, HTML declared as a photo); photos with
GPS Exif are written by the test; bad ids, dates and names are sent as a
client would. Each test fails on the code before these fixes.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from irbis.store.schema import Annotation, Deployment, Individual, Media, Observation, Station

from .test_web_api import _now, build_project

HOSTS = ("testserver",)


@pytest.fixture
def client_of():
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    clients = []

    def make(project, token: str | None = None, hosts=HOSTS):
        c = TestClient(create_app(project, allowed_hosts_for(extra=hosts)))
        if token:
            c.headers["Authorization"] = f"Bearer {token}"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def _media_ids(project) -> list[int]:
    """Ids of the card's photos (it has a few videos too)."""
    with project.session() as s:
        return list(
            s.scalars(select(Media.id).where(Media.mediatype == "image").order_by(Media.id)).all()
        )


def _point_media(project, media_id: int, **values) -> None:
    """Rewrite one media row as an imported package might have left it.

    A package's reference original comes with the sha256 it was read with;
    the app serves such a file only while it still has that content.
    """
    path = Path(values.get("stored_path", ""))
    if values.get("storage") == "reference" and path.is_absolute() and path.is_file():
        values.setdefault("sha256", hashlib.sha256(path.read_bytes()).hexdigest())
    with project.session() as s:
        m = s.get(Media, media_id)
        for k, v in values.items():
            setattr(m, k, v)
        s.commit()


def _jpeg_with_gps(path: Path) -> bytes:
    """A real JPEG with camera Exif, a GPS IFD and an XMP packet naming the place."""
    from PIL import Image

    img = Image.new("RGB", (96, 64))
    img.putdata(
        [((x * 7) % 256, (y * 11) % 256, (x * y) % 256) for y in range(64) for x in range(96)]
    )
    exif = Image.Exif()
    exif[0x010F] = "TrailCam"  # Make
    exif[0x0112] = 1  # Orientation
    exif.get_ifd(0x8769)[0x9003] = "2024:03:01 04:05:06"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (43.0, 12.0, 30.5), 3: "E", 4: (77.0, 5.0, 1.25)})
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
        b'exif:GPSLatitude="43,12.508N"/></rdf:RDF></x:xmpmeta>'
    )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes(), xmp=xmp)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


# -- A: only photos and videos from where irbis keeps them ---------------------------------


def test_media_served_only_from_store_and_only_images(project, client_of, tmp_path):
    build_project(project)
    c = client_of(project)
    good, m1, m2, m3, m4, m5 = _media_ids(project)[:6]

    r = c.get(f"/api/media/{good}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    thumb = c.get(f"/api/media/{good}/thumb")
    assert thumb.status_code == 200 and thumb.headers["x-content-type-options"] == "nosniff"
    # Every response says nosniff, not only files.
    assert c.get("/api/me").headers["x-content-type-options"] == "nosniff"
    assert (
        c.get("/", headers={"Accept": "text/html"}).headers["x-content-type-options"] == "nosniff"
    )

    page = tmp_path / "evil.html"
    page.write_text("<html><script>alert(document.cookie)</script></html>")
    svg = tmp_path / "evil.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    _point_media(project, m1, storage="reference", stored_path="/etc/passwd")
    _point_media(project, m2, storage="reference", stored_path="../../etc/hostname")
    _point_media(project, m3, storage="copy", stored_path="../../../../../../etc/passwd")
    _point_media(project, m4, storage="reference", stored_path=str(page), mime="text/html")
    _point_media(project, m5, storage="reference", stored_path=str(svg), mime="image/svg+xml")
    for mid in (m1, m2, m3, m4, m5):
        for kind in ("file", "thumb"):
            r = c.get(f"/api/media/{mid}/{kind}")
            assert r.status_code in (404, 415), (mid, kind, r.status_code)
            assert "root:" not in r.text and "<script" not in r.text and "<svg" not in r.text
            assert f"media {mid}" in r.json()["detail"]
    # HTML that claims to be a JPEG is refused by its bytes.
    _point_media(project, m4, mime="image/jpeg", storage="reference", stored_path=str(page))
    r = c.get(f"/api/media/{m4}/file")
    assert r.status_code == 415 and "not a image file by its content" in r.json()["detail"]
    # A real photo ingested by reference (absolute path) is served, typed by its bytes.
    ref = tmp_path / "ref.jpg"
    _jpeg_with_gps(ref)
    _point_media(project, m1, storage="reference", stored_path=str(ref), mime="image/png")
    r = c.get(f"/api/media/{m1}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == ref.read_bytes()  # local mode: full rights, the original unchanged


# -- C: no GPS in originals for users without precise locations ---------------------------


def test_originals_lose_gps_for_users_without_precise_locations(project, client_of, tmp_path):
    from PIL import Image

    from irbis.web.auth import create_user

    build_project(project)
    mid = _media_ids(project)[0]
    photo = tmp_path / "gps.jpg"
    original = _jpeg_with_gps(photo)
    assert Image.open(photo).getexif().get_ifd(0x8825)  # the test photo does carry a place
    _point_media(project, mid, storage="reference", stored_path=str(photo), mime="image/jpeg")
    ranger = client_of(project, create_user(project, "ranger", "viewer"))
    scientist = client_of(
        project, create_user(project, "scientist", "viewer", precise_locations=True)
    )

    r = ranger.get(f"/api/media/{mid}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    served = Image.open(io.BytesIO(r.content))
    exif = served.getexif()
    assert 0x8825 not in exif and not exif.get_ifd(0x8825)
    assert b"GPSLatitude" not in r.content and b"43,12.508N" not in r.content
    # The rest of the Exif stays; the pixels are the original's, not recompressed.
    assert exif[0x010F] == "TrailCam" and exif.get_ifd(0x8769)[0x9003] == "2024:03:01 04:05:06"
    assert served.tobytes() == Image.open(photo).tobytes()
    sos = original.index(b"\xff\xda")
    assert r.content.endswith(original[sos:])

    precise = scientist.get(f"/api/media/{mid}/file")
    assert precise.status_code == 200 and precise.content == original


# -- D: stations of identified snow leopards are sensitive --------------------------------


def test_individuals_make_their_stations_sensitive(project, client_of):
    from irbis.core.sensitivity import LocationPolicy
    from irbis.web.auth import create_user

    assert LocationPolicy().is_sensitive("snowleopard")
    ids = build_project(project)
    with project.session() as s:
        # Folder labels (PBE, VTA, ...) are not sensitive; only the individuals are.
        for key in ("khan", "bora"):
            s.get(Individual, ids[key]).species = "snowleopard"
        s.commit()

        def station_of_annotation(ann_id: int) -> str:
            return s.scalar(
                select(Station.name)
                .join(Deployment, Deployment.station_id == Station.id)
                .join(Media, Media.deployment_id == Deployment.id)
                .join(Annotation, Annotation.media_id == Media.id)
                .where(Annotation.id == ann_id)
            )

        by_annotation = {
            station_of_annotation(ids["known_a"]),
            station_of_annotation(ids["known_b"]),
        }
        query_station = station_of_annotation(ids["query"])
    assert query_station not in by_annotation
    ranger = client_of(project, create_user(project, "ranger", "viewer"))

    def sensitive() -> set[str]:
        from irbis.web import cache

        cache.clear(project.root)
        rows = ranger.get("/api/stations").json()
        for st in rows:
            assert st["generalised"] == st["sensitive"]
        return {st["name"] for st in rows if st["sensitive"]}

    assert sensitive() == by_annotation
    # An observation naming an individual (no species string) counts too,
    # at media level and at event level; a retracted one does not.
    with project.session() as s:
        media, dep = s.execute(
            select(Media.id, Media.deployment_id)
            .join(Deployment, Deployment.id == Media.deployment_id)
            .join(Station, Station.id == Deployment.station_id)
            .where(Station.name == query_station)
            .limit(1)
        ).one()
        by_media = Observation(
            media_id=media,
            level="media",
            species=None,
            individual_id=ids["khan"],
            source="human",
            by="t",
            created_utc=_now(),
            extra={},
        )
        s.add(by_media)
        s.commit()
        media_obs = by_media.id
    assert sensitive() == by_annotation | {query_station}
    with project.session() as s:
        s.get(Observation, media_obs).retracted_utc = _now()
        s.commit()
    assert sensitive() == by_annotation
    with project.session() as s:
        s.add(
            Observation(
                media_id=None,
                deployment_id=dep,
                level="event",
                species=None,
                individual_id=ids["bora"],
                event_start_utc=_now(),
                event_end_utc=_now(),
                source="human",
                by="t",
                created_utc=_now(),
                extra={},
            )
        )
        s.commit()
    assert sensitive() == by_annotation | {query_station}


# -- E: bad input is a 4xx with a message, never a 500 ------------------------------------


def test_bad_ids_dates_and_files_are_client_errors(project, client_of, tmp_path):
    ids = build_project(project)
    c = client_of(project)
    huge = "99999999999999999999"
    assert c.get("/api/sequences", params={"date_to": "9999-12-31"}).status_code == 200
    assert c.get("/api/sequences", params={"date_from": "0001-01-01"}).status_code == 200
    for path in (
        f"/api/media/{huge}/file",
        f"/api/media/{huge}/thumb",
        f"/api/sequences/{huge}",
        f"/api/annotations/{huge}",
        f"/api/individuals/{huge}",
        f"/api/annotations?after={huge}",
    ):
        r = c.get(path)
        assert r.status_code == 422, (path, r.status_code)
        assert "less than or equal" in r.json()["detail"], path
    r = c.post(f"/api/individuals/{ids['khan']}/merge", json={"into": int(huge)})
    assert r.status_code == 422
    r = c.post(
        f"/api/annotations/{ids['query']}/decision",
        json={"decision": "accept", "version": 0, "individual_id": int(huge)},
    )
    assert r.status_code == 422
    seq = c.get("/api/sequences").json()["items"][0]["id"]
    r = c.post(f"/api/sequences/{seq}/label", json={"species": "VTA", "versions": {huge: 0}})
    assert r.status_code == 422
    import base64

    cursor = base64.urlsafe_b64encode(f"2020-01-01T00:00:00|{huge}".encode()).decode()
    r = c.get("/api/sequences", params={"after": cursor})
    assert r.status_code == 422 and "cursor" in r.json()["detail"]
    # A file that starts like a JPEG but is damaged: 422 naming it, not a 500.
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    mid = _media_ids(project)[0]
    _point_media(project, mid, storage="reference", stored_path=str(broken), mime="image/jpeg")
    r = c.get(f"/api/media/{mid}/thumb")
    assert r.status_code == 422 and "broken.jpg cannot be decoded" in r.json()["detail"]


def test_concurrent_new_individuals_get_distinct_names(project):
    """A reviewer's 'new' decision racing another's insert of the same SL-NNN name."""
    from irbis.web import identify

    ids = build_project(project)
    with project.session() as s:
        n = len(s.scalars(select(Individual.id)).all())
    clash = f"SL-{n + 1:03d}"
    result: dict = {}

    def decide() -> None:
        try:
            result["out"] = identify.decide(
                project, ids["query"], identify.Decision("new", version=0), "reviewer"
            )
        except Exception as e:  # reported by the assertion below
            result["error"] = e

    # Another reviewer's transaction has inserted the next name but not committed.
    other = project.session()
    other.add(Individual(name=clash, created_by="other", created_utc=_now()))
    other.flush()
    t = threading.Thread(target=decide)
    t.start()
    time.sleep(1.0)  # let decide() reach its own insert of the same name, and wait there
    other.commit()
    other.close()
    t.join(timeout=60)
    assert not t.is_alive()
    assert "error" not in result, repr(result.get("error"))
    assert result["out"]["individual"] not in (None, clash)
    assert result["out"]["individual"].startswith("SL-")
    # A name the reviewer chose that exists is refused clearly.
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    with TestClient(create_app(project, allowed_hosts_for(extra=HOSTS))) as c:
        ann = c.get(f"/api/annotations/{ids['known_a']}").json()
        r = c.post(
            f"/api/annotations/{ids['known_a']}/decision",
            json={"decision": "new", "version": ann["version"], "name": clash},
        )
        assert r.status_code in (409, 422) and "taken" in r.json()["detail"]


# -- F: merges never loop, and a looped chain is not followed forever ----------------------


def test_merge_loops_refused_and_not_followed(project, client_of):
    ids = build_project(project)
    c = client_of(project)
    khan, bora = ids["khan"], ids["bora"]
    assert c.post(f"/api/individuals/{khan}/merge", json={"into": bora}).status_code == 200
    r = c.post(f"/api/individuals/{bora}/merge", json={"into": khan})
    assert r.status_code == 409 and "loop" in r.json()["detail"]
    assert c.post(f"/api/individuals/{bora}/merge", json={"into": bora}).status_code == 422
    with project.session() as s:
        assert s.get(Individual, bora).merged_into_id is None
        # Damaged data (a loop written by hand): reading it must end.
        s.get(Individual, bora).merged_into_id = khan
        s.commit()
    result: dict = {}

    def call() -> None:
        result["r"] = c.post(
            f"/api/annotations/{ids['query']}/decision",
            json={"decision": "accept", "version": 0, "individual_id": khan},
        )

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "following a loop of merges never ended"
    assert result["r"].status_code == 409 and "loop" in result["r"].json()["detail"]


def test_merge_racing_the_opposite_merge(project):
    """Two admins merge the same pair in opposite directions at once: one wins, no loop."""
    from irbis.web.individuals import merge_individuals

    ids = build_project(project)
    khan, bora = ids["khan"], ids["bora"]
    first = project.session()
    # The first admin's merge, written but not committed yet; on SQLite this
    # transaction holds the write lock, on PostgreSQL the row.
    first.get(Individual, khan).merged_into_id = bora
    first.flush()
    result: dict = {}

    def second() -> None:
        try:
            result["out"] = merge_individuals(project, bora, khan, "admin2")
        except Exception as e:
            result["error"] = e

    t = threading.Thread(target=second)
    t.start()
    time.sleep(1.0)
    first.commit()
    first.close()
    t.join(timeout=60)
    assert not t.is_alive()
    from irbis.web.errors import ConflictError

    assert isinstance(result.get("error"), ConflictError), result
    with project.session() as s:
        assert s.get(Individual, bora).merged_into_id is None
        assert s.get(Individual, khan).merged_into_id == bora


# -- G, H, I: census refits, reserved names, trimmed individual names ---------------------


def test_census_refit_is_a_reviewer_post(project, client_of):
    from irbis.web.auth import create_user

    build_project(project)
    viewer = client_of(project, create_user(project, "ranger", "viewer"))
    r = viewer.get("/api/census", params={"refresh": "true"})
    assert r.status_code == 422 and "POST /api/census/refit" in r.json()["detail"]
    r = viewer.post("/api/census/refit")
    assert r.status_code == 403 and "reviewer" in r.json()["detail"]
    page = viewer.get("/census")
    assert page.status_code == 200 and 'id="compute"' not in page.text


def test_user_names_starting_with_model_are_reserved(project):
    from irbis.core.errors import BadInputError
    from irbis.web.auth import create_user

    for name in ("model", "model:irbis-reid", "Modeller"):
        with pytest.raises(BadInputError, match="reserved for machine results"):
            create_user(project, name, "reviewer")
    assert create_user(project, "amodel", "reviewer")


def test_individual_names_in_labels_are_trimmed(project, client_of):
    build_project(project)
    c = client_of(project)
    items = c.get("/api/sequences", params={"limit": 2}).json()["items"]
    for item, given, stored in ((items[0], "  ", None), (items[1], "  Khan ", "Khan")):
        versions = {str(m["id"]): m["version"] for m in item["media"]}
        r = c.post(
            f"/api/sequences/{item['id']}/label",
            json={"species": "VTA", "individual": given, "versions": versions},
        )
        assert r.status_code == 200
        media = [m["id"] for m in item["media"]]
        with project.session() as s:
            names = s.scalars(
                select(Observation.individual).where(
                    Observation.media_id.in_(media),
                    Observation.source == "human",
                    Observation.retracted_utc.is_(None),
                )
            ).all()
        assert names and set(names) == {stored}


# -- J: local mode answers only requests addressed to this machine ------------------------


def test_local_mode_checks_the_host_header(project, client_of):
    from irbis.web.app import allowed_hosts_for
    from irbis.web.auth import create_user

    build_project(project)
    c = client_of(project, hosts=())
    for host in ("localhost", "127.0.0.1:8765", "[::1]:8765", "LOCALHOST:1"):
        assert c.get("/api/me", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8765", "testserver", "127.0.0.1.evil.example"):
        r = c.get("/api/me", headers={"Host": host})
        assert r.status_code == 400 and "local mode" in r.json()["detail"], host
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "field-laptop" in allowed_hosts_for("field-laptop")
    lan = allowed_hosts_for("0.0.0.0")
    from fastapi.testclient import TestClient

    from irbis.web import create_app

    with TestClient(create_app(project, lan)) as any_ip:
        assert any_ip.get("/api/me", headers={"Host": "192.168.1.20:8765"}).status_code == 200
        assert any_ip.get("/api/me", headers={"Host": "rebind.example"}).status_code == 400
    # With users, tokens guard the app and any Host name is answered.
    token = create_user(project, "ranger", "viewer")
    r = c.get("/api/me", headers={"Host": "irbis.example.org", "Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def test_nul_characters_are_client_errors(project, client_of):
    """PostgreSQL text cannot hold NUL: every way one comes in is a one-line 4xx, not a 500."""
    ids = build_project(project)
    c = client_of(project)
    seq = c.get("/api/sequences").json()["items"][0]
    detail = c.get(f"/api/sequences/{seq['id']}").json()
    versions = {str(m["id"]): m["review_version"] for m in detail["media"]}
    gets = [
        ("/api/sequences", {"species": "VTA\x00"}),
        ("/api/sequences", {"station": "Station\x00A"}),
        ("/api/sequences", {"verdict": "\x00"}),
        ("/api/sequences", {"date_from": "2009-04-01\x00"}),
        ("/sequences", {"species": "\x00"}),
        (f"/api/sequences/{seq['id']}", {"species": "a\x00b"}),
    ]
    for path, params in gets:
        r = c.get(path, params=params)
        assert 400 <= r.status_code < 500, (path, params, r.status_code)
        detail = r.json()["detail"]
        assert "NUL" in detail and "\n" not in detail, detail
    posts = [
        (f"/api/sequences/{seq['id']}/label", {"species": "VTA\x00", "versions": versions}),
        (
            f"/api/sequences/{seq['id']}/label",
            {"species": "VTA", "comments": "x\x00", "versions": versions},
        ),
        (
            f"/api/sequences/{seq['id']}/label",
            {"species": "PBE", "individual": "Khan\x00", "versions": versions},
        ),
        (
            f"/api/sequences/{seq['id']}/observations",
            {"observations": [{"species": "VTA", "behavior": "\x00"}], "versions": versions},
        ),
        (
            "/api/sequences/label",
            {"items": [{"sequence_id": seq["id"], "versions": versions}], "species": "\x00VTA"},
        ),
        ("/api/species", {"label": "Ursus\x00", "scientific_name": "Ursus arctos"}),
        (
            f"/api/annotations/{ids['query']}/decision",
            {"decision": "new", "version": 0, "name": "Khan\x00II"},
        ),
    ]
    for path, body in posts:
        r = c.post(path, json=body)
        assert 400 <= r.status_code < 500, (path, body, r.status_code)
        assert "NUL" in r.json()["detail"], r.json()
    # Nothing was stored, and the same requests without the NUL still work.
    r = c.post(f"/api/sequences/{seq['id']}/label", json={"species": "VTA", "versions": versions})
    assert r.status_code == 200, r.text
    with project.session() as s:
        assert not any("\x00" in (o.species or "") for o in s.scalars(select(Observation)))
