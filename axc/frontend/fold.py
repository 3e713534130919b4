"""Evaluation of ONNX nodes whose operands are all known at import time.

Numeric folding uses onnx's own reference evaluator, so any op can be folded,
including ops axc cannot execute (Range, Expand, Where, ...). Shape
arithmetic may involve the symbolic batch dimension: such values are numpy
object arrays holding ints and the symbol, and only data-movement ops
(Gather, Slice, Concat, Unsqueeze, Squeeze, Identity, Cast) may touch them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from axc.errors import ModelError

__all__ = ["fold_node", "is_symbolic"]


def is_symbolic(value: np.ndarray) -> bool:
    return value.dtype == object


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _fold_symbolic(
    node: onnx.NodeProto, values: list[np.ndarray | None], opset: int
) -> list[np.ndarray]:
    attrs = _attrs(node)
    x = values[0]
    assert x is not None
    op = node.op_type
    if op in ("Identity", "Cast"):
        return [x]
    if op == "Gather":
        idx = values[1]
        assert idx is not None
        return [np.take(x, idx.astype(np.int64), axis=int(attrs.get("axis", 0)))]
    if op == "Unsqueeze":
        axes = attrs.get("axes") if opset < 13 else values[1]
        out = x
        rank = x.ndim + len(list(axes))  # type: ignore[arg-type]
        for a in sorted(int(a) % rank for a in axes):  # type: ignore[union-attr]
            out = np.expand_dims(out, a)
        return [out]
    if op == "Squeeze":
        axes = attrs.get("axes") if opset < 13 else (values[1] if len(values) > 1 else None)
        if axes is None:
            return [np.squeeze(x)]
        return [np.squeeze(x, axis=tuple(int(a) % x.ndim for a in axes))]
    if op == "Concat":
        parts = [v if v is not None else np.zeros(0, object) for v in values]
        return [np.concatenate([p.astype(object) for p in parts], axis=int(attrs["axis"]))]
    if op == "Slice" and opset >= 10 and x.ndim == 1:
        start, end = int(values[1][0]), int(values[2][0])  # type: ignore[index]
        step = int(values[4][0]) if len(values) > 4 and values[4] is not None else 1
        return [x[start:end:step]]
    raise ModelError(
        f"node {node.name!r} ({op}) computes with the symbolic batch dimension; "
        "axc needs shapes that depend on the batch size only through data "
        "movement (Shape, Gather, Concat, Reshape)"
    )


def _normalize(value: object) -> np.ndarray:
    """An object array if the symbol survives, else a plain int64 array."""
    array = np.asarray(value, dtype=object)
    if any(isinstance(v, str) for v in array.reshape(-1)):
        return array
    return array.astype(np.int64)


def _fold_quantization(node: onnx.NodeProto, values: list[np.ndarray | None]) -> np.ndarray:
    """(De)quantize a constant as ONNX specifies (float32 arithmetic, half to even)."""
    x, scale = values[0], values[1]
    assert x is not None and scale is not None
    zero = values[2] if len(values) > 2 and values[2] is not None else np.zeros((), np.uint8)
    if scale.size > 1:
        axis = int(_attrs(node).get("axis", 1))
        shape = [1] * x.ndim
        shape[axis % x.ndim] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    scale = scale.astype(np.float32)
    if node.op_type == "DequantizeLinear":
        return ((x.astype(np.int64) - zero.astype(np.int64)).astype(np.float32) * scale).astype(
            np.float32
        )
    info = np.iinfo(zero.dtype)
    q = np.rint(x.astype(np.float32) / scale).astype(np.int64) + zero.astype(np.int64)
    return np.clip(q, info.min, info.max).astype(zero.dtype)


def fold_node(
    node: onnx.NodeProto, values: list[np.ndarray | None], opset: int
) -> list[np.ndarray]:
    """Outputs of ``node`` given all its operand values (None for omitted operands)."""
    if any(v is not None and is_symbolic(v) for v in values):
        return [_normalize(v) for v in _fold_symbolic(node, values, opset)]
    if node.op_type in ("DequantizeLinear", "QuantizeLinear") and values[0] is not None:
        return [_fold_quantization(node, values)]
    if node.op_type == "ConstantOfShape":
        attrs = _attrs(node)
        fill = (
            numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
        )
        shape = values[0]
        assert shape is not None
        return [np.full(tuple(int(d) for d in shape), fill.reshape(-1)[0], dtype=fill.dtype)]
    feeds = {}
    inputs = []
    for i, (name, value) in enumerate(zip(node.input, values, strict=False)):
        if name and value is not None:
            key = f"in{i}"
            feeds[key] = value
            inputs.append(key)
        else:
            inputs.append("")
    outputs = [f"out{i}" for i in range(len(node.output))]
    single = helper.make_node(node.op_type, inputs, outputs, domain=node.domain)
    single.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [single],
        "fold",
        [helper.make_empty_tensor_value_info(i) for i in inputs if i],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        evaluator = ReferenceEvaluator(model)
        results = evaluator.run(None, feeds)
    except Exception as exc:  # the reference evaluator raises many kinds
        raise ModelError(
            f"cannot fold constant node {node.name!r} ({node.op_type}): {exc}"
        ) from None
    return [np.asarray(r) for r in results]
