"""A learned ranking on DINOv2 crop embeddings, measured leave-individuals-out.

The encounter is the query (encounter protocol on the Tajik set, crops from
``boxes.csv``). Three rankings of individuals per encounter are compared:

* ``rosette``: the default matcher (RootSIFT, LNBNN, verification), the
  encounter's frames pooled (:mod:`irbis.reid.encounter`);
* ``embed_raw``: cosine between encounter embeddings (mean of the frames'
  ``dinov2-s`` embeddings, :class:`irbis.vision.embed.CropEmbedder`); an
  individual scores its best gallery encounter;
* ``embed_wccn``: the same after a *learned* projection: within-class
  covariance normalisation (WCCN) fitted on the frames of *other* individuals
  only. The directions in which one animal's embeddings vary between its own
  encounters (scene, light, pose: what the raw embedding is dominated by) are
  shrunk, the others kept. Its single parameter (a ridge, a mean
  eigenvalue multiple) is chosen by an inner leave-individuals-out
  cross-validation on the training individuals only;
* ``fusion_*``: reciprocal-rank fusion (k = 60, the usual constant) of
  ``rosette`` with each embedding ranking.

Leave-individuals-out: the closed-set individuals are dealt into ``--folds``
folds; the projection for a fold is fitted on the frames of every individual
outside it, and only encounters of the fold's individuals are scored (their
gallery holds every other encounter of every individual, but none of the
fold's frames ever shaped the projection). Figures are per encounter:
top-1, top-5, mAP (gallery encounters ranked) and macro top-1.

Crops: ``--crop box`` is the drawn box (square, 5 % context); ``--crop mask``
also paints everything outside the labels' rough animal mask grey, so rock
beside the cat cannot carry the match. Both are reported by default.

    .venv/bin/python bench/reid_embed_rerank.py [--folds 3] [--side 224] [--cache DIR]

Needs ``irbis models install dinov2-s``. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from irbis.reid import EvalOptions, evaluate, read_labels
from irbis.reid.annotations import attach_boxes, read_boxes
from irbis.reid.evaluate import average_precision
from irbis.reid.ranking_eval import rrf
from irbis.vision.embed import CropEmbedder, crop_square

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/reid/snowleopard-tajikistan"
GREY = (124, 116, 104)  # ImageNet mean colour: the encoder's "nothing here"


def embed_frames(anns: list, boxes: dict, emb: CropEmbedder, use_mask: bool) -> np.ndarray:
    """One embedding per frame: its drawn box, optionally the mask painted in."""
    crops = []
    for a in anns:
        img = Image.open(a.image).convert("RGB")
        name = Path(str(a.image)).name
        x0, y0, x1, y1 = boxes[name]
        if use_mask and a.mask is not None:
            m = Image.open(a.mask).convert("L").resize(img.size, Image.Resampling.NEAREST)
            k = np.ones((9, 9), np.uint8)
            inside = cv2.dilate((np.asarray(m) > 0).astype(np.uint8), k) > 0
            arr = np.asarray(img).copy()
            arr[~inside] = GREY
            img = Image.fromarray(arr)
        crops.append(crop_square(img, (x0, y0, x1 - x0, y1 - y0), emb.side, context=0.05))
    return emb.embed_crops(crops)


def wccn(x: np.ndarray, labels: list[str], ridge: float = 1.0) -> np.ndarray:
    """Projection ``P`` (d x d): (within-class covariance + ridge)^(-1/2).

    ``ridge`` is in units of the covariance's mean eigenvalue.
    """
    lab = np.asarray(labels)
    centred = np.concatenate([x[lab == k] - x[lab == k].mean(0) for k in np.unique(lab)])
    cov = centred.T @ centred / max(1, centred.shape[0] - 1)
    vals, vecs = np.linalg.eigh(cov)
    reg = ridge * max(float(vals.mean()), 1e-12)
    return (vecs / np.sqrt(np.maximum(vals, 0.0) + reg)) @ vecs.T


#: Ridges tried (in mean eigenvalues); the inner cross-validation picks one.
RIDGES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _enc_top1(z: np.ndarray, labels: np.ndarray, encs: np.ndarray, queries: np.ndarray) -> float:
    """Top-1 of encounter means: each query encounter's nearest *other* encounter."""
    keys = sorted(set(encs.tolist()))
    means = unit(np.stack([z[encs == e].mean(0) for e in keys]))
    who = np.array([labels[encs == e][0] for e in keys])
    sim = means @ means.T
    np.fill_diagonal(sim, -np.inf)
    q = [i for i, e in enumerate(keys) if e in set(queries.tolist())]
    return float(np.mean([who[sim[i].argmax()] == who[i] for i in q])) if q else 0.0


def fit_projection(
    x: np.ndarray, labels: list[str], encounters: list[str], inner_folds: int = 3
) -> tuple[np.ndarray, float]:
    """WCCN with its ridge chosen by leave-individuals-out inside ``x`` only.

    The individuals of ``x`` are dealt into ``inner_folds`` folds; for each
    ridge of :data:`RIDGES` a projection fitted on the other folds ranks the
    held-out fold's encounters (nearest other encounter, any individual of
    ``x``); the ridge with the best mean top-1 is refitted on all of ``x``.
    Nothing outside ``x`` is looked at.
    """
    lab, enc = np.asarray(labels), np.asarray(encounters)
    multi = sorted(k for k in set(labels) if len(set(enc[lab == k].tolist())) >= 2)
    folds = [multi[i::inner_folds] for i in range(inner_folds)]
    best, best_score = 1.0, -1.0
    for ridge in RIDGES:
        scores = []
        for fold in folds:
            if not fold:
                continue
            held = np.isin(lab, fold)
            proj = wccn(x[~held], lab[~held].tolist(), ridge)
            scores.append(_enc_top1(unit(x @ proj), lab, enc, np.unique(enc[held])))
        score = float(np.mean(scores)) if scores else 0.0
        if score > best_score:
            best, best_score = ridge, score
    return wccn(x, labels, best), best


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def figures(
    rankings: dict[str, list[str]],
    gal_order: dict[str, list[str]],
    truth: dict,
    enc_ind: dict[str, str],
) -> dict:
    """Per-encounter top-1/top-5/mAP/macro top-1 over the scored encounters."""
    per: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    aps = []
    for e, ranked in rankings.items():
        t = truth[e]
        per[t].append((ranked[:1] == [t], t in ranked[:5]))
        order = gal_order.get(e)
        if order is not None:
            rel = [enc_ind[g] == t for g in order]
            aps.append(average_precision(np.array(rel), sum(rel)))
    hits = [h for v in per.values() for h in v]
    return {
        "encounters": len(hits),
        "top1": round(sum(a for a, _ in hits) / len(hits), 3),
        "top5": round(sum(b for _, b in hits) / len(hits), 3),
        "mAP": round(float(np.mean(aps)), 3) if aps else None,
        "macro_top1": round(float(np.mean([np.mean([a for a, _ in v]) for v in per.values()])), 3),
        "per_individual_top1": {
            k: round(float(np.mean([a for a, _ in v])), 3) for k, v in sorted(per.items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--side", type=int, default=224)
    ap.add_argument("--crop", choices=("box", "mask", "both"), default="both")
    ap.add_argument("--cache", type=Path, default=None, help="keep embeddings (derived numbers)")
    args = ap.parse_args()
    if not (args.data / "boxes.csv").exists():
        sys.exit(f"no boxes.csv under {args.data} (see ../shared/data/README.md)")
    cv2.setNumThreads(1)
    boxes = read_boxes(args.data / "boxes.csv")
    anns, _ = attach_boxes(read_labels(args.data / "labels.csv"), boxes)
    enc = [a.encounter for a in anns]
    enc_ind = {a.encounter: str(a.individual) for a in anns}
    encs = sorted(set(enc))
    t0 = time.perf_counter()
    ros_cache = args.cache / "rosette.json" if args.cache else None
    if ros_cache is not None and ros_cache.exists():
        ros_enc = json.loads(ros_cache.read_text())
    else:
        ros_enc = evaluate(anns, EvalOptions(cluster=False))["per_encounter"]
        if ros_cache is not None:
            ros_cache.parent.mkdir(parents=True, exist_ok=True)
            ros_cache.write_text(json.dumps(ros_enc, default=str))
    rosette_s = time.perf_counter() - t0
    ros_rank = {r["encounter"]: r["ranking"] for r in ros_enc["per_query"]}
    # Closed set: individuals seen in two encounters or more.
    n_enc = Counter(enc_ind[e] for e in encs)
    closed = sorted(k for k, v in n_enc.items() if v >= 2)
    rng = np.random.default_rng(0)
    order = list(rng.permutation(closed))
    folds = [order[i :: args.folds] for i in range(args.folds)]
    emb = CropEmbedder("dinov2-s", side=args.side, threads=2)
    out: dict = {
        "data": str(args.data),
        "protocol": "encounter; leave-individuals-out folds for the learned projection",
        "folds": [sorted(f) for f in folds],
        "rosette_seconds": round(rosette_s, 1),
        "rosette_all_encounters": {
            k: round(ros_enc[k], 3) for k in ("top1", "top5", "mAP", "macro_top1")
        },
    }
    variants = ("box", "mask") if args.crop == "both" else (args.crop,)
    for crop in variants:
        cache = args.cache / f"embed_{crop}_{args.side}.npy" if args.cache else None
        t0 = time.perf_counter()
        if cache is not None and cache.exists():
            x = np.load(cache)
        else:
            x = embed_frames(anns, boxes, emb, use_mask=crop == "mask")
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, x)
        embed_s = time.perf_counter() - t0
        labels = [str(a.individual) for a in anns]
        res: dict[str, dict] = {
            k: {} for k in ("rosette", "embed_raw", "embed_wccn", "fusion_raw", "fusion_wccn")
        }
        gal: dict[str, dict] = {k: {} for k in res}
        truth = {e: enc_ind[e] for e in encs}
        ridges: list[float] = []
        for fold in folds:
            held = set(fold)
            train = [i for i, lab in enumerate(labels) if lab not in held]
            proj, ridge = fit_projection(
                x[train], [labels[i] for i in train], [str(enc[i]) for i in train]
            )
            ridges.append(ridge)
            for name, z in (("embed_raw", x), ("embed_wccn", unit(x @ proj))):
                means = {
                    e: unit(z[[i for i in range(len(anns)) if enc[i] == e]].mean(0)) for e in encs
                }
                for q in encs:
                    if truth[q] not in held:
                        continue
                    others = [g for g in encs if g != q]
                    sims = {g: float(means[q] @ means[g]) for g in others}
                    g_order = sorted(others, key=lambda g: -sims[g])
                    best: dict[str, float] = {}
                    for g in g_order:
                        best.setdefault(enc_ind[g], sims[g])
                    res[name][q] = sorted(best, key=lambda k: -best[k])
                    gal[name][q] = g_order
            for q in encs:
                if truth[q] in held:
                    res["rosette"][q] = ros_rank.get(q, [])
                    res["fusion_raw"][q] = rrf(res["rosette"][q], res["embed_raw"][q])
                    res["fusion_wccn"][q] = rrf(res["rosette"][q], res["embed_wccn"][q])
        out[crop] = {
            "embed_seconds": round(embed_s, 1),
            "ridges_chosen": ridges,
            **{k: figures(v, gal.get(k, {}), truth, enc_ind) for k, v in res.items()},
        }
        print(
            crop,
            {
                k: (v["top1"], v["top5"], v["macro_top1"])
                for k, v in out[crop].items()
                if isinstance(v, dict)
            },
            file=sys.stderr,
            flush=True,
        )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
