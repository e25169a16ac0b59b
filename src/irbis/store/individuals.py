"""Individuals of the catalogue: following merges to the animal that survived them."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from irbis.store.schema import Individual, Observation

__all__ = ["load_merge_roots", "merge_roots", "names_individual"]


def names_individual() -> ColumnElement[bool]:
    """SQL condition: the observation says which individual it shows.

    Either by the catalogue's id or by a name typed into the ``individual``
    column (folder names, tags, imported packages) that is not empty.
    """
    return Observation.individual_id.is_not(None) | (
        Observation.individual.is_not(None) & (Observation.individual != "")
    )


def merge_roots(parent: Mapping[int, int | None]) -> dict[int, int]:
    """Each individual id -> the id it finally resolves to through ``merged_into_id``.

    Parameters
    ----------
    parent:
        ``id -> merged_into_id`` (``None`` for an individual that was not merged).

    Returns
    -------
    dict
        Unmerged individuals map to themselves. A chain that loops (two merges
        racing in a database without locks) stops where it would revisit an
        individual instead of hanging.
    """
    out: dict[int, int] = {}
    for start in parent:
        cur, seen = start, set()
        while parent.get(cur) is not None and cur not in seen:
            seen.add(cur)
            cur = parent[cur]
        out[start] = cur
    return out


def load_merge_roots(session: Session) -> dict[int, int]:
    """:func:`merge_roots` of every individual in the project."""
    return merge_roots(
        dict(session.execute(select(Individual.id, Individual.merged_into_id)).all())
    )
