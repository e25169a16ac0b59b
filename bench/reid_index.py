"""What a compact descriptor index costs in recall, on the real Tajik descriptors.

The catalogue's index is exact (float32, 512 B per RootSIFT descriptor) up to
``MatchConfig.ivf_above`` descriptors, then an inverted file whose cells hold
compressed codes (``MatchConfig.ivf_codec``). This bench puts the real
descriptors of the Tajik set (boxes.csv crops, burst motion masks) in
catalogues that compress from the first descriptor, one per codec, and
measures against the exact float32 index in the same run:

* bytes per descriptor (codes + id) and the index size projected to 100,000
  annotations at the set's mean keypoints per annotation;
* neighbour recall@k: the share of the exact ``k`` nearest neighbours (k = 10,
  the matcher's) the compressed index returns, for a sample of query descriptors;
* per-encounter and per-frame top-1/top-5 of the default ranking
  (encounter protocol; ``--every N`` queries every N-th frame, the gallery
  always complete).

    .venv/bin/python bench/reid_index.py [--codecs SQfp16,SQ8,PQ32] [--every 3] [--cache DIR]

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import faiss
import numpy as np

from irbis.reid import EvalOptions, Features, MatchConfig, read_labels
from irbis.reid.annotations import attach_boxes, read_boxes
from irbis.reid.evaluate import extract_all
from irbis.reid.ranking_eval import collect_matches, evaluate_rankings

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/reid/snowleopard-tajikistan"


def load_features(anns: list, cache: Path | None) -> list[Features]:
    """Features of every annotation (cached as one ``.npz``: derived numbers only)."""
    if cache is not None and cache.exists():
        z = np.load(cache)
        out = []
        for i in range(len(anns)):
            out.append(Features(*(z[f"{k}{i}"] for k in ("xy", "size", "angle", "desc", "xyo"))))
        return out
    feats, _ = extract_all(anns, EvalOptions())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for i, f in enumerate(feats):
            parts = (f.xy, f.size, f.angle, f.desc, f.xy_original)
            for k, v in zip(("xy", "size", "angle", "desc", "xyo"), parts, strict=True):
                arrays[f"{k}{i}"] = v
        np.savez(cache, **arrays)
    return feats


def neighbour_recall(desc: np.ndarray, codec: str, k: int, n_query: int, seed: int = 0) -> dict:
    """Recall@k of an IVF index with ``codec`` against exact search (same cells' nprobe)."""
    rng = np.random.default_rng(seed)
    q = desc[rng.choice(desc.shape[0], n_query, replace=False)]
    exact = faiss.IndexFlatL2(desc.shape[1])
    exact.add(desc)
    _, truth = exact.search(q, k + 1)
    nlist = int(min(8192, max(64, 2 * np.sqrt(desc.shape[0]))))
    ivf = faiss.index_factory(desc.shape[1], f"IVF{nlist},{codec}")
    ivf.train(desc[rng.choice(desc.shape[0], min(desc.shape[0], 30 * nlist), replace=False)])
    ivf.add(desc)
    ivf.nprobe = MatchConfig().nprobe
    t0 = time.perf_counter()
    _, got = ivf.search(q, k + 1)
    ms = 1000 * (time.perf_counter() - t0) / n_query
    # Column 0 is the query itself (it is in the index): compare the next k.
    hits = [len(set(t[1:]) & set(g[1:])) / k for t, g in zip(truth, got, strict=True)]
    per = faiss.extract_index_ivf(ivf).code_size + 8
    return {
        "recall_at_k": round(float(np.mean(hits)), 4),
        "bytes_per_descriptor": per,
        "search_ms_per_descriptor": round(ms, 3),
        "nlist": nlist,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--codecs", default="SQfp16,SQ8,PQ32", help="'' for none")
    ap.add_argument("--every", type=int, default=3, help="query every N-th frame")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=5000, help="query descriptors for recall@k")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--no-exact", action="store_true", help="skip the slow exact reference")
    ap.add_argument(
        "--nprobe", default="", help="also judge --nprobe-codec at these nprobe, e.g. 8,16"
    )
    ap.add_argument("--nprobe-codec", default="SQ8", help="codec of the --nprobe runs")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    anns = [replace(a, mask=None) for a in read_labels(args.data / "labels.csv")]
    anns, _ = attach_boxes(anns, read_boxes(args.data / "boxes.csv"))
    feats = load_features(anns, args.cache / "features_motion.npz" if args.cache else None)
    desc = np.ascontiguousarray(np.vstack([f.desc for f in feats if len(f)]), np.float32)
    mean_kp = desc.shape[0] / len(feats)
    out: dict = {
        "annotations": len(feats),
        "descriptors": int(desc.shape[0]),
        "mean_keypoints": round(mean_kp, 1),
        "exact": {"bytes_per_descriptor": 128 * 4 + 8},
    }
    n100k = 100_000 * mean_kp
    out["exact"]["index_gb_at_100k"] = round(n100k * (128 * 4 + 8) / 1e9, 2)
    # Queries: every N-th frame of each encounter (so every encounter is asked and
    # stays in the gallery), each against everything but its own encounter.
    members: dict[str, list[int]] = {}
    for i, a in enumerate(anns):
        members.setdefault(str(a.encounter), []).append(i)
    pick = {i for m in members.values() for i in m[:: args.every]}

    def judged(config: MatchConfig) -> dict:
        t0 = time.perf_counter()
        sm = collect_matches(anns, feats, config, query=pick)
        res = evaluate_rankings(sm)
        keys = ("queries", "top1", "top5", "mAP", "macro_top1")
        return {
            "seconds": round(time.perf_counter() - t0, 1),
            **{u: {k: res[u]["default"][k] for k in keys} for u in ("encounter", "frame")},
        }

    if not args.no_exact:
        out["exact"].update(judged(MatchConfig(ivf_above=10**12)))
        print("exact", out["exact"], file=sys.stderr, flush=True)
    for nprobe in [int(n) for n in args.nprobe.split(",") if n]:
        t0 = time.process_time()
        r = judged(MatchConfig(ivf_above=0, ivf_codec=args.nprobe_codec, nprobe=nprobe))
        r["cpu_seconds"] = round(time.process_time() - t0, 1)
        out[f"{args.nprobe_codec}_nprobe{nprobe}"] = r
        print(f"{args.nprobe_codec} nprobe {nprobe}", r, file=sys.stderr, flush=True)
    for codec in [c for c in args.codecs.split(",") if c]:
        r = neighbour_recall(desc, codec, args.k, args.sample)
        r["index_gb_at_100k"] = round(n100k * r["bytes_per_descriptor"] / 1e9, 2)
        r.update(judged(MatchConfig(ivf_above=0, ivf_codec=codec)))
        out[codec] = r
        print(codec, r, file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
