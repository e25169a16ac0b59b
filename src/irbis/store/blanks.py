"""Which sequences are set aside as blank, and a sample of them for a person to check.

The detector's verdicts (``media_detections``, ``sequence_verdicts``) are what
the machine said; what is *set aside as blank* (left out of the review queue
and out of a reader's sight) also weighs what people said. A sequence is set
aside only when all of these hold:

* the detector judged every one of its media and put no box on any frame at
  its operating point (no animal, person or vehicle anywhere in the burst);
* no media of it is *unjudged*: unreadable (``error``), not yet run, or too
  small for the detector to judge (longer side under :data:`MIN_JUDGE_SIDE`
  pixels, whatever verdict was stored: results written before this rule
  count too);
* no person says otherwise: no frame has a current reviewed box
  (``reviewed_boxes``, any category with coordinates) or an "animal here"
  mark, and no current label of it names a species (a person's, a folder's
  or a tag's).

A frame a person confirmed as empty ("no animal here", or a blank label)
stays set aside but is not offered for spot-checking again.

Nothing is deleted: set aside means hidden from the default views, counted,
and sampled for a person to check (:func:`spot_check_sample`).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from irbis.store.schema import (
    Deployment,
    Media,
    MediaDetection,
    MediaGroup,
    Observation,
    ReviewedBox,
    SequenceVerdict,
    Station,
)

__all__ = [
    "BLANK_WORDS",
    "DEFAULT_SEED",
    "MIN_JUDGE_SIDE",
    "Blanks",
    "SetAsideFrame",
    "blank_status",
    "gather_blanks",
    "kept_by_review_sql",
    "main_detector",
    "sequence_url",
    "set_aside_sql",
    "unjudged_sql",
    "spot_check_sample",
]

#: Frames whose longer side is under this many pixels are too small for the
#: default detector to call blank (see ``bench/blank_small_images.py``).
MIN_JUDGE_SIDE = 320
#: Seed of the spot-check sample when none is given (the same frames every time).
DEFAULT_SEED = 15
#: Species labels that say "nothing there".
BLANK_WORDS = frozenset({"blank", "empty", "none", "nothing", ""})
_BOXED = ("animal", "person", "vehicle")
_CHUNK = 500
_NO_STATION = "(no deployment)"


def main_detector(session: Session) -> str | None:
    """The detector configuration with the most media results (the one reports show)."""
    return session.scalar(
        select(MediaDetection.detector)
        .group_by(MediaDetection.detector)
        .order_by(func.count().desc(), MediaDetection.detector)
        .limit(1)
    )


def sequence_url(sequence_id: int | None, media_id: int) -> str:
    """Where a person checks a frame in the review app.

    The sequence's page opened at that very frame
    (``/sequences/<id>?media=<media id>``); a frame without a sequence (its
    time is not trusted, so it forms no burst) has only its file.
    """
    if sequence_id is not None:
        return f"/sequences/{sequence_id}?media={media_id}"
    return f"/api/media/{media_id}/file"


# -- the same rule as SQL, for views that filter and page in the database -------------
#
# The review grid cannot read every blank sequence to show 48 of them: it walks
# sequences in time order and needs "is this one set aside?" as a condition on
# one sequence. The functions below state the rule of this module (see the
# module docstring and :func:`gather_blanks`) as such conditions, one EXISTS
# per part of it, each answered from an index (media by sequence, results by
# media, reviewed boxes and observations by media). tests/test_web_blanks.py
# checks on both backends that they pick exactly the sequences gather_blanks does.


def _small(m: Any, min_side: int) -> ColumnElement[bool]:
    """The media row ``m`` is too small for the detector to judge (both sides known)."""
    return and_(m.width > 0, m.height > 0, m.width < min_side, m.height < min_side)


def _result(m: Any, detector: str, *verdicts: str) -> ColumnElement[bool]:
    """``detector`` stored one of ``verdicts`` for the media row ``m``."""
    md = aliased(MediaDetection)
    return (
        exists()
        .where(md.media_id == m.id, md.detector == detector, md.verdict.in_(verdicts))
        .correlate_except(md)
    )


def _people_say_something(m: Any) -> ColumnElement[bool]:
    """A person's box or "animal here" mark, or a current label naming a species, on ``m``.

    As in :func:`_people`: a current reviewed row with coordinates or of
    category ``animal``; a current observation whose species is not one of
    :data:`BLANK_WORDS`, counted only when it is a person's or the media has
    no current label of a person.
    """
    rb, o, oh = aliased(ReviewedBox), aliased(Observation), aliased(Observation)
    # Each EXISTS names what it reads and takes the rest (the media row) from
    # the query around it, however deeply nested (auto-correlation looks one
    # level up only).
    boxed = (
        exists()
        .where(
            rb.media_id == m.id,
            rb.retracted_utc.is_(None),
            or_(rb.x.is_not(None), rb.category == "animal"),
        )
        .correlate_except(rb)
    )
    no_human = ~(
        exists()
        .where(oh.media_id == m.id, oh.retracted_utc.is_(None), oh.source == "human")
        .correlate_except(oh)
    )
    named = (
        exists()
        .where(
            o.media_id == m.id,
            o.retracted_utc.is_(None),
            o.species.is_not(None),
            func.lower(func.trim(o.species)).not_in(sorted(BLANK_WORDS)),
            or_(o.source == "human", no_human),
        )
        .correlate_except(o)
    )
    return or_(boxed, named)


def _no_box(verdict: Any) -> ColumnElement[bool]:
    return verdict.not_in(_BOXED)


def _media_of(sequence_id: Any, cond: ColumnElement[bool], m: Any) -> ColumnElement[bool]:
    return exists().where(m.sequence_id == sequence_id, cond).correlate_except(m)


def set_aside_sql(
    sequence_id: Any, verdict: Any, detector: str, *, min_side: int = MIN_JUDGE_SIDE
) -> ColumnElement[bool]:
    """SQL condition: the sequence is set aside as blank (:func:`gather_blanks`'s ``sequences``).

    Parameters
    ----------
    sequence_id:
        The column holding the sequence's id in the caller's query.
    verdict:
        The column of ``detector``'s sequence verdict (``sequence_verdicts``
        joined on that id); NULL (not detected) never matches.
    detector:
        The detector key.
    """
    m = aliased(Media)
    spoiled = or_(
        ~_result(m, detector, "blank"),  # boxed, unjudged, unreadable or not run
        _small(m, min_side),
        _people_say_something(m),
    )
    return and_(
        _no_box(verdict),
        _media_of(sequence_id, true(), aliased(Media)),
        ~_media_of(sequence_id, spoiled, m),
    )


def unjudged_sql(
    sequence_id: Any, verdict: Any, detector: str, *, min_side: int = MIN_JUDGE_SIDE
) -> ColumnElement[bool]:
    """SQL condition: no box, nobody says something is there, and a frame is unjudged.

    :func:`gather_blanks`'s ``unjudged_sequences``: a frame too small to judge,
    unreadable or not yet run keeps the burst out of the blanks. Arguments as
    :func:`set_aside_sql`.
    """
    m1, m2 = aliased(Media), aliased(Media)
    judged = or_(
        _result(m2, detector, *_BOXED),
        and_(_result(m2, detector, "blank"), ~_small(m2, min_side)),
    )
    return and_(
        _no_box(verdict),
        ~_media_of(sequence_id, or_(_result(m1, detector, *_BOXED), _people_say_something(m1)), m1),
        _media_of(sequence_id, ~judged, m2),
    )


def kept_by_review_sql(sequence_id: Any, verdict: Any, detector: str) -> ColumnElement[bool]:
    """SQL condition: no box, but a person's box, mark or a species label keeps the burst.

    :func:`gather_blanks`'s ``kept_by_review``. Arguments as :func:`set_aside_sql`.
    """
    m1, m2 = aliased(Media), aliased(Media)
    return and_(
        _no_box(verdict),
        ~_media_of(sequence_id, _result(m1, detector, *_BOXED), m1),
        _media_of(sequence_id, _people_say_something(m2), m2),
    )


@dataclass(frozen=True)
class SetAsideFrame:
    """One media file of a sequence set aside as blank."""

    media_id: int
    sequence_id: int | None
    station: str
    file_name: str
    time_local: datetime | None
    storage: str
    stored_path: str
    confirmed: bool  # a person already said "no animal here"


@dataclass
class Blanks:
    """What is set aside as blank for one detector configuration (:func:`gather_blanks`).

    Attributes
    ----------
    detector:
        The detector key, None when nothing was detected.
    min_side:
        The size rule used (longer side in pixels).
    frames:
        Every set-aside media file.
    sequences:
        Set-aside sequence ids by station (media without a sequence are
        counted as frames only).
    kept_by_review:
        Sequences the detector called blank that people's boxes or labels keep, by station.
    unjudged_sequences:
        Sequences with no box and at least one unjudged media file, by station.
    unjudged_frames:
        Unjudged media of bursts without a box, ``{reason: n}`` by station;
        reasons ``too_small``, ``unreadable``, ``not_run``.
    too_small:
        Every media file too small for the detector to judge (in any burst,
        also those kept for a box in another frame), by station.
    judged:
        ``{"sequences": n, "frames": n}`` the detector looked at, by station.
    """

    detector: str | None
    min_side: int
    frames: list[SetAsideFrame] = field(default_factory=list)
    sequences: dict[str, set[int]] = field(default_factory=dict)
    kept_by_review: dict[str, set[int]] = field(default_factory=dict)
    unjudged_sequences: dict[str, set[int]] = field(default_factory=dict)
    unjudged_frames: dict[str, Counter] = field(default_factory=dict)
    too_small: dict[str, int] = field(default_factory=dict)
    judged: dict[str, Counter] = field(default_factory=dict)

    def per_station(self) -> list[dict[str, Any]]:
        """One row per station: judged, set aside, unjudged and kept counts."""
        names = (
            set(self.judged)
            | set(self.sequences)
            | set(self.kept_by_review)
            | set(self.unjudged_sequences)
            | set(self.unjudged_frames)
            | set(self.too_small)
        )
        frames = Counter(f.station for f in self.frames)
        rows = []
        for name in sorted(names):
            judged = self.judged.get(name, Counter())
            unj = self.unjudged_frames.get(name, Counter())
            rows.append(
                {
                    "station": name,
                    "sequences_judged": int(judged["sequences"]),
                    "frames_judged": int(judged["frames"]),
                    "set_aside_sequences": len(self.sequences.get(name, ())),
                    "set_aside_frames": int(frames[name]),
                    "unjudged_sequences": len(self.unjudged_sequences.get(name, ())),
                    "unjudged_frames": int(sum(unj.values())),
                    "too_small_frames": int(self.too_small.get(name, 0)),
                    "kept_by_review": len(self.kept_by_review.get(name, ())),
                }
            )
        return rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts (``irbis status --json``, ``irbis blanks status --json``)."""
        reasons: Counter = Counter()
        for c in self.unjudged_frames.values():
            reasons.update(c)
        return {
            "detector": self.detector,
            "min_judge_side": self.min_side,
            "sequences": sum(len(v) for v in self.sequences.values()),
            "frames": len(self.frames),
            "frames_confirmed_by_people": sum(f.confirmed for f in self.frames),
            "kept_by_review": sum(len(v) for v in self.kept_by_review.values()),
            "unjudged_sequences": sum(len(v) for v in self.unjudged_sequences.values()),
            "unjudged_frames": int(sum(reasons.values())),
            "too_small_frames": int(sum(self.too_small.values())),
            "unreadable_frames": int(reasons["unreadable"]),
            "per_station": self.per_station(),
        }


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _station_names(session: Session) -> dict[int, str]:
    """Station name per deployment id."""
    return dict(
        session.execute(
            select(Deployment.id, Station.name).join(Station, Station.id == Deployment.station_id)
        ).all()
    )


def _people(session: Session, media_ids: list[int]) -> tuple[set[int], set[int]]:
    """Media people say hold something, and media people confirmed empty.

    Something: a current reviewed box with coordinates, an "animal here"
    mark, or a current label naming a species (people's labels win over
    folders' and tags' when both exist). Empty: a current "no animal here"
    row, or a current human label of type blank, and nothing that says more.
    """
    something: set[int] = set()
    empty: set[int] = set()
    for chunk in _chunks(media_ids):
        for mid, cat, x in session.execute(
            select(ReviewedBox.media_id, ReviewedBox.category, ReviewedBox.x).where(
                ReviewedBox.media_id.in_(chunk), ReviewedBox.retracted_utc.is_(None)
            )
        ):
            if x is not None or cat == "animal":
                something.add(mid)
            elif cat == "blank":
                empty.add(mid)
        labels: dict[int, list[tuple[str | None, str | None, str]]] = defaultdict(list)
        for mid, species, otype, source in session.execute(
            select(
                Observation.media_id,
                Observation.species,
                Observation.observation_type,
                Observation.source,
            ).where(Observation.media_id.in_(chunk), Observation.retracted_utc.is_(None))
        ):
            labels[mid].append((species, otype, source))
        for mid, rows in labels.items():
            human = [r for r in rows if r[2] == "human"]
            for species, otype, _src in human or rows:
                if species is not None and species.strip().lower() not in BLANK_WORDS:
                    something.add(mid)
                elif otype == "blank" and human:
                    empty.add(mid)
    return something, empty - something


def gather_blanks(
    session: Session, detector: str | None = None, *, min_side: int = MIN_JUDGE_SIDE
) -> Blanks:
    """Decide what is set aside as blank for ``detector`` (default: the main one).

    Reads only the sequences the detector found nothing in (and media without
    a sequence), so its cost follows the number of blanks, not of media.
    """
    if detector is None:
        detector = main_detector(session)
    out = Blanks(detector=detector, min_side=min_side)
    if detector is None:
        return out
    stations = _station_names(session)

    def st(dep_id: int | None) -> str:
        return stations.get(dep_id, _NO_STATION) if dep_id is not None else _NO_STATION

    for dep_id, n in session.execute(
        select(MediaGroup.deployment_id, func.count())
        .join(SequenceVerdict, SequenceVerdict.sequence_id == MediaGroup.id)
        .where(SequenceVerdict.detector == detector)
        .group_by(MediaGroup.deployment_id)
    ):
        out.judged.setdefault(st(dep_id), Counter())["sequences"] += n
    for dep_id, n in session.execute(
        select(Media.deployment_id, func.count())
        .join(MediaDetection, MediaDetection.media_id == Media.id)
        .where(MediaDetection.detector == detector)
        .group_by(Media.deployment_id)
    ):
        out.judged.setdefault(st(dep_id), Counter())["frames"] += n

    for dep_id, n in session.execute(
        select(Media.deployment_id, func.count())
        .join(MediaDetection, MediaDetection.media_id == Media.id)
        .where(
            MediaDetection.detector == detector,
            (MediaDetection.verdict == "unjudged")
            | (
                (MediaDetection.verdict == "blank")
                & (Media.width < min_side)
                & (Media.height < min_side)
            ),
        )
        .group_by(Media.deployment_id)
    ):
        name = st(dep_id)
        out.too_small[name] = out.too_small.get(name, 0) + n

    # Candidates: sequences without a box, and loose media without a box.
    seq_ids = list(
        session.scalars(
            select(SequenceVerdict.sequence_id).where(
                SequenceVerdict.detector == detector, SequenceVerdict.verdict.not_in(_BOXED)
            )
        )
    )
    cols = (
        Media.id,
        Media.sequence_id,
        Media.deployment_id,
        Media.file_name,
        Media.timestamp_local,
        Media.storage,
        Media.stored_path,
        Media.width,
        Media.height,
    )
    media: list[Any] = []
    for chunk in _chunks(seq_ids):
        media += session.execute(
            select(*cols).where(Media.sequence_id.in_(chunk)).order_by(Media.id)
        ).all()
    media += session.execute(
        select(*cols)
        .join(MediaDetection, MediaDetection.media_id == Media.id)
        .where(
            Media.sequence_id.is_(None),
            MediaDetection.detector == detector,
            MediaDetection.verdict.not_in(_BOXED),
        )
        .order_by(Media.id)
    ).all()
    ids = [m.id for m in media]
    verdict: dict[int, str] = {}
    for chunk in _chunks(ids):
        verdict.update(
            session.execute(
                select(MediaDetection.media_id, MediaDetection.verdict).where(
                    MediaDetection.detector == detector, MediaDetection.media_id.in_(chunk)
                )
            ).all()
        )
    something, empty = _people(session, ids)

    def unjudged(m: Any) -> str | None:
        v = verdict.get(m.id)
        if v is None:
            return "not_run"
        if v == "error":
            return "unreadable"
        if v == "unjudged":
            return "too_small"
        if v == "blank" and m.width and m.height and max(m.width, m.height) < min_side:
            return "too_small"
        return None

    units: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for m in media:
        key = ("s", m.sequence_id) if m.sequence_id is not None else ("m", m.id)
        units[key].append(m)
    for (kind, _uid), members in units.items():
        station = st(members[0].deployment_id)
        if any(verdict.get(m.id) in _BOXED for m in members):
            continue  # a stale sequence verdict: a frame of it has a box
        reasons = {m.id: unjudged(m) for m in members}
        for r in reasons.values():
            if r is not None:
                out.unjudged_frames.setdefault(station, Counter())[r] += 1
        if any(m.id in something for m in members):
            if kind == "s":
                out.kept_by_review.setdefault(station, set()).add(members[0].sequence_id)
            continue
        if any(r is not None for r in reasons.values()):
            if kind == "s":
                out.unjudged_sequences.setdefault(station, set()).add(members[0].sequence_id)
            continue
        if kind == "s":
            out.sequences.setdefault(station, set()).add(members[0].sequence_id)
        for m in members:
            out.frames.append(
                SetAsideFrame(
                    media_id=m.id,
                    sequence_id=m.sequence_id,
                    station=station,
                    file_name=m.file_name,
                    time_local=m.timestamp_local,
                    storage=m.storage,
                    stored_path=m.stored_path,
                    confirmed=m.id in empty,
                )
            )
    out.frames.sort(key=lambda f: f.media_id)
    return out


def blank_status(
    session: Session, detector: str | None = None, *, min_side: int = MIN_JUDGE_SIDE
) -> dict[str, Any]:
    """:meth:`Blanks.as_dict` of :func:`gather_blanks`."""
    return gather_blanks(session, detector, min_side=min_side).as_dict()


def spot_check_sample(
    blanks: Blanks,
    *,
    n: int | None = 20,
    share: float | None = None,
    seed: int = DEFAULT_SEED,
) -> list[SetAsideFrame]:
    """A reproducible random sample of set-aside frames for a person to check.

    Frames a person already confirmed empty are not offered. The pool is
    ordered by media id and drawn with ``random.Random(seed)``, so the same
    project, detector and seed give the same frames.

    Parameters
    ----------
    blanks:
        From :func:`gather_blanks`.
    n:
        Frames wanted (all of them when fewer are set aside).
    share:
        Instead of ``n``: this fraction of the pool (0..1), at least one frame
        when the pool is not empty.
    seed:
        Seed of the draw.

    Returns
    -------
    list of SetAsideFrame
        In station, then time order (the order a person checks them in).
    """
    pool = [f for f in blanks.frames if not f.confirmed]
    if share is not None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share {share!r} must be in (0, 1]")
        k = max(1, round(share * len(pool))) if pool else 0
    else:
        if n is None or n < 0:
            raise ValueError(f"n {n!r} must be a whole number >= 0")
        k = min(n, len(pool))
    picked = random.Random(seed).sample(pool, k)
    return sorted(picked, key=lambda f: (f.station, f.time_local or datetime.min, f.media_id))
