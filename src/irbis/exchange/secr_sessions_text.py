"""Multi-session SECR data: a project's survey split into sessions, and R ``secr`` text files.

:func:`project_sessions` splits a project's identified animals into sessions
(by calendar year, by month, by blocks of days, or by a station covariate
such as a region), each with the stations that worked in it, their
camera-days per occasion and their covariates. It builds on
:func:`irbis.exchange.secr_text.project_capthist` with one-day occasions and
sums the days of each occasion (a ``count`` is the number of independent
records, as there; ``proximity`` keeps 0/1).

:func:`write_session_text` writes what R's ``read.capthist`` reads as a
multi-session capthist: one capture file whose first column is the session,
and one traps file per session, in the order ``secr``'s ``make.capthist``
gives the sessions (numeric when all are numbers, else sorted), which is the
order the traps files must be passed in. IDs and text covariates are written
as R-safe tokens (see :mod:`irbis.exchange.secr_text`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from irbis.core.errors import BadInputError
from irbis.exchange.secr_text import project_capthist, r_tokens
from irbis.stats.secr_data import CaptureHistory, SessionHistories, Traps, session_order

__all__ = ["project_sessions", "write_session_text"]


def _fmt(v: float) -> str:
    return f"{v:.10g}"


def _occasions(days: list[int], occasion_days: int | None) -> list[list[int]]:
    """Consecutive day indices grouped into occasions (``None``: one occasion)."""
    if occasion_days is None:
        return [days]
    k = int(occasion_days)
    if k < 1:
        raise BadInputError("--occasion-days", f"{occasion_days} is not >= 1")
    return [days[i : i + k] for i in range(0, len(days), k)]


def _session(
    ch1: CaptureHistory,
    days: list[int],
    stations: np.ndarray,
    occasion_days: int | None,
    detector: str,
) -> CaptureHistory | None:
    """One session from the one-day-occasion history: its days, stations, occasions."""
    occ = _occasions(days, occasion_days)
    u1 = ch1.traps.usage_matrix(ch1.n_occasions)  # K x days
    usage = np.stack([u1[:, o].sum(axis=1) for o in occ], axis=1)
    keep = stations & (usage.sum(axis=1) > 0)
    if not keep.any():
        return None
    counts = np.stack([ch1.counts[:, o, :].sum(axis=1) for o in occ], axis=1)[:, :, keep]
    if detector != "count":
        counts = (counts > 0).astype(np.int64)
    seen = counts.reshape(len(ch1.ids), -1).sum(axis=1) > 0
    if not seen.any():
        return None
    ids = [a for a, s in zip(ch1.ids, seen, strict=True) if s]
    traps = Traps(
        ids=[t for t, k in zip(ch1.traps.ids, keep, strict=True) if k],
        xy=ch1.traps.xy[keep],
        usage=usage[keep],
        covariates={c: v[keep] for c, v in ch1.traps.covariates.items()},
    )
    return CaptureHistory(ids=ids, counts=counts[seen], traps=traps, detector=detector)


def project_sessions(
    project: Any,
    by: str = "year",
    occasion_days: int | None = None,
    *,
    detector: str = "count",
    species: str | None = None,
) -> SessionHistories:
    """A project's survey as SECR sessions.

    Parameters
    ----------
    project:
        An open :class:`irbis.store.Project` or its folder.
    by:
        ``"year"`` or ``"month"`` (calendar, from the first day of effort),
        ``"<N>d"`` (blocks of N days, e.g. ``"90d"`` for seasons), or the name
        of a station covariate (e.g. ``"region"``: one session per value, over
        the whole survey).
    occasion_days:
        Days per occasion within a session (``None``: one occasion each).
    detector:
        ``count``, ``proximity`` or ``multi``.
    species:
        Only observations of this species.

    Returns
    -------
    SessionHistories
        Sessions with at least one detected animal (those without are
        listed nowhere; fit them only with the detections they have).
    """
    from irbis.ingest.effort import project_effort
    from irbis.store import Project

    opened = isinstance(project, str | Path)
    proj = Project.open(project) if opened else project
    try:
        ch1 = project_capthist(proj, occasion_days=1, detector="count", species=species)
        op = project_effort(proj)
    finally:
        if opened:
            proj.close()
    dates = op.days[: ch1.n_occasions]
    all_days = list(range(len(dates)))
    everywhere = np.ones(ch1.traps.n_traps, dtype=bool)
    groups: dict[str, tuple[list[int], np.ndarray]] = {}
    m = re.fullmatch(r"(\d+)d", by.strip())
    if by == "year":
        for d, day in enumerate(dates):
            groups.setdefault(str(day.year), ([], everywhere))[0].append(d)
    elif by == "month":
        for d, day in enumerate(dates):
            groups.setdefault(f"{day.year}-{day.month:02d}", ([], everywhere))[0].append(d)
    elif m:
        n = int(m.group(1))
        if n < 1:
            raise BadInputError("--sessions", f"{by} is not a number of days >= 1")
        for d in all_days:
            groups.setdefault(str(d // n + 1), ([], everywhere))[0].append(d)
    elif by in ch1.traps.covariates:
        vals = np.array([str(v) for v in ch1.traps.covariates[by]], dtype=object)
        for v in session_order(list(vals)):
            groups[v] = (all_days, vals == v)
    else:
        covs = ", ".join(sorted(ch1.traps.covariates)) or "none"
        raise BadInputError(
            "--sessions",
            f"{by!r} is not year, month, <N>d or a station covariate",
            f"station covariates: {covs}",
        )
    names, hists = [], []
    for name in session_order(list(groups)):
        days, stations = groups[name]
        h = _session(ch1, days, stations, occasion_days, detector)
        if h is not None:
            names.append(name)
            hists.append(h)
    if not hists:
        raise BadInputError("--sessions", "no session has a detected animal")
    return SessionHistories(names=names, histories=hists)


def write_session_text(sessions: SessionHistories, out_dir: str | Path) -> dict[str, Any]:
    """Write a multi-session capthist that R ``secr::read.capthist`` reads.

    ``capthist.txt`` has one line per detection, ``Session ID Occasion
    TrapID`` (a count of 3 is three lines); ``traps_<session>.txt`` has
    ``trapID x y``, the usage of each occasion and, after a ``/``, the trap
    covariates.

    Parameters
    ----------
    sessions:
        The sessions (their names become R-safe session tokens).
    out_dir:
        Folder to write into (created if missing).

    Returns
    -------
    dict
        ``captfile``, ``trapfiles`` (in session order), ``sessions``,
        ``animals`` and ``occasions`` per session, ``detections``, ``r_call``
        and ``renamed`` (values written as R-safe tokens).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stoken = r_tokens(list(sessions.names))
    tokens = [stoken[s] for s in sessions.names]
    if session_order(tokens) != tokens:
        raise BadInputError(
            "sessions",
            f"session names {tokens} are not in the order R sorts them",
            "name sessions so that they sort in time order (e.g. 2019, 2020 or 01, 02)",
        )
    animal = r_tokens([a for _, ch in sessions for a in ch.ids])
    trap_id = r_tokens(list(dict.fromkeys(t for _, ch in sessions for t in ch.traps.ids)))
    covnames = list(dict.fromkeys(c for _, ch in sessions for c in ch.traps.covariates))
    text_cov: dict[str, dict[str, str]] = {}
    for c in covnames:
        vals = [str(v) for _, ch in sessions for v in ch.traps.covariates.get(c, [])]
        if any(
            np.asarray(ch.traps.covariates.get(c, np.zeros(0))).dtype == object
            for _, ch in sessions
        ):
            text_cov[c] = r_tokens(vals)
    lines = ["# Session ID Occasion TrapID  (irbis export secr, multi-session)"]
    trapfiles = []
    for name, ch in sessions:
        for i, a in enumerate(ch.ids):
            for s, k in zip(*np.nonzero(ch.counts[i]), strict=True):
                line = f"{stoken[name]} {animal[a]} {s + 1} {trap_id[ch.traps.ids[k]]}"
                lines.extend([line] * int(ch.counts[i, s, k]))
        tf = out / f"traps_{stoken[name]}.txt"
        usage = ch.traps.usage_matrix(ch.n_occasions)
        tl = [f"# trapID x y usage[1..{ch.n_occasions}] / {' '.join(covnames)}".rstrip(" /")]
        for k, tid in enumerate(ch.traps.ids):
            parts = [trap_id[tid], _fmt(ch.traps.xy[k, 0]), _fmt(ch.traps.xy[k, 1])]
            parts += [_fmt(u) for u in usage[k]]
            if covnames:
                parts.append("/")
                for c in covnames:
                    if c not in ch.traps.covariates:
                        parts.append("NA")
                        continue
                    v = ch.traps.covariates[c][k]
                    if c in text_cov:
                        parts.append(text_cov[c][str(v)])
                    else:
                        parts.append("NA" if not np.isfinite(v) else _fmt(float(v)))
            tl.append(" ".join(parts))
        tf.write_text("\n".join(tl) + "\n")
        trapfiles.append(tf)
    capt = out / "capthist.txt"
    capt.write_text("\n".join(lines) + "\n")
    cov_arg = (
        ", trapcovnames = c(" + ", ".join(f'"{c}"' for c in covnames) + ")" if covnames else ""
    )
    occ = [ch.n_occasions for _, ch in sessions]
    r_call = (
        f'ch <- read.capthist("{capt.name}", c('
        + ", ".join(f'"{t.name}"' for t in trapfiles)
        + f'), fmt = "trapID", detector = "{sessions.detector}", noccasions = c('
        + ", ".join(str(o) for o in occ)
        + f"), binary.usage = FALSE{cov_arg})"
    )
    return {
        "captfile": str(capt),
        "trapfiles": [str(t) for t in trapfiles],
        "sessions": tokens,
        "animals": {stoken[s]: ch.n for s, ch in sessions},
        "occasions": dict(zip(tokens, occ, strict=True)),
        "detections": int(sum(ch.counts.sum() for _, ch in sessions)),
        "r_call": r_call,
        "renamed": {
            "sessions": {a: t for a, t in stoken.items() if a != t},
            "animals": {a: t for a, t in animal.items() if a != t},
            "traps": {a: t for a, t in trap_id.items() if a != t},
        },
    }
