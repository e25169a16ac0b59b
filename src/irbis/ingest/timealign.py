"""Put file-name times on the camera's clock when a deployment shows how.

A renamer shifts every time of a card by the same amount (a time-zone
"correction", AM/PM dropped: 13 hours on the Tajik survey). Where the info bar
was read on many frames of a deployment, the difference between the bar's time
and the name's time is that constant; once it is known:

* a frame whose bar could not be read takes its name's time plus the
  constant, instead of a time 13 hours off its own burst;
* a frame whose bar reading disagrees with that constant (Tesseract misreads
  about one clean digit in a hundred on these bitmap fonts: 7:45 for 7:46)
  is a misreading, and takes the name's time plus the constant too.

Both keep what was read in ``Media.extra["time_read"]``, with the shift and
why (``aligned``). When the names do not keep a steady offset to the bars (a
card renamed twice, names with another camera's times), nothing is changed:
there is nothing to trust the names by.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from irbis.ingest.timing import Clock
from irbis.store.schema import Deployment, Media

__all__ = ["align_to_stamps"]

MIN_PAIRS = 5  # frames with both bar and name read, to measure the offset
AGREE_SHARE = 0.8  # of those pairs within TOLERANCE_S of the median
# Renamers often drop odd seconds or round (the Tajik names: 1:53:20 for
# a bar's 1:53:21), so a second either way is agreement.
TOLERANCE_S = 2.0


def _pair(record: dict) -> tuple[datetime | None, datetime | None]:
    """(stamp time, file-name time) from a ``time_read`` record."""
    stamp = (record.get("stamp") or {}).get("time")
    name = (record.get("filename") or {}).get("time")
    return (
        datetime.fromisoformat(stamp) if stamp else None,
        datetime.fromisoformat(name) if name else None,
    )


def align_to_stamps(
    session: Session, deployment_ids: Iterable[int], clock_of: Callable[[Deployment], Clock]
) -> int:
    """Re-time name-only and misread-stamp frames of each deployment on the bar's clock.

    Parameters
    ----------
    session:
        An open session; changes are flushed, not committed.
    deployment_ids:
        Deployments to look at (those the ingest touched).
    clock_of:
        Gives a deployment's :class:`~irbis.ingest.timing.Clock`, to correct
        the new raw times the same way as every other.

    Returns
    -------
    The number of media re-timed.
    """
    changed = 0
    for dep in session.scalars(select(Deployment).where(Deployment.id.in_(list(deployment_ids)))):
        media = [
            m
            for m in session.scalars(
                select(Media).where(
                    Media.deployment_id == dep.id,
                    Media.taken_source.in_(("stamp", "filename")),
                )
            )
            if (m.extra or {}).get("time_read")
        ]
        offsets = []
        for m in media:
            stamp, name = _pair(m.extra["time_read"])
            if stamp is not None and name is not None:
                offsets.append((stamp - name).total_seconds())
        if len(offsets) < MIN_PAIRS:
            continue
        median = statistics.median(offsets)
        agree = sum(abs(o - median) <= TOLERANCE_S for o in offsets)
        if agree < AGREE_SHARE * len(offsets):
            continue
        clock = clock_of(dep)
        for m in media:
            record = dict(m.extra["time_read"])
            stamp, name = _pair(record)
            if name is None:
                continue
            if stamp is not None and abs((stamp - name).total_seconds() - median) <= TOLERANCE_S:
                continue
            why = "no time read in the info bar" if stamp is None else "info bar misread"
            raw = name + timedelta(seconds=median)
            record["aligned"] = {
                "time": raw.isoformat(),
                "shift_s": median,
                "reason": f"{why}; file name + {median:+g} s, the offset of "
                f"{agree} of {len(offsets)} frames of this deployment",
            }
            record["source"] = "filename"
            m.extra = {**m.extra, "time_read": record}
            m.taken_raw, m.taken_source = raw, "filename"
            local, utc, offset, flag = clock.correct(raw)
            m.timestamp_local, m.timestamp_utc = local, utc
            m.utc_offset_min, m.time_flag = offset, flag
            changed += 1
    session.flush()
    return changed
