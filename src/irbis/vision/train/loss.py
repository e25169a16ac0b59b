"""The YOLOX training loss with dynamic label assignment (SimOTA), written for fine-tuning.

Each true box takes the anchors that predict it best (lowest cost of
classification plus 3 × −log IoU, among anchors whose centre lies in the box
or near its centre), as many as the sum of its ten best IoUs; an anchor wanted
by two boxes goes to the cheaper one. The loss then has three parts:
IoU loss (1 − IoU²) on the assigned anchors, objectness (binary cross-entropy
on every anchor: assigned ones are objects, all others background) and class
(binary cross-entropy on assigned anchors, target = the IoU they reach).
Frames a person confirmed empty contribute background only, which is how the
detector learns that the survey's rocks are not cats.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812 - the usual name

__all__ = ["LossParts", "yolox_loss"]

CENTER_RADIUS = 2.5  # in strides: anchors this close to a box centre are candidates
IOU_WEIGHT = 5.0
TOPK_IOU = 10


def box_iou_xywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of centre/size boxes: (n, 4) × (m, 4) -> (n, m)."""
    a1, a2 = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b1, b2 = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return inter / union.clamp(min=1e-9)


def _aligned_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a1, a2 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b1, b2 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(-1)
    union = a[:, 2:].prod(-1) + b[:, 2:].prod(-1) - inter
    return inter / union.clamp(min=1e-9)


@torch.no_grad()
def assign(
    boxes: torch.Tensor,
    pred_boxes: torch.Tensor,
    obj_logit: torch.Tensor,
    cls_logit: torch.Tensor,
    centres: torch.Tensor,
    strides: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SimOTA for one image.

    Parameters
    ----------
    boxes
        (G, 4) true boxes, centre/size in input pixels (one class).
    pred_boxes
        (A, 4) decoded predictions, centre/size.
    obj_logit, cls_logit
        (A,) raw objectness and class logits.
    centres, strides
        (A, 2) anchor centres in pixels, (A,) strides.

    Returns
    -------
    fg, matched
        (A,) bool: anchors assigned to a box; (A,) index of that box (−1 elsewhere).
    """
    n_anchor = pred_boxes.shape[0]
    fg = torch.zeros(n_anchor, dtype=torch.bool)
    matched = torch.full((n_anchor,), -1, dtype=torch.long)
    if boxes.numel() == 0:
        return fg, matched
    lo, hi = (
        boxes[:, None, :2] - boxes[:, None, 2:] / 2,
        boxes[:, None, :2] + boxes[:, None, 2:] / 2,
    )
    c = centres[None]
    in_box = ((c > lo) & (c < hi)).all(-1)  # (G, A)
    r = CENTER_RADIUS * strides[None, :, None]
    in_centre = ((c > boxes[:, None, :2] - r) & (c < boxes[:, None, :2] + r)).all(-1)
    candidate = (in_box | in_centre).any(0)
    if not candidate.any():
        return fg, matched
    cand_idx = candidate.nonzero().squeeze(1)
    ious = box_iou_xywh(boxes, pred_boxes[cand_idx])  # (G, K)
    prob = (torch.sigmoid(cls_logit[cand_idx]) * torch.sigmoid(obj_logit[cand_idx])).sqrt()
    cls_cost = F.binary_cross_entropy(
        prob[None].expand(len(boxes), -1).clamp(1e-6, 1 - 1e-6),
        torch.ones(len(boxes), len(cand_idx)),
        reduction="none",
    )
    both = in_box[:, cand_idx] & in_centre[:, cand_idx]
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e5 * (~both).float()
    k_top = min(TOPK_IOU, ious.shape[1])
    dynamic_k = ious.topk(k_top, 1).values.sum(1).int().clamp(min=1)
    match = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(len(boxes)):
        k = int(min(dynamic_k[g], cost.shape[1]))
        match[g, cost[g].topk(k, largest=False).indices] = True
    multi = match.sum(0) > 1
    if multi.any():
        best = cost[:, multi].argmin(0)
        match[:, multi] = False
        match[best, multi.nonzero().squeeze(1)] = True
    anchor_fg = match.any(0)
    fg[cand_idx[anchor_fg]] = True
    matched[cand_idx[anchor_fg]] = match[:, anchor_fg].float().argmax(0)
    return fg, matched


class LossParts(dict):
    """Total loss and its parts (``iou``, ``obj``, ``cls``, ``n_fg``) as floats, plus ``total``."""


def yolox_loss(
    raw: torch.Tensor,
    grid: torch.Tensor,
    strides: torch.Tensor,
    targets: list[torch.Tensor],
) -> tuple[torch.Tensor, LossParts]:
    """The loss of a batch.

    Parameters
    ----------
    raw
        (N, A, 5 + C) undecoded network output (see :func:`~.yolox_torch.decode`).
    grid, strides
        Anchor cells (A, 2) and strides (A,).
    targets
        Per image, (G, 4) true boxes as centre/size in input pixels (G may be 0).

    Returns
    -------
    loss, parts
        Scalar to minimise, and its parts for the progress display.
    """
    centres = (grid + 0.5) * strides[:, None]
    xy = (raw[..., :2] + grid) * strides[:, None]
    wh = torch.exp(raw[..., 2:4].clamp(max=10.0)) * strides[:, None]
    pred_boxes = torch.cat([xy, wh], -1)
    obj_logit = raw[..., 4]
    cls_logit = raw[..., 5]
    obj_target = torch.zeros_like(obj_logit)
    iou_terms, cls_terms = [], []
    n_fg = 0
    for i, boxes in enumerate(targets):
        fg, matched = assign(
            boxes, pred_boxes[i].detach(), obj_logit[i].detach(), cls_logit[i].detach(),
            centres, strides,
        )  # fmt: skip
        if not fg.any():
            continue
        obj_target[i, fg] = 1.0
        iou = _aligned_iou(pred_boxes[i, fg], boxes[matched[fg]])
        iou_terms.append(1.0 - iou**2)
        cls_terms.append(
            F.binary_cross_entropy_with_logits(
                cls_logit[i, fg], iou.detach().clamp(0, 1), reduction="none"
            )
        )
        n_fg += int(fg.sum())
    norm = float(max(n_fg, 1))
    obj = F.binary_cross_entropy_with_logits(obj_logit, obj_target, reduction="sum") / norm
    if iou_terms:
        iou_loss = IOU_WEIGHT * torch.cat(iou_terms).sum() / norm
        cls_loss = torch.cat(cls_terms).sum() / norm
    else:
        iou_loss = cls_loss = raw.sum() * 0.0
    total = iou_loss + obj + cls_loss
    parts = LossParts(
        total=float(total.detach()),
        iou=float(iou_loss.detach()),
        obj=float(obj.detach()),
        cls=float(cls_loss.detach()),
        n_fg=n_fg,
    )
    return total, parts
