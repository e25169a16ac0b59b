"""The demo's species check: label the first sequences, train, and see the rest proposed.

A team starts a season by labelling its first sequences; irbis learns the
species from them and proposes the others. On the demo (whose cards carry
the true species as XMP tags, as a team that sorted its photos would), this
keeps the tags of the first ``share`` of the animal sequences (by start
time: the labels a team gives first), hides the rest (retracted, so the
project knows only the first ones), trains (:func:`irbis.pipeline.
species_stage.train_species`), classifies and compares every proposal with
the hidden truth, next to what the training's held-out evaluation predicted.

Blank sequences (wind, snow) are never tagged; they are proposed too and
counted apart (the classifier knows no "blank": the detector sets those aside).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irbis.store.project import Project
from irbis.store.schema import Media, MediaGroup, Observation

__all__ = ["hide_later_labels", "species_check"]

HIDDEN_BY = "species-check: hidden"


def hide_later_labels(project: Project, share: float) -> dict[int, str]:
    """Keep the species labels of the first ``share`` of labelled sequences; hide the rest.

    Returns
    -------
    dict
        The hidden truth: sequence id -> species.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    with project.session() as s:
        rows = s.execute(
            select(MediaGroup.id, MediaGroup.start_utc, Observation.id, Observation.species)
            .join(Media, Media.sequence_id == MediaGroup.id)
            .join(Observation, Observation.media_id == Media.id)
            .where(
                MediaGroup.kind == "sequence",
                Observation.retracted_utc.is_(None),
                Observation.species.is_not(None),
                Observation.source.in_(("xmp", "folder", "human")),
            )
            .order_by(MediaGroup.start_utc, MediaGroup.id)
        ).all()
        per_seq: dict[int, list[tuple[int, str]]] = defaultdict(list)
        order: list[int] = []
        for sid, _start, oid, species in rows:
            if sid not in per_seq:
                order.append(sid)
            per_seq[sid].append((oid, species))
        keep = int(round(share * len(order)))
        truth: dict[int, str] = {}
        hide: list[int] = []
        for sid in order[keep:]:
            names = Counter(sp for _, sp in per_seq[sid])
            truth[sid] = names.most_common(1)[0][0]
            hide += [oid for oid, _ in per_seq[sid]]
        for o in s.scalars(select(Observation).where(Observation.id.in_(hide))):
            o.retracted_utc, o.retracted_by = now, HIDDEN_BY
        s.commit()
    return truth


def species_check(
    project: Project,
    *,
    share: float = 0.5,
    models_root: Path | None = None,
    target_accuracy: float = 0.9,
) -> dict[str, Any]:
    """Label the first ``share`` of sequences, train, classify, and score the proposals.

    Parameters
    ----------
    project : Project
        The demo project (its XMP tags are the truth), freshly ingested.
    share : float
        Share of the labelled sequences kept (the first by start time).
    models_root : Path, optional
        Model registry (the backbone must be installed there).
    target_accuracy : float
        For the training's learning curve.

    Returns
    -------
    dict
        ``labelled`` and ``hidden`` sequences, ``predicted`` (the training's
        encounter- and station-held-out accuracy, and at its threshold the
        share proposed and their accuracy), ``observed`` (the same on the
        hidden sequences' proposals: ``accuracy`` of the best species whatever
        its probability, ``coverage`` and ``accuracy_of_proposed`` at the
        threshold), ``per_species``, ``blank_sequences_proposed``,
        ``classified_media`` (files of the sequences proposed),
        ``learning_curve`` and seconds of training and classifying.
    """
    from irbis.pipeline.species_stage import run_classify, train_species

    truth = hide_later_labels(project, share)
    t0 = time.perf_counter()
    trained = train_species(project, models_root=models_root, target_accuracy=target_accuracy)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    classified = run_classify(project, models_root=models_root)
    t_classify = time.perf_counter() - t0
    sm = trained.summary
    source = f"model:{trained.name}"
    with project.session() as s:
        rows = s.execute(
            select(
                Media.sequence_id, Observation.species, Observation.probability, Observation.extra
            )
            .join(Media, Media.id == Observation.media_id)
            .where(Observation.source == source, Observation.retracted_utc.is_(None))
        ).all()
        n_media = dict(
            s.execute(
                select(MediaGroup.id, MediaGroup.n_media).where(MediaGroup.kind == "sequence")
            ).all()
        )
    proposal: dict[int, tuple[str | None, str, float]] = {}
    for sid, species, prob, extra in rows:
        proposal[sid] = (species, (extra or {}).get("top", [[species]])[0][0], float(prob))
    hits = best_hits = proposed = 0
    per: dict[str, Counter] = defaultdict(Counter)
    for sid, true in truth.items():
        sp, best, _ = proposal.get(sid, (None, "", 0.0))
        best_hits += best == true
        per[true]["n"] += 1
        per[true]["best_right"] += best == true
        if sp is not None:
            proposed += 1
            hits += sp == true
    n = len(truth)
    by_enc = sm["evaluation"]["by_encounter"]
    predicted = {
        "accuracy_by_encounter": by_enc["accuracy"],
        "accuracy_by_station": sm["evaluation"].get("by_station", {}).get("accuracy"),
        "coverage": by_enc["at_threshold"]["coverage"],
        "accuracy_of_proposed": by_enc["at_threshold"]["accuracy_of_proposed"],
        "unit": "crop",
    }
    observed = {
        "accuracy": best_hits / n if n else float("nan"),
        "coverage": proposed / n if n else float("nan"),
        "accuracy_of_proposed": hits / proposed if proposed else float("nan"),
        "unit": "sequence",
    }
    blanks = [sid for sid in proposal if sid not in truth and sid not in _labelled(project)]
    return {
        "labelled_sequences": len(_labelled(project)),
        "labelled_crops": sm["crops"],
        "hidden_sequences": n,
        "hidden_media": sum(n_media.get(sid, 0) for sid in truth),
        "classified_media": sum(n_media.get(sid, 0) for sid in proposal),
        "labels": sm["labels"],
        "predicted": predicted,
        "observed": observed,
        "per_species": {k: dict(v) for k, v in sorted(per.items())},
        "blank_sequences_proposed": len(blanks),
        "crop_sources": sm["crop_sources"],
        "learning_curve": sm["learning_curve"],
        "train_seconds": round(t_train, 2),
        "classify": classified.as_dict(),
        "classify_seconds": round(t_classify, 2),
        "model": trained.name,
    }


def _labelled(project: Project) -> set[int]:
    with project.session() as s:
        return set(
            s.scalars(
                select(Media.sequence_id)
                .join(Observation, Observation.media_id == Media.id)
                .where(
                    Observation.retracted_utc.is_(None),
                    Observation.species.is_not(None),
                    Observation.source.in_(("xmp", "folder", "human")),
                )
                .distinct()
            ).all()
        )
