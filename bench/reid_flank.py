"""Flank side proposed from the pose, measured on the Tajik set (issue 16, item 1).

Ground truth: ``labels.csv``'s ``side`` where given (10 frames), otherwise the
heading stated in ``boxes.csv``'s free-text note, read by
:func:`irbis.reid.flank.heading_from_note` (walking/facing right in the image
= right flank). Notes saying "away", "toward", "facing camera" are frames
with no flank (``none``); notes with no heading are left out of accuracy.

Cues (:mod:`irbis.reid.flank`):

* ``travel``: the drawn box's centre across the burst (the encounter's frames
  in time order, split where two frames are more than 10 s apart); the
  defaults of :func:`travel_headings` (shift ≥ 0.15 box widths per step),
  fixed before measuring.
* ``pose``: logistic regression on the ``dinov2-s`` embedding of the crop
  (168 px, as the detector verifier) and of its mirror, **leave-one-
  encounter-out**: the frames of an encounter are scored by a model fitted on
  the other encounters' labelled frames only (never frames of one encounter
  on both sides); its regularisation C is chosen inside the training
  encounters by grouped 5-fold cross-validation (log-loss).
* ``combined``: :func:`combine` of the two (log-odds added).
* ``combined_gated``: the same, dropped where :class:`FlankVisible` (a
  mirror-invariant logistic regression, flank seen vs. front/rear view, fitted
  leave-one-encounter-out on the frames whose note says either) gives
  p(flank seen) < 0.5; this is what :func:`propose_side` returns.

For each cue, light (day / flash / night_ir / all) and stated least confidence:
``n`` labelled frames, ``coverage`` (share of them given a proposal),
``accuracy`` (share of the proposals that are right) and ``on_no_flank``
(share of the frames whose note says no flank that still got one).

    .venv/bin/python bench/reid_flank.py [--cache /tmp/irbis_flank] > flank.json

The embeddings (derived numbers only; images are read in place, decoded at a
quarter of their size) are cached under ``--cache``: about 2 min on 2 cores the
first time. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

# Thousands of small fits: one BLAS thread each is many times faster than a
# thread pool fighting the other jobs for 2 cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT / "src"))

from irbis.reid.flank import (  # noqa: E402
    FlankProposal,
    FlankVisible,
    PoseFlank,
    combine,
    heading_from_note,
    propose_side,
    travel_headings,
)

_COUNTER = re.compile(r"\((\d+)\)\.\w+$")


def read_frames(data: Path) -> list[dict]:
    """Frames of the set with box, lighting, note, encounter, time and ground truth."""
    labels = {}
    with (data / "labels.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            labels[r["path"].split("/", 1)[-1]] = r
    frames = []
    with (data / "boxes.csv").open(newline="") as fh:
        for row_no, r in enumerate(csv.DictReader(fh), start=2):
            lab = labels.get(r["file"])
            if lab is None:
                raise SystemExit(
                    f"{data / 'boxes.csv'} row {row_no}: {r['file']} has no row in labels.csv;"
                    " add it there (encounter and time are needed)"
                )
            x0, y0, x1, y1 = (float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            h, m, s = (int(v) for v in lab["time"].split(":"))
            note_heading = heading_from_note(r["note"])
            truth = lab["side"] if lab["side"] in ("left", "right") else note_heading
            m_counter = _COUNTER.search(r["file"])
            frames.append(
                {
                    "file": r["file"],
                    "box": (x0, y0, x1 - x0, y1 - y0),
                    "lighting": r["lighting"],
                    "note": r["note"],
                    "note_heading": note_heading,
                    "truth": truth,
                    "encounter": lab["encounter"],
                    "seconds": h * 3600 + m * 60 + s,
                    "counter": int(m_counter.group(1)) if m_counter else 0,
                }
            )
    return frames


def time_order(frames: list[dict]) -> list[dict]:
    """One encounter's frames in shooting order.

    Timestamps have 2 s resolution and several frames share one; the
    ``(n)`` in the file name is the camera's frame counter modulo 10, so within
    a timestamp the frames follow the previous frame's counter (9 before 0).
    """
    by_time: dict[int, list[dict]] = defaultdict(list)
    for f in frames:
        by_time[f["seconds"]].append(f)
    out: list[dict] = []
    last = -1
    for t in sorted(by_time):
        group = sorted(by_time[t], key=lambda f: (f["counter"] - last - 1) % 10)
        out.extend(group)
        last = group[-1]["counter"]
    return out


def embeddings(data: Path, frames: list[dict], cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """dinov2-s embeddings of each frame's crop and of its mirror, cached."""
    path = cache / "emb_168.npz"
    if path.exists():
        z = np.load(path)
        index = {f: i for i, f in enumerate(z["files"])}
        if all(f["file"] in index for f in frames):
            rows = [index[f["file"]] for f in frames]
            return z["x"][rows], z["xm"][rows]
    from PIL import Image

    from irbis.vision.embed import CropEmbedder, crop_square

    emb = CropEmbedder("dinov2-s", threads=2)
    xs, xms = [], []
    for f in frames:
        with Image.open(data / "images" / f["file"]) as im:
            im.draft("RGB", (im.width // 4, im.height // 4))  # a 168 px crop needs no more
            crop = crop_square(im.convert("RGB"), f["box"], emb.side, emb.context)
        v = emb.embed_crops([crop, crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
        xs.append(v[0])
        xms.append(v[1])
    cache.mkdir(parents=True, exist_ok=True)
    x, xm = np.array(xs), np.array(xms)
    np.savez(path, files=np.array([f["file"] for f in frames]), x=x, xm=xm)
    return x, xm


def travel_cue(frames: list[dict]) -> list[FlankProposal | None]:
    """The travel proposal of every frame (bursts = encounters, time-ordered)."""
    by_enc: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(frames):
        by_enc[f["encounter"]].append(i)
    out: list[FlankProposal | None] = [None] * len(frames)
    for idx in by_enc.values():
        ordered = time_order([frames[i] | {"_i": i} for i in idx])
        props = travel_headings(
            [f["box"] for f in ordered], [f["seconds"] for f in ordered], max_gap_s=10.0
        )
        for f, p in zip(ordered, props, strict=True):
            out[f["_i"]] = p
    return out


def _fit(
    kind: str, c: float, x: np.ndarray, xm: np.ndarray, labels: list
) -> PoseFlank | FlankVisible:
    if kind == "pose":
        return PoseFlank(c).fit(x, xm, labels)
    return FlankVisible(c).fit(x, xm, labels)


def _prob(model: PoseFlank | FlankVisible, x: np.ndarray, xm: np.ndarray) -> np.ndarray:
    if isinstance(model, PoseFlank):
        return model.p_right(x, xm)
    return model.p_visible(x, xm)


def choose_c(kind: str, x: np.ndarray, xm: np.ndarray, labels: list, groups: list[str]) -> float:
    """C by grouped 5-fold cross-validation (log-loss) inside the training encounters."""
    encs = sorted(set(groups))
    fold_of = {e: k % 5 for k, e in enumerate(encs)}
    y = np.array([v in ("right", True) for v in labels], dtype=float)
    lab = np.array(labels, dtype=object)
    best, best_loss = 1.0, float("inf")
    for c in (0.001, 0.01, 0.1, 1.0, 10.0):
        losses = []
        for k in range(5):
            te = np.array([fold_of[g] == k for g in groups])
            if te.all() or not te.any() or len(set(lab[~te])) < 2:
                continue
            model = _fit(kind, c, x[~te], xm[~te], list(lab[~te]))
            p = np.clip(_prob(model, x[te], xm[te]), 1e-6, 1 - 1e-6)
            losses.append(float(-np.mean(y[te] * np.log(p) + (1 - y[te]) * np.log(1 - p))))
        if losses and np.mean(losses) < best_loss:
            best, best_loss = c, float(np.mean(losses))
    return best


def appearance_cues(
    frames: list[dict], x: np.ndarray, xm: np.ndarray
) -> tuple[list[FlankProposal | None], np.ndarray, dict[str, dict[str, int]]]:
    """Leave-one-encounter-out pose proposals, p(flank seen), and the Cs chosen.

    The frames of each encounter are scored by models fitted on the other
    encounters' labelled frames only.
    """
    sided = [i for i, f in enumerate(frames) if f["truth"] in ("left", "right")]
    viewed = [i for i, f in enumerate(frames) if f["truth"] in ("left", "right", "none")]
    pose: list[FlankProposal | None] = [None] * len(frames)
    p_flank = np.full(len(frames), np.nan)
    chosen: dict[str, dict[str, int]] = {"pose": defaultdict(int), "visible": defaultdict(int)}
    for enc in sorted({f["encounter"] for f in frames}):
        test = [i for i, f in enumerate(frames) if f["encounter"] == enc]
        train = [i for i in sided if frames[i]["encounter"] != enc]
        sides = [frames[i]["truth"] for i in train]
        groups = [frames[i]["encounter"] for i in train]
        c = choose_c("pose", x[train], xm[train], sides, groups)
        chosen["pose"][str(c)] += 1
        model = PoseFlank(c).fit(x[train], xm[train], sides)
        for i, p in zip(test, model.propose(x[test], xm[test], 0.0), strict=True):
            pose[i] = p
        train = [i for i in viewed if frames[i]["encounter"] != enc]
        seen = [frames[i]["truth"] != "none" for i in train]
        groups = [frames[i]["encounter"] for i in train]
        c = choose_c("visible", x[train], xm[train], seen, groups)
        chosen["visible"][str(c)] += 1
        gate = FlankVisible(c).fit(x[train], xm[train], seen)
        p_flank[test] = gate.p_visible(x[test], xm[test])
    return pose, p_flank, {k: dict(v) for k, v in chosen.items()}


def score(
    frames: list[dict], props: list[FlankProposal | None], min_conf: float, light: str
) -> dict[str, float | int | None]:
    """n, coverage, accuracy and on_no_flank for one cue at one least confidence."""
    sel = [i for i, f in enumerate(frames) if light == "all" or f["lighting"] == light]
    lab = [i for i in sel if frames[i]["truth"] in ("left", "right")]
    given = [i for i in lab if props[i] is not None and props[i].confidence >= min_conf]
    right = [i for i in given if props[i].side == frames[i]["truth"]]
    none = [i for i in sel if frames[i]["truth"] == "none"]
    none_given = [i for i in none if props[i] is not None and props[i].confidence >= min_conf]
    return {
        "n": len(lab),
        "coverage": round(len(given) / len(lab), 3) if lab else None,
        "accuracy": round(len(right) / len(given), 3) if given else None,
        "n_no_flank": len(none),
        "on_no_flank": round(len(none_given) / len(none), 3) if none else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=_ROOT.parent / "shared" / "data" / "reid" / "snowleopard-tajikistan",
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/irbis_flank"))
    args = ap.parse_args()
    t0 = time.time()
    frames = read_frames(args.data)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f in frames:
        counts[str(f["truth"])][f["lighting"]] += 1
        counts[str(f["truth"])]["all"] += 1
    x, xm = embeddings(args.data, frames, args.cache)
    t_embed = time.time() - t0
    travel = travel_cue(frames)
    pose, p_flank, chosen = appearance_cues(frames, x, xm)
    both = [combine(a, b) for a, b in zip(travel, pose, strict=True)]
    # The gated proposal is what propose_side gives an unknown-side annotation.
    gated = [
        propose_side("unknown", travel=a, pose=b, p_flank=float(v), min_confidence=0.5)
        for a, b, v in zip(travel, pose, p_flank, strict=True)
    ]
    cues = {"travel": travel, "pose": pose, "combined": both, "combined_gated": gated}
    table = []
    for cue, props in cues.items():
        for conf in (0.5, 0.6, 0.8):
            if cue == "travel" and conf == 0.5:
                continue  # travel proposals start at its shift gate (confidence >= 0.68)
            for light in ("all", "day", "night_ir", "flash"):
                table.append(
                    {
                        "cue": cue,
                        "min_confidence": conf,
                        "lighting": light,
                        **score(frames, props, conf, light),
                    }
                )
    print(
        json.dumps(
            {
                "data": str(args.data),
                "split": "leave-one-encounter-out (no test encounter's frame in training)",
                "encounters": len({f["encounter"] for f in frames}),
                "frames": len(frames),
                "truth_counts": {k: dict(v) for k, v in counts.items()},
                "labels_side_used": sum(1 for f in frames if f["truth"] != f["note_heading"]),
                "c_chosen": chosen,
                "table": table,
                "seconds": {
                    "embed_or_cache": round(t_embed, 1),
                    "total": round(time.time() - t0, 1),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
