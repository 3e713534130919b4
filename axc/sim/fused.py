"""A whole small quantized network as one compiled program.

A digits-sized CNN does a few thousand multiply-accumulates per image; run
node by node, each layer costs a Python call, a thread hand-off and a trip
of its activations through memory, and those costs, not the arithmetic,
bound the throughput. When a graph is a plain chain of integer layers this
module compiles it into one program: a table with one row per layer and the
layers' constants in flat arrays, interpreted by a single Numba kernel. The
kernel splits the batch into blocks of up to 128 images, in parallel over
the blocks; each block runs through every layer batch-minor (features,
images), its codes kept as int16 between layers. No Python runs between the
layers.

The layers compute what their node-by-node kernels compute, bit for bit,
through the same arithmetic: quantization; exact products as the direct 3x3
loop or a patch matrix and numpy's BLAS, where every partial sum is an
integer below 2^24 (checked here); approximate multipliers as their
factored terms (each term's transform of the input, stacked, then one exact
product) or as table lookups (the table kernels of approx_kernels.py); the
requantizer (:func:`axc.sim.int_kernels._finish_row`, the function every
other path calls); max pooling; dequantization. Graphs with any other op,
branches, protection nodes, large maps or wider sums run node by node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np

from axc.errors import UserError
from axc.ir import BATCH, Graph, Node
from axc.sim.approx_kernels import (
    _PACKED_MIN_COLUMNS,
    ApproxConv,
    ApproxGemm,
    _lut_matmul,
    _lut_matmul_packed,
)
from axc.sim.blas import sgemm, sgemm_address
from axc.sim.int_kernels import (
    _EXACT_FLOAT32,
    _conv3x3_minor,
    _Dequantize,
    _finish_row,
    _QConv,
    _QGemm,
    _Quantize,
    direct3x3_ok,
    small_map,
)
from axc.sim.jit import parallel_kernel, serial_mode
from axc.sim.kernels import (
    _U,
    _im2col_minor_kernel,
    _max_pool2d_minor,
    _pad_minor_kernel,
)

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
    OFFSET_FIRST,
    DIRECT,
    TERMS,
    LUTS,
    LUT_SIZE,
    LUT_SHIFT,
    FILLS,
    TABLE,
    WINDEX,
    TB,
    TA,
    A_LO,
    PACKED,
    BIAS,
    IDX_LO,
    IDX_HI,
    PIXELS,
) = range(47)
COLUMNS = 47

# Images per block: up to 128 (measured on digits: blocks of 32 images took
# twice as long as blocks of 113, the inner loops being runs of one block),
# fewer where a block's buffers would pass 4 MiB.
_MAX_BLOCK = 128
# An arbitrary table's layer packs its weights' table rows into lanes of a
# word (approx_kernels._lut_matmul_packed) over rows of patches as long as the
# node-by-node path does (_PACKED_MIN_COLUMNS): on digits, its convolutions
# (16 pixels by a block and more); its dense layers, a block long, are not.
_BLOCK_BYTES = 4 << 20


# ------------------------------------------------------------- numba parts
# the node-by-node kernels, serial builds (a block is one thread)
_table_plain = _lut_matmul.serial
_table_packed = _lut_matmul_packed.serial
_pad_block = _pad_minor_kernel.serial
_conv3x3_block = _conv3x3_minor.serial
_im2col_block = _im2col_minor_kernel.serial
_max_pool_block = _max_pool2d_minor.serial


@numba.njit(cache=True, nogil=True)
def _requant_row(
    acc: np.ndarray,
    dst: np.ndarray,
    channel: int,
    row: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    small: bool = True,
) -> None:  # pragma: no cover - compiled
    """One output channel's sums requantized into dst, with the same function
    as every other path; ``small``: the sums fit int32 (float32 integers below
    2^24, int32), else int64."""
    _finish_row(
        acc,
        dst,
        small,
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
def _im2col_index(
    x: np.ndarray, idx: np.ndarray, row: np.ndarray, shift: int, pad: int, nb: int
) -> None:  # pragma: no cover - compiled
    """The patch matrix (C * KH * KW, OH * OW * nb) of a (C, H, W, nb) block of
    codes as int32 table indices x - shift; padding is the index ``pad``."""
    c_n, h, w, oh, ow = row[C], row[H], row[W], row[OH], row[OW]
    kh, kw, sh, sw, dh, dw = row[KH], row[KW], row[SH], row[SW], row[DH], row[DW]
    top, left = row[TOP], row[LEFT]
    p = oh * ow
    s32, p32 = np.int32(shift), np.int32(pad)
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
                        idx[d + _U(t)] = p32
                else:
                    s = _U(((c * h + y) * w + z) * nb)
                    for t in range(nb):
                        idx[d + _U(t)] = np.int32(x[s + _U(t)]) - s32


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
def _table_product(
    idx: np.ndarray,
    dst: np.ndarray,
    k_n: int,
    q: int,
    row: np.ndarray,
    tvals: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Sums of table lookups, T[w, x] over K, of the (K, Q) activation
    indices ``idx`` against the layer's weight indices, each row requantized
    into dst (as the table path of approx_kernels.py)."""
    m_n = row[M]
    wi = tvals[row[WINDEX] : row[WINDEX] + m_n * k_n].reshape((m_n, k_n))
    tt = tvals[row[TABLE] : row[TABLE] + row[TB] * row[TA]].reshape((row[TB], row[TA]))
    xi = idx[: k_n * q].reshape((k_n, q))
    if row[PACKED] > 0:
        total = np.empty((m_n, q), np.int64)
        _table_packed(xi, wi, tt, row[BIAS], row[PACKED], row[IDX_LO], row[IDX_HI], total)
        for m in range(m_n):
            _requant_row(total[m], dst[m * q : (m + 1) * q], m, row, ivals, fvals, False)
        return
    part = np.empty((m_n, q), np.int32)  # int32 sums are exact: planning checks K * max|T|
    _table_plain(xi, wi, tt, part)
    for m in range(m_n):
        _requant_row(part[m], dst[m * q : (m + 1) * q], m, row, ivals, fvals)


@numba.njit(cache=True, nogil=True)
def _expand(
    x: np.ndarray, dst: np.ndarray, size: int, row: np.ndarray, fvals: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Each term's transform of the centered codes, term after term: dst[j *
    size + i] = lut_j[x[i] - zx - a_lo] (factored multipliers)."""
    shift, span = row[LUT_SHIFT], row[LUT_SIZE]
    for j in range(row[TERMS]):
        lut = fvals[row[LUTS] + j * span : row[LUTS] + (j + 1) * span]
        base = _U(j * size)
        for i in range(size):
            dst[base + _U(i)] = lut[_U(np.int64(x[_U(i)]) - shift)]


@numba.njit(cache=True, nogil=True)
def _linear(
    src: np.ndarray,
    groups: int,
    sub: float,
    fills: np.ndarray,
    dst: np.ndarray,
    fb: np.ndarray,
    acc: np.ndarray,
    nb: int,
    row: np.ndarray,
    wts: np.ndarray,
    ivals: np.ndarray,
    fvals: np.ndarray,
    blas: int,
) -> None:  # pragma: no cover - compiled
    """A QConv or QGemm with exact products over ``groups`` stacked copies
    of the layer's C input channels (or features) in ``src`` (one, or one
    per term), as x - sub, copy g's padding ``fills[g]``, into dst. The
    node-by-node kernels do the work: the same padding, direct 3x3 loop and
    patch matrix."""
    c_n, m_n, h, w = row[C], row[M], row[H], row[W]
    channels = groups * c_n
    if row[OP] == GEMM:
        s32 = np.float32(sub)
        for i in range(channels * nb):
            fb[_U(i)] = np.float32(src[_U(i)]) - s32
        _product(fb, dst, acc, channels, nb, row, wts, ivals, fvals, blas)
        return
    oh, ow, top, left = row[OH], row[OW], row[TOP], row[LEFT]
    size = c_n * h * w * nb
    if row[DIRECT] != 0:
        hp, wp = h + top + row[BOTTOM], w + left + row[RIGHT]
        padded = c_n * hp * wp * nb
        for g in range(groups):
            xg, pg = src[g * size : (g + 1) * size], fb[g * padded : (g + 1) * padded]
            _pad_block(xg, nb, h, w, hp, wp, top, left, fills[g], sub, pg)
        w0, m0 = row[WEIGHTS], row[MULTS]
        _conv3x3_block(
            fb[: groups * padded],
            wts[w0 : w0 + m_n * channels * 9].reshape((m_n, channels * 9)),
            channels,
            hp,
            wp,
            nb,
            oh,
            ow,
            row[SH],
            row[SW],
            ivals[row[OFFSETS] : row[OFFSETS] + m_n],
            row[ACC_BITS],
            row[FLOAT_MODE] != 0,
            ivals[m0 : m0 + m_n],
            ivals[row[SHIFTS] : row[SHIFTS] + m_n],
            fvals[row[SCALES] : row[SCALES] + m_n],
            row[ZP],
            row[QMIN],
            row[QMAX],
            dst[: m_n * oh * ow * nb],
        )
        return
    kh, kw, taps, q = row[KH], row[KW], c_n * row[KH] * row[KW], oh * ow * nb
    for g in range(groups):
        _im2col_block(
            src,
            nb,
            h,
            w,
            top,
            left,
            fills[g],
            sub,
            g * c_n,
            c_n,
            kh,
            kw,
            row[SH],
            row[SW],
            row[DH],
            row[DW],
            oh,
            ow,
            fb[g * taps * q : (g + 1) * taps * q],
        )
    _product(fb, dst, acc, groups * taps, q, row, wts, ivals, fvals, blas)


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
    tvals: np.ndarray,
    sizes: np.ndarray,
    blocks: int,
    blas: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Runs the program ``code`` on the (N, features) input ``x`` into the
    (N, features) ``out``, ``blocks`` blocks of images in parallel. Per
    image, ``sizes`` holds the int16 codes between layers, the float32
    operands and sums, the terms' transforms and the table indices a layer
    needs at most."""
    n = x.shape[0]
    last = code.shape[0] - 1
    for b in numba.prange(blocks):
        lo, hi = n * b // blocks, n * (b + 1) // blocks
        nb = hi - lo
        cur = np.empty(sizes[0] * nb, np.int16)
        nxt = np.empty(sizes[0] * nb, np.int16)
        fb = np.empty(sizes[1] * nb, np.float32)
        acc = np.empty(sizes[1] * nb, np.float32)
        ex = np.empty(sizes[2] * nb, np.float32)
        idx = np.empty(sizes[3] * nb, np.int32)
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
                _max_pool_block(
                    cur[: row[IN_SIZE] * nb],
                    nb,
                    row[H],
                    row[W],
                    row[KH],
                    row[KW],
                    row[SH],
                    row[SW],
                    row[TOP],
                    row[LEFT],
                    row[DH],
                    row[DW],
                    row[OH],
                    row[OW],
                    nxt[: row[OUT_SIZE] * nb],
                )
            elif row[TABLE] >= 0:
                # centered codes x - zx as table indices (from a_lo); padding is centered 0
                shift = row[SUB] + row[A_LO]
                if op == CONV:
                    _im2col_index(cur, idx, row, shift, -row[A_LO], nb)
                    k = row[C] * row[KH] * row[KW]
                    q = row[OH] * row[OW] * nb
                else:
                    for i in range(row[C] * nb):
                        idx[_U(i)] = np.int32(cur[_U(i)]) - shift
                    k, q = row[C], nb
                _table_product(idx, nxt, k, q, row, tvals, ivals, fvals)
            elif row[TERMS] > 0:
                _expand(cur, ex, row[IN_SIZE] * nb, row, fvals)
                fills = fvals[row[FILLS] : row[FILLS] + row[TERMS]]
                _linear(ex, row[TERMS], 0.0, fills, nxt, fb, acc, nb, row, wts, ivals, fvals, blas)
            else:
                fills = fvals[row[FILLS] : row[FILLS] + 1]
                _linear(cur, 1, row[SUB], fills, nxt, fb, acc, nb, row, wts, ivals, fvals, blas)
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
        self.arrays: dict[str, list[np.ndarray]] = {
            "wts": [],
            "ivals": [],
            "fvals": [],
            "tvals": [],
        }
        self.sizes = {"wts": 0, "ivals": 0, "fvals": 0, "tvals": 0}
        self.width = 0  # int16 codes per image, the widest layer boundary
        self.work = 1  # float32 operands or sums per image, the most any layer needs
        self.expand = 1  # float32 transforms of a layer's input by its terms
        self.index = 1  # int32 table indices

    def row(self, op: int, in_size: int, out_size: int) -> np.ndarray:
        r = np.zeros(COLUMNS, np.int64)
        r[OP], r[IN_SIZE], r[OUT_SIZE] = op, in_size, out_size
        r[TABLE] = -1
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

    def linear(
        self,
        r: np.ndarray,
        plan: Any,
        x_dtype: np.dtype,
        attrs: dict[str, Any],
        xs: Sequence[int],
    ) -> None:
        """A QConv's or QGemm's constants: weights (or table indices), offsets
        and requantizer, one constant of each per output channel, and the
        buffers it needs. Refused where float32 sums could be inexact."""
        if not _codes(x_dtype):
            raise _Refused
        q, m = plan.requant, int(plan.w_shape[0])
        if any(a.size not in (1, m) for a in (q.mult, q.shift, q.scale)) or not _codes(q.dtype):
            raise _Refused
        conv = r[OP] == CONV
        pixels = int(r[OH] * r[OW]) if conv else 1
        r[PIXELS] = pixels
        taps = math.prod(plan.w_shape[1:])
        r[C] = xs[0]
        r[M] = m
        r[OFFSETS] = self.add("ivals", plan.offset, np.int64)
        r[MULTS] = self.add("ivals", np.broadcast_to(q.mult.reshape(-1), m), np.int64)
        r[SHIFTS] = self.add("ivals", np.broadcast_to(q.shift.reshape(-1), m), np.int64)
        r[SCALES] = self.add("fvals", np.broadcast_to(q.scale.reshape(-1), m), np.float32)
        r[ACC_BITS], r[FLOAT_MODE] = q.acc_bits, int(q.float_mode)
        r[ZP], r[QMIN], r[QMAX] = q.zp, q.qmin, q.qmax
        if plan.__class__ in (_QConv, _QGemm):
            if taps * max(1, plan.bound_w * plan.bound_x(x_dtype)) >= _EXACT_FLOAT32:
                raise _Refused
            r[SUB] = 0 if plan.raw else plan.zx
            r[FILLS] = self.add("fvals", [plan.zx - r[SUB]], np.float32)  # padding: the zero point
            r[WEIGHTS] = self.add("wts", plan.wf, np.float32)
            self._operands(r, attrs, xs, 1, taps, pixels)
            return
        if plan.__class__ not in (ApproxConv, ApproxGemm):
            raise _Refused
        try:
            plan.check_input(x_dtype)
        except UserError:
            raise _Refused from None  # the node-by-node run reports it
        mult = plan.m
        r[SUB], r[A_LO] = plan.zx, mult.a_lo
        if plan.factored is not None:
            # the terms, even where the node-by-node run takes the table: one
            # program's blocks make the stacked product the faster (measured
            # on digits with trunc(4): 1.4 against 6.3 ms)
            terms = len(plan.term_luts)
            if terms * taps * max(1, plan.stacked_bound) >= _EXACT_FLOAT32:
                raise _Refused
            identity = np.arange(mult.a_lo, mult.a_hi + 1, dtype=np.float32)
            luts = [identity if lut is None else lut for lut in plan.term_luts]
            r[TERMS], r[LUT_SIZE], r[LUT_SHIFT] = terms, identity.size, plan.zx + mult.a_lo
            r[LUTS] = self.add("fvals", np.concatenate(luts), np.float32)
            # padding is a centered 0, transformed
            r[FILLS] = self.add("fvals", [lut[-mult.a_lo] for lut in luts], np.float32)
            r[WEIGHTS] = self.add("wts", plan.stacked_weights, np.float32)
            self.expand = max(self.expand, terms * int(r[IN_SIZE]))
            self._operands(r, attrs, xs, terms, taps, pixels)
            return
        r[TABLE] = self.add("tvals", plan.tt, np.int32)
        r[TB], r[TA] = plan.tt.shape
        r[WINDEX] = self.add("tvals", plan.wi, np.int32)
        if taps > plan.chunk:
            raise _Refused  # int32 sums could overflow
        r[PACKED], r[BIAS] = plan.packed_chunk, plan.bias
        r[IDX_LO], r[IDX_HI] = plan.index_range
        self.index = max(self.index, taps * pixels)

    def _operands(
        self,
        r: np.ndarray,
        attrs: dict[str, Any],
        xs: Sequence[int],
        terms: int,
        taps: int,
        pixels: int,
    ) -> None:
        """The float32 buffers of an exact product over ``terms`` stacked
        transforms of the input, through the direct kernel where it applies."""
        if r[OP] == CONV and direct3x3_ok(attrs, terms * xs[0]):
            r[DIRECT] = 1
            padded = (xs[1] + r[TOP] + r[BOTTOM]) * (xs[2] + r[LEFT] + r[RIGHT])
            self.work = max(self.work, terms * xs[0] * padded)
        else:
            self.work = max(self.work, terms * taps * pixels, int(r[M]) * pixels)


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
            if attrs["group"] != 1 or not small_map(attrs, (1, *xs)):
                raise _Refused
            r = b.row(CONV, fin, fout)
            _window(r, attrs, xs, ys)
            b.linear(r, plan, x_dtype, attrs, xs)
        elif node.op == "QGemm":
            if len(xs) != 1 or len(ys) != 1:
                raise _Refused
            r = b.row(GEMM, fin, fout)
            b.linear(r, plan, x_dtype, attrs, xs)
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
        self.tvals = builder.array("tvals", np.int32)
        self.sizes = np.array(
            [builder.width, builder.work, builder.expand, builder.index], np.int64
        )
        self.out_dtype = out_dtype
        self.out_shape = out_shape
        # two int16 code buffers, two float32 operand buffers, the terms'
        # transforms, the table indices
        per_image = int(self.sizes @ np.array([4, 8, 4, 4]))
        self.block = int(max(1, min(_MAX_BLOCK, _BLOCK_BYTES // per_image)))
        for r in self.code:
            # packing table rows pays off over long rows of patches only
            if r[TABLE] >= 0 and r[PIXELS] * self.block < _PACKED_MIN_COLUMNS:
                r[PACKED] = 0

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
                self.tvals,
                self.sizes,
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
