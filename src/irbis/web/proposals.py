"""A species classifier's proposals in the review grid: show, sort, filter, accept.

``irbis classify`` writes a proposal as one machine observation per file of
a sequence (source ``model:<name>``, the probability, and in ``extra`` the
three best species and the *margin*, best minus second-best probability;
:func:`irbis.pipeline.species_stage.write_proposal`). Here:

* :func:`proposals_sql` is one row per sequence with a current proposal,
  which the grid joins when it sorts or filters by proposal;
* :data:`SORTS` are the grid's orders: by time (the default), most probable
  first, least probable first, and lowest margin first (the active-learning
  queue: the label a person gives there teaches the model most);
* :func:`accept_proposal` turns a proposal into a person's label, kept as
  machine-proposed and person-confirmed (who and when, and which model
  said what with which probability).
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import and_, or_, select

from irbis.core.errors import BadInputError
from irbis.store.project import Project
from irbis.store.proposals import proposals_sql
from irbis.store.schema import Media, Observation
from irbis.web.errors import ConflictError

__all__ = [
    "SORTS",
    "accept_proposal",
    "decode_sort_cursor",
    "encode_sort_cursor",
    "proposal_of",
    "proposals_of",
    "proposals_sql",
]

#: The grid's orders: ``time`` (start, then id), ``probability`` (most probable
#: proposal first), ``uncertain`` (least probable first) and ``margin`` (smallest
#: gap between the two best species first: the active-learning queue).
SORTS = ("time", "probability", "uncertain", "margin")
SORT_WORDS = {
    "time": "time",
    "probability": "most probable proposal first",
    "uncertain": "least probable proposal first",
    "margin": "most to teach the classifier first (lowest margin)",
}


def after_key(col: Any, desc: bool, id_col: Any, value: float, seq_id: int) -> Any:
    """Rows after ``(value, seq_id)`` in ``col`` order (``desc`` or not), then id."""
    beyond = col < value if desc else col > value
    return or_(beyond, and_(col == value, id_col > seq_id))


def before_key(col: Any, desc: bool, id_col: Any, value: float, seq_id: int) -> Any:
    """Rows before ``(value, seq_id)`` in ``col`` order (see :func:`after_key`)."""
    ahead = col > value if desc else col < value
    return or_(ahead, and_(col == value, id_col < seq_id))


def encode_sort_cursor(sort: str, value: float, seq_id: int) -> str:
    """The 'next page' cursor of a proposal order."""
    return base64.urlsafe_b64encode(f"{sort}|{value!r}|{seq_id}".encode()).decode()


def decode_sort_cursor(cursor: str, sort: str) -> tuple[float, int]:
    """``(value, sequence id)`` of a cursor made by :func:`encode_sort_cursor` for ``sort``.

    Raises
    ------
    BadInputError
        Not such a cursor, or one of another order.
    """
    try:
        name, value, sid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        seq_id = int(sid)
        if name != sort or not 0 <= seq_id < 2**63:
            raise ValueError(name)
        return float(value), seq_id
    except Exception as exc:  # noqa: BLE001 - any malformed cursor is the same mistake
        raise BadInputError(
            "after",
            f"not a cursor of the '{sort}' order",
            "use the 'next' value of a previous page of the same order",
        ) from exc


def _as_dict(row: Any) -> dict[str, Any]:
    return {
        "species": row.species,
        "best": row.best or row.species,
        "probability": row.probability,
        "margin": None if row.margin is None else round(float(row.margin), 4),
        "model": (row.source or "").removeprefix("model:"),
    }


def proposals_of(conn: Any, seq_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The current proposal of each of ``seq_ids`` that has one (one query)."""
    if not seq_ids:
        return {}
    rows = conn.execute(select(proposals_sql(seq_ids))).all()
    return {r.sequence_id: _as_dict(r) for r in rows}


def proposal_of(project: Project, seq_id: int) -> dict[str, Any] | None:
    """The current proposal of one sequence, or None."""
    with project.engine.connect() as conn:
        return proposals_of(conn, [seq_id]).get(seq_id)


def accept_proposal(
    project: Project,
    seq_id: int,
    versions: dict[int, int],
    user: str,
    *,
    species: str | None = None,
) -> dict[str, Any]:
    """Label a sequence with its proposed species: machine-proposed, person-confirmed.

    The label is a person's (source ``human``, ``by`` the user, the time of
    the acceptance; undo as any label) and keeps in ``extra["proposal"]``
    which model proposed it, its version and probability. The model's own
    observations stay beside it (the export writes both).

    Parameters
    ----------
    project : Project
    seq_id : int
    versions : dict
        ``review_version`` of every file of the sequence, as the client saw them.
    user : str
        Who accepts.
    species : str, optional
        The species the client showed; when the proposal has changed since
        (``irbis classify`` ran again), nothing is written.

    Returns
    -------
    dict
        As :func:`irbis.web.labels.label_sequences`, plus ``species`` and ``proposal``.

    Raises
    ------
    BadInputError
        The sequence has no proposal, or the proposal is ``unknown``.
    ConflictError
        The proposal is not the one the client showed.
    """
    from irbis.web import labels

    prop = proposal_of(project, seq_id)
    if prop is None:
        raise BadInputError(
            f"sequence {seq_id}",
            "has no species proposal to accept",
            "run `irbis classify` on the project, or label it with a species key",
        )
    if not prop["species"]:
        raise BadInputError(
            f"sequence {seq_id}",
            f"the classifier is unsure (best {prop['best']} {prop['probability']:.2f}, "
            "under its threshold)",
            "label it with a species key",
        )
    if species is not None and species != prop["species"]:
        raise ConflictError(
            f"sequence {seq_id}: the proposal is now {prop['species']} "
            f"{prop['probability']:.2f}, not {species}; reload to see it"
        )
    with project.engine.connect() as conn:
        by = conn.execute(
            select(Observation.by)
            .join(Media, Media.id == Observation.media_id)
            .where(
                Media.sequence_id == seq_id,
                Observation.source == f"model:{prop['model']}",
                Observation.retracted_utc.is_(None),
            )
            .limit(1)
        ).scalar()
    record = {
        "model": prop["model"],
        "by": by or prop["model"],
        "species": prop["species"],
        "probability": prop["probability"],
        "margin": prop["margin"],
        "accepted_by": user,
    }
    out = labels.label_sequences(
        project,
        [(seq_id, versions)],
        labels.Label(species=prop["species"], count=1),
        user,
        proposal=record,
    )[0]
    return {**out, "species": prop["species"], "proposal": record}
