"""numpy's own BLAS sgemm, callable from compiled kernels.

Numba's ``np.dot`` calls the BLAS that SciPy ships (and needs SciPy, which
axc does not require), a different build from numpy's: on one test machine
it took twice as long as numpy's for the small, wide products of a
convolution (237 against 119 us for 16x72 by 72x3600). Compiled kernels
therefore call numpy's ``cblas_sgemm`` through its address, passed in as an
argument so that the kernels stay cacheable on disk.

Every integer argument is passed as 64 bits. That serves both the 64-bit
integer builds numpy ships (``scipy_cblas_sgemm64_``) and 32-bit ones: on
the x86-64 and AArch64 calling conventions a 32-bit parameter is the low
half of its 64-bit register or stack slot. :func:`sgemm_address` checks
the function on a small product before handing out its address.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["sgemm", "sgemm_address"]

_SYMBOLS = ("scipy_cblas_sgemm64_", "cblas_sgemm64_", "scipy_cblas_sgemm", "cblas_sgemm")


@intrinsic
def _cblas_sgemm(typingctx, address, a, b, c):
    """c (m, n) = a (m, k) @ b (k, n), all row-major and contiguous, through
    the cblas_sgemm at ``address``."""
    sig = types.void(address, a, b, c)

    def codegen(context, builder, signature, args):
        i64, f32 = ir.IntType(64), ir.FloatType()
        fptr = ir.PointerType(f32)
        fnty = ir.FunctionType(
            ir.VoidType(),
            [i64, i64, i64, i64, i64, i64, f32, fptr, i64, fptr, i64, f32, fptr, i64],
        )
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        arrays = [
            context.make_array(ty)(context, builder, v)
            for ty, v in zip(signature.args[1:], args[1:], strict=True)
        ]
        shape_a = _unpack(builder, arrays[0].shape, 2)
        shape_b = _unpack(builder, arrays[1].shape, 2)
        m, k, n = shape_a[0], shape_a[1], shape_b[1]
        data = [builder.bitcast(arr.data, fptr) for arr in arrays]
        row_major, no_trans = ir.Constant(i64, 101), ir.Constant(i64, 111)
        builder.call(
            fn,
            [
                row_major,
                no_trans,
                no_trans,
                m,
                n,
                k,
                ir.Constant(f32, 1.0),
                data[0],
                k,
                data[1],
                n,
                ir.Constant(f32, 0.0),
                data[2],
                n,
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


def _unpack(builder: ir.IRBuilder, shape: ir.Value, count: int) -> list[ir.Value]:
    return [builder.extract_value(shape, i) for i in range(count)]


@numba.njit(cache=True, nogil=True)
def sgemm(address: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:  # pragma: no cover
    """c = a @ b for contiguous 2-D float32 arrays (c (m, n), a (m, k),
    b (k, n)), through the cblas_sgemm at ``address`` (:func:`sgemm_address`)."""
    _cblas_sgemm(address, a, b, c)  # type: ignore[call-arg]


@cache
def sgemm_address() -> int:
    """The address of numpy's cblas_sgemm (another BLAS's where numpy's is not
    found), checked on a small product; 0 when there is none."""
    try:
        from threadpoolctl import threadpool_info

        found = [i["filepath"] for i in threadpool_info() if i.get("user_api") == "blas"]
    except Exception:  # threadpoolctl missing: no BLAS can be located
        return 0
    found.sort(key=lambda path: "numpy" not in str(path))
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    for path in found:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            address = int(ctypes.cast(fn, ctypes.c_void_p).value or 0)
            c = np.full((2, 4), np.nan, np.float32)
            sgemm(address, a, b, c)
            if np.array_equal(c, a @ b):
                return address
    return 0
