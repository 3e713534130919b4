"""Run a graph on numpy arrays, node by node in topological order.

Values are freed as soon as their last consumer has run, so peak memory is
that of the widest cut of the graph, not of the whole network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from axc.errors import UserError
from axc.ir import Graph, Node
from axc.sim import int_kernels as _int_kernels  # noqa: F401  (registers the integer kernels)
from axc.sim.kernels import KERNELS

__all__ = ["Executor", "run"]


class Executor:
    """A graph prepared for repeated execution."""

    def __init__(self, graph: Graph) -> None:
        missing = sorted({n.op for n in graph.nodes.values()} - set(KERNELS))
        if missing:
            raise UserError(f"the float executor cannot run ops {', '.join(missing)}")
        self.graph = graph
        self.order: list[Node] = graph.topological()
        # integer results are computed in int64 and stored in their declared type
        self._dtypes = {
            t: graph.tensors[t].dtype.numpy_dtype()
            for n in self.order
            for t in n.outputs
            if t and not graph.tensors[t].dtype.is_float
        }
        last_use: dict[str, int] = {}
        for step, node in enumerate(self.order):
            for name in node.inputs:
                last_use[name] = step
        keep = set(graph.outputs)
        self._free_after: list[list[str]] = [[] for _ in self.order]
        for name, step in last_use.items():
            if name not in keep and name not in graph.constants:
                self._free_after[step].append(name)

    def _check_inputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        batch: int | None = None
        for name in self.graph.inputs:
            if name not in feeds:
                raise UserError(
                    f"missing input {name!r}; the model takes {', '.join(self.graph.inputs)}"
                )
            info = self.graph.tensors[name]
            array = np.asarray(feeds[name])
            want = info.dtype.numpy_dtype()
            if array.dtype != want:
                if array.dtype.kind == want.kind or np.can_cast(array.dtype, want, "same_kind"):
                    array = array.astype(want)
                else:
                    raise UserError(f"input {name!r} has type {array.dtype}, expected {want}")
            if array.ndim != len(info.shape):
                raise UserError(
                    f"input {name!r} has shape {array.shape}, expected {info.shape_str()}"
                )
            for axis, (got, dim) in enumerate(zip(array.shape, info.shape, strict=True)):
                if isinstance(dim, str):
                    if batch is not None and batch != got:
                        raise UserError(f"inputs disagree on the batch size ({batch}, {got})")
                    batch = got
                elif got != dim:
                    raise UserError(
                        f"input {name!r} has shape {array.shape}, expected "
                        f"{info.shape_str()} (axis {axis})"
                    )
            values[name] = array
        extra = set(feeds) - set(self.graph.inputs)
        if extra:
            raise UserError(
                f"unknown inputs {sorted(extra)}; the model takes {', '.join(self.graph.inputs)}"
            )
        return values

    def run(
        self,
        feeds: Mapping[str, np.ndarray],
        observe: Callable[[str, np.ndarray], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs by name for the given inputs (by name). ``observe`` is called
        with every tensor's name and value as it is computed (calibration and
        golden caches use it)."""
        values = self._check_inputs(feeds)
        if observe is not None:
            for name, value in values.items():
                observe(name, value)
        constants = self.graph.constants
        for step, node in enumerate(self.order):
            args = [
                values[t] if t in values else constants.get(t) if t else None for t in node.inputs
            ]
            results = KERNELS[node.op](node.attrs, args)  # type: ignore[arg-type]
            for name, value in zip(node.outputs, results, strict=True):
                want = self._dtypes.get(name)
                values[name] = value if want is None or value.dtype == want else value.astype(want)
                if observe is not None:
                    observe(name, values[name])
            for name in self._free_after[step]:
                values.pop(name, None)
        return {
            name: values[name] if name in values else constants[name] for name in self.graph.outputs
        }

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        out = self.run(dict(zip(self.graph.inputs, arrays, strict=True)))
        return [out[name] for name in self.graph.outputs]


def run(
    graph: Graph, feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray
) -> dict[str, np.ndarray]:
    """Execute ``graph`` once. ``feeds`` is a dict by input name, a list in input
    order, or a single array for a one-input model."""
    if isinstance(feeds, np.ndarray):
        feeds = [feeds]
    if not isinstance(feeds, Mapping):
        if len(feeds) != len(graph.inputs):
            raise UserError(f"the model takes {len(graph.inputs)} inputs, got {len(feeds)}")
        feeds = dict(zip(graph.inputs, feeds, strict=True))
    return Executor(graph).run(feeds)
