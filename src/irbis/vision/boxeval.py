"""Detection judged the way a census needs it: is there a box ON the animal?

A frame with an animal counts as *found* when some box at the operating point
overlaps a true animal box with IoU ≥ ``hit_iou`` (0.3): a box somewhere else
in the frame does not count, however confident. A box is *false* when its IoU
with every true box is below ``false_iou`` (0.1): a box on rock, snow or a
bush. Boxes in between (a box on half the cat) are neither. Figures are given
over frames, per group (lighting, station…) and per encounter (a burst or
visit: an encounter is found when any of its frames is).

No torch and no database here: boxes are ``(x, y, width, height)`` fractions
of the frame, the detector's and the person's alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "FALSE_IOU",
    "HIT_IOU",
    "FrameResult",
    "Summary",
    "iou_xywh",
    "fractions",
    "judge_frame",
    "summarize",
]

HIT_IOU = 0.3
FALSE_IOU = 0.1

Box = tuple[float, float, float, float]


def iou_xywh(a: Box, b: Box) -> float:
    """IoU of two ``(x, y, width, height)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class FrameResult:
    """One frame judged against its true boxes.

    ``animals``: true boxes; ``found``: true boxes hit by some box;
    ``false``: boxes on nothing; ``boxes``: boxes at the operating point.
    """

    key: str
    animals: int
    found: int
    false: int
    boxes: int
    groups: Mapping[str, str] = field(default_factory=dict)

    @property
    def hit(self) -> bool:
        """A box on (one of) the animal(s) in this frame."""
        return self.found > 0


def judge_frame(
    key: str,
    predicted: Sequence[Box],
    truth: Sequence[Box],
    *,
    groups: Mapping[str, str] | None = None,
    hit_iou: float = HIT_IOU,
    false_iou: float = FALSE_IOU,
) -> FrameResult:
    """Judge one frame's predicted boxes against its true animal boxes.

    Parameters
    ----------
    key
        The frame's name (file, media id).
    predicted
        Boxes at the operating point, fractions of the frame.
    truth
        True animal boxes (empty for a frame a person confirmed empty).
    groups
        What the frame belongs to, e.g. ``{"lighting": "day", "encounter": "S04_2012-07-22"}``.

    Returns
    -------
    FrameResult
    """
    found = sum(1 for t in truth if any(iou_xywh(p, t) >= hit_iou for p in predicted))
    false = sum(1 for p in predicted if all(iou_xywh(p, t) < false_iou for t in truth))
    return FrameResult(
        key=key,
        animals=len(truth),
        found=found,
        false=false,
        boxes=len(predicted),
        groups=dict(groups or {}),
    )


@dataclass
class Summary:
    """Box-level figures over a set of frames (see :func:`summarize`)."""

    frames: int
    frames_with_animal: int
    frames_hit: int
    any_box: int
    false_boxes: int
    blank_frames: int
    blank_frames_with_box: int
    by_group: dict[str, dict[str, dict[str, float]]]
    encounters: dict[str, dict[str, int]]

    @property
    def box_recall(self) -> float:
        """Share of frames with an animal where a box is on the animal."""
        return self.frames_hit / self.frames_with_animal if self.frames_with_animal else 0.0

    @property
    def false_per_frame(self) -> float:
        return self.false_boxes / self.frames if self.frames else 0.0

    @property
    def encounters_found(self) -> int:
        return sum(1 for e in self.encounters.values() if e["hit"] > 0)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures, the old "any box in the frame" figure next to the box recall."""
        missed = sorted(k for k, e in self.encounters.items() if e["hit"] == 0)
        return {
            "frames": self.frames,
            "frames_with_animal": self.frames_with_animal,
            "box_recall": round(self.box_recall, 4),
            "frames_box_on_animal": self.frames_hit,
            "false_boxes": self.false_boxes,
            "false_boxes_per_frame": round(self.false_per_frame, 4),
            "frame_any_box": round(self.any_box / self.frames, 4) if self.frames else 0.0,
            "blank_frames": self.blank_frames,
            "blank_frames_with_box": self.blank_frames_with_box,
            "encounters": len(self.encounters),
            "encounters_found": self.encounters_found,
            "encounters_missed": missed,
            "worst_encounter_recall": round(
                min(
                    (e["hit"] / e["frames"] for e in self.encounters.values() if e["frames"]),
                    default=0.0,
                ),
                4,
            ),
            "by": self.by_group,
        }


def summarize(results: Sequence[FrameResult], *, encounter_key: str = "encounter") -> Summary:
    """Aggregate judged frames: overall, per value of every group, per encounter.

    Parameters
    ----------
    results
        Judged frames (:func:`judge_frame`).
    encounter_key
        The group that names a frame's encounter (absent: each frame is its own).

    Returns
    -------
    Summary
    """
    by: dict[str, dict[str, list[FrameResult]]] = defaultdict(lambda: defaultdict(list))
    enc: dict[str, dict[str, int]] = {}
    for r in results:
        for g, v in r.groups.items():
            if g != encounter_key:
                by[g][v].append(r)
        if r.animals:
            e = enc.setdefault(r.groups.get(encounter_key, r.key), {"frames": 0, "hit": 0})
            e["frames"] += 1
            e["hit"] += int(r.hit)

    def fig(rs: Sequence[FrameResult]) -> dict[str, float]:
        animal = [r for r in rs if r.animals]
        hits = sum(r.hit for r in animal)
        false = sum(r.false for r in rs)
        return {
            "frames": len(rs),
            "box_recall": round(hits / len(animal), 4) if animal else 0.0,
            "frames_box_on_animal": hits,
            "frames_with_animal": len(animal),
            "false_boxes_per_frame": round(false / len(rs), 4) if rs else 0.0,
        }

    return Summary(
        frames=len(results),
        frames_with_animal=sum(1 for r in results if r.animals),
        frames_hit=sum(1 for r in results if r.animals and r.hit),
        any_box=sum(1 for r in results if r.boxes),
        false_boxes=sum(r.false for r in results),
        blank_frames=sum(1 for r in results if not r.animals),
        blank_frames_with_box=sum(1 for r in results if not r.animals and r.boxes),
        by_group={g: {v: fig(rs) for v, rs in sorted(vals.items())} for g, vals in by.items()},
        encounters=enc,
    )



def fractions(
    detections: Sequence[object], width: int, height: int, min_score: float = 0.0
) -> list[Box]:
    """Detector boxes (corners in pixels of a ``width``×``height`` frame) as
    ``(x, y, width, height)`` fractions, those scoring at least ``min_score``."""
    return [
        (d.x1 / width, d.y1 / height, (d.x2 - d.x1) / width, (d.y2 - d.y1) / height)  # type: ignore[attr-defined]
        for d in detections
        if d.score >= min_score  # type: ignore[attr-defined]
    ]
