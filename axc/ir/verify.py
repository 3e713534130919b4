"""Structural checks of a graph: the invariant every pass must keep."""

from __future__ import annotations

import networkx as nx

from axc.ir.graph import Graph
from axc.ir.ops import OPS, ShapeError, infer_shapes

__all__ = ["VerificationError", "verify"]


class VerificationError(AssertionError):
    """The IR broke an invariant: a bug in the pass that produced it."""


def verify(graph: Graph) -> None:
    """Check ops, arity, dangling or doubly produced tensors, edge bookkeeping,
    acyclicity and that every recorded shape equals the one its op infers."""
    problems: list[str] = []
    produced: dict[str, str] = {}
    for node in graph.nodes.values():
        schema = OPS.get(node.op)
        if schema is None:
            problems.append(f"{node.name}: op {node.op!r} is not canonical")
            continue
        low, high = schema.arity()
        present = len(node.inputs)
        if present < low or (high is not None and present > high):
            problems.append(f"{node.name}: {node.op} takes {low}..{high} operands, has {present}")
        for out in node.outputs:
            if out in produced:
                problems.append(f"tensor {out!r} produced by {produced[out]} and {node.name}")
            produced[out] = node.name
            if out in graph.constants or out in graph.inputs:
                problems.append(f"{node.name}: output {out!r} shadows an input or constant")
        if not isinstance(node.annotations, dict):
            problems.append(f"{node.name}: annotations must be a dict")
    available = set(produced) | set(graph.inputs) | set(graph.constants)
    for node in graph.nodes.values():
        for index, tensor in enumerate(node.inputs):
            if tensor and tensor not in available:
                problems.append(f"{node.name}: operand {index} {tensor!r} is dangling")
            if tensor in produced:
                key = (tensor, index)
                if not graph.nx.has_edge(produced[tensor], node.name, key=key):
                    problems.append(f"{node.name}: no edge for operand {index} {tensor!r}")
    for out in graph.outputs:
        if out not in available:
            problems.append(f"graph output {out!r} is dangling")
    for name in list(produced) + graph.inputs + list(graph.constants):
        if name not in graph.tensors:
            problems.append(f"tensor {name!r} has no TensorInfo")
    if set(graph.nx.nodes) != set(graph.nodes):
        problems.append("networkx nodes and graph nodes differ")
    if graph.nx.number_of_edges() != sum(
        1 for n in graph.nodes.values() for t in n.inputs if t in produced
    ):
        problems.append("networkx holds stale edges")
    if not nx.is_directed_acyclic_graph(graph.nx):
        problems.append("the graph has a cycle")
    if not problems:
        for node in graph.topological():
            try:
                shapes = [graph.tensors[t].shape if t else () for t in node.inputs]
                expected = infer_shapes(node.op, node.attrs, shapes)
            except (ShapeError, KeyError, IndexError, TypeError) as exc:
                problems.append(f"{node.name}: {node.op} shape check failed: {exc}")
                continue
            for out, shape in zip(node.outputs, expected, strict=False):
                if tuple(graph.tensors[out].shape) != tuple(shape):
                    problems.append(
                        f"{node.name}: {out!r} recorded as "
                        f"{graph.tensors[out].shape}, op gives {shape}"
                    )
    if problems:
        raise VerificationError("IR verification failed:\n  " + "\n  ".join(problems))
