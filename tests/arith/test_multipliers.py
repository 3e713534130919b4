"""The multiplier library: tables from the definitions, and the C++ and Verilog
views equal to the tables on every operand pair."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from axc.arith.multipliers import FAMILIES, builtin, parse_multiplier, representatives
from axc.arith.sweep import sweep_c, sweep_verilog
from axc.errors import UserError

REPRESENTATIVES = {m.name: m for m in representatives()}


def test_exact_is_the_product_and_signs_follow_sign_magnitude() -> None:
    m = builtin("exact")
    np.testing.assert_array_equal(m.table, m.exact_table())
    t = builtin("trunc", 5)
    a = np.arange(-255, 256)[:, None]
    b = np.arange(-255, 256)[None, :]
    # m(a, b) = sign(a) sign(b) core(|a|, |b|)
    np.testing.assert_array_equal(t(a, b), np.sign(a) * np.sign(b) * t(np.abs(a), np.abs(b)))


def _core_error(m):  # error on non-negative operands
    lim = (1 << m.bits) - 1
    a = np.arange(lim + 1)[:, None]
    b = np.arange(lim + 1)[None, :]
    return m(a, b) - a * b


def test_truncation_drops_exactly_the_low_columns() -> None:
    # columns 0..3 hold 1, 2, 3, 4 partial-product bits: at most 1 + 4 + 12 + 32
    err = _core_error(builtin("trunc", 4))
    assert err.max() == 0 and err.min() == -49
    corrected = _core_error(builtin("trunc_corrected", 4))
    assert corrected.max() == 12 and corrected.min() == -37  # + round(49 / 4)
    assert (_core_error(builtin("trunc", 0)) == 0).all()


def test_kulkarni_errs_only_where_a_block_is_3x3() -> None:
    err = _core_error(builtin("kulkarni"))
    assert err.min() == -2 * 85**2 and err.max() == 0  # 255 x 255: every block is 3 x 3
    assert err[1, 1] == 0 and err[3, 3] == -2


def test_drum_is_exact_on_narrow_operands_and_unbiased_in_shape() -> None:
    m = builtin("drum", 4)
    err = _core_error(m)
    assert (err[:16, :16] == 0).all()  # up to 4 significant bits nothing is dropped
    assert err.max() > 0 and err.min() < 0  # the forced 1 rounds both ways


def test_mitchell_never_overestimates_and_is_exact_on_powers_of_two() -> None:
    err = _core_error(builtin("mitchell"))
    assert err.max() <= 0
    powers = [1, 2, 4, 8, 16, 32, 64, 128]
    assert (err[np.ix_(powers, np.arange(256))] == 0).all()


def test_perforation_and_bam_omit_partial_products() -> None:
    err = _core_error(builtin("perforated", 0, 2))
    a = np.arange(256)[:, None]
    b = np.arange(256)[None, :]
    np.testing.assert_array_equal(err, -((a & 3) * b))
    bam = _core_error(builtin("bam", 0, 0))
    assert (bam == 0).all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("trunk(4)", "did you mean 'trunc'"),
        ("drum(1)", "k must be in 2..8"),
        ("trunc(40)", "at most 16 columns"),
        ("perforated(7, 3)", "rows beyond"),
        ("exact(1, 2)", "takes 0 parameters"),
    ],
)
def test_bad_multiplier_specs(spec, message) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_multiplier(spec)


def test_parse_builtin_forms() -> None:
    assert parse_multiplier("exact").is_exact
    m = parse_multiplier("trunc(6)")
    assert m.family == "trunc" and m.params == (6,)
    assert set(REPRESENTATIVES) == set(FAMILIES)


@pytest.mark.tools
@pytest.mark.parametrize("name", sorted(REPRESENTATIVES))
def test_cpp_view_equals_the_table(name) -> None:
    """g++ compiles the generated C++ function; every operand pair agrees."""
    m = REPRESENTATIVES[name]
    got = sweep_c(m.cpp(), m.identifier(), (m.a_lo, m.a_hi), (m.b_lo, m.b_hi))
    np.testing.assert_array_equal(got, m.table)


@pytest.mark.tools
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REPRESENTATIVES))
def test_verilog_view_equals_the_table_and_is_lint_clean(name, tmp_path) -> None:
    """Icarus simulates the generated module on all 511 x 511 operand pairs;
    Verilator -Wall finds nothing to say about it."""
    m = REPRESENTATIVES[name]
    got = sweep_verilog(
        m.verilog(),
        m.identifier(),
        ("a", "b", "p"),
        (m.bits + 1, m.bits + 1),
        2 * m.bits + 2,
        (m.a_lo, m.a_hi),
        (m.b_lo, m.b_hi),
        signed_out=True,
    )
    np.testing.assert_array_equal(got, m.table)
    path = tmp_path / f"{m.identifier()}.v"
    path.write_text(m.verilog())
    lint = subprocess.run(
        ["verilator", "--lint-only", "-Wall", "--top-module", m.identifier(), str(path)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stderr
