"""The catalogue's first/last seen dates come from trusted times only (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from irbis.store.schema import Annotation, Individual, Media
from irbis.web.individuals import list_individuals

from .test_records_individuals import ingest_indiv_card


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _annotate(s, media_id: int, individual_id: int) -> None:
    s.add(
        Annotation(
            media_id=media_id,
            x=0.1,
            y=0.1,
            width=0.5,
            height=0.5,
            side="left",
            source="human",
            by="tara",
            individual_id=individual_id,
            created_utc=_now(),
        )
    )


def test_untrusted_photo_is_counted_but_gives_no_date(project, tmp_path):
    ingest_indiv_card(project, tmp_path, stations=("StationA",))
    with project.session() as s:
        media = {m.file_name: m for m in s.scalars(select(Media))}
        trusted = media["StationA__2009-04-21__00-40-00(1).JPG"]
        reset = media["StationA__2009-05-07__17-11-00(1).JPG"]
        # A camera whose clock reset: the photo reads 2000 and is flagged.
        reset.timestamp_local = datetime(2000, 1, 17, 9, 30)
        reset.timestamp_utc = datetime(2000, 1, 17, 9, 30)
        reset.time_flag = "outside_deployment"
        khan = Individual(name="Khan", created_utc=_now())
        ghost = Individual(name="Ghost", created_utc=_now())
        s.add_all([khan, ghost])
        s.flush()
        _annotate(s, trusted.id, khan.id)
        _annotate(s, reset.id, khan.id)
        _annotate(s, reset.id, ghost.id)
        s.commit()
    rows = {r["name"]: r for r in list_individuals(project)}
    assert rows["Khan"]["annotations"] == 2  # both photos are of Khan
    assert rows["Khan"]["first_seen"] == "2009-04-21T00:40:00"
    assert rows["Khan"]["last_seen"] == "2009-04-21T00:40:00"
    # Seen only at an untrusted time: no date rather than a wrong one.
    assert rows["Ghost"]["annotations"] == 1
    assert rows["Ghost"]["first_seen"] is None and rows["Ghost"]["last_seen"] is None


def test_detail_page_gives_no_date_for_an_untrusted_sighting(project, tmp_path):
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    ingest_indiv_card(project, tmp_path, stations=("StationA",))
    with project.session() as s:
        media = {m.file_name: m for m in s.scalars(select(Media))}
        early = media["StationA__2009-04-21__00-40-00(1).JPG"]
        reset = media["StationA__2009-05-07__17-11-00(1).JPG"]
        # The clock reset reads 2000: earlier than every trusted photo, so a
        # time-ordered list would put it first and call it the first sighting.
        reset.timestamp_local = datetime(2000, 1, 17, 9, 30)
        reset.timestamp_utc = datetime(2000, 1, 17, 9, 30)
        reset.time_flag = "outside_deployment"
        khan = Individual(name="Khan", created_utc=_now())
        ghost = Individual(name="Ghost", created_utc=_now())
        s.add_all([khan, ghost])
        s.flush()
        _annotate(s, reset.id, khan.id)
        _annotate(s, early.id, khan.id)
        _annotate(s, reset.id, ghost.id)
        s.commit()
        ids = {"khan": khan.id, "ghost": ghost.id, "early": early.id, "reset": reset.id}

    with TestClient(create_app(project, allowed_hosts_for(extra=("testserver",)))) as c:
        khan = c.get(f"/api/individuals/{ids['khan']}").json()
        sightings = khan["sightings"]
        assert [x["media_id"] for x in sightings] == [ids["early"], ids["reset"]]
        assert sightings[0]["time_trusted"] is True
        assert sightings[0]["time_local"] == "2009-04-21T00:40:00"
        assert sightings[0]["time_flag"] is None
        # The untrusted sighting sorts last, carries the flag and no date.
        assert sightings[1]["time_trusted"] is False
        assert sightings[1]["time_local"] is None
        assert sightings[1]["time_flag"] == "outside_deployment"
        assert khan["first_seen"] == khan["last_seen"] == "2009-04-21T00:40:00"
        # It is still a sighting at its station.
        assert [(st["name"], st["sightings"]) for st in khan["stations"]] == [("StationA", 2)]

        ghost = c.get(f"/api/individuals/{ids['ghost']}").json()
        assert [x["time_trusted"] for x in ghost["sightings"]] == [False]
        assert ghost["sightings"][0]["time_local"] is None
        assert ghost["first_seen"] is None and ghost["last_seen"] is None

        page = c.get(f"/individuals/{ids['khan']}")
        assert page.status_code == 200
        html = page.text
        assert "2009-04-21 00:40" in html
        assert "First seen 2009-04-21 00:40, last seen 2009-04-21 00:40" in html
        assert "time untrusted (clock reset?)" in html and "irbis clock" in html
        assert "2000-01-17" not in html  # neither in the table nor in the page's data
        assert html.index("2009-04-21 00:40</td>") < html.index("time untrusted (clock reset?)")

        html = c.get(f"/individuals/{ids['ghost']}").text
        assert "2000-01-17" not in html
        assert "No sighting with a trusted time yet." in html
        assert "time untrusted (clock reset?)" in html
