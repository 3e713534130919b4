"""Human-readable views of a graph: a text listing and Graphviz dot."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from axc.ir.graph import Graph

__all__ = ["to_dot", "to_text"]


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        if len(v) > 6:
            return "[" + ",".join(_value(x) for x in v[:3]) + f",...] ({len(v)} values)"
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + " ".join(f"{k}={_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, np.ndarray):
        return f"<{v.dtype} {'x'.join(map(str, v.shape))}>"
    return str(v)


def _tensor(graph: Graph, name: str) -> str:
    if not name:
        return "-"
    info = graph.tensors.get(name)
    kind = "const " if name in graph.constants else ""
    if info is None:
        return f"%{name}"
    return f"%{name}: {kind}{info.dtype}[{info.shape_str()}]"


def to_text(graph: Graph) -> str:
    """One line per node in topological order, the way ``axc show`` prints it."""
    lines = [
        f"graph {graph.name} ({len(graph.nodes)} nodes, {len(graph.constants)} constants, "
        f"{sum(int(v.size) for v in graph.constants.values())} constant values)"
    ]
    for name in graph.inputs:
        lines.append(f"  input  {_tensor(graph, name)}")
    for index, node in enumerate(graph.topological()):
        attrs = " ".join(f"{k}={_value(v)}" for k, v in node.attrs.items() if v is not None)
        notes = " ".join(f"@{k}={_value(v)}" for k, v in node.annotations.items())
        outs = ", ".join(_tensor(graph, t) for t in node.outputs)
        args = ", ".join(_tensor(graph, t) for t in node.inputs)
        tail = " ".join(x for x in (attrs, notes) if x)
        lines.append(
            f"  [{index}] {node.name} = {node.op}({args}) -> {outs}"
            + (f"  {{{tail}}}" if tail else "")
        )
    for name in graph.outputs:
        lines.append(f"  output {_tensor(graph, name)}")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return re.sub(r'(["\\])', r"\\\1", text)


def _dot_id(name: str) -> str:
    return '"' + _escape(name) + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz source: ops are boxes, graph inputs and outputs are ellipses,
    edges are labelled with tensor shapes."""
    out = [
        f"digraph {_dot_id(graph.name)} {{",
        "  rankdir=TB;",
        "  node [shape=box, fontname=Helvetica];",
    ]
    for name in graph.inputs:
        out.append(f"  {_dot_id('in:' + name)} [shape=ellipse, label={_dot_id(name)}];")
    for node in graph.topological():
        label = f'"{_escape(node.name)}\\n{node.op}"'
        out.append(f"  {_dot_id(node.name)} [label={label}];")
        for index, tensor in enumerate(node.inputs):
            if tensor in graph.inputs:
                shape = graph.tensors[tensor].shape_str()
                out.append(
                    f"  {_dot_id('in:' + tensor)} -> {_dot_id(node.name)} [label={_dot_id(shape)}];"
                )
            elif tensor and tensor not in graph.constants and index >= 0:
                producer = graph.producer(tensor)
                if producer is not None:
                    shape = graph.tensors[tensor].shape_str()
                    out.append(
                        f"  {_dot_id(producer.name)} -> {_dot_id(node.name)} "
                        f"[label={_dot_id(shape)}];"
                    )
    for name in graph.outputs:
        out.append(f"  {_dot_id('out:' + name)} [shape=ellipse, label={_dot_id(name)}];")
        producer = graph.producer(name)
        if producer is not None:
            out.append(f"  {_dot_id(producer.name)} -> {_dot_id('out:' + name)};")
    out.append("}")
    return "\n".join(out) + "\n"
