"""Which flank faces the camera: a proposal from the pose, for a person to confirm.

A snow leopard's rosettes differ between its left and right sides, so a
photo can only be matched against catalogue photos of the same flank. A cat
that walks (or faces) right in the image shows its right flank; one that
walks left shows its left flank; one walking away or toward the camera shows
neither. Two cues propose a side:

* **travel** (:func:`travel_headings`): across a burst the animal's box moves
  in the direction it walks. The horizontal displacement of the box centre
  between neighbouring frames, divided by the box width, gives the heading;
  a single frame, a small shift or a mostly vertical one gives nothing.
* **pose** (:class:`PoseFlank`): a logistic regression on the crop's
  ``dinov2-s`` embedding (:mod:`irbis.vision.embed`). A mirrored crop shows
  the other heading, so each labelled crop is two training examples, and a
  prediction averages p(right | crop) with p(left | mirrored crop): the
  answer for a mirrored photo is then exactly the opposite one.

:func:`combine` adds the two cues' log-odds. :func:`heading_from_note` reads a
heading out of a free-text note ("cat walking right, tail at left"), which is
how the Tajik set's ground truth is written (``bench/reid_flank.py``).

A proposal never overwrites a side a person chose: see :func:`propose_side`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

import numpy as np

from irbis.vision.boxeval import Box

__all__ = [
    "FlankProposal",
    "FlankVisible",
    "PoseFlank",
    "combine",
    "follow_track",
    "heading_from_note",
    "propose_side",
    "travel_for",
    "travel_headings",
]

#: Default least horizontal shift per frame step, in box widths, for a travel heading.
MIN_SHIFT = 0.15


@dataclass(frozen=True)
class FlankProposal:
    """A proposed flank side.

    Attributes
    ----------
    side
        ``left`` or ``right``: the flank facing the camera.
    confidence
        Probability-like score in [0.5, 1] that ``side`` is right.
    cue
        ``travel``, ``pose`` or ``travel+pose``.
    reason
        Short words for the reviewer ("walking right", "pose").
    """

    side: str
    confidence: float
    cue: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (confidence rounded to 3 decimals)."""
        d = asdict(self)
        d["confidence"] = round(self.confidence, 3)
        return d

    @property
    def p_right(self) -> float:
        """Probability of the right flank implied by this proposal."""
        return self.confidence if self.side == "right" else 1.0 - self.confidence


def _from_p_right(p: float, cue: str, reason: str | None = None) -> FlankProposal:
    side = "right" if p >= 0.5 else "left"
    conf = p if side == "right" else 1.0 - p
    return FlankProposal(side, float(conf), cue, reason or f"{cue}")


# ---------------------------------------------------------------------------
# Ground truth from free-text notes
# ---------------------------------------------------------------------------

#: A note that says the animal is seen from the front or the back: no flank.
_NO_FLANK = re.compile(
    r"\baway\b|\btowards?\b|from behind|back to camera|facing camera|"
    r"facing (?:left|right)/camera|looking back at camera"
)
#: Movement or body-orientation verbs followed by a direction. "walking left of frame"
#: (a position) and head-only cues ("head turned right", "looking right") do not count:
#: a cat can look over its shoulder.
_VERB_DIR = re.compile(
    r"\b(?:walking|walks|facing|faces|stepping|moving|heading|running|climbing|trotting)"
    r"\s+(left|right)\b(?![- ]to[- ])(?!\s+(?:of|edge|side|border|half)\b)"
)
_ACROSS = re.compile(r"\b(left|right)[- ]to[- ](left|right)\b")
_LEAVING = re.compile(r"\bleaving (?:the )?frame (?:at|to|on) (?:the )?(left|right)\b")
_ENTERING = re.compile(r"\bentering (?:the frame )?from (?:the )?(left|right)\b")
_OTHER = {"left": "right", "right": "left"}


def heading_from_note(note: str) -> str | None:
    """The heading a free-text note states, as the flank it shows.

    Rules, in order (case-insensitive):

    1. "away", "toward(s)", "from behind", "back to camera", "facing camera",
       "facing left/camera", "looking back at camera": ``"none"`` (no flank
       seen, even when a direction is also given: "walking away left").
    2. "left-to-right" / "right-to-left": the second word.
    3. A movement or orientation verb (walking, facing, stepping, moving,
       heading, running, climbing, trotting) directly followed by left/right,
       unless a position follows ("walking left of frame", "facing right edge").
    4. "leaving frame at X": X; "entering from X": the other side.
    5. Both directions stated: ``None`` (contradictory); neither: ``None``.

    Walking or facing right in the image shows the right flank, left the left
    flank (checked against the 10 photos of the Tajik set with a labelled side).

    Parameters
    ----------
    note
        The note, e.g. ``"cat walking right, tail at left"``.

    Returns
    -------
    str or None
        ``"left"``, ``"right"``, ``"none"`` (frontal or rear view), or None when
        the note states no heading.
    """
    text = note.lower()
    if _NO_FLANK.search(text):
        return "none"
    found = {m.group(2) for m in _ACROSS.finditer(text)}
    found |= {m.group(1) for m in _VERB_DIR.finditer(text)}
    found |= {m.group(1) for m in _LEAVING.finditer(text)}
    found |= {_OTHER[m.group(1)] for m in _ENTERING.finditer(text)}
    if len(found) == 1:
        return found.pop()
    return None


# ---------------------------------------------------------------------------
# Cue 1: travel direction across a burst
# ---------------------------------------------------------------------------


def _centre(b: Box) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1] + b[3] / 2


def follow_track(frames: Sequence[Sequence[Box]], at: int, box: Box) -> list[Box | None]:
    """The same animal's box on every frame of a burst, starting from ``box`` on frame ``at``.

    Walking outwards from ``at``, each frame's box is the one whose centre is
    nearest the previous frame's chosen box (in box widths), when within two
    widths; a frame without such a box gives None and the walk goes on from
    the last box found. With a mother and her cubs this keeps to one animal.

    Parameters
    ----------
    frames
        The boxes (x, y, w, h fractions) on each frame of the burst, in time order.
    at
        Index of the frame holding ``box``.
    box
        The animal's box on frame ``at``.

    Returns
    -------
    list
        One box or None per frame; ``box`` itself at ``at``.
    """
    out: list[Box | None] = [None] * len(frames)
    out[at] = box
    for step in (-1, 1):
        last = box
        i = at + step
        while 0 <= i < len(frames):
            cx, cy = _centre(last)
            scale = max(last[2], 1e-6)
            best, dist = None, 2.0
            for b in frames[i]:
                bx, by = _centre(b)
                d = math.hypot(bx - cx, by - cy) / scale
                if d < dist:
                    best, dist = b, d
            if best is not None:
                out[i] = best
                last = best
            i += step
    return out


def _travel_confidence(shift: float) -> float:
    # 0.5 at no shift, 0.73 at 0.15 box widths, 0.93 at half a width: a cat's box
    # jitters by a tenth of its width between frames even when it stands still.
    return 1.0 - 0.5 * math.exp(-abs(shift) / 0.25)


def travel_headings(
    boxes: Sequence[Box | None],
    times: Sequence[float] | None = None,
    *,
    min_shift: float = MIN_SHIFT,
    max_gap_s: float = 10.0,
) -> list[FlankProposal | None]:
    """The heading of one animal in each frame of a burst, from how its box moves.

    For each frame the displacement is taken between its neighbours with a
    box (the previous and the next, or the frame itself at an end), divided by
    the number of steps and by the mean box width (horizontal) or height
    (vertical). A heading is proposed when the horizontal shift per step is at
    least ``min_shift`` box widths and larger than the vertical one.

    Parameters
    ----------
    boxes
        The animal's box (x, y, w, h fractions) per frame, in time order; None
        where it has none (see :func:`follow_track`).
    times
        Seconds of each frame (any origin). Neighbours more than ``max_gap_s``
        apart are not used (another visit, not the same walk). None: all are.
    min_shift
        Least horizontal shift per frame step, in box widths.
    max_gap_s
        Longest time between two frames compared.

    Returns
    -------
    list
        One :class:`FlankProposal` (cue ``travel``) or None per frame.
    """
    n = len(boxes)
    out: list[FlankProposal | None] = [None] * n
    have = [i for i in range(n) if boxes[i] is not None]
    for k, i in enumerate(have):
        lo, hi = i, i
        if k > 0 and (times is None or times[i] - times[have[k - 1]] <= max_gap_s):
            lo = have[k - 1]
        if k + 1 < len(have) and (times is None or times[have[k + 1]] - times[i] <= max_gap_s):
            hi = have[k + 1]
        if lo == hi:
            continue
        a, b = boxes[lo], boxes[hi]
        assert a is not None and b is not None
        steps = 1 if lo == i or hi == i else 2
        (ax, ay), (bx, by) = _centre(a), _centre(b)
        w = max((a[2] + b[2]) / 2, 1e-6)
        h = max((a[3] + b[3]) / 2, 1e-6)
        dx, dy = (bx - ax) / w / steps, (by - ay) / h / steps
        if abs(dx) < min_shift or abs(dx) <= abs(dy):
            continue
        side = "right" if dx > 0 else "left"
        out[i] = FlankProposal(side, _travel_confidence(dx), "travel", f"walking {side}")
    return out


def travel_for(
    frames: Sequence[Sequence[Box]],
    at: int,
    box: Box,
    times: Sequence[float] | None = None,
    *,
    min_shift: float = MIN_SHIFT,
) -> FlankProposal | None:
    """The travel proposal for one animal's box on frame ``at`` of a burst.

    The animal is followed across the burst (:func:`follow_track`), then
    :func:`travel_headings` gives its heading on frame ``at``.

    Parameters
    ----------
    frames
        Boxes (x, y, w, h fractions) on each frame of the burst, time-ordered.
    at
        Index of the annotation's frame; ``box`` is its box.
    times
        Seconds of each frame, or None.

    Returns
    -------
    FlankProposal or None
    """
    track = follow_track(frames, at, box)
    return travel_headings(track, times, min_shift=min_shift)[at]


# ---------------------------------------------------------------------------
# Cue 2: pose from the crop's appearance
# ---------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


class _LogReg:
    """L2-regularised logistic regression on standardised inputs (numpy + scipy).

    Parameters
    ----------
    c
        Inverse regularisation strength (as scikit-learn's ``C``).
    """

    kind = "irbis-logreg"

    def __init__(self, c: float = 1.0) -> None:
        self.c = float(c)
        self.weights: np.ndarray | None = None
        self.bias = 0.0
        # Standardisation of the inputs (unit-length embeddings have tiny per-dimension
        # spread, which would make one C mean very different things per encoder).
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _fit(self, data: np.ndarray, target: np.ndarray, iterations: int = 50) -> None:
        data = np.asarray(data, dtype=np.float64)
        self.mean = data.mean(0)
        self.scale = np.maximum(data.std(0), 1e-6)
        data = (data - self.mean) / self.scale
        n, d = data.shape
        xb = np.hstack([data, np.ones((n, 1))])
        # The bias is (almost) not regularised.
        reg = np.full(d + 1, 1.0 / self.c)
        reg[d] = 1e-6
        # Newton's method: about ten steps where gradient methods crawl on these
        # nearly separable data. Each step solves (R + Xᵀ W X) s = g; with fewer
        # examples than dimensions (a few hundred crops, 769 unknowns) the
        # Woodbury identity turns that into an n × n solve on K = X R⁻¹ Xᵀ,
        # computed once.
        xr = xb / reg
        gram = xr @ xb.T

        def objective(theta: np.ndarray) -> float:
            z = xb @ theta
            # log(1 + e^z) - t z, written stably.
            return float(np.sum(np.logaddexp(0.0, z) - target * z) + 0.5 * theta @ (reg * theta))

        theta = np.zeros(d + 1)
        current = objective(theta)
        for _ in range(iterations):
            p = _sigmoid(xb @ theta)
            grad = xb.T @ (p - target) + reg * theta
            root = np.sqrt(p * (1 - p))
            inner = np.eye(n) + root[:, None] * gram * root[None, :]
            rg = grad / reg
            step = rg - xr.T @ (root * np.linalg.solve(inner, root * (xb @ rg)))
            # Halve the step until the objective falls; stop when it no longer can.
            t, trial = 1.0, objective(theta - step)
            while trial > current and t > 1e-4:
                t /= 2
                trial = objective(theta - t * step)
            if trial > current:
                break
            theta = theta - t * step
            gain, current = current - trial, trial
            if gain < 1e-9 * max(1.0, abs(current)):
                break
        self.weights, self.bias = theta[:d], float(theta[d])

    def _raw(self, x: np.ndarray) -> np.ndarray:
        if self.weights is None or self.mean is None or self.scale is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted (call fit or load)")
        z = (np.atleast_2d(x).astype(np.float64) - self.mean) / self.scale
        return _sigmoid(z @ self.weights + self.bias)

    def save(self, path: Path) -> None:
        """Write the fitted weights as JSON (small: three vectors)."""
        if self.weights is None or self.mean is None or self.scale is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")

        def vec(v: np.ndarray) -> list[float]:
            return [round(float(t), 7) for t in v]

        doc = {
            "kind": self.kind,
            "c": self.c,
            "bias": self.bias,
            "weights": vec(self.weights),
            "mean": vec(self.mean),
            "scale": vec(self.scale),
        }
        Path(path).write_text(json.dumps(doc))

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read weights written by :meth:`save`.

        Raises
        ------
        ValueError
            When the file is not a model of this kind.
        """
        doc = json.loads(Path(path).read_text())
        if doc.get("kind") != cls.kind:
            raise ValueError(f"{path}: not a {cls.kind} model (write one with {cls.__name__}.save)")
        model = cls(doc.get("c", 1.0))
        model.weights = np.asarray(doc["weights"], dtype=np.float64)
        model.bias = float(doc["bias"])
        model.mean = np.asarray(doc["mean"], dtype=np.float64)
        model.scale = np.asarray(doc["scale"], dtype=np.float64)
        return model


def _check_lengths(x: np.ndarray, x_mirror: np.ndarray, labels: Sequence[object]) -> None:
    if len(x) != len(labels) or len(x_mirror) != len(labels):
        raise ValueError("x, x_mirror and the labels must have the same length")


class PoseFlank(_LogReg):
    """p(right flank | crop embedding), mirror-consistent.

    Parameters
    ----------
    c
        Inverse L2 regularisation strength (as scikit-learn's ``C``).
    """

    kind = "irbis-pose-flank"

    def fit(self, x: np.ndarray, x_mirror: np.ndarray, sides: Sequence[str]) -> PoseFlank:
        """Fit on labelled crops and their mirrors (each mirror with the other side).

        Parameters
        ----------
        x, x_mirror
            (n, d) embeddings of the crops and of the same crops flipped left-right.
        sides
            ``left`` or ``right`` per crop.

        Returns
        -------
        PoseFlank
            ``self``, fitted.

        Raises
        ------
        ValueError
            On a side other than left/right or mismatched lengths.
        """
        bad = [s for s in sides if s not in ("left", "right")]
        if bad:
            raise ValueError(f"side {bad[0]!r}: label crops with left or right only")
        _check_lengths(x, x_mirror, sides)
        y = np.array([s == "right" for s in sides], dtype=np.float64)
        self._fit(np.vstack([x, x_mirror]), np.concatenate([y, 1.0 - y]))
        return self

    def p_right(self, x: np.ndarray, x_mirror: np.ndarray) -> np.ndarray:
        """p(right flank) per crop: p(right | crop) and p(left | mirrored crop), averaged.

        Swapping ``x`` and ``x_mirror`` gives exactly ``1 - p``.
        """
        return 0.5 * (self._raw(x) + 1.0 - self._raw(x_mirror))

    def propose(
        self, x: np.ndarray, x_mirror: np.ndarray, min_confidence: float = 0.5
    ) -> list[FlankProposal | None]:
        """Proposals (cue ``pose``) for crops, None below ``min_confidence``."""
        out: list[FlankProposal | None] = []
        for p in self.p_right(x, x_mirror):
            prop = _from_p_right(float(p), "pose", "pose")
            out.append(prop if prop.confidence >= min_confidence else None)
        return out


class FlankVisible(_LogReg):
    """p(a flank is seen | crop embedding), not p(front or rear view); mirror-invariant.

    A cat walking away or toward the camera shows no flank, and neither cue
    above can say so: the travel cue sees it drift sideways, the pose model
    has only left and right. Mirroring does not change whether a flank is
    seen, so each labelled crop and its mirror are two examples with one
    label, and a prediction averages the two.
    """

    kind = "irbis-flank-visible"

    def fit(self, x: np.ndarray, x_mirror: np.ndarray, visible: Sequence[bool]) -> FlankVisible:
        """Fit on crops labelled flank-seen (True) or front/rear view (False).

        Raises
        ------
        ValueError
            On mismatched lengths or a single class.
        """
        _check_lengths(x, x_mirror, visible)
        y = np.asarray(visible, dtype=np.float64)
        if y.min() == y.max():
            raise ValueError("label both crops that show a flank and crops that show none")
        self._fit(np.vstack([x, x_mirror]), np.concatenate([y, y]))
        return self

    def p_visible(self, x: np.ndarray, x_mirror: np.ndarray) -> np.ndarray:
        """p(flank seen) per crop, equal for a crop and its mirror."""
        return 0.5 * (self._raw(x) + self._raw(x_mirror))


# ---------------------------------------------------------------------------
# Combination and use
# ---------------------------------------------------------------------------


def combine(*proposals: FlankProposal | None) -> FlankProposal | None:
    """One proposal from several cues: their log-odds added (as independent evidence).

    Cues that agree strengthen each other; cues that disagree leave the
    stronger one with less confidence. None inputs are skipped; with none
    left the result is None. The reason is the travel cue's when it agrees.
    """
    given = [p for p in proposals if p is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]
    logit = 0.0
    for p in given:
        q = min(max(p.p_right, 1e-6), 1 - 1e-6)
        logit += math.log(q / (1 - q))
    out = _from_p_right(1.0 / (1.0 + math.exp(-logit)), "+".join(p.cue for p in given))
    reason = next((p.reason for p in given if p.side == out.side and p.cue == "travel"), "pose")
    return FlankProposal(out.side, out.confidence, out.cue, reason)


def propose_side(
    current_side: str,
    *,
    travel: FlankProposal | None = None,
    pose: FlankProposal | None = None,
    p_flank: float | None = None,
    min_confidence: float = 0.6,
) -> FlankProposal | None:
    """A flank to propose for an annotation, or None.

    Only an annotation whose side is ``unknown`` gets a proposal: a side a
    person chose is never second-guessed here.

    Parameters
    ----------
    current_side
        The annotation's stored side.
    travel, pose
        The cues' proposals for it (either may be None).
    p_flank
        p(a flank is seen) from :class:`FlankVisible`; below 0.5 (a front or
        rear view) nothing is proposed. None: not known, no gate.
    min_confidence
        Least combined confidence worth showing.

    Returns
    -------
    FlankProposal or None
    """
    if current_side != "unknown":
        return None
    if p_flank is not None and p_flank < 0.5:
        return None
    prop = combine(travel, pose)
    if prop is None or prop.confidence < min_confidence:
        return None
    return prop
