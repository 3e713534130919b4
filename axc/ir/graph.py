"""The dataflow graph: operations are nodes, tensors are edges.

:class:`Graph` wraps a :class:`networkx.MultiDiGraph` (a ``DiGraph`` that
allows two edges between the same pair of nodes, as ``Add(x, x)`` needs).
Each edge carries the tensor name and the consumer's input index, so operand
order is never lost. Constants (weights, biases) are values on the graph, not
nodes. Graph inputs have no producer and so appear only in ``Node.inputs``.

``Node.inputs``/``Node.outputs`` and the networkx edges are kept in step by
the mutation methods here; :func:`axc.ir.verify` checks that they agree.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from axc.ir.types import ElemType, Shape, TensorInfo

__all__ = ["Graph", "Node"]


@dataclass
class Node:
    """One operation.

    ``attrs`` are the op's typed attributes (see docs/ir.md); ``annotations``
    are data that passes attach (``multiplier``, ``protect``, ``fault_site``,
    ...). An empty string in ``inputs`` marks an omitted optional operand."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)


class Graph:
    """A model in axc's IR."""

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.nx = nx.MultiDiGraph()
        self.nodes: dict[str, Node] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.metadata: dict[str, Any] = {}
        self._producer: dict[str, str] = {}
        self._uses: dict[str, set[tuple[str, int]]] = {}
        self._rank: dict[str, int] = {}
        self._order = itertools.count()

    # ------------------------------------------------------------------ build
    def add_input(self, name: str, shape: Shape, dtype: ElemType) -> None:
        self.tensors[name] = TensorInfo(name, tuple(shape), dtype)
        self.inputs.append(name)

    def add_constant(self, name: str, value: np.ndarray) -> str:
        value = np.asarray(value)
        self.constants[name] = value
        self.tensors[name] = TensorInfo(name, tuple(value.shape), ElemType.from_numpy(value.dtype))
        return name

    def add_node(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise ValueError(f"duplicate node name {node.name!r}")
        self.nodes[node.name] = node
        self._rank[node.name] = next(self._order)
        self.nx.add_node(node.name, order=self._rank[node.name])
        for out in node.outputs:
            if out:
                self._producer[out] = node.name
        for index, tensor in enumerate(node.inputs):
            self._connect(tensor, node.name, index)
        for out in node.outputs:
            for consumer, index in self._consumer_slots(out, skip=node.name):
                self.nx.add_edge(node.name, consumer, key=(out, index), tensor=out, index=index)
        return node

    def _connect(self, tensor: str, consumer: str, index: int) -> None:
        if tensor:
            self._uses.setdefault(tensor, set()).add((consumer, index))
        producer = self._producer.get(tensor)
        if tensor and producer is not None:
            self.nx.add_edge(producer, consumer, key=(tensor, index), tensor=tensor, index=index)

    def _consumer_slots(self, tensor: str, skip: str = "") -> Iterator[tuple[str, int]]:
        rank = self._rank
        for name, index in sorted(self._uses.get(tensor, ()), key=lambda s: (rank[s[0]], s[1])):
            if name != skip:
                yield name, index

    def unique_name(self, base: str) -> str:
        """A node or tensor name not yet used in this graph."""
        if base not in self.nodes and base not in self.tensors:
            return base
        for k in itertools.count(1):
            candidate = f"{base}_{k}"
            if candidate not in self.nodes and candidate not in self.tensors:
                return candidate
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- mutate
    def remove_node(self, name: str) -> Node:
        node = self.nodes.pop(name)
        self.nx.remove_node(name)
        del self._rank[name]
        for index, tensor in enumerate(node.inputs):
            self._uses.get(tensor, set()).discard((name, index))
        for out in node.outputs:
            if self._producer.get(out) == name:
                del self._producer[out]
        return node

    def set_input(self, node_name: str, index: int, tensor: str) -> None:
        node = self.nodes[node_name]
        old = node.inputs[index]
        producer = self._producer.get(old)
        if old and producer is not None:
            self.nx.remove_edge(producer, node_name, key=(old, index))
        self._uses.get(old, set()).discard((node_name, index))
        node.inputs[index] = tensor
        self._connect(tensor, node_name, index)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer of tensor ``old`` (and the graph outputs) read ``new``."""
        for consumer, index in list(self._consumer_slots(old)):
            self.set_input(consumer, index, new)
        self.outputs = [new if o == old else o for o in self.outputs]

    def rename_tensor(self, old: str, new: str) -> None:
        """Give a produced tensor a new name everywhere it is used."""
        producer = self._producer.get(old)
        if producer is not None:
            node = self.nodes[producer]
            node.outputs = [new if o == old else o for o in node.outputs]
            del self._producer[old]
            self._producer[new] = producer
        info = self.tensors.pop(old, None)
        if info is not None:
            info.name = new
            self.tensors[new] = info
        if old in self.constants:
            self.constants[new] = self.constants.pop(old)
        for consumer, index in list(self._consumer_slots(old)):
            self.set_input(consumer, index, new)
        self.outputs = [new if o == old else o for o in self.outputs]
        self.inputs = [new if o == old else o for o in self.inputs]

    def absorb(self, name: str) -> Node:
        """Remove node ``name`` after its effect was folded into the producer of
        its first operand; that producer takes over ``name``'s output tensor.

        The operand must have no other consumer and must not be a graph output."""
        node = self.nodes[name]
        source, result = node.inputs[0], node.outputs[0]
        producer = self.producer(source)
        if producer is None or len(self._uses.get(source, ())) != 1 or source in self.outputs:
            raise ValueError(f"{name}: operand {source!r} cannot be absorbed by its producer")
        self.remove_node(name)
        producer.outputs = [result if o == source else o for o in producer.outputs]
        del self._producer[source]
        self._producer[result] = producer.name
        self.tensors.pop(source, None)
        self._uses.pop(source, None)
        for consumer, index in self._consumer_slots(result):
            self.nx.add_edge(
                producer.name, consumer, key=(result, index), tensor=result, index=index
            )
        return producer

    # ------------------------------------------------------------------ query
    def producer(self, tensor: str) -> Node | None:
        name = self._producer.get(tensor)
        return self.nodes[name] if name is not None else None

    def consumers(self, tensor: str) -> list[Node]:
        seen: dict[str, Node] = {}
        for name, _ in self._consumer_slots(tensor):
            seen.setdefault(name, self.nodes[name])
        return list(seen.values())

    def is_constant(self, tensor: str) -> bool:
        return tensor in self.constants

    def topological(self) -> list[Node]:
        """Nodes in a deterministic topological order (ties broken by insertion order)."""
        rank = self._rank
        names = nx.lexicographical_topological_sort(self.nx, key=lambda n: rank[n])
        return [self.nodes[n] for n in names]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.topological())

    def __len__(self) -> int:
        return len(self.nodes)

    def ops(self) -> set[str]:
        return {n.op for n in self.nodes.values()}

    def find(self, ops: Iterable[str]) -> list[Node]:
        wanted = set(ops)
        return [n for n in self.topological() if n.op in wanted]

    def replace_with(self, other: Graph) -> None:
        """Become ``other`` (passes that rebuild a graph use this to change it in place)."""
        self.__dict__.clear()
        self.__dict__.update(other.__dict__)

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    def remove_unused(self) -> int:
        """Drop nodes whose outputs reach no graph output, then unused constants.

        Returns the number of nodes removed."""
        live: set[str] = set()
        stack = [self._producer[o] for o in self.outputs if o in self._producer]
        while stack:
            name = stack.pop()
            if name in live:
                continue
            live.add(name)
            stack.extend(pred for pred in self.nx.predecessors(name) if pred not in live)
        dead = [n for n in self.nodes if n not in live]
        for name in dead:
            self.remove_node(name)
        used = {t for n in self.nodes.values() for t in n.inputs} | set(self.outputs)
        for name in [c for c in self.constants if c not in used]:
            del self.constants[name]
        produced = {t for n in self.nodes.values() for t in n.outputs}
        keep = used | produced | set(self.inputs) | set(self.constants)
        for name in [t for t in self.tensors if t not in keep]:
            del self.tensors[name]
        return len(dead)
