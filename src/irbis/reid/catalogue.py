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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import faiss
import numpy as np

from irbis.core.errors import IrbisError
from irbis.reid.annotations import Annotation, Side
from irbis.reid.calibration import Calibration, DecisionRule
from irbis.reid.features import Features, extract
from irbis.reid.knn import exhaustive_knn
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
    compact_above:
        Above this many descriptors the IVF cells hold ``compact_codec`` codes
        instead of ``ivf_codec`` (taken at the next retraining); ``None``
        never. Default 20 million descriptors (about 30,000 annotations of
        648 keypoints, 2.6 GB of SQ8 codes): every survey so far keeps SQ8,
        while a national catalogue still fits a laptop (100,000 annotations
        of 648 keypoints: 3.4 GB with the keypoints, against 9.6 GB with SQ8)
        and answers a 5-frame encounter in under 300 ms. The price, measured
        with ``bench/reid_index.py`` on the Tajik descriptors: neighbour
        recall@10 0.92 SQ8, 0.67 PQ64x4fs; per-encounter top-1 / macro top-1
        0.590 / 0.386 SQ8, 0.564 / 0.349 PQ64x4fs at ``compact_nprobe`` 16.
    compact_codec:
        faiss codec of very large catalogues: default ``"PQ64x4fs"``, a
        4-bit fast-scan product quantiser (32 B per descriptor, like
        ``"PQ32"``, whose identification on the Tajik set it matches, and
        scanned 3 times faster than PQ32, 8 times faster than SQ8;
        ``bench/README.md``, issue 16).
    encounter_max_descriptors:
        :meth:`Catalogue.query_encounter` asks the index for at most this many
        descriptors per encounter, each frame's strongest (an equal share per
        frame); ``None`` (default) asks them all. Query time is proportional
        to the descriptors asked.
    nprobe:
        IVF cells visited per search.
    compact_nprobe:
        Cells visited per search once the cells hold ``compact_codec`` codes
        (``None``: ``nprobe``). Default 16: on the Tajik descriptors PQ64x4fs
        identifies as well at 16 cells as at 32 (per encounter top-1 / top-5
        0.564 / 0.821 against 0.538 / 0.846; SQ8 at 32 cells 0.590 / 0.795),
        and at 100,000 annotations a 5-frame encounter is asked in 273 ms
        instead of 436-541 (``bench/README.md``, issue 16).
    ivf_retrain:
        Retrain the IVF cells (``nlist ~ 2 sqrt(N)``) when the index has grown
        by this factor since the last training; ``<= 1`` never retrains.
    size_penalty:
        Best-of-n correction of the ranking: an individual's best score is
        lowered by ``size_penalty * beta * log(encounters)``, with ``beta`` the
        scale of this query's chance scores, so an individual seen in many
        encounters does not win on lucky draws alone; 0 disables.
    penalise_verified:
        Apply ``size_penalty`` to geometrically verified candidates too; off by
        default: on the Tajik set it bought nothing there and cost top-1, while
        on the unverified tail it lifts top-5 (0.715 → 0.781) and macro top-1.
    k_extra_max:
        Cap on the extra neighbours fetched to make up for excluded annotations.
    static_px:
        Correspondences closer than this (original pixels) between two frames of
        the same (or an unknown) camera are background and dropped; 0 disables.
    shift_px:
        A camera knocked or re-mounted between visits sees its rocks shifted by
        a few pixels: between two frames of one camera, correspondences that
        share one displacement of at most this many original pixels (within
        ``shift_tol_px`` of each other, at least 5 of them) are background too;
        0 disables. Rocks keep their shift to a fraction of a pixel, while an
        animal that stands at the same spot on two visits never holds a pose
        that exactly, so the tolerance is tight.
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
    ivf_retrain: float = 2.0
    shift_px: float = 80.0
    shift_tol_px: float = 3.0
    size_penalty: float = 1.0
    penalise_verified: bool = False
    nprobe: int = 32
    compact_nprobe: int | None = 16
    compact_above: int | None = 20_000_000
    compact_codec: str = "PQ64x4fs"
    encounter_max_descriptors: int | None = None
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
    n: int  # keypoints
    start: int  # first row of the annotation's keypoints in the keypoint columns
    name: str


#: A faiss id is ``slot << LOCAL_BITS | keypoint``: the annotation and the keypoint
#: are read off the id itself, so no per-descriptor lookup table is kept (4 B per
#: descriptor, 0.26 GB at 100,000 annotations of 648 keypoints).
LOCAL_BITS = 20
_LOCAL_MASK = (1 << LOCAL_BITS) - 1


_SIDE_CODE = {Side.UNKNOWN: 0, Side.LEFT: 1, Side.RIGHT: 2}


def _strongest(frames: Sequence[Features], cap: int) -> list[Features]:
    """Each frame's strongest descriptors, at most ``cap`` over all frames.

    Every frame keeps the same share (``cap // frames``, its first rows:
    :func:`~irbis.reid.features.extract` stores keypoints strongest first);
    a frame with fewer keypoints leaves its unused share to the others.
    """
    sizes = np.array([len(f) for f in frames], np.int64)
    if sizes.sum() <= cap:
        return list(frames)
    # Water-filling: the largest per-frame share t with sum(min(size, t)) <= cap.
    lo, hi = 0, int(sizes.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(np.minimum(sizes, mid).sum()) <= cap:
            lo = mid
        else:
            hi = mid - 1
    out = []
    for f, m in zip(frames, np.minimum(sizes, lo), strict=True):
        m = int(m)
        out.append(Features(f.xy[:m], f.size[:m], f.angle[:m], f.desc[:m], f.xy_original[:m]))
    return out


def _grown(arr: np.ndarray, cap: int, fill: object) -> np.ndarray:
    out = np.full((cap, *arr.shape[1:]), fill, arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def _name_of(ann: Annotation) -> str:
    # Unidentified annotations vote as their encounter (a burst is one animal) so
    # catalogue-free clustering still counts a burst once.
    if ann.individual:
        return ann.individual
    return f"~enc:{ann.encounter}" if ann.encounter else f"~ann:{ann.id}"


def _shifted_background(
    disp: np.ndarray, tol: float, max_shift: float, min_count: int = 5
) -> np.ndarray:
    """Correspondences that follow one small common shift of a fixed camera.

    ``disp`` are the displacements (original pixels) of the correspondences
    between two frames of one camera. Among those under ``max_shift``, the
    densest ``tol``-sized cell of displacements is the camera's shift when at
    least ``min_count`` fall in it; every correspondence within ``tol`` of its mean is
    flagged. A moving animal's rosettes do not keep one displacement to a few
    pixels; rocks seen by a nudged or re-mounted camera do.
    """
    out = np.zeros(disp.shape[0], bool)
    near = np.flatnonzero(np.hypot(disp[:, 0], disp[:, 1]) < max_shift)
    if near.size < min_count:
        return out
    d = disp[near]
    cells = np.floor(d / tol).astype(np.int64)
    keys, inv, counts = np.unique(
        cells[:, 0] * 100_003 + cells[:, 1], return_inverse=True, return_counts=True
    )
    best = int(np.argmax(counts))
    if counts[best] < min_count:
        return out
    centre = d[inv.ravel() == best].mean(0)
    out[near[np.hypot(*(d - centre).T) < tol]] = True
    return out


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
        self._compact = False  # the IVF cells hold compact_codec codes
        self._entries: dict[int, _Entry] = {}
        self._slot_of: dict[str, int] = {}
        self._next_slot = 0
        self._next_id = 0
        # Keypoint columns, one row per keypoint (an annotation's rows are
        # contiguous from its ``start``): positions in the prepared crop as
        # float16 (crops are at most a few hundred pixels, so the rounding is
        # under 0.5 px against a 20 px RANSAC threshold) and in the original
        # frame as float32 (the static-background filter works to 3 px on
        # frames thousands of pixels wide). Size and angle are not kept:
        # matching never reads them.
        self._kp_xy = np.zeros((0, 2), np.float16)
        self._kp_xyo = np.zeros((0, 2), np.float32)
        # Per-slot columns, so a query never loops over the catalogue in Python.
        self._slot_name = np.zeros(0, np.int64)  # code of the voting name
        self._slot_start = np.zeros(0, np.int64)
        self._slot_cam = np.zeros(0, np.int64)  # camera code, -1 = unknown
        self._slot_side = np.zeros(0, np.int8)  # 0 unknown, 1 left, 2 right
        self._slot_enc = np.zeros(0, np.int64)  # encounter code
        self._slot_live = np.zeros(0, bool)
        self._codes: dict[str, dict[str, int]] = {"name": {}, "cam": {}, "enc": {}}
        self._trained_at = 0  # descriptors in the index when the IVF was last trained

    def _code(self, kind: str, key: str) -> int:
        table = self._codes[kind]
        return table.setdefault(key, len(table))

    def _set_name(self, slot: int, e: _Entry) -> None:
        e.name = _name_of(e.ann)
        self._slot_name[slot] = self._code("name", e.name)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, object]:
        """The catalogue as plain data, the faiss index serialised.

        A driver builds the catalogue once and ships it to worker processes
        (``irbis identify --ray``); a copy answers every query exactly as the original.
        """
        state = dict(self.__dict__)
        state["_index"] = faiss.serialize_index(self._index)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        state = dict(state)
        state["_index"] = faiss.deserialize_index(state["_index"])
        self.__dict__.update(state)

    # ------------------------------------------------------------------ content
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ann_id: object) -> bool:
        return ann_id in self._slot_of

    @property
    def n_descriptors(self) -> int:
        """Descriptors currently in the index."""
        return int(self._index.ntotal)

    def memory_bytes(self) -> dict[str, int]:
        """Approximate memory held, by part (``index``, ``keypoints``, ``lookup``).

        ``index`` counts the descriptor codes and ids in faiss (4 B per
        dimension when exact, 1 B with SQ8, fewer with PQ) plus the coarse
        centroids; ``keypoints`` the positions kept for verification (12 B
        per keypoint, as allocated); ``lookup`` the per-annotation columns
        (faiss ids carry the annotation, so there is no per-descriptor table).
        """
        n = int(self._index.ntotal)
        if self._ivf:
            ivf = faiss.extract_index_ivf(self._index)
            per = ivf.code_size + 8
            coarse = ivf.nlist * self.dim * 4 * 2  # centroids (+ HNSW links, roughly)
        else:
            per, coarse = self.dim * 4 + 8, 0
        kp = self._kp_xy.nbytes + self._kp_xyo.nbytes
        lookup = 41 * self._slot_live.size
        return {"index": n * per + coarse, "keypoints": kp, "lookup": lookup}

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
        """The stored keypoints of ``ann_id``.

        Descriptors live in the index only; size and angle are not kept (zeros).
        """
        e = self._entries[self._slot(ann_id)]
        rows = slice(e.start, e.start + e.n)
        z = np.zeros(e.n, np.float32)
        desc = np.zeros((0, self.dim), np.float32)
        return Features(self._kp_xy[rows].astype(np.float32), z, z, desc, self._kp_xyo[rows].copy())

    def _ids(self, slot: int, n: int) -> np.ndarray:
        """faiss ids of the ``n`` keypoints of ``slot``."""
        return (np.int64(slot) << LOCAL_BITS) | np.arange(n, dtype=np.int64)

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
        slot, desc = self._register(ann, feats)
        if desc.shape[0]:
            self._index_add([slot], desc)

    def add_many(self, items: Iterable[tuple[Annotation, Features]], batch: int = 200_000) -> None:
        """Add several annotations; the same catalogue as repeated :meth:`add`.

        Descriptors reach faiss in batches of about ``batch`` (one call per
        batch instead of one per annotation: on a busy 2-core machine a call
        costs tens of milliseconds whatever its size). The IVF is retrained
        when a batch crosses the growth threshold, so cell boundaries may fall
        at slightly different sizes than with one-by-one adds.
        """
        slots: list[int] = []
        descs: list[np.ndarray] = []
        held = 0
        try:
            for ann, feats in items:
                slot, desc = self._register(ann, feats)
                if desc.shape[0]:
                    slots.append(slot)
                    descs.append(desc)
                    held += desc.shape[0]
                if held >= batch:
                    self._index_add(slots, np.vstack(descs))
                    slots, descs, held = [], [], 0
        finally:
            # Also on a bad item: what was registered is indexed, never half-added.
            if descs:
                self._index_add(slots, np.vstack(descs))

    def _register(self, ann: Annotation, feats: Features) -> tuple[int, np.ndarray]:
        """Record an annotation and its keypoints; returns its slot and descriptors."""
        if ann.id in self._slot_of:
            raise IrbisError(f"annotation {ann.id!r} is already in the catalogue")
        if feats.desc.shape[1:] != (self.dim,) or feats.desc.shape[0] != len(feats):
            raise IrbisError(f"descriptors of {ann.id!r} are not {self.dim}-dimensional")
        n = len(feats)
        if n > _LOCAL_MASK:
            raise IrbisError(
                f"annotation {ann.id!r} has {n} keypoints, more than {_LOCAL_MASK}: "
                "extract fewer (features.extract(max_keypoints=...))"
            )
        slot = self._next_slot
        self._next_slot += 1
        start = self._next_id
        self._next_id += n
        entry = _Entry(ann, n, start, _name_of(ann))
        self._entries[slot] = entry
        self._slot_of[ann.id] = slot
        if slot >= self._slot_live.size:
            cap = max(slot + 1, 2 * self._slot_live.size, 256)
            self._slot_name = _grown(self._slot_name, cap, 0)
            self._slot_start = _grown(self._slot_start, cap, 0)
            self._slot_cam = _grown(self._slot_cam, cap, -1)
            self._slot_side = _grown(self._slot_side, cap, 0)
            self._slot_enc = _grown(self._slot_enc, cap, 0)
            self._slot_live = _grown(self._slot_live, cap, False)
        self._set_name(slot, entry)
        self._slot_start[slot] = start
        self._slot_cam[slot] = -1 if ann.camera is None else self._code("cam", ann.camera)
        self._slot_side[slot] = _SIDE_CODE[ann.side]
        self._slot_enc[slot] = self._code("enc", ann.encounter or f"~ann:{ann.id}")
        self._slot_live[slot] = True
        if n:
            need = self._next_id
            if need > self._kp_xy.shape[0]:
                # Grow by a quarter, not double: at 65 million keypoints a doubled
                # column would hold up to 0.8 GB of unused rows.
                cap = max(need, int(1.25 * self._kp_xy.shape[0]), 1024)
                self._kp_xy = _grown(self._kp_xy, cap, 0.0)
                self._kp_xyo = _grown(self._kp_xyo, cap, 0.0)
            self._kp_xy[start : start + n] = feats.xy
            self._kp_xyo[start : start + n] = feats.xy_original
        return slot, np.ascontiguousarray(feats.desc, dtype=np.float32)

    def _index_add(self, slots: list[int], desc: np.ndarray) -> None:
        """Put the descriptors of ``slots`` (stacked in ``desc``, in order) in faiss."""
        ids = np.concatenate([self._ids(s, self._entries[s].n) for s in slots])
        total = self._index.ntotal + desc.shape[0]
        grow = self.config.ivf_retrain
        if (not self._ivf and total > self.config.ivf_above) or (
            self._ivf and grow > 1 and total > grow * self._trained_at
        ):
            self._to_ivf(extra=desc, adding=set(slots))
        self._index.add_with_ids(desc, ids)

    def remove(self, ann_id: str) -> None:
        """Remove an annotation and its descriptors."""
        slot = self._slot(ann_id)
        e = self._entries.pop(slot)
        del self._slot_of[ann_id]
        self._slot_live[slot] = False
        if e.n:
            lo = slot << LOCAL_BITS
            self._index.remove_ids(faiss.IDSelectorRange(lo, lo + (1 << LOCAL_BITS)))

    def set_individual(self, ann_id: str, individual: str | None) -> None:
        """Confirm (or clear) the individual of an annotation; no index change needed."""
        slot = self._slot(ann_id)
        e = self._entries[slot]
        e.ann.individual = individual
        self._set_name(slot, e)

    def merge(self, keep: str, other: str) -> int:
        """Merge individual ``other`` into ``keep``; returns the annotations moved."""
        moved = 0
        for slot, e in self._entries.items():
            if e.ann.individual == other:
                e.ann.individual = keep
                self._set_name(slot, e)
                moved += 1
        return moved

    def split(self, individual: str, ann_ids: Iterable[str], new: str) -> int:
        """Move ``ann_ids`` of ``individual`` to a new individual ``new``."""
        moved = 0
        for a in ann_ids:
            slot = self._slot(a)
            e = self._entries[slot]
            if e.ann.individual != individual:
                raise IrbisError(f"annotation {a!r} is not of individual {individual!r}")
            e.ann.individual = new
            self._set_name(slot, e)
            moved += 1
        return moved

    def _to_ivf(self, extra: np.ndarray, adding: set[int]) -> None:
        """(Re)build the inverted-file index over every descriptor (``extra``, the
        descriptors of the slots ``adding``, not added).

        Exact search costs O(catalogue) per query descriptor; IVF visits
        ``nprobe`` of ``nlist`` cells, so a query scans about
        ``nprobe / nlist`` of the catalogue. ``nlist`` follows ``2 sqrt(N)``
        (HNSW coarse quantizer, so assigning a descriptor to its cell stays
        cheap with thousands of cells) and the cells are retrained whenever
        the index has grown by ``ivf_retrain`` since the last training, so
        cells stay a few hundred to a few thousand descriptors long and
        latency grows sublinearly. Between retrainings, additions go straight
        into the trained cells. Old descriptors are moved in chunks, so a
        rebuild never holds the whole catalogue as floats.
        """
        have = self._index.ntotal
        chunk = 200_000
        if have and self._ivf:
            # ``extra`` holds the descriptors of ``adding``, not in the index yet.
            live = [(s, e.n) for s, e in sorted(self._entries.items()) if e.n and s not in adding]
            parts_id = [self._ids(s, n) for s, n in live]
            ids = np.concatenate(parts_id) if parts_id else np.zeros(0, np.int64)
            ivf_old = faiss.extract_index_ivf(self._index)
            ivf_old.set_direct_map_type(faiss.DirectMap.Hashtable)

            def old_chunk(i: int) -> np.ndarray:
                return self._index.reconstruct_batch(ids[i : i + chunk])
        elif have:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            ivf_old = None

            def old_chunk(i: int) -> np.ndarray:
                return self._index.index.reconstruct_n(i, min(chunk, have - i))
        else:
            ids = np.zeros(0, np.int64)
            ivf_old = None
        total = have + extra.shape[0]
        nlist = int(min(8192, max(64, 2 * np.sqrt(total))))
        quant = "HNSW32" if nlist > 1024 else ""
        cfg = self.config
        big = cfg.compact_above is not None and total > cfg.compact_above
        codec = cfg.compact_codec if big else cfg.ivf_codec
        ivf = faiss.index_factory(self.dim, f"IVF{nlist}_{quant},{codec}".replace("_,", ","))
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(total, min(total, 30 * nlist), replace=False))
        pick_old, pick_new = pick[pick < have], pick[pick >= have] - have
        parts = [extra[pick_new]]
        for i in range(0, have, chunk):
            sel = pick_old[(pick_old >= i) & (pick_old < i + chunk)] - i
            if sel.size:
                parts.append(old_chunk(i)[sel])
        cp = faiss.extract_index_ivf(ivf).cp
        cp.niter = 8
        cp.min_points_per_centroid = 20  # 30 per cell is plenty for coarse cells
        ivf.train(np.ascontiguousarray(np.vstack(parts), dtype=np.float32))
        for i in range(0, have, chunk):
            ivf.add_with_ids(np.ascontiguousarray(old_chunk(i), np.float32), ids[i : i + chunk])
        if ivf_old is not None:
            ivf_old.set_direct_map_type(faiss.DirectMap.NoMap)
        self._index = ivf
        self._ivf = True
        self._compact = big
        self._trained_at = total

    # ------------------------------------------------------------------ queries
    def _banned(self, exclude: set[str], side: Side) -> np.ndarray:
        """Boolean over slots: annotations the query must not see."""
        banned = np.zeros(self._next_slot + 1, bool)
        for a in exclude:
            if a in self._slot_of:
                banned[self._slot_of[a]] = True
        if side is not Side.UNKNOWN:
            sides = self._slot_side[: self._next_slot]
            banned[: self._next_slot] |= (sides != 0) & (sides != _SIDE_CODE[side])
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
        if len(feats) == 0 or self._index.ntotal == 0:
            return QueryResult("new", None, 0.0, [], [])
        banned = self._banned(set(exclude), Side.parse(side))
        dist2, ids = self._search(feats.desc, self._k_for(banned))
        return self._score(feats, dist2, ids, banned, camera)

    def query_encounter(
        self,
        frames: Sequence[Features],
        sides: Sequence[Side | str] | None = None,
        exclude: Iterable[str] = (),
        cameras: Sequence[str | None] | None = None,
    ) -> list[QueryResult]:
        """:meth:`query` every frame of one encounter with one index search.

        The descriptors of all frames are searched in one batch, each frame is
        then scored on its own rows exactly as :meth:`query` scores it (same
        neighbours, votes, verification), so the results equal per-frame
        queries and pool the same way (:func:`irbis.reid.encounter.pool_encounter`).
        With ``MatchConfig.encounter_max_descriptors`` set, each frame keeps
        only its strongest descriptors (features are stored strongest first)
        so the encounter asks at most that many in all; this bounds the cost
        of a long burst.

        Parameters
        ----------
        frames:
            Features of the encounter's frames.
        sides:
            Per frame, its flank (default unknown for all).
        exclude:
            Annotation ids no frame may be matched against (e.g. the encounter's own).
        cameras:
            Per frame, its camera key (default unknown for all).

        Returns
        -------
        list
            One :class:`QueryResult` per frame, in order.
        """
        n = len(frames)
        sides = list(sides) if sides is not None else [Side.UNKNOWN] * n
        cameras = list(cameras) if cameras is not None else [None] * n
        if len(sides) != n or len(cameras) != n:
            raise IrbisError(f"{n} frames but {len(sides)} sides and {len(cameras)} cameras")
        cap = self.config.encounter_max_descriptors
        if cap is not None:
            frames = _strongest(frames, cap)
        if self._index.ntotal == 0 or not any(len(f) for f in frames):
            return [QueryResult("new", None, 0.0, [], []) for _ in frames]
        excl = set(exclude)
        banned = {s: self._banned(excl, s) for s in {Side.parse(x) for x in sides}}
        ks = [self._k_for(banned[Side.parse(x)]) for x in sides]
        dist2, ids = self._search(np.vstack([f.desc for f in frames]), max(ks))
        out: list[QueryResult] = []
        row = 0
        for f, side, camera, k in zip(frames, sides, cameras, ks, strict=True):
            m = len(f)
            if m == 0:
                out.append(QueryResult("new", None, 0.0, [], []))
                continue
            # The first k columns of a k'-neighbour search are the k-neighbour search.
            d, i = dist2[row : row + m, :k], ids[row : row + m, :k]
            out.append(self._score(f, d, i, banned[Side.parse(side)], camera))
            row += m
        return out

    def _k_for(self, banned: np.ndarray) -> int:
        # Banned annotations are filtered after the search (faiss's id selectors
        # bypass BLAS on flat indexes and run ~50x slower); fetching a few more
        # neighbours per banned annotation keeps ``k`` usable ones in most rows.
        cfg = self.config
        return int(min(cfg.k + min(2 * int(banned.sum()), cfg.k_extra_max), self._index.ntotal))

    def _search(self, desc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances and ids of the ``k`` nearest catalogue descriptors.

        Exhaustive distances (the flat index, and the IVF's choice of cells
        under a flat coarse quantizer) come from :func:`exhaustive_knn`, so
        they are the same bits whatever the number of threads: a one-core Ray
        worker scores a query exactly as a laptop does.
        """
        q = np.ascontiguousarray(desc, dtype=np.float32)
        if not self._ivf:
            flat = faiss.downcast_index(self._index.index)
            n = flat.ntotal
            if n == 0:
                return self._index.search(q, k)  # nothing to compare: faiss's empty answer
            xb = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)
            dist2, rows = exhaustive_knn(q, xb, k)
            id_map = faiss.rev_swig_ptr(self._index.id_map.data(), n)
            return dist2, np.where(rows >= 0, id_map[np.maximum(rows, 0)], -1)
        cfg = self.config
        compact = getattr(self, "_compact", False) and cfg.compact_nprobe is not None
        ivf = faiss.extract_index_ivf(self._index)
        # faiss's search probes at most every cell; search_preassigned would read
        # the missing ones as empty cells, not as a smaller nprobe.
        ivf.nprobe = min(ivf.nlist, cfg.compact_nprobe if compact else cfg.nprobe)
        quantizer = faiss.downcast_index(ivf.quantizer)
        if not isinstance(quantizer, faiss.IndexFlat):
            return self._index.search(q, k)  # HNSW: one query at a time, thread-free
        cents = faiss.rev_swig_ptr(quantizer.get_xb(), ivf.nlist * self.dim)
        near_d, near_cell = exhaustive_knn(q, cents.reshape(ivf.nlist, self.dim), ivf.nprobe)
        return ivf.search_preassigned(q, k, near_cell, near_d)

    def _score(
        self,
        feats: Features,
        dist2: np.ndarray,
        ids: np.ndarray,
        banned: np.ndarray,
        camera: str | None,
    ) -> QueryResult:
        """LNBNN votes, shortlist and verification of one frame from its search rows."""
        cfg = self.config
        empty = QueryResult("new", None, 0.0, [], [])
        k = ids.shape[1]
        valid = ids >= 0
        slots = np.where(valid, ids >> LOCAL_BITS, -1)
        valid &= slots >= 0
        valid &= ~banned[slots]  # slot -1 reads the spare last entry, never banned
        if not valid.any():
            return empty
        dist = np.sqrt(np.maximum(dist2, 0.0))
        live = self._entries
        nq = ids.shape[0]
        rows = np.repeat(np.arange(nq), k).reshape(nq, k)
        cols = np.tile(np.arange(k), (nq, 1))
        vr, vc = rows[valid], cols[valid]
        vslot = slots[valid]
        vname = self._slot_name[vslot]
        vd = dist[valid]
        n_names = max(1, len(self._codes["name"]))
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
        k_db = ids[k_row, vc[keep]] & _LOCAL_MASK  # keypoint within its annotation
        k_id = self._slot_start[k_slot] + k_db  # its row in the keypoint columns
        if cfg.static_px > 0:
            # Static background: a fixed camera's rocks sit at the same pixel in
            # every frame, a moving animal's rosettes almost never do.
            cams = self._slot_cam[k_slot]
            if camera is None:
                same_cam = np.ones(k_slot.size, bool)
            else:
                qcam = self._codes["cam"].get(camera, -2)
                same_cam = (cams == -1) | (cams == qcam)
            qxy = feats.xy_original[k_row]
            dxy = self._kp_xyo[k_id]
            static = same_cam & (np.hypot(*(qxy - dxy).T) < cfg.static_px)
            k_row, k_slot, k_vote, k_db, k_id = (
                x[~static] for x in (k_row, k_slot, k_vote, k_db, k_id)
            )
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
            if cfg.shift_px > 0 and cfg.static_px > 0 and sel_.size >= 3:
                cam = self._slot_cam[s]
                if camera is None or cam == -1 or self._codes["cam"].get(camera, -2) == cam:
                    d = self._kp_xyo[k_id[sel_]] - feats.xy_original[k_row[sel_]]
                    sel_ = sel_[~_shifted_background(d, cfg.shift_tol_px, cfg.shift_px)]
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
        if cfg.size_penalty > 0:
            # Best-of-n: an individual seen in many encounters has more draws at
            # a lucky score. Under an exponential tail of the per-annotation
            # scores (scale ``beta``), the chance that the best of n chance
            # scores exceeds s grows like n * exp(-s / beta), so ranking by
            # s - beta * log(n) ranks by how surprising each best score is.
            ns = self._next_slot
            gal = np.flatnonzero(self._slot_live[:ns] & ~banned[:ns])
            g_raw = raw[gal] if gal.size else np.zeros(1)
            med = float(np.median(g_raw))
            above = g_raw[g_raw > med] - med
            beta = float(above.mean()) if above.size else 0.0
            # Encounters per voting name in this query's gallery.
            pairs = np.unique(self._slot_name[gal] * len(self._codes["enc"]) + self._slot_enc[gal])
            n_enc = np.bincount(
                pairs // max(1, len(self._codes["enc"])), minlength=len(self._codes["name"])
            )

            def adj(m: Match, value: float) -> float:
                code = self._slot_name[self._slot_of[m.annotation]]
                return value - cfg.size_penalty * beta * np.log(max(1, int(n_enc[code])))

            if cfg.penalise_verified:
                verified.sort(key=lambda m: -adj(m, m.score))
            rest_sorted = sorted(unverified.values(), key=lambda m: -adj(m, m.raw))
        else:
            rest_sorted = sorted(unverified.values(), key=lambda m: -m.raw)
        candidates = verified + rest_sorted
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
        rows = entry.start + di
        dst = self._kp_xy[rows].astype(np.float32)
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
            self._kp_xyo[rows[idx]],
        )
