"""Running a graph over a data set: accuracy, agreement with a reference, outputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from axc.ir import Graph
from axc.sim.dataset import Dataset
from axc.sim.executor import Executor

__all__ = ["evaluate"]

BATCH = 256


def _topk(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    if logits.ndim != 2 or logits.shape[1] < k:
        return float("nan")
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def evaluate(
    graph: Graph, data: Dataset, reference: Graph | None = None, keep_outputs: bool = False
) -> dict[str, Any]:
    """Run ``graph`` over ``data`` in batches.

    Reports top-1/top-5 accuracy of the first output when ``data`` has labels,
    and, with a ``reference`` graph (the float model), the share of inputs
    whose top-1 class agrees and the largest absolute output difference.
    With ``keep_outputs``, every graph output (and the integer version of
    each quantized output, as ``NAME.q``) is returned under ``outputs``."""
    executor = Executor(graph)
    ref_executor = Executor(reference) if reference is not None else None
    integer = dict(graph.metadata.get("integer_outputs", {}))
    wanted = set(integer.values())
    first = graph.outputs[0]
    logits, ref_logits = [], []
    kept: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(data), BATCH):
        x = data.x[start : start + BATCH]
        seen: dict[str, np.ndarray] = {}

        def observe(name: str, value: np.ndarray, seen: dict[str, np.ndarray] = seen) -> None:
            if name in wanted:
                seen[name] = value

        out = executor.run({graph.inputs[0]: x}, observe=observe if keep_outputs else None)
        logits.append(out[first])
        if ref_executor is not None and reference is not None:
            ref_logits.append(ref_executor.run({reference.inputs[0]: x})[reference.outputs[0]])
        if keep_outputs:
            for name, value in out.items():
                kept.setdefault(name, []).append(value)
            for name, int_name in integer.items():
                kept.setdefault(f"{name}.q", []).append(seen[int_name])
    result: dict[str, Any] = {"images": len(data)}
    y = np.concatenate(logits)
    if data.y is not None:
        result["top1"] = _topk(y, data.y, 1)
        result["top5"] = _topk(y, data.y, 5)
    if ref_logits:
        r = np.concatenate(ref_logits)
        result["agreement_top1"] = (
            float((y.argmax(1) == r.argmax(1)).mean()) if y.ndim == 2 else float("nan")
        )
        result["max_abs_diff"] = float(np.abs(y.astype(np.float64) - r).max())
        if data.y is not None:
            result["reference_top1"] = _topk(r, data.y, 1)
    if keep_outputs:
        result["outputs"] = {k: np.concatenate(v) for k, v in kept.items()}
    return result
