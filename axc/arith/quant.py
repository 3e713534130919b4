"""Integer ranges, quantization parameters, and float <-> integer conversion.

docs/arithmetic.md is the specification; this module is its implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "IntSpec",
    "choose_params",
    "dequantize",
    "int_range",
    "quantize",
]


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """The representable range of a ``bits``-wide integer."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


@dataclass(frozen=True)
class IntSpec:
    """How a tensor is quantized: width, signedness and scheme."""

    bits: int
    signed: bool
    symmetric: bool

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ValueError(f"bit width {self.bits} outside 2..16")

    @property
    def qmin(self) -> int:
        return int_range(self.bits, self.signed)[0]

    @property
    def qmax(self) -> int:
        return int_range(self.bits, self.signed)[1]


def choose_params(
    low: np.ndarray | float, high: np.ndarray | float, spec: IntSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point covering [low, high] (element-wise, for per-channel).

    The range is first widened to include 0, so that 0.0 is exactly
    representable (zero padding and ReLU depend on it).

    * symmetric: ``scale = max(|low|, |high|) / q``, with ``q = 2^(b-1) - 1``
      (the range is narrow, -127..127 for int8, so that it is symmetric); the
      zero point is 0 for signed types and 2^(b-1) for unsigned ones;
    * asymmetric: ``scale = (high - low) / (qmax - qmin)`` and
      ``zero_point = round_half_even(qmin - low / scale)``, clamped to the range.

    A range of zero width gets scale 1."""
    lo = np.minimum(np.asarray(low, dtype=np.float64), 0.0)
    hi = np.maximum(np.asarray(high, dtype=np.float64), 0.0)
    if spec.symmetric:
        q = (1 << (spec.bits - 1)) - 1
        scale = np.maximum(np.abs(lo), np.abs(hi)) / q
        zero = np.full(scale.shape, 0 if spec.signed else 1 << (spec.bits - 1), np.int64)
        scale = np.where(scale > 0, scale, 1.0)
        return scale.astype(np.float32), zero
    scale = (hi - lo) / (spec.qmax - spec.qmin)
    scale = np.where(scale > 0, scale, 1.0)
    zero = np.clip(np.rint(spec.qmin - lo / scale), spec.qmin, spec.qmax).astype(np.int64)
    return scale.astype(np.float32), zero


def _along(value: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    if axis is None or value.ndim == 0 or value.size == 1:
        return value.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return value.reshape(shape)


def quantize(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    qmin: int,
    qmax: int,
    axis: int | None = None,
) -> np.ndarray:
    """``clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`` as int64.

    The division is done in float32, as ONNX QuantizeLinear specifies."""
    s = _along(np.asarray(scale, np.float32), axis, x.ndim)
    z = _along(np.asarray(zero_point, np.int64), axis, x.ndim)
    q = np.rint(np.asarray(x, np.float32) / s).astype(np.int64) + z
    return np.clip(q, qmin, qmax)


def dequantize(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int | None = None
) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32."""
    s = _along(np.asarray(scale, np.float32), axis, q.ndim)
    z = _along(np.asarray(zero_point, np.int64), axis, q.ndim)
    return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)
