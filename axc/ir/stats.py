"""Counts that summarize a graph: parameters and multiply-accumulates per layer."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from axc.ir.graph import Graph, Node

__all__ = ["layer_macs", "summary"]


def layer_macs(graph: Graph, node: Node, batch: int = 1) -> int:
    """Multiply-accumulates of one Conv, Gemm or MatMul for ``batch`` inputs (0 otherwise)."""

    def numel(name: str) -> int:
        return math.prod(batch if isinstance(d, str) else d for d in graph.tensors[name].shape)

    if node.op in ("Conv", "QConv"):
        w = graph.tensors[node.inputs[1]].shape
        per_output = math.prod(int(d) for d in w[1:])
        return numel(node.outputs[0]) * per_output
    if node.op in ("Gemm", "QGemm"):
        a = graph.tensors[node.inputs[0]].shape
        k = a[0] if node.attrs.get("trans_a") else a[1]
        return numel(node.outputs[0]) * int(k)
    if node.op == "MatMul":
        a = graph.tensors[node.inputs[0]].shape
        return numel(node.outputs[0]) * int(a[-1])
    return 0


def summary(graph: Graph) -> dict[str, Any]:
    ops = Counter(n.op for n in graph.nodes.values())
    return {
        "name": graph.name,
        "nodes": len(graph.nodes),
        "ops": dict(sorted(ops.items())),
        "parameters": int(sum(v.size for v in graph.constants.values())),
        "macs_per_input": int(sum(layer_macs(graph, n) for n in graph.nodes.values())),
        "inputs": {
            i: [str(d) if isinstance(d, str) else d for d in graph.tensors[i].shape]
            for i in graph.inputs
        },
        "outputs": {
            o: [str(d) if isinstance(d, str) else d for d in graph.tensors[o].shape]
            for o in graph.outputs
        },
    }
