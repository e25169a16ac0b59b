"""The catalogue: a faiss index over every annotation's descriptors, LNBNN scoring
per individual, geometric verification, calibrated decisions.

Scoring follows the HotSpotter family (Crall et al. 2013): every query
descriptor looks up its nearest catalogue descriptors; a neighbour earns
``d_norm - d``, where ``d_norm`` is the distance to the first neighbour *not*
among the ``k_names`` closest individuals ("local naive Bayes nearest
neighbour", LNBNN). Distinct descriptors (a unique rosette) thus vote strongly
and common ones (rock texture, fur without rosettes) hardly at all. Neighbours
are counted per *individual*, so a burst of twenty near-identical frames of one
cat is one neighbour, not twenty, and does not swamp the normaliser.

The raw votes shortlist annotations; RANSAC on the voting correspondences
keeps only the geometrically consistent ones, and the sum of their votes is the
verified score that ranks individuals and feeds the calibrated probability.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import faiss
import numpy as np

from irbis.core.errors import IrbisError
from irbis.reid.annotations import Annotation, Side
from irbis.reid.calibration import Calibration, DecisionRule
from irbis.reid.features import Features, extract
from irbis.reid.preprocess import prepare


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """Tunable parameters of the matcher (defaults tuned on the Tajik set).

    Attributes
    ----------
    k:
        Neighbours fetched per query descriptor.
    k_names:
        Individuals that earn votes per descriptor; the next one is the normaliser.
    shortlist:
        Annotations geometrically verified per query.
    per_name:
        At most this many annotations of one individual in the shortlist.
    ransac_px:
        RANSAC reprojection threshold, in prepared-image pixels.
    min_inliers:
        Fewer inliers than this → verified score 0.
    ivf_above:
        Switch from an exact flat index to IVF above this many descriptors.
    ivf_codec:
        faiss codec of the IVF cells: ``"SQ8"`` (128 B per descriptor, near
        exact), ``"PQ32"`` (32 B, for 10^7+ descriptors) or ``"Flat"``.
    nprobe:
        IVF cells visited per search.
    k_extra_max:
        Cap on the extra neighbours fetched to make up for excluded annotations.
    static_px:
        Correspondences closer than this (original pixels) between two frames of
        the same (or an unknown) camera are background and dropped; 0 disables.
    """

    k: int = 10
    k_names: int = 1
    shortlist: int = 20
    per_name: int = 3
    ransac_px: float = 20.0
    min_inliers: int = 6
    ivf_above: int = 50_000
    ivf_codec: str = "SQ8"
    k_extra_max: int = 60
    static_px: float = 12.0
    nprobe: int = 8
    calibration: Calibration = field(default_factory=Calibration)
    decision: DecisionRule = field(default_factory=DecisionRule)


@dataclass(slots=True)
class Match:
    """One candidate annotation for a query, with its evidence.

    ``query_xy``/``match_xy`` are the inlier keypoints in original-frame pixels
    of the query and the matched annotation, so a viewer can draw the lines.
    """

    annotation: str
    individual: str | None
    score: float
    probability: float
    inliers: int
    raw: float
    query_xy: np.ndarray
    match_xy: np.ndarray


@dataclass(slots=True)
class QueryResult:
    """What the catalogue says about one query.

    Attributes
    ----------
    decision:
        ``"same"`` (as ``individual``), ``"new"`` (nobody in the catalogue) or
        ``"unsure"`` (a person should review ``candidates``).
    individual:
        Best individual when ``decision == "same"`` (or best guess otherwise).
    probability:
        Calibrated probability that the best candidate is the same animal.
    candidates:
        Best match per individual, best first.
    annotations:
        Every scored annotation, best first (verified shortlist, then the rest
        by raw votes).
    """

    decision: str
    individual: str | None
    probability: float
    candidates: list[Match]
    annotations: list[Match]


@dataclass(slots=True)
class _Entry:
    ann: Annotation
    feats: Features
    start: int  # first descriptor id (descriptor ids of one annotation are contiguous)
    name: str


def _same_camera(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def _name_of(ann: Annotation) -> str:
    # Unidentified annotations vote as their encounter (a burst is one animal) so
    # catalogue-free clustering still counts a burst once.
    if ann.individual:
        return ann.individual
    return f"~enc:{ann.encounter}" if ann.encounter else f"~ann:{ann.id}"


class Catalogue:
    """Known annotations, searchable by pattern; updated in place.

    Parameters
    ----------
    config:
        Matcher parameters.
    dim:
        Descriptor dimension (128 for SIFT).

    Examples
    --------
    >>> cat = Catalogue()
    >>> cat.add_annotation(Annotation("a1", "img1.jpg", individual="Khan"))  # doctest: +SKIP
    >>> cat.identify(Annotation("q", "img2.jpg")).decision  # doctest: +SKIP
    'same'
    """

    def __init__(self, config: MatchConfig | None = None, dim: int = 128) -> None:
        self.config = config or MatchConfig()
        self.dim = dim
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
        self._ivf = False
        self._entries: dict[int, _Entry] = {}
        self._slot_of: dict[str, int] = {}
        self._next_slot = 0
        self._next_id = 0
        self._desc_slot = np.zeros(0, np.int32)  # descriptor id → slot (-1 = removed)

    # ------------------------------------------------------------------ content
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ann_id: object) -> bool:
        return ann_id in self._slot_of

    @property
    def n_descriptors(self) -> int:
        """Descriptors currently in the index."""
        return int(self._index.ntotal)

    def individuals(self) -> dict[str, list[str]]:
        """Known individuals and their annotation ids."""
        out: dict[str, list[str]] = {}
        for e in self._entries.values():
            if e.ann.individual:
                out.setdefault(e.ann.individual, []).append(e.ann.id)
        return out

    def annotation(self, ann_id: str) -> Annotation:
        """The stored annotation ``ann_id``."""
        return self._entries[self._slot(ann_id)].ann

    def features(self, ann_id: str) -> Features:
        """The stored keypoints of ``ann_id`` (descriptors live in the index only)."""
        return self._entries[self._slot(ann_id)].feats

    def _slot(self, ann_id: str) -> int:
        try:
            return self._slot_of[ann_id]
        except KeyError:
            raise IrbisError(f"annotation {ann_id!r} is not in the catalogue") from None

    # ------------------------------------------------------------------ updates
    def add_annotation(self, ann: Annotation, **prepare_kw: object) -> Features:
        """Prepare, extract features of and add one annotation; returns its features."""
        feats = extract(prepare(ann.image, box=ann.box, mask=ann.mask, **prepare_kw))
        self.add(ann, feats)
        return feats

    def add(self, ann: Annotation, feats: Features) -> None:
        """Add an annotation with precomputed features (no rebuild of the index).

        An annotation without keypoints is stored (so it can be listed and
        removed) but can never be matched.
        """
        if ann.id in self._slot_of:
            raise IrbisError(f"annotation {ann.id!r} is already in the catalogue")
        if feats.desc.shape[1:] != (self.dim,) or feats.desc.shape[0] != len(feats):
            raise IrbisError(f"descriptors of {ann.id!r} are not {self.dim}-dimensional")
        slot = self._next_slot
        self._next_slot += 1
        n = len(feats)
        start = self._next_id
        self._next_id += n
        self._entries[slot] = _Entry(ann, feats.without_descriptors(), start, _name_of(ann))
        self._slot_of[ann.id] = slot
        if n:
            need = self._next_id
            if need > self._desc_slot.size:
                grown = np.full(max(need, 2 * self._desc_slot.size, 1024), -1, np.int32)
                grown[: self._desc_slot.size] = self._desc_slot
                self._desc_slot = grown
            self._desc_slot[start : start + n] = slot
            ids = np.arange(start, start + n, dtype=np.int64)
            desc = np.ascontiguousarray(feats.desc, dtype=np.float32)
            if not self._ivf and self._index.ntotal + n > self.config.ivf_above:
                self._to_ivf(extra=desc)
            self._index.add_with_ids(desc, ids)

    def add_many(self, items: Iterable[tuple[Annotation, Features]]) -> None:
        """Add several annotations (same as repeated :meth:`add`)."""
        for ann, feats in items:
            self.add(ann, feats)

    def remove(self, ann_id: str) -> None:
        """Remove an annotation and its descriptors."""
        slot = self._slot(ann_id)
        e = self._entries.pop(slot)
        del self._slot_of[ann_id]
        n = len(e.feats)
        if n:
            self._index.remove_ids(faiss.IDSelectorRange(e.start, e.start + n))
            self._desc_slot[e.start : e.start + n] = -1

    def set_individual(self, ann_id: str, individual: str | None) -> None:
        """Confirm (or clear) the individual of an annotation; no index change needed."""
        e = self._entries[self._slot(ann_id)]
        e.ann.individual = individual
        e.name = _name_of(e.ann)

    def merge(self, keep: str, other: str) -> int:
        """Merge individual ``other`` into ``keep``; returns the annotations moved."""
        moved = 0
        for e in self._entries.values():
            if e.ann.individual == other:
                e.ann.individual = keep
                e.name = _name_of(e.ann)
                moved += 1
        return moved

    def split(self, individual: str, ann_ids: Iterable[str], new: str) -> int:
        """Move ``ann_ids`` of ``individual`` to a new individual ``new``."""
        moved = 0
        for a in ann_ids:
            e = self._entries[self._slot(a)]
            if e.ann.individual != individual:
                raise IrbisError(f"annotation {a!r} is not of individual {individual!r}")
            e.ann.individual = new
            e.name = _name_of(e.ann)
            moved += 1
        return moved

    def _to_ivf(self, extra: np.ndarray) -> None:
        """One-time switch from exact search to an inverted-file index.

        Exact search costs O(catalogue) per query descriptor; IVF visits
        ``nprobe`` of ``nlist`` cells, so a query scans about
        ``nprobe / nlist`` of the catalogue and latency grows sublinearly.
        Later additions go straight into the trained cells.
        """
        have = self._index.ntotal
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        base = np.vstack([self._index.index.reconstruct_n(0, have), extra]) if have else extra
        nlist = int(min(4096, max(64, np.sqrt(base.shape[0]))))
        ivf = faiss.index_factory(self.dim, f"IVF{nlist},{self.config.ivf_codec}")
        rng = np.random.default_rng(0)
        n_train = min(base.shape[0], 40 * nlist)
        sample = base[rng.choice(base.shape[0], n_train, replace=False)]
        faiss.extract_index_ivf(ivf).cp.niter = 10
        ivf.train(sample)
        if have:
            ivf.add_with_ids(base[:have], ids)
        self._index = ivf
        self._ivf = True

    # ------------------------------------------------------------------ queries
    def _banned(self, exclude: set[str], side: Side) -> np.ndarray:
        """Boolean over slots: annotations the query must not see."""
        banned = np.zeros(self._next_slot + 1, bool)
        for a in exclude:
            if a in self._slot_of:
                banned[self._slot_of[a]] = True
        if side is not Side.UNKNOWN:
            for s, e in self._entries.items():
                if not side.compatible(e.ann.side):
                    banned[s] = True
        return banned

    def identify(
        self, ann: Annotation, exclude: Iterable[str] = (), **prepare_kw: object
    ) -> QueryResult:
        """Prepare, extract and :meth:`query` one annotation."""
        feats = extract(prepare(ann.image, box=ann.box, mask=ann.mask, **prepare_kw))
        return self.query(feats, side=ann.side, exclude=exclude, camera=ann.camera)

    def query(
        self,
        feats: Features,
        side: Side = Side.UNKNOWN,
        exclude: Iterable[str] = (),
        camera: str | None = None,
    ) -> QueryResult:
        """Score every individual of the catalogue against one query.

        Parameters
        ----------
        feats:
            Query features.
        side:
            Query flank; catalogue annotations of the other known side are never
            considered.
        exclude:
            Annotation ids to ignore (e.g. the query's own burst).
        camera:
            Query's camera key, for the static-background filter.
        """
        cfg = self.config
        empty = QueryResult("new", None, 0.0, [], [])
        if len(feats) == 0 or self._index.ntotal == 0:
            return empty
        banned = self._banned(set(exclude), Side.parse(side))
        # Banned annotations are filtered after the search (faiss's id selectors
        # bypass BLAS on flat indexes and run ~50x slower); fetching a few more
        # neighbours per banned annotation keeps ``k`` usable ones in most rows.
        k = int(min(cfg.k + min(2 * int(banned.sum()), cfg.k_extra_max), self._index.ntotal))
        q = np.ascontiguousarray(feats.desc, dtype=np.float32)
        if self._ivf:
            faiss.extract_index_ivf(self._index).nprobe = cfg.nprobe
        dist2, ids = self._index.search(q, k)
        valid = ids >= 0
        slots = np.where(valid, self._desc_slot[np.where(valid, ids, 0)], -1)
        valid &= slots >= 0
        valid &= ~banned[slots]
        if not valid.any():
            return empty
        dist = np.sqrt(np.maximum(dist2, 0.0))
        live = {s: e for s, e in self._entries.items()}
        name_codes: dict[str, int] = {}
        slot_name = {s: name_codes.setdefault(e.name, len(name_codes)) for s, e in live.items()}
        nq = q.shape[0]
        rows = np.repeat(np.arange(nq), k).reshape(nq, k)
        cols = np.tile(np.arange(k), (nq, 1))
        vr, vc = rows[valid], cols[valid]
        vslot = slots[valid]
        vname = np.array([slot_name[s] for s in vslot], np.int64)
        vd = dist[valid]
        n_names = max(1, len(name_codes))
        # First (= nearest) occurrence of each individual in each row, and its rank.
        key = vr.astype(np.int64) * n_names + vname
        ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
        urow = ukey // n_names
        order = np.lexsort((vc[first], urow))
        rank_sorted = np.arange(order.size) - np.searchsorted(urow[order], urow[order])
        urank = np.empty_like(rank_sorted)
        urank[order] = rank_sorted
        erank = urank[inv]
        # Normaliser: distance of the (k_names+1)-th individual, else the farthest
        # neighbour fetched (fewer individuals than that in the catalogue).
        norm = dist[np.arange(nq), np.maximum(valid.sum(1) - 1, 0)].copy()
        is_norm = urank == cfg.k_names
        norm[urow[is_norm]] = vd[first[is_norm]]
        vote = np.maximum(norm[vr] - vd, 0.0) * (erank < cfg.k_names)
        # One vote per (query descriptor, annotation): its nearest occurrence.
        akey = vr.astype(np.int64) * (self._next_slot + 1) + vslot
        _, afirst = np.unique(akey, return_index=True)
        keep = afirst[vote[afirst] > 0]
        if keep.size == 0:
            return QueryResult("new", None, 0.0, [], [])
        k_row, k_slot, k_vote = vr[keep], vslot[keep], vote[keep]
        k_db = ids[k_row, vc[keep]] - np.array([live[s].start for s in k_slot], np.int64)
        if cfg.static_px > 0:
            # Static background: a fixed camera's rocks sit at the same pixel in
            # every frame, a moving animal's rosettes almost never do.
            same_cam = np.array(
                [_same_camera(camera, live[int(s)].ann.camera) for s in k_slot], bool
            )
            qxy = feats.xy_original[k_row]
            dxy = np.array(
                [live[int(s)].feats.xy_original[d] for s, d in zip(k_slot, k_db, strict=True)]
            )
            dxy = dxy.reshape(-1, 2)
            static = same_cam & (np.hypot(*(qxy - dxy).T) < cfg.static_px)
            k_row, k_slot, k_vote, k_db = (x[~static] for x in (k_row, k_slot, k_vote, k_db))
            if k_row.size == 0:
                return QueryResult("new", None, 0.0, [], [])
        raw = np.bincount(k_slot, weights=k_vote, minlength=self._next_slot)
        ranked = np.argsort(-raw, kind="stable")
        ranked = ranked[raw[ranked] > 0]
        # Shortlist with at most per_name annotations per individual, so a big
        # burst cannot crowd other individuals out of verification.
        short: list[int] = []
        per: dict[str, int] = {}
        for s in ranked:
            nm = live[int(s)].name
            if per.get(nm, 0) < cfg.per_name:
                per[nm] = per.get(nm, 0) + 1
                short.append(int(s))
                if len(short) >= cfg.shortlist:
                    break
        order_by_slot = np.argsort(k_slot, kind="stable")
        bounds = np.searchsorted(k_slot[order_by_slot], [short, np.array(short) + 1])
        matches: list[Match] = []
        for j, s in enumerate(short):
            sel_ = order_by_slot[bounds[0][j] : bounds[1][j]]
            m = self._verify(feats, live[s], k_row[sel_], k_db[sel_], k_vote[sel_], raw[s])
            matches.append(m)
        matches.sort(key=lambda m: (-m.score, -m.raw))
        shortset = set(short)
        rest = [
            Match(
                live[int(s)].ann.id,
                live[int(s)].ann.individual,
                0.0,
                0.0,
                0,
                float(raw[s]),
                np.zeros((0, 2), np.float32),
                np.zeros((0, 2), np.float32),
            )
            for s in ranked
            if int(s) not in shortset
        ]
        best: dict[str, Match] = {}
        for m in matches:
            nm = live[self._slot_of[m.annotation]].name
            if nm not in best and m.score > 0:
                best[nm] = m
        verified = list(best.values())
        # Individuals without a verified match still rank, after the verified
        # ones, by raw votes: a reviewer's top-5 list should not stop at one name.
        unverified: dict[str, Match] = {}
        for m in matches + rest:
            nm = live[self._slot_of[m.annotation]].name
            if nm not in best and nm not in unverified:
                unverified[nm] = m
        candidates = verified + sorted(unverified.values(), key=lambda m: -m.raw)
        if not verified:
            guess = candidates[0].individual if candidates else None
            return QueryResult("new", guess, 0.0, candidates, matches + rest)
        top = verified[0]
        decision = cfg.decision.decide(top.probability)
        return QueryResult(decision, top.individual, top.probability, candidates, matches + rest)

    def _verify(
        self,
        feats: Features,
        entry: _Entry,
        qi: np.ndarray,
        di: np.ndarray,
        votes: np.ndarray,
        raw: float,
    ) -> Match:
        cfg = self.config
        none = np.zeros((0, 2), np.float32)
        if qi.size < max(4, cfg.min_inliers):
            return Match(entry.ann.id, entry.ann.individual, 0.0, 0.0, 0, float(raw), none, none)
        src = feats.xy[qi].astype(np.float32)
        dst = entry.feats.xy[di].astype(np.float32)
        h, inl = cv2.findHomography(src, dst, cv2.RANSAC, cfg.ransac_px, maxIters=500)
        if h is None or inl is None:
            return Match(entry.ann.id, entry.ann.individual, 0.0, 0.0, 0, float(raw), none, none)
        inl = inl.ravel().astype(bool)
        # A keypoint matched twice (many-to-one) is one piece of evidence.
        _, uniq = np.unique(di[inl], return_index=True)
        idx = np.flatnonzero(inl)[uniq]
        n = int(idx.size)
        score = float(votes[idx].sum()) if n >= cfg.min_inliers else 0.0
        prob = float(cfg.calibration.probability(score)) if score > 0 else 0.0
        return Match(
            entry.ann.id,
            entry.ann.individual,
            score,
            prob,
            n,
            float(raw),
            feats.xy_original[qi[idx]],
            entry.feats.xy_original[di[idx]],
        )
