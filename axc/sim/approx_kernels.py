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
* **table**: otherwise a gather from the table, in a Numba kernel that keeps
  one weight's column of the table in cache while it streams the activations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from axc.arith.multipliers import Multiplier
from axc.errors import UserError
from axc.sim.int_kernels import _accumulate, _Requant, storage
from axc.sim.kernels import _pad_spatial, _windows

__all__ = ["approximate_conv", "approximate_gemm", "decompose"]

_COLS_BYTES = 64 << 20  # bound on one patch matrix; larger batches are processed in slices


@numba.njit(parallel=True, cache=True, nogil=True)
def _lut_matmul(
    xi: np.ndarray, wi: np.ndarray, tt: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """out[m, q] = sum_k tt[wi[m, k], xi[k, q]]: one weight's table row stays in
    cache while a row of activation indices streams past it."""
    m_count, k_count = wi.shape
    q_count = xi.shape[1]
    for m in numba.prange(m_count):
        acc = out[m]
        for q in range(q_count):
            acc[q] = 0
        for k in range(k_count):
            row = tt[wi[m, k]]
            idx = xi[k]
            for q in range(q_count):
                acc[q] += row[idx[q]]


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


# --------------------------------------------------------------- the plans
class _Approx:
    def __init__(
        self, attrs: dict[str, Any], w: np.ndarray, bias: np.ndarray | None, m: Multiplier
    ) -> None:
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
        self.factors = decompose(m)
        if self.factors is not None:
            f, g = self.factors
            # weight side of each factor pair: g_r(w) for every weight, (M, K, R)
            self.g_w = g[wc - m.b_lo].astype(np.float64)
            self.f_table = f.astype(np.float64)
            self.wf = wc.astype(np.float32)
        else:
            self.tt = np.ascontiguousarray(m.table.T, np.int32)
            self.wi = (wc - m.b_lo).astype(np.int16 if m.table.shape[1] < 32768 else np.int32)
        self._checked: set[np.dtype] = set()

    def check_input(self, dtype: np.dtype) -> None:
        if dtype in self._checked:
            return
        info = np.iinfo(dtype)
        lo, hi = int(info.min) - self.zx, int(info.max) - self.zx
        if lo < self.m.a_lo or hi > self.m.a_hi:
            raise UserError(
                f"activations ({dtype}, zero point {self.zx}) span [{lo}, {hi}], beyond "
                f"multiplier {self.m.name}'s operand range [{self.m.a_lo}, {self.m.a_hi}]; "
                "quantize them with fewer bits or use a wider (or sign-magnitude) multiplier"
            )
        self._checked.add(dtype)

    def sums(self, cols: np.ndarray, w_rows: slice) -> np.ndarray:
        """Exact sums (M_rows, Q) of m(x, w) over K for centered activations
        ``cols`` (K, Q) given as float32 integers."""
        wc = self.wc[w_rows]
        if self.factors is not None:
            bound = max(1, int(np.abs(cols).max(initial=0)))
            total = _accumulate(
                wc.astype(np.float32), cols, int(np.abs(wc).max(initial=0)), bound
            ).astype(np.float64)
            xi = cols.astype(np.int64) - self.m.a_lo
            for r in range(self.f_table.shape[1]):
                fx = self.f_table[xi, r]  # (K, Q)
                gw = self.g_w[w_rows, :, r]  # (M, K)
                total += _accumulate(
                    gw.astype(np.float32) if np.abs(gw).max(initial=0) < 2**24 else gw,
                    fx.astype(np.float32),
                    int(np.abs(gw).max(initial=0)),
                    1,
                )
            return np.rint(total).astype(np.int64)
        xi = (cols.astype(np.int64) - self.m.a_lo).astype(self.wi.dtype)
        out = np.empty((wc.shape[0], cols.shape[1]), np.int64)
        _lut_matmul(np.ascontiguousarray(xi), np.ascontiguousarray(self.wi[w_rows]), self.tt, out)
        return out


class ApproxConv(_Approx):
    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        x, attrs = args[0], self.attrs
        self.check_input(x.dtype)
        nd, group = len(attrs["kernel_shape"]), attrs["group"]
        m, cin = self.w_shape[0], self.w_shape[1]
        mg = m // group
        xf = _pad_spatial(x.astype(np.float32) - np.float32(self.zx), attrs["pads"], 0.0)
        kernel_shape, strides = attrs["kernel_shape"], attrs["strides"]
        out_spatial = [
            (xf.shape[2 + i] - ((kernel_shape[i] - 1) * attrs["dilations"][i] + 1)) // strides[i]
            + 1
            for i in range(nd)
        ]
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
                view = _windows(part[:, g * cin : (g + 1) * cin], attrs, out_spatial)
                order = (1, *kernel_axes, 0, *range(2, 2 + nd))
                cols = np.ascontiguousarray(view.transpose(order)).reshape(k, -1)
                y = self.sums(cols, slice(g * mg, (g + 1) * mg))  # (Mg, count * P)
                total[start : start + count, g * mg : (g + 1) * mg] = y.reshape(
                    mg, count, pixels
                ).transpose(1, 0, 2)
        return [self.requant(total, self.offset).reshape(n, m, *out_spatial)]


class ApproxGemm(_Approx):
    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        a = args[0]
        self.check_input(a.dtype)
        rows = a.reshape(-1, a.shape[-1])
        cols = (rows.astype(np.float32) - np.float32(self.zx)).T  # (K, rows)
        total = self.sums(np.ascontiguousarray(cols), slice(None))  # (N, rows)
        out = self.requant(np.ascontiguousarray(total.T), self.offset, channel_last=True)
        return [out.reshape(*a.shape[:-1], self.w_shape[0])]


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
