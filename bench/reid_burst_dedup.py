"""How many of a burst's descriptors repeat across its frames (real Tajik set).

Matching an encounter as one deduplicated query pays only if its frames'
descriptors repeat. For each encounter the frames are taken in order; a
descriptor within ``r`` (L2, RootSIFT) of one already kept from an earlier
frame would be merged into it, otherwise it is kept. Printed per radius: the
share kept over all frames and over each encounter's first five. For scale,
the median distance of a descriptor to its nearest one in earlier frames of
its burst, and the nearest catalogue distances and the LNBNN margin (10th
minus 1st neighbour) that a merge would perturb by up to ``r``.

    .venv/bin/python bench/reid_burst_dedup.py [--cache DIR] [--radii 0.1,0.2,0.3]

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
from reid_index import DATA, load_features

from irbis.reid import read_labels
from irbis.reid.annotations import attach_boxes, read_boxes


def kept_share(groups: list[list[np.ndarray]], r: float) -> tuple[float, list[np.ndarray]]:
    """Share of descriptors kept when merging within ``r`` of earlier frames' kept ones."""
    total = kept = 0
    nearest: list[np.ndarray] = []
    for frames in groups:
        index = faiss.IndexFlatL2(frames[0].shape[1])
        for d in frames:
            if index.ntotal:
                dist2, _ = index.search(d, 1)
                nearest.append(np.sqrt(np.maximum(dist2[:, 0], 0.0)))
                d = d[dist2[:, 0] >= r * r]
            index.add(d)
        total += sum(f.shape[0] for f in frames)
        kept += index.ntotal
    return kept / max(1, total), nearest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--radii", default="0.1,0.15,0.2,0.25,0.3")
    args = ap.parse_args()
    anns = [replace(a, mask=None) for a in read_labels(args.data / "labels.csv")]
    anns, _ = attach_boxes(anns, read_boxes(args.data / "boxes.csv"))
    feats = load_features(anns, args.cache / "features_motion.npz" if args.cache else None)
    by: dict[str, list[np.ndarray]] = {}
    for a, f in zip(anns, feats, strict=True):
        if len(f):
            by.setdefault(str(a.encounter), []).append(np.ascontiguousarray(f.desc, np.float32))
    groups = list(by.values())
    out: dict = {
        "encounters": len(groups),
        "frames_per_encounter": round(float(np.mean([len(g) for g in groups])), 1),
        "kept": {},
    }
    nearest: list[np.ndarray] = []
    for r in [float(x) for x in args.radii.split(",")]:
        share, near = kept_share(groups, r)
        first5, _ = kept_share([g[:5] for g in groups], r)
        out["kept"][str(r)] = {"all_frames": round(share, 3), "first_5_frames": round(first5, 3)}
        nearest = nearest or near
    out["median_distance_to_earlier_frames"] = round(float(np.median(np.concatenate(nearest))), 3)
    x = np.vstack([d for g in groups for d in g])
    sample = x[np.random.default_rng(0).choice(x.shape[0], 2000, replace=False)]
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    dist2, _ = index.search(sample, 11)
    d = np.sqrt(np.maximum(dist2[:, 1:], 0.0))  # column 0 is the descriptor itself
    out["catalogue_nn1_median"] = round(float(np.median(d[:, 0])), 3)
    out["lnbnn_margin_median"] = round(float(np.median(d[:, 9] - d[:, 0])), 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
