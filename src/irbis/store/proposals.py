"""Species proposals of a classifier, one row per sequence, for the grid and the review queue.

``irbis classify`` writes a proposal as one machine observation per file of
a sequence (source ``model:<name>``, the probability, and in ``extra`` the
three best species and the *margin*, best minus second-best probability).
:func:`proposals_sql` reads them back per sequence; :func:`margin_queue`
lists the sequences nobody has labelled whose label would teach the model
most (smallest margin first: the classic uncertainty sampling of active
learning).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import aliased

from irbis.store.schema import Media, MediaGroup, Observation, SequenceSummary

__all__ = ["margin_queue", "proposals_sql"]

_O = aliased(Observation, name="prop_obs")
_M = aliased(Media, name="prop_media")


def _margin_expr() -> Any:
    """The proposal's margin; for proposals written before the margin was kept,
    best minus second-best from the stored top three (the probability itself
    when there is no second)."""
    first = _O.extra[("top", 0, 1)].as_float()
    second = _O.extra[("top", 1, 1)].as_float()
    return func.coalesce(
        _O.extra["margin"].as_float(),
        first - func.coalesce(second, 0.0),
        _O.probability,
    )


def proposals_sql(sequence_ids: Sequence[int] | None = None) -> Any:
    """One row per sequence with a current machine proposal (a subquery).

    ``sequence_ids`` limits it to those sequences before grouping (a page of
    the grid reads its own proposals, not every one in the project).

    Columns ``sequence_id``, ``probability``, ``margin``, ``species`` (None for
    ``unknown``), ``best`` (the most probable species even below the model's
    threshold) and ``source``. A proposal is written the same on every file
    of a sequence, so the aggregates only pick that one value.
    """
    stmt = (
        select(
            _M.sequence_id.label("sequence_id"),
            cast(func.max(_O.probability), Float).label("probability"),
            cast(func.min(_margin_expr()), Float).label("margin"),
            func.max(_O.species).label("species"),
            func.max(_O.extra[("top", 0, 0)].as_string()).label("best"),
            func.max(_O.source).label("source"),
        )
        .join(_M, _M.id == _O.media_id)
        .where(
            _O.source.like("model:%"),
            _O.retracted_utc.is_(None),
            _O.probability.is_not(None),
            _M.sequence_id.is_not(None),
        )
        .group_by(_M.sequence_id)
    )
    if sequence_ids is not None:
        stmt = stmt.where(_M.sequence_id.in_(list(sequence_ids)))
    return stmt.subquery("proposal")


def margin_queue(conn: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Sequences not yet reviewed with a proposal, smallest margin first.

    Parameters
    ----------
    conn : Connection
        Open connection (the sequence summaries must be fresh:
        :func:`irbis.store.sequence_summary.ensure_fresh`).
    limit : int
        How many.

    Returns
    -------
    list of dict
        ``sequence_id``, ``species`` (None: unsure), ``best``, ``probability``, ``margin``.
    """
    prop = proposals_sql()
    rows = conn.execute(
        select(prop)
        .join(MediaGroup, MediaGroup.id == prop.c.sequence_id)
        .outerjoin(SequenceSummary, SequenceSummary.sequence_id == prop.c.sequence_id)
        .where(
            MediaGroup.kind == "sequence",
            func.coalesce(SequenceSummary.reviewed, False).is_(False),
        )
        .order_by(prop.c.margin, prop.c.sequence_id)
        .limit(limit)
    ).all()
    return [
        {
            "sequence_id": r.sequence_id,
            "species": r.species,
            "best": r.best or r.species,
            "probability": r.probability,
            "margin": None if r.margin is None else round(float(r.margin), 4),
        }
        for r in rows
    ]
