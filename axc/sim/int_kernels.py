"""Bit-accurate kernels for the integer ops (docs/arithmetic.md).

Element-wise work (requantization, quantization, the integer add) runs in
Numba, parallel over rows with ``prange``, compiled once and cached on disk.
Exact-multiplier products run as BLAS calls on float32 operands, with the
reduction split into chunks short enough that every partial sum stays below
2^24 and so is exact in float32; chunks are summed in float64 (exact below
2^53). Results are therefore the exact integer sums, at BLAS speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from axc.sim.kernels import _pad_spatial, _pool_windows, _windows, kernel

__all__ = ["exact_matmul", "requantize"]

_EXACT_FLOAT32 = 1 << 24
_EXACT_FLOAT64 = 1 << 53
_IM2COL_BYTES = 128 << 20  # bound on one im2col buffer; larger batches are processed in slices


# ------------------------------------------------------------- numba parts
@numba.njit(parallel=True, cache=True)
def _requant3(
    acc: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    zp: int,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    n, c, r = acc.shape
    for i in numba.prange(n * c):
        a, ch = i // c, i % c
        m = mult[ch] if mult.size > 1 else mult[0]
        s = shift[ch] if shift.size > 1 else shift[0]
        half = np.int64(1) << (s - 1)
        for k in range(r):
            y = ((acc[a, ch, k] * m + half) >> s) + zp
            out[a, ch, k] = min(max(y, qmin), qmax)


@numba.njit(parallel=True, cache=True)
def _quantize3(
    x: np.ndarray,
    inv: np.ndarray,
    scale: np.ndarray,
    zp: np.ndarray,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    n, c, r = x.shape
    for i in numba.prange(n * c):
        a, ch = i // c, i % c
        s = scale[ch] if scale.size > 1 else scale[0]
        z = zp[ch] if zp.size > 1 else zp[0]
        for k in range(r):
            q = np.int64(np.rint(np.float32(x[a, ch, k] / s))) + z
            out[a, ch, k] = min(max(q, qmin), qmax)


@numba.njit(parallel=True, cache=True)
def _qadd(
    a: np.ndarray,
    b: np.ndarray,
    za: int,
    zb: int,
    ma: int,
    mb: int,
    shift: int,
    zp: int,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> None:  # pragma: no cover
    half = np.int64(1) << (shift - 1)
    for i in numba.prange(a.size):
        acc = (np.int64(a[i]) - za) * ma + (np.int64(b[i]) - zb) * mb
        y = ((acc + half) >> shift) + zp
        out[i] = min(max(y, qmin), qmax)


@numba.njit(parallel=True, cache=True)
def _divide_round_half_up(
    total: np.ndarray, count: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    for i in numba.prange(total.size):
        c = count[i]
        # floor((2 * total + c) / (2 * c)): round half toward +inf, exact in integers
        out[i] = (2 * total[i] + c) // (2 * c)


# ------------------------------------------------------------ numpy parts
def _as3(x: np.ndarray, axis: int) -> np.ndarray:
    """View (outer, channels, inner) with the channel axis in the middle."""
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(outer, x.shape[axis] if x.ndim else 1, -1)


def requantize(acc: np.ndarray, attr: dict[str, Any], axis: int = 1) -> np.ndarray:
    """Apply a requantizer (``attr`` as stored on the node) along channel ``axis``."""
    acc = np.ascontiguousarray(acc, dtype=np.int64)
    out = np.empty_like(acc)
    shaped = acc if acc.ndim else acc.reshape(1)
    _requant3(
        _as3(shaped, min(axis, shaped.ndim - 1)),
        np.asarray(attr["multiplier"], np.int64),
        np.asarray(attr["shift"], np.int64),
        int(attr["zero_point"]),
        int(attr["qmin"]),
        int(attr["qmax"]),
        _as3(out.reshape(shaped.shape), min(axis, shaped.ndim - 1)),
    )
    return out


def _wrap(acc: np.ndarray, bits: int) -> np.ndarray:
    if bits >= 64:
        return acc
    half = np.int64(1) << (bits - 1)
    return ((acc + half) & ((half << 1) - 1)) - half


def exact_matmul(a: np.ndarray, b: np.ndarray, bound_a: int, bound_b: int) -> np.ndarray:
    """``a @ b`` for integer-valued operands with |a| <= bound_a and |b| <= bound_b,
    exactly, as int64.

    Float32 BLAS when one product fits its 24-bit mantissa, with the reduction
    chunked so partial sums stay below 2^24; float64 BLAS (exact below 2^53)
    for wider operands."""
    k = a.shape[-1]
    per_term = max(1, bound_a * bound_b)
    dtype: type[np.floating[Any]]
    if per_term < _EXACT_FLOAT32:
        limit, dtype = _EXACT_FLOAT32, np.float32
    else:
        limit, dtype = _EXACT_FLOAT64, np.float64
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    chunk = max(1, (limit - 1) // per_term)
    if k <= chunk:
        return (a @ b).astype(np.int64)
    total = np.zeros((a.shape[0], b.shape[1]), np.float64)
    for start in range(0, k, chunk):
        total += a[:, start : start + chunk] @ b[start : start + chunk]
    return total.astype(np.int64)


def _centered(x: np.ndarray, zero_point: Any, axis: int | None = None) -> np.ndarray:
    z = np.asarray(zero_point, np.float32)
    if axis is not None and z.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        z = z.reshape(shape)
    elif z.size == 1:
        z = z.reshape(())
    return x.astype(np.float32) - z


def _bound(x_dtype: np.dtype, zero_point: Any) -> int:
    info = np.iinfo(x_dtype)
    z = np.asarray(zero_point, np.int64)
    return int(max(np.abs(info.max - z).max(), np.abs(info.min - z).max()))


@kernel("QConv")
def qconv(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 and args[2] is not None else None
    nd, group = len(attrs["kernel_shape"]), attrs["group"]
    m, cin = w.shape[0], w.shape[1]
    mg = m // group
    x_bound, w_bound = (
        _bound(x.dtype, attrs["x_zero_point"]),
        _bound(w.dtype, attrs["w_zero_point"]),
    )
    xc = _pad_spatial(_centered(x, attrs["x_zero_point"]), attrs["pads"], 0.0)
    wc = _centered(w, attrs["w_zero_point"], axis=0).reshape(m, -1)
    out_spatial = [
        (xc.shape[2 + i] - ((attrs["kernel_shape"][i] - 1) * attrs["dilations"][i] + 1))
        // attrs["strides"][i]
        + 1
        for i in range(nd)
    ]
    pixels = int(np.prod(out_spatial))
    k = cin * int(np.prod(attrs["kernel_shape"]))
    acc = np.empty((x.shape[0], m, pixels), np.int64)
    step = max(1, _IM2COL_BYTES // max(1, pixels * k * 4))
    for start in range(0, x.shape[0], step):
        cols = _windows(xc[start : start + step], attrs, out_spatial)  # n, C, *O, *K
        n = cols.shape[0]
        for g in range(group):
            part = cols[:, g * cin : (g + 1) * cin]
            order = (0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd))
            matrix = np.ascontiguousarray(part.transpose(order)).reshape(n * pixels, k)
            y = exact_matmul(matrix, wc[g * mg : (g + 1) * mg].T, x_bound, w_bound)
            acc[start : start + n, g * mg : (g + 1) * mg] = y.reshape(n, pixels, mg).transpose(
                0, 2, 1
            )
    if bias is not None:
        acc += bias.astype(np.int64).reshape(1, m, 1)
    acc = _wrap(acc, attrs["acc_bits"])
    return [requantize(acc, attrs["requant"]).reshape(x.shape[0], m, *out_spatial)]


@kernel("QGemm")
def qgemm(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    a, w = args[0], args[1]
    bias = args[2] if len(args) > 2 and args[2] is not None else None
    acc = exact_matmul(
        _centered(a, attrs["x_zero_point"]),
        np.ascontiguousarray(_centered(w, attrs["w_zero_point"], axis=0).T),
        _bound(a.dtype, attrs["x_zero_point"]),
        _bound(w.dtype, attrs["w_zero_point"]),
    )
    if bias is not None:
        acc += bias.astype(np.int64).reshape(1, -1)
    return [requantize(_wrap(acc, attrs["acc_bits"]), attrs["requant"])]


@kernel("QAdd")
def qadd(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    a, b = np.broadcast_arrays(args[0], args[1])
    a = np.ascontiguousarray(a).reshape(-1)
    b = np.ascontiguousarray(b).reshape(-1)
    out = np.empty(a.size, np.int64)
    _qadd(
        a,
        b,
        attrs["a_zero_point"],
        attrs["b_zero_point"],
        attrs["a_multiplier"],
        attrs["b_multiplier"],
        attrs["shift"],
        attrs["zero_point"],
        attrs["qmin"],
        attrs["qmax"],
        out,
    )
    return [out.reshape(np.broadcast_shapes(args[0].shape, args[1].shape))]


def _average(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    total = np.ascontiguousarray(total, np.int64)
    count = np.ascontiguousarray(np.broadcast_to(count, total.shape), np.int64)
    out = np.empty_like(total)
    _divide_round_half_up(total.reshape(-1), count.reshape(-1), out.reshape(-1))
    return out


@kernel("QAveragePool")
def qaverage_pool(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0].astype(np.int64) - int(attrs["x_zero_point"])
    nd = len(attrs["kernel_shape"])
    axes = tuple(range(-nd, 0))
    total = _pool_windows(x, attrs, 0).sum(axis=axes)
    ones = np.ones((1, 1, *x.shape[2:]), dtype=np.int64)
    counts = _pool_windows(ones, attrs, 0, 1 if attrs.get("count_include_pad") else 0)
    mean = _average(total, counts.sum(axis=axes))
    return [requantize(mean, attrs["requant"])]


@kernel("QGlobalAveragePool")
def qglobal_average_pool(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0].astype(np.int64) - int(attrs["x_zero_point"])
    axes = tuple(range(2, x.ndim))
    count = int(np.prod(x.shape[2:]))
    mean = _average(x.sum(axis=axes, keepdims=True), np.array(count))
    return [requantize(mean, attrs["requant"])]


@kernel("Requantize")
def requantize_op(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [requantize(args[0].astype(np.int64) - int(attrs["x_zero_point"]), attrs["requant"])]


@kernel("Quantize")
def quantize_op(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = np.ascontiguousarray(args[0], np.float32)
    axis = attrs.get("axis")
    scale = np.asarray(attrs["scale"], np.float32)
    zp = np.asarray(attrs["zero_point"], np.int64)
    out = np.empty(x.shape, np.int64)
    use_axis = axis if axis is not None and scale.size > 1 else min(1, max(x.ndim - 1, 0))
    shaped = x if x.ndim else x.reshape(1)
    _quantize3(
        _as3(shaped, use_axis),
        1.0 / scale,
        scale,
        zp,
        attrs["qmin"],
        attrs["qmax"],
        _as3(out.reshape(shaped.shape), use_axis),
    )
    return [out]


@kernel("Dequantize")
def dequantize_op(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    from axc.arith.quant import dequantize

    return [
        dequantize(
            args[0], np.asarray(attrs["scale"]), np.asarray(attrs["zero_point"]), attrs.get("axis")
        )
    ]
