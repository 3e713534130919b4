"""Fusing ONNX QDQ patterns into axc's integer ops.

A QDQ model (what onnxruntime's ``quantize_static`` writes) keeps float ops
between DequantizeLinear and QuantizeLinear nodes. Import turns those into
Dequantize/Quantize nodes and folds dequantized constants to floats while
remembering their integers. This pass then rewrites

* ``Dequantize -> Conv/Gemm (dequantized weights and bias) -> Quantize`` into
  QConv/QGemm on the integers, with the requantizer onnxruntime uses for the
  fused QLinearConv: ``round_half_even(float32(acc) * s) + zero_point`` with
  ``s = float32(float32(x_scale * w_scale) / y_scale)`` (docs/arithmetic.md);
* ``Dequantize -> data movement -> Quantize`` with equal parameters on both
  sides into the same op on integers (exact: the scale is positive, so order
  and values are preserved).

What does not match a pattern stays float between Dequantize and Quantize,
exactly as the model says.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from axc.arith.requant import float32_requantizer
from axc.ir import ElemType, Graph, Node, QuantParams
from axc.ir.types import TensorInfo

__all__ = ["fuse_qdq"]

Record = tuple[np.ndarray, np.ndarray, np.ndarray, int | None]

_MOVES = (
    "MaxPool",
    "Reshape",
    "Transpose",
    "Slice",
    "Split",
    "Gather",
    "Identity",
    "Pad",
    "Concat",
)


def _single_quantize(graph: Graph, tensor: str) -> Node | None:
    users = graph.consumers(tensor)
    if len(users) != 1 or users[0].op != "Quantize" or tensor in graph.outputs:
        return None
    q = users[0]
    return q if q.attrs.get("axis") is None else None


def _dequantize_of(graph: Graph, tensor: str) -> Node | None:
    node = graph.producer(tensor)
    if node is None or node.op != "Dequantize" or node.attrs.get("axis") is not None:
        return None
    return node


def _same_params(a: Node, b: Node) -> bool:
    return a.attrs["scale"] == b.attrs["scale"] and a.attrs["zero_point"] == b.attrs["zero_point"]


def _replace(
    graph: Graph, old: list[Node], new: Node, dtype: ElemType, quant: tuple[float, int]
) -> None:
    out = new.outputs[0]
    for node in old:
        graph.remove_node(node.name)
    info = graph.tensors[out]
    graph.tensors[out] = TensorInfo(out, info.shape, dtype, QuantParams((quant[0],), (quant[1],)))
    graph.add_node(new)


def _params(scale: np.ndarray, zero: np.ndarray) -> QuantParams:
    """Per tensor, or per output channel (axis 0)."""
    scales = tuple(float(v) for v in np.asarray(scale, np.float32).reshape(-1))
    zeros = tuple(int(v) for v in np.asarray(zero).reshape(-1))
    if len(scales) == 1 and len(zeros) == 1:
        return QuantParams(scales, zeros, None)
    n = max(len(scales), len(zeros))
    return QuantParams(scales * (n // len(scales)), zeros * (n // len(zeros)), 0)


def _fuse_linear(graph: Graph, node: Node, records: dict[str, Record]) -> bool:
    if node.op == "Gemm" and (
        node.attrs["trans_a"]
        or not node.attrs["trans_b"]
        or node.attrs["alpha"] != 1.0
        or node.attrs["beta"] != 1.0
    ):
        return False
    d = _dequantize_of(graph, node.inputs[0])
    q = _single_quantize(graph, node.outputs[0])
    weight = records.get(node.inputs[1])
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = records.get(bias_name) if bias_name else None
    if d is None or q is None or weight is None or (bias_name and bias is None):
        return False
    wq, w_scale, w_zero, w_axis = weight
    if w_axis not in (None, 0) or wq.dtype.kind not in "iu":
        return False
    if bias is not None and (np.any(bias[2] != 0) or bias[0].dtype != np.int32):
        return False
    x_scale = np.float32(d.attrs["scale"][0])
    y_scale = np.float32(q.attrs["scale"][0])
    scale = (x_scale * w_scale.astype(np.float32)).astype(np.float32) / y_scale
    zero = int(q.attrs["zero_point"][0])
    qmin, qmax = int(q.attrs["qmin"]), int(q.attrs["qmax"])
    if node.attrs.get("activation") == "relu":
        qmin = max(qmin, zero)
    weight_name = graph.add_constant(graph.unique_name(f"{node.name}.weight_q"), wq)
    graph.tensors[weight_name].quant = _params(w_scale, w_zero)
    inputs = [d.inputs[0], weight_name]
    if bias is not None:
        inputs.append(graph.add_constant(graph.unique_name(f"{node.name}.bias_q"), bias[0]))
    w_zero_points = tuple(int(z) for z in np.asarray(w_zero).reshape(-1))
    attrs: dict[str, Any] = {
        "x_zero_point": int(d.attrs["zero_point"][0]),
        "w_zero_point": w_zero_points if len(set(w_zero_points)) > 1 else w_zero_points[:1],
        "acc_bits": 32,
        "requant": float32_requantizer(scale, zero, qmin, qmax),
    }
    if node.op == "Conv":
        keys = ("kernel_shape", "strides", "pads", "dilations", "group")
        attrs = {**{k: node.attrs[k] for k in keys}, **attrs}
    new = Node(node.name, "QConv" if node.op == "Conv" else "QGemm", inputs, list(q.outputs), attrs)
    _replace(graph, [node, q], new, graph.tensors[q.outputs[0]].dtype, (float(y_scale), zero))
    return True


def _fuse_move(graph: Graph, node: Node) -> bool:
    sources = [
        _dequantize_of(graph, t)
        for t in node.inputs[: 1 if node.op != "Concat" else len(node.inputs)]
    ]
    if any(s is None for s in sources) or len(node.outputs) != 1:
        return False
    q = _single_quantize(graph, node.outputs[0])
    if q is None or not all(_same_params(s, q) for s in sources):  # type: ignore[arg-type]
        return False
    attrs = dict(node.attrs)
    zero = int(q.attrs["zero_point"][0])
    if node.op == "Pad":
        if attrs["mode"] == "constant" and attrs["value"] != 0:
            return False
        attrs["value"] = zero
    inputs = [s.inputs[0] for s in sources] + list(node.inputs[len(sources) :])  # type: ignore
    new = Node(node.name, node.op, inputs, list(q.outputs), attrs)
    _replace(
        graph, [node, q], new, graph.tensors[q.outputs[0]].dtype, (float(q.attrs["scale"][0]), zero)
    )
    return True


_COMMUTING = ("MaxPool", "Reshape", "Transpose", "Slice", "Gather", "Identity", "Pad")


def _commute_dequantize(graph: Graph, node: Node) -> bool:
    """``Dequantize -> data movement`` becomes ``data movement -> Dequantize``:
    exact, since dequantization is elementwise and increasing. Integers then
    reach the next layer, which may fuse."""
    d = _dequantize_of(graph, node.inputs[0])
    if d is None or len(node.outputs) != 1 or len(graph.consumers(node.inputs[0])) != 1:
        return False
    attrs = dict(node.attrs)
    zero = int(d.attrs["zero_point"][0])
    if node.op == "Pad":
        if attrs["mode"] == "constant" and attrs["value"] != 0:
            return False
        attrs["value"] = zero
    source = d.inputs[0]
    out = node.outputs[0]
    moved = graph.unique_name(f"{out}.q")
    info = graph.tensors[source]
    graph.remove_node(node.name)
    graph.remove_node(d.name)
    graph.tensors[moved] = TensorInfo(moved, graph.tensors[out].shape, info.dtype, info.quant)
    graph.add_node(Node(node.name, node.op, [source, *node.inputs[1:]], [moved], attrs))
    graph.add_node(Node(d.name, "Dequantize", [moved], [out], dict(d.attrs)))
    return True


def _rewrite(graph: Graph, node: Node, records: dict[str, Record]) -> bool:
    if node.op in ("Conv", "Gemm"):
        return _fuse_linear(graph, node, records)
    if node.op in _MOVES and _fuse_move(graph, node):
        return True
    return node.op in _COMMUTING and _commute_dequantize(graph, node)


def fuse_qdq(graph: Graph, records: dict[str, Record]) -> int:
    """Rewrite QDQ patterns into integer ops; returns how many were fused."""
    fused = 0
    for node in graph.topological():
        if node.name not in graph.nodes:
            continue
        if _rewrite(graph, node, records):
            fused += 1
    graph.remove_unused()
    return fused
