"""Two ``irbis ingest`` processes at once on one PostgreSQL project, reviewers labelling.

Before: the second process died on a unique violation of ``media.sha256``
(the same file on both cards) or a foreign-key violation on
``sequence_summaries`` (a sequence deleted by the other process's
regrouping), and sequence links open in reviewers' browsers turned 404.
Now both runs finish, every file is stored once, and every link opened
before the ingests still answers (directly or by a redirect).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.ingest.registry import save_registry
from irbis.ingest.runner import ingest
from irbis.store import Project
from irbis.store.schema import (
    IngestBatch,
    Media,
    MediaGroup,
    Rejection,
    SequenceDirty,
    SequenceSummary,
)
from irbis.store.sequence_summary import refresh

from .cards import jpeg_bytes

STATIONS = ["SLG-01", "SLG-02"]
T0 = datetime(2026, 2, 1, 6, 0, 0)

RUN = textwrap.dedent(
    """
    import sys
    from irbis.store import Project
    from irbis.ingest.runner import ingest
    p = Project.open(sys.argv[1])
    r = ingest(p, sys.argv[2], workers=1)
    print("new", r.n_new, "dup", r.n_duplicate)
    """
)


# An ingest that stops inside its first batch until the file GO exists.
PAUSED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from irbis.store import Project
    from irbis.ingest.runner import ingest
    flag, go = Path(sys.argv[3]), Path(sys.argv[4])
    def progress(done, total, rel):
        if done == 1:
            flag.touch()
            while not go.exists():
                time.sleep(0.05)
    ingest(Project.open(sys.argv[1]), sys.argv[2], progress=progress, workers=1)
    """
)


def _card(root: Path, bursts: list[tuple[int, float]], seed: int) -> set[str]:
    """Bursts of 3 frames ``(station index, hours after T0)``; returns the file names."""
    names = set()
    for n, (st, hours) in enumerate(bursts):
        folder = root / STATIONS[st]
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(3):
            name = f"S{seed}_{n:03d}_{k}.JPG"
            t = T0 + timedelta(hours=hours, seconds=k)
            (folder / name).write_bytes(
                jpeg_bytes(t, size=(64, 48), seed=seed * 10000 + n * 10 + k)
            )
            names.add(name)
    return names


def _start(root: Path, card: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(root), str(card)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Reviewer(threading.Thread):
    """Opens the given sequence links and labels them until told to stop."""

    def __init__(self, client, seq_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.client, self.seq_ids = client, seq_ids
        self.stop = threading.Event()
        self.bad: list[tuple[str, int, str]] = []
        self.labelled = self.bulk_labelled = 0

    def run(self) -> None:
        while not self.stop.is_set():
            bulk = []
            for sid in self.seq_ids:
                got = self.client.get(f"/api/sequences/{sid}")
                if got.status_code != 200:
                    self.bad.append((f"GET {sid}", got.status_code, got.text[:200]))
                    continue
                detail = got.json()
                versions = {str(m["id"]): m["review_version"] for m in detail["media"]}
                bulk.append({"sequence_id": detail["id"], "versions": versions})
                res = self.client.post(
                    f"/api/sequences/{detail['id']}/label",
                    json={"species": "Panthera uncia", "count": 1, "versions": versions},
                )
                # 409/422: the sequence changed since it was read, which is fine.
                if res.status_code not in (200, 409, 422):
                    self.bad.append((f"POST {sid}", res.status_code, res.text[:200]))
                else:
                    self.labelled += res.status_code == 200
            # Every sequence at once, the latest first (against the id order).
            bulk = [{**it, "versions": self._fresh(it["sequence_id"])} for it in bulk[::-1]]
            res = self.client.post(
                "/api/sequences/label", json={"items": bulk, "species": "Capra sibirica"}
            )
            if res.status_code not in (200, 404, 409, 422):
                self.bad.append(("POST bulk", res.status_code, res.text[:200]))
            else:
                self.bulk_labelled += res.status_code == 200

    def _fresh(self, sid: int) -> dict[str, int]:
        got = self.client.get(f"/api/sequences/{sid}")
        if got.status_code != 200:
            return {}
        return {str(m["id"]): m["review_version"] for m in got.json()["media"]}


def test_two_ingests_and_a_reviewer_at_once(pg_database: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from irbis.web import create_app
    from irbis.web.app import allowed_hosts_for

    root = tmp_path / "project"
    project = Project.init(root, db_url=pg_database)
    _registry(project)
    # The census so far: bursts 4 h apart at both stations, and two a minute apart.
    pair = [(1, 0.5), (1, 0.5 + 60 / 3600)]
    base = _card(
        tmp_path / "base", [(st, 4.0 * i) for i in range(8) for st in (0, 1)] + pair, seed=1
    )
    ingest(project, tmp_path / "base")
    refresh(project.engine)
    with project.session() as s:
        opened = sorted(s.scalars(select(MediaGroup.id).where(MediaGroup.kind == "sequence")))
    assert len(opened) == 18

    # Card X and card Y share their files (the same card copied twice) and add
    # frames that grow, join and follow the census's sequences at both stations.
    shared = [(st, 4.0 * i + 0.004) for i in range(8) for st in (0, 1)]  # 14 s after each burst
    # A frame 31 s after the pair's first burst joins the two.
    bridge = [(1, 0.5 + 31 / 3600)]
    x = _card(tmp_path / "x", shared + [(0, 2.0 + i) for i in range(6)] + bridge, seed=2)
    _card(tmp_path / "y", shared, seed=2)
    y = x | _card(tmp_path / "y", [(1, 2.0 + i) for i in range(6)] + [(0, 40.0)], seed=3)
    z = _card(tmp_path / "z", [(st, 50.0 + i) for i in range(10) for st in (0, 1)], seed=4)

    client = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
    reviewer = Reviewer(client, opened)
    reviewer.start()
    try:
        outcomes = []
        # Different cards touching the same deployments, then one card twice.
        for first, second in (("x", "y"), ("z", "z")):
            procs = [_start(root, tmp_path / first), _start(root, tmp_path / second)]
            outcomes += [(p.wait(timeout=240), *p.communicate()) for p in procs]
    finally:
        reviewer.stop.set()
        reviewer.join(timeout=60)
        client.close()

    for rc, _out, err in outcomes:
        assert rc == 0, err[-3000:]
    assert reviewer.bad == []
    assert reviewer.labelled > 0
    print(f"labels {reviewer.labelled}, bulk labels {reviewer.bulk_labelled}")
    with project.session() as s:
        names = list(s.scalars(select(Media.file_name)))
        rejected = [(r.relpath, r.reason) for r in s.scalars(select(Rejection))]
        missing = sorted((base | x | y | z) - set(names))
        assert len(names) == len(set(names)) == len(base | x | y | z), (missing, rejected)
        # Every frame is in a live sequence whose count is its frames.
        assert s.scalar(select(func.count()).where(Media.sequence_id.is_(None))) == 0
        counts = dict(
            s.execute(select(Media.sequence_id, func.count()).group_by(Media.sequence_id)).all()
        )
        live = dict(
            s.execute(
                select(MediaGroup.id, MediaGroup.n_media).where(MediaGroup.kind == "sequence")
            ).all()
        )
        assert counts == live
    refresh(project.engine)
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(SequenceDirty)) == 0
        assert set(s.scalars(select(SequenceSummary.sequence_id))) == set(live)
    # Every link opened before still leads to a sequence.
    client = TestClient(create_app(project, allowed_hosts_for(extra=("testserver",))))
    with client:
        answers = [client.get(f"/api/sequences/{sid}") for sid in opened]
        assert [r.status_code for r in answers] == [200] * len(opened)
        # The pair's later sequence was joined to the earlier: its link is redirected.
        assert [r.history[0].status_code for r in answers if r.history] == [308]
    project.close()


def _registry(project: Project) -> None:
    save_registry(
        project,
        [StationRecord(name=s) for s in STATIONS],
        [
            DeploymentRecord(
                code=f"{s}-A",
                station=s,
                start=datetime(2026, 1, 1),
                end=datetime(2026, 6, 1),
                timezone="UTC",
            )
            for s in STATIONS
        ],
    )


def _wait_for(what, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _status(project: Project, card: Path) -> list[str]:
    with project.session() as s:
        return list(
            s.scalars(
                select(IngestBatch.status)
                .where(IngestBatch.source == str(card.resolve()))
                .order_by(IngestBatch.id)
            )
        )


def test_a_running_ingest_stays_running(pg_database: str, tmp_path: Path) -> None:
    """A second run marks dead runs' batches interrupted, not one still at work."""
    root = tmp_path / "project"
    project = Project.init(root, db_url=pg_database)
    _registry(project)
    cards = {n: tmp_path / n for n in "abcd"}
    for seed, card in enumerate(cards.values(), 1):
        _card(card, [(0, 1.0 * i + seed * 10) for i in range(3)], seed=seed)
    flag, go = tmp_path / "paused", tmp_path / "go"
    a = subprocess.Popen(
        [sys.executable, "-c", PAUSED, str(root), str(cards["a"]), str(flag), str(go)]
    )
    _wait_for(flag.exists)
    b = _start(root, cards["b"])  # waits for a's batch to commit before writing its own
    _wait_for(lambda: _status(project, cards["b"]) == ["running"])
    assert _status(project, cards["a"]) == ["running"]
    go.touch()
    assert a.wait(timeout=120) == 0 and b.wait(timeout=120) == 0, b.communicate()[1][-2000:]
    assert _status(project, cards["a"]) == _status(project, cards["b"]) == ["done"]

    # A run killed midway: the next one marks its batch interrupted.
    flag.unlink()
    go.unlink()
    c = subprocess.Popen(
        [sys.executable, "-c", PAUSED, str(root), str(cards["c"]), str(flag), str(go)]
    )
    _wait_for(flag.exists)
    c.kill()
    c.wait(timeout=60)
    ingest(project, cards["d"])
    assert _status(project, cards["c"]) == ["interrupted"]
    assert _status(project, cards["d"]) == ["done"]
    project.close()
