"""Float (and plain integer) kernels for every canonical op, in numpy.

Convolution and pooling work on any number of spatial dimensions through
``sliding_window_view``; the convolution contracts each group with one BLAS
call. These kernels are the reference the bit-accurate integer simulator
extends and the base of the ONNX conformance backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from axc.ir.ops import pool_output_dim
from axc.sim.jit import parallel_kernel

__all__ = ["KERNELS"]

Kernel = Callable[[dict[str, Any], Sequence[np.ndarray]], list[np.ndarray]]
KERNELS: dict[str, Kernel] = {}
# Optional per-op planners, for nodes whose operands after the first are all
# constant: given the node's attributes and its operands (None for the first,
# and for absent ones), return a callable on the operands that has done once,
# at Executor construction, what does not depend on the first (weight
# conversion, requantizer arrays); or None to use the plain kernel.
Prepared = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
PLANS: dict[str, Callable[[dict[str, Any], Sequence[np.ndarray | None]], Prepared | None]] = {}


def kernel(*ops: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        for op in ops:
            KERNELS[op] = fn
        return fn

    return register


def _wide(a: np.ndarray) -> np.ndarray:
    """Float operands of products are summed in float64 and rounded once at
    the end, so the result does not depend on BLAS's blocking (identical
    channels give identical outputs)."""
    return a.astype(np.float64) if a.dtype == np.float32 or a.dtype == np.float16 else a


def _activate(y: np.ndarray, activation: str | None) -> np.ndarray:
    if activation == "relu":
        return np.maximum(y, 0, out=y) if y.flags.writeable else np.maximum(y, 0)
    return y


# Numba wraps negative indices, a test in every access that also blocks
# vectorization; flat unsigned indices skip it.
_U = np.uint64


@parallel_kernel
def _pad2d_kernel(
    x: np.ndarray,
    planes: int,
    h: int,
    w: int,
    wp: int,
    top: int,
    left: int,
    fill: Any,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Flat (planes, h, w) into flat (planes, hp, wp) at offset (top, left), the rest ``fill``."""
    size = out.size // max(1, planes)
    for plane in numba.prange(planes):
        dst = _U(plane * size)
        for k in range(size):
            out[dst + _U(k)] = fill
        src = _U(plane * h * w)
        for y in range(h):
            row = dst + _U((y + top) * wp + left)
            for j in range(w):
                out[row + _U(j)] = x[src + _U(y * w + j)]


def _pad_spatial(x: np.ndarray, pads: Sequence[int], fill: float) -> np.ndarray:
    """``x`` with its trailing axes padded by ``pads`` (all begins, then all ends)."""
    nd = len(pads) // 2
    if not any(pads):
        return x
    lead = x.ndim - nd
    shape = list(x.shape[:lead]) + [x.shape[lead + i] + pads[i] + pads[nd + i] for i in range(nd)]
    if nd == 2 and min(pads) >= 0:
        out = np.empty(shape, x.dtype)
        h, w = x.shape[-2:]
        _pad2d_kernel(
            np.ascontiguousarray(x).reshape(-1),
            x.size // max(1, h * w),
            h,
            w,
            shape[-1],
            pads[0],
            pads[1],
            x.dtype.type(fill),
            out.reshape(-1),
        )
        return out
    out = np.full(shape, fill, x.dtype)
    inner: tuple[Any, ...] = (
        Ellipsis,
        *(slice(pads[i], pads[i] + x.shape[lead + i]) for i in range(nd)),
    )
    out[inner] = x
    return out


def _windows(x: np.ndarray, attrs: dict[str, Any], out_spatial: Sequence[int]) -> np.ndarray:
    """View of shape (N, C, *out_spatial, *kernel) over an already padded input."""
    nd = len(attrs["kernel_shape"])
    dil, strides = attrs["dilations"], attrs["strides"]
    span = [(k - 1) * d + 1 for k, d in zip(attrs["kernel_shape"], dil, strict=True)]
    view = sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    index: list[slice] = [slice(None), slice(None)]
    index += [slice(0, (o - 1) * s + 1, s) for o, s in zip(out_spatial, strides, strict=True)]
    index += [slice(None, None, d) for d in dil]
    return view[tuple(index)]


@parallel_kernel
def _im2col_kernel(
    x: np.ndarray,
    n: int,
    channels: int,
    hp: int,
    wp: int,
    c0: int,
    cin: int,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    oh: int,
    ow: int,
    sub: float,
    across: bool,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Rows (c, u, v) of the patch matrix of a padded (N, C, hp, wp) input, as
    float32(x) - sub, flat: (K, N, P) if ``across`` else (N, K, P). Flat
    unsigned indices (no negative-index wrapping) keep the copies tight."""
    p = oh * ow
    rows = cin * kh * kw
    sub32 = np.float32(sub)
    for row in numba.prange(rows):
        c, rest = row // (kh * kw), row % (kh * kw)
        u, v = rest // kw, rest % kw
        for a in range(n):
            src = _U((a * channels + c0 + c) * hp * wp + u * dh * wp + v * dw)
            dst = _U((row * n + a) * p) if across else _U((a * rows + row) * p)
            for i in range(oh):
                s = src + _U(i * sh * wp)
                d = dst + _U(i * ow)
                for j in range(ow):
                    out[d + _U(j)] = np.float32(x[s + _U(j * sw)]) - sub32


def _im2col2d(
    x: np.ndarray,
    c0: int,
    cin: int,
    attrs: dict[str, Any],
    out_spatial: list[int],
    across: bool,
    sub: float = 0.0,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Patch matrix of a padded 2-D input (any numeric type), as float32 minus
    ``sub``, written directly in the layout the GEMM wants: (K, N * P) when
    ``across`` (one GEMM over the batch), else (N, K, P)."""
    (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs["strides"]
    dh, dw = attrs["dilations"]
    oh, ow = out_spatial
    n, channels, hp, wp = x.shape
    k = cin * kh * kw
    out = np.empty((k, n, oh * ow) if across else (n, k, oh * ow), dtype)
    _im2col_kernel(
        np.ascontiguousarray(x).reshape(-1),
        n,
        channels,
        hp,
        wp,
        c0,
        cin,
        kh,
        kw,
        sh,
        sw,
        dh,
        dw,
        oh,
        ow,
        sub,
        across,
        out.reshape(-1),
    )
    return out.reshape(k, -1) if across else out


@parallel_kernel
def _im2col_minor_kernel(
    x: np.ndarray,
    n: int,
    h: int,
    w: int,
    top: int,
    left: int,
    fill: float,
    sub: float,
    c0: int,
    cin: int,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    oh: int,
    ow: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Rows (c, u, v) of the patch matrix (K, P * N) of a flat batch-minor
    (C, h, w, N) input, as float32(x) - sub, padding ``fill``: each (row,
    pixel) is one contiguous run of N values."""
    p = oh * ow
    fill32, sub32 = np.float32(fill), np.float32(sub)
    for row in numba.prange(cin * kh * kw):
        c, rest = row // (kh * kw), row % (kh * kw)
        u, v = rest // kw, rest % kw
        for i in range(oh):
            y = i * sh + u * dh - top
            for j in range(ow):
                z = j * sw + v * dw - left
                dst = _U((row * p + i * ow + j) * n)
                if y < 0 or y >= h or z < 0 or z >= w:
                    for a in range(n):
                        out[dst + _U(a)] = fill32
                else:
                    src = _U((((c0 + c) * h + y) * w + z) * n)
                    for a in range(n):
                        out[dst + _U(a)] = np.float32(x[src + _U(a)]) - sub32


@parallel_kernel
def _pad_minor_kernel(
    x: np.ndarray,
    n: int,
    h: int,
    w: int,
    hp: int,
    wp: int,
    top: int,
    left: int,
    fill: float,
    sub: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Flat batch-minor (C, h, w, N) into flat (C, hp, wp, N) float32(x) - sub
    at offset (top, left); the rest holds ``fill``."""
    fill32, sub32 = np.float32(fill), np.float32(sub)
    channels = out.size // max(1, hp * wp * n)
    for row in numba.prange(channels * hp):
        c, i = row // hp, row % hp
        y = i - top
        for j in range(wp):
            z = j - left
            dst = _U((row * wp + j) * n)
            if y < 0 or y >= h or z < 0 or z >= w:
                for a in range(n):
                    out[dst + _U(a)] = fill32
            else:
                src = _U(((c * h + y) * w + z) * n)
                for a in range(n):
                    out[dst + _U(a)] = np.float32(x[src + _U(a)]) - sub32


def pad_minor(x: np.ndarray, pads: Sequence[int], fill: float, sub: float) -> np.ndarray:
    """A batch-minor (C, H, W, N) tensor as float32 minus ``sub``, padded by
    ``pads`` (top, left, bottom, right) with ``fill``: (C, Hp, Wp, N)."""
    c, h, w, n = x.shape
    hp, wp = h + pads[0] + pads[2], w + pads[1] + pads[3]
    out = np.empty((c, hp, wp, n), np.float32)
    _pad_minor_kernel(
        np.ascontiguousarray(x).reshape(-1),
        n,
        h,
        w,
        hp,
        wp,
        pads[0],
        pads[1],
        fill,
        sub,
        out.reshape(-1),
    )
    return out


def to_minor(x: np.ndarray) -> np.ndarray:
    """(N, ...) as a contiguous batch-minor (..., N) copy."""
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))


def to_major(x: np.ndarray) -> np.ndarray:
    """A batch-minor (..., N) array back to (N, ...), contiguous."""
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))


def im2col2d_minor(
    xt: np.ndarray,
    c0: int,
    cin: int,
    attrs: dict[str, Any],
    out_spatial: Sequence[int],
    fill: float,
    sub: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Patch matrix (K, P * N), float32(x) - sub, of channels c0 .. c0 + cin of
    a batch-minor (C, H, W, N) input whose padding holds ``fill``, written
    into ``out`` when given. With the batch innermost every copy is N values
    long, where the (N, C, H, W) layout copies rows of a few pixels: several
    times faster on small maps."""
    (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs["strides"]
    dh, dw = attrs["dilations"]
    oh, ow = out_spatial
    _, h, w, n = xt.shape
    if out is None:
        out = np.empty((cin * kh * kw, oh * ow * n), np.float32)
    assert out.shape == (cin * kh * kw, oh * ow * n) and out.flags.c_contiguous
    _im2col_minor_kernel(
        np.ascontiguousarray(xt).reshape(-1),
        n,
        h,
        w,
        attrs["pads"][0],
        attrs["pads"][1],
        fill,
        sub,
        c0,
        cin,
        kh,
        kw,
        sh,
        sw,
        dh,
        dw,
        oh,
        ow,
        out.reshape(-1),
    )
    return out


@kernel("Conv")
def conv(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 and args[2] is not None else None
    nd, group = len(attrs["kernel_shape"]), attrs["group"]
    xp = _pad_spatial(x, attrs["pads"], 0)
    out_spatial = [
        (xp.shape[2 + i] - ((attrs["kernel_shape"][i] - 1) * attrs["dilations"][i] + 1))
        // attrs["strides"][i]
        + 1
        for i in range(nd)
    ]
    n, m = x.shape[0], w.shape[0]
    cin, mg = w.shape[1], m // group
    out_type = np.result_type(x, w)
    out = np.empty((n, m, *out_spatial), dtype=_wide(np.zeros(0, out_type)).dtype)
    if nd == 2 and x.dtype == np.float32 and w.dtype == np.float32:
        # patch matrix (K, N * P) in float32 (a copy, exact), products summed in float64
        for g in range(group):
            cols = _im2col2d(xp, g * cin, cin, attrs, out_spatial, True, dtype=np.float64)
            y = w[g * mg : (g + 1) * mg].reshape(mg, -1).astype(np.float64) @ cols
            out[:, g * mg : (g + 1) * mg] = y.reshape(mg, n, *out_spatial).transpose(1, 0, 2, 3)
        if b is not None:
            out += b.reshape((1, m) + (1,) * nd)
        return [_activate(out.astype(out_type, copy=False), attrs.get("activation"))]
    cols = _windows(xp, attrs, out_spatial)  # N, C, *O, *K
    k_axes = tuple(range(1, 2 + nd))[:1] + tuple(range(2 + nd, 2 + 2 * nd))
    for g in range(group):
        xg = _wide(cols[:, g * cin : (g + 1) * cin])
        wg = _wide(w[g * mg : (g + 1) * mg])
        # contract channel and kernel axes: (N, O..., Mg)
        y = np.tensordot(xg, wg, axes=(k_axes, (1, *range(2, 2 + nd))))
        out[:, g * mg : (g + 1) * mg] = np.moveaxis(y, -1, 1)
    if b is not None:
        out += b.reshape((1, m) + (1,) * nd)
    return [_activate(out.astype(out_type, copy=False), attrs.get("activation"))]


def _pool_windows(
    x: np.ndarray, attrs: dict[str, Any], fill: float, pad_fill: float | None = None
) -> np.ndarray:
    """Windows over ``x`` padded by the explicit pads (with ``pad_fill``) and, in
    ceil mode, by whatever the last window needs beyond them (with ``fill``)."""
    nd = len(attrs["kernel_shape"])
    pads = attrs["pads"]
    out_spatial = [
        pool_output_dim(
            x.shape[2 + i],
            attrs["kernel_shape"][i],
            attrs["strides"][i],
            pads[i],
            pads[nd + i],
            attrs["dilations"][i],
            attrs.get("ceil_mode", False),
        )
        for i in range(nd)
    ]
    xp = _pad_spatial(x, pads, fill if pad_fill is None else pad_fill)
    extra = [0] * (2 * nd)
    for i in range(nd):
        need = (
            (out_spatial[i] - 1) * attrs["strides"][i]
            + (attrs["kernel_shape"][i] - 1) * attrs["dilations"][i]
            + 1
        )
        extra[nd + i] = max(0, need - xp.shape[2 + i])
    return _windows(_pad_spatial(xp, extra, fill), attrs, out_spatial)


def _tiles(x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray | None:
    """For non-overlapping, unpadded windows that tile the input exactly: a
    reshaped view (N, C, O1, K1, O2, K2, ...) that reduces much faster than
    a strided window view."""
    kernel, nd = attrs["kernel_shape"], len(attrs["kernel_shape"])
    if (
        tuple(attrs["strides"]) != tuple(kernel)
        or any(attrs["pads"])
        or any(d != 1 for d in attrs["dilations"])
        or any(x.shape[2 + i] % kernel[i] for i in range(nd))
    ):
        return None
    shape = [x.shape[0], x.shape[1]]
    for i in range(nd):
        shape += [x.shape[2 + i] // kernel[i], kernel[i]]
    return x.reshape(shape)


@numba.njit(inline="always")
def _pick(a: Any, b: Any) -> Any:  # pragma: no cover - compiled
    """The larger of a and b, NaN if either is NaN (as numpy's max)."""
    return a if (a >= b or a != a) else b


@parallel_kernel
def _max_pool2d(
    x: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int,
    dw: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Each window clipped to the input (bounds computed once per output row
    and column), then scanned with no tests per element."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    u_lo, u_hi = np.empty(oh, np.int64), np.empty(oh, np.int64)
    v_lo, v_hi = np.empty(ow, np.int64), np.empty(ow, np.int64)
    for y in range(oh):
        r0 = y * sh - ph
        u_lo[y] = max(0, (-r0 + dh - 1) // dh)
        u_hi[y] = min(kh, (h - 1 - r0) // dh + 1)
    for z in range(ow):
        q0 = z * sw - pw
        v_lo[z] = max(0, (-q0 + dw - 1) // dw)
        v_hi[z] = min(kw, (w - 1 - q0) // dw + 1)
    src_all, dst_all = x.reshape(-1), out.reshape(-1)
    plain = kh == 2 and kw == 2 and sh == 2 and sw == 2 and dh == 1 and dw == 1
    if plain and ph == 0 and pw == 0 and 2 * oh <= h and 2 * ow <= w:
        # the common 2x2/2 window, no padding nor clipped edge: unrolled, no tests
        for i in numba.prange(n * c):
            src, dst = _U(i * h * w), _U(i * oh * ow)
            for y in range(oh):
                top = src + _U(2 * y * w)
                for z in range(ow):
                    t = top + _U(2 * z)
                    a0, a1 = src_all[t], src_all[t + _U(1)]
                    b0, b1 = src_all[t + _U(w)], src_all[t + _U(w + 1)]
                    dst_all[dst + _U(y * ow + z)] = _pick(_pick(a0, a1), _pick(b0, b1))
        return
    for i in numba.prange(n * c):
        src, dst = _U(i * h * w), _U(i * oh * ow)
        for y in range(oh):
            r0 = y * sh - ph
            full_rows = u_lo[y] == 0 and u_hi[y] == kh
            for z in range(ow):
                q0 = z * sw - pw
                at = dst + _U(y * ow + z)
                if full_rows and v_lo[z] == 0 and v_hi[z] == kw and kh == 2 and kw == 2:
                    # the common 2x2 window, unrolled
                    top = src + _U(r0 * w + q0)
                    bottom = top + _U(dh * w)
                    a0, a1 = src_all[top], src_all[top + _U(dw)]
                    b0, b1 = src_all[bottom], src_all[bottom + _U(dw)]
                    dst_all[at] = _pick(_pick(a0, a1), _pick(b0, b1))
                    continue
                best = src_all[src + _U((r0 + u_lo[y] * dh) * w + q0 + v_lo[z] * dw)]
                for u in range(u_lo[y], u_hi[y]):
                    row = src + _U((r0 + u * dh) * w + q0)
                    for v in range(v_lo[z], v_hi[z]):
                        value = src_all[row + _U(v * dw)]
                        best = _pick(value, best)
                dst_all[at] = best


@parallel_kernel
def _max_pool2d_minor(
    x: np.ndarray,
    n: int,
    h: int,
    w: int,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int,
    dw: int,
    oh: int,
    ow: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Max pooling of a flat batch-minor (C, h, w, N) integer input: each
    window element is a run of N values, maxed in vector form."""
    channels = x.size // max(1, h * w * n)
    for row in numba.prange(channels * oh):
        c, i = row // oh, row % oh
        for j in range(ow):
            dst = _U(((c * oh + i) * ow + j) * n)
            first = True
            for u in range(kh):
                y = i * sh - ph + u * dh
                if y < 0 or y >= h:
                    continue
                for v in range(kw):
                    z = j * sw - pw + v * dw
                    if z < 0 or z >= w:
                        continue
                    src = _U(((c * h + y) * w + z) * n)
                    if first:
                        for a in range(n):
                            out[dst + _U(a)] = x[src + _U(a)]
                        first = False
                    else:
                        for a in range(n):
                            out[dst + _U(a)] = max(out[dst + _U(a)], x[src + _U(a)])


def max_pool2d_minor(x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """MaxPool of a batch-minor (C, H, W, N) integer tensor, batch-minor out."""
    c, h, w, n = x.shape
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    pads = attrs["pads"]
    oh, ow = (
        pool_output_dim(
            (h, w)[i],
            attrs["kernel_shape"][i],
            attrs["strides"][i],
            pads[i],
            pads[2 + i],
            attrs["dilations"][i],
            attrs.get("ceil_mode", False),
        )
        for i in range(2)
    )
    out = np.empty((c, oh, ow, n), x.dtype)
    _max_pool2d_minor(
        np.ascontiguousarray(x).reshape(-1),
        n,
        h,
        w,
        kh,
        kw,
        sh,
        sw,
        pads[0],
        pads[1],
        dh,
        dw,
        oh,
        ow,
        out.reshape(-1),
    )
    return out


@kernel("MaxPool")
def max_pool(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    nd = len(attrs["kernel_shape"])
    if nd == 2 and x.dtype.kind in "iuf" and x.size:
        # windows lying wholly in padding cannot occur: ONNX's output size rule
        # makes every window start inside the input or its leading padding
        kh, kw = attrs["kernel_shape"]
        out_shape = [
            pool_output_dim(
                x.shape[2 + i],
                attrs["kernel_shape"][i],
                attrs["strides"][i],
                attrs["pads"][i],
                attrs["pads"][2 + i],
                attrs["dilations"][i],
                attrs.get("ceil_mode", False),
            )
            for i in range(2)
        ]
        out = np.empty((x.shape[0], x.shape[1], *out_shape), x.dtype)
        (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
        ph, pw = attrs["pads"][0], attrs["pads"][1]
        _max_pool2d(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, dh, dw, out)
        return [out]
    tiles = _tiles(x, attrs)
    if tiles is not None:
        return [tiles.max(axis=tuple(3 + 2 * i for i in range(nd)))]
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    return [_pool_windows(x, attrs, fill).max(axis=tuple(range(-nd, 0)))]


def _window_sum(cols: np.ndarray, nd: int) -> np.ndarray:
    """Sum over the trailing ``nd`` window axes one element at a time, in
    row-major order, in the input's precision: the order onnxruntime uses, so
    float results agree to the last bit (numpy's own reduction order differs)."""
    total = np.zeros(cols.shape[:-nd], cols.dtype)
    for index in np.ndindex(*cols.shape[-nd:]):
        total += cols[(Ellipsis, *index)]
    return total


@kernel("AveragePool")
def average_pool(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    nd = len(attrs["kernel_shape"])
    cols = _pool_windows(x, attrs, 0.0)
    if attrs.get("sum_order", "rows") == "columns" and nd > 1:
        total = np.zeros(cols.shape[:-nd], cols.dtype)
        for j in range(cols.shape[-1]):
            total += _window_sum(cols[..., j], nd - 1)
    else:
        total = _window_sum(cols, nd)
    # elements per window: real inputs, plus explicit pads if count_include_pad,
    # never the extra positions ceil mode adds
    ones = np.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    pad_fill = 1.0 if attrs.get("count_include_pad") else 0.0
    counts = _window_sum(_pool_windows(ones, attrs, 0.0, pad_fill), nd)
    return [(total / counts).astype(x.dtype)]


@parallel_kernel
def _global_mean(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    rows, size = x.shape
    for i in numba.prange(rows):
        total = x.dtype.type(0)
        for k in range(size):
            total += x[i, k]
        out[i] = total / x.dtype.type(size)


@kernel("GlobalAveragePool")
def global_average_pool(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    if x.dtype.kind != "f" or x.size == 0:
        return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)]
    flat = np.ascontiguousarray(x).reshape(x.shape[0] * x.shape[1], -1)
    out = np.empty(flat.shape[0], x.dtype)
    _global_mean(flat, out)  # sequential sum, as onnxruntime does
    return [out.reshape(*x.shape[:2], *([1] * (x.ndim - 2)))]


@kernel("GlobalMaxPool")
def global_max_pool(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


@kernel("Gemm")
def gemm(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    a = _wide(args[0].T if attrs["trans_a"] else args[0])
    b = _wide(args[1].T if attrs["trans_b"] else args[1])
    y = a @ b
    if attrs["alpha"] != 1.0:
        y = y * np.asarray(attrs["alpha"], dtype=y.dtype)
    if len(args) > 2 and args[2] is not None:
        c = args[2]
        y = y + (c * np.asarray(attrs["beta"], dtype=c.dtype) if attrs["beta"] != 1.0 else c)
    return [
        _activate(y.astype(np.result_type(args[0], args[1]), copy=False), attrs.get("activation"))
    ]


@kernel("MatMul")
def matmul(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    out_type = np.result_type(args[0], args[1])
    return [np.matmul(_wide(args[0]), _wide(args[1])).astype(out_type, copy=False)]


@kernel("Add")
def add(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.add(args[0], args[1])]


@kernel("Sub")
def sub(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.subtract(args[0], args[1])]


@kernel("Mul")
def mul(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.multiply(args[0], args[1])]


@kernel("Div")
def div(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    a, b = args[0], args[1]
    if a.dtype.kind in "iu":
        # ONNX integer division truncates toward zero; numpy's // floors.
        q = np.floor_divide(a, b)
        fix = (np.remainder(a, b) != 0) & ((a < 0) ^ (b < 0))
        return [(q + fix).astype(np.result_type(a, b))]
    return [np.divide(a, b)]


@kernel("Relu")
def relu(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.maximum(args[0], np.zeros((), args[0].dtype))]


@kernel("LeakyRelu")
def leaky_relu(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    return [np.where(x >= 0, x, x * np.asarray(attrs["alpha"], x.dtype))]


@kernel("Clip")
def clip(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    y = x
    if attrs["min"] is not None:
        y = np.maximum(y, np.asarray(attrs["min"]).astype(x.dtype))
    if attrs["max"] is not None:
        y = np.minimum(y, np.asarray(attrs["max"]).astype(x.dtype))
    return [y]


@kernel("Sigmoid")
def sigmoid(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    with np.errstate(over="ignore"):
        return [(1.0 / (1.0 + np.exp(-x))).astype(x.dtype)]


@kernel("Tanh")
def tanh(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.tanh(args[0])]


@kernel("HardSigmoid")
def hard_sigmoid(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    y = np.clip(x * np.asarray(attrs["alpha"], x.dtype) + np.asarray(attrs["beta"], x.dtype), 0, 1)
    return [y.astype(x.dtype)]


@kernel("HardSwish")
def hard_swish(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    return [(x * np.clip(x / 6 + 0.5, 0, 1)).astype(x.dtype)]


@kernel("Softmax")
def softmax(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    axes = tuple(attrs["axes"])
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return [(e / e.sum(axis=axes, keepdims=True)).astype(x.dtype)]


@kernel("LRN")
def lrn(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    size = attrs["size"]
    before, after = (size - 1) // 2, size // 2  # ONNX: floor((size-1)/2) before, ceil after
    sq = np.pad(np.square(x), [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    windows = sliding_window_view(sq, size, axis=1)
    total = windows.sum(axis=-1)
    scale = (attrs["bias"] + attrs["alpha"] / size * total) ** attrs["beta"]
    return [(x / scale).astype(x.dtype)]


@kernel("Reshape")
def reshape(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    shape = [x.shape[0] if isinstance(d, str) else d for d in attrs["shape"]]
    return [x.reshape(shape)]


@kernel("Transpose")
def transpose(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.transpose(args[0], attrs["perm"])]


@kernel("Concat")
def concat(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    batch = max((a.shape[0] for a in args if a.ndim), default=1)
    parts = [
        a
        if attrs["axis"] == 0 or a.ndim == 0 or a.shape[0] == batch
        else np.broadcast_to(a, (batch, *a.shape[1:]))
        for a in args
    ]
    return [np.concatenate(parts, axis=attrs["axis"])]


@kernel("Split")
def split(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    cuts = np.cumsum(attrs["sizes"])[:-1]
    return list(np.split(args[0], cuts, axis=attrs["axis"]))


@kernel("Slice")
def slice_(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    index = [slice(None)] * args[0].ndim
    for start, end, axis, step in zip(
        attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"], strict=True
    ):
        index[axis] = slice(start, end, step)
    return [args[0][tuple(index)]]


@kernel("Pad")
def pad(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = args[0]
    r = x.ndim
    pads = attrs["pads"]
    # negative pads crop
    crop = tuple(
        slice(max(0, -pads[i]), x.shape[i] - max(0, -pads[r + i]) or None) for i in range(r)
    )
    x = x[crop]
    widths = [(max(0, pads[i]), max(0, pads[r + i])) for i in range(r)]
    mode = attrs["mode"]
    if mode == "constant":
        return [np.pad(x, widths, mode="constant", constant_values=attrs["value"])]
    if mode == "reflect":
        return [np.pad(x, widths, mode="reflect")]
    if mode == "edge":
        return [np.pad(x, widths, mode="edge")]
    return [np.pad(x, widths, mode="wrap")]


@kernel("Gather")
def gather(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.take(args[0], args[1], axis=attrs["axis"])]


@kernel("Identity")
def identity(attrs: dict[str, Any], args: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [args[0]]
