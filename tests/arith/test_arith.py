"""The rules of docs/arithmetic.md, each against an independent computation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from axc.arith import IntSpec, Requantizer, choose_params, fixed_point, quantize, wrap


@pytest.mark.parametrize("real", [1e-6, 0.0123, 0.5, 0.75, 1.0, 3.999, 1234.5])
def test_fixed_point_keeps_31_significant_bits(real) -> None:
    m, s = fixed_point(real)
    assert (1 << 30) <= m < (1 << 31)
    assert abs(Fraction(m, 2**s) - Fraction(real)) <= Fraction(real) / 2**31


def test_fixed_point_rounding_up_to_the_next_power_of_two() -> None:
    real = 1.0 - 2.0**-40  # rounds to 2^31 / 2^31: must renormalize
    m, s = fixed_point(real)
    assert (m, s) == (1 << 30, 30)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), 2.0**31])
def test_fixed_point_rejects_unusable_scales(bad) -> None:
    with pytest.raises(ValueError):
        fixed_point(bad)


def test_requantize_rounds_half_up_and_saturates() -> None:
    r = Requantizer.from_scale(0.5, 0, -128, 127)
    acc = np.array([5, -5, 3, -3, 1, -1, 1000, -1000])
    # 2.5 -> 3, -2.5 -> -2, 1.5 -> 2, -1.5 -> -1, 0.5 -> 1, -0.5 -> 0, then saturation
    assert r.apply(acc).tolist() == [3, -2, 2, -1, 1, 0, 127, -128]


def test_requantize_equals_exact_rational_arithmetic() -> None:
    rng = np.random.default_rng(0)
    scales = rng.uniform(1e-4, 0.2, 8)
    r = Requantizer.from_scale(scales, 7, -128, 127)
    acc = rng.integers(-(2**31), 2**31 - 1, (50, 8), dtype=np.int64)
    got = r.apply(acc, axis=1)
    for (i, c), a in np.ndenumerate(acc):
        m, s = r.multiplier[c], r.shift[c]
        exact = (int(a) * m + (1 << (s - 1))) // (1 << s)  # Python ints: no overflow
        assert got[i, c] == min(max(exact + 7, -128), 127)


def test_wrap_is_twos_complement() -> None:
    acc = np.array([2**15, -(2**15) - 1, 5, 2**16 + 3, -(2**31)], dtype=np.int64)
    assert wrap(acc, 16).tolist() == [-(2**15), 2**15 - 1, 5, 3, 0]
    assert wrap(acc, 64).tolist() == acc.tolist()


def test_choose_params_symmetric_and_asymmetric() -> None:
    scale, zero = choose_params(-2.0, 1.0, IntSpec(8, True, True))
    assert scale == pytest.approx(2.0 / 127) and zero == 0
    scale, zero = choose_params(0.0, 1.0, IntSpec(8, False, True))
    assert zero == 128
    scale, zero = choose_params(0.5, 3.0, IntSpec(8, False, False))  # widened to include 0
    assert scale == pytest.approx(3.0 / 255) and zero == 0
    scale, zero = choose_params(-1.0, 3.0, IntSpec(4, True, False))
    assert scale == pytest.approx(4.0 / 15) and zero == round(-8 + 1.0 / (4.0 / 15))
    scale, zero = choose_params(0.0, 0.0, IntSpec(8, True, False))
    assert scale == 1.0


@pytest.mark.parametrize(
    "spec", [IntSpec(8, True, False), IntSpec(4, False, False), IntSpec(6, True, True)]
)
def test_zero_is_exactly_representable(spec) -> None:
    scale, zero = choose_params(-0.37, 2.9, spec)
    assert quantize(np.zeros(1), scale, zero, spec.qmin, spec.qmax)[0] == zero


def test_quantize_rounds_half_to_even() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5], np.float32)
    assert quantize(x, np.float32(1.0), np.int64(0), -128, 127).tolist() == [0, 2, 2, 0, -2]


def test_intspec_rejects_out_of_range_widths() -> None:
    for bits in (1, 17, 40):
        with pytest.raises(ValueError, match=r"outside 2\.\.16"):
            IntSpec(bits, True, False)
