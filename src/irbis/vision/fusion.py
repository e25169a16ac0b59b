"""Fuse the learned detector with the motion detector, one burst at a time.

The learned detector is precise but misses small, dark or half-hidden animals
(night infrared, a cat at the frame edge); the motion detector sees anything
that moved but cannot tell a snow leopard from a swaying bush. Fused, each
covers the other's weakness:

1. A learned box at or above ``learned_threshold`` is kept as is.
2. A weak learned box (``confirm_threshold`` up to ``learned_threshold``) is
   kept when a motion box covers it: two independent weak signals at the same
   place.  Its score combines both.
3. A motion box with no learned box under it is kept only in a burst the
   learned detector has already *confirmed*: some frame of the burst has a
   learned box ≥ ``burst_threshold`` that coincides with a motion box, so the
   motion in this burst is known to be an animal. Such boxes must also be
   strong motion (``motion_threshold``).

Rule 3 is what brings recall on night bursts; rules 1-2 never add a box where
neither detector saw anything, and rule 3 never fires in a burst where motion
was only wind (no learned box coincides with it), which keeps vegetation and
rock free of new false boxes. A burst of fewer than three frames has no motion
boxes, so there the fused detector is the learned one.

Measured (``bench/detect_recall.py``, 478 snow-leopard frames, 41 encounters):
learned ≥ 0.1 finds 92.3 % of frames, motion 80.3 %, fused 98.3 %; the
camtrapR and Camtrap DP images gain no box off an animal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from irbis.vision.boxes import Detection, box_iou, nms, overlap_fraction

__all__ = ["DEFAULT_THRESHOLD", "LEARNED_CONF", "FusionParams", "fuse_burst", "fuse_sequence"]


@dataclass(frozen=True)
class FusionParams:
    """Operating point of the fused detector (defaults tuned on real bursts)."""

    # The learned detector's own operating point. Lowering it to 0.08 "finds"
    # the one encounter fused misses (S26C2_2012-08-27, a lone frame) only
    # through a 0.091 box on the rock at the top edge, not on the cat, and puts
    # new boxes on camtrapR ground and trees. Test-time augmentation of such
    # unconfident frames (mirror, 960 px, 2×2 tiles; bench/detect_tta.py) puts
    # boxes on Camtrap DP vegetation at the same scores as on animals, so it
    # is not used.
    learned_threshold: float = 0.1
    confirm_threshold: float = 0.01
    burst_threshold: float = 0.1
    motion_threshold: float = 0.5
    match_iou: float = 0.15  # IoU for "a motion box and a learned box are the same animal"
    nms_iou: float = 0.45  # final class-agnostic NMS over the kept boxes


#: Every box :func:`fuse_burst` returns is a detection at the fused operating point.
DEFAULT_THRESHOLD = 0.0
#: Score at which the learned detector must run for its boxes to be fused.
LEARNED_CONF = FusionParams().confirm_threshold


def _matches(a: Detection, b: Detection, p: FusionParams) -> bool:
    # Mostly overlapping, and of comparable size: a frame-sized weak learned box
    # "contains" every motion blob and must not be confirmed by it.
    return overlap_fraction(a, b) >= 0.5 and box_iou(a, b) >= p.match_iou


def fuse_burst(
    learned: Sequence[Sequence[Detection]],
    motion: Sequence[Sequence[Detection]],
    params: FusionParams | None = None,
) -> list[list[Detection]]:
    """Fused detections per frame of one burst.

    Parameters
    ----------
    learned
        Per frame, the learned detector's boxes at a low threshold (at most
        ``confirm_threshold``, e.g. 0.01), any order.
    motion
        Per frame, :meth:`MotionDetector.detect_burst` output for the same frames.
    params
        Thresholds.

    Returns
    -------
    list of list of Detection
        Per frame, highest score first. ``source`` tells which rule kept a box:
        the model's name (rule 1), ``fused`` (rule 2) or ``motion`` (rule 3).
    """
    p = params or FusionParams()
    if len(learned) != len(motion):
        raise ValueError("learned and motion must cover the same frames")
    confirmed = any(
        any(
            lb.score >= p.burst_threshold and any(_matches(mb, lb, p) for mb in mframe)
            for lb in lframe
        )
        for lframe, mframe in zip(learned, motion, strict=True)
    )
    out: list[list[Detection]] = []
    for lframe, mframe in zip(learned, motion, strict=True):
        kept: list[Detection] = [d for d in lframe if d.score >= p.learned_threshold]
        for lb in lframe:
            if p.confirm_threshold <= lb.score < p.learned_threshold:
                cover = [mb for mb in mframe if _matches(mb, lb, p)]
                if cover:
                    m = max(mb.score for mb in cover)
                    # Independent evidence: combine like probabilities of a miss.
                    score = 1.0 - (1.0 - lb.score) * (1.0 - 0.5 * m)
                    kept.append(lb.with_(score=round(score, 4), source="fused"))
        if confirmed:
            for mb in mframe:
                # Skip motion already explained by a kept box (part of the same animal).
                if mb.score >= p.motion_threshold and not any(
                    box_iou(mb, k) > 0.1 or overlap_fraction(mb, k) > 0.5 for k in kept
                ):
                    kept.append(mb.with_(score=round(0.5 * mb.score, 4), source="motion"))
        out.append(_nms(kept, p.nms_iou))
    return out


def _nms(dets: list[Detection], iou: float) -> list[Detection]:
    if not dets:
        return []
    boxes = np.array([d.xyxy for d in dets])
    keep = nms(boxes, np.array([d.score for d in dets]), iou)
    return [dets[int(i)] for i in keep]


#: Same function under the name the pipeline uses (a sequence is a burst).
fuse_sequence = fuse_burst
