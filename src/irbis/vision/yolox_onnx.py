"""Build a YOLOX network as an ONNX graph from a numpy state dict.

The architecture follows the public YOLOX design (Ge et al., 2021): a Focus
stem, a CSPDarknet backbone with an SPP block, a PAFPN neck and a decoupled
head per stride (8, 16, 32) whose outputs are decoded on the anchor-free grid.
Every Conv+BatchNorm pair is folded into one convolution with bias, so the
exported graph contains only Conv, Sigmoid/Mul (SiLU), MaxPool, Resize,
Concat, Add and the decode arithmetic: fast on ONNX Runtime's CPU and CUDA
providers alike.

The graph takes ``images`` (N, 3, S, S) float32 in 0..255 RGB and returns
``predictions`` (N, A, 5 + C): centre x, centre y, width, height (input
pixels), objectness, per-class probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_yolox_onnx"]

_BN_EPS = 1e-3  # YOLOX sets every BatchNorm's eps to 1e-3 at construction.


class _GraphBuilder:
    """Accumulates nodes/initializers with unique names."""

    def __init__(self, state: Mapping[str, np.ndarray], prefix: str) -> None:
        self.state = state
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, array: np.ndarray, hint: str) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attrs: object) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def w(self, key: str) -> np.ndarray:
        full = self.prefix + key
        if full not in self.state:
            raise KeyError(f"checkpoint lacks {full}: not a YOLOX state dict")
        return np.asarray(self.state[full], dtype=np.float32)

    # -- blocks ----------------------------------------------------------------
    def conv_bias(self, x: str, weight: np.ndarray, bias: np.ndarray, stride: int) -> str:
        k = weight.shape[-1]
        pad = (k - 1) // 2
        return self.node(
            "Conv",
            [x, self.const(weight, "W"), self.const(bias, "B")],
            "conv",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
        )

    def base_conv(self, x: str, key: str, stride: int = 1) -> str:
        """Conv (no bias) + BatchNorm folded + SiLU.

        A state dict whose BatchNorm is already folded (``{key}.conv.bias`` and
        no ``{key}.bn.*``, as :mod:`irbis.vision.train` writes) is taken as is.
        """
        if self.prefix + f"{key}.bn.weight" not in self.state:
            y = self.conv_bias(
                x, self.w(f"{key}.conv.weight"), self.w(f"{key}.conv.bias"), stride
            )
            return self.node("Mul", [y, self.node("Sigmoid", [y], "sig")], "silu")
        w = self.w(f"{key}.conv.weight")
        gamma, beta = self.w(f"{key}.bn.weight"), self.w(f"{key}.bn.bias")
        mean, var = self.w(f"{key}.bn.running_mean"), self.w(f"{key}.bn.running_var")
        # Fold in float64 so the folded weights round only once to float32.
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + _BN_EPS)
        wf = (w.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        y = self.conv_bias(x, wf, bf, stride)
        return self.node("Mul", [y, self.node("Sigmoid", [y], "sig")], "silu")

    def bottleneck(self, x: str, key: str, shortcut: bool) -> str:
        y = self.base_conv(self.base_conv(x, f"{key}.conv1"), f"{key}.conv2")
        return self.node("Add", [y, x], "add") if shortcut else y

    def csp(self, x: str, key: str, shortcut: bool) -> str:
        n = 0
        while f"{self.prefix}{key}.m.{n}.conv1.conv.weight" in self.state:
            n += 1
        x1 = self.base_conv(x, f"{key}.conv1")
        x2 = self.base_conv(x, f"{key}.conv2")
        for i in range(n):
            # Residual add only when in == out channels, which holds inside CSP.
            x1 = self.bottleneck(x1, f"{key}.m.{i}", shortcut)
        return self.base_conv(self.node("Concat", [x1, x2], "cat", axis=1), f"{key}.conv3")

    def spp(self, x: str, key: str, kernels: tuple[int, ...] = (5, 9, 13)) -> str:
        x = self.base_conv(x, f"{key}.conv1")
        pools = [
            self.node(
                "MaxPool", [x], "pool", kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4
            )
            for k in kernels
        ]
        return self.base_conv(self.node("Concat", [x, *pools], "cat", axis=1), f"{key}.conv2")

    def upsample2(self, x: str) -> str:
        scales = self.const(np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32), "scales")
        return self.node("Resize", [x, "", scales], "up", mode="nearest")


def build_yolox_onnx(
    state: Mapping[str, np.ndarray],
    *,
    num_classes: int = 1,
    image_size: int = 640,
    strides: tuple[int, int, int] = (8, 16, 32),
    opset: int = 17,
) -> onnx.ModelProto:
    """Convert a YOLOX state dict (numpy arrays) into an ONNX model.

    Parameters
    ----------
    state
        ``model`` state dict of a YOLOX checkpoint, keys as in the reference
        implementation (``backbone.backbone.stem...``, ``head.cls_preds...``).
    num_classes
        Number of classes of the head.
    image_size
        Square network input size; fixes the decode grid.
    strides
        Output strides of the three FPN levels.
    opset
        ONNX opset to target.

    Returns
    -------
    onnx.ModelProto
        Checked model with input ``images`` and output ``predictions``.
    """
    g = _GraphBuilder(state, "")
    x = "images"
    # Focus stem: space-to-depth in the order top-left, bottom-left, top-right, bottom-right.
    patches = []
    for dy, dx in ((0, 0), (1, 0), (0, 1), (1, 1)):
        starts = g.const(np.array([dy, dx], dtype=np.int64), "st")
        ends = g.const(np.array([image_size, image_size], dtype=np.int64), "en")
        axes = g.const(np.array([2, 3], dtype=np.int64), "ax")
        steps = g.const(np.array([2, 2], dtype=np.int64), "sp")
        patches.append(g.node("Slice", [x, starts, ends, axes, steps], "focus"))
    x = g.node("Concat", patches, "cat", axis=1)
    bb = "backbone.backbone."
    x = g.base_conv(x, bb + "stem.conv")
    x = g.csp(g.base_conv(x, bb + "dark2.0", 2), bb + "dark2.1", True)
    dark3 = g.csp(g.base_conv(x, bb + "dark3.0", 2), bb + "dark3.1", True)
    dark4 = g.csp(g.base_conv(dark3, bb + "dark4.0", 2), bb + "dark4.1", True)
    x = g.spp(g.base_conv(dark4, bb + "dark5.0", 2), bb + "dark5.1")
    dark5 = g.csp(x, bb + "dark5.2", False)

    # PAFPN: top-down then bottom-up path.
    fpn0 = g.base_conv(dark5, "backbone.lateral_conv0")
    f = g.node("Concat", [g.upsample2(fpn0), dark4], "cat", axis=1)
    f = g.csp(f, "backbone.C3_p4", False)
    fpn1 = g.base_conv(f, "backbone.reduce_conv1")
    f = g.node("Concat", [g.upsample2(fpn1), dark3], "cat", axis=1)
    pan2 = g.csp(f, "backbone.C3_p3", False)
    p = g.node("Concat", [g.base_conv(pan2, "backbone.bu_conv2", 2), fpn1], "cat", axis=1)
    pan1 = g.csp(p, "backbone.C3_n3", False)
    p = g.node("Concat", [g.base_conv(pan1, "backbone.bu_conv1", 2), fpn0], "cat", axis=1)
    pan0 = g.csp(p, "backbone.C3_n4", False)

    # Decoupled head, one per level; outputs flattened to (N, 5+C, H*W).
    levels = []
    grids, stride_col = [], []
    for i, (feat, s) in enumerate(zip((pan2, pan1, pan0), strides, strict=True)):
        h = g.base_conv(feat, f"head.stems.{i}")
        c = g.base_conv(g.base_conv(h, f"head.cls_convs.{i}.0"), f"head.cls_convs.{i}.1")
        r = g.base_conv(g.base_conv(h, f"head.reg_convs.{i}.0"), f"head.reg_convs.{i}.1")
        cls = g.conv_bias(c, g.w(f"head.cls_preds.{i}.weight"), g.w(f"head.cls_preds.{i}.bias"), 1)
        reg = g.conv_bias(r, g.w(f"head.reg_preds.{i}.weight"), g.w(f"head.reg_preds.{i}.bias"), 1)
        obj = g.conv_bias(r, g.w(f"head.obj_preds.{i}.weight"), g.w(f"head.obj_preds.{i}.bias"), 1)
        out = g.node(
            "Concat",
            [reg, g.node("Sigmoid", [obj], "sig"), g.node("Sigmoid", [cls], "sig")],
            "cat",
            axis=1,
        )
        shape = g.const(np.array([0, 5 + num_classes, -1], dtype=np.int64), "shape")
        levels.append(g.node("Reshape", [out, shape], "flat"))
        n = image_size // s
        yv, xv = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xv, yv], -1).reshape(-1, 2))
        stride_col.append(np.full((n * n, 1), s))
    allp = g.node("Concat", levels, "cat", axis=2)
    allp = g.node("Transpose", [allp], "tr", perm=[0, 2, 1])  # (N, A, 5+C)

    grid = np.concatenate(grids)[None].astype(np.float32)
    stride = np.concatenate(stride_col)[None].astype(np.float32)

    def part(lo: int, hi: int) -> str:
        return g.node(
            "Slice",
            [
                allp,
                g.const(np.array([lo], dtype=np.int64), "st"),
                g.const(np.array([hi], dtype=np.int64), "en"),
                g.const(np.array([2], dtype=np.int64), "ax"),
            ],
            "part",
        )

    gconst, sconst = g.const(grid, "grid"), g.const(stride, "stride")
    xy = g.node("Mul", [g.node("Add", [part(0, 2), gconst], "add"), sconst], "xy")
    wh = g.node("Mul", [g.node("Exp", [part(2, 4)], "exp"), sconst], "wh")
    final = helper.make_node("Concat", [xy, wh, part(4, 5 + num_classes)], ["predictions"], axis=2)
    g.nodes.append(final)

    graph = helper.make_graph(
        g.nodes,
        "yolox",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["N", 3, image_size, image_size]
            )
        ],
        [
            helper.make_tensor_value_info(
                "predictions", TensorProto.FLOAT, ["N", None, 5 + num_classes]
            )
        ],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="irbis"
    )
    model.ir_version = 8  # readable by every ONNX Runtime release of the last years
    onnx.checker.check_model(model)
    return model
