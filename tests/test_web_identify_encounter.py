"""The review queue works per encounter: one item and one decision per sequence."""

from __future__ import annotations

from sqlalchemy import func, select

from irbis.store.schema import Annotation, AuditEntry, Individual, MatchDecision

from .test_web_api import (
    _now,
    build_project,
    client_of,  # noqa: F401  (fixture)
    unannotated_sequence,
)


def _encounter(project, ids: dict, proposals: list[list[str]]) -> list[int]:
    """Unconfirmed annotations on the frames of one sequence, with the given proposals."""
    names = {"Khan": ids["khan"], "Bora": ids["bora"]}
    with project.session() as s:
        media = unannotated_sequence(s, len(proposals))
        out = []
        for mid, cands in zip(media, proposals, strict=False):
            a = Annotation(
                media_id=mid, side="left", created_utc=_now(), x=0, y=0, width=1, height=1
            )
            s.add(a)
            s.flush()
            for rank, name in enumerate(cands, 1):
                s.add(
                    MatchDecision(
                        annotation_id=a.id,
                        individual_id=names[name],
                        decision="proposed",
                        rank=rank,
                        score=5.0,
                        probability=0.5,
                        matches={
                            "annotation_id": ids["known_a"],
                            "query_xy": [],
                            "match_xy": [],
                            # Later frames' candidates were found on the first frame.
                            **({"via_annotation_id": out[0]} if out else {}),
                        },
                        side="left",
                        by="model:irbis-reid",
                        created_utc=_now(),
                    )
                )
            out.append(a.id)
        s.commit()
    return out


def test_one_item_and_one_decision_per_encounter(project, client_of):  # noqa: F811
    ids = build_project(project)
    frames = _encounter(project, ids, [["Khan", "Bora"], ["Khan", "Bora"], ["Bora"]])
    c = client_of(project)
    queue = c.get("/api/annotations").json()
    # The lone query of build_project is its own encounter; the sequence is one item.
    assert queue["pending"] == 4 and queue["pending_encounters"] == 2
    by_id = {x["id"]: x for x in queue["items"]}
    assert set(by_id) == {ids["query"], frames[0]}
    assert by_id[frames[0]]["encounter"]["pending"] == frames
    assert by_id[ids["query"]]["encounter"]["pending"] == [ids["query"]]
    detail = c.get(f"/api/annotations/{frames[1]}").json()
    assert detail["proposals"][0]["matches"]["via_annotation_id"] == frames[0]
    every = c.get("/api/annotations", params={"by_encounter": "false"}).json()
    assert sorted(x["id"] for x in every["items"]) == sorted([ids["query"], *frames])

    # A reviewer accepting Khan for the encounter settles the frames Khan was
    # proposed for; the frame that never had Khan as a candidate stays for a person.
    from irbis.web.identify import Decision, decide

    d = Decision("accept", version=0, individual_id=ids["khan"], encounter=True)
    assert decide(project, frames[0], d, "tara")["annotations"] == frames[:2]
    with project.session() as s:
        got = dict(s.execute(select(Annotation.id, Annotation.individual_id)).tuples().all())
        assert [got[f] for f in frames] == [ids["khan"], ids["khan"], None]
        audited = s.scalars(
            select(AuditEntry.target).where(AuditEntry.target == f"annotation:{frames[1]}")
        ).all()
        assert audited == [f"annotation:{frames[1]}"]
    queue = c.get("/api/annotations").json()
    assert queue["pending"] == 2 and {x["id"] for x in queue["items"]} == {ids["query"], frames[2]}

    # Without encounter=True a decision is the frame's alone (an admin, through the API).
    r = c.post(
        f"/api/annotations/{frames[2]}/decision",
        json={"decision": "new", "version": 0, "name": "Pia"},
    )
    assert r.status_code == 200 and r.json()["annotations"] == [frames[2]]


def test_a_new_individual_for_the_whole_encounter(project, client_of):  # noqa: F811
    ids = build_project(project)
    frames = _encounter(project, ids, [["Bora"], ["Khan"], ["Bora", "Khan"]])
    c = client_of(project)
    r = c.post(
        f"/api/annotations/{frames[0]}/decision",
        json={"decision": "new", "version": 0, "name": "Tigr", "encounter": True},
    )
    assert r.status_code == 200, r.text
    assert r.json()["annotations"] == frames
    with project.session() as s:
        tigr = s.scalar(select(Individual.id).where(Individual.name == "Tigr"))
        got = s.scalars(select(Annotation.individual_id).where(Annotation.id.in_(frames))).all()
        assert got == [tigr] * 3
        assert s.scalar(select(func.count()).select_from(Individual)) == 3  # one new, not three
