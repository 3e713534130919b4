"""QConv and QGemm with an approximate multiplier, bit-exactly.

Each product of a centered activation ``x - zx`` and a centered weight
``w - zw`` goes through the layer's multiplier (docs/arithmetic.md,
"Approximate multipliers"); the sums, the bias, the accumulator's wrap and the
requantizer are those of the exact layer. Every tap of a window goes through
the multiplier, padding included (its centered value is 0), as in hardware.

Two ways to compute the sums, both exact:

* **decomposed**: when the multiplier's table is ``T(a, b) = a*b + sum_r
  f_r(a) g_r(b)`` with a few integer-valued factor pairs (truncated, broken-
  array and perforated multipliers have this form), the layer is 1 + r exact
  matrix products, at BLAS speed;
* **table**: otherwise a gather from the table, in a Numba kernel that packs
  the table rows of three weights into one 64-bit word (so one lookup serves
  three products) and streams a row of activation indices past four such
  words; with few patches and many weights it swaps the roles, packing per
  patch and streaming the weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from axc.arith.multipliers import Multiplier
from axc.errors import UserError
from axc.sim.int_kernels import (
    _EXACT_FLOAT32,
    _accumulate,
    _holds,
    _im2col2d,
    _operands,
    _Requant,
    conv_output_shape,
    direct3x3,
    direct3x3_ok,
    minor_batches,
    minor_out_spatial,
    small_map,
    storage,
)
from axc.sim.jit import parallel_kernel
from axc.sim.kernels import (
    _U,
    _pad_spatial,
    _windows,
    im2col2d_minor,
    pad_minor,
    to_major,
    to_minor,
)

__all__ = ["approximate_conv", "approximate_gemm", "decompose"]

_COLS_BYTES = 64 << 20  # bound on one patch matrix; larger batches are processed in slices
_PACKED_MIN_COLUMNS = 160  # below this, packing table rows costs more than it saves (measured)
# below this many patches, with twice as many weights, packing per patch and
# streaming the weights is faster (measured: 1.3x at 196 patches, 512 weights)
_TRANSPOSED_BELOW = 256
_TRANSPOSED_RATIO = 2


@numba.njit(nogil=True, cache=True, inline="always")
def _gather_add4(
    idx: np.ndarray,
    r0: np.ndarray,
    r1: np.ndarray,
    r2: np.ndarray,
    r3: np.ndarray,
    a0: np.ndarray,
    a1: np.ndarray,
    a2: np.ndarray,
    a3: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """a_j[q] += r_j[idx[q]] for four rows: one index read serves four lookups."""
    for q in range(idx.shape[0]):
        v = idx[q]
        a0[q] += r0[v]
        a1[q] += r1[v]
        a2[q] += r2[v]
        a3[q] += r3[v]


@parallel_kernel
def _lut_matmul(
    xi: np.ndarray, wi: np.ndarray, tt: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """out[m, q] = sum_k tt[wi[m, k], xi[k, q]] in int32 (the caller keeps K
    short enough that no sum overflows). Four weights' table rows stay in
    cache while a row of activation indices streams past them."""
    m_count, k_count = wi.shape
    q_count = xi.shape[1]
    for blk in numba.prange((m_count + 3) // 4):
        m0 = blk * 4
        mc = min(4, m_count - m0)
        for mm in range(mc):
            for q in range(q_count):
                out[m0 + mm, q] = 0
        if mc == 4:
            a0, a1, a2, a3 = out[m0], out[m0 + 1], out[m0 + 2], out[m0 + 3]
            for k in range(k_count):
                r0, r1 = tt[wi[m0, k]], tt[wi[m0 + 1, k]]
                r2, r3 = tt[wi[m0 + 2, k]], tt[wi[m0 + 3, k]]
                _gather_add4(xi[k], r0, r1, r2, r3, a0, a1, a2, a3)
        else:
            for mm in range(mc):
                acc = out[m0 + mm]
                for k in range(k_count):
                    row = tt[wi[m0 + mm, k]]
                    idx = xi[k]
                    for q in range(q_count):
                        acc[q] += row[idx[q]]


_LANE = 21  # three lanes of a 64-bit word


@numba.njit(nogil=True, cache=True, inline="always")
def _pack_rows(
    tt: np.ndarray,
    wi: np.ndarray,
    m0: int,
    count: int,
    k: int,
    bias: int,
    row: np.ndarray,
    lo: int,
    hi: int,
) -> None:  # pragma: no cover - compiled
    """row[x] for x in lo..hi: the table rows of weights m0 .. m0 + count - 1
    (count 1 to 3) at tap k, each offset by ``bias`` (so non-negative), in
    21-bit lanes of one int64. Slices and a loop from 0 keep every index
    provably non-negative, so the loop vectorizes (an index ``lo + x`` does
    not: Numba's negative-index check stops it)."""
    w0 = wi[m0, k]
    w1 = wi[m0 + 1, k] if count > 1 else w0
    w2 = wi[m0 + 2, k] if count > 2 else w0
    r0, r1, r2 = tt[w0, lo : hi + 1], tt[w1, lo : hi + 1], tt[w2, lo : hi + 1]
    dst = row[lo : hi + 1]
    for x in range(dst.shape[0]):
        dst[x] = (
            np.int64(r0[x] + bias)
            | (np.int64(r1[x] + bias) << _LANE)
            | (np.int64(r2[x] + bias) << (2 * _LANE))
        )


@numba.njit(nogil=True, cache=True, inline="always")
def _unpack_lanes(
    acc: np.ndarray, out: np.ndarray, m0: int, count: int, offset: int
) -> None:  # pragma: no cover - compiled
    """out[m0 + j] += lane j of ``acc`` less ``offset``, for j < count."""
    mask = (np.int64(1) << _LANE) - 1
    for j in range(count):
        dst, shift = out[m0 + j], _LANE * j
        for q in range(acc.shape[0]):
            dst[q] += ((acc[q] >> shift) & mask) - offset


@parallel_kernel
def _lut_matmul_packed(
    xi: np.ndarray,
    wi: np.ndarray,
    tt: np.ndarray,
    bias: int,
    chunk: int,
    lo: int,
    hi: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """out[m, q] = sum_k tt[wi[m, k], xi[k, q]], twelve weights per pass: the
    table rows of three weights are packed into 21-bit lanes of one int64, so
    one lookup and one add serve three products, and four such words share
    each activation index read. Entries are offset by ``bias`` to be
    non-negative and a lane holds ``chunk`` of them without carrying into the
    next; after each chunk of taps the lanes are unpacked into ``out``.
    ``lo``..``hi`` bound the activation indices (only those rows are packed);
    unsigned indices (uint8) spare Numba's negative-index checks."""
    m_count, k_count = wi.shape
    q_count = xi.shape[1]
    for blk in numba.prange((m_count + 11) // 12):
        m0 = blk * 12
        mc = min(12, m_count - m0)
        for j in range(mc):
            out[m0 + j, :] = 0
        rows = np.zeros((4, tt.shape[1]), np.int64)
        acc = np.empty((4, q_count), np.int64)
        r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        for k0 in range(0, k_count, chunk):
            k1 = min(k_count, k0 + chunk)
            acc[:] = 0
            for k in range(k0, k1):
                for word in range(4):
                    count = min(3, mc - 3 * word)
                    if count > 0:
                        _pack_rows(tt, wi, m0 + 3 * word, count, k, bias, rows[word], lo, hi)
                _gather_add4(xi[k], r0, r1, r2, r3, a0, a1, a2, a3)
            offset = (k1 - k0) * bias
            for word in range(4):
                count = min(3, mc - 3 * word)
                if count > 0:
                    _unpack_lanes(acc[word], out, m0 + 3 * word, count, offset)


def _lane_chunk(table: np.ndarray) -> tuple[int, int]:
    """The bias that makes ``table``'s entries non-negative and how many of
    them a 21-bit lane sums without carrying (0: they do not fit a lane)."""
    bias = -int(table.min(initial=0))
    span = int(table.max(initial=0)) + bias
    return bias, ((1 << _LANE) - 1) // max(1, span) if span < (1 << 20) else 0


@parallel_kernel
def _lut_rows(
    cols: np.ndarray, lut: np.ndarray, lo: int, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """out = lut[cols - lo] for integer-valued float32 ``cols``."""
    for i in numba.prange(cols.shape[0]):
        src, dst = cols[i], out[i]
        for j in range(src.shape[0]):
            dst[j] = lut[np.int32(src[j]) - lo]


@parallel_kernel
def _lut_codes(
    x: np.ndarray, lut: np.ndarray, shift: int, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """out = lut[x - shift] for flat integer codes ``x``, as float32."""
    rows = (x.size + 4095) // 4096
    for r in numba.prange(rows):
        for i in range(r * 4096, min(x.size, (r + 1) * 4096)):
            out[i] = lut[_U(np.int64(x[i]) - shift)]


@parallel_kernel
def _to_index(cols: np.ndarray, lo: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out = int(cols) - lo: table indices of integer-valued float32 operands."""
    for i in numba.prange(cols.shape[0]):
        src, dst = cols[i], out[i]
        for j in range(src.shape[0]):
            dst[j] = np.int32(src[j]) - lo


# ------------------------------------------------------------ decomposition
def _features(values: np.ndarray, bits: int, sign_magnitude: bool) -> np.ndarray:
    """Candidate factors of one operand: sign * bit_i(|v|) for each bit, the
    sign, and whether the operand is zero (a sign-magnitude multiplier's 0 has
    no sign, so constants such as a correction term need it)."""
    v = values.astype(np.int64)
    sign = np.sign(v) if sign_magnitude else np.ones_like(v)
    mag = np.abs(v) if sign_magnitude else v - v.min()
    cols = [sign * ((mag >> i) & 1) for i in range(bits + 1)]
    cols.append(sign)
    cols.append((v == 0).astype(np.int64))
    return np.stack(cols, axis=1).astype(np.int64)


_DECOMPOSED: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}


def decompose(m: Multiplier) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer factors (F over a, G over b) with ``T = a*b + F @ G.T`` exactly on
    the whole table, with F's columns chosen among the sign-and-bit features of
    ``a`` (or of ``b``, transposed), or None when no such form exists."""
    key = m.digest()
    if key not in _DECOMPOSED:
        if len(_DECOMPOSED) > 256:
            _DECOMPOSED.clear()
        _DECOMPOSED[key] = _solve(m)
    return _DECOMPOSED[key]


def _solve(m: Multiplier) -> tuple[np.ndarray, np.ndarray] | None:
    error = (m.table.astype(np.int64) - m.exact_table()).astype(np.float64)
    if not error.any():
        return np.zeros((error.shape[0], 0), np.int64), np.zeros((error.shape[1], 0), np.int64)
    a = np.arange(m.a_lo, m.a_hi + 1)
    b = np.arange(m.b_lo, m.b_hi + 1)
    best: tuple[np.ndarray, np.ndarray] | None = None
    for transpose in (False, True):
        e = error.T if transpose else error
        values = b if transpose else a
        feats = _features(values, m.bits, m.sign_magnitude).astype(np.float64)
        keep = [i for i in range(feats.shape[1]) if feats[:, i].any()]
        feats = feats[:, keep]
        # least squares, then exact integer check on every pair
        coef, *_ = np.linalg.lstsq(feats, e, rcond=None)
        g = np.rint(coef)
        used = np.abs(g).sum(axis=1) > 0
        f_int = feats[:, used].astype(np.int64)
        g_int = g[used].astype(np.int64)
        if np.array_equal(f_int @ g_int, e.astype(np.int64)):
            pair = (g_int.T, f_int) if transpose else (f_int, g_int.T)
            if best is None or pair[0].shape[1] < best[0].shape[1]:
                best = pair
    return best


def _reduce_rank(f: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fewer factor pairs for the same F @ G.T when G's columns are integer
    combinations of a few of them (perforation's bits share one column)."""
    r = g.shape[1]
    if r <= 1:
        return f, g
    rank = int(np.linalg.matrix_rank(g.astype(np.float64)))
    if rank == r:
        return f, g
    # a basis of G's columns, the ones of smallest magnitude first
    order = np.argsort(np.abs(g).max(axis=0))
    basis: list[int] = []
    for j in order:
        trial = [*basis, int(j)]
        if np.linalg.matrix_rank(g[:, trial].astype(np.float64)) == len(trial):
            basis = trial
        if len(basis) == rank:
            break
    b = g[:, basis].astype(np.float64)
    c, *_ = np.linalg.lstsq(b, g.astype(np.float64), rcond=None)  # G = B @ C
    c_int = np.rint(c).astype(np.int64)
    if not np.array_equal(g[:, basis] @ c_int, g):
        return f, g
    return f @ c_int.T, g[:, basis]


def _multiple_of(v: np.ndarray, base: np.ndarray) -> int | None:
    """The integer c with v == c * base everywhere, if there is one."""
    nz = base != 0
    if not nz.any() or (v[~nz] != 0).any():
        return None
    c = int(v[nz][0]) // int(base[nz][0]) if int(v[nz][0]) % int(base[nz][0]) == 0 else None
    return c if c is not None and np.array_equal(v, c * base) else None


def factorize(m: Multiplier) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Terms (p over a, q over b), integer arrays over the operand ranges, with
    ``T[a, b] = sum_j p_j[a] * q_j[b]`` exactly: the exact product (a, b) with
    the error's factor pairs merged into it where they are proportional to b
    (or to a), or None when the table has no such small form."""
    pair = decompose(m)
    if pair is None:
        return None
    f, g = _reduce_rank(*pair)
    a = np.arange(m.a_lo, m.a_hi + 1, dtype=np.int64)
    b = np.arange(m.b_lo, m.b_hi + 1, dtype=np.int64)
    p0, q0 = a.copy(), b.copy()
    rest: list[tuple[np.ndarray, np.ndarray]] = []
    for r in range(f.shape[1]):
        fr, gr = f[:, r], g[:, r]
        c = _multiple_of(gr, b)
        if c is not None:  # f_r(a) * c * b is part of (a + c f_r(a)) * b
            p0 = p0 + c * fr
            continue
        c = _multiple_of(fr, a)
        if c is not None:  # c * a * g_r(b) is part of a * (b + c g_r(b))
            q0 = q0 + c * gr
            continue
        rest.append((fr, gr))
    return [(p0, q0), *rest]


# --------------------------------------------------------------- the plans
class _Approx:
    def __init__(
        self,
        attrs: dict[str, Any],
        w: np.ndarray,
        bias: np.ndarray | None,
        m: Multiplier,
        method: str | None = None,
    ) -> None:
        """``method``: "terms" or "table" to force a computation (tests), else
        the cheaper one for this layer."""
        self.attrs, self.m = attrs, m
        self.zx = int(attrs["x_zero_point"])
        zw = np.asarray(attrs["w_zero_point"], np.int64).reshape(-1)
        count = w.shape[0]
        wc = w.astype(np.int64).reshape(count, -1) - (zw[:, None] if zw.size > 1 else zw[0])
        if wc.min() < m.b_lo or wc.max() > m.b_hi:
            raise UserError(
                f"weights span [{wc.min()}, {wc.max()}] (zero point {zw.tolist()}), beyond "
                f"multiplier {m.name}'s operand range [{m.b_lo}, {m.b_hi}]"
            )
        self.w_shape = w.shape
        self.wc = wc
        self.offset = (
            bias.astype(np.int64) if bias is not None else np.zeros(count, np.int64)
        ).copy()
        self.requant = _Requant(attrs)
        terms = factorize(m)
        rows = count // max(1, int(attrs.get("group", 1)))
        # Per column of patches, the factored form costs a BLAS product per
        # term (about rows / 25 ns) plus a pass over the patches per term
        # (about 0.5 ns); the table costs about 0.4 ns per row. Small layers
        # with many terms run faster from the table.
        cheaper = terms is not None and (
            len(terms) * (rows / 25 + 0.5) < 0.4 * rows + (len(terms) == 1)
        )
        if method is not None and method not in ("terms", "table"):
            raise ValueError(f"method must be 'terms' or 'table', not {method!r}")
        # the multiplier's terms, where its table has them (the one-program
        # path in fused.py takes them whatever this layer's choice below)
        self.factored = terms
        use_terms = terms is not None and (method == "terms" or (method is None and cheaper))
        self.terms: list[tuple[np.ndarray, np.ndarray]] | None = terms if use_terms else None
        if terms is not None:
            # per term: its activation transform (None: the identity) and its
            # weights, q_j(w) as float32 (M, K)
            a = np.arange(m.a_lo, m.a_hi + 1, dtype=np.int64)
            self.term_luts = [
                None if np.array_equal(p, a) else np.ascontiguousarray(p, np.float32)
                for p, _ in terms
            ]
            self.term_weights = [np.ascontiguousarray(q[wc - m.b_lo], np.float32) for _, q in terms]
            self.term_bounds = [
                (int(np.abs(p).max(initial=1)), int(np.abs(q[wc - m.b_lo]).max(initial=1)))
                for p, q in terms
            ]
            # the terms side by side, one product: [q_0(w) | q_1(w) | ...] (M, T * K)
            # against the activations' transforms stacked (T * K, Q)
            self.stacked_weights = np.ascontiguousarray(np.concatenate(self.term_weights, axis=1))
            self.stacked_bound = max(bx * bw for bx, bw in self.term_bounds)
        if self.terms is None:
            self.tt = np.ascontiguousarray(m.table.T, np.int32)
            self.wi = (wc - m.b_lo).astype(np.int32)
            # int32 sums are exact while chunk * max|T| < 2^31
            self.chunk = max(1, ((1 << 31) - 1) // max(1, int(np.abs(self.tt).max(initial=0))))
            # packed lanes: entries offset to [0, span] must sum within 21 bits
            self.bias, self.packed_chunk = _lane_chunk(self.tt)
            self.index_range = (0, self.tt.shape[1] - 1)
        self._checked: set[np.dtype] = set()
        self._win: tuple[tuple[int, int], np.ndarray, int, int] | None = None
        self._t_cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray, int, int]] = {}

    def check_input(self, dtype: np.dtype) -> None:
        if dtype in self._checked:
            return
        info = np.iinfo(dtype)
        lo, hi = int(info.min) - self.zx, int(info.max) - self.zx
        if self.terms is None:  # the table rows the inputs seen so far can index
            first, last = max(0, lo - self.m.a_lo), min(self.m.a_hi, hi) - self.m.a_lo
            if self._checked:
                first, last = min(first, self.index_range[0]), max(last, self.index_range[1])
            self.index_range = (first, last)
        if lo < self.m.a_lo or hi > self.m.a_hi:
            raise UserError(
                f"activations ({dtype}, zero point {self.zx}) span [{lo}, {hi}], beyond "
                f"multiplier {self.m.name}'s operand range [{self.m.a_lo}, {self.m.a_hi}]; "
                "quantize them with fewer bits or use a wider (or sign-magnitude) multiplier"
            )
        self._checked.add(dtype)

    def sums(self, cols: np.ndarray, w_rows: slice) -> np.ndarray:
        """Exact sums (M_rows, Q) of m(x, w) over K for centered activations
        ``cols`` (K, Q) given as float32 integers: int64 from the table, or
        integer-valued floats from the factored terms."""
        wc = self.wc[w_rows]
        if self.terms is not None:
            # one exact product over the stacked terms: integer-valued floats
            luts, k = self.term_luts, cols.shape[0]
            if len(luts) == 1 and luts[0] is None:
                x = cols
            else:
                x = np.empty((len(luts) * k, cols.shape[1]), np.float32)
                for j, lut in enumerate(luts):
                    if lut is None:
                        x[j * k : (j + 1) * k] = cols
                    else:
                        _lut_rows(
                            np.ascontiguousarray(cols), lut, self.m.a_lo, x[j * k : (j + 1) * k]
                        )
            return _accumulate(self.stacked_weights[w_rows], x, self.stacked_bound, 1)
        table, bias, packed = self._window()
        # indices into the window: one byte each where it is 256 wide or less
        xi = np.empty(cols.shape, np.uint8 if table.shape[1] <= 256 else np.int32)
        _to_index(np.ascontiguousarray(cols), self.m.a_lo + self.index_range[0], xi)
        wi = np.ascontiguousarray(self.wi[w_rows])
        q = cols.shape[1]
        if packed and q >= _PACKED_MIN_COLUMNS:
            if q < _TRANSPOSED_BELOW and q * _TRANSPOSED_RATIO <= wc.shape[0]:
                # few patches, many weights: pack per patch, stream the weights
                wt, table_t, bias_t, packed_t = self._transposed(w_rows)
                if packed_t:
                    out_t = np.empty((q, wc.shape[0]), np.int64)
                    xt = np.ascontiguousarray(xi.T)
                    _lut_matmul_packed(
                        wt, xt, table_t, bias_t, packed_t, 0, table_t.shape[1] - 1, out_t
                    )
                    return np.ascontiguousarray(out_t.T)
            # rows of patches long enough to amortize packing table rows;
            # only the entries of the indices present are packed (post-ReLU
            # inputs use half the window, saturated ones a few entries)
            out64 = np.empty((wc.shape[0], q), np.int64)
            lo, hi = (int(xi.min()), int(xi.max())) if xi.size else (0, 0)
            _lut_matmul_packed(xi, wi, table, bias, packed, lo, hi, out64)
            return out64
        chunk = self.chunk
        total = np.zeros((wc.shape[0], cols.shape[1]), np.int64)
        part = np.empty((wc.shape[0], cols.shape[1]), np.int32)
        for k0 in range(0, wi.shape[1], chunk):
            _lut_matmul(
                np.ascontiguousarray(xi[k0 : k0 + chunk]),
                np.ascontiguousarray(wi[:, k0 : k0 + chunk]),
                table,
                part,
            )
            total += part
        return total

    def _transposed(self, w_rows: slice) -> tuple[np.ndarray, np.ndarray, int, int]:
        """For the roles swapped: the weights' indices (K, M_rows) into the
        rows they use, one byte each where that fits, and the window's
        transpose over those rows, with its bias and packed chunk."""
        table, _, _ = self._window()
        key = (self.index_range, w_rows.start, w_rows.stop)
        if key not in self._t_cache:
            wi = self.wi[w_rows]
            lo, hi = (int(wi.min()), int(wi.max())) if wi.size else (0, 0)
            kind = np.uint8 if hi - lo < 256 else np.int32
            wt = np.ascontiguousarray((wi - lo).T.astype(kind))
            table_t = np.ascontiguousarray(table[lo : hi + 1].T)
            self._t_cache[key] = (wt, table_t, *_lane_chunk(table_t))
        return self._t_cache[key]

    def _window(self) -> tuple[np.ndarray, int, int]:
        """The table's columns that the inputs seen so far can index
        (``index_range``), contiguous, with the bias and chunk that pack them
        (a sign-magnitude table is 511 wide; one input type indexes 256)."""
        lo, hi = self.index_range
        if self._win is None or self._win[0] != (lo, hi):
            table = np.ascontiguousarray(self.tt[:, lo : hi + 1])
            self._win = ((lo, hi), table, *_lane_chunk(table))
        return self._win[1], self._win[2], self._win[3]

    def _term_inputs(self, part: np.ndarray) -> list[tuple[np.ndarray, float, int]]:
        """Per term of the factored form: its operand source (the codes, or
        their transform by the term's activation table, as float32), the
        operand value of padding, and what to subtract from the source."""
        assert self.terms is not None
        inputs: list[tuple[np.ndarray, float, int]] = []
        for lut in self.term_luts:
            if lut is None:  # centered codes; padding holds the zero point, centered 0
                inputs.append((part, 0.0, self.zx))
            else:  # lut indexed by the centered value minus a_lo; padding is centered 0
                src = np.empty(part.shape, np.float32)
                _lut_codes(part.reshape(-1), lut, self.zx + self.m.a_lo, src.reshape(-1))
                inputs.append((src, float(lut[-self.m.a_lo]), 0))
        return inputs


class ApproxConv(_Approx):
    def minor_ok(self, x_shape: Sequence[Any]) -> bool:
        """Whether the batch-minor path takes an input of this (N, C, ...) shape
        (:func:`axc.sim.int_kernels.small_map`)."""
        return small_map(self.attrs, x_shape)

    def minor(self, xt: np.ndarray, finish: Any = None) -> np.ndarray:
        """The layer on a batch-minor (C, H, W, N) input, batch-minor out:
        (M, OH, OW, N). The patch matrix (K, P * N) of centered activations is
        built of runs N long (see axc/sim/minor.py)."""
        finish = finish or self.requant
        attrs, group = self.attrs, self.attrs["group"]
        self.check_input(xt.dtype)
        m, cin = self.w_shape[0], self.w_shape[1]
        mg = m // group
        out_spatial = minor_out_spatial(attrs, xt.shape)
        if finish is self.requant:
            direct = self._direct(xt, out_spatial)
            if direct is not None:
                return direct

        def sums(part: np.ndarray) -> np.ndarray:
            ys = [self._minor_sums(part, g, cin, mg, out_spatial) for g in range(group)]
            return ys[0] if group == 1 else np.concatenate(ys, axis=0)

        k = cin * math.prod(attrs["kernel_shape"])
        step = max(1, _COLS_BYTES // max(1, math.prod(out_spatial) * k * 4))
        return minor_batches(xt, m, out_spatial, step, sums, finish, self.offset)

    def _minor_sums(
        self, part: np.ndarray, g: int, cin: int, mg: int, out_spatial: list[int]
    ) -> np.ndarray:
        """Group ``g``'s sums (Mg, P * N) over a batch-minor input ``part``. The
        factored form transforms the input by each term's activation table
        once, before the patch matrix (which repeats every value K / C times),
        and stacks the terms' patch matrices for one product."""
        attrs, rows = self.attrs, slice(g * mg, (g + 1) * mg)
        if self.terms is None:
            # centered operands; padding holds the zero point, centered 0
            cols = im2col2d_minor(part, g * cin, cin, attrs, out_spatial, 0.0, self.zx)
            return self.sums(cols, rows)
        k = cin * math.prod(attrs["kernel_shape"])
        x = np.empty((len(self.term_luts) * k, math.prod(out_spatial) * part.shape[-1]), np.float32)
        for j, (src, fill, sub) in enumerate(self._term_inputs(part)):
            im2col2d_minor(src, g * cin, cin, attrs, out_spatial, fill, sub, x[j * k : (j + 1) * k])
        return _accumulate(self.stacked_weights[rows], x, self.stacked_bound, 1)

    def _direct(self, xt: np.ndarray, out_spatial: list[int]) -> np.ndarray | None:
        """The layer through the direct 3x3 kernel, each term's transformed
        input a group of input channels (the stacked weights are laid out
        term by term, channel by channel); None when it does not apply."""
        attrs = self.attrs
        if self.terms is None or xt.ndim != 4:
            return None
        channels = len(self.term_luts) * xt.shape[0]
        if not direct3x3_ok(attrs, channels):
            return None
        if channels * 9 * max(1, self.stacked_bound) >= _EXACT_FLOAT32:
            return None
        pads = attrs["pads"]
        xp = np.concatenate(
            [pad_minor(src, pads, fill, sub) for src, fill, sub in self._term_inputs(xt)], axis=0
        )
        return direct3x3(xp, self.stacked_weights, attrs, out_spatial, self.offset, self.requant)

    def __call__(self, args: Sequence[np.ndarray], finish: Any = None) -> list[np.ndarray]:
        finish = finish or self.requant
        x, attrs = args[0], self.attrs
        if self.minor_ok(x.shape):
            return [to_major(self.minor(to_minor(x), finish))]
        self.check_input(x.dtype)
        nd, group = len(attrs["kernel_shape"]), attrs["group"]
        m, cin = self.w_shape[0], self.w_shape[1]
        mg = m // group
        xf = _pad_spatial(
            x if _holds(x.dtype, self.zx) else x.astype(np.float32), attrs["pads"], self.zx
        )
        kernel_shape = attrs["kernel_shape"]
        out_spatial = conv_output_shape(xf.shape, attrs)
        pixels = math.prod(out_spatial)
        n = x.shape[0]
        k = cin * math.prod(kernel_shape)
        step = max(1, _COLS_BYTES // max(1, pixels * k * 4))
        total = np.empty((n, m, pixels), np.int64)
        kernel_axes = tuple(range(2 + nd, 2 + 2 * nd))
        for start in range(0, n, step):
            part = xf[start : start + step]
            count = part.shape[0]
            for g in range(group):
                if nd == 2:  # the padded input's patches, (K, count * P)
                    cols = _im2col2d(part, g * cin, cin, attrs, out_spatial, True, self.zx)
                else:
                    view = _windows(
                        _operands(part[:, g * cin : (g + 1) * cin], self.zx), attrs, out_spatial
                    )
                    order = (1, *kernel_axes, 0, *range(2, 2 + nd))
                    cols = np.ascontiguousarray(view.transpose(order)).reshape(k, -1)
                y = self.sums(cols, slice(g * mg, (g + 1) * mg))  # (Mg, count * P)
                total[start : start + count, g * mg : (g + 1) * mg] = y.reshape(
                    mg, count, pixels
                ).transpose(1, 0, 2)
        return [finish(total, self.offset).reshape(n, m, *out_spatial)]


class ApproxGemm(_Approx):
    def __call__(self, args: Sequence[np.ndarray], finish: Any = None) -> list[np.ndarray]:
        finish = finish or self.requant
        a = args[0]
        self.check_input(a.dtype)
        rows = a.reshape(-1, a.shape[-1])
        cols = (rows.astype(np.float32) - np.float32(self.zx)).T  # (K, rows)
        total = self.sums(np.ascontiguousarray(cols), slice(None))  # (N, rows)
        out = finish(np.ascontiguousarray(total.T), self.offset, channel_last=True)
        return [out.reshape(*a.shape[:-1], self.w_shape[0])]

    def minor(self, xt: np.ndarray, finish: Any = None) -> np.ndarray:
        """The layer on a batch-minor (K, N) input, batch-minor (M, N) out."""
        finish = finish or self.requant
        self.check_input(xt.dtype)
        if self.terms is None:
            cols = xt.astype(np.float32) - np.float32(self.zx)  # (K, N), centered
            return finish(self.sums(cols, slice(None))[None], self.offset)[0]
        # the terms' operands stacked, each written once from the codes
        k = xt.shape[0]
        x = np.empty((len(self.term_luts) * k, xt.shape[1]), np.float32)
        codes = np.ascontiguousarray(xt)
        for j, lut in enumerate(self.term_luts):
            rows = x[j * k : (j + 1) * k]
            if lut is None:
                np.subtract(codes, np.float32(self.zx), out=rows, dtype=np.float32)
            else:
                _lut_codes(codes.reshape(-1), lut, self.zx + self.m.a_lo, rows.reshape(-1))
        total = _accumulate(self.stacked_weights, x, self.stacked_bound, 1)
        return finish(total[None], self.offset)[0]


def approximate_conv(
    attrs: dict[str, Any], w: np.ndarray, bias: np.ndarray | None, m: Multiplier
) -> ApproxConv:
    return ApproxConv(attrs, w, bias, m)


def approximate_gemm(
    attrs: dict[str, Any], w: np.ndarray, bias: np.ndarray | None, m: Multiplier
) -> ApproxGemm:
    return ApproxGemm(attrs, w, bias, m)


def output_dtype(attrs: dict[str, Any]) -> np.dtype:
    return storage(int(attrs["requant"]["qmin"]), int(attrs["requant"]["qmax"]))
