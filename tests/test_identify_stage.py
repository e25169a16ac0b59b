"""The identify stage on real snow-leopard photos: annotations, proposals, idempotence."""

from __future__ import annotations

import csv
import shutil
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select

from irbis.exchange.secr_text import project_records
from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.identify_stage import MODEL, run_identify
from irbis.reid import Match, QueryResult
from irbis.reid.burst import burst_ranking, candidate_scores, pool_burst
from irbis.store.schema import Annotation, Individual, MatchDecision, Media, Observation

from .conftest import need_data

TAJIK = ("reid", "snowleopard-tajikistan")
# Three cats, one encounter each: the catalogue gets every other frame, the rest
# are queries (frames of a burst share the flank and pose, so the right answer
# is knowable and the test checks the plumbing, not the matcher's limits).
ENCOUNTERS = {"S06C1_2012-07-10": "Cat2", "S13C1_2012-07-18": "Cat4", "S05C1_2012-07-26": "Cat21"}
PER_ENCOUNTER = 6


def _card(tmp_path):
    root = need_data(*TAJIK)
    with open(root / "labels.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["encounter"] in ENCOUNTERS]
    picked: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["path"]):
        picked.setdefault(r["encounter"], [])
        if len(picked[r["encounter"]]) < PER_ENCOUNTER:
            picked[r["encounter"]].append(r)
    card = tmp_path / "card"
    card.mkdir()
    truth = {}
    times = {}
    for rs in picked.values():
        for r in rs:
            link = card / r["path"].split("/")[-1]
            shutil.copyfile(root / r["path"], link)  # a card in tmp, read-only use
            truth[link.name] = r["individual_id"]
            times[link.name] = datetime.fromisoformat(f"{r['date']}T{r['time']}")
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "station,deployment,start,end,timezone\n"
        "TJ,TJ-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
    )
    return card, registry, picked, truth, times


def test_identify_proposes_the_right_cat_with_keypoints_and_is_idempotent(tmp_path, project):
    card, registry, picked, truth, times = _card(tmp_path)
    import_registry(project, registry)
    result = ingest(project, card, deployment="TJ-2012", storage="reference")
    assert result.n_new == len(truth)
    now = datetime(2026, 11, 25)
    with project.session() as s:
        media = {m.file_name: m for m in s.scalars(select(Media))}
        # These frames carry no EXIF date (the info bar has it): set the times
        # from the labels, as a person reading the bar would.
        for name, m in media.items():
            m.timestamp_local, m.time_flag = times[name], ""
            m.timestamp_utc = times[name] - timedelta(hours=5)
        for name in media:
            s.add(
                Observation(
                    media_id=media[name].id,
                    species="Panthera uncia",
                    count=1,
                    source="human",
                    by="tester",
                    created_utc=now,
                )
            )
        cats = {c: Individual(name=c, created_utc=now) for c in set(truth.values())}
        s.add_all(cats.values())
        s.commit()

    # First run: no catalogue yet, so every annotation is proposed as new.
    first = run_identify(project)
    assert first.annotations_created == len(truth)
    assert first.catalogue_annotations == 0
    assert first.proposed_new == first.queried == len(truth)

    # Confirm every other frame of each burst: that is the catalogue.
    gallery = set()
    for rs in picked.values():
        gallery |= {r["path"].split("/")[-1] for r in rs[::2]}
    with project.session() as s:
        by_name = {i.name: i.id for i in s.scalars(select(Individual))}
        for ann, m in s.execute(select(Annotation, Media).join(Media)):
            if m.file_name in gallery:
                ann.individual_id = by_name[truth[m.file_name]]
                ann.side = "left"
        s.commit()

    # Confirmed crops are captures: they reach the capture histories.
    records = {(r["media_id"], r["individual"]) for r in project_records(project)}
    with project.session() as s:
        for m in s.scalars(select(Media)):
            assert ((m.id, truth[m.file_name]) in records) == (m.file_name in gallery)

    second = run_identify(project)
    assert second.catalogue_individuals == 3
    assert second.catalogue_annotations == len(gallery)
    assert second.queried == len(truth) - len(gallery)
    with project.session() as s:
        names = {i.id: i.name for i in s.scalars(select(Individual))}
        rows = s.execute(
            select(MatchDecision, Media)
            .join(Annotation, Annotation.id == MatchDecision.annotation_id)
            .join(Media, Media.id == Annotation.media_id)
            .where(MatchDecision.by == MODEL, MatchDecision.rank == 1)
        ).all()
        assert len(rows) == second.queried
        right = 0
        for d, m in rows:
            right += names.get(d.individual_id) == truth[m.file_name]
            assert len(d.matches["query_xy"]) == len(d.matches["match_xy"]) == d.matches["inliers"]
            assert 0.0 <= d.probability <= 1.0
        assert right >= 0.8 * len(rows)

    # A rerun against the same catalogue proposes nothing new.
    third = run_identify(project)
    assert third.queried == 0 and third.annotations_created == 0
    with project.session() as s:
        n_decisions = s.scalar(select(func.count(MatchDecision.id)))
        # A person's answer is never replaced by the machine.
        q = s.scalars(select(Annotation).where(Annotation.individual_id.is_(None))).first()
        s.add(MatchDecision(annotation_id=q.id, decision="unsure", by="tester", created_utc=now))
        s.commit()
    fourth = run_identify(project)
    assert fourth.queried == 0
    with project.session() as s:
        assert s.scalar(select(func.count(MatchDecision.id))) == n_decisions + 1


def test_merged_individuals_are_one_animal_in_the_catalogue(tmp_path, project):
    """After a merge the catalogue holds the survivor only, and proposals are redone."""
    card, registry, picked, truth, times = _card(tmp_path)
    import_registry(project, registry)
    ingest(project, card, deployment="TJ-2012", storage="reference")
    now = datetime(2026, 11, 25)
    with project.session() as s:
        for m in s.scalars(select(Media)):
            # the first frame of each burst is labelled with its cat; a blank name is no name
            first = m.file_name == picked_first(picked, truth, m.file_name)
            s.add(
                Observation(
                    media_id=m.id,
                    species="snow leopard",
                    individual=truth[m.file_name] if first else " ",
                    source="human",
                    by="tester",
                    created_utc=now,
                )
            )
        s.commit()
    first = run_identify(project)
    assert first.catalogue_individuals == 3
    with project.session() as s:
        assert "" not in set(s.scalars(select(Individual.name)))
        cats = {i.name: i for i in s.scalars(select(Individual))}
        cats["Cat4"].merged_into_id = cats["Cat2"].id
        s.commit()
    second = run_identify(project)
    assert second.catalogue_individuals == 2
    assert second.queried == first.queried  # the catalogue changed: everything re-proposed
    with project.session() as s:
        proposed = set(
            s.scalars(
                select(MatchDecision.individual_id).where(MatchDecision.individual_id.is_not(None))
            )
        )
        assert cats["Cat4"].id not in proposed


def picked_first(picked, truth, name):
    """The first frame (by path) of the burst ``name`` belongs to."""
    for rs in picked.values():
        names = [r["path"].split("/")[-1] for r in rs]
        if name in names:
            return names[0]
    raise KeyError(name)


def _match(individual: str, score: float) -> Match:
    xy = np.zeros((0, 2))
    return Match(f"a-{individual}", individual, score, 0.5, 0, score, xy, xy)


def test_a_burst_outvotes_one_frame_and_keeps_each_frames_evidence():
    """Frame 2 alone prefers Zara; the burst says Khan: Khan first, and no "same as Zara"."""
    f1 = QueryResult("same", "Khan", 0.97, [_match("Khan", 6.0), _match("Zara", 1.0)], [])
    f2 = QueryResult("same", "Zara", 0.96, [_match("Zara", 3.0), _match("Khan", 2.5)], [])
    f3 = QueryResult("new", None, 0.1, [], [])
    pooled = pool_burst(candidate_scores(f) for f in (f1, f2, f3))
    assert pooled == {"Khan": 8.5, "Zara": 4.0}
    d1, c1 = burst_ranking(f1, pooled)
    d2, c2 = burst_ranking(f2, pooled)
    assert (d1, [c.individual for c in c1]) == ("same", ["Khan", "Zara"])
    assert (d2, [c.individual for c in c2]) == ("unsure", ["Khan", "Zara"])
    assert c2[0] is f2.candidates[1]  # frame 2's own match, with its own keypoints
    assert burst_ranking(f3, pooled) == ("new", [])
    # A frame sure of Khan, alone in proposing him, against a burst that says Zara.
    f4 = QueryResult("same", "Khan", 0.99, [_match("Khan", 5.0)], [])
    crowd = pool_burst([candidate_scores(f4), {"Zara": 60.0}, {"Zara": 40.0}])
    d4, c4 = burst_ranking(f4, crowd)
    assert d4 == "unsure" and [c.individual for c in c4] == ["Khan"]
    # A lone frame (no sequence) is its own burst: nothing changes.
    assert burst_ranking(f2, pool_burst([candidate_scores(f2)])) == ("same", f2.candidates)


def test_the_scene_key_is_the_station_not_the_deployment(project):
    from irbis.pipeline.identify_stage import _reid_annotation

    # Deployments 1 and 2 are two seasons at one station, 3 is elsewhere.
    station_of = {1: 7, 2: 7, 3: 8}
    ann = Annotation(id=1, media_id=1, x=0.0, y=0.0, width=1.0, height=1.0)
    keys = []
    for dep in (1, 2, 3, None):
        media = Media(id=dep or 9, deployment_id=dep, storage="reference", stored_path="/x.jpg")
        ra = _reid_annotation(project, ann, media, None, station_of)
        keys.append((ra.camera, ra.station))
    assert keys[0] == keys[1] == ("station:7", "7")
    assert keys[2] == ("station:8", "8") and keys[3] == (None, None)


def test_machine_crops_follow_the_burst_motion_but_a_persons_box_stands(tmp_path, project):
    from irbis.ingest.grouping import regroup_deployments
    from irbis.pipeline.identify_stage import _FeatureCache, _features, _MotionMasks
    from irbis.reid import Annotation as ReidAnnotation

    root = need_data(*TAJIK)
    with open(root / "labels.csv") as fh:
        burst = sorted(
            (r for r in csv.DictReader(fh) if r["encounter"] == "S05C1_2012-06-19"),
            key=lambda r: r["path"],
        )[12:18]  # the cat walks across the middle of the frame
    card = tmp_path / "card"
    card.mkdir()
    for r in burst:
        shutil.copyfile(root / r["path"], card / r["path"].split("/")[-1])
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "station,deployment,start,end,timezone\n"
        "TJ,TJ-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
    )
    import_registry(project, registry)
    ingest(project, card, deployment="TJ-2012", storage="reference")
    with project.session() as s:
        # The frames carry no EXIF date: the times from the labels, then one burst.
        by_name = {m.file_name: m for m in s.scalars(select(Media))}
        for r in burst:
            m = by_name[r["path"].split("/")[-1]]
            m.timestamp_local = datetime.fromisoformat(f"{r['date']}T{r['time']}")
            m.timestamp_utc, m.time_flag = m.timestamp_local - timedelta(hours=5), ""
        s.flush()
        regroup_deployments(
            s, [m.deployment_id for m in by_name.values()][:1], burst_gap_s=60, event_gap_min=30
        )
        s.commit()
        media = sorted(s.scalars(select(Media)), key=lambda m: m.timestamp_utc)
        s.expunge_all()
    assert len({m.sequence_id for m in media}) == 1 and media[0].sequence_id is not None
    motion = _MotionMasks(project)
    masks = [motion.get(m) for m in media]
    assert sum(m is not None for m in masks) >= 4
    k = next(i for i, m in enumerate(masks) if m is not None)
    h, w = masks[k].shape
    # A wrong best box: a small patch of rock in the top right corner.
    box = (0.85, 0.1, 0.1, 0.1)
    cache = _FeatureCache(tmp_path / "reid")
    for source, on_cat in (("detector", True), ("human", False)):
        ann = Annotation(
            id=100 + on_cat,
            media_id=media[k].id,
            frame=0,
            source=source,
            x=box[0],
            y=box[1],
            width=box[2],
            height=box[3],
        )
        ra = ReidAnnotation(
            id=str(ann.id),
            image=media[k].stored_path,
            box=(box[0] * w, box[1] * h, box[2] * w, box[3] * h),
        )
        feats = _features(cache, ra, ann, media[k], motion)
        assert len(feats) > 20
        xy = feats.xy_original.astype(int)
        inside_mask = (masks[k][xy[:, 1].clip(0, h - 1), xy[:, 0].clip(0, w - 1)] > 0).mean()
        in_box = ((xy[:, 0] >= box[0] * w - 2) & (xy[:, 1] <= (box[1] + box[3]) * h + 2)).mean()
        if on_cat:
            assert inside_mask > 0.9  # the detector's crop went to what moves
        else:
            assert in_box == 1.0  # a person's box is kept as drawn
