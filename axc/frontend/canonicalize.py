"""Rewrites that put an imported graph into canonical form.

* A per-channel constant ``Mul`` or ``Add`` after a Conv or Gemm with
  constant weights is folded into its weights and bias. BatchNormalization
  imports as exactly such a pair, so this folds BatchNorm into Conv.
* A ``Relu`` after a Conv or Gemm becomes the node's fused ``activation``,
  as the hardware applies it in the output stage.

Each rewrite applies only where the intermediate tensor has one consumer and
is not a graph output, so no value a user can observe disappears.
"""

from __future__ import annotations

import numpy as np

from axc.ir import Graph, Node

__all__ = ["canonicalize", "fold_affine", "fuse_activations"]

_LINEAR = ("Conv", "Gemm")


def _absorbable_producer(graph: Graph, node: Node) -> Node | None:
    producer = graph.producer(node.inputs[0])
    if producer is None or producer.op not in _LINEAR:
        return None
    if len(graph.consumers(node.inputs[0])) != 1 or node.inputs[0] in graph.outputs:
        return None
    if producer.attrs.get("activation") is not None:
        return None
    if producer.op == "Gemm" and not producer.attrs.get("trans_b"):
        return None
    out = graph.tensors[node.inputs[0]]
    if not out.dtype.is_float or graph.tensors[node.outputs[0]].shape != out.shape:
        return None
    return producer


def _per_channel(graph: Graph, producer: Node, operand: str) -> np.ndarray | None:
    """The constant as one value per output channel, or None if it varies otherwise."""
    value = graph.constants.get(operand)
    if value is None or not np.issubdtype(value.dtype, np.floating):
        return None
    rank = len(graph.tensors[producer.outputs[0]].shape)
    channels = graph.tensors[producer.inputs[1]].shape[0]
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape
    if any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    if shape[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (int(channels),)).astype(np.float64)


def fold_affine(graph: Graph) -> int:
    """Fold per-channel constant Mul/Add into preceding Conv/Gemm weights and bias."""
    folded = 0
    for node in graph.topological():
        if node.op not in ("Mul", "Add") or node.name not in graph.nodes:
            continue
        producer = _absorbable_producer(graph, node)
        if producer is None or not all(graph.is_constant(t) for t in producer.inputs[1:] if t):
            continue
        vector = _per_channel(graph, producer, node.inputs[1])
        if vector is None:
            continue
        weight_name = producer.inputs[1]
        weight = graph.constants[weight_name]
        bias_name = producer.inputs[2] if len(producer.inputs) > 2 else ""
        bias = graph.constants[bias_name].astype(np.float64) if bias_name else np.zeros(len(vector))
        if node.op == "Mul":
            scale = vector.reshape((-1,) + (1,) * (weight.ndim - 1))
            new_weight = (weight.astype(np.float64) * scale).astype(weight.dtype)
            _replace_constant(graph, producer, 1, new_weight, "weight")
            bias = bias * vector
        else:
            bias = bias + vector
        new_bias = bias.astype(weight.dtype)
        if bias_name:
            _replace_constant(graph, producer, 2, new_bias, "bias")
        else:
            name = graph.add_constant(graph.unique_name(f"{producer.name}.bias"), new_bias)
            producer.inputs.append("")
            graph.set_input(producer.name, 2, name)
        graph.absorb(node.name)
        folded += 1
    return folded


def _replace_constant(graph: Graph, node: Node, index: int, value: np.ndarray, hint: str) -> None:
    """Give ``node`` its own copy of a changed constant (others may share the old one)."""
    old = node.inputs[index]
    shared = len(graph.consumers(old)) > 1 or old in graph.outputs
    if shared:
        name = graph.add_constant(graph.unique_name(f"{node.name}.{hint}"), value)
        graph.set_input(node.name, index, name)
    else:
        graph.constants[old] = value


def fuse_activations(graph: Graph) -> int:
    fused = 0
    for node in graph.topological():
        if node.op != "Relu":
            continue
        producer = _absorbable_producer(graph, node)
        if producer is None:
            continue
        producer.attrs["activation"] = "relu"
        graph.absorb(node.name)
        fused += 1
    return fused


def canonicalize(graph: Graph) -> Graph:
    fold_affine(graph)
    fuse_activations(graph)
    graph.remove_unused()
    return graph
