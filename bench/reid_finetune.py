"""A fine-tuned ViT on the animal crops, measured leave-individuals-out (issue 16).

The encounter is the query (encounter protocol on the Tajik set: no frame is
ever matched against its own encounter). ``dinov2-s`` (the DINOv2 ViT-S/14
encoder installed as ONNX) is ported to a small PyTorch module
(:class:`ViT`, weights read from the ONNX initialisers and checked against an
ONNX Runtime run), its first blocks are frozen and run once per crop view
(cached), and the last ``--tune-blocks`` blocks plus a projection head are
fine-tuned with a supervised contrastive loss on masked crops of the
*training* cats only:

* crops: the drawn box (square, 5 % context), everything outside the dilated
  hand mask painted grey (so rock cannot carry a match), 224 px;
* views cached per crop: clean; grey with random contrast (what an infrared
  frame looks like); crop jitter (scale, shift) with colour jitter. No flips:
  a mirrored left flank is not a right flank, its rosettes are not a pattern
  of the same cat;
* embedding: class token beside the mask-weighted mean of the tuned patch
  tokens, through a linear head, unit length;
* loss: supervised contrastive (temperature 0.1); positives are frames of the
  same cat in *another* encounter (a burst's own frames are near copies and
  would teach the net to match scenes), other cats are the negatives;
  batches hold every training cat, two encounters each where it has two;
* hyper-parameters fixed in advance except the number of steps, chosen per
  fold by an inner leave-individuals-out split of that fold's training cats
  (train on two thirds of them, score the other third's encounters by
  top-1 + mAP), then the
  net is refitted on all the fold's training cats for that many steps.

Leave-individuals-out: the closed-set cats (two encounters or more) are dealt
into ``--folds`` folds exactly as ``reid_embed_rerank.py`` does; a fold's
encounters are scored against the full gallery (every other encounter) by the
net trained without the fold's cats. Rankings reported per encounter and per
frame (top-1, top-5, mAP over gallery encounters, macro top-1):

``rosette``       the default matcher (burst motion mask inside the box; the
                  ``--no-masks`` rows of ``irbis reid evaluate``);
``frozen``        the same pooled embedding from the untuned encoder;
``tuned``         the fine-tuned embedding (encounter = mean of its frames);
``local``         tuned patch tokens matched patch to patch (mutual best
                  cosine over the masks, a few frames per encounter);
``rrf_*``         reciprocal-rank fusion (k = 60) of rosette with one of them;
``pair_tuned``    the pair model of :mod:`irbis.reid.ranking` with the tuned
                  cosine as an eighth feature, fitted leave-one-individual-out
                  on out-of-fold cosines.

    .venv/bin/python bench/reid_finetune.py [--cache /tmp/reid-ft] > finetune.json

Needs ``irbis models install dinov2-s`` and the ``train`` extra (PyTorch).
The rosette matches come from ``reid_tuned.py``'s cache when
``--rosette-cache`` holds one (same crops), else they are computed (about
6 min). Prints one JSON document; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/reid/snowleopard-tajikistan"
GREY = (124, 116, 104)  # ImageNet mean colour: the encoder's "nothing here"
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


# --------------------------------------------------------------------------- the network


class Block(nn.Module):
    """One pre-norm transformer block of DINOv2 (with its layer scales)."""

    def __init__(self, dim: int = 384, heads: int = 6, mlp: int = 1536) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)
        self.ls2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``x`` (batch, n, dim); ``keep`` (batch, n) bool masks keys out."""
        b, n, d = x.shape
        h = self.norm1(x)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        mask = None if keep is None else keep[:, None, None, :]
        a = F.scaled_dot_product_attention(
            split(self.q(h)), split(self.k(h)), split(self.v(h)), attn_mask=mask
        )
        x = x + self.ls1 * self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """DINOv2-style ViT encoder: patch embedding, class token, blocks, final norm.

    Parameters
    ----------
    dim, depth, heads, mlp, patch, grid:
        Width, blocks, attention heads, MLP width, patch side (pixels) and the
        side of the stored position-embedding grid (interpolated bicubically
        to the input's grid, as the ONNX graph does).
    """

    def __init__(
        self,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp: int = 1536,
        patch: int = 14,
        grid: int = 37,
    ) -> None:
        super().__init__()
        self.patch, self.grid, self.dim = patch, grid, dim
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (batch, 3, H, W), normalised, to tokens with positions added."""
        b, _, hgt, wid = x.shape
        gh, gw = hgt // self.patch, wid // self.patch
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        grid = self.pos[:, 1:].reshape(1, self.grid, self.grid, self.dim).permute(0, 3, 1, 2)
        if (gh, gw) != (self.grid, self.grid):
            grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        pos = torch.cat([self.pos[:, :1], grid.flatten(2).transpose(1, 2)], 1)
        return torch.cat([self.cls.expand(b, -1, -1), t], 1) + pos

    def run_blocks(
        self, t: torch.Tensor, start: int, stop: int, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Tokens through blocks ``start`` .. ``stop - 1``."""
        for blk in self.blocks[start:stop]:
            t = blk(t, keep)
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final normalised tokens (batch, 1 + patches, dim), as the ONNX encoder's output."""
        return self.norm(self.run_blocks(self.embed(x), 0, len(self.blocks)))

    @staticmethod
    def from_onnx(path: Path) -> ViT:
        """The ``dinov2-s`` ONNX encoder's weights in a :class:`ViT`.

        The linear layers' weights are the MatMul initialisers (stored
        input x output), found by the name of the node that uses them.
        """
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        g = model.graph
        init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        by_node = {
            n.name: next(i for i in n.input if i in init)
            for n in g.node
            if n.op_type == "MatMul" and any(i in init for i in n.input)
        }
        depth = 1 + max(
            int(k.split(".")[3]) for k in init if k.startswith("backbone.encoder.layer.")
        )
        pos = next(v for k, v in init.items() if v.ndim == 3 and v.shape[1] > 1)
        net = ViT(depth=depth, grid=round(math.sqrt(pos.shape[1])))
        sd: dict[str, torch.Tensor] = {}

        def put(key: str, arr: np.ndarray) -> None:
            sd[key] = torch.from_numpy(np.array(arr, dtype=np.float32))

        e = "backbone.embeddings."
        put("patch_embed.weight", init[e + "patch_embeddings.projection.weight"])
        put("patch_embed.bias", init[e + "patch_embeddings.projection.bias"])
        put("cls", init[e + "cls_token"])
        # The class position and the grid are two initialisers in this graph.
        cls_pos = next(
            v for k, v in init.items() if v.shape == (1, 1, net.dim) and k != e + "cls_token"
        )
        put("pos", np.concatenate([cls_pos, pos], 1))
        put("norm.weight", init["backbone.layernorm.weight"])
        put("norm.bias", init["backbone.layernorm.bias"])
        for i in range(depth):
            p, n = f"backbone.encoder.layer.{i}.", f"/backbone/encoder/layer.{i}/"
            for ours, theirs in (("norm1", "norm1"), ("norm2", "norm2")):
                put(f"blocks.{i}.{ours}.weight", init[p + theirs + ".weight"])
                put(f"blocks.{i}.{ours}.bias", init[p + theirs + ".bias"])
            for ours, node, bias in (
                ("q", "attention/attention/query/MatMul", "attention.attention.query.bias"),
                ("k", "attention/attention/key/MatMul", "attention.attention.key.bias"),
                ("v", "attention/attention/value/MatMul", "attention.attention.value.bias"),
                ("proj", "attention/output/dense/MatMul", "attention.output.dense.bias"),
                ("fc1", "mlp/fc1/MatMul", "mlp.fc1.bias"),
                ("fc2", "mlp/fc2/MatMul", "mlp.fc2.bias"),
            ):
                put(f"blocks.{i}.{ours}.weight", init[by_node[n + node]].T)
                put(f"blocks.{i}.{ours}.bias", init[p + bias])
            put(f"blocks.{i}.ls1", init[p + "layer_scale1.lambda1"])
            put(f"blocks.{i}.ls2", init[p + "layer_scale2.lambda1"])
        net.load_state_dict(sd, strict=True)
        return net.eval()


class Head(nn.Module):
    """Tuned blocks, final norm, masked pooling and a linear projection.

    Parameters
    ----------
    vit:
        The ported encoder; its last ``tuned`` blocks and final norm are
        copied (and trained), the rest is not used here.
    tuned:
        Blocks fine-tuned.
    out:
        Embedding length.
    """

    def __init__(self, vit: ViT, tuned: int, out: int = 256) -> None:
        super().__init__()
        import copy

        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in vit.blocks[len(vit.blocks) - tuned :])
        self.norm = copy.deepcopy(vit.norm)
        self.proj = nn.Linear(2 * vit.dim, out)
        # Start at the frozen embedding: the identity when the head keeps the
        # width (step 0 is then the untuned net), a random rotation otherwise.
        with torch.no_grad():
            self.proj.bias.zero_()
            if out == 2 * vit.dim:
                self.proj.weight.copy_(torch.eye(out))
            else:
                nn.init.orthogonal_(self.proj.weight)

    def tokens(self, t: torch.Tensor) -> torch.Tensor:
        """Cached tokens through the tuned blocks and the final norm."""
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)

    def forward(self, t: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit embeddings (batch, out) and the tuned patch tokens.

        ``w`` (batch, patches) weights each patch by how much of it is cat.
        """
        z = self.tokens(t)
        patches = z[:, 1:]
        wn = w / w.sum(1, keepdim=True).clamp_min(1e-6)
        pooled = (patches * wn[..., None]).sum(1)
        emb = self.proj(torch.cat([z[:, 0], pooled], 1))
        return F.normalize(emb, dim=1), patches


# --------------------------------------------------------------------------- crops and cache


def animal_masks(anns: Sequence, boxes: dict) -> tuple[list[np.ndarray], list[str]]:
    """Per frame of one encounter: where the cat is (uint8 0/1, full frame) and from what.

    The labels' hand mask where one exists; else the burst's motion mask
    (:func:`irbis.reid.preprocess.burst_masks`, what the rosette matcher uses)
    inside the drawn box; else the drawn box itself.
    """
    import cv2
    from PIL import Image

    from irbis.reid.preprocess import burst_masks

    images = [np.asarray(Image.open(a.image).convert("RGB")) for a in anns]
    motion = burst_masks([im[:, :, ::-1] for im in images])
    out, source = [], []
    for a, im, mo in zip(anns, images, motion, strict=True):
        h, w = im.shape[:2]
        x0, y0, x1, y1 = boxes[Path(str(a.image)).name]
        inbox = np.zeros((h, w), np.uint8)
        inbox[
            max(0, int((y0 - 0.02) * h)) : int((y1 + 0.02) * h) + 1,
            max(0, int((x0 - 0.02) * w)) : int((x1 + 0.02) * w) + 1,
        ] = 1
        if a.mask is not None:
            m = Image.open(a.mask).convert("L").resize((w, h), Image.Resampling.NEAREST)
            inside = cv2.dilate((np.asarray(m) > 0).astype(np.uint8), np.ones((9, 9), np.uint8))
            src = "hand"
        elif mo is not None and (mo[inbox > 0] > 0).mean() > 0.15:
            inside = ((mo > 0) & (inbox > 0)).astype(np.uint8)
            src = "motion"
        else:
            inside, src = inbox, "box"
        out.append(inside)
        source.append(src)
    return out, source


def load_crop(
    image: np.ndarray,
    inside: np.ndarray,
    box: tuple,
    side: int,
    view: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One view of a frame's cat: (normalised CHW float32, patch weights)."""
    from PIL import Image, ImageEnhance

    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
    size = max(max((x1 - x0) * w, (y1 - y0) * h) * 1.1, 16.0)
    if view == 2:
        # Crop jitter: a tighter or looser square, shifted by up to 8 %.
        size *= float(rng.uniform(0.85, 1.1))
        cx += float(rng.uniform(-0.08, 0.08)) * size
        cy += float(rng.uniform(-0.08, 0.08)) * size
    left, top = round(cx - size / 2), round(cy - size / 2)
    rect = (left, top, left + round(size), top + round(size))
    arr = image.copy()
    arr[inside == 0] = GREY
    crop = Image.fromarray(arr).crop(rect).resize((side, side), Image.Resampling.BILINEAR)
    mcrop = Image.fromarray(inside * 255).crop(rect).resize((side, side), Image.Resampling.BILINEAR)
    if view == 1:
        # Infrared look: grey, contrast and brightness drawn at random.
        crop = crop.convert("L").convert("RGB")
        crop = ImageEnhance.Contrast(crop).enhance(float(rng.uniform(0.7, 1.4)))
        crop = ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.7, 1.3)))
    elif view == 2:
        crop = ImageEnhance.Color(crop).enhance(float(rng.uniform(0.5, 1.5)))
        crop = ImageEnhance.Contrast(crop).enhance(float(rng.uniform(0.8, 1.25)))
    x = (np.asarray(crop, np.float32) - MEAN) / STD
    g = side // 14
    pw = np.asarray(mcrop, np.float32).reshape(g, 14, g, 14).mean((1, 3)).ravel() / 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)), pw


def build_cache(
    anns: Sequence,
    boxes: dict,
    vit: ViT,
    side: int,
    frozen: int,
    views: int,
    path: Path | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Tokens after the frozen blocks per view and frame (float16), patch weights, mask sources.

    Views: 0 clean, 1 infrared look, 2 crop and colour jitter (:func:`load_crop`).
    """
    if path is not None and path.with_suffix(".npz").exists():
        d = np.load(path.with_suffix(".npz"))
        return d["tokens"], d["weights"], [str(s) for s in d["source"]]
    rng = np.random.default_rng(0)
    g = side // 14
    tokens = np.zeros((views, len(anns), 1 + g * g, vit.dim), np.float16)
    weights = np.zeros((views, len(anns), g * g), np.float32)
    source = [""] * len(anns)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(anns):
        groups[str(a.encounter)].append(i)
    t0 = time.perf_counter()
    done = 0
    for members in groups.values():
        from PIL import Image

        masks, src = animal_masks([anns[i] for i in members], boxes)
        for s in range(0, len(members), 6):
            rows = members[s : s + 6]
            items, where = [], []
            for k, r in enumerate(rows):
                img = np.asarray(Image.open(anns[r].image).convert("RGB"))
                box = boxes[Path(str(anns[r].image)).name]
                source[r] = src[s + k]
                for v in range(views):
                    items.append(load_crop(img, masks[s + k], box, side, v, rng))
                    where.append((v, r))
            x = torch.from_numpy(np.stack([i[0] for i in items]))
            with torch.inference_mode():
                t = vit.run_blocks(vit.embed(x), 0, frozen).numpy().astype(np.float16)
            for j, (v, r) in enumerate(where):
                tokens[v, r] = t[j]
                weights[v, r] = items[j][1]
        done += len(members)
        print(
            f"cached {done}/{len(anns)}: {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path.with_suffix(".npz"), tokens=tokens, weights=weights, source=np.array(source))
    return tokens, weights, source


# --------------------------------------------------------------------------- training


def gather(
    tokens: np.ndarray,
    weights: np.ndarray,
    rows: Sequence[int],
    views: Sequence[int],
    cap: int | None,
    rng: np.random.Generator | None,
    min_w: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class token + the patches on the cat, padded to one length.

    Only patches at least ``min_w`` cat are kept (the tuned blocks attend over
    the animal alone, which is also what makes a step cheap); ``cap`` keeps a
    random subset of at most that many (training).

    Returns
    -------
    tokens (b, 1 + n, d) float32, keep (b, 1 + n) bool, patch weights (b, n)
    """
    picks = []
    for r, v in zip(rows, views, strict=True):
        w = weights[v, r]
        idx = np.flatnonzero(w >= min_w)
        if idx.size < 8:  # a sliver of cat: its best patches anyway
            idx = np.argsort(-w)[:8]
        if cap is not None and idx.size > cap and rng is not None:
            idx = np.sort(rng.choice(idx, cap, replace=False))
        picks.append(idx)
    n = max(p.size for p in picks)
    b, d = len(picks), tokens.shape[-1]
    out = np.zeros((b, 1 + n, d), np.float32)
    keep = np.zeros((b, 1 + n), bool)
    pw = np.zeros((b, n), np.float32)
    for j, (r, v, idx) in enumerate(zip(rows, views, picks, strict=True)):
        out[j, 0] = tokens[v, r, 0]
        out[j, 1 : 1 + idx.size] = tokens[v, r, 1 + idx]
        keep[j, : 1 + idx.size] = True
        pw[j, : idx.size] = weights[v, r, idx]
    return torch.from_numpy(out), torch.from_numpy(keep), torch.from_numpy(pw)


def head_forward(
    head: Head, t: torch.Tensor, keep: torch.Tensor, pw: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`Head.forward` with padded tokens masked out of attention and pooling."""
    z = t
    for blk in head.blocks:
        z = blk(z, keep)
    z = head.norm(z)
    patches = z[:, 1:]
    wn = pw / pw.sum(1, keepdim=True).clamp_min(1e-6)
    pooled = (patches * wn[..., None]).sum(1)
    emb = head.proj(torch.cat([z[:, 0], pooled], 1))
    return F.normalize(emb, dim=1), patches


def supcon(emb: torch.Tensor, cat: np.ndarray, enc: np.ndarray, temp: float) -> torch.Tensor:
    """Supervised contrastive loss; positives: the same cat in another encounter.

    Pairs from one encounter (near-identical burst frames) are neither
    positives nor negatives: they would only teach the net the scene.
    """
    sim = emb @ emb.T / temp
    c = torch.from_numpy(cat)
    e = torch.from_numpy(enc)
    same_cat = c[:, None] == c[None, :]
    same_enc = e[:, None] == e[None, :]
    pos = same_cat & ~same_enc
    valid = ~same_enc  # the denominator: everything outside the own encounter
    logits = sim.masked_fill(~valid, -1e9)
    log_prob = logits - torch.logsumexp(logits, 1, keepdim=True)
    has = pos.any(1)
    if not bool(has.any()):
        return sim.sum() * 0.0
    per = (log_prob * pos).sum(1)[has] / pos.sum(1)[has]
    return -per.mean()


def batch_rows(
    by_cat: dict[str, dict[str, list[int]]], rng: np.random.Generator, per_enc: int = 2
) -> tuple[list[int], list[int]]:
    """Every training cat, two of its encounters (one if it has one), ``per_enc`` frames each."""
    rows: list[int] = []
    for encs in by_cat.values():
        keys = list(encs)
        chosen = rng.choice(len(keys), min(2, len(keys)), replace=False)
        for k in chosen:
            frames = encs[keys[int(k)]]
            rows += [int(r) for r in rng.choice(frames, per_enc, replace=len(frames) < per_enc)]
    views = [int(v) for v in rng.integers(0, 3, len(rows))]
    return rows, views


def embed_all(
    head: Head, tokens: np.ndarray, weights: np.ndarray, n: int, keep_patches: bool = False
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Embeddings of every frame's clean view (and its tuned patch tokens if asked)."""
    embs = np.zeros((n, head.proj.out_features), np.float32)
    patches: list[np.ndarray] | None = [] if keep_patches else None
    head.eval()
    with torch.inference_mode():
        for s in range(0, n, 32):
            rows = list(range(s, min(n, s + 32)))
            t, keep, pw = gather(tokens, weights, rows, [0] * len(rows), None, None)
            emb, p = head_forward(head, t, keep, pw)
            embs[s : s + len(rows)] = emb.numpy()
            if patches is not None:
                pn = F.normalize(p, dim=-1).numpy().astype(np.float16)
                for j in range(len(rows)):
                    patches.append(pn[j, : int(keep[j].sum()) - 1])
    return embs, patches


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def encounter_means(embs: np.ndarray, enc: Sequence[str]) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(enc):
        rows[e].append(i)
    return {e: unit(embs[r].mean(0)) for e, r in rows.items()}


def inner_top1(
    embs: np.ndarray, enc: Sequence[str], ind: Sequence[str], pool: set[str], queries: set[str]
) -> float:
    """Encounter top-1 + mAP within ``pool`` cats (mAP smooths a top-1 over a few queries)."""
    from irbis.reid.evaluate import average_precision

    rows = [i for i, k in enumerate(ind) if k in pool]
    means = encounter_means(embs[rows], [enc[i] for i in rows])
    who = {enc[i]: ind[i] for i in rows}
    keys = sorted(means)
    m = np.stack([means[k] for k in keys])
    sim = m @ m.T
    hits, aps = [], []
    for a, q in enumerate(keys):
        if who[q] not in queries:
            continue
        others = [b for b in np.argsort(-sim[a]) if b != a]
        rel = np.array([who[keys[b]] == who[q] for b in others])
        if not rel.any():
            continue
        hits.append(bool(rel[0]))
        aps.append(average_precision(rel, int(rel.sum())))
    return float(np.mean(hits) + np.mean(aps)) if hits else 0.0


def train_head(
    vit: ViT,
    tokens: np.ndarray,
    weights: np.ndarray,
    train_rows: Sequence[int],
    enc: Sequence[str],
    ind: Sequence[str],
    args: argparse.Namespace,
    steps: int,
    seed: int,
    monitor: tuple[set[str], set[str]] | None = None,
) -> tuple[Head, list[tuple[int, float]]]:
    """Fine-tune a :class:`Head` on ``train_rows`` for ``steps`` steps.

    ``monitor`` (pool cats, query cats) scores the clean embeddings every
    ``args.eval_every`` steps (inner validation); the scores come back.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = Head(vit, args.tune_blocks, args.dim)
    by_cat: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in train_rows:
        by_cat[ind[r]][enc[r]].append(r)
    cat_id = {k: i for i, k in enumerate(sorted(set(ind)))}
    enc_id = {k: i for i, k in enumerate(sorted(set(enc)))}
    opt = torch.optim.AdamW(
        [
            {"params": [p for b in head.blocks for p in b.parameters()], "lr": args.lr},
            {"params": head.norm.parameters(), "lr": args.lr},
            {"params": head.proj.parameters(), "lr": args.lr * 10},
        ],
        weight_decay=1e-4,
    )
    scores: list[tuple[int, float]] = []

    def check(step: int) -> None:
        if monitor is None:
            return
        embs, _ = embed_all(head, tokens, weights, len(ind))
        scores.append((step, round(inner_top1(embs, enc, ind, *monitor), 4)))

    check(0)
    for step in range(1, steps + 1):
        head.train()
        rows, views = batch_rows(by_cat, rng)
        t, keep, pw = gather(tokens, weights, rows, views, args.cap, rng)
        emb, _ = head_forward(head, t, keep, pw)
        loss = supcon(
            emb,
            np.array([cat_id[ind[r]] for r in rows]),
            np.array([enc_id[enc[r]] for r in rows]),
            args.temp,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0:
            check(step)
    return head, scores


# --------------------------------------------------------------------------- rankings


def by_similarity(sims: dict[str, float], ind_of: dict[str, str]) -> tuple[list[str], list[str]]:
    """Gallery encounters by similarity; an individual scores its best encounter."""
    order = sorted(sims, key=lambda g: (-sims[g], g))
    seen: dict[str, None] = {}
    for g in order:
        seen.setdefault(ind_of[g], None)
    return list(seen), order


def local_scores(
    query: Sequence[np.ndarray], gallery: dict[str, list[np.ndarray]]
) -> dict[str, float]:
    """Patch-to-patch similarity of a query's frames to each gallery encounter's.

    A pair of frames scores the mean, over both directions, of each patch's
    best cosine in the other frame; an encounter scores its best frame pair.
    All gallery patches are stacked so one product per query frame does it.
    """
    keys, segs, starts, pos = [], [], [], 0
    for g, frames in gallery.items():
        for fr in frames:
            keys.append(g)
            segs.append(fr)
            starts.append(pos)
            pos += fr.shape[0]
    big = torch.from_numpy(np.concatenate(segs).astype(np.float32))
    lengths = np.diff(np.append(starts, pos))
    best: dict[str, float] = {}
    for q in query:
        s = (torch.from_numpy(q.astype(np.float32)) @ big.T).numpy()
        fwd = np.maximum.reduceat(s, starts, axis=1).mean(0)
        bwd = np.add.reduceat(s.max(0), starts) / lengths
        for g, v in zip(keys, 0.5 * (fwd + bwd), strict=True):
            best[g] = max(best.get(g, -1.0), float(v))
    return best


def spaced(rows: Sequence[int], k: int) -> list[int]:
    """At most ``k`` evenly spaced members of ``rows``."""
    if len(rows) <= k:
        return list(rows)
    return [rows[int(j)] for j in np.linspace(0, len(rows) - 1, k).round().astype(int)]


def main() -> None:
    from irbis.reid import EvalOptions, read_labels
    from irbis.reid.annotations import attach_boxes, read_boxes
    from irbis.reid.ranking import fit_pair_model, rank_individuals
    from irbis.reid.ranking_eval import (
        SurveyMatches,
        _figures,
        collect_matches,
        rrf,
        training_pairs,
        unit_queries,
    )
    from irbis.vision.registry import require

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--side", type=int, default=224)
    ap.add_argument("--tune-blocks", type=int, default=1, help="last blocks fine-tuned")
    ap.add_argument("--dim", type=int, default=768, help="embedding length")
    ap.add_argument("--steps", type=int, default=150, help="most steps tried (inner split)")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--temp", type=float, default=0.1)
    ap.add_argument("--cap", type=int, default=96, help="patches per crop in a training step")
    ap.add_argument("--local-frames", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/reid-ft"))
    ap.add_argument("--rosette-cache", type=Path, default=Path("/tmp/reid-tuned"))
    args = ap.parse_args()
    if not (args.data / "boxes.csv").exists():
        sys.exit(f"no boxes.csv under {args.data} (see ../shared/data/README.md)")
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    boxes = read_boxes(args.data / "boxes.csv")
    with_masks = read_labels(args.data / "labels.csv")
    # The rosette rows use the burst motion mask inside the box (reid_tuned.py's default).
    anns, _ = attach_boxes([replace(a, mask=None) for a in with_masks], boxes)
    cache = args.rosette_cache / "matches_motion.json"
    t0 = time.perf_counter()
    if cache.exists():
        sm = SurveyMatches.from_dict(json.loads(cache.read_text()))
    else:
        from irbis.reid.evaluate import extract_all

        feats, _ = extract_all(anns, EvalOptions())
        sm = collect_matches(anns, feats)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(sm.as_dict()))
    rosette_s = time.perf_counter() - t0
    enc = [str(e) for e in sm.encounter]
    ind = [str(k) for k in sm.individual]
    if len(enc) != len(with_masks) or enc != [str(a.encounter) for a in with_masks]:
        sys.exit(f"{cache}: not the matches of {args.data}; delete it and run again")
    ind_of = sm.encounter_individual()

    model = require("dinov2-s")
    vit = ViT.from_onnx(model.path)
    for p in vit.parameters():
        p.requires_grad_(False)
    # The port must reproduce the ONNX encoder before anything is learned from it.
    import onnxruntime as ort
    from PIL import Image

    rng0 = np.random.default_rng(0)
    first = with_masks[0]
    m0, _ = animal_masks([first], boxes)
    img0 = np.asarray(Image.open(first.image).convert("RGB"))
    x0, _ = load_crop(img0, m0[0], boxes[Path(str(first.image)).name], args.side, 0, rng0)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(model.path), so)
    ref = sess.run(None, {sess.get_inputs()[0].name: x0[None]})[0]
    with torch.inference_mode():
        ours = vit(torch.from_numpy(x0[None])).numpy()
    port_err = float(np.abs(ref - ours).max())
    del sess
    print(f"port vs ONNX: max |diff| {port_err:.2e}", file=sys.stderr, flush=True)
    if port_err > 1e-3:
        sys.exit(
            f"the PyTorch port differs from {model.path} by {port_err}: not the expected graph"
        )

    frozen = len(vit.blocks) - args.tune_blocks
    t0 = time.perf_counter()
    tokens, weights, mask_source = build_cache(
        with_masks,
        boxes,
        vit,
        args.side,
        frozen,
        3,
        args.cache / f"tokens_{args.side}_{frozen}",
    )
    cache_s = time.perf_counter() - t0

    n_enc = Counter(ind_of.values())
    closed = sorted(k for k, v in n_enc.items() if v >= 2)
    order = list(np.random.default_rng(0).permutation(closed))
    folds = [sorted(str(c) for c in order[i :: args.folds]) for i in range(args.folds)]
    fold_of = {c: f for f, fold in enumerate(folds) for c in fold}

    frozen_embs, frozen_patches = embed_all(
        Head(vit, args.tune_blocks, 2 * vit.dim), tokens, weights, len(enc), keep_patches=True
    )
    fold_embs: list[np.ndarray] = []
    fold_patches: list[list[np.ndarray]] = []
    fold_info = []
    t0 = time.perf_counter()
    for f, fold in enumerate(folds):
        held = set(fold)
        train_cats = sorted(set(ind) - held)
        closed_train = [c for c in closed if c not in held]
        # Inner split: a third of the training cats (two encounters or more) is
        # scored by a net trained on the rest; nothing of the fold is seen.
        inner_rng = np.random.default_rng(100 + f)
        inner_val = set(
            str(c)
            for c in inner_rng.choice(closed_train, max(1, len(closed_train) // 3), replace=False)
        )
        inner_rows = [i for i, k in enumerate(ind) if k in set(train_cats) - inner_val]
        _, curve = train_head(
            vit,
            tokens,
            weights,
            inner_rows,
            enc,
            ind,
            args,
            args.steps,
            seed=f,
            monitor=(set(train_cats), inner_val),
        )
        best_step = max(curve, key=lambda sc: (sc[1], -sc[0]))[0]
        rows = [i for i, k in enumerate(ind) if k in set(train_cats)]
        head, _ = train_head(vit, tokens, weights, rows, enc, ind, args, best_step, seed=10 + f)
        embs, patches = embed_all(head, tokens, weights, len(enc), keep_patches=True)
        fold_embs.append(embs)
        fold_patches.append(patches or [])
        fold_info.append(
            {
                "held_out": fold,
                "inner_validation_cats": sorted(inner_val),
                "inner_curve_step_top1": curve,
                "steps_chosen": best_step,
            }
        )
        print(
            f"fold {f} {fold}: inner {curve} -> {best_step} steps "
            f"({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    train_s = time.perf_counter() - t0

    out: dict = {
        "data": str(args.data),
        "protocol": (
            "encounter; leave-individuals-out folds; steps chosen on an inner split of "
            "each fold's training cats; no query matched against its own encounter"
        ),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "port_max_abs_diff_vs_onnx": port_err,
        "crop_masks": dict(Counter(mask_source)),
        "folds": fold_info,
        "seconds": {
            "rosette": round(rosette_s, 1),
            "cache": round(cache_s, 1),
            "train": round(train_s, 1),
        },
    }
    enc_rows: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(enc):
        enc_rows[e].append(i)
    frozen_means = encounter_means(frozen_embs, enc)
    fold_means = [encounter_means(e, enc) for e in fold_embs]
    for unit_name in ("encounter", "frame"):
        queries = [q for q in unit_queries(sm, unit_name) if q.closed]
        ranked: dict[str, dict] = defaultdict(dict)
        cos_col: dict[str, np.ndarray] = {}
        for q in queries:
            f = fold_of[q.truth]
            rows = enc_rows[q.key] if unit_name == "encounter" else [int(q.key)]
            for name, embs, patches, means in (
                ("frozen", frozen_embs, frozen_patches, frozen_means),
                ("tuned", fold_embs[f], fold_patches[f], fold_means[f]),
            ):
                qv = unit(embs[rows].mean(0))
                sims = {g: float(qv @ means[g]) for g in q.gallery}
                ranked[name][q.key] = by_similarity(sims, ind_of)
                if name == "tuned":
                    cos_col[q.key] = np.array([sims[g] for g in q.gallery])
                    qp = [patches[r] for r in spaced(rows, args.local_frames)]
                    loc = local_scores(
                        qp,
                        {
                            g: [patches[r] for r in spaced(enc_rows[g], args.local_frames)]
                            for g in q.gallery
                        },
                    )
                    ranked["local"][q.key] = by_similarity(loc, ind_of)
            ranked["rosette"][q.key] = (q.default_individuals, q.default_encounters)
            for name in ("frozen", "tuned", "local"):
                ranked[f"rrf_{name}"][q.key] = (
                    rrf(q.default_individuals, ranked[name][q.key][0]),
                    rrf(q.default_encounters, ranked[name][q.key][1]),
                )
        # The pair model with the out-of-fold tuned cosine as an eighth feature,
        # fitted without the query's cat (as reid_tuned.py's "tuned").
        aug = [replace(q, x=np.column_stack([q.x, cos_col[q.key]])) for q in queries]
        for label, qs in (("pair", queries), ("pair_tuned", aug)):
            for cat in closed:
                x, y = training_pairs(qs, ind_of, {cat})
                model_c = fit_pair_model(x, y)
                for q in qs:
                    if q.truth == cat:
                        ranked[label][q.key] = rank_individuals(
                            model_c.logit(q.x), q.gallery, ind_of
                        )
        out[unit_name] = {name: _figures(r, queries, ind_of) for name, r in ranked.items()}
        for name, r in out[unit_name].items():
            print(
                unit_name,
                name,
                {k: r[k] for k in ("queries", "top1", "top5", "mAP", "macro_top1")},
                file=sys.stderr,
                flush=True,
            )
    out["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
