"""A small integer expression language: one definition of a multiplier, three views.

A multiplier family is written once as an expression over the operands ``a``
and ``b``. The same expression is

* evaluated with numpy on int64 arrays (the lookup table the simulator uses),
* printed as a C++ function on ``int64_t`` (the HLS view), and
* printed as a combinational Verilog module on signed wires of one width
  (the RTL view),

so the three cannot drift apart; tests compare them exhaustively.

Semantics: every value is a signed integer that fits ``width`` bits (the
Verilog width; numpy and C++ compute in 64 bits, so any expression whose
values stay within ``width`` bits means the same in all three). Shifts take a
non-negative amount smaller than ``width``; ``>>`` is arithmetic. Comparisons
give 0 or 1. ``lod(x)`` is the position of the leading one of ``x > 0`` (0 for
``x <= 0``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Expr", "const", "evaluate", "lod", "select", "to_cpp", "to_verilog", "var"]

_BINARY = {
    "+": (np.add, "+", "+"),
    "-": (np.subtract, "-", "-"),
    "*": (np.multiply, "*", "*"),
    "&": (np.bitwise_and, "&", "&"),
    "|": (np.bitwise_or, "|", "|"),
    "^": (np.bitwise_xor, "^", "^"),
    "<<": (np.left_shift, "<<", "<<<"),
    ">>": (np.right_shift, ">>", ">>>"),
}
_COMPARE = {"<": np.less, "<=": np.less_equal, "==": np.equal, "!=": np.not_equal}


@dataclass(frozen=True, eq=False)
class Expr:
    """A node of the expression tree (immutable; shared subtrees are emitted once)."""

    op: str
    args: tuple[Expr, ...] = ()
    value: int | str | None = None
    _id: int = field(default=0, compare=False)

    # arithmetic sugar; ints are lifted to constants
    def __add__(self, o: Expr | int) -> Expr:
        return Expr("+", (self, lift(o)))

    def __radd__(self, o: int) -> Expr:
        return Expr("+", (lift(o), self))

    def __sub__(self, o: Expr | int) -> Expr:
        return Expr("-", (self, lift(o)))

    def __rsub__(self, o: int) -> Expr:
        return Expr("-", (lift(o), self))

    def __mul__(self, o: Expr | int) -> Expr:
        return Expr("*", (self, lift(o)))

    def __rmul__(self, o: int) -> Expr:
        return Expr("*", (lift(o), self))

    def __and__(self, o: Expr | int) -> Expr:
        return Expr("&", (self, lift(o)))

    def __or__(self, o: Expr | int) -> Expr:
        return Expr("|", (self, lift(o)))

    def __xor__(self, o: Expr | int) -> Expr:
        return Expr("^", (self, lift(o)))

    def __lshift__(self, o: Expr | int) -> Expr:
        return Expr("<<", (self, lift(o)))

    def __rshift__(self, o: Expr | int) -> Expr:
        return Expr(">>", (self, lift(o)))

    def __neg__(self) -> Expr:
        return Expr("-", (const(0), self))

    def lt(self, o: Expr | int) -> Expr:
        return Expr("<", (self, lift(o)))

    def le(self, o: Expr | int) -> Expr:
        return Expr("<=", (self, lift(o)))

    def eq(self, o: Expr | int) -> Expr:
        return Expr("==", (self, lift(o)))

    def ne(self, o: Expr | int) -> Expr:
        return Expr("!=", (self, lift(o)))

    def bit(self, i: int) -> Expr:
        """Bit ``i`` (0 or 1) of a non-negative value."""
        return (self >> i) & 1


def const(v: int) -> Expr:
    return Expr("const", value=int(v))


def var(name: str) -> Expr:
    return Expr("var", value=name)


def lift(v: Expr | int) -> Expr:
    return v if isinstance(v, Expr) else const(v)


def lod(x: Expr) -> Expr:
    """Position of the leading one of x (0 when x <= 0)."""
    return Expr("lod", (x,))


def select(cond: Expr, then: Expr | int, other: Expr | int) -> Expr:
    """``then`` where ``cond`` is non-zero, else ``other``."""
    return Expr("select", (cond, lift(then), lift(other)))


def total(terms: list[Expr]) -> Expr:
    """The sum of ``terms`` (0 when empty), as a balanced tree."""
    if not terms:
        return const(0)
    while len(terms) > 1:
        terms = [
            terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
            for i in range(0, len(terms), 2)
        ]
    return terms[0]


# ------------------------------------------------------------------ numpy
def evaluate(expr: Expr, env: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate on int64 arrays (broadcast together)."""
    cache: dict[int, np.ndarray] = {}

    def ev(e: Expr) -> np.ndarray:
        key = id(e)
        if key in cache:
            return cache[key]
        out: Any
        if e.op == "const":
            out = np.int64(e.value)  # type: ignore[arg-type]
        elif e.op == "var":
            out = np.asarray(env[str(e.value)], np.int64)
        elif e.op in _BINARY:
            out = _BINARY[e.op][0](ev(e.args[0]), ev(e.args[1]))
        elif e.op in _COMPARE:
            out = _COMPARE[e.op](ev(e.args[0]), ev(e.args[1])).astype(np.int64)
        elif e.op == "select":
            out = np.where(ev(e.args[0]) != 0, ev(e.args[1]), ev(e.args[2]))
        elif e.op == "lod":
            x = ev(e.args[0])
            safe = np.where(x > 0, x, 1)
            out = np.where(x > 0, np.floor(np.log2(safe.astype(np.float64))).astype(np.int64), 0)
            # log2 of a 64-bit float is exact at powers of two, but correct the
            # rounding just below them
            out = np.where((np.int64(1) << out) > safe, out - 1, out)
        else:  # pragma: no cover - every op is handled above
            raise ValueError(e.op)
        cache[key] = np.asarray(out, np.int64)
        return cache[key]

    return ev(expr)


def max_magnitude(expr: Expr, env: dict[str, np.ndarray]) -> int:
    """The largest |value| any node of ``expr`` takes over ``env``: the width
    the Verilog view needs so that no intermediate overflows."""
    seen: dict[int, Expr] = {}

    def walk(e: Expr) -> None:
        if id(e) not in seen:
            seen[id(e)] = e
            for a in e.args:
                walk(a)

    walk(expr)
    return max(int(np.abs(evaluate(e, env)).max()) for e in seen.values())


# ------------------------------------------------------------------ printing
def _ssa(expr: Expr, emit: Callable[[Expr, list[str]], str]) -> tuple[list[tuple[str, str]], str]:
    """Topologically ordered definitions, one per distinct subtree, and the name
    of the root. ``emit`` renders one node given its operands' names."""
    names: dict[int, str] = {}
    lines: list[tuple[str, str]] = []

    def visit(e: Expr) -> str:
        key = id(e)
        if key in names:
            return names[key]
        operands = [visit(a) for a in e.args]
        if e.op in ("const", "var"):
            names[key] = emit(e, operands)
        else:
            name = f"t{len(lines)}"
            lines.append((name, emit(e, operands)))
            names[key] = name
        return names[key]

    root = visit(expr)
    return lines, root


def _cpp_helpers() -> str:
    """runtime/hls/axc_mul.h, the helpers every C++ view includes (inlined, so
    a view compiles on its own)."""
    from importlib.resources import files

    return files("axc.runtime").joinpath("hls", "axc_mul.h").read_text()


def to_cpp(expr: Expr, name: str, *, signed_inputs: bool, bits: int) -> str:
    """A C++ function ``int32_t name(int32_t a, int32_t b)``."""

    def emit(e: Expr, ops: list[str]) -> str:
        if e.op == "const":
            return f"INT64_C({e.value})"
        if e.op == "var":
            return f"(int64_t){e.value}"
        if e.op in _BINARY:
            return f"{ops[0]} {_BINARY[e.op][1]} {ops[1]}"
        if e.op in _COMPARE:
            return f"(int64_t)({ops[0]} {e.op} {ops[1]})"
        if e.op == "select":
            return f"{ops[0]} != 0 ? {ops[1]} : {ops[2]}"
        if e.op == "lod":
            return f"axc_lod({ops[0]})"
        raise ValueError(e.op)  # pragma: no cover

    lines, root = _ssa(expr, emit)
    body = "\n".join(f"    const int64_t {name} = {text};" for name, text in lines)
    kind = "signed" if signed_inputs else "unsigned"
    return (
        _cpp_helpers()
        + f"// {bits}-bit {kind} operands; generated by axc from the multiplier's definition\n"
        f"static inline int32_t {name}(int32_t a, int32_t b) {{\n{body}\n"
        f"    return (int32_t){root};\n}}\n"
    )


def _widths(expr: Expr, env: dict[str, np.ndarray]) -> tuple[dict[int, int], set[int]]:
    """Per node: the signed width its values over ``env`` need (at least 2);
    and the nodes whose values are never negative."""
    out: dict[int, int] = {}
    nonneg: set[int] = set()

    def walk(e: Expr) -> None:
        if id(e) in out:
            return
        for arg in e.args:
            walk(arg)
        values = evaluate(e, env)
        out[id(e)] = max(2, int(np.abs(values).max()).bit_length() + 1)
        if values.min() >= 0:
            nonneg.add(id(e))

    walk(expr)
    return out, nonneg


def _fit(text: str, have: int, want: int) -> str:
    """A signed ``have``-bit value as ``want`` bits (sign-extended or truncated)."""
    if have == want:
        return text
    if have < want:
        return f"{{{{{want - have}{{{text}[{have - 1}]}}}}, {text}}}"
    return f"{text}[{want - 1}:0]"


def to_verilog(
    expr: Expr,
    name: str,
    *,
    in_bits: int,
    signed_inputs: bool,
    out_bits: int,
    env: dict[str, np.ndarray],
) -> str:
    """A combinational module ``name(a, b, p)``. Every intermediate is a signed
    wire just wide enough for the values it takes over the operand domain
    ``env`` (so synthesis sees the real datapath), with explicit sign
    extension, so Verilator -Wall has nothing to report."""
    widths, nonneg = _widths(expr, env)
    names: dict[int, str] = {}
    decls: list[str] = []
    lod_widths: set[int] = set()
    var_width = in_bits if signed_inputs else in_bits + 1

    def width_of(e: Expr) -> int:
        if e.op == "var":
            return var_width
        if e.op == ">>":
            return max(widths[id(e)], width_of(e.args[0]))
        return widths[id(e)]

    def ref(e: Expr, want: int) -> str:
        if e.op == "const":
            v = int(e.value)  # type: ignore[arg-type]
            return f"{want}'sd{v}" if v >= 0 else f"-{want}'sd{-v}"
        return _fit(visit(e), width_of(e), want)

    def visit(e: Expr) -> str:
        if id(e) in names:
            return names[id(e)]
        if e.op == "var":
            names[id(e)] = f"x{e.value}"
            return names[id(e)]
        w = width_of(e)
        x, y = (*e.args, e, e)[:2]
        magnitudes = id(x) in nonneg and id(y) in nonneg and "const" not in (x.op, y.op)
        if e.op == "*" and magnitudes:
            # a product of magnitudes: an unsigned multiplier of their real widths
            wx, wy = width_of(x), width_of(y)
            product = f"u{len(decls)}"
            decls.append(
                f"    wire [{wx + wy - 3}:0] {product} = "
                f"{visit(x)}[{wx - 2}:0] * {visit(y)}[{wy - 2}:0];"
            )
            signed_product = f"s{len(decls)}"
            extended = f"$signed({{1'b0, {product}}})"
            decls.append(f"    wire signed [{wx + wy - 2}:0] {signed_product} = {extended};")
            text = _fit(signed_product, wx + wy - 1, w)
        elif e.op in ("+", "-", "*", "&", "|", "^", "<<"):
            sym = _BINARY[e.op][2]
            if e.op == "<<":
                amount = e.args[1]
                text = f"{ref(e.args[0], w)} <<< {ref(amount, width_of(amount))}"
            else:
                text = f"{ref(e.args[0], w)} {sym} {ref(e.args[1], w)}"
        elif e.op == ">>":
            amount = e.args[1]
            text = f"{ref(e.args[0], w)} >>> {ref(amount, width_of(amount))}"
        elif e.op in _COMPARE:
            common = max(width_of(e.args[0]), width_of(e.args[1]))
            text = f"{{{w - 1}'b0, {ref(e.args[0], common)} {e.op} {ref(e.args[1], common)}}}"
        elif e.op == "select":
            c = e.args[0]
            text = (
                f"({ref(c, width_of(c))} != {width_of(c)}'sd0) ? "
                f"{ref(e.args[1], w)} : {ref(e.args[2], w)}"
            )
        elif e.op == "lod":
            wx = width_of(e.args[0])
            lod_widths.add(wx)
            tmp = f"l{len(decls)}"
            decls.append(f"    wire signed [7:0] {tmp} = lod{wx}({ref(e.args[0], wx)});")
            text = _fit(tmp, 8, w)
        else:  # pragma: no cover
            raise ValueError(e.op)
        name_ = f"t{len(decls)}"
        decls.append(f"    wire signed [{w - 1}:0] {name_} = {text};")
        names[id(e)] = name_
        return name_

    if expr.op == "const":  # pragma: no cover - a constant multiplier
        root, root_width = ref(expr, out_bits), out_bits
    else:
        root, root_width = visit(expr), width_of(expr)
    functions = "\n".join(
        f"""    function automatic signed [7:0] lod{wx}(input signed [{wx - 1}:0] x);
        integer i;
        begin
            lod{wx} = 8'sd0;
            for (i = 0; i < {wx - 1}; i = i + 1)
                if (x[i] && !x[{wx - 1}]) lod{wx} = i[7:0];
        end
    endfunction"""
        for wx in sorted(lod_widths)
    )
    a_ext = "a" if signed_inputs else "{1'b0, a}"
    b_ext = "b" if signed_inputs else "{1'b0, b}"
    kind = "signed" if signed_inputs else "unsigned"
    body = "\n".join(decls)
    return f"""`timescale 1ns / 1ps
// {in_bits}-bit {kind} operands; generated by axc from the multiplier's definition
module {name} (
    input  wire [{in_bits - 1}:0] a,
    input  wire [{in_bits - 1}:0] b,
    output wire signed [{out_bits - 1}:0] p
);
{functions}
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [{var_width - 1}:0] xa = {a_ext};
    wire signed [{var_width - 1}:0] xb = {b_ext};
{body}
    /* verilator lint_on UNUSEDSIGNAL */
    assign p = {_fit(root, root_width, out_bits)};
endmodule
"""


def describe(expr: Expr) -> dict[str, Any]:
    """Counts of distinct nodes by op (for documentation and tests)."""
    seen: dict[int, Expr] = {}

    def walk(e: Expr) -> None:
        if id(e) not in seen:
            seen[id(e)] = e
            for a in e.args:
                walk(a)

    walk(expr)
    counts: dict[str, int] = {}
    for e in seen.values():
        counts[e.op] = counts.get(e.op, 0) + 1
    return counts
