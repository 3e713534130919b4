"""Conv and GEMM layers as the integer matrix products an accelerator runs.

A layer becomes ``Y[N, M] = X[N, K] W[K, M] + bias`` on operands centred on
their zero points (docs/arithmetic.md: the multiplier sees ``x - x_zp`` and
``w - w_zp``), one product per group of a grouped convolution. Padding taps
hold the zero point, so their centred operand is 0, and they still pass
through the multiplier, as in the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from axc.errors import UserError
from axc.ir import Graph, Node

__all__ = ["LayerProduct", "layer_products", "linear_layers", "to_layout"]


@dataclass
class LayerProduct:
    """One matrix product of a layer (one group of a grouped convolution)."""

    node: Node
    group: int
    x: np.ndarray  # (N, K) int64, centred
    w: np.ndarray  # (K, M) int64, centred
    bias: np.ndarray  # (M,) int64
    mult: np.ndarray  # (M,) requantizer multipliers
    shift: np.ndarray  # (M,)
    zero_point: int
    qmin: int
    qmax: int
    acc_bits: int
    out_bits: int
    out_signed: bool
    images: int
    pixels: int  # output pixels per image (1 for a dense layer)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.x.shape[0], self.x.shape[1], self.w.shape[1]


def linear_layers(graph: Graph) -> list[Node]:
    return [n for n in graph.topological() if n.op in ("QConv", "QGemm")]


def _per_channel(value: Any, m: int) -> np.ndarray:
    v = np.asarray(value, np.int64).reshape(-1)
    return np.broadcast_to(v, (m,)).copy() if v.size == 1 else v


def layer_products(graph: Graph, node: Node, x: np.ndarray) -> list[LayerProduct]:
    """The products of ``node`` for its integer input ``x`` (a batch)."""
    from axc.sim.int_kernels import conv_output_shape
    from axc.sim.kernels import _pad_spatial, _windows

    attrs = node.attrs
    req = attrs["requant"]
    if req.get("mode") == "float32":
        raise UserError(
            f"layer {node.name!r} requantizes in float32 (an imported ONNX model); the "
            "systolic array's output stage is the fixed-point requantizer of docs/arithmetic.md"
        )
    w_raw = np.asarray(graph.constants[node.inputs[1]], np.int64)
    m = w_raw.shape[0]
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = (
        np.asarray(graph.constants[bias_name], np.int64).reshape(-1)
        if bias_name
        else np.zeros(m, np.int64)
    )
    zx = int(attrs["x_zero_point"])
    zw = _per_channel(attrs["w_zero_point"], m)
    w = w_raw - zw.reshape((m,) + (1,) * (w_raw.ndim - 1))
    out = graph.tensors[node.outputs[0]].dtype
    common: dict[str, Any] = {
        "mult": _per_channel(req["multiplier"], m),
        "shift": _per_channel(req["shift"], m),
        "zero_point": int(req["zero_point"]),
        "qmin": int(req["qmin"]),
        "qmax": int(req["qmax"]),
        "acc_bits": int(attrs["acc_bits"]),
        "out_bits": out.bits,
        "out_signed": out.signed,
    }
    images = x.shape[0]
    if node.op == "QGemm":
        rows = np.asarray(x, np.int64).reshape(-1, x.shape[-1]) - zx
        return [
            LayerProduct(
                node, 0, rows, np.ascontiguousarray(w.reshape(m, -1).T), bias,
                images=images, pixels=rows.shape[0] // images, **common,
            )
        ]  # fmt: skip
    if len(attrs["kernel_shape"]) != 2:
        raise UserError(f"layer {node.name!r}: the systolic backend lowers 2-D convolutions")
    padded = _pad_spatial(np.asarray(x, np.int64), attrs["pads"], zx)
    out_spatial = conv_output_shape(padded.shape, attrs)
    pixels = math.prod(out_spatial)
    group = int(attrs["group"])
    cin, mg = w.shape[1], m // group
    products = []
    for g in range(group):
        part = padded[:, g * cin : (g + 1) * cin] - zx
        view = _windows(part, attrs, out_spatial)  # (N, cin, oh, ow, kh, kw)
        cols = np.ascontiguousarray(view.transpose(0, 2, 3, 1, 4, 5)).reshape(images * pixels, -1)
        wg = w[g * mg : (g + 1) * mg].reshape(mg, -1).T
        sel = slice(g * mg, (g + 1) * mg)
        products.append(
            LayerProduct(
                node, g, cols, np.ascontiguousarray(wg), bias[sel],
                **{**common, "mult": common["mult"][sel], "shift": common["shift"][sel]},
                images=images, pixels=pixels,
            )
        )  # fmt: skip
    return products


def to_layout(product: LayerProduct, y: np.ndarray) -> np.ndarray:
    """``Y[N, M]`` of a product in the layer's output layout for its group:
    (images, M, pixels) for a convolution, (rows, M) for a dense layer."""
    if product.node.op == "QGemm":
        return y
    return y.reshape(product.images, product.pixels, -1).transpose(0, 2, 1)
