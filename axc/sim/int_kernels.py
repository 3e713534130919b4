"""Bit-accurate kernels for the integer ops (docs/arithmetic.md).

Element-wise work (requantization, quantization, the integer add) runs in
Numba, parallel over rows with ``prange``, compiled once and cached on disk.
Exact-multiplier products run as BLAS calls on float32 operands, with the
reduction split into chunks short enough that every partial sum stays below
2^24 and so is exact in float32; chunks are summed in float64 (exact below
2^53). Results are therefore the exact integer sums, at BLAS speed.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np

from axc.sim.jit import parallel_kernel
from axc.sim.kernels import (
    _U,
    PLANS,
    _im2col2d,
    _pad_spatial,
    _pool_windows,
    _windows,
    im2col2d_minor,
    kernel,
    pad_minor,
    to_major,
    to_minor,
)

__all__ = ["exact_matmul", "requantize"]

_EXACT_FLOAT32 = 1 << 24
_EXACT_FLOAT64 = 1 << 53
_DIRECT_MAX_CHANNELS = 4  # deeper 3x3 layers: patch matrix and BLAS (measured faster)
_IM2COL_BYTES = 128 << 20  # bound on one im2col buffer; larger batches are processed in slices


# ------------------------------------------------------------- numba parts
@parallel_kernel
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


_BIG = np.int64(1) << 62


@numba.njit(cache=True, nogil=True)
def _finish_row(
    row: np.ndarray,
    dst: np.ndarray,
    small: bool,
    off: int,
    acc_bits: int,
    float_mode: bool,
    m: int,
    s: int,
    f: float,
    zp: int,
    qmin: int,
    qmax: int,
) -> None:  # pragma: no cover - compiled
    """dst = saturate(requantize(wrap(int(row) + off))), one loop per case so
    that each vectorizes.

    ``small``: every value of ``row`` fits int32 (float32 sums are exact only
    below 2^24), so it converts through int32, which AVX2 does in vector form.
    Accumulators of at most 32 bits are kept visibly 32-bit (a truncation that
    cannot change them), so acc * m becomes a 32x32->64-bit vector multiply;
    the arithmetic shift is a logical shift of acc * m + half + 2^62, minus
    2^62 >> s (|acc * m| < 2^62 since m < 2^31)."""
    n = row.size
    half_range = np.int64(1) << (min(acc_bits, 63) - 1)
    mask = (half_range << 1) - 1
    if float_mode:
        f32 = np.float32(f)
        for k in range(n):
            t = np.int64(np.int32(row[k])) if small else np.int64(row[k])
            acc = t + off
            if acc_bits < 64:
                acc = ((acc + half_range) & mask) - half_range
            y = np.int64(np.rint(np.float32(acc) * f32)) + zp
            dst[k] = min(max(y, qmin), qmax)
    elif acc_bits <= 32:
        base = (np.int64(1) << (s - 1)) + _BIG
        corr = (_BIG >> s) - zp
        us = np.uint64(s)
        m32 = np.int64(np.int32(m))
        if small and acc_bits == 32:
            for k in range(n):
                acc = np.int64(np.int32(np.int64(np.int32(row[k])) + off))
                y = np.int64(np.uint64(acc * m32 + base) >> us) - corr
                dst[k] = min(max(y, qmin), qmax)
        else:
            for k in range(n):
                acc = ((np.int64(row[k]) + off + half_range) & mask) - half_range
                acc = np.int64(np.int32(acc))
                y = np.int64(np.uint64(acc * m32 + base) >> us) - corr
                dst[k] = min(max(y, qmin), qmax)
    else:
        half = np.int64(1) << (s - 1)
        for k in range(n):
            acc = np.int64(row[k]) + off
            if acc_bits < 64:
                acc = ((acc + half_range) & mask) - half_range
            y = ((acc * m + half) >> s) + zp
            dst[k] = min(max(y, qmin), qmax)


@parallel_kernel
def _finish3(
    total: np.ndarray,
    small: bool,
    offset: np.ndarray,
    acc_bits: int,
    float_mode: bool,
    mult: np.ndarray,
    shift: np.ndarray,
    scale: np.ndarray,
    zp: int,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """acc = wrap(int(total) + offset[c]), then requantized in one pass: with the
    fixed-point rule, or (``float_mode``) round_half_even(float32(acc) * scale)."""
    n, c = total.shape[0], total.shape[1]
    for i in numba.prange(n * c):
        a, ch = i // c, i % c
        _finish_row(
            total[a, ch],
            out[a, ch],
            small,
            offset[ch],
            acc_bits,
            float_mode,
            mult[ch] if mult.size > 1 else mult[0],
            shift[ch] if shift.size > 1 else shift[0],
            scale[ch] if scale.size > 1 else scale[0],
            zp,
            qmin,
            qmax,
        )


@parallel_kernel
def _conv3x3_minor(
    xp: np.ndarray,
    w: np.ndarray,
    channels: int,
    hp: int,
    wp: int,
    n: int,
    oh: int,
    ow: int,
    sh: int,
    sw: int,
    offset: np.ndarray,
    acc_bits: int,
    float_mode: bool,
    mult: np.ndarray,
    shift: np.ndarray,
    scale: np.ndarray,
    zp: int,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """A 3x3 convolution (any stride, no dilation) of a flat, padded,
    batch-minor (C, hp, wp, N) float32 input, requantized into a flat
    (M, oh, ow, N) output. Each channel's nine products are summed along a
    run of N images at once (one vector loop, no patch matrix), and each
    output pixel is requantized as soon as its sums are done. Every partial
    sum is an integer below 2^24 (the caller checks), so float32 holds it
    exactly in any order."""
    m_all = w.shape[0]
    line = wp * n
    for task in numba.prange(m_all * oh):
        m, i = task // oh, task % oh
        acc = np.empty(n, np.float32)
        for j in range(ow):
            acc[:] = 0
            for c in range(channels):
                r0 = _U(((c * hp + i * sh) * wp + j * sw) * n)
                r1 = r0 + _U(line)
                r2 = r1 + _U(line)
                q = c * 9
                w0, w1, w2 = w[m, q], w[m, q + 1], w[m, q + 2]
                w3, w4, w5 = w[m, q + 3], w[m, q + 4], w[m, q + 5]
                w6, w7, w8 = w[m, q + 6], w[m, q + 7], w[m, q + 8]
                for t in range(n):
                    u = _U(t)
                    a = w0 * xp[r0 + u] + w1 * xp[r0 + _U(n) + u] + w2 * xp[r0 + _U(2 * n) + u]
                    b = w3 * xp[r1 + u] + w4 * xp[r1 + _U(n) + u] + w5 * xp[r1 + _U(2 * n) + u]
                    d = w6 * xp[r2 + u] + w7 * xp[r2 + _U(n) + u] + w8 * xp[r2 + _U(2 * n) + u]
                    acc[t] += a + b + d
            start = ((m * oh + i) * ow + j) * n
            _finish_row(
                acc,
                out[start : start + n],
                True,
                offset[m],
                acc_bits,
                float_mode,
                mult[m] if mult.size > 1 else mult[0],
                shift[m] if shift.size > 1 else shift[0],
                scale[m] if scale.size > 1 else scale[0],
                zp,
                qmin,
                qmax,
            )


@parallel_kernel
def _quantize3(
    x: np.ndarray,
    offset_first: bool,
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
        zf = np.float32(z)
        for k in range(r):
            v = np.float32(x[a, ch, k] / s)
            # ONNX QuantizeLinear: round(x / s) + z; onnxruntime's pooling: round(x / s + z)
            q = np.int64(np.rint(np.float32(v + zf))) if offset_first else np.int64(np.rint(v)) + z
            out[a, ch, k] = min(max(q, qmin), qmax)


@parallel_kernel
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


@parallel_kernel
def _divide_round_half_up(
    total: np.ndarray, count: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    for i in numba.prange(total.size):
        c = count[i]
        # floor((2 * total + c) / (2 * c)): round half toward +inf, exact in integers
        out[i] = (2 * total[i] + c) // (2 * c)


# ------------------------------------------------------------ numpy parts
_PREPARED: dict[int, tuple[weakref.ref[np.ndarray], bool, np.ndarray, np.ndarray]] = {}


def _prepared(w: np.ndarray, zero_point: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Float32 weights (M, K) for BLAS and sum(w) per row, converted once per constant."""
    entry = _PREPARED.get(id(w))
    zw = np.asarray(zero_point, np.int64)
    raw = not zw.any()
    if entry is not None and entry[0]() is w and entry[1] == raw:
        return entry[2], entry[3], raw
    m = w.shape[0]
    wf = (w.astype(np.float32) if raw else _centered(w, zw, axis=0)).reshape(m, -1)
    sums = w.astype(np.int64).reshape(m, -1).sum(axis=1)
    if len(_PREPARED) > 4096:
        _PREPARED.clear()
    _PREPARED[id(w)] = (weakref.ref(w), raw, wf, sums)
    return wf, sums, raw


def _as3(x: np.ndarray, axis: int) -> np.ndarray:
    """View (outer, channels, inner) with the channel axis in the middle."""
    outer = math.prod(x.shape[:axis])
    return x.reshape(outer, x.shape[axis] if x.ndim else 1, -1)


def requantize(acc: np.ndarray, attr: dict[str, Any], axis: int = 1) -> np.ndarray:
    """Apply a requantizer (``attr`` as stored on the node) along channel ``axis``."""
    acc = np.ascontiguousarray(acc, dtype=np.int64)
    if attr.get("mode") == "float32":
        shaped = acc.reshape(1) if acc.ndim == 0 else acc
        three = _as3(shaped, min(axis, shaped.ndim - 1))
        return finish(
            three, np.zeros(three.shape[1], np.int64), {"acc_bits": 64, "requant": attr}
        ).reshape(acc.shape)
    out = np.empty(acc.shape, storage(attr["qmin"], attr["qmax"]))
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


def storage(qmin: int, qmax: int) -> np.dtype:
    """The smallest numpy integer type holding [qmin, qmax]."""
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= qmin and qmax <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class _Requant:
    """A node's requantizer attributes as the arrays the compiled kernels take."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        req = attrs["requant"]
        self.float_mode = req.get("mode") == "float32"
        one = np.ones(1, np.int64)
        self.mult = one if self.float_mode else np.asarray(req["multiplier"], np.int64)
        self.shift = one if self.float_mode else np.asarray(req["shift"], np.int64)
        self.scale = (
            np.asarray(req["scale"], np.float32) if self.float_mode else np.ones(1, np.float32)
        )
        self.acc_bits = int(attrs["acc_bits"])
        self.zp, self.qmin, self.qmax = int(req["zero_point"]), int(req["qmin"]), int(req["qmax"])
        self.dtype = storage(self.qmin, self.qmax)

    def __call__(
        self, total: np.ndarray, offset: np.ndarray, channel_last: bool = False
    ) -> np.ndarray:
        out = np.empty(total.shape, self.dtype)
        # (rows, C) is requantized as its transpose, (1, C, rows): one strided
        # row per channel
        _finish3(
            total.T[None] if channel_last else total,
            total.dtype in (np.float32, np.int32, np.int16, np.int8, np.uint8, np.uint16),
            offset,
            self.acc_bits,
            self.float_mode,
            self.mult,
            self.shift,
            self.scale,
            self.zp,
            self.qmin,
            self.qmax,
            out.T[None] if channel_last else out,
        )
        return out


def finish(
    total: np.ndarray, offset: np.ndarray, attrs: dict[str, Any], channel_last: bool = False
) -> np.ndarray:
    """Accumulator sums (N, C, R), or (rows, C) with ``channel_last``, exact
    integers in any numeric dtype, plus a per-channel integer offset (bias and
    zero-point corrections), wrapped to ``acc_bits`` and requantized, in one
    pass, into the output's storage type."""
    return _Requant(attrs)(total, np.ascontiguousarray(offset, np.int64), channel_last)


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


def _operand_bound(dtype: np.dtype, zero_point: Any, raw: bool) -> int:
    info = np.iinfo(dtype)
    if raw:
        return int(max(abs(info.min), abs(info.max)))
    return _bound(dtype, zero_point)


def _accumulate(w: np.ndarray, cols: np.ndarray, bound_w: int, bound_x: int) -> np.ndarray:
    """``w @ cols`` ((M, K) by (N, K, P) or (K, Q), integer-valued floats) exactly."""
    k = w.shape[1]
    per_term = max(1, bound_w * bound_x)
    if per_term >= _EXACT_FLOAT32:
        return np.matmul(w.astype(np.float64), cols.astype(np.float64))
    chunk = max(1, (_EXACT_FLOAT32 - 1) // per_term)
    if k <= chunk:
        return np.matmul(w, cols)
    pick = (slice(None),) * (cols.ndim - 2)
    total = np.matmul(w[:, :chunk], cols[(*pick, slice(0, chunk))]).astype(np.float64)
    for start in range(chunk, k, chunk):
        total += np.matmul(w[:, start : start + chunk], cols[(*pick, slice(start, start + chunk))])
    return total


def conv_output_shape(padded: Sequence[int], attrs: dict[str, Any]) -> list[int]:
    """Output spatial sizes of a convolution over an already padded (N, C, ...) input."""
    kernel, strides, dilations = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    return [
        (padded[2 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1
        for i in range(len(kernel))
    ]


def _holds(dtype: np.dtype, value: int) -> bool:
    """Whether ``value`` is representable in the numeric type ``dtype``."""
    if dtype.kind == "f":
        return True
    info = np.iinfo(dtype)
    return bool(info.min <= value <= info.max)


def _operands(x: np.ndarray, sub: int) -> np.ndarray:
    """float32(x) - sub."""
    y = x.astype(np.float32)
    if sub:
        y -= np.float32(sub)
    return y


def direct3x3_ok(attrs: dict[str, Any], channels: int) -> bool:
    """Whether :func:`direct3x3` takes a layer of these attributes over this
    many (padded, batch-minor) input channels; deeper inputs run faster
    through the patch matrix and BLAS (measured)."""
    return bool(
        attrs["group"] == 1
        and channels <= _DIRECT_MAX_CHANNELS
        and tuple(attrs["kernel_shape"]) == (3, 3)
        and tuple(attrs["dilations"]) == (1, 1)
    )


def direct3x3(
    xp: np.ndarray,
    weights: np.ndarray,
    attrs: dict[str, Any],
    out_spatial: Sequence[int],
    offset: np.ndarray,
    requant: _Requant,
) -> np.ndarray:
    """A 3x3 layer over a padded batch-minor float32 input (C, Hp, Wp, N) and
    float32 weights (M, C * 9), requantized: (M, OH, OW, N). No patch matrix;
    see :func:`_conv3x3_minor`. The caller checks that every partial sum is
    an integer below 2^24."""
    c, hp, wp, n = xp.shape
    out = np.empty((weights.shape[0], *out_spatial, n), requant.dtype)
    _conv3x3_minor(
        xp.reshape(-1),
        weights,
        c,
        hp,
        wp,
        n,
        out_spatial[0],
        out_spatial[1],
        attrs["strides"][0],
        attrs["strides"][1],
        offset,
        requant.acc_bits,
        requant.float_mode,
        requant.mult,
        requant.shift,
        requant.scale,
        requant.zp,
        requant.qmin,
        requant.qmax,
        out.reshape(-1),
    )
    return out


def minor_out_spatial(attrs: dict[str, Any], xt_shape: Sequence[int]) -> list[int]:
    """Output size of a 2-D convolution over a batch-minor (C, H, W, N) input."""
    c, h, w, n = xt_shape
    pads = attrs["pads"]
    return conv_output_shape([n, c, h + pads[0] + pads[2], w + pads[1] + pads[3]], attrs)


def small_map(attrs: dict[str, Any], x_shape: Sequence[Any]) -> bool:
    """Whether a convolution over an (N, C, H, W) input of this shape is 2-D with
    at most 64 output pixels: the layers that run batch-minor (minor.py)."""
    if len(attrs["kernel_shape"]) != 2 or len(x_shape) != 4:
        return False
    c, h, w = x_shape[1:]
    return math.prod(minor_out_spatial(attrs, (c, h, w, 1))) <= 64


def minor_batches(
    xt: np.ndarray,
    m: int,
    out_spatial: Sequence[int],
    step: int,
    sums: Callable[[np.ndarray], np.ndarray],
    finish: Any,
    offset: np.ndarray,
) -> np.ndarray:
    """A convolution's output (M, OH, OW, N) over a batch-minor input ``xt``,
    ``step`` images at a time: ``sums`` gives a slice's accumulators
    (M, P * count), requantized by ``finish`` as they lie."""
    n = xt.shape[-1]
    out: np.ndarray | None = None
    for start in range(0, n, step):
        part = xt if step >= n else np.ascontiguousarray(xt[..., start : start + step])
        count = part.shape[-1]
        done = finish(sums(part)[None], offset).reshape(m, *out_spatial, count)
        if step >= n:
            return done
        if out is None:
            out = np.empty((m, *out_spatial, n), done.dtype)
        out[..., start : start + count] = done
    assert out is not None
    return out


class _Linear:
    """What a QConv or QGemm computes before seeing its input: float32 weights,
    the per-channel offset (bias and zero-point corrections) and the requantizer."""

    def __init__(self, attrs: dict[str, Any], w: np.ndarray, bias: np.ndarray | None) -> None:
        self.attrs = attrs
        self.zx = int(attrs["x_zero_point"])
        m = w.shape[0]
        # With symmetric weights, sum((x - zx) w) = sum(x w) - zx sum(w): the raw
        # activations are narrower than centered ones, so float32 chunks are longer.
        # Padding holds zx, whose products the correction cancels too.
        self.wf, sums, self.raw = _prepared(w, attrs["w_zero_point"])
        offset = -self.zx * sums if self.raw else np.zeros(m, np.int64)
        if bias is not None:
            offset = offset + bias.astype(np.int64)
        self.offset = np.ascontiguousarray(offset, np.int64)
        self.bound_w = _operand_bound(w.dtype, attrs["w_zero_point"], self.raw)
        self.w_shape = w.shape
        self.requant = _Requant(attrs)
        self._bounds: dict[np.dtype, int] = {}

    def bound_x(self, dtype: np.dtype) -> int:
        if dtype not in self._bounds:
            self._bounds[dtype] = _operand_bound(dtype, self.zx, self.raw)
        return self._bounds[dtype]

    def input(self, x: np.ndarray) -> np.ndarray:
        """The input as float32 operands: raw codes, or centered on the zero point."""
        return x.astype(np.float32) if self.raw else _centered(x, self.zx)


class _QConv(_Linear):
    def __call__(self, args: Sequence[np.ndarray], finish: Any = None) -> list[np.ndarray]:
        finish = finish or self.requant
        x, attrs = args[0], self.attrs
        nd, group = len(attrs["kernel_shape"]), attrs["group"]
        m, cin = self.w_shape[0], self.w_shape[1]
        mg = m // group
        pads = attrs["pads"]
        padded = [*x.shape[:2], *(x.shape[2 + i] + pads[i] + pads[nd + i] for i in range(nd))]
        kernel_shape, strides = attrs["kernel_shape"], attrs["strides"]
        out_spatial = conv_output_shape(padded, attrs)
        pixels = math.prod(out_spatial)
        n = x.shape[0]
        pointwise = all(k == 1 for k in kernel_shape) and all(s == 1 for s in strides)
        k = cin * math.prod(kernel_shape)
        step = n if pointwise else max(1, _IM2COL_BYTES // max(1, pixels * k * 4))
        # Few output pixels: one GEMM over the whole batch, (K, N * P), beats N small ones.
        across = pixels <= 64
        if self.minor_ok(x.shape):
            return [to_major(self.minor(to_minor(x), finish))]
        # padded in the input's own type when the zero point fits it (padding
        # holds zx); float32 operands come from the patch copy, minus ``sub``
        xf = _pad_spatial(x if _holds(x.dtype, self.zx) else x.astype(np.float32), pads, self.zx)
        sub = 0 if self.raw else self.zx
        bound_x = self.bound_x(x.dtype)
        total: np.ndarray | None = None
        for start in range(0, n, step):
            part = xf[start : start + step]
            count = part.shape[0]
            for g in range(group):
                cols: np.ndarray
                if pointwise:
                    cols = _operands(part[:, g * cin : (g + 1) * cin], sub)
                    cols = cols.reshape(count, cin, pixels)
                    if across:
                        cols = np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(cin, -1)
                elif nd == 2 and pixels <= 256:  # numpy's strided copy wins on large maps
                    cols = _im2col2d(part, g * cin, cin, attrs, out_spatial, across, sub)
                else:
                    view = _windows(
                        _operands(part[:, g * cin : (g + 1) * cin], sub), attrs, out_spatial
                    )
                    kernel_axes = tuple(range(2 + nd, 2 + 2 * nd))
                    if across:
                        order = (1, *kernel_axes, 0, *range(2, 2 + nd))
                        cols = np.ascontiguousarray(view.transpose(order)).reshape(k, -1)
                    else:
                        order = (0, 1, *kernel_axes, *range(2, 2 + nd))
                        cols = np.ascontiguousarray(view.transpose(order)).reshape(count, k, pixels)
                y = _accumulate(self.wf[g * mg : (g + 1) * mg], cols, self.bound_w, bound_x)
                if across and step >= n and group == 1:
                    # requantize (M, N * P) as it lies, then move the narrow result to NCHW
                    out = finish(y[None], self.offset).reshape(m, n, pixels)
                    out = np.ascontiguousarray(out.transpose(1, 0, 2))
                    return [out.reshape(n, m, *out_spatial)]
                if across:  # (Mg, N * P) -> a (N, Mg, P) view
                    y = y.reshape(-1, count, pixels).transpose(1, 0, 2)
                if total is None:
                    if step >= n and group == 1:
                        total = y
                        break
                    total = np.empty((n, m, pixels), y.dtype)
                total[start : start + part.shape[0], g * mg : (g + 1) * mg] = y
        assert total is not None
        return [finish(total, self.offset).reshape(n, m, *out_spatial)]

    def minor_ok(self, x_shape: Sequence[Any]) -> bool:
        """Whether the batch-minor path takes an input of this (N, C, ...) shape:
        a small map (:func:`small_map`), not pointwise."""
        attrs = self.attrs
        if all(k == 1 for k in attrs["kernel_shape"]) and all(s == 1 for s in attrs["strides"]):
            return False
        return small_map(attrs, x_shape)

    def minor(self, xt: np.ndarray, finish: Any = None) -> np.ndarray:
        """The layer on a batch-minor (C, H, W, N) input, batch-minor out:
        (M, OH, OW, N). Its patch matrix (K, P * N) is built of contiguous
        copies N long, and the accumulators (M, P * N) are requantized as they
        lie."""
        finish = finish or self.requant
        attrs, group = self.attrs, self.attrs["group"]
        m, cin = self.w_shape[0], self.w_shape[1]
        mg = m // group
        out_spatial = minor_out_spatial(attrs, xt.shape)
        k = cin * math.prod(attrs["kernel_shape"])
        sub = 0 if self.raw else self.zx
        bound_x = self.bound_x(xt.dtype)
        if (
            finish is self.requant
            and direct3x3_ok(attrs, cin)
            and k * max(1, self.bound_w * bound_x) < _EXACT_FLOAT32
        ):
            xp = pad_minor(xt, attrs["pads"], self.zx - sub, sub)
            return direct3x3(xp, self.wf, attrs, out_spatial, self.offset, self.requant)

        def sums(part: np.ndarray) -> np.ndarray:
            # padding holds the zero point: the operand zx - sub
            ys = [
                _accumulate(
                    self.wf[g * mg : (g + 1) * mg],
                    im2col2d_minor(part, g * cin, cin, attrs, out_spatial, self.zx - sub, sub),
                    self.bound_w,
                    bound_x,
                )
                for g in range(group)
            ]
            return ys[0] if group == 1 else np.concatenate(ys, axis=0)

        step = max(1, _IM2COL_BYTES // max(1, math.prod(out_spatial) * k * 4))
        return minor_batches(xt, m, out_spatial, step, sums, finish, self.offset)


class _QGemm(_Linear):
    def __call__(self, args: Sequence[np.ndarray], finish: Any = None) -> list[np.ndarray]:
        finish = finish or self.requant
        a = args[0]
        rows = a.reshape(-1, a.shape[-1])
        # (rows, K) by (K, N): the result lies channel-last, as requantized
        total = _accumulate(self.input(rows), self.wf.T, self.bound_x(a.dtype), self.bound_w)
        out = finish(total, self.offset, channel_last=True)
        return [out.reshape(*a.shape[:-1], self.w_shape[0])]

    def minor(self, xt: np.ndarray, finish: Any = None) -> np.ndarray:
        """The layer on a batch-minor (K, N) input, batch-minor (M, N) out: the
        accumulators come out one row per channel, as requantized."""
        finish = finish or self.requant
        total = _accumulate(self.wf, self.input(xt), self.bound_w, self.bound_x(xt.dtype))
        return finish(total[None], self.offset)[0]


def _bias(args: Sequence[np.ndarray | None]) -> np.ndarray | None:
    return args[2] if len(args) > 2 and args[2] is not None else None


def _multiplier(attrs: dict[str, Any]) -> Any:
    """The layer's approximate multiplier (attribute ``multiplier``, set from
    the node's annotation by the executor), or None for exact products."""
    spec = attrs.get("multiplier")
    if not spec:
        return None
    from axc.arith.multipliers import resolve

    m = resolve(str(spec), int(attrs.get("multiplier_bits", 8)))
    return None if m.is_exact else m


def _linear(op: str, attrs: dict[str, Any], w: np.ndarray, bias: np.ndarray | None) -> Any:
    m = _multiplier(attrs)
    if m is not None:
        from axc.sim.approx_kernels import ApproxConv, ApproxGemm

        return (ApproxConv if op == "QConv" else ApproxGemm)(attrs, w, bias, m)
    return (_QConv if op == "QConv" else _QGemm)(attrs, w, bias)


@kernel("QConv")
def qconv(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _linear("QConv", attrs, args[1], _bias(args))(args)


@kernel("QGemm")
def qgemm(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _linear("QGemm", attrs, args[1], _bias(args))(args)


def accumulate(plan: Any, op: str, args: Sequence[np.ndarray | None], bits: int) -> np.ndarray:
    """The accumulators of a prepared QConv or QGemm (``plan``) for ``args``:
    sum((x - x_zp)(w - w_zp)) + bias, wrapped to ``bits``, as int64 laid out
    as the output is."""

    def keep(total: np.ndarray, offset: np.ndarray, channel_last: bool = False) -> np.ndarray:
        shape = [1] * total.ndim
        shape[-1 if channel_last else 1] = -1
        acc = np.asarray(total).astype(np.int64) + offset.reshape(shape)
        return _wrap(acc, bits)

    return np.asarray(plan(args, finish=keep)[0])


def requantize_accumulators(plan: Any, op: str, acc: np.ndarray) -> np.ndarray:
    """The layer's output for accumulators ``acc`` (as :func:`accumulate` gives them)."""
    m = acc.shape[1] if op == "QConv" else acc.shape[-1]
    zero = np.zeros(m, np.int64)
    if op == "QConv":
        out = plan.requant(acc.reshape(acc.shape[0], m, -1), zero)
    else:
        out = plan.requant(acc.reshape(-1, m), zero, channel_last=True)
    return np.asarray(out).reshape(acc.shape)


class _Checked:
    """A QConv or QGemm with ``checksum``: also outputs each group's accumulator sum."""

    def __init__(self, inner: Any, op: str, attrs: dict[str, Any]) -> None:
        self.inner, self.op = inner, op
        self.requant = inner.requant
        self.bits = int(attrs["acc_bits"])
        self.groups = int(attrs.get("group", 1))

    def __call__(self, args: Sequence[np.ndarray], finish: Any = None) -> list[np.ndarray]:
        if finish is not None:
            return list(self.inner(args, finish=finish))
        return self.outputs(accumulate(self.inner, self.op, args, self.bits))

    def outputs(self, acc: np.ndarray) -> list[np.ndarray]:
        """The layer's outputs (value and sums) for accumulators ``acc``."""
        from axc.sim.protect_kernels import group_sums

        out = requantize_accumulators(self.inner, self.op, acc)
        return [out, group_sums(acc, self.groups, self.bits, self.op == "QConv")]


def _plan_linear(op: str) -> Callable[..., Any]:
    def plan(attrs: dict[str, Any], consts: Sequence[np.ndarray | None]) -> Any:
        w = consts[1]
        if w is None:
            return None
        prepared = _linear(op, attrs, w, _bias(consts))
        return _Checked(prepared, op, attrs) if attrs.get("checksum") else prepared

    return plan


PLANS["QConv"] = _plan_linear("QConv")
PLANS["QGemm"] = _plan_linear("QGemm")


@parallel_kernel
def _qadd_float32(
    a: np.ndarray,
    b: np.ndarray,
    ratio_a: float,
    ratio_b: float,
    fixed: float,
    qmin: int,
    qmax: int,
    out: np.ndarray,
) -> None:  # pragma: no cover
    """onnxruntime's QLinearAdd: fma(a, ra, fma(b, rb, fixed)) in float32, half to even.
    A float32 fused multiply-add is exact in float64 here: the product of two
    float32 values has at most 48 significant bits."""
    ra, rb, fx = np.float64(ratio_a), np.float64(ratio_b), np.float64(fixed)
    for i in numba.prange(a.size):
        t = np.float32(np.float64(b[i]) * rb + fx)
        t = np.float32(np.float64(a[i]) * ra + np.float64(t))
        out[i] = min(max(np.int64(np.rint(t)), qmin), qmax)


@kernel("QAdd")
def qadd(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    a, b = np.broadcast_arrays(args[0], args[1])
    a = np.ascontiguousarray(a).reshape(-1)
    b = np.ascontiguousarray(b).reshape(-1)
    out = np.empty(a.size, np.int64)
    if attrs.get("mode") == "float32":
        _qadd_float32(
            a,
            b,
            attrs["a_ratio"],
            attrs["b_ratio"],
            attrs["fixed"],
            attrs["qmin"],
            attrs["qmax"],
            out,
        )
        return [out.reshape(np.broadcast_shapes(args[0].shape, args[1].shape))]
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


class _Quantize:
    """A Quantize node's attributes as the arrays its kernel takes, made once."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.axis = attrs.get("axis")
        self.scale = np.asarray(attrs["scale"], np.float32)
        self.zp = np.asarray(attrs["zero_point"], np.int64)
        self.qmin, self.qmax = int(attrs["qmin"]), int(attrs["qmax"])
        self.dtype = storage(self.qmin, self.qmax)
        self.offset_first = bool(attrs.get("offset_first", False))

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        x = np.ascontiguousarray(args[0], np.float32)
        axis = self.axis
        use_axis = axis if axis is not None and self.scale.size > 1 else min(1, max(x.ndim - 1, 0))
        shaped = x if x.ndim else x.reshape(1)
        out = np.empty(shaped.shape, self.dtype)
        _quantize3(
            _as3(shaped, use_axis),
            self.offset_first,
            self.scale,
            self.zp,
            self.qmin,
            self.qmax,
            _as3(out, use_axis),
        )
        return [out.reshape(x.shape)]


class _Dequantize:
    """A Dequantize node: (q - zero_point) * scale in float32."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.axis = attrs.get("axis")
        self.scale = np.asarray(attrs["scale"], np.float32)
        self.zp = np.asarray(attrs["zero_point"], np.int64)
        self.per_tensor = self.scale.size == 1 and self.zp.size == 1

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        q = args[0]
        if self.per_tensor and q.dtype.itemsize <= 2 and q.dtype.kind in "iu":
            # q - z is an integer below 2^24 here, exact in float32: the same
            # product as through int64
            y = q.astype(np.float32)
            y -= np.float32(self.zp.reshape(()))
            y *= self.scale.reshape(())
            return [y]
        from axc.arith.quant import dequantize

        return [dequantize(q, self.scale, self.zp, self.axis)]


@kernel("Quantize")
def quantize_op(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _Quantize(attrs)(args)


@kernel("Dequantize")
def dequantize_op(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _Dequantize(attrs)(args)


PLANS["Quantize"] = lambda attrs, consts: _Quantize(attrs)
PLANS["Dequantize"] = lambda attrs, consts: _Dequantize(attrs)
