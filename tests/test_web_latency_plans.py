"""The grid's fast filters answer exactly what the plain definition of each filter says.

The sequence grid filters on precomputed summaries (``sequence_labels``,
irbis.store.sequence_summary) walked in grid order. Here, on the real
camtrapR card after people have labelled some sequences, every label filter
is compared with the same filter computed one sequence at a time from
sequence_detail (which reads the observations themselves), page after page.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from irbis.store.schema import Media, Observation
from irbis.web import cache, labels, sequences
from irbis.web.app import allowed_hosts_for, create_app

from .test_web_api import build_project


def _all_ids(project, q: sequences.SequenceQuery) -> list[int]:
    """Every matching id, page after page (pages of 2 to exercise the cursor)."""
    out: list[int] = []
    q.limit = 2
    while True:
        page = sequences.list_sequences(project, q)
        out += [item["id"] for item in page["items"]]
        if not page["next"]:
            return out
        q.after = page["next"]


def _expected(details: list[dict], species: str | None, reviewed: bool | None) -> list[int]:
    out = []
    for d in details:
        if reviewed is not None and d["reviewed"] != reviewed:
            continue
        if species is not None:
            names = {"blank" if lab["type"] == "blank" else lab["species"] for lab in d["labels"]}
            if species not in names:
                continue
        out.append(d["id"])
    return out


def test_label_filters_match_their_definition(project):
    build_project(project)
    cache.clear(project.root)
    everything = sequences.list_sequences(project, sequences.SequenceQuery(limit=500))["items"]
    assert len(everything) >= 6
    # Sorting into species folders counts as reviewed: every third sequence is
    # made unsorted (its folder labels removed) so both answers of the filter occur.
    unsorted = [item["id"] for item in everything[1::3]]
    with project.session() as s:
        mids = s.scalars(select(Media.id).where(Media.sequence_id.in_(unsorted))).all()
        s.execute(delete(Observation).where(Observation.media_id.in_(mids)))
        s.commit()
    # People label a few sequences: one with the species it already had, one
    # with another species, one blank; the rest keep their folder labels.
    first = sequences.sequence_detail(project, everything[0]["id"])
    own = next(lab["species"] for lab in first["labels"] if lab["species"])
    plan = [
        (everything[0]["id"], labels.Label(species=own, count=1)),
        (everything[2]["id"], labels.Label(species="Panthera uncia", count=2)),
        (everything[4]["id"], labels.Label(blank=True)),
    ]
    for sid, label in plan:
        d = sequences.sequence_detail(project, sid)
        versions = {m["id"]: m["review_version"] for m in d["media"]}
        labels.label_sequences(project, [(sid, versions)], label, "tester")

    # Time order, as the grid shows them.
    details = [sequences.sequence_detail(project, item["id"]) for item in everything]
    labelled = {sid for sid, _ in plan}
    sorted_ids = {item["id"] for item in everything} - set(unsorted)
    assert {d["id"] for d in details if d["reviewed"]} == labelled | sorted_ids
    names = {lab["species"] for d in details for lab in d["labels"] if lab["species"]}
    for species in [None, "blank", "Panthera uncia", *sorted(names), "Nonexistent species"]:
        for reviewed in (None, True, False):
            if species is None and reviewed is None:
                continue
            q = sequences.SequenceQuery(species=species, reviewed=reviewed)
            assert _all_ids(project, q) == _expected(details, species, reviewed), (
                species,
                reviewed,
            )
    # Previous/next in the viewer follow the same filters.
    q = sequences.SequenceQuery(reviewed=False)
    ids = _expected(details, None, False)
    nb = sequences.neighbours(project, q, ids[1])
    assert nb == {"previous": ids[0], "next": ids[2] if len(ids) > 2 else None}


def test_server_timing_header(project):
    build_project(project)
    with TestClient(create_app(project, allowed_hosts_for(extra=("testserver",)))) as c:
        r = c.get("/api/sequences?limit=5")
    assert r.status_code == 200
    name, _, dur = r.headers["server-timing"].partition(";dur=")
    assert name == "app" and float(dur) >= 0


def test_cache_serves_stale_while_one_thread_refreshes(tmp_path):
    key = (tmp_path, "test")
    calls: list[int] = []
    release = threading.Event()

    def compute() -> int:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return len(calls)

    assert cache.cached(key, 0.05, compute) == 1
    time.sleep(0.06)
    # Expired: both answered at once with the old value; one refresh runs.
    assert cache.cached(key, 0.05, compute) == 1
    assert cache.cached(key, 0.05, compute) == 1
    release.set()
    for _ in range(100):
        if cache.cached(key, 60, compute) == 2:
            break
        time.sleep(0.02)
    assert len(calls) == 2
    assert cache.cached(key, 60, compute) == 2
    # A write clears it: the next call computes in the request.
    cache.clear(tmp_path)
    assert cache.cached(key, 60, compute) == 3
