"""Fine-tune the YOLOX detector on a survey's reviewed boxes, on a CPU.

The survey's own photos teach the detector what the survey's cats look like at
its stations (a large daylight cat filling a third of the frame, an infrared
cat half behind a rock) and what its rocks look like (confirmed-empty frames
and the background around every reviewed box are negatives). Training starts
from the parent's weights (an installed irbis YOLOX ONNX file), runs a short
cosine schedule with light augmentation (scale, shift, mirror, brightness,
grey as under infrared) at a small input size, and writes the network back as
ONNX with the parent's exact graph.

Nothing here knows the database: the caller gives :class:`TrainingFrame`
records (a photo, its reviewed animal boxes, its encounter).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image

from irbis.vision.boxeval import Box
from irbis.vision.detector import open_image
from irbis.vision.train.loss import yolox_loss
from irbis.vision.train.yolox_torch import YoloxTorch, decode, export_onnx, from_onnx

__all__ = [
    "EpochReport",
    "TrainConfig",
    "TrainResult",
    "TrainingFrame",
    "split_by_group",
    "train_detector",
]


@dataclass(frozen=True)
class TrainingFrame:
    """A reviewed photo: its animal boxes (fractions x, y, w, h; none = confirmed empty).

    ``group`` is the unit that never straddles the train/held-out split (an
    encounter or burst); ``groups`` are extra labels for reporting (lighting).
    """

    path: Path
    boxes: tuple[Box, ...]
    group: str
    groups: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune.

    Parameters
    ----------
    epochs
        Passes over the training frames (cosine learning-rate schedule over them).
        8 epochs at ``lr`` 0.002 gave the best held-out figures measured on the
        Tajik frames (``bench/detect_train.py``); 12 epochs at 0.003 were worse.
    image_size
        Square training window (a multiple of 32). The exported model keeps the
        parent's input size (640) and windows are cut from frames scaled as the
        detector sees them, so a smaller window is cheaper on a CPU without
        changing the size at which cats are learned.
    batch_size
        Frames per step.
    lr
        Peak learning rate (SGD, momentum 0.9), reached after a one-epoch warm-up.
    weight_decay
        L2 penalty on convolution weights.
    freeze_backbone
        Train only the neck and head (about a third less time per image).
    seed
        Seeds augmentation and batch order, for repeatable runs.
    threads
        CPU threads for PyTorch (default: what PyTorch chooses).
    """

    epochs: int = 8
    image_size: int = 416
    batch_size: int = 8
    lr: float = 0.002
    weight_decay: float = 5e-4
    freeze_backbone: bool = False
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.image_size % 32 or self.image_size < 128:
            raise ValueError(f"image_size {self.image_size}: use a multiple of 32, at least 128")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")


@dataclass(frozen=True)
class EpochReport:
    """Progress after each step: epoch (1-based), step in epoch, mean loss so far, ETA."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    eta_s: float
    images_per_s: float


@dataclass
class TrainResult:
    """A trained network and how the training went."""

    model: onnx.ModelProto
    epochs_done: int
    interrupted: bool
    losses: list[float]
    seconds: float
    images_seen: int
    config: TrainConfig
    frames: int
    boxes: int
    blank_frames: int

    @property
    def seconds_per_image_epoch(self) -> float:
        """Training seconds per image per epoch (the figure the issue's budget is in)."""
        return self.seconds / self.images_seen if self.images_seen else float("nan")

    def summary(self) -> dict[str, object]:
        c = self.config
        return {
            "epochs": c.epochs,
            "epochs_done": self.epochs_done,
            "interrupted": self.interrupted,
            "image_size": c.image_size,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "freeze_backbone": c.freeze_backbone,
            "seed": c.seed,
            "frames": self.frames,
            "boxes": self.boxes,
            "blank_frames": self.blank_frames,
            "loss_per_epoch": [round(v, 4) for v in self.losses],
            "seconds": round(self.seconds, 1),
            "seconds_per_image_epoch": round(self.seconds_per_image_epoch, 4),
        }


def split_by_group(
    frames: Sequence[TrainingFrame], holdout: float, seed: int = 0
) -> tuple[list[TrainingFrame], list[TrainingFrame]]:
    """Split frames into (train, held out) by whole groups, never a group on both sides.

    About ``holdout`` of the groups are held out (at least one when there are
    two or more groups), chosen at random with ``seed`` among groups with
    animals and among confirmed-empty groups separately so both sides see both.
    """
    if not 0 < holdout < 1:
        raise ValueError(f"holdout {holdout}: give a share between 0 and 1")
    rng = random.Random(seed)
    with_animal = sorted({f.group for f in frames if f.boxes})
    empty_only = sorted({f.group for f in frames} - set(with_animal))
    held: set[str] = set()
    for groups in (with_animal, empty_only):
        groups = list(groups)
        rng.shuffle(groups)
        k = round(len(groups) * holdout)
        if len(groups) >= 2:
            k = min(max(k, 1), len(groups) - 1)
        held |= set(groups[:k])
    return [f for f in frames if f.group not in held], [f for f in frames if f.group in held]


class _Augmenter:
    """Frames decoded once, then scaled, cropped, mirrored and recoloured per sample.

    Frames are scaled as the detector will see them (long side about the
    exported input, 640 px) and a training-size window is cut from them, so a
    cat has the same size in pixels when training at 416 as when detecting at
    640; the window usually holds the animal (a fifth of windows are anywhere,
    which teaches the background).
    """

    def __init__(
        self, frames: Sequence[TrainingFrame], size: int, seed: int, scale_to: int
    ) -> None:
        self.size, self.scale_to = size, scale_to
        self.rng = np.random.default_rng(seed)
        self.cache: list[np.ndarray] = []
        cache_side = int(scale_to * 1.25)
        for f in frames:
            im = open_image(f.path, min_side=cache_side)
            scale = cache_side / max(im.size)
            if scale < 1:
                im = im.resize(
                    (max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                    Image.Resampling.BILINEAR,
                )
            self.cache.append(np.asarray(im, dtype=np.uint8))
        self.frames = list(frames)

    def _offset(self, extent: int, window: int, lo: float, hi: float) -> int:
        """Top-left of the window along one axis (negative: the image starts inside it)."""
        if extent <= window:
            return int(self.rng.integers(0, window - extent + 1))
        if hi > lo and self.rng.random() < 0.8:
            # Keep the animal's centre inside the window.
            c = (lo + hi) / 2
            a, b = max(0, int(c - window + 8)), min(extent - window, int(c - 8))
            if b >= a:
                return -int(self.rng.integers(a, b + 1))
        return -int(self.rng.integers(0, extent - window + 1))

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """One augmented (3, S, S) float32 tensor and its (G, 4) centre/size boxes in pixels."""
        rng, s = self.rng, self.size
        img = self.cache[i]
        h, w = img.shape[:2]
        # The letterbox at inference scales the long side to ``scale_to``;
        # 0.7-1.3 × that teaches nearer and farther cats.
        k = self.scale_to * rng.uniform(0.7, 1.3) / max(h, w)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        im = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BILINEAR))
        src = self.frames[i].boxes
        if src:
            j = int(rng.integers(0, len(src)))
            bx0, by0 = src[j][0] * nw, src[j][1] * nh
            bx1, by1 = bx0 + src[j][2] * nw, by0 + src[j][3] * nh
        else:
            bx0 = by0 = bx1 = by1 = 0.0
        ox = self._offset(nw, s, bx0, bx1)
        oy = self._offset(nh, s, by0, by1)
        # Paste on a black canvas (the letterbox pads black).
        canvas = np.zeros((s, s, 3), dtype=np.float32)
        x0, y0 = max(ox, 0), max(oy, 0)
        sx0, sy0 = x0 - ox, y0 - oy
        cw, ch = min(s - x0, nw - sx0), min(s - y0, nh - sy0)
        canvas[y0 : y0 + ch, x0 : x0 + cw] = im[sy0 : sy0 + ch, sx0 : sx0 + cw]
        boxes = []
        for bx, by, bw, bh in src:
            a0, b0 = bx * nw + ox, by * nh + oy
            a1, b1 = a0 + bw * nw, b0 + bh * nh
            c0, d0, c1, d1 = max(a0, 0), max(b0, 0), min(a1, s), min(b1, s)
            if c1 - c0 < 8 or d1 - d0 < 8:
                continue
            # A box mostly cut away by the window is no longer "the animal".
            if (c1 - c0) * (d1 - d0) < 0.2 * (a1 - a0) * (b1 - b0):
                continue
            boxes.append([c0, d0, c1, d1])
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1]
            boxes = [[s - b[2], b[1], s - b[0], b[3]] for b in boxes]
        filled = canvas.any(-1)
        if rng.random() < 0.2:  # infrared frames are grey
            canvas = np.repeat(canvas.mean(-1, keepdims=True), 3, -1)
        if rng.random() < 0.6:
            gain = rng.uniform(0.65, 1.35)
            bias = rng.uniform(-25, 25)
            canvas = np.where(filled[..., None], np.clip(canvas * gain + bias, 0, 255), 0)
        arr = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        cxcywh = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1)
        return arr, cxcywh


def train_detector(
    parent: Path | onnx.ModelProto,
    frames: Sequence[TrainingFrame],
    config: TrainConfig | None = None,
    *,
    progress: Callable[[EpochReport], None] | None = None,
    export_size: int = 640,
) -> TrainResult:
    """Fine-tune a YOLOX ONNX detector on reviewed frames.

    Ctrl-C (KeyboardInterrupt) during training keeps the last completed epoch:
    the result says ``interrupted`` and holds that epoch's network (the
    parent's, when not even one epoch finished).

    Parameters
    ----------
    parent
        The parent model (path to its ``.onnx`` or the loaded graph).
    frames
        Training frames: reviewed boxes and confirmed-empty frames.
    config
        Training settings (:class:`TrainConfig`).
    progress
        Called after every step.
    export_size
        Input size of the exported graph (the parent's).

    Returns
    -------
    TrainResult
    """
    config = config or TrainConfig()
    if not frames:
        raise ValueError("no training frames: review some boxes first")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    proto = parent if isinstance(parent, onnx.ModelProto) else onnx.load(str(parent))
    model: YoloxTorch = from_onnx(proto, image_size=export_size)
    if config.freeze_backbone:
        for p in model.backbone.backbone.parameters():
            p.requires_grad = False
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if name.endswith("weight") else no_decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay}],
        lr=config.lr,
        momentum=0.9,
        nesterov=True,
    )
    aug = _Augmenter(frames, config.image_size, config.seed, scale_to=export_size)
    order_rng = random.Random(config.seed)
    n = len(frames)
    steps = math.ceil(n / config.batch_size)
    total_steps = steps * config.epochs
    warm = steps  # one epoch of warm-up

    def lr_at(step: int) -> float:
        if step < warm:
            return config.lr * (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    kept = copy.deepcopy(model.state_dict())
    losses: list[float] = []
    epochs_done = 0
    interrupted = False
    images_seen = 0
    train_seconds = 0.0
    global_step = 0
    model.train()
    try:
        for epoch in range(config.epochs):
            idx = list(range(n))
            order_rng.shuffle(idx)
            running = 0.0
            for step in range(steps):
                ts = time.perf_counter()
                batch = idx[step * config.batch_size : (step + 1) * config.batch_size]
                samples = [aug.sample(i) for i in batch]
                x = torch.from_numpy(np.stack([s[0] for s in samples]))
                targets = [torch.from_numpy(s[1]) for s in samples]
                for g in opt.param_groups:
                    g["lr"] = lr_at(global_step)
                raw, grid, strides = decode(model(x))
                loss, parts = yolox_loss(raw, grid, strides, targets)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                global_step += 1
                images_seen += len(batch)
                train_seconds += time.perf_counter() - ts
                running += parts["total"]
                if progress is not None:
                    rate = images_seen / train_seconds if train_seconds else 0.0
                    left = (total_steps - global_step) * config.batch_size
                    progress(
                        EpochReport(
                            epoch=epoch + 1,
                            epochs=config.epochs,
                            step=step + 1,
                            steps=steps,
                            loss=running / (step + 1),
                            eta_s=left / rate if rate else float("nan"),
                            images_per_s=rate,
                        )
                    )
            losses.append(running / steps)
            kept = copy.deepcopy(model.state_dict())
            epochs_done = epoch + 1
    except KeyboardInterrupt:
        interrupted = True
    model.load_state_dict(kept)
    model.eval()
    return TrainResult(
        model=export_onnx(model, image_size=export_size),
        epochs_done=epochs_done,
        interrupted=interrupted,
        losses=losses,
        seconds=train_seconds,
        images_seen=images_seen,
        config=config,
        frames=n,
        boxes=sum(len(f.boxes) for f in frames),
        blank_frames=sum(1 for f in frames if not f.boxes),
    )
