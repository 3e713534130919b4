"""Multipliers users bring (C, Verilog, .npy), their views, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from axc.arith.external import load_multiplier
from axc.arith.multipliers import parse_multiplier
from axc.arith.sweep import sweep_c, sweep_verilog
from axc.errors import UserError

DATA = Path(__file__).resolve().parent.parent / "data" / "multipliers"


def _core(m):
    lim = (1 << m.bits) - 1
    return m.table[-m.a_lo : -m.a_lo + lim + 1, -m.b_lo : -m.b_lo + lim + 1]


@pytest.mark.tools
def test_evoapprox_c_unsigned_is_swept_and_wrapped_in_sign_magnitude() -> None:
    m = load_multiplier(DATA / "mul8u_trunc5.c")
    a = np.arange(256)[:, None]
    b = np.arange(256)[None, :]
    rows = [np.where((a >> i) & 1, (b << i) & 0xFFE0, 0) for i in range(8)]
    np.testing.assert_array_equal(_core(m), sum(rows))
    assert m(-3, 200) == -m(3, 200) and m(-7, -9) == m(7, 9)
    assert (m.a_lo, m.a_hi) == (-255, 255)


@pytest.mark.tools
def test_evoapprox_c_signed_takes_twos_complement_operands() -> None:
    m = load_multiplier(DATA / "mul8s_lsbzero.c")
    assert (m.a_lo, m.a_hi) == (-128, 127) and not m.sign_magnitude
    exact = m.exact_table()
    np.testing.assert_array_equal(m.table, exact & ~3)


@pytest.mark.tools
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mul8u_trunc5.c", "mul8s_lsbzero.c", "mul8u_or4.v"])
def test_imported_views_equal_their_tables(name) -> None:
    """The C++ and Verilog views of imported multipliers (the user's own
    source with axc's interface, or a generated ROM) agree on every pair."""
    m = load_multiplier(DATA / name)
    cpp = sweep_c(m.cpp(), m.identifier(), (m.a_lo, m.a_hi), (m.b_lo, m.b_hi))
    np.testing.assert_array_equal(cpp, m.table)
    in_bits, out_bits = m.ports
    rtl = sweep_verilog(
        m.verilog(),
        m.identifier(),
        ("a", "b", "p"),
        (in_bits, in_bits),
        out_bits,
        (m.a_lo, m.a_hi),
        (m.b_lo, m.b_hi),
        signed_out=True,
    )
    np.testing.assert_array_equal(rtl, m.table)


@pytest.mark.tools
def test_verilog_module_is_simulated_exhaustively() -> None:
    m = load_multiplier(DATA / "mul8u_or4.v")
    a = np.arange(256)[:, None]
    b = np.arange(256)[None, :]
    hi_a, lo_a, hi_b, lo_b = a >> 4, a & 15, b >> 4, b & 15
    expected = (hi_a * hi_b << 8) + (hi_a * lo_b << 4) + (lo_a * hi_b << 4) + (lo_a | lo_b)
    np.testing.assert_array_equal(_core(m), expected)


def test_npy_table_and_the_evo_call_form(tmp_path) -> None:
    a = np.arange(16)[:, None]
    b = np.arange(16)[None, :]
    np.save(tmp_path / "m4.npy", (a * b) & ~1)
    m = parse_multiplier('evo("m4.npy")', base=str(tmp_path))
    assert m.bits == 4 and (m.a_lo, m.a_hi) == (-15, 15)
    assert m(5, -3) == -14 and m(5, 3) == 14


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("none.c", "int add(int a) { return a; }\n", "no multiplier function found"),
        (
            "mixed.c",
            "#include <stdint.h>\nuint16_t mul8u_x(uint8_t a, int8_t b) { return a * b; }\n",
            "different types",
        ),
        (
            "broken.c",
            "#include <stdint.h>\nuint16_t mul8u_x(uint8_t a, uint8_t b) { return a * ; }\n",
            "compiling",
        ),
        ("empty.v", "// nothing here\n", "no Verilog module"),
        (
            "ports.v",
            "module mul8u_x(A, O);\n input [7:0] A;\n output [15:0] O;\n"
            " assign O = A * A;\nendmodule\n",
            "two inputs of one width",
        ),
        ("bad.txt", "", "is .c, .v, .sv or .npy"),
    ],
)
def test_bad_multiplier_files(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_multiplier(path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (np.zeros((256, 128), np.int64), "square with 2"),
        (np.zeros((100, 100), np.int64), "square with 2"),
        (np.full((16, 16), 0.5), "holds integers"),
        (np.full((16, 16), 1 << 20), "beyond 9 bits"),
    ],
)
def test_bad_npy_tables(tmp_path, table, message) -> None:
    np.save(tmp_path / "t.npy", table)
    with pytest.raises(UserError, match=message):
        load_multiplier(tmp_path / "t.npy")


def test_missing_file() -> None:
    with pytest.raises(UserError, match="no such multiplier file"):
        parse_multiplier('"does_not_exist.c"')
