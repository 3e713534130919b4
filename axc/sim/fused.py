"""A whole small quantized network as one compiled program.

A digits-sized CNN does a few thousand multiply-accumulates per image; run
node by node, each layer costs a Python call, a thread hand-off and a trip
of its activations through memory, and those costs, not the arithmetic,
bound the throughput. When a graph is a plain chain of integer layers this
module compiles it into one program: a table with one row per layer and the
layers' constants in flat arrays, interpreted by a single Numba kernel. The
kernel splits the batch into blocks of images, in parallel over the blocks;
each block runs through every layer with its activations, stored batch-minor
(features, images) as exact integers in float32, kept in two scratch buffers
small enough for the core's cache. No Python runs between the layers and no
intermediate array is allocated per layer.

The layers compute what their node-by-node kernels compute, bit for bit:
quantization, the direct convolution (products summed in float32 where every
partial sum is an integer below 2^24, which :func:`fused_program` checks),
the requantizer (:func:`axc.sim.int_kernels._finish_row`, the same function
the other paths call), max pooling, dense layers and dequantization. Graphs
with any other op, branches, approximate multipliers, protection nodes or
wider sums run node by node as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np

from axc.ir import BATCH, Graph, Node
from axc.sim.blas import sgemm, sgemm_address
from axc.sim.int_kernels import (
    _EXACT_FLOAT32,
    _Dequantize,
    _finish_row,
    _QConv,
    _QGemm,
    _Quantize,
    direct3x3_ok,
    small_map,
)
from axc.sim.jit import parallel_kernel, serial_mode
from axc.sim.kernels import _U

__all__ = ["FusedProgram", "fused_program"]

# Op codes and the columns of a program row.
QUANTIZE, CONV, MAXPOOL, GEMM, DEQUANTIZE = 1, 2, 3, 4, 5
(
    OP,
    IN_SIZE,
    OUT_SIZE,
    C,
    H,
    W,
    M,
    OH,
    OW,
    KH,
    KW,
    SH,
    SW,
    DH,
    DW,
    TOP,
    LEFT,
    BOTTOM,
    RIGHT,
    WEIGHTS,
    OFFSETS,
    MULTS,
    SHIFTS,
    SCALES,
    ACC_BITS,
    FLOAT_MODE,
    ZP,
    QMIN,
    QMAX,
    SUB,
    FILL,
    OFFSET_FIRST,
    DIRECT,
) = range(33)
COLUMNS = 33

# Images per block: up to 128 (measured on digits: blocks of 32 images took
# twice as long as blocks of 113, the inner loops being runs of one block),
# fewer where a block's buffers would pass 4 MiB.
_MAX_BLOCK = 128
_BLOCK_BYTES = 4 << 20


# ------------------------------------------------------------- numba parts
@numba.njit(cache=True, nogil=True)
def _requant_row(
    acc: np.ndarray,
    dst: np.ndarray,
    channel: int,
    row: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
) -> None:  # pragma: no cover - compiled
    _finish_row(
        acc,
        dst,
        True,
        ivals[row[OFFSETS] + channel],
        row[ACC_BITS],
        row[FLOAT_MODE] != 0,
        ivals[row[MULTS] + channel],
        ivals[row[SHIFTS] + channel],
        fvals[row[SCALES] + channel],
        row[ZP],
        row[QMIN],
        row[QMAX],
    )


@numba.njit(cache=True, nogil=True)
def _pad_center(
    src: np.ndarray, dst: np.ndarray, row: np.ndarray, nb: int
) -> None:  # pragma: no cover - compiled
    """dst (C, H + top + bottom, W + left + right, nb) = float32(src) - sub,
    padding ``fill - sub``."""
    c_n, h, w = row[C], row[H], row[W]
    top, left = row[TOP], row[LEFT]
    hp, wp = h + top + row[BOTTOM], w + left + row[RIGHT]
    sub = np.float32(row[SUB])
    pad = np.float32(row[FILL] - row[SUB])
    for c in range(c_n):
        for y in range(hp):
            inside = top <= y < top + h
            for z in range(wp):
                d = _U(((c * hp + y) * wp + z) * nb)
                if inside and left <= z < left + w:
                    s = _U(((c * h + y - top) * w + z - left) * nb)
                    for t in range(nb):
                        dst[d + _U(t)] = np.float32(src[s + _U(t)]) - sub
                else:
                    for t in range(nb):
                        dst[d + _U(t)] = pad


@numba.njit(cache=True, nogil=True)
def _direct3x3(
    xp: np.ndarray,
    dst: np.ndarray,
    acc: np.ndarray,
    nb: int,
    row: np.ndarray,
    wts: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """A 3x3 convolution of a padded, centered (C, Hp, Wp, nb) block: each
    output pixel's nine products per channel are summed along the run of nb
    images, then requantized into dst (M, OH, OW, nb) (as _conv3x3_minor)."""
    c_n, m_n, oh, ow, sh, sw = row[C], row[M], row[OH], row[OW], row[SH], row[SW]
    hp = row[H] + row[TOP] + row[BOTTOM]
    wp = row[W] + row[LEFT] + row[RIGHT]
    line = wp * nb
    n1, n2 = _U(nb), _U(2 * nb)
    for m in range(m_n):
        for i in range(oh):
            for j in range(ow):
                for t in range(nb):
                    acc[_U(t)] = 0
                for c in range(c_n):
                    r0 = _U(((c * hp + i * sh) * wp + j * sw) * nb)
                    r1 = r0 + _U(line)
                    r2 = r1 + _U(line)
                    q = row[WEIGHTS] + (m * c_n + c) * 9
                    a0, a1, a2 = wts[q], wts[q + 1], wts[q + 2]
                    b0, b1, b2 = wts[q + 3], wts[q + 4], wts[q + 5]
                    d0, d1, d2 = wts[q + 6], wts[q + 7], wts[q + 8]
                    for t in range(nb):
                        u = _U(t)
                        e = a0 * xp[r0 + u] + a1 * xp[r0 + n1 + u] + a2 * xp[r0 + n2 + u]
                        f = b0 * xp[r1 + u] + b1 * xp[r1 + n1 + u] + b2 * xp[r1 + n2 + u]
                        g = d0 * xp[r2 + u] + d1 * xp[r2 + n1 + u] + d2 * xp[r2 + n2 + u]
                        acc[u] += e + f + g
                start = ((m * oh + i) * ow + j) * nb
                _requant_row(acc[:nb], dst[start : start + nb], m, row, ivals, fvals)


@numba.njit(cache=True, nogil=True)
def _im2col(
    x: np.ndarray, cols: np.ndarray, nb: int, row: np.ndarray
) -> None:  # pragma: no cover - compiled
    """The patch matrix (C * KH * KW, OH * OW * nb) of a (C, H, W, nb) block,
    float32(x) - sub, padding ``fill - sub`` (as _im2col_minor_kernel)."""
    c_n, h, w, oh, ow = row[C], row[H], row[W], row[OH], row[OW]
    kh, kw, sh, sw, dh, dw = row[KH], row[KW], row[SH], row[SW], row[DH], row[DW]
    top, left = row[TOP], row[LEFT]
    sub = np.float32(row[SUB])
    pad = np.float32(row[FILL] - row[SUB])
    p = oh * ow
    for k in range(c_n * kh * kw):
        c, rest = k // (kh * kw), k % (kh * kw)
        u, v = rest // kw, rest % kw
        for i in range(oh):
            y = i * sh + u * dh - top
            for j in range(ow):
                z = j * sw + v * dw - left
                d = _U((k * p + i * ow + j) * nb)
                if y < 0 or y >= h or z < 0 or z >= w:
                    for t in range(nb):
                        cols[d + _U(t)] = pad
                else:
                    s = _U(((c * h + y) * w + z) * nb)
                    for t in range(nb):
                        cols[d + _U(t)] = np.float32(x[s + _U(t)]) - sub


@numba.njit(cache=True, nogil=True)
def _product(
    cols: np.ndarray,
    dst: np.ndarray,
    acc: np.ndarray,
    k_n: int,
    q: int,
    row: np.ndarray,
    wts: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    blas: int,
) -> None:  # pragma: no cover - compiled
    """(M, K) weights by the (K, Q) operand ``cols`` through BLAS (exact: every
    partial sum is an integer below 2^24), each row requantized into dst."""
    m_n, w0 = row[M], row[WEIGHTS]
    out = acc[: m_n * q].reshape((m_n, q))
    w = wts[w0 : w0 + m_n * k_n].reshape((m_n, k_n))
    sgemm(blas, w, cols[: k_n * q].reshape((k_n, q)), out)
    for m in range(m_n):
        _requant_row(out[m], dst[m * q : (m + 1) * q], m, row, ivals, fvals)


@numba.njit(cache=True, nogil=True)
def _center(x: np.ndarray, dst: np.ndarray, size: int, sub: int) -> None:  # pragma: no cover
    s = np.float32(sub)
    for i in range(size):
        dst[_U(i)] = np.float32(x[_U(i)]) - s


@numba.njit(cache=True, nogil=True)
def _max_pool(
    x: np.ndarray, dst: np.ndarray, nb: int, row: np.ndarray
) -> None:  # pragma: no cover - compiled
    c_n, h, w, oh, ow = row[C], row[H], row[W], row[OH], row[OW]
    kh, kw, sh, sw, dh, dw = row[KH], row[KW], row[SH], row[SW], row[DH], row[DW]
    ph, pw = row[TOP], row[LEFT]
    for c in range(c_n):
        for i in range(oh):
            for j in range(ow):
                d = _U(((c * oh + i) * ow + j) * nb)
                first = True
                for u in range(kh):
                    y = i * sh - ph + u * dh
                    if y < 0 or y >= h:
                        continue
                    for v in range(kw):
                        z = j * sw - pw + v * dw
                        if z < 0 or z >= w:
                            continue
                        s = _U(((c * h + y) * w + z) * nb)
                        if first:
                            for t in range(nb):
                                dst[d + _U(t)] = x[s + _U(t)]
                            first = False
                        else:
                            for t in range(nb):
                                e = d + _U(t)
                                dst[e] = max(dst[e], x[s + _U(t)])


@numba.njit(cache=True, nogil=True)
def _quantize(
    x: np.ndarray, dst: np.ndarray, lo: int, nb: int, row: np.ndarray, fvals: np.ndarray
) -> None:  # pragma: no cover - compiled
    """ONNX QuantizeLinear with one scale of the images lo .. lo + nb of an
    (N, features) input into a (features, nb) block, as _quantize3 computes it."""
    s = fvals[row[SCALES]]
    z = row[ZP]
    zf = np.float32(z)
    qmin, qmax = row[QMIN], row[QMAX]
    offset_first = row[OFFSET_FIRST] != 0
    for f in range(x.shape[1]):
        for t in range(nb):
            v = np.float32(x[lo + t, f] / s)
            q = np.int64(np.rint(np.float32(v + zf))) if offset_first else np.int64(np.rint(v)) + z
            dst[_U(f * nb + t)] = min(max(q, qmin), qmax)


@numba.njit(cache=True, nogil=True)
def _dequantize(
    x: np.ndarray, out: np.ndarray, lo: int, nb: int, row: np.ndarray, fvals: np.ndarray
) -> None:  # pragma: no cover - compiled
    """(q - zero_point) * scale in float32 (as _Dequantize computes it) of a
    (features, nb) block into images lo .. lo + nb of the (N, features) output."""
    zf = np.float32(row[ZP])
    s = fvals[row[SCALES]]
    for f in range(out.shape[1]):
        for t in range(nb):
            out[lo + t, f] = (np.float32(x[_U(f * nb + t)]) - zf) * s


@parallel_kernel
def _program(
    x: np.ndarray,
    code: np.ndarray,
    wts: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    width: int,
    work: int,
    blocks: int,
    blas: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Runs the program ``code`` on the (N, features) input ``x`` into the
    (N, features) ``out``, ``blocks`` blocks of images in parallel. Codes
    between layers are int16, ``width`` features per image; float32
    operands and sums take ``work`` values per image."""
    n = x.shape[0]
    last = code.shape[0] - 1
    for b in numba.prange(blocks):
        lo, hi = n * b // blocks, n * (b + 1) // blocks
        nb = hi - lo
        cur = np.empty(width * nb, np.int16)
        nxt = np.empty(width * nb, np.int16)
        fb = np.empty(work * nb, np.float32)
        acc = np.empty(work * nb, np.float32)
        first = 0
        if code[0, OP] == QUANTIZE:
            _quantize(x, cur, lo, nb, code[0], fvals)
            first = 1
        else:
            for f in range(x.shape[1]):
                for t in range(nb):
                    cur[_U(f * nb + t)] = np.int16(x[lo + t, f])
        for layer in range(first, code.shape[0]):
            row = code[layer]
            op = row[OP]
            if op == DEQUANTIZE:
                _dequantize(cur, out, lo, nb, row, fvals)
                continue
            if op == MAXPOOL:
                _max_pool(cur, nxt, nb, row)
            elif op == CONV and row[DIRECT] != 0:
                _pad_center(cur, fb, row, nb)
                _direct3x3(fb, nxt, acc, nb, row, wts, ivals, fvals)
            elif op == CONV:
                _im2col(cur, fb, nb, row)
                k = row[C] * row[KH] * row[KW]
                _product(fb, nxt, acc, k, row[OH] * row[OW] * nb, row, wts, ivals, fvals, blas)
            else:
                _center(cur, fb, row[IN_SIZE] * nb, row[SUB])
                _product(fb, nxt, acc, row[C], nb, row, wts, ivals, fvals, blas)
            cur, nxt = nxt, cur
        if code[last, OP] != DEQUANTIZE:
            for f in range(out.shape[1]):
                for t in range(nb):
                    out[lo + t, f] = cur[_U(f * nb + t)]


# ------------------------------------------------------------- planning
class _Refused(Exception):
    """The graph cannot run as one program (it runs node by node)."""


class _Builder:
    """Collects the program's rows and the flat arrays of its constants."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.arrays: dict[str, list[np.ndarray]] = {"wts": [], "ivals": [], "fvals": []}
        self.sizes = {"wts": 0, "ivals": 0, "fvals": 0}
        self.width = 0  # int16 codes per image, the widest layer boundary
        self.work = 1  # float32 operands or sums per image, the most any layer needs

    def row(self, op: int, in_size: int, out_size: int) -> np.ndarray:
        r = np.zeros(COLUMNS, np.int64)
        r[OP], r[IN_SIZE], r[OUT_SIZE] = op, in_size, out_size
        self.rows.append(r)
        self.width = max(self.width, in_size, out_size)
        return r

    def add(self, kind: str, values: Any, dtype: type) -> int:
        """Appends ``values`` to the flat array ``kind``; returns where they start."""
        at = self.sizes[kind]
        flat: np.ndarray = np.ascontiguousarray(values, dtype).reshape(-1)
        self.arrays[kind].append(flat)
        self.sizes[kind] += flat.size
        return at

    def array(self, kind: str, dtype: type) -> np.ndarray:
        parts = self.arrays[kind]
        return np.concatenate(parts) if parts else np.zeros(1, dtype)

    def linear(self, r: np.ndarray, plan: _QConv | _QGemm, x_dtype: np.dtype) -> None:
        """A layer's weights and requantizer, one constant of each per output
        channel. Refused where float32 sums could be inexact."""
        if plan.__class__ not in (_QConv, _QGemm) or not _codes(x_dtype):
            raise _Refused
        k = math.prod(plan.w_shape[1:])
        if k * max(1, plan.bound_w * plan.bound_x(x_dtype)) >= _EXACT_FLOAT32:
            raise _Refused
        q, m = plan.requant, int(plan.w_shape[0])
        if any(a.size not in (1, m) for a in (q.mult, q.shift, q.scale)) or not _codes(q.dtype):
            raise _Refused
        r[M] = m
        r[WEIGHTS] = self.add("wts", plan.wf, np.float32)
        r[OFFSETS] = self.add("ivals", plan.offset, np.int64)
        r[MULTS] = self.add("ivals", np.broadcast_to(q.mult.reshape(-1), m), np.int64)
        r[SHIFTS] = self.add("ivals", np.broadcast_to(q.shift.reshape(-1), m), np.int64)
        r[SCALES] = self.add("fvals", np.broadcast_to(q.scale.reshape(-1), m), np.float32)
        r[ACC_BITS], r[FLOAT_MODE] = q.acc_bits, int(q.float_mode)
        r[ZP], r[QMIN], r[QMAX] = q.zp, q.qmin, q.qmax
        r[SUB] = 0 if plan.raw else plan.zx
        r[FILL] = plan.zx  # padding holds the zero point


def _codes(dtype: np.dtype) -> bool:
    """Whether integers of this type travel between layers as int16."""
    return dtype.kind in "iu" and np.can_cast(dtype, np.int16)


def _features(graph: Graph, name: str) -> tuple[int, ...]:
    shape = graph.tensors[name].shape
    if not shape or shape[0] != BATCH or not all(isinstance(d, int) for d in shape[1:]):
        raise _Refused
    return tuple(int(d) for d in shape[1:])


def _window(r: np.ndarray, attrs: dict[str, Any], xs: Sequence[int], ys: Sequence[int]) -> None:
    if len(attrs["kernel_shape"]) != 2 or len(xs) != 3 or len(ys) != 3:
        raise _Refused
    r[C], r[H], r[W] = xs
    r[OH], r[OW] = ys[1], ys[2]
    r[KH], r[KW] = attrs["kernel_shape"]
    r[SH], r[SW] = attrs["strides"]
    r[DH], r[DW] = attrs["dilations"]
    r[TOP], r[LEFT], r[BOTTOM], r[RIGHT] = attrs["pads"]


def _empty_window(r: np.ndarray) -> bool:
    """Whether some pooling window lies wholly in the padding."""
    for size, out, k, s, d, p in (
        (r[H], r[OH], r[KH], r[SH], r[DH], r[TOP]),
        (r[W], r[OW], r[KW], r[SW], r[DW], r[LEFT]),
    ):
        for i in range(int(out)):
            if not any(0 <= i * s - p + u * d < size for u in range(int(k))):
                return True
    return False


def _compile(
    graph: Graph, order: Sequence[Node], plans: Sequence[Any], dtypes: dict[str, np.dtype]
) -> _Builder:
    b = _Builder()
    last = len(order) - 1
    for step, (node, plan) in enumerate(zip(order, plans, strict=True)):
        attrs = node.attrs
        x, y = node.inputs[0], node.outputs[0]
        xs, ys = _features(graph, x), _features(graph, y)
        fin, fout = math.prod(xs), math.prod(ys)
        x_dtype = np.dtype(dtypes.get(x, graph.tensors[x].dtype.numpy_dtype()))
        y_dtype = np.dtype(dtypes.get(y, graph.tensors[y].dtype.numpy_dtype()))
        if node.op not in ("Dequantize", "Reshape") and not _codes(y_dtype):
            raise _Refused
        if node.op == "Quantize":
            # reads the float input, so only as the first layer
            if step or not isinstance(plan, _Quantize) or plan.scale.size != 1:
                raise _Refused
            r = b.row(QUANTIZE, fin, fout)
            r[SCALES] = b.add("fvals", plan.scale, np.float32)
            r[ZP], r[QMIN], r[QMAX] = int(plan.zp.reshape(-1)[0]), plan.qmin, plan.qmax
            r[OFFSET_FIRST] = int(plan.offset_first)
        elif node.op == "Dequantize":
            # writes the float output, so only as the last layer
            if step != last or not isinstance(plan, _Dequantize) or not plan.per_tensor:
                raise _Refused
            if not _codes(x_dtype):
                raise _Refused
            r = b.row(DEQUANTIZE, fin, fout)
            r[SCALES] = b.add("fvals", plan.scale, np.float32)
            r[ZP] = int(plan.zp.reshape(()))
        elif node.op == "Reshape":
            if step == 0 and not _codes(x_dtype):
                raise _Refused
            continue  # batch-minor features keep their (C order) positions
        elif node.op == "MaxPool":
            r = b.row(MAXPOOL, fin, fout)
            _window(r, attrs, xs, ys)
            if not _codes(x_dtype) or _empty_window(r):
                raise _Refused
        elif node.op == "QConv":
            # larger maps run faster node by node, on the whole batch at once
            if (
                not isinstance(plan, _QConv)
                or attrs["group"] != 1
                or not small_map(attrs, (1, *xs))
            ):
                raise _Refused
            r = b.row(CONV, fin, fout)
            _window(r, attrs, xs, ys)
            b.linear(r, plan, x_dtype)
            p = int(r[OH] * r[OW])
            if direct3x3_ok(attrs, xs[0]):
                r[DIRECT] = 1
                b.work = max(
                    b.work, xs[0] * (xs[1] + r[TOP] + r[BOTTOM]) * (xs[2] + r[LEFT] + r[RIGHT])
                )
            else:
                b.work = max(b.work, math.prod(plan.w_shape[1:]) * p, int(r[M]) * p)
        elif node.op == "QGemm":
            if not isinstance(plan, _QGemm) or len(xs) != 1 or len(ys) != 1:
                raise _Refused
            r = b.row(GEMM, fin, fout)
            b.linear(r, plan, x_dtype)
            r[C] = xs[0]
            b.work = max(b.work, xs[0], int(r[M]))
        else:
            raise _Refused
    if not b.rows:
        raise _Refused
    return b


class FusedProgram:
    """A chain of integer layers compiled into one kernel call (see the module
    docstring). Call it with the graph's input and a thread count; it returns
    the graph's output."""

    def __init__(self, builder: _Builder, out_dtype: np.dtype, out_shape: tuple[int, ...]) -> None:
        self.code = np.stack(builder.rows)
        self.wts = builder.array("wts", np.float32)
        self.ivals = builder.array("ivals", np.int64)
        self.fvals = builder.array("fvals", np.float32)
        self.width, self.work = builder.width, builder.work
        self.out_dtype = out_dtype
        self.out_shape = out_shape
        per_image = 4 * self.width + 8 * self.work  # two int16 and two float32 buffers
        self.block = int(max(1, min(_MAX_BLOCK, _BLOCK_BYTES // per_image)))

    def __call__(self, x: np.ndarray, threads: int) -> np.ndarray:
        """The output for the (N, ...) input ``x``. With more than one thread
        the blocks run in parallel, each calling BLAS: the caller limits BLAS
        to one thread (as the executor does)."""
        n = x.shape[0]
        flat = np.ascontiguousarray(x.reshape(n, -1), np.float32)
        out = np.empty((n, math.prod(self.out_shape)), np.float32)
        if n:
            parallel = 1 if serial_mode() else max(1, min(threads, n))
            blocks = max(-(-n // self.block), parallel)
            blocks = min(n, -(-blocks // parallel) * parallel)  # whole rounds of the threads
            kernel = _program.serial if parallel == 1 else _program.parallel
            kernel(
                flat,
                self.code,
                self.wts,
                self.ivals,
                self.fvals,
                self.width,
                self.work,
                blocks,
                sgemm_address(),
                out,
            )
        result = out.reshape(n, *self.out_shape)
        return result if self.out_dtype == np.float32 else result.astype(self.out_dtype)


def fused_program(
    graph: Graph,
    order: Sequence[Node],
    plans: Sequence[Callable[..., Any]],
    dtypes: dict[str, np.dtype],
) -> FusedProgram | None:
    """The graph as one program, or None when it is not a chain of layers the
    program covers (one input, one output, each layer feeding only the next;
    exact products, codes of at most 16 bits and float32-exact sums)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or not order:
        return None
    consumers: dict[str, int] = {}
    for node in order:
        for t in node.inputs:
            consumers[t] = consumers.get(t, 0) + 1
    previous = graph.inputs[0]
    for node in order:
        if (
            not node.inputs
            or node.inputs[0] != previous
            or len(node.outputs) != 1
            or any(t and t not in graph.constants for t in node.inputs[1:])
            or consumers.get(previous, 0) != 1
        ):
            return None
        previous = node.outputs[0]
    if previous != graph.outputs[0]:
        return None
    x_dtype = graph.tensors[graph.inputs[0]].dtype.numpy_dtype()
    out_dtype = np.dtype(dtypes.get(previous, graph.tensors[previous].dtype.numpy_dtype()))
    if x_dtype.kind not in "fiu" or (out_dtype.kind == "f" and out_dtype != np.float32):
        return None
    if not sgemm_address():
        return None  # no BLAS to call from compiled code
    try:
        builder = _compile(graph, order, plans, dtypes)
        out_shape = _features(graph, previous)
    except _Refused:
        return None
    return FusedProgram(builder, out_dtype, out_shape)
