"""Multipliers users bring: a C function, a Verilog module or a ``.npy`` table.

* **C** in EvoApproxLib's convention: ``uint16_t mul8u_XXX(uint8_t a, uint8_t b)``
  (unsigned) or ``int16_t mul8s_XXX(int8_t a, int8_t b)`` (signed), any
  width 2..8. The file is compiled with the system C compiler and swept over
  every operand pair.
* **Verilog**: a module with two n-bit inputs and one output (EvoApproxLib's
  ``module mul8u_XXX(A, B, O)``), simulated with Icarus Verilog on every
  operand pair. It is signed when its name says ``mul<n>s`` or its inputs are
  declared ``signed``.
* **.npy**: a (2^n, 2^n) integer table; ``T[a, b]`` is the product of the
  unsigned operands ``a`` and ``b``.

Unsigned multipliers run on signed data in sign-magnitude form (docs/
arithmetic.md): ``m(a, b) = sign(a) sign(b) T[|a|, |b|]``, for operands with
``|a|, |b| < 2^n``. Signed multipliers take two's complement operands in
``[-2^(n-1), 2^(n-1) - 1]`` as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from axc.arith.multipliers import Multiplier, sign_magnitude
from axc.arith.sweep import sweep_c, sweep_verilog
from axc.errors import UserError

__all__ = ["from_table", "load_multiplier"]

_C_FUNC = re.compile(
    r"\b(u?int(?:8|16|32|64)_t)\s+(\w+)\s*\(\s*(?:const\s+)?(u?int(\d+)_t)\s+\w+\s*,"
    r"\s*(?:const\s+)?(u?int(\d+)_t)\s+\w+\s*\)\s*\{"
)
_MODULE = re.compile(r"\bmodule\s+(\w+)")
_PORT = re.compile(
    r"\b(input|output)\s+(?:wire\s+|reg\s+)?(signed\s+)?(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?"
    r"([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)"
)


def load_multiplier(path: str | Path, base: str | Path | None = None) -> Multiplier:
    """Import a ``.c``, ``.v``/``.sv`` or ``.npy`` multiplier (relative paths
    are looked up in ``base`` first)."""
    file = Path(path)
    if not file.is_absolute() and base is not None and (Path(base) / file).exists():
        file = Path(base) / file
    if not file.exists():
        raise UserError(f"{path}: no such multiplier file")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        return _from_npy(file)
    if suffix == ".c":
        return _from_c(file)
    if suffix in (".v", ".sv"):
        return _from_verilog(file)
    raise UserError(f"{file}: a multiplier file is .c, .v, .sv or .npy")


def from_table(
    table: np.ndarray, name: str, *, signed: bool = False, source: dict[str, str] | None = None
) -> Multiplier:
    """A multiplier from the exhaustive table of an n-bit multiplier: indexed by
    the unsigned operands, or by ``operand + 2^(n-1)`` when ``signed``."""
    table = np.asarray(table)
    size = table.shape[0] if table.ndim == 2 else 0
    bits = size.bit_length() - 1
    if (
        table.ndim != 2
        or table.shape[0] != table.shape[1]
        or size != 1 << bits
        or not 2 <= bits <= 8
    ):
        raise UserError(
            f"{name}: a multiplier table must be square with 2^n rows, n = 2..8 "
            f"(256 x 256 for 8 bits); got shape {table.shape}"
        )
    if table.dtype.kind not in "iu":
        if (
            table.dtype.kind == "f"
            and np.isfinite(table).all()
            and (table == np.round(table)).all()
        ):
            table = table.astype(np.int64)
        else:
            raise UserError(f"{name}: a multiplier table holds integers, got {table.dtype}")
    table = table.astype(np.int64)
    limit = 1 << (2 * bits + 1)
    if np.abs(table).max() >= limit:
        raise UserError(
            f"{name}: products beyond {2 * bits + 1} bits do not come from {bits}-bit operands"
        )
    if signed:
        half = size // 2
        return Multiplier(
            name=name,
            bits=bits,
            table=table.astype(np.int32),
            a_lo=-half,
            b_lo=-half,
            family="external",
            sign_magnitude=False,
            source=source or {},
            view_bits=(bits, 2 * bits),
        )
    return Multiplier(
        name=name,
        bits=bits,
        table=sign_magnitude(table).astype(np.int32),
        a_lo=-((1 << bits) - 1),
        b_lo=-((1 << bits) - 1),
        family="external",
        source=source or {},
    )


def _from_npy(file: Path) -> Multiplier:
    try:
        table = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{file}: not a numpy .npy table ({exc})") from None
    return from_table(table, file.stem)


# ---------------------------------------------------------------------- C
def _from_c(file: Path) -> Multiplier:
    text = file.read_text(errors="replace")
    found = list(_C_FUNC.finditer(_strip_comments(text)))
    if not found:
        raise UserError(
            f"{file}: no multiplier function found; expected EvoApproxLib's form "
            "'uint16_t mul8u_NAME(uint8_t a, uint8_t b)' or "
            "'int16_t mul8s_NAME(int8_t a, int8_t b)'"
        )
    match = next((m for m in found if m.group(2).startswith("mul")), found[0])
    fn, ta, bits_a, tb = match.group(2), match.group(3), int(match.group(4)), match.group(5)
    if ta != tb:
        raise UserError(f"{file}: {fn} takes operands of different types ({ta}, {tb})")
    signed = not ta.startswith("u")
    name_bits = re.match(r"mul(\d+)([us])", fn)
    bits = int(name_bits.group(1)) if name_bits else bits_a
    if name_bits and (name_bits.group(2) == "s") != signed:
        raise UserError(
            f"{file}: {fn}'s name says {'unsigned' if signed else 'signed'}, its operands are {ta}"
        )
    if not 2 <= bits <= 8 or bits > bits_a:
        raise UserError(f"{file}: {fn} must take 2..8-bit operands, got {bits} bits in {ta}")
    half = 1 << (bits - 1)
    lo, hi = (-half, half - 1) if signed else (0, (1 << bits) - 1)
    core = sweep_c(text, fn, (lo, hi), (lo, hi), cpp=False, arg_type=ta, what=f"compiling {file}")
    ident = "axc_mul_" + re.sub(r"\W", "_", fn)
    if signed:
        wrapper = (
            f"static inline int32_t {ident}(int32_t a, int32_t b) {{\n"
            f"    return (int32_t){fn}(({ta})a, ({ta})b);\n}}\n"
        )
    else:
        wrapper = (
            f"// sign-magnitude wrapper around the unsigned {fn}\n"
            f"static inline int32_t {ident}(int32_t a, int32_t b) {{\n"
            "    const int32_t ma = a < 0 ? -a : a, mb = b < 0 ? -b : b;\n"
            f"    const int32_t q = (int32_t){fn}(({ta})ma, ({ta})mb);\n"
            "    return ((a < 0) != (b < 0)) ? -q : q;\n}\n"
        )
    source = {"cpp": f"#include <stdint.h>\n{text}\n{wrapper}", "identifier": ident}
    return from_table(core, fn, signed=signed, source=source)


# ---------------------------------------------------------------- Verilog
def _ports(text: str) -> tuple[list[tuple[str, int, bool]], list[tuple[str, int, bool]]]:
    ins: list[tuple[str, int, bool]] = []
    outs: list[tuple[str, int, bool]] = []
    for m in _PORT.finditer(text):
        width = abs(int(m.group(3)) - int(m.group(4))) + 1 if m.group(3) is not None else 1
        for name in re.split(r"\s*,\s*", m.group(5)):
            if name in ("input", "output", "wire", "reg", "signed"):
                continue
            (ins if m.group(1) == "input" else outs).append((name, width, bool(m.group(2))))
    return ins, outs


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _from_verilog(file: Path) -> Multiplier:
    text = file.read_text(errors="replace")
    code = _strip_comments(text)
    modules = _MODULE.findall(code)
    if not modules:
        raise UserError(f"{file}: no Verilog module found")
    module = next((m for m in modules if m.startswith("mul")), modules[0])
    body = code[code.index(f"module {module}") :]
    end = body.find("endmodule")
    ins, outs = _ports(body[: end if end >= 0 else None])
    if len(ins) != 2 or len(outs) != 1 or ins[0][1] != ins[1][1]:
        raise UserError(
            f"{file}: module {module} must have two inputs of one width and one output "
            f"(EvoApproxLib's A, B, O); found inputs {[(n, w) for n, w, _ in ins]}, "
            f"outputs {[(n, w) for n, w, _ in outs]}"
        )
    (a_port, bits, a_signed), (b_port, _, _) = ins
    p_port, out_bits, _ = outs[0]
    if not 2 <= bits <= 8:
        raise UserError(f"{file}: {module} must take 2..8-bit operands, got {bits}")
    name_sign = re.match(r"mul\d+([us])", module)
    signed = a_signed or (name_sign is not None and name_sign.group(1) == "s")
    half = 1 << (bits - 1)
    lo, hi = (-half, half - 1) if signed else (0, (1 << bits) - 1)
    core = sweep_verilog(
        text,
        module,
        (a_port, b_port, p_port),
        (bits, bits),
        out_bits,
        (lo, hi),
        (lo, hi),
        signed_out=signed,
        what=f"simulating {file}",
    )
    ident = "axc_mul_" + re.sub(r"\W", "_", module)
    wrapper = _verilog_wrapper(ident, module, a_port, b_port, p_port, bits, out_bits, signed)
    source = {"verilog": f"{text}\n{wrapper}", "identifier": ident}
    return from_table(core, module, signed=signed, source=source)


def _verilog_wrapper(
    ident: str, module: str, a: str, b: str, p: str, bits: int, out_bits: int, signed: bool
) -> str:
    if signed:
        return f"""// axc's interface around {module} (two's complement operands)
module {ident} (
    input  wire [{bits - 1}:0] a,
    input  wire [{bits - 1}:0] b,
    output wire signed [{2 * bits - 1}:0] p
);
    wire [{out_bits - 1}:0] q;
    {module} core (.{a}(a), .{b}(b), .{p}(q));
    assign p = $signed(q[{2 * bits - 1}:0]);
endmodule
"""
    n = bits
    return f"""// axc's sign-magnitude interface around the unsigned {module}
module {ident} (
    input  wire [{n}:0] a,
    input  wire [{n}:0] b,
    output wire signed [{2 * n + 1}:0] p
);
    /* verilator lint_off UNUSEDSIGNAL */
    wire [{n}:0] ma = a[{n}] ? -a : a;
    wire [{n}:0] mb = b[{n}] ? -b : b;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [{out_bits - 1}:0] q;
    {module} core (.{a}(ma[{n - 1}:0]), .{b}(mb[{n - 1}:0]), .{p}(q));
    wire signed [{2 * n + 1}:0] qs = $signed({{{2 * n + 2 - out_bits}'b0, q}});
    assign p = (a[{n}] ^ b[{n}]) ? -qs : qs;
endmodule
"""
