"""Grouping camera-trap records by time.

Two jobs, both pure:

- :func:`group_by_gap` cuts a deployment's timestamps into runs separated by
  more than a gap: bursts and sequences (a gap of seconds) or events (minutes).
- :func:`independent_records` thins species records to temporally independent
  ones with the semantics of camtrapR's ``recordTable`` (``minDeltaTime`` and
  ``deltaTimeComparedTo``), so counts match what ecologists compute in R.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar

__all__ = [
    "Kept",
    "Record",
    "SpeciesRecord",
    "group_by_gap",
    "independent_records",
]


def group_by_gap(times: Sequence[datetime], gap_s: float) -> list[int]:
    """Assign each time to a run of times no more than ``gap_s`` apart.

    Parameters
    ----------
    times:
        Timestamps of one deployment (all naive or all aware), in any order.
    gap_s:
        A new group starts where the time since the previous item (in time
        order) exceeds this many seconds; a gap of exactly ``gap_s`` stays in
        the group.

    Returns
    -------
    list of int
        Group index per input item, in input order. Groups are numbered
        0, 1, ... in time order; equal times keep their input order.
    """
    if gap_s < 0:
        raise ValueError(f"gap_s must be >= 0, not {gap_s}")
    order = sorted(range(len(times)), key=lambda i: times[i])  # sorted() is stable
    groups = [0] * len(times)
    group = 0
    prev: datetime | None = None
    for i in order:
        t = times[i]
        if prev is not None and (t - prev).total_seconds() > gap_s:
            group += 1
        groups[i] = group
        prev = t
    return groups


class SpeciesRecord(Protocol):
    """What :func:`independent_records` needs of a record."""

    @property
    def station(self) -> str: ...

    @property
    def species(self) -> str: ...

    @property
    def time(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Record:
    """A ready-made species record: station, species, naive local time, payload.

    ``payload`` carries whatever the caller needs back (file path, media id).
    """

    station: str
    species: str
    time: datetime
    payload: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


R = TypeVar("R", bound=SpeciesRecord)


@dataclass(frozen=True, slots=True)
class Kept(Generic[R]):
    """An independent record and the seconds since its reference record.

    ``delta_s`` is 0 for the first record of its station and species.
    """

    record: R
    delta_s: float


def _default_key(r: SpeciesRecord) -> tuple[str, str]:
    return (r.station, r.species)


def independent_records(
    records: Iterable[R],
    min_delta_min: float,
    compared_to: Literal["lastRecord", "lastIndependentRecord"] = "lastRecord",
    *,
    key: Callable[[R], Hashable] | None = None,
) -> list[Kept[R]]:
    """Keep temporally independent records, as camtrapR's ``recordTable`` does.

    Records are taken per station and species (or per ``key``) in time order.
    The first is always independent. A later record is independent if at
    least ``min_delta_min`` minutes passed since its reference record:

    - ``"lastRecord"``: the previous record, kept or not. A long burst of an
      animal lingering in front of the camera thus stays one record.
    - ``"lastIndependentRecord"``: the last record kept, so a lingering animal
      yields one record every ``min_delta_min`` minutes.

    Parameters
    ----------
    records:
        Objects with ``station``, ``species`` and ``time`` (naive local).
    min_delta_min:
        Minimum minutes between independent records; 0 keeps everything.
    compared_to:
        Reference for the time difference, camtrapR's ``deltaTimeComparedTo``.
    key:
        Groups records that are compared with each other; default
        ``(station, species)``. Pass e.g. ``(station, individual)`` for
        individual records. Keys must be sortable.

    Returns
    -------
    list of Kept
        The independent records with ``delta_s``, the seconds since the same
        reference record (which is what camtrapR reports in
        ``delta.time.secs``; 0 for the first record of a group). Sorted by key
        then time, like camtrapR's record table; equal times keep input order.
    """
    if min_delta_min < 0:
        raise ValueError(f"min_delta_min must be >= 0, not {min_delta_min}")
    if compared_to not in ("lastRecord", "lastIndependentRecord"):
        raise ValueError(
            f"compared_to must be 'lastRecord' or 'lastIndependentRecord', not {compared_to!r}"
        )
    keyf: Callable[[R], Hashable] = key if key is not None else _default_key
    min_delta_s = float(min_delta_min) * 60.0

    by_key: dict[Hashable, list[R]] = {}
    for r in records:
        by_key.setdefault(keyf(r), []).append(r)

    kept: list[Kept[R]] = []
    for k in sorted(by_key):  # type: ignore[type-var]
        group = sorted(by_key[k], key=lambda r: r.time)
        ref_time: datetime | None = None
        for r in group:
            if ref_time is None:
                kept.append(Kept(r, 0.0))
                ref_time = r.time
                continue
            delta = (r.time - ref_time).total_seconds()
            independent = delta >= min_delta_s
            if independent:
                kept.append(Kept(r, delta))
            # Only the reference moves differently between the two modes.
            if compared_to == "lastRecord" or independent:
                ref_time = r.time
    return kept
