"""Run a graph on numpy arrays, node by node in topological order.

Values are freed as soon as their last consumer has run, so peak memory is
that of the widest cut of the graph, not of the whole network.

A batch is split across threads when every node treats the samples of a
batch independently (checked once per graph): each thread runs the whole
graph on its share with single-threaded kernels and BLAS. That keeps every
core busy on small layers, where the start-up of a parallel kernel costs
more than its work, and keeps Numba's and BLAS's thread pools from competing
for the same cores. A batch of one runs on parallel kernels instead.

A graph that is a plain chain of integer layers over small maps (a
digits-sized CNN, an MLP) runs instead as one compiled program (fused.py),
with no Python between its layers, unless an observer asks for every value.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numba
import numpy as np

from axc.errors import UserError
from axc.ir import BATCH, Graph, Node
from axc.sim import int_kernels as _int_kernels  # noqa: F401  (registers the integer kernels)
from axc.sim import protect_kernels as _protect_kernels  # noqa: F401  (and the protection ones)
from axc.sim.fused import fused_program
from axc.sim.jit import serial, serial_mode
from axc.sim.kernels import KERNELS, PLANS, to_major
from axc.sim.minor import MinorStep, minor_step

__all__ = ["Executor", "run"]


def _batch_local(graph: Graph, node: Node) -> bool:
    """Whether ``node`` computes each sample of the batch from that sample alone."""
    for name in (*node.inputs, *node.outputs):
        if name and name not in graph.constants:
            shape = graph.tensors[name].shape
            if not shape or shape[0] != BATCH:
                return False
    a = node.attrs
    if node.op in ("Concat", "Split", "Gather"):
        return bool(a["axis"] != 0)
    if node.op in ("Quantize", "Dequantize"):
        return a.get("axis") != 0
    if node.op == "Softmax":
        return 0 not in a["axes"]
    if node.op == "Slice":
        return 0 not in a["axes"]
    if node.op == "Pad":
        rank = len(a["pads"]) // 2
        return not (a["pads"][0] or a["pads"][rank])
    if node.op == "Transpose":
        return bool(a["perm"][0] == 0)
    if node.op == "Reshape":
        return bool(a["shape"][0] == BATCH)
    return True


def default_threads() -> int:
    """Threads for one run: NUMBA_NUM_THREADS when set, else the usable cores."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return max(1, int(getattr(numba.config, "NUMBA_NUM_THREADS", 1)))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()
_BLAS: Any = None


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="axc-sim")
        return _POOLS[workers]


def _single_threaded_blas() -> AbstractContextManager[Any]:
    """Limit BLAS to one thread while shards run (each shard is one thread)."""
    global _BLAS
    try:
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        return _BLAS.limit(limits=1, user_api="blas")
    except Exception:  # threadpoolctl missing or no BLAS found: run as is
        return nullcontext()


class Executor:
    """A graph prepared for repeated execution.

    ``threads`` bounds the threads one run uses (default: NUMBA_NUM_THREADS,
    else the usable cores). ``fuse=False`` runs node by node even a graph
    that could run as one compiled program (fused.py)."""

    def __init__(self, graph: Graph, threads: int | None = None, fuse: bool = True) -> None:
        missing = sorted({n.op for n in graph.nodes.values()} - set(KERNELS))
        if missing:
            raise UserError(f"the float executor cannot run ops {', '.join(missing)}")
        self.graph = graph
        self.order: list[Node] = graph.topological()
        self.threads = max(1, threads if threads is not None else default_threads())
        self.batch_separable = bool(self.order) and all(_batch_local(graph, n) for n in self.order)
        # integer results are computed in int64 and stored in their declared type
        self._dtypes = {
            t: graph.tensors[t].dtype.numpy_dtype()
            for n in self.order
            for t in n.outputs
            if t and not graph.tensors[t].dtype.is_float
        }
        self._calls = [self._plan(n) for n in self.order]
        # batch-minor steps (see minor.py), where some convolution would use them
        minor = [minor_step(graph, n, c) for n, c in zip(self.order, self._calls, strict=True)]
        producers = any(
            s is not None and n.op == "QConv" for n, s in zip(self.order, minor, strict=True)
        )
        self._minor: list[MinorStep | None] = minor if producers else [None] * len(minor)
        # a plain chain of integer layers runs as one compiled program (fused.py)
        self.fused = fused_program(graph, self.order, self._calls, self._dtypes) if fuse else None
        last_use: dict[str, int] = {}
        for step, node in enumerate(self.order):
            for name in node.inputs:
                last_use[name] = step
        keep = set(graph.outputs)
        self._free_after: list[list[str]] = [[] for _ in self.order]
        for name, step in last_use.items():
            if name not in keep and name not in graph.constants:
                self._free_after[step].append(name)

    def plan(self, step: int) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
        """The prepared callable of the ``step``-th node of :attr:`order`."""
        return self._calls[step]

    def plan_with(
        self, step: int, constants: Mapping[str, np.ndarray]
    ) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
        """The ``step``-th node prepared with some of its constants replaced (a
        corrupted weight, say); the executor itself is left as it was."""
        return self._plan(self.order[step], {**self.graph.constants, **constants})

    def cast(self, name: str, value: np.ndarray) -> np.ndarray:
        """``value`` in the storage type of tensor ``name``."""
        want = self._dtypes.get(name)
        return value if want is None or value.dtype == want else value.astype(want)

    def _plan(
        self, node: Node, constants: Mapping[str, np.ndarray] | None = None
    ) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
        constants = self.graph.constants if constants is None else constants
        attrs = node.attrs
        if node.annotations.get("multiplier") and node.op in ("QConv", "QGemm"):
            # the approximate pass's annotation selects the products' multiplier
            attrs = {
                **attrs,
                "multiplier": node.annotations["multiplier"],
                "multiplier_bits": node.annotations.get("multiplier_bits", 8),
            }
        planner = PLANS.get(node.op)
        try:
            if planner is not None and all(not t or t in constants for t in node.inputs[1:]):
                operands = [None, *(constants[t] if t else None for t in node.inputs[1:])]
                prepared = planner(attrs, operands)
                if prepared is not None:
                    return prepared
        except UserError as exc:
            raise UserError(f"layer {node.name!r}: {exc}") from None
        kernel = KERNELS[node.op]
        if constants is not self.graph.constants:
            fixed = {i: constants[t] for i, t in enumerate(node.inputs) if t in constants}
            return lambda args: kernel(attrs, [fixed.get(i, a) for i, a in enumerate(args)])
        return lambda args: kernel(attrs, args)

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
        if observe is None and self.fused is not None:
            return self._run_fused(values)
        if observe is None and self.batch_separable and self.threads > 1:
            batch = min((v.shape[0] for v in values.values()), default=0)
            if batch > 1:
                return self._run_sharded(values, min(self.threads, batch))
        return self._run(values, observe)

    def _run_fused(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.fused is not None
        x = values[self.graph.inputs[0]]
        threads = 1 if serial_mode() else min(self.threads, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        if threads <= 1 or x.shape[0] <= 1:
            return {self.graph.outputs[0]: self.fused(x, 1)}
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            with _single_threaded_blas():  # each of the program's threads calls BLAS
                return {self.graph.outputs[0]: self.fused(x, threads)}
        finally:
            numba.set_num_threads(before)

    def _run_sharded(self, values: dict[str, np.ndarray], shards: int) -> dict[str, np.ndarray]:
        batch = next(iter(values.values())).shape[0]
        bounds = [batch * k // shards for k in range(shards + 1)]
        parts = [
            {name: v[lo:hi] for name, v in values.items()} for lo, hi in itertools.pairwise(bounds)
        ]

        def shard(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            with serial():  # this thread's kernels run their serial builds
                return self._run(part, None)

        with _single_threaded_blas():
            futures = [_pool(self.threads).submit(shard, p) for p in parts[1:]]
            first = self._run(parts[0], None, serial_run=True)
            results = [first, *(f.result() for f in futures)]
        constants = self.graph.constants
        return {
            name: constants[name]
            if name in constants
            else np.concatenate([r[name] for r in results], axis=0)
            for name in self.graph.outputs
        }

    def _run(
        self,
        values: dict[str, np.ndarray],
        observe: Callable[[str, np.ndarray], None] | None,
        serial_run: bool = False,
    ) -> dict[str, np.ndarray]:
        if serial_run:
            with serial():
                return self._run(values, observe)
        if observe is not None:
            for name, value in values.items():
                observe(name, value)
        constants = self.graph.constants
        minor: set[str] = set()  # values stored batch-minor
        for step, node in enumerate(self.order):
            fast = self._minor[step]
            if fast is None and minor:
                for t in node.inputs:
                    if t in minor:
                        values[t] = to_major(values[t])
                        minor.discard(t)
            args = [
                values[t] if t in values else constants.get(t) if t else None for t in node.inputs
            ]
            out_minor = False
            try:
                if fast is not None:
                    results, out_minor = fast(args, node.inputs[0] in minor)
                else:
                    results = self._calls[step](args)  # type: ignore[arg-type]
            except UserError as exc:
                raise UserError(f"layer {node.name!r}: {exc}") from None
            for name, value in zip(node.outputs, results, strict=True):
                want = self._dtypes.get(name)
                values[name] = value if want is None or value.dtype == want else value.astype(want)
                if out_minor:
                    minor.add(name)
                if observe is not None:
                    observe(name, to_major(values[name]) if out_minor else values[name])
            for name in self._free_after[step]:
                values.pop(name, None)
                minor.discard(name)
        return {
            name: (to_major(values[name]) if name in minor else values[name])
            if name in values
            else constants[name]
            for name in self.graph.outputs
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
