"""``irbis models train reid`` on a project holding real Tajik photos with confirmed cats.

Five cats, each seen in two encounters or more (two frames each, copied to
a card in tmp from ../shared/data, read-only use): the ranking is fitted and
judged leave-one-individual-out, installed only where it beats the untrained
one, and the identify stage follows the settings either way.
"""

from __future__ import annotations

import csv
import shutil
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from irbis.ingest.registry import import_registry
from irbis.ingest.runner import ingest
from irbis.pipeline.identify_stage import MODEL, run_identify
from irbis.pipeline.reid_ranking import SETTING, TunedRanking
from irbis.pipeline.train_reid import LAST, train_reid_ranking
from irbis.reid import Catalogue
from irbis.reid.ranking import FEATURES, PairModel
from irbis.store.schema import Annotation, Individual, MatchDecision, Media, Observation

from .conftest import need_data

CATS = ("Cat2", "Cat4", "Cat21", "Cat23", "Cat3")
PER_ENCOUNTER = 2


def _season(tmp_path, project, cats=CATS):
    root = need_data("reid", "snowleopard-tajikistan")
    with open(root / "labels.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["individual_id"] in cats]
    picked: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["path"]):
        if len(picked.setdefault(r["encounter"], [])) < PER_ENCOUNTER:
            picked[r["encounter"]].append(r)
    card = tmp_path / "card"
    card.mkdir()
    truth, times = {}, {}
    for rs in picked.values():
        for r in rs:
            dest = card / r["path"].split("/")[-1]
            shutil.copyfile(root / r["path"], dest)
            truth[dest.name] = r["individual_id"]
            times[dest.name] = datetime.fromisoformat(f"{r['date']}T{r['time']}")
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "station,deployment,start,end,timezone\n"
        "TJ,TJ-2012,2012-05-01T00:00:00,2012-10-01T00:00:00,Asia/Dushanbe\n"
    )
    import_registry(project, registry)
    ingest(project, card, deployment="TJ-2012", storage="reference")
    now = datetime(2026, 12, 6)
    with project.session() as s:
        media = {m.file_name: m for m in s.scalars(select(Media))}
        for name, m in media.items():
            m.timestamp_local, m.time_flag = times[name], ""
            m.timestamp_utc = times[name] - timedelta(hours=5)
            s.add(
                Observation(
                    media_id=m.id,
                    species="Panthera uncia",
                    count=1,
                    source="human",
                    by="tester",
                    created_utc=now,
                )
            )
        s.add_all(Individual(name=c, created_utc=now) for c in set(truth.values()))
        s.commit()
    run_identify(project)  # makes the annotations (one per photo)
    with project.session() as s:
        by_name = {i.name: i.id for i in s.scalars(select(Individual))}
        for ann, m in s.execute(select(Annotation, Media).join(Media)):
            ann.individual_id = by_name[truth[m.file_name]]
        s.commit()
    return truth


@pytest.mark.slow
def test_trained_ranking_is_installed_only_where_it_beats_the_untrained(tmp_path, project):
    truth = _season(tmp_path, project)
    outcome = train_reid_ranking(project)
    sm = outcome.summary
    assert sm["annotations"] == len(truth)
    assert sm["individuals"] == len(CATS) == sm["individuals_with_two_encounters"]
    held = sm["held_out"]
    assert set(held) == {"default", "tuned", "fusion"}
    # Every closed-set encounter is scored, by both rankings, on cats never trained on.
    assert held["default"]["queries"] == held["tuned"]["queries"] == sm["encounters"]
    d, t = held["default"], held["tuned"]
    better = t["top1"] > d["top1"] and t["top5"] >= d["top5"]
    assert outcome.installed == better
    assert (SETTING in project.settings.extra) == better
    assert project.settings.extra[LAST]["reason"] == outcome.reason
    assert outcome.reason.startswith("installed:") == better
    cat = Catalogue()
    assert (TunedRanking.load(project, cat) is not None) == better
    # The identify stage says which ranking it used.
    assert run_identify(project).ranking == ("survey-tuned" if better else "untrained")


@pytest.mark.slow
def test_too_few_cats_trains_nothing_and_removes_an_old_ranking(tmp_path, project):
    _season(tmp_path, project, cats=("Cat2", "Cat4"))
    project.settings.extra[SETTING] = {"model": {"features": []}}  # an older install
    outcome = train_reid_ranking(project)
    assert not outcome.installed and "not trained" in outcome.reason
    assert "2 individuals" in outcome.reason
    assert SETTING not in project.settings.extra
    res = CliRunner().invoke(
        __import__("irbis.cli.app", fromlist=["app"]).app,
        ["models", "train", "reid", str(project.root), "--json"],
    )
    assert res.exit_code == 0, res.output
    assert '"installed": false' in res.output


def _proposed(project) -> dict[int, list[tuple[int, str | None]]]:
    """Per annotation: (individual id, machine decision) of its proposals in rank order."""
    out: dict[int, list] = {}
    with project.session() as s:
        for d in s.scalars(
            select(MatchDecision)
            .where(MatchDecision.by == MODEL, MatchDecision.rank >= 1)
            .order_by(MatchDecision.annotation_id, MatchDecision.rank)
        ):
            out.setdefault(d.annotation_id, []).append(
                (d.individual_id, d.matches.get("machine_decision"))
            )
    return out


@pytest.mark.slow
def test_identify_proposes_in_the_installed_rankings_order(tmp_path, project):
    _season(tmp_path, project, cats=("Cat2", "Cat4", "Cat21"))
    # The later encounter of each cat is left to identify.
    with project.session() as s:
        rows = s.execute(select(Annotation, Media).join(Media)).all()
        last: dict[int, object] = {}
        for ann, m in rows:
            last[ann.individual_id] = max(last.get(ann.individual_id, m.sequence_id), m.sequence_id)
        for ann, m in rows:
            if m.sequence_id == last[ann.individual_id]:
                ann.individual_id = None
        s.commit()
    plain = run_identify(project)
    assert plain.ranking == "untrained" and plain.queried > 0
    before = _proposed(project)
    # A ranking that trusts evidence backwards: the weakest candidate comes first.
    upside_down = PairModel(
        -np.ones(len(FEATURES)) * [1, 1, 1, 1, 1, 1, 0], 0.0, np.zeros(7), np.ones(7)
    )
    project.settings.extra[SETTING] = {"at": "test", "model": upside_down.as_dict()}
    project.save_settings()
    tuned = run_identify(project)
    assert tuned.ranking == "survey-tuned"
    assert tuned.queried == plain.queried  # a new ranking: every proposal is made again
    after = _proposed(project)
    assert set(after) == set(before)
    flipped = 0
    for ann_id, old in before.items():
        new = after[ann_id]
        assert sorted(i for i, _ in new) == sorted(i for i, _ in old)  # same candidates
        if len(old) >= 2 and new[0][0] != old[0][0]:
            flipped += 1
            # The machine's "same" never stands where the rankings disagree.
            assert all(dec != "same" for _, dec in new)
    assert flipped > 0
