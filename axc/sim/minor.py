"""Batch-minor execution of small feature maps.

On a batch of small images, (N, C, H, W) is the wrong layout for a
convolution: its patch matrix is copied a few pixels at a time and its
(M, N * P) accumulators must be moved back to NCHW. Stored (C, H, W, N),
batch innermost, every copy is a run of N values, the accumulators come out
in the layout they are stored in, and pooling, reshapes and dense layers
work on whole rows.

The executor runs a node batch-minor when this module gives it a step for
the node. A 2-D convolution over at most 64 output pixels always returns
batch-minor; pooling, flattening, dense layers and per-tensor
(de)quantization keep the layout of their input. Every other node gets its
inputs back in (N, ...) order, as do the graph's outputs and any observer.
The results are the same integers either way: only where they lie changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from axc.ir import BATCH, Graph, Node
from axc.sim.approx_kernels import ApproxConv, ApproxGemm
from axc.sim.int_kernels import _QConv, _QGemm
from axc.sim.kernels import max_pool2d_minor

__all__ = ["MinorStep", "minor_step"]

# (arguments, whether the first is batch-minor) -> (results, whether they are)
MinorStep = Callable[[Sequence[np.ndarray | None], bool], tuple[list[np.ndarray], bool]]
Prepared = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def _static(shape: Sequence[object]) -> tuple[int, ...] | None:
    """Shape with the batch (first) axis as 1, or None if another axis is symbolic."""
    if not shape or shape[0] != BATCH:
        return None
    rest = shape[1:]
    return (1, *rest) if all(isinstance(d, int) for d in rest) else None  # type: ignore[arg-type]


def _per_tensor(attrs: dict[str, object]) -> bool:
    return bool(np.asarray(attrs["scale"]).size == 1 and np.asarray(attrs["zero_point"]).size == 1)


def minor_step(graph: Graph, node: Node, plan: Prepared) -> MinorStep | None:
    """How ``node`` (prepared as ``plan``) runs on batch-minor data, or None
    when it needs its inputs in (N, ...) order."""
    if not node.inputs or not node.inputs[0] or node.inputs[0] in graph.constants:
        return None
    x_shape = _static(graph.tensors[node.inputs[0]].shape)
    if x_shape is None or any(
        tuple(graph.tensors[t].shape[:1]) != (BATCH,) for t in node.outputs if t
    ):
        return None
    attrs = node.attrs
    if node.op == "QConv" and isinstance(plan, _QConv | ApproxConv) and plan.minor_ok(x_shape):
        conv = plan

        def convolve(args: Sequence[np.ndarray | None], minor: bool) -> tuple[list, bool]:
            x = args[0]
            assert x is not None
            return [conv.minor(x if minor else np.ascontiguousarray(np.moveaxis(x, 0, -1)))], True

        return convolve
    follow: Callable[[np.ndarray], np.ndarray] | None = None
    if node.op == "QGemm" and isinstance(plan, _QGemm | ApproxGemm) and len(x_shape) == 2:
        follow = plan.minor
    elif node.op == "MaxPool" and len(x_shape) == 4 and len(attrs["kernel_shape"]) == 2:
        if graph.tensors[node.inputs[0]].dtype.is_float:
            return None

        def follow(x: np.ndarray) -> np.ndarray:
            return max_pool2d_minor(x, attrs)
    elif node.op == "Reshape" and len(node.outputs) == 1:
        out = _static(graph.tensors[node.outputs[0]].shape)
        if out is None:
            return None
        rest = out[1:]

        def follow(x: np.ndarray) -> np.ndarray:
            return x.reshape(*rest, x.shape[-1])
    elif node.op in ("Quantize", "Dequantize") and _per_tensor(attrs):
        # elementwise with one scale: the layout does not matter

        def elementwise(args: Sequence[np.ndarray | None], minor: bool) -> tuple[list, bool]:
            return plan(args), minor  # type: ignore[arg-type]

        return elementwise
    if follow is None:
        return None
    body = follow

    def step(args: Sequence[np.ndarray | None], minor: bool) -> tuple[list, bool]:
        if not minor:
            return plan(args), False  # type: ignore[arg-type]
        x = args[0]
        assert x is not None
        return [body(x)], True

    return step
