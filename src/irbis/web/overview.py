"""The project at a glance: what came in, what is set aside as blank, what people did."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from irbis.pipeline.detect_stage import detection_status
from irbis.store.project import Project
from irbis.store.schema import Annotation, Individual, Media, MediaGroup, SequenceSummary
from irbis.store.sequence_summary import ensure_fresh
from irbis.store.summary import project_status
from irbis.web.identify import _pending_clause


def overview(project: Project) -> dict[str, Any]:
    """Counts for the overview page and ``GET /api/overview``.

    Returns
    -------
    dict
        ``project_status`` figures plus ``detections`` (blank/animal/... sequences of
        the main detector, and ``set_aside``: what irbis.store.blanks sets aside
        as blank, the frames too small to judge, what people's reviews keep),
        ``set_aside`` (the same counts, at the top), ``review`` (sequences
        reviewed by people, in the app or by sorting
        folders and tags before ingest, vs. not), ``individuals`` known and
        ``identifications_pending``.
    """
    data = project_status(project)
    data.pop("per_deployment", None)
    data["detections"] = detection_status(project)
    data["detections"].pop("per_station", None)
    ensure_fresh(project.engine)
    with project.session() as s:
        # As the grid says: labelled in the app, or sorted into folders / tagged before ingest.
        reviewed = s.scalar(
            select(func.count()).select_from(SequenceSummary).where(SequenceSummary.reviewed)
        )
        total = s.scalar(
            select(func.count()).select_from(MediaGroup).where(MediaGroup.kind == "sequence")
        )
        individuals = s.scalar(
            select(func.count()).select_from(Individual).where(Individual.merged_into_id.is_(None))
        )
        pending = s.scalar(select(func.count()).select_from(Annotation).where(*_pending_clause()))
        cards = s.scalar(select(func.count(func.distinct(Media.batch_id))))
    data["review"] = {
        "sequences": total or 0,
        "reviewed": reviewed or 0,
        "to_review": (total or 0) - (reviewed or 0),
    }
    data["cards_imported"] = cards or 0
    data["individuals"] = individuals or 0
    data["identifications_pending"] = pending or 0
    aside = data["detections"]["set_aside"]
    data["set_aside"] = {
        "sequences": aside["sequences"],
        "frames": aside["frames"],
        "too_small_frames": aside["too_small_frames"],
        "unjudged_sequences": aside["unjudged_sequences"],
        "unreadable_frames": aside["unreadable_frames"],
        "kept_by_review": aside["kept_by_review"],
    }
    return data


def cached_overview(project: Project) -> dict[str, Any]:
    """:func:`overview`, kept 10 s: it counts every row of the project."""
    from irbis.web.cache import cached

    return cached((project.root, "overview"), 10.0, lambda: overview(project))
