"""SECR data: detector layouts (traps), capture histories and habitat masks.

The shapes follow R ``secr`` (Efford): a :class:`Traps` object holds detector
locations, per-occasion usage and trap covariates; a :class:`CaptureHistory`
holds counts indexed by animal x occasion x trap; a :class:`Mask` holds the
habitat points over which activity centres are integrated, with their cell
area and covariates.

Coordinates are metres; mask cell areas and densities are in hectares, as in
``secr``.

Readers accept exactly the CSV layouts of ``shared/data/secr/{tost,nemegt}``:

- ``traps.csv``: ``trapID,x,y``, optional ``usage_1..usage_K``, covariates;
- ``captures.csv``: ``ID,occasion,trapID[,count]``;
- ``mask.csv``: ``x,y`` then mask covariates.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irbis.core.errors import BadInputError

__all__ = [
    "DETECTORS",
    "file_sessions",
    "CaptureHistory",
    "Mask",
    "SessionHistories",
    "Traps",
    "make_mask",
    "read_captures",
    "read_mask",
    "read_session_captures",
    "read_session_masks",
    "read_session_traps",
    "read_traps",
    "session_order",
]

DETECTORS = ("proximity", "count", "multi")
_NA = {"", "NA", "NaN", "nan", "null", "NULL"}


def _parse_column(values: Sequence[str]) -> np.ndarray:
    """A float array if every non-missing value is numeric, else a string array."""
    out = np.empty(len(values), dtype=float)
    for i, v in enumerate(values):
        s = v.strip()
        if s in _NA:
            out[i] = np.nan
            continue
        try:
            out[i] = float(s)
        except ValueError:
            return np.array([v.strip() for v in values], dtype=object)
    return out


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    path = Path(path)
    if not path.exists():
        raise BadInputError(str(path), "file not found", "check the path")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise BadInputError(str(path), "file is empty", "it needs a header row and data rows")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise BadInputError(
                f"{path}:{i}",
                f"{len(r)} fields where the header has {len(header)}",
                "fix the row or the header",
            )
    return header, body


def _float(value: str, where: str, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise BadInputError(where, f"{what} {value!r} is not a number", "write a number") from None
    if not math.isfinite(x):
        raise BadInputError(where, f"{what} {value!r} is not finite", "write a finite number")
    return x


@dataclass
class Traps:
    """Detector (camera station) layout.

    Parameters
    ----------
    ids:
        Trap identifiers, in order.
    xy:
        ``(K, 2)`` coordinates in metres.
    usage:
        ``(K, S)`` effort per trap and occasion (e.g. camera-days, or 0/1);
        ``None`` means 1 on every occasion.
    covariates:
        Trap covariates by name: float arrays (``NaN`` missing) or object
        arrays of strings for factors.
    timevaryingcov:
        Trap covariates that vary by occasion, as secr's ``timevaryingcov``:
        a name a formula may use mapped to one covariate column per occasion
        (``{"vis": ["vis1", "vis2", "vis3"]}``); such models take the
        occasion-varying likelihood.
    """

    ids: list[str]
    xy: np.ndarray
    usage: np.ndarray | None = None
    covariates: dict[str, np.ndarray] = field(default_factory=dict)
    timevaryingcov: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=float).reshape(-1, 2)
        if len(self.ids) != len(self.xy):
            raise BadInputError("traps", "ids and coordinates differ in length")
        if len(set(self.ids)) != len(self.ids):
            dup = sorted({t for t in self.ids if self.ids.count(t) > 1})[0]
            raise BadInputError("traps", f"trapID {dup!r} appears twice", "make trap IDs unique")
        if self.usage is not None:
            self.usage = np.asarray(self.usage, dtype=float)
            if self.usage.ndim != 2 or self.usage.shape[0] != len(self.ids):
                raise BadInputError("traps", "usage must be traps x occasions")
            if np.any(~np.isfinite(self.usage)) or np.any(self.usage < 0):
                raise BadInputError("traps", "usage must be finite and >= 0")
        for name, cols in (self.timevaryingcov or {}).items():
            if name in self.covariates:
                raise BadInputError(
                    "traps",
                    f"time-varying covariate {name!r} is also a trap covariate",
                    "give the time-varying covariate its own name",
                )
            missing = [c for c in cols if c not in self.covariates]
            if missing or not cols:
                what = f"{missing[0]!r}, not a trap covariate" if missing else "no columns"
                raise BadInputError(
                    "traps",
                    f"time-varying covariate {name!r} names {what}",
                    "name one trap covariate column per occasion",
                )
            kinds = {np.asarray(self.covariates[c]).dtype.kind in "OUS" for c in cols}
            if len(kinds) > 1:
                raise BadInputError(
                    "traps", f"time-varying covariate {name!r} mixes numbers and factors"
                )

    @property
    def n_traps(self) -> int:
        """Number of detectors."""
        return len(self.ids)

    def usage_matrix(self, n_occasions: int) -> np.ndarray:
        """Usage as a ``(K, S)`` float array (ones when no usage was given).

        Parameters
        ----------
        n_occasions:
            Number of occasions ``S`` required.

        Returns
        -------
        numpy.ndarray
            ``(K, S)`` usage.
        """
        if self.usage is None:
            return np.ones((self.n_traps, n_occasions))
        if self.usage.shape[1] != n_occasions:
            raise BadInputError(
                "traps",
                f"usage has {self.usage.shape[1]} occasions, captures have {n_occasions}",
                "give one usage column per occasion",
            )
        return self.usage

    def spacing(self) -> float:
        """Mean nearest-neighbour distance between traps (metres)."""
        if self.n_traps < 2:
            return float("nan")
        d = np.sqrt(((self.xy[:, None, :] - self.xy[None, :, :]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        return float(d.min(axis=1).mean())


@dataclass
class CaptureHistory:
    """Spatial capture histories: counts by animal x occasion x trap.

    Parameters
    ----------
    ids:
        Animal identifiers (one per detected animal).
    counts:
        ``(n, S, K)`` integer detections of animal ``i`` on occasion ``s`` at
        trap ``k``. For ``proximity`` detectors values are 0/1; for ``multi``
        each animal is caught at most once per occasion.
    traps:
        The detector layout.
    detector:
        ``"proximity"``, ``"count"`` or ``"multi"``.
    binom_size:
        For ``count`` detectors: 0 means Poisson counts (secr ``binomN = 0``),
        a positive integer means binomial counts with that many trials per
        unit usage.
    """

    ids: list[str]
    counts: np.ndarray
    traps: Traps
    detector: str = "count"
    binom_size: int = 0

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if self.counts.ndim != 3 or self.counts.shape[0] != len(self.ids):
            raise BadInputError("captures", "counts must be animals x occasions x traps")
        if self.counts.shape[2] != self.traps.n_traps:
            raise BadInputError("captures", "counts and traps disagree on the number of traps")
        if self.detector not in DETECTORS:
            raise BadInputError(
                "captures", f"unknown detector {self.detector!r}", f"use one of {DETECTORS}"
            )
        if np.any(self.counts < 0):
            raise BadInputError("captures", "negative counts", "counts are >= 0")
        if self.detector == "proximity" and np.any(self.counts > 1):
            raise BadInputError(
                "captures",
                "a proximity detector recorded an animal more than once on one occasion",
                "use detector 'count', or collapse to 0/1",
            )
        if self.detector == "multi" and np.any(self.counts.sum(axis=2) > 1):
            raise BadInputError(
                "captures",
                "a multi-catch history has an animal at more than one trap on one occasion",
                "use detector 'proximity' or 'count'",
            )
        if (
            self.detector == "count"
            and self.binom_size > 0
            and np.any(self.counts > self.binom_size)
        ):
            raise BadInputError("captures", "a count exceeds the binomial size")
        if len(self.ids) and np.any(self.counts.reshape(len(self.ids), -1).sum(axis=1) == 0):
            i = int(np.flatnonzero(self.counts.reshape(len(self.ids), -1).sum(axis=1) == 0)[0])
            raise BadInputError(
                "captures",
                f"animal {self.ids[i]!r} has an all-zero capture history",
                "drop animals that were never detected",
            )
        if len(self.ids) == 0:
            raise BadInputError("captures", "no animals detected", "SECR needs detections")
        usage = self.traps.usage_matrix(self.n_occasions)
        bad = (self.counts > 0) & (usage.T[None, :, :] <= 0)
        if np.any(bad):
            i, s, k = (int(v[0]) for v in np.nonzero(bad))
            raise BadInputError(
                "captures",
                f"animal {self.ids[i]!r} detected at trap {self.traps.ids[k]!r} on occasion "
                f"{s + 1} when its usage is 0",
                "fix the usage or the capture",
            )

    @property
    def n(self) -> int:
        """Number of detected animals."""
        return len(self.ids)

    @property
    def n_occasions(self) -> int:
        """Number of occasions ``S``."""
        return int(self.counts.shape[1])

    def summary(self) -> dict[str, Any]:
        """Counts: animals, detections, recaptures, traps visited.

        Returns
        -------
        dict
            ``n`` animals, ``detections`` total, ``recaptures`` (detections
            beyond the first of each animal), ``traps_visited`` and
            ``moves`` (animals detected at more than one trap).
        """
        tot = int(self.counts.sum())
        at = (self.counts.sum(axis=1) > 0).sum(axis=1)
        return {
            "n": self.n,
            "occasions": self.n_occasions,
            "traps": self.traps.n_traps,
            "detections": tot,
            "recaptures": tot - self.n,
            "traps_visited": int((self.counts.sum(axis=(0, 1)) > 0).sum()),
            "animals_at_several_traps": int((at > 1).sum()),
        }


@dataclass
class SessionHistories:
    """Capture histories of several sessions (years, regions): R ``secr``'s multi-session capthist.

    Each session has its own animals, occasions, traps and usage; an animal
    seen in two sessions is two rows (closed populations per session).

    Parameters
    ----------
    names:
        Session names, in order (the order sets ``Session`` = 0, 1, ...).
    histories:
        One :class:`CaptureHistory` per session.
    covariates:
        Session covariates by name, one value per session (numbers, or
        strings for factors).
    """

    names: list[str]
    histories: list[CaptureHistory]
    covariates: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        if len(self.names) != len(self.histories) or not self.names:
            raise BadInputError("sessions", "one capture history per session name is needed")
        if len(set(self.names)) != len(self.names):
            raise BadInputError("sessions", "session names repeat", "make them unique")
        kinds = {(h.detector, h.binom_size) for h in self.histories}
        if len(kinds) > 1:
            raise BadInputError(
                "sessions", "sessions differ in detector type", "use one detector type"
            )
        for k, v in list(self.covariates.items()):
            if k in ("session", "Session"):
                raise BadInputError("sessions", f"{k!r} is a reserved session covariate name")
            arr = np.asarray(v)
            if arr.shape != (len(self.names),):
                raise BadInputError("sessions", f"session covariate {k!r} needs one value each")
            self.covariates[k] = arr if arr.dtype.kind in "fiu" else arr.astype(object)

    @property
    def n_sessions(self) -> int:
        """Number of sessions."""
        return len(self.names)

    @property
    def n(self) -> int:
        """Animals detected, summed over sessions (secr's ``n`` for AICc)."""
        return sum(h.n for h in self.histories)

    @property
    def detector(self) -> str:
        """Detector type (the same in every session)."""
        return self.histories[0].detector

    @property
    def binom_size(self) -> int:
        """Binomial size of count detectors (0 Poisson)."""
        return self.histories[0].binom_size

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(zip(self.names, self.histories, strict=True))

    def summary(self) -> dict[str, Any]:
        """Per-session counts (see :meth:`CaptureHistory.summary`).

        Returns
        -------
        dict
            ``{"sessions": [...], "n": total animals, "per_session": {name: {...}}}``.
        """
        return {
            "sessions": list(self.names),
            "n": self.n,
            "per_session": {s: h.summary() for s, h in self},
        }


@dataclass
class Mask:
    """Habitat mask: points that may hold an activity centre.

    Parameters
    ----------
    xy:
        ``(M, 2)`` point coordinates in metres (cell centres).
    spacing:
        Distance between adjacent points, metres.
    covariates:
        Mask covariates by name (float, ``NaN`` missing; or strings).
    """

    xy: np.ndarray
    spacing: float
    covariates: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=float).reshape(-1, 2)
        if len(self.xy) == 0:
            raise BadInputError(
                "mask", "mask has no points", "use a larger buffer or check the mask file"
            )
        if not (self.spacing > 0):
            raise BadInputError("mask", f"spacing {self.spacing} is not positive")

    @property
    def n_points(self) -> int:
        """Number of mask points."""
        return len(self.xy)

    @property
    def cell_area(self) -> float:
        """Area of one mask cell, hectares."""
        return self.spacing**2 / 1e4

    @property
    def area(self) -> float:
        """Total mask area, hectares."""
        return self.cell_area * self.n_points


def _infer_spacing(xy: np.ndarray) -> float:
    """Smallest positive coordinate step along x or y."""
    steps = []
    for c in (0, 1):
        u = np.unique(np.round(xy[:, c], 6))
        if len(u) > 1:
            steps.append(np.diff(u).min())
    if not steps:
        return float("nan")
    return float(min(steps))


def read_traps(path: str | Path) -> Traps:
    """Read a ``traps.csv``: ``trapID,x,y[,usage_1..usage_K][,covariates...]``.

    A ``Session`` column with more than one session is refused: read such
    files with :func:`read_session_traps`.

    Parameters
    ----------
    path:
        CSV file path.

    Returns
    -------
    Traps
        The layout; string-valued covariates become factors.
    """
    path = Path(path)
    header, groups = _split_sessions(path)
    _refuse_several_sessions(path, list(groups), "trap layout", "read_session_traps")
    return _build_traps(path, header, next(iter(groups.values())))


def read_session_traps(path: str | Path) -> dict[str, Traps]:
    """Read a traps file with a ``Session`` column: one layout per session.

    Parameters
    ----------
    path:
        CSV file path: ``Session,trapID,x,y[,usage_1..usage_K][,covariates]``;
        each session's rows are its traps. A session with fewer occasions
        than there are usage columns leaves its last ones empty.

    Returns
    -------
    dict
        ``{session: Traps}`` in R ``secr``'s session order.
    """
    path = Path(path)
    header, groups = _split_sessions(path)
    if "" in groups:
        raise BadInputError(str(path), "no Session column", "use read_traps for one session")
    return {s: _build_traps(path, header, rows) for s, rows in groups.items()}


def _build_traps(path: Path, header: list[str], numbered: _Rows) -> Traps:
    for need in ("trapID", "x", "y"):
        if need not in header:
            raise BadInputError(
                str(path), f"no column {need!r}", "the header must start trapID,x,y"
            )
    if not numbered:
        raise BadInputError(str(path), "no traps", "add one row per camera station")
    body = [row for _, row in numbered]
    it, ix, iy = header.index("trapID"), header.index("x"), header.index("y")
    ids, xy = [], []
    for r, row in numbered:
        where = f"{path}:{r}"
        tid = row[it].strip()
        if not tid:
            raise BadInputError(where, "empty trapID", "give every trap an ID")
        if tid in ids:
            raise BadInputError(where, f"trapID {tid!r} appears twice", "make trap IDs unique")
        ids.append(tid)
        xy.append((_float(row[ix], where, "x"), _float(row[iy], where, "y")))
    ucols = [h for h in header if h.startswith("usage_")]
    usage = None
    if ucols:
        try:
            order = sorted(ucols, key=lambda h: int(h.split("_", 1)[1]))
        except ValueError:
            raise BadInputError(str(path), "usage columns must be usage_1..usage_K") from None
        if [int(h.split("_", 1)[1]) for h in order] != list(range(1, len(order) + 1)):
            raise BadInputError(str(path), "usage columns must be usage_1..usage_K, no gaps")
        # a session with fewer occasions leaves its last usage columns empty
        while order and all(row[header.index(order[-1])].strip() in _NA for row in body):
            order = order[:-1]
        if order:
            usage = np.empty((len(ids), len(order)))
        for i, (r, row) in enumerate(numbered):
            for j, h in enumerate(order):
                u = _float(row[header.index(h)], f"{path}:{r}", h)
                if u < 0:
                    raise BadInputError(f"{path}:{r}", f"{h} is negative", "usage is >= 0")
                usage[i, j] = u  # type: ignore[index]
    covs = {}
    for j, h in enumerate(header):
        if h in ("trapID", "x", "y") or h in ucols:
            continue
        covs[h] = _parse_column([row[j] for row in body])
    return Traps(ids=ids, xy=np.array(xy), usage=usage, covariates=covs)


def session_order(names: Sequence[str]) -> list[str]:
    """Session names in the order R ``secr`` gives them.

    ``make.capthist`` sorts the distinct values of the Session column:
    numerically when every one is a number, else as text (R's collation).

    Parameters
    ----------
    names:
        Session values (repeats allowed).

    Returns
    -------
    list of str
        Distinct sessions, ordered.
    """
    distinct = list(dict.fromkeys(str(n).strip() for n in names))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct, key=lambda s: (s.casefold(), s.swapcase()))


def _session_column(header: list[str], path: Path) -> int | None:
    """Index of the ``Session`` column (any case), or None."""
    hits = [j for j, h in enumerate(header) if h.casefold() == "session"]
    if len(hits) > 1:
        raise BadInputError(str(path), "two Session columns", "keep one")
    return hits[0] if hits else None


def file_sessions(path: str | Path) -> list[str]:
    """Sessions named in a CSV file's ``Session`` column (``[]`` without one).

    Parameters
    ----------
    path:
        A captures, traps or mask CSV.

    Returns
    -------
    list of str
        Distinct sessions in R ``secr``'s order.
    """
    path = Path(path)
    _, groups = _split_sessions(path)
    return [] if "" in groups else list(groups)


def _refuse_several_sessions(path: Path, sessions: list[str], what: str, use: str) -> None:
    if len(sessions) > 1:
        shown = ", ".join(sessions[:5]) + (", ..." if len(sessions) > 5 else "")
        raise BadInputError(
            str(path),
            f"the Session column holds {len(sessions)} sessions ({shown}); "
            f"pooling them as one {what} would be wrong",
            f"read them with {use}, or keep one session's rows",
        )


def _capture_rows(path: Path) -> tuple[list[tuple[str, str, str, int, int, str]], bool]:
    """Rows of a captures file: ``(session, animal, trapID, occasion, count, where)``."""
    header, body = _read_csv(path)
    for need in ("ID", "occasion", "trapID"):
        if need not in header:
            raise BadInputError(
                str(path), f"no column {need!r}", "the header must be ID,occasion,trapID[,count]"
            )
    isess = _session_column(header, path)
    known = {"ID", "occasion", "trapID", "count"}
    extra = [h for j, h in enumerate(header) if h not in known and j != isess]
    if extra:
        raise BadInputError(
            str(path),
            f"column {extra[0]!r} is not read (R secr would take it as an individual "
            "covariate, which irbis does not fit yet)",
            "drop the column; the layout is [Session,]ID,occasion,trapID[,count]",
        )
    ii, io, it = header.index("ID"), header.index("occasion"), header.index("trapID")
    ic = header.index("count") if "count" in header else None
    rows = []
    for r, row in enumerate(body, start=2):
        where = f"{path}:{r}"
        sess = row[isess].strip() if isess is not None else "1"
        if not sess:
            raise BadInputError(where, "empty Session", "give every row its session")
        aid = row[ii].strip()
        if not aid:
            raise BadInputError(where, "empty animal ID", "give every detection an ID")
        occ = _float(row[io], where, "occasion")
        if occ != int(occ) or occ < 1:
            raise BadInputError(where, f"occasion {row[io]!r} is not a positive integer")
        cnt = 1.0 if ic is None else _float(row[ic], where, "count")
        if cnt != int(cnt) or cnt < 0:
            raise BadInputError(where, f"count {row[ic]!r} is not a whole number >= 0")  # type: ignore[index]
        rows.append((sess, aid, row[it].strip(), int(occ), int(cnt), where))
    return rows, isess is not None


def _history(
    path: Path,
    rows: list[tuple[str, str, str, int, int, str]],
    traps: Traps,
    detector: str,
    n_occasions: int | None,
    binom_size: int,
) -> CaptureHistory:
    """One session's capture history from its rows."""
    tindex = {t: k for k, t in enumerate(traps.ids)}
    recs: list[tuple[str, int, int, int, str]] = []
    for _sess, aid, tid, occ, cnt, where in rows:
        if tid not in tindex:
            raise BadInputError(
                where, f"unknown trapID {tid!r}", "add the trap to traps.csv or fix the ID"
            )
        recs.append((aid, occ, tindex[tid], cnt, where))
    if traps.usage is not None:
        s_max = traps.usage.shape[1]
    else:
        s_max = max((o for _, o, _, _, _ in recs), default=1)
    if n_occasions is not None:
        s_max = n_occasions
    ids: list[str] = []
    for aid, *_ in recs:
        if aid not in ids:
            ids.append(aid)
    if not ids:
        raise BadInputError(str(path), "no detections", "SECR needs at least one detection")
    counts = np.zeros((len(ids), s_max, traps.n_traps), dtype=np.int64)
    aidx = {a: i for i, a in enumerate(ids)}
    for aid, occ, k, cnt, where in recs:
        if occ > s_max:
            raise BadInputError(
                where, f"occasion {occ} beyond the {s_max} occasions of the traps' usage"
            )
        counts[aidx[aid], occ - 1, k] += cnt
    keep = counts.reshape(len(ids), -1).sum(axis=1) > 0
    if not keep.all():
        bad = ids[int(np.flatnonzero(~keep)[0])]
        raise BadInputError(
            str(path),
            f"animal {bad!r} has an all-zero capture history",
            "drop rows with count 0 for animals never detected",
        )
    try:
        return CaptureHistory(
            ids=ids, counts=counts, traps=traps, detector=detector, binom_size=binom_size
        )
    except BadInputError as exc:
        raise BadInputError(str(path), exc.reason, exc.hint) from None


def read_captures(
    path: str | Path,
    traps: Traps,
    *,
    detector: str = "count",
    n_occasions: int | None = None,
    binom_size: int = 0,
) -> CaptureHistory:
    """Read a ``captures.csv``: ``[Session,]ID,occasion,trapID[,count]``.

    A ``Session`` column with more than one session is refused (pooling the
    sessions would silently give a wrong fit): read such files with
    :func:`read_session_captures`. Any other column is refused too.

    Parameters
    ----------
    path:
        CSV file path; one row per animal x occasion x trap (repeated rows add).
    traps:
        The layout the ``trapID`` values refer to.
    detector:
        ``"proximity"``, ``"count"`` or ``"multi"``.
    n_occasions:
        Number of occasions; default: the number of usage columns, else the
        largest occasion seen.
    binom_size:
        Binomial size for ``count`` detectors (0 = Poisson).

    Returns
    -------
    CaptureHistory
    """
    path = Path(path)
    rows, _ = _capture_rows(path)
    _refuse_several_sessions(
        path, session_order([r[0] for r in rows]), "session", "read_session_captures"
    )
    return _history(path, rows, traps, detector, n_occasions, binom_size)


def read_session_captures(
    path: str | Path,
    traps: Traps | Mapping[str, Traps],
    *,
    detector: str = "count",
    n_occasions: int | Mapping[str, int] | None = None,
    binom_size: int = 0,
    sessions: Sequence[str] | None = None,
) -> SessionHistories:
    """Read a multi-session ``captures.csv``: ``Session,ID,occasion,trapID[,count]``.

    Parameters
    ----------
    path:
        CSV file path. Without a ``Session`` column the file is one session
        named ``"1"``.
    traps:
        One layout for every session, or a layout per session name (see
        :func:`read_session_traps`).
    detector:
        ``"proximity"``, ``"count"`` or ``"multi"``.
    n_occasions:
        Occasions, for all sessions or per session; default as
        :func:`read_captures`.
    binom_size:
        Binomial size for ``count`` detectors (0 = Poisson).
    sessions:
        Session names in order; default: those of the file (and of
        ``traps``), ordered as R ``secr`` orders them (:func:`session_order`).
        A session with no rows is refused.

    Returns
    -------
    SessionHistories
    """
    path = Path(path)
    rows, _ = _capture_rows(path)
    names = session_order([r[0] for r in rows])
    if isinstance(traps, Mapping):
        for s in names:
            if s not in traps:
                raise BadInputError(
                    str(path), f"session {s!r} has no traps", "add its rows to the traps file"
                )
        names = session_order(list(traps) + names)
    if sessions is not None:
        names = [str(s) for s in sessions]
        unknown = sorted({r[0] for r in rows} - set(names))
        if unknown:
            raise BadInputError(str(path), f"session {unknown[0]!r} is not among {names}")
    out = []
    for s in names:
        srows = [r for r in rows if r[0] == s]
        if not srows:
            raise BadInputError(
                str(path),
                f"session {s!r} has no detections",
                "irbis fits sessions with at least one detected animal; drop the session",
            )
        tr = traps[s] if isinstance(traps, Mapping) else traps
        k = n_occasions.get(s) if isinstance(n_occasions, Mapping) else n_occasions
        out.append(_history(path, srows, tr, detector, k, binom_size))
    return SessionHistories(names=names, histories=out)


_Rows = list[tuple[int, list[str]]]


def _split_sessions(path: Path) -> tuple[list[str], dict[str, _Rows]]:
    """Header without the Session column and the numbered rows per session.

    A file without a Session column is one session named ``""``.
    """
    header, body = _read_csv(path)
    isess = _session_column(header, path)
    numbered = list(enumerate(body, start=2))
    if isess is None:
        return header, {"": numbered}
    groups: dict[str, _Rows] = {}
    for r, row in numbered:
        s = row[isess].strip()
        if not s:
            raise BadInputError(f"{path}:{r}", "empty Session", "give every row its session")
        groups.setdefault(s, []).append((r, row[:isess] + row[isess + 1 :]))
    hdr = header[:isess] + header[isess + 1 :]
    return hdr, {s: groups[s] for s in session_order(list(groups))}


def read_mask(path: str | Path, spacing: float | None = None) -> Mask:
    """Read a ``mask.csv``: ``x,y`` then covariates.

    A ``Session`` column with more than one session is refused: read such
    files with :func:`read_session_masks`.

    Parameters
    ----------
    path:
        CSV file path.
    spacing:
        Point spacing in metres; default: inferred from the coordinates.

    Returns
    -------
    Mask
    """
    path = Path(path)
    header, groups = _split_sessions(path)
    _refuse_several_sessions(path, list(groups), "mask", "read_session_masks")
    return _build_mask(path, header, next(iter(groups.values())), spacing)


def read_session_masks(path: str | Path, spacing: float | None = None) -> dict[str, Mask]:
    """Read a mask file with a ``Session`` column: one mask per session.

    Parameters
    ----------
    path:
        CSV file path: ``Session,x,y[,covariates]``.
    spacing:
        Point spacing in metres; default: inferred from each session's points.

    Returns
    -------
    dict
        ``{session: Mask}`` in R ``secr``'s session order.
    """
    path = Path(path)
    header, groups = _split_sessions(path)
    if "" in groups:
        raise BadInputError(str(path), "no Session column", "use read_mask for one mask")
    return {s: _build_mask(path, header, rows, spacing) for s, rows in groups.items()}


def _build_mask(path: Path, header: list[str], numbered: _Rows, spacing: float | None) -> Mask:
    for need in ("x", "y"):
        if need not in header:
            raise BadInputError(str(path), f"no column {need!r}", "the header must have x,y")
    if not numbered:
        raise BadInputError(str(path), "mask has no points", "the mask needs x,y rows")
    ix, iy = header.index("x"), header.index("y")
    xy = np.array(
        [
            (_float(row[ix], f"{path}:{r}", "x"), _float(row[iy], f"{path}:{r}", "y"))
            for r, row in numbered
        ]
    )
    if spacing is None:
        spacing = _infer_spacing(xy)
        if not math.isfinite(spacing):
            raise BadInputError(str(path), "cannot infer the spacing", "pass the spacing")
    body = [row for _, row in numbered]
    covs = {
        h: _parse_column([row[j] for row in body])
        for j, h in enumerate(header)
        if h not in ("x", "y")
    }
    return Mask(xy=xy, spacing=float(spacing), covariates=covs)


def make_mask(
    traps: Traps,
    buffer: float,
    spacing: float,
    *,
    polygon: Any = None,
    covariates: Mapping[str, np.ndarray] | None = None,
) -> Mask:
    """Build a mask: grid points within ``buffer`` metres of any trap.

    Parameters
    ----------
    traps:
        Detector layout.
    buffer:
        Maximum distance from the nearest trap, metres (secr's
        ``type = "trapbuffer"``); about 4 sigma is usual.
    spacing:
        Grid spacing, metres.
    polygon:
        Optional shapely (multi)polygon of habitat; only points inside it are kept.
    covariates:
        Optional covariates, one value per kept point.

    Returns
    -------
    Mask
    """
    if not (buffer > 0 and spacing > 0):
        raise BadInputError("mask", "buffer and spacing must be positive")
    lo = traps.xy.min(axis=0) - buffer
    hi = traps.xy.max(axis=0) + buffer
    gx = np.arange(lo[0] + spacing / 2, hi[0], spacing)
    gy = np.arange(lo[1] + spacing / 2, hi[1], spacing)
    X, Y = np.meshgrid(gx, gy)
    pts = np.column_stack([X.ravel(), Y.ravel()])
    keep = np.zeros(len(pts), dtype=bool)
    for start in range(0, len(pts), 20000):
        chunk = pts[start : start + 20000]
        d2 = ((chunk[:, None, :] - traps.xy[None, :, :]) ** 2).sum(-1).min(axis=1)
        keep[start : start + 20000] = d2 <= buffer**2
    pts = pts[keep]
    if polygon is not None and len(pts):
        import shapely

        inside = shapely.contains_xy(polygon, pts[:, 0], pts[:, 1])
        pts = pts[inside]
    if len(pts) == 0:
        raise BadInputError(
            "mask", "mask has no points", "enlarge the buffer or check the habitat polygon"
        )
    return Mask(xy=pts, spacing=float(spacing), covariates=dict(covariates or {}))
