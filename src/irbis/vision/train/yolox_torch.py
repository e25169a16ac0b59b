"""YOLOX in PyTorch with BatchNorm folded, for fine-tuning an installed detector.

The network is the one :mod:`irbis.vision.yolox_onnx` writes as ONNX (Focus
stem, CSPDarknet with SPP, PAFPN, decoupled head), with every BatchNorm already
folded into its convolution. That is what a fine-tune on a laptop wants:
batches of a few images would give BatchNorm statistics worth nothing, and a
frozen BatchNorm is an affine map that a convolution's weight and bias already
are. Starting weights are read back from any irbis YOLOX ONNX file (the
``mdlite`` detector or a survey-tuned version), and a trained network is
written back through the same ONNX builder, so the tuned model has exactly the
graph, speed and pre/post-processing of its parent.

Module names follow the reference checkpoint's keys (``backbone.backbone.
dark3.1.m.0.conv1.conv.weight``, ``head.cls_preds.0.bias``) so the ONNX
builder reads a state dict of this module directly.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from irbis.vision.yolox_onnx import build_yolox_onnx

__all__ = ["YoloxTorch", "export_onnx", "from_onnx"]

STRIDES = (8, 16, 32)


class BaseConv(nn.Module):
    """Convolution (BatchNorm folded into its bias) followed by SiLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(self.conv(x))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1 = BaseConv(c, c, 1)
        self.conv2 = BaseConv(c, c, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    def __init__(self, cin: int, cout: int, n: int, shortcut: bool) -> None:
        super().__init__()
        hidden = cout // 2
        self.conv1 = BaseConv(cin, hidden, 1)
        self.conv2 = BaseConv(cin, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, shortcut) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], 1))


class SPP(nn.Module):
    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)
        self.conv2 = BaseConv(hidden * (len(kernels) + 1), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(p(x) for p in self.pools)], 1))


class Focus(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same order as the ONNX graph: top-left, bottom-left, top-right, bottom-right.
        return self.conv(
            torch.cat(
                [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1
            )
        )


class CSPDarknet(nn.Module):
    def __init__(self, c: int, n: int) -> None:
        super().__init__()
        self.stem = Focus(3, c)
        self.dark2 = nn.Sequential(BaseConv(c, 2 * c, 3, 2), CSPLayer(2 * c, 2 * c, n, True))
        self.dark3 = nn.Sequential(
            BaseConv(2 * c, 4 * c, 3, 2), CSPLayer(4 * c, 4 * c, 3 * n, True)
        )
        self.dark4 = nn.Sequential(
            BaseConv(4 * c, 8 * c, 3, 2), CSPLayer(8 * c, 8 * c, 3 * n, True)
        )
        self.dark5 = nn.Sequential(
            BaseConv(8 * c, 16 * c, 3, 2), SPP(16 * c, 16 * c), CSPLayer(16 * c, 16 * c, n, False)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dark2(self.stem(x))
        d3 = self.dark3(x)
        d4 = self.dark4(d3)
        return d3, d4, self.dark5(d4)


class PAFPN(nn.Module):
    def __init__(self, c: int, n: int) -> None:
        super().__init__()
        c3, c4, c5 = 4 * c, 8 * c, 16 * c
        self.backbone = CSPDarknet(c, n)
        self.lateral_conv0 = BaseConv(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False)
        self.reduce_conv1 = BaseConv(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False)
        self.bu_conv2 = BaseConv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False)
        self.bu_conv1 = BaseConv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        up = nn.functional.interpolate
        d3, d4, d5 = self.backbone(x)
        fpn0 = self.lateral_conv0(d5)
        f = self.C3_p4(torch.cat([up(fpn0, scale_factor=2.0, mode="nearest"), d4], 1))
        fpn1 = self.reduce_conv1(f)
        pan2 = self.C3_p3(torch.cat([up(fpn1, scale_factor=2.0, mode="nearest"), d3], 1))
        pan1 = self.C3_n3(torch.cat([self.bu_conv2(pan2), fpn1], 1))
        pan0 = self.C3_n4(torch.cat([self.bu_conv1(pan1), fpn0], 1))
        return pan2, pan1, pan0


class Head(nn.Module):
    def __init__(self, c: int, num_classes: int, hidden: int) -> None:
        super().__init__()
        ins = (4 * c, 8 * c, 16 * c)
        self.stems = nn.ModuleList(BaseConv(i, hidden, 1) for i in ins)
        self.cls_convs = nn.ModuleList(
            nn.Sequential(BaseConv(hidden, hidden, 3), BaseConv(hidden, hidden, 3)) for _ in ins
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(BaseConv(hidden, hidden, 3), BaseConv(hidden, hidden, 3)) for _ in ins
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in ins)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in ins)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in ins)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        outs = []
        for i, f in enumerate(feats):
            h = self.stems[i](f)
            r = self.reg_convs[i](h)
            outs.append(
                torch.cat(
                    [
                        self.reg_preds[i](r),
                        self.obj_preds[i](r),
                        self.cls_preds[i](self.cls_convs[i](h)),
                    ],
                    1,
                )
            )
        return outs


class YoloxTorch(nn.Module):
    """YOLOX with folded BatchNorm. ``forward`` returns raw per-level maps.

    Parameters
    ----------
    base_channels
        Stem width (YOLOX-tiny: 24); the levels have 4×, 8× and 16× this.
    depth
        Bottlenecks per CSP block of the shallow stages (YOLOX-tiny: 1).
    num_classes
        Classes of the head.
    head_width
        Channels of the head's convolutions (YOLOX-tiny: 96).
    """

    def __init__(
        self, base_channels: int = 24, depth: int = 1, num_classes: int = 1, head_width: int = 96
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = PAFPN(base_channels, depth)
        self.head = Head(base_channels, num_classes, head_width)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Raw head outputs per stride: (N, 4 + 1 + C, H/s, W/s), regression undecoded."""
        return self.head(self.backbone(images))


def decode(outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flatten per-level maps to (N, A, 5 + C) raw values, with anchor grid and strides.

    Returns
    -------
    raw, grid, stride
        ``raw`` keeps logits; ``grid`` (A, 2) the cell of each anchor (x, y);
        ``stride`` (A,) its stride, in the ONNX graph's anchor order.
    """
    flat, grids, strides = [], [], []
    for out, s in zip(outputs, STRIDES, strict=True):
        n, c, h, w = out.shape
        flat.append(out.reshape(n, c, h * w))
        yv, xv = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grids.append(torch.stack([xv, yv], -1).reshape(-1, 2))
        strides.append(torch.full((h * w,), float(s)))
    raw = torch.cat(flat, 2).permute(0, 2, 1)
    return raw, torch.cat(grids).float(), torch.cat(strides)


def _conv_key_order(model: YoloxTorch, image_size: int) -> list[str]:
    """Keys of the convolution weights in the order the ONNX builder emits Conv nodes."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}

    class Recorder(dict):
        order: list[str]

        def __getitem__(self, key: str) -> np.ndarray:
            self.order.append(key)
            return super().__getitem__(key)

    rec = Recorder(state)
    rec.order = []
    build_yolox_onnx(rec, num_classes=model.num_classes, image_size=image_size)
    return [k for k in rec.order if k.endswith(".weight")]


def from_onnx(proto: onnx.ModelProto, image_size: int = 640) -> YoloxTorch:
    """A trainable network holding the weights of an irbis YOLOX ONNX graph.

    Raises
    ------
    ValueError
        The graph is not one :func:`~irbis.vision.yolox_onnx.build_yolox_onnx` wrote
        for a YOLOX-tiny shaped network (shapes differ).
    """
    inits = {i.name: i for i in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    first = numpy_helper.to_array(inits[convs[0].input[1]])
    base = first.shape[0]
    head_in = numpy_helper.to_array(inits[convs[-1].input[1]]).shape[1]
    # The class head is the first of the last level's three 1×1 predictions.
    num_classes = numpy_helper.to_array(inits[convs[-3].input[1]]).shape[0]
    n_convs = len(convs)
    # A depth-1 network has 83 convolutions; each extra bottleneck per shallow
    # CSP adds convolutions, which this fine-tuner does not handle.
    if n_convs != 83:
        raise ValueError(f"{n_convs} convolutions: not a YOLOX-tiny graph written by irbis")
    model = YoloxTorch(base_channels=base, depth=1, num_classes=num_classes, head_width=head_in)
    keys = _conv_key_order(model, image_size)
    if len(keys) != n_convs:
        raise ValueError("the ONNX graph's convolutions do not match the network")
    state = model.state_dict()
    new = {}
    for key, node in zip(keys, convs, strict=True):
        w = numpy_helper.to_array(inits[node.input[1]])
        b = numpy_helper.to_array(inits[node.input[2]])
        if tuple(state[key].shape) != w.shape:
            raise ValueError(f"{key}: shape {w.shape} in the graph, {tuple(state[key].shape)} here")
        new[key] = torch.from_numpy(w.copy())
        new[key[: -len("weight")] + "bias"] = torch.from_numpy(b.copy())
    model.load_state_dict(new)
    return model


def export_onnx(model: YoloxTorch, image_size: int = 640) -> onnx.ModelProto:
    """The network as an ONNX graph identical in form to its parent's."""
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return build_yolox_onnx(state, num_classes=model.num_classes, image_size=image_size)
