"""The simulator's integer kernels against direct int64 references."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from axc.arith import Requantizer, quantize, wrap
from axc.arith.requant import apply_float32, float32_requantizer
from axc.sim.int_kernels import exact_matmul, requantize
from axc.sim.kernels import KERNELS

RNG = np.random.default_rng(42)


def test_exact_matmul_chunks_long_reductions() -> None:
    a = RNG.integers(-(2**15), 2**15, (40, 3000))
    b = RNG.integers(-(2**15), 2**15, (3000, 30))
    got = exact_matmul(a.astype(np.float32), b.astype(np.float32), 2**15, 2**15)
    assert (got == a @ b).all()


def reference_conv(x, w, b, attrs, product=np.multiply):
    """Direct loops in int64: the definition in docs/arithmetic.md. ``product``
    multiplies centered activations by centered weights (element-wise)."""
    n = x.shape[0]
    m, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    p = attrs["pads"]
    xz = np.pad(
        x.astype(np.int64) - attrs["x_zero_point"], [(0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])]
    )
    zw = np.asarray(attrs["w_zero_point"], np.int64).reshape(-1, 1, 1, 1)
    wz = w.astype(np.int64) - zw
    oh = (xz.shape[2] - (dh * (kh - 1) + 1)) // sh + 1
    ow = (xz.shape[3] - (dw * (kw - 1) + 1)) // sw + 1
    group = attrs["group"]
    acc = np.zeros((n, m, oh, ow), np.int64)
    for o in range(m):
        g = o // (m // group)
        for i in range(oh):
            for j in range(ow):
                patch = xz[
                    :,
                    g * cg : (g + 1) * cg,
                    i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                    j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                ]
                acc[:, o, i, j] = product(patch, wz[o][None]).sum(axis=(1, 2, 3))
    if b is not None:
        acc += b.reshape(1, -1, 1, 1)
    acc = wrap(acc, attrs["acc_bits"])
    if attrs["requant"].get("mode") == "float32":
        return apply_float32(acc, attrs["requant"], axis=1)
    return Requantizer.from_attr(attrs["requant"]).apply(acc, axis=1)


@pytest.mark.parametrize(
    "case",
    [
        {"group": 1, "pads": (1, 1, 1, 1), "strides": (1, 1), "dilations": (1, 1), "acc_bits": 32},
        {"group": 4, "pads": (0, 1, 2, 1), "strides": (2, 1), "dilations": (1, 2), "acc_bits": 32},
        {"group": 1, "pads": (0, 0, 0, 0), "strides": (1, 1), "dilations": (1, 1), "acc_bits": 12},
    ],
)
def test_qconv_matches_reference(case) -> None:
    m, c = 8, 4
    group = case["group"]
    x = RNG.integers(0, 256, (3, c, 7, 6)).astype(np.uint8)
    w = RNG.integers(-127, 128, (m, c // group, 3, 3)).astype(np.int8)
    b = RNG.integers(-5000, 5000, m).astype(np.int32)
    requant = Requantizer.from_scale(RNG.uniform(1e-3, 1e-2, m), -3, -128, 127)
    attrs = {
        "kernel_shape": (3, 3),
        **case,
        "x_zero_point": 131,
        "w_zero_point": tuple(int(v) for v in RNG.integers(-3, 3, m)),
        "requant": requant.to_attr(),
    }
    got = KERNELS["QConv"](attrs, [x, w, b])[0]
    np.testing.assert_array_equal(got, reference_conv(x, w, b, attrs))


def test_qgemm_matches_reference_and_wraps() -> None:
    a = RNG.integers(-128, 128, (5, 300)).astype(np.int8)
    w = RNG.integers(-128, 128, (7, 300)).astype(np.int8)
    b = RNG.integers(-100, 100, 7).astype(np.int32)
    requant = Requantizer.from_scale(np.full(7, 0.01), 0, -128, 127)
    attrs = {"x_zero_point": 2, "w_zero_point": (1,), "acc_bits": 16, "requant": requant.to_attr()}
    acc = (a.astype(np.int64) - 2) @ (w.astype(np.int64) - 1).T + b
    expected = requant.apply(wrap(acc, 16), axis=1)
    np.testing.assert_array_equal(KERNELS["QGemm"](attrs, [a, w, b])[0], expected)


def test_qadd_matches_exact_definition() -> None:
    a = RNG.integers(-128, 128, (4, 3, 5)).astype(np.int8)
    b = RNG.integers(-128, 128, (1, 3, 1)).astype(np.int8)  # broadcast
    attrs = {
        "a_zero_point": 3,
        "b_zero_point": -7,
        "a_multiplier": 700_000_000,
        "b_multiplier": 300_000_001,
        "shift": 31,
        "zero_point": 5,
        "qmin": -128,
        "qmax": 127,
    }
    got = KERNELS["QAdd"](attrs, [a, b])[0]
    aa, bb = np.broadcast_arrays(a.astype(np.int64), b.astype(np.int64))
    for idx in np.ndindex(got.shape):
        total = (int(aa[idx]) - 3) * 700_000_000 + (int(bb[idx]) + 7) * 300_000_001
        exact = (total + (1 << 30)) // (1 << 31) + 5
        assert got[idx] == min(max(exact, -128), 127)


@pytest.mark.parametrize("include_pad", [False, True])
def test_qaverage_pool_divides_rounding_half_up(include_pad) -> None:
    x = RNG.integers(0, 256, (2, 3, 5, 5)).astype(np.uint8)
    identity = Requantizer((1 << 30,), (30,), 10, 0, 255)
    attrs = {
        "kernel_shape": (2, 2),
        "strides": (2, 2),
        "pads": (1, 1, 0, 0),
        "dilations": (1, 1),
        "ceil_mode": False,
        "count_include_pad": include_pad,
        "x_zero_point": 10,
        "requant": identity.to_attr(),
    }
    got = KERNELS["QAveragePool"](attrs, [x])[0]
    xp = np.pad(x.astype(np.int64) - 10, [(0, 0), (0, 0), (1, 0), (1, 0)])
    inside = np.pad(np.ones((5, 5), np.int64), [(1, 0), (1, 0)])
    for n, c, i, j in np.ndindex(got.shape):
        window = xp[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        count = 4 if include_pad else int(inside[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].sum())
        mean = (2 * int(window.sum()) + count) // (2 * count)
        assert got[n, c, i, j] == min(max(mean + 10, 0), 255)


def test_quantize_kernel_matches_arith_per_tensor_and_per_channel() -> None:
    x = RNG.standard_normal((4, 3, 6)).astype(np.float32) * 3
    for scale, zero, axis in [((0.02,), (-5,), None), ((0.01, 0.05, 0.1), (0, 3, -2), 1)]:
        attrs = {"scale": scale, "zero_point": zero, "axis": axis, "qmin": -128, "qmax": 127}
        got = KERNELS["Quantize"](attrs, [x])[0]
        expected = quantize(x, np.array(scale, np.float32), np.array(zero), -128, 127, axis)
        np.testing.assert_array_equal(got, expected)


def test_numba_requantize_matches_numpy_reference() -> None:
    r = Requantizer.from_scale(RNG.uniform(1e-5, 1.0, 6), 4, -8, 7)
    acc = RNG.integers(-(2**31), 2**31 - 1, (3, 6, 11), dtype=np.int64)
    np.testing.assert_array_equal(requantize(acc, r.to_attr()), r.apply(acc, axis=1))


@pytest.mark.parametrize(
    "attrs",
    [
        {
            "kernel_shape": (3, 3),
            "strides": (2, 2),
            "pads": (1, 1, 1, 1),
            "dilations": (1, 1),
            "ceil_mode": False,
        },
        {
            "kernel_shape": (2, 3),
            "strides": (1, 2),
            "pads": (0, 1, 1, 0),
            "dilations": (2, 1),
            "ceil_mode": True,
        },
        {
            "kernel_shape": (3, 3),
            "strides": (3, 3),
            "pads": (0, 0, 0, 0),
            "dilations": (1, 1),
            "ceil_mode": True,
        },
        {  # the unrolled 2x2 window, and clipped ones at the ceil-mode edge
            "kernel_shape": (2, 2),
            "strides": (2, 2),
            "pads": (0, 0, 0, 0),
            "dilations": (1, 1),
            "ceil_mode": True,
        },
        {
            "kernel_shape": (2, 2),
            "strides": (1, 1),
            "pads": (1, 0, 0, 1),
            "dilations": (2, 2),
            "ceil_mode": False,
        },
    ],
)
def test_integer_max_pool_matches_float_path(attrs) -> None:
    x = RNG.integers(-128, 128, (2, 3, 9, 8)).astype(np.int8)
    got = KERNELS["MaxPool"](attrs, [x])[0]
    expected = KERNELS["MaxPool"](attrs, [x.astype(np.float32)])[0]
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, expected.astype(np.int8))


@pytest.mark.parametrize("acc_bits", [16, 32, 40, 64])
@pytest.mark.parametrize("channel_last", [False, True])
def test_finish_wraps_and_requantizes_like_the_arith_reference(acc_bits, channel_last) -> None:
    """The compiled requantizer (including its logical-shift form for
    accumulators of up to 32 bits) against axc.arith on extreme values."""
    from axc.sim.int_kernels import finish

    r = Requantizer.from_scale(RNG.uniform(1e-6, 0.9, 5), -3, -128, 127)
    r = dataclasses.replace(  # the largest multiplier with a small shift
        r, multiplier=((1 << 31) - 1, *r.multiplier[1:]), shift=(31, *r.shift[1:])
    )
    total = RNG.integers(-(2**31), 2**31, (4, 5, 7), dtype=np.int64)
    total[0, :, 0], total[1, :, 0] = -(2**31), 2**31 - 1
    offset = RNG.integers(-(2**20), 2**20, 5)
    attrs = {"acc_bits": acc_bits, "requant": r.to_attr()}
    expected = r.apply(wrap(total + offset[None, :, None], acc_bits), axis=1)
    if channel_last:
        rows = np.ascontiguousarray(total.transpose(0, 2, 1)).reshape(-1, 5)
        got = finish(rows, offset, attrs, channel_last=True).reshape(4, 7, 5).transpose(0, 2, 1)
    else:
        got = finish(total, offset, attrs)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.float32])
@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 2, 1, 0), (3, 0, 0, 0)])
def test_two_dimensional_padding_equals_numpy(dtype, pads) -> None:
    from axc.sim.kernels import _pad_spatial

    x = RNG.integers(0, 100, (2, 3, 5, 4)).astype(dtype)
    got = _pad_spatial(x, pads, 7)
    widths = ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3]))
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, np.pad(x, widths, constant_values=7))


@pytest.mark.parametrize("across", [True, False])
def test_patch_matrix_equals_the_strided_view(across) -> None:
    from numpy.lib.stride_tricks import sliding_window_view

    from axc.sim.int_kernels import _im2col2d

    x = RNG.integers(-128, 128, (3, 4, 9, 8)).astype(np.int8)
    attrs = {"kernel_shape": (3, 2), "strides": (2, 1), "dilations": (1, 2)}
    out_spatial = [4, 6]
    got = _im2col2d(x, 1, 2, attrs, out_spatial, across, sub=-5)
    view = sliding_window_view(x[:, 1:3].astype(np.float32) + 5, (3, 3), axis=(2, 3))
    view = view[:, :, ::2, :, :, ::2]  # stride 2 rows; dilation 2 columns
    if across:  # (c, u, v, n, i, j)
        expected = view.transpose(1, 4, 5, 0, 2, 3).reshape(2 * 3 * 2, -1)
    else:  # (n, c, u, v, i, j)
        expected = view.transpose(0, 1, 4, 5, 2, 3).reshape(3, 2 * 3 * 2, -1)
    np.testing.assert_array_equal(got, expected)


def test_float_max_pool_propagates_nan_like_numpy() -> None:
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    x[1, 2, 0, 0] = np.inf
    attrs = {
        "kernel_shape": (2, 2),
        "strides": (2, 2),
        "pads": (0, 0, 0, 0),
        "dilations": (1, 1),
        "ceil_mode": False,
    }
    got = KERNELS["MaxPool"](attrs, [x])[0]
    expected = x.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[0, 1, 1, 1])


@pytest.mark.parametrize(
    "shape, cin, case",
    [
        # direct 3x3 (few input channels), strided, float32-mode requantizer
        ((5, 8, 7), 1, {"strides": (1, 1), "pads": (1, 1, 1, 1), "float": False}),
        ((5, 9, 8), 3, {"strides": (2, 2), "pads": (0, 1, 2, 0), "float": True}),
        # patch matrix and BLAS (deeper input), batch-minor
        ((4, 6, 6), 8, {"strides": (1, 2), "pads": (1, 0, 1, 2), "float": False}),
        # a large map: the (N, C, H, W) path
        ((2, 12, 11), 2, {"strides": (1, 1), "pads": (1, 1, 1, 1), "float": False}),
    ],
)
def test_qconv_paths_match_reference(shape, cin, case) -> None:
    """Each path a QConv may take (direct 3x3 over a batch-minor copy, patch
    matrix over one, per image) against the int64 definition, on unsigned
    activations with a zero point and weights with per-channel zero points."""
    n, h, w = shape
    m = 6
    x = RNG.integers(0, 256, (n, cin, h, w)).astype(np.uint8)
    wt = RNG.integers(-127, 128, (m, cin, 3, 3)).astype(np.int8)
    b = RNG.integers(-5000, 5000, m).astype(np.int32)
    requant = Requantizer.from_scale(RNG.uniform(1e-3, 1e-2, m), 5, 0, 255)
    attr = requant.to_attr()
    if case["float"]:
        attr = float32_requantizer(RNG.uniform(1e-3, 1e-2, m), 5, 0, 255)
    attrs = {
        "kernel_shape": (3, 3),
        "group": 1,
        "dilations": (1, 1),
        "strides": case["strides"],
        "pads": case["pads"],
        "acc_bits": 32,
        "x_zero_point": 117,
        "w_zero_point": 0,
        "requant": attr,
    }
    got = KERNELS["QConv"](attrs, [x, wt, b])[0]
    np.testing.assert_array_equal(got, reference_conv(x, wt, b, attrs))


@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_shape": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0), "dilations": (1, 1)},
        {"kernel_shape": (3, 3), "strides": (2, 1), "pads": (1, 1, 1, 0), "dilations": (1, 1)},
        {"kernel_shape": (2, 2), "strides": (1, 1), "pads": (1, 0, 0, 1), "dilations": (2, 2)},
    ],
)
def test_batch_minor_max_pool_matches_the_nchw_kernel(attrs) -> None:
    from axc.sim.kernels import max_pool2d_minor, to_major, to_minor

    attrs = {**attrs, "ceil_mode": False}
    x = RNG.integers(-128, 128, (5, 3, 9, 8)).astype(np.int8)
    expected = KERNELS["MaxPool"](attrs, [x])[0]
    np.testing.assert_array_equal(to_major(max_pool2d_minor(to_minor(x), attrs)), expected)


def test_batch_minor_convolution_in_slices_of_the_batch(monkeypatch) -> None:
    """A patch matrix bounded to a few images: the batch runs in slices, and
    the result is the same as the reference's."""
    import axc.sim.int_kernels as ik

    monkeypatch.setattr(ik, "_IM2COL_BYTES", 3 * 8 * 9 * 36 * 4)  # 3 images per slice
    x = RNG.integers(0, 256, (7, 8, 6, 6)).astype(np.uint8)
    wt = RNG.integers(-127, 128, (5, 8, 3, 3)).astype(np.int8)
    b = RNG.integers(-5000, 5000, 5).astype(np.int32)
    attrs = {
        "kernel_shape": (3, 3),
        "group": 1,
        "dilations": (1, 1),
        "strides": (1, 1),
        "pads": (1, 1, 1, 1),
        "acc_bits": 32,
        "x_zero_point": 117,
        "w_zero_point": 0,
        "requant": Requantizer.from_scale(RNG.uniform(1e-3, 1e-2, 5), 5, 0, 255).to_attr(),
    }
    got = KERNELS["QConv"](attrs, [x, wt, b])[0]
    np.testing.assert_array_equal(got, reference_conv(x, wt, b, attrs))
