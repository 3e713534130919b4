"""ONNX -> axc IR.

Import walks the ONNX graph once, in its (topologically sorted) order:

* nodes whose operands are all known are folded into constants;
* every other node is lowered by its converter into canonical IR ops;
* afterwards the graph is canonicalized (see :mod:`axc.frontend.canonicalize`).

Shapes are static except for the batch dimension (axis 0 of the inputs),
which may be symbolic and is then called ``N`` throughout the IR.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from axc.errors import ModelError, UnsupportedOpError
from axc.frontend.canonicalize import canonicalize
from axc.frontend.context import ImportContext
from axc.frontend.converters import CONVERTERS, MICROSOFT_OPS, SUPPORTED_OPS, element_type
from axc.frontend.fold import fold_node, is_symbolic
from axc.frontend.load import check_opset, load_model_proto
from axc.frontend.qdq import fuse_qdq
from axc.frontend.qonnx import QONNX_DOMAINS, qonnx_quant
from axc.ir import BATCH, Graph, Node
from axc.ir.types import Dim, TensorInfo

__all__ = ["import_model", "load"]


def load(path: str | os.PathLike[str]) -> Graph:
    """Read an ONNX file into a canonical IR graph."""
    model = load_model_proto(path)
    return import_model(model, name=Path(path).stem)


def _input_shape(value_info: onnx.ValueInfoProto) -> tuple[Dim, ...]:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        raise ModelError(
            f"input {value_info.name!r} has no shape; axc needs static shapes "
            "(only the batch dimension may be symbolic)"
        )
    dims: list[Dim] = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif axis == 0:
            dims.append(BATCH)
        else:
            label = dim.dim_param or "unknown"
            raise ModelError(
                f"input {value_info.name!r} has symbolic dimension {label!r} at "
                f"axis {axis}; only the batch dimension (axis 0) may be symbolic. "
                "Fix the shape, e.g. with onnx.tools.update_model_dims"
            )
    return tuple(dims)


def _unique_node_names(model: onnx.ModelProto) -> list[str]:
    seen: set[str] = set()
    names = []
    for index, node in enumerate(model.graph.node):
        base = node.name or f"{node.op_type}_{index}"
        name, k = base, 1
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def import_model(
    model: onnx.ModelProto, name: str = "model", bind: dict[str, np.ndarray] | None = None
) -> Graph:
    """Lower an in-memory ONNX model. ``bind`` turns graph inputs into constants."""
    opset = check_opset(model)
    for node in model.graph.node:
        if node.domain in QONNX_DOMAINS and node.op_type in ("Quant", "IntQuant"):
            continue
        if node.domain == "com.microsoft" and node.op_type in MICROSOFT_OPS:
            continue
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(
                f"node {node.name!r}: op {node.domain}::{node.op_type} is not supported "
                f"(axc supports the default ONNX domain, QONNX Quant/IntQuant and onnxruntime's "
                f"com.microsoft QGemm)"
            )
    graph = Graph(model.graph.name or name)
    graph.metadata["source_opset"] = opset
    graph.metadata["producer"] = f"{model.producer_name} {model.producer_version}".strip()
    ctx = ImportContext(graph, opset)
    bind = bind or {}

    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for key, value in initializers.items():
        ctx.values[key] = value
    for value_info in model.graph.input:
        if value_info.name in initializers:
            continue
        if value_info.name in bind:
            ctx.values[value_info.name] = np.asarray(bind[value_info.name])
            continue
        elem = element_type(value_info.type.tensor_type.elem_type)
        graph.add_input(value_info.name, _input_shape(value_info), elem)

    for node, node_name in zip(model.graph.node, _unique_node_names(model), strict=True):
        ctx.onode, ctx.node_name = node, node_name
        present = [i for i in node.input if i]
        known = all(ctx.value(i) is not None for i in present)
        if node.domain in QONNX_DOMAINS:
            qonnx_quant(ctx, known)
            continue
        if node.op_type == "Shape" and present and not known:
            CONVERTERS["Shape"](ctx)
            continue
        if known:
            values = [ctx.value(i) if i else None for i in node.input]
            for out, value in zip(node.output, fold_node(node, values, opset), strict=False):
                if out:
                    ctx.values[out] = value
            if node.op_type == "DequantizeLinear" and values[0] is not None:
                ctx.dequantized[node.output[0]] = _dequantized_record(node, values)
            continue
        key = f"com.microsoft.{node.op_type}" if node.domain == "com.microsoft" else node.op_type
        converter = CONVERTERS.get(key)
        if converter is None:
            raise UnsupportedOpError(
                f"node {node_name!r}: op {node.op_type} is not supported. "
                f"Supported ops: {', '.join(SUPPORTED_OPS)}"
            )
        converter(ctx)

    for output in model.graph.output:
        _bind_output(ctx, output.name)
    graph.remove_unused()
    canonicalize(graph)
    if ctx.dequantized or any(n.op == "Quantize" for n in graph.nodes.values()):
        fuse_qdq(graph, ctx.dequantized)
    return graph


def _dequantized_record(
    node: onnx.NodeProto, values: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    q, scale = values[0], values[1]
    assert q is not None and scale is not None
    zero = values[2] if len(values) > 2 and values[2] is not None else np.zeros_like(scale, q.dtype)
    axis = None
    if scale.size > 1:
        axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 1)
        axis = axis + q.ndim if axis < 0 else axis
    return q, scale.astype(np.float32), zero, axis


def _bind_output(ctx: ImportContext, onnx_name: str) -> None:
    graph = ctx.graph
    ir_name = ctx.ir(onnx_name)
    if ir_name not in graph.tensors:
        value = ctx.values.get(ir_name)
        if value is None:
            raise ModelError(f"graph output {onnx_name!r} is never produced")
        if is_symbolic(value):
            raise ModelError(f"graph output {onnx_name!r} depends on the symbolic batch size")
        graph.add_constant(onnx_name, value)
        ir_name = onnx_name
    elif ir_name != onnx_name:
        producer = graph.producer(ir_name)
        if producer is not None and ir_name not in graph.outputs and onnx_name not in graph.tensors:
            graph.rename_tensor(ir_name, onnx_name)
        else:
            info = graph.tensors[ir_name]
            graph.tensors[onnx_name] = TensorInfo(onnx_name, info.shape, info.dtype)
            graph.add_node(
                Node(
                    graph.unique_name(f"{onnx_name}.identity"),
                    "Identity",
                    [ir_name],
                    [onnx_name],
                    {},
                )
            )
        ir_name = onnx_name
    graph.outputs.append(ir_name)
