"""Activation statistics for quantization, gathered by running the float model.

Per tensor: the exact minimum and maximum, and a bounded random sample of
values (at most ``SAMPLE`` per tensor, so memory does not grow with the data
set) for the percentile and MSE methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from axc.arith import IntSpec, choose_params, dequantize, quantize
from axc.directives import call_form
from axc.ir import Graph
from axc.sim import Executor

__all__ = ["Calibration", "MinMax", "Mse", "Percentile", "TensorStats", "collect_stats"]

SAMPLE = 1 << 16
BATCH = 64


@call_form("minmax")
@dataclass(frozen=True)
class MinMax:
    """The observed range."""


@call_form("percentile")
@dataclass(frozen=True)
class Percentile:
    """The range between the (100 - p)-th and p-th percentiles."""

    p: float = 99.99

    def __post_init__(self) -> None:
        if not 50.0 < self.p <= 100.0:
            raise ValueError(f"percentile must lie in (50, 100], got {self.p}")


@call_form("mse")
@dataclass(frozen=True)
class Mse:
    """The clipping range that minimizes the mean squared quantization error."""


Calibration = MinMax | Percentile | Mse


@dataclass
class TensorStats:
    low: float = np.inf
    high: float = -np.inf
    sample: list[np.ndarray] = field(default_factory=list)
    seen: int = 0

    def add(self, value: np.ndarray, rng: np.random.Generator) -> None:
        flat = value.reshape(-1)
        if flat.size == 0:
            return
        self.low = min(self.low, float(flat.min()))
        self.high = max(self.high, float(flat.max()))
        self.seen += flat.size
        keep = min(flat.size, SAMPLE)
        self.sample.append(flat if keep == flat.size else rng.choice(flat, keep, replace=False))
        total = sum(s.size for s in self.sample)
        if total > 2 * SAMPLE:
            merged = np.concatenate(self.sample)
            self.sample = [rng.choice(merged, SAMPLE, replace=False)]

    def values(self) -> np.ndarray:
        return np.concatenate(self.sample) if self.sample else np.zeros(1, np.float32)

    def range(self, method: Calibration, spec: IntSpec) -> tuple[float, float]:
        if isinstance(method, Percentile):
            values = self.values()
            low = float(np.percentile(values, 100.0 - method.p))
            high = float(np.percentile(values, method.p))
            return low, high
        if isinstance(method, Mse):
            return _mse_range(self.values(), self.low, self.high, spec)
        return self.low, self.high


def _mse_range(values: np.ndarray, low: float, high: float, spec: IntSpec) -> tuple[float, float]:
    best, best_err = (low, high), np.inf
    for fraction in np.linspace(0.2, 1.0, 41):
        lo, hi = low * fraction, high * fraction
        scale, zero = choose_params(lo, hi, spec)
        q = quantize(values, scale, zero, spec.qmin, spec.qmax)
        err = float(np.mean((dequantize(q, scale, zero) - values) ** 2))
        if err < best_err:
            best, best_err = (lo, hi), err
    return best


def collect_stats(
    graph: Graph, x: np.ndarray, tensors: Iterable[str], seed: int = 0
) -> dict[str, TensorStats]:
    """Run ``graph`` (float) on ``x`` in batches and gather statistics of ``tensors``."""
    wanted = set(tensors)
    stats = {name: TensorStats() for name in wanted}
    rng = np.random.default_rng(seed)
    executor = Executor(graph)

    def observe(name: str, value: np.ndarray) -> None:
        if name in wanted and value.dtype.kind == "f":
            stats[name].add(value, rng)

    for start in range(0, x.shape[0], BATCH):
        executor.run({graph.inputs[0]: x[start : start + BATCH]}, observe=observe)
    return stats
