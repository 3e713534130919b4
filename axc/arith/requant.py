"""Requantization: an integer accumulator back to a narrow output type.

As hardware does it, with no floating point:

    y = clamp(((acc * M) + 2^(S-1)) >> S) + zero_point, qmin, qmax)

``M`` is a 31-bit integer multiplier (in [2^30, 2^31)), ``S`` a right shift,
together approximating the real scale ``M * 2^-S`` to 31 significant bits.
``>>`` is an arithmetic shift (floor), so adding 2^(S-1) first rounds half
toward positive infinity ("round half up"). The product is computed in 64
bits: ``|acc| < 2^32`` and ``M < 2^31`` keep it below 2^63.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Requantizer", "apply_float32", "fixed_point", "float32_requantizer", "wrap"]

MULTIPLIER_BITS = 31


def fixed_point(real: float) -> tuple[int, int]:
    """``(M, S)`` with ``M * 2^-S`` the nearest 31-bit fixed-point value to ``real``."""
    if not real > 0 or not math.isfinite(real):
        raise ValueError(f"requantization scale must be positive and finite, got {real}")
    fraction, exponent = math.frexp(real)  # real = fraction * 2^exponent, 0.5 <= fraction < 1
    multiplier = round(fraction * (1 << MULTIPLIER_BITS))
    if multiplier == 1 << MULTIPLIER_BITS:
        multiplier //= 2
        exponent += 1
    shift = MULTIPLIER_BITS - exponent
    if shift < 1:
        raise ValueError(f"requantization scale {real} is too large (>= 2^30)")
    if shift > 62:  # the result is 0 (or -1) for any 32-bit accumulator: keep the shift legal
        multiplier >>= shift - 62
        shift = 62
        multiplier = max(multiplier, 0)
    return int(multiplier), int(shift)


@dataclass(frozen=True)
class Requantizer:
    """Per-tensor (one entry) or per-channel multipliers and shifts, the output
    zero point and the output range (a fused ReLU raises ``qmin``)."""

    multiplier: tuple[int, ...]
    shift: tuple[int, ...]
    zero_point: int
    qmin: int
    qmax: int

    @staticmethod
    def from_scale(real: np.ndarray | float, zero_point: int, qmin: int, qmax: int) -> Requantizer:
        pairs = [fixed_point(float(r)) for r in np.asarray(real, np.float64).reshape(-1)]
        return Requantizer(
            tuple(m for m, _ in pairs),
            tuple(s for _, s in pairs),
            int(zero_point),
            int(qmin),
            int(qmax),
        )

    def to_attr(self) -> dict[str, Any]:
        return {
            "multiplier": self.multiplier,
            "shift": self.shift,
            "zero_point": self.zero_point,
            "qmin": self.qmin,
            "qmax": self.qmax,
        }

    @staticmethod
    def from_attr(attr: dict[str, Any]) -> Requantizer:
        return Requantizer(
            tuple(attr["multiplier"]),
            tuple(attr["shift"]),
            int(attr["zero_point"]),
            int(attr["qmin"]),
            int(attr["qmax"]),
        )

    def real_scale(self) -> np.ndarray:
        return np.array([m / 2.0**s for m, s in zip(self.multiplier, self.shift, strict=True)])

    def apply(self, acc: np.ndarray, axis: int = 1) -> np.ndarray:
        """Reference implementation in numpy (the simulator's Numba kernel must agree)."""
        acc = np.asarray(acc, np.int64)
        m = np.asarray(self.multiplier, np.int64)
        s = np.asarray(self.shift, np.int64)
        if m.size > 1:
            shape = [1] * acc.ndim
            shape[axis] = -1
            m, s = m.reshape(shape), s.reshape(shape)
        y = (acc * m + (np.int64(1) << (s - 1))) >> s
        return np.clip(y + self.zero_point, self.qmin, self.qmax)


def float32_requantizer(scale: np.ndarray, zero_point: int, qmin: int, qmax: int) -> dict[str, Any]:
    """The requantizer of ONNX-quantized models as onnxruntime runs them:
    ``clamp(round_half_even(float32(acc) * scale) + zero_point)``, with the
    product rounded to float32 (docs/arithmetic.md, "Imported models")."""
    values = tuple(float(v) for v in np.asarray(scale, np.float32).reshape(-1))
    return {
        "mode": "float32",
        "scale": values,
        "zero_point": int(zero_point),
        "qmin": int(qmin),
        "qmax": int(qmax),
    }


def apply_float32(acc: np.ndarray, attr: dict[str, Any], axis: int = 1) -> np.ndarray:
    """Reference implementation of the float32 requantizer in numpy."""
    scale = np.asarray(attr["scale"], np.float32)
    if scale.size > 1:
        shape = [1] * acc.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
    y = np.rint(acc.astype(np.float32) * scale).astype(np.int64) + attr["zero_point"]
    return np.clip(y, attr["qmin"], attr["qmax"])


def wrap(acc: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap-around of an accumulator to ``bits`` bits."""
    if bits >= 64:
        return acc
    half = np.int64(1) << (bits - 1)
    return ((acc + half) & ((half << 1) - 1)) - half
