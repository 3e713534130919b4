"""Kernels of the protection ops (docs/protection.md): range restriction, the
ABFT checksum check, and the redundancy voter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from axc.sim.kernels import _im2col2d, _pad_spatial, kernel

__all__: list[str] = []


def _per_channel(values: Any, ndim: int, axis: int | None) -> np.ndarray:
    v = np.asarray(values)
    if v.size == 1 or axis is None:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


@kernel("RangeRestrict")
def range_restrict(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    low = _per_channel(attrs["low"], x.ndim, attrs.get("axis"))
    high = _per_channel(attrs["high"], x.ndim, attrs.get("axis"))
    if attrs.get("action", "clip") == "zero":
        outside = (x < low) | (x > high)
        return [np.where(outside, np.zeros((), x.dtype), x)]
    return [np.minimum(np.maximum(x, low.astype(x.dtype)), high.astype(x.dtype))]


def _wrap(acc: np.ndarray, bits: int) -> np.ndarray:
    half = np.int64(1) << np.int64(bits - 1)
    return ((acc + half) & ((half << np.int64(1)) - np.int64(1))) - half


def group_sums(acc: np.ndarray, groups: int, bits: int, conv: bool) -> np.ndarray:
    """Each group's accumulator sum, wrapped: (N, M, ...) -> (N, G, ...) for a
    convolution, (..., M) -> (..., 1) for a dense layer."""
    if conv:
        n, m = acc.shape[:2]
        total = acc.reshape(n, groups, m // groups, *acc.shape[2:]).sum(axis=2)
    else:
        total = acc.sum(axis=-1, keepdims=True)
    return _wrap(total.astype(np.int64), bits)


@kernel("AbftCheck")
def abft_check(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x, sums, wsum = args[0], args[1], args[2]
    bsum = args[3] if len(args) > 3 and args[3] is not None else None
    zx, bits = int(attrs["x_zero_point"]), int(attrs["acc_bits"])
    ws = wsum.astype(np.float64)
    if attrs["kind"] == "gemm":
        rows = x.reshape(-1, x.shape[-1]).astype(np.float64) - zx
        expected = (rows @ ws.reshape(-1)).reshape(*x.shape[:-1], 1)
        if bsum is not None:
            expected = expected + float(bsum.reshape(-1)[0])
    else:
        groups = int(attrs["group"])
        xp = _pad_spatial(x, attrs["pads"], zx)
        kernel_shape, strides, dil = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
        out_spatial = [
            (xp.shape[2 + i] - ((kernel_shape[i] - 1) * dil[i] + 1)) // strides[i] + 1
            for i in range(2)
        ]
        cin = ws.shape[1]
        expected = np.empty((x.shape[0], groups, out_spatial[0] * out_spatial[1]))
        for g in range(groups):
            cols = _im2col2d(xp, g * cin, cin, attrs, out_spatial, False, zx, np.float64)
            expected[:, g] = np.einsum("nkp,k->np", cols, ws[g].reshape(-1))
            if bsum is not None:
                expected[:, g] += float(bsum[g])
        expected = expected.reshape(x.shape[0], groups, *out_spatial)
    expected = _wrap(np.rint(expected).astype(np.int64), bits)
    differs = expected.reshape(x.shape[0], -1) != sums.astype(np.int64).reshape(x.shape[0], -1)
    return [differs.any(axis=1).astype(np.uint8)]


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.dtype(f"u{a.dtype.itemsize}")) if a.dtype.kind == "f" else a


@kernel("Vote")
def vote(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 and args[2] is not None else None
    n = a.shape[0]
    ab = _bits(a) == _bits(b)
    if c is None:  # duplication with comparison: flag any difference
        flag = ~ab.reshape(n, -1).all(axis=1)
        return [a, flag.astype(np.uint8)]
    ac, bc = _bits(a) == _bits(c), _bits(b) == _bits(c)
    out = np.where(ab | ac, a, np.where(bc, b, a))
    flag = ~(ab | ac | bc).reshape(n, -1).all(axis=1)  # some element has no majority
    return [out, flag.astype(np.uint8)]
