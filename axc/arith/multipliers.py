"""The multiplier library: exact and approximate multipliers as bit-exact components.

A multiplier maps two integer operands to an integer product. Each built-in
family is defined once, as an expression (:mod:`axc.arith.expr`) on the
magnitudes of ``n``-bit operands; from that definition axc derives the
lookup table (numpy), a C++ function (the HLS view) and a Verilog module (the
RTL view). External multipliers (a C function, a Verilog module or a ``.npy``
table) are swept exhaustively into a table once (:mod:`axc.arith.external`).

Signs (docs/arithmetic.md, "Approximate multipliers"): a family's core is
unsigned. On signed data it runs in sign-magnitude form,
``m(a, b) = sign(a) * sign(b) * core(|a|, |b|)``, so its operands may be any
integers whose magnitudes fit ``n`` bits: ``[-(2^n - 1), 2^n - 1]``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from axc.arith import expr as ex
from axc.arith.expr import Expr, const, lod, select, total, var
from axc.errors import UserError

__all__ = [
    "FAMILIES",
    "Family",
    "Multiplier",
    "builtin",
    "exact_multiplier",
    "parse_multiplier",
]


@dataclass
class Multiplier:
    """A bit-exact multiplier on two operand ranges.

    ``table[i, j]`` is the product of ``a_lo + i`` and ``b_lo + j``. ``core``
    (for built-in families) is the defining expression on the operands'
    magnitudes, and ``sign_magnitude`` says that signed operands are handled
    by the wrapper above; external multipliers carry their own C or Verilog
    source instead."""

    name: str
    bits: int
    table: np.ndarray
    a_lo: int
    b_lo: int
    family: str = "table"
    params: tuple[Any, ...] = ()
    reference: str = ""
    core: Expr | None = None
    sign_magnitude: bool = True
    source: dict[str, str] = field(default_factory=dict)
    #: operand and product widths of the C++/Verilog interface; by default
    #: (bits + 1, 2 * bits + 2): two's complement operands with bits-bit magnitudes
    view_bits: tuple[int, int] | None = None

    @property
    def ports(self) -> tuple[int, int]:
        return self.view_bits or (self.bits + 1, 2 * self.bits + 2)

    @property
    def a_hi(self) -> int:
        return self.a_lo + self.table.shape[0] - 1

    @property
    def b_hi(self) -> int:
        return self.b_lo + self.table.shape[1] - 1

    @property
    def is_exact(self) -> bool:
        return self.family == "exact"

    def __call__(self, a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        if (
            (a < self.a_lo).any()
            or (a > self.a_hi).any()
            or (b < self.b_lo).any()
            or (b > self.b_hi).any()
        ):
            raise ValueError(
                f"operands outside multiplier {self.name}'s range "
                f"[{self.a_lo}, {self.a_hi}] x [{self.b_lo}, {self.b_hi}]"
            )
        return self.table[a - self.a_lo, b - self.b_lo]

    def exact_table(self) -> np.ndarray:
        a = np.arange(self.a_lo, self.a_hi + 1, dtype=np.int64)[:, None]
        b = np.arange(self.b_lo, self.b_hi + 1, dtype=np.int64)[None, :]
        return a * b

    def digest(self) -> str:
        """A short hash of the table: two multipliers with the same digest are the same function."""
        h = hashlib.sha256(np.ascontiguousarray(self.table, np.int64).tobytes())
        h.update(f"{self.a_lo},{self.b_lo}".encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------- views
    def identifier(self) -> str:
        """A C and Verilog identifier for this multiplier."""
        if "identifier" in self.source:
            return self.source["identifier"]
        text = self.name if not self.params else f"{self.name}_{'_'.join(map(str, self.params))}"
        safe = "".join(c if c.isalnum() else "_" for c in text)
        return f"axc_mul_{safe}_{self.bits}"

    def signed_expr(self) -> Expr:
        """The full function on signed operands: the sign-magnitude wrapper around the core."""
        if self.core is None:
            raise UserError(f"multiplier {self.name} has no expression (it is a table)")
        a, b = var("a"), var("b")
        sa, sb = a.lt(0), b.lt(0)
        ma, mb = select(sa, -a, a), select(sb, -b, b)
        p = _substitute(self.core, {"a": ma, "b": mb})
        return select(sa ^ sb, -p, p)

    def cpp(self) -> str:
        """The C++ view: ``int32_t <identifier>(int32_t a, int32_t b)``."""
        if self.core is None:
            return self.source.get("cpp") or _table_cpp(self)
        return ex.to_cpp(
            self.signed_expr(), self.identifier(), signed_inputs=True, bits=self.bits + 1
        )

    def verilog(self) -> str:
        """The RTL view: a combinational module ``<identifier>(a, b, p)`` on
        (bits + 1)-bit two's complement operands and a 2 * bits + 2-bit product."""
        if self.core is None:
            return self.source.get("verilog") or _table_verilog(self)
        lim = (1 << self.bits) - 1
        grid = np.arange(-lim, lim + 1, dtype=np.int64)
        return ex.to_verilog(
            self.signed_expr(),
            self.identifier(),
            in_bits=self.bits + 1,
            signed_inputs=True,
            out_bits=2 * self.bits + 2,
            env={"a": grid[:, None], "b": grid[None, :]},
        )


def _substitute(e: Expr, env: dict[str, Expr]) -> Expr:
    memo: dict[int, Expr] = {}

    def sub(x: Expr) -> Expr:
        if id(x) in memo:
            return memo[id(x)]
        if x.op == "var":
            out = env[str(x.value)]
        elif not x.args:
            out = x
        else:
            out = Expr(x.op, tuple(sub(a) for a in x.args), x.value)
        memo[id(x)] = out
        return out

    return sub(e)


def _rom(m: Multiplier) -> tuple[np.ndarray, int]:
    """The table a ROM view stores, and its operands' offset: the unsigned
    quadrant of a sign-magnitude multiplier (the wrapper supplies the signs),
    else the whole table."""
    if m.sign_magnitude:
        return m.table[-m.a_lo :, -m.b_lo :], 0
    return m.table, m.a_lo


def _table_cpp(m: Multiplier) -> str:
    rom, lo = _rom(m)
    rows = ",\n".join("    {" + ", ".join(str(int(v)) for v in row) + "}" for row in rom)
    ident = m.identifier()
    if m.sign_magnitude:
        body = (
            "    const int32_t ma = a < 0 ? -a : a, mb = b < 0 ? -b : b;\n"
            f"    const int32_t q = {ident}_rom[ma][mb];\n"
            "    return ((a < 0) != (b < 0)) ? -q : q;\n"
        )
    else:
        body = f"    return {ident}_rom[a - ({lo})][b - ({lo})];\n"
    return (
        "#include <stdint.h>\n"
        f"// the multiplier's exhaustive table, generated by axc\n"
        f"static const int32_t {ident}_rom[{rom.shape[0]}][{rom.shape[1]}] = {{\n{rows}\n}};\n"
        f"static inline int32_t {ident}(int32_t a, int32_t b) {{\n{body}}}\n"
    )


def _table_verilog(m: Multiplier) -> str:
    rom, lo = _rom(m)
    in_bits, out_bits = m.ports
    n = (rom.shape[0] - 1).bit_length()  # ROM address bits per operand
    mask = (1 << n) - 1
    entries = []
    for i in range(rom.shape[0]):
        for j in range(rom.shape[1]):
            key = (((i + lo) & mask) << n) | ((j + lo) & mask)
            v = int(rom[i, j])
            lit = f"{out_bits}'sd{v}" if v >= 0 else f"-{out_bits}'sd{-v}"
            entries.append(f"        rom[{key}] = {lit};")
    init = "\n".join(entries)
    if m.sign_magnitude:
        address = f"{{ma[{n - 1}:0], mb[{n - 1}:0]}}"
        prologue = f"""    /* verilator lint_off UNUSEDSIGNAL */
    wire [{in_bits - 1}:0] ma = a[{in_bits - 1}] ? -a : a;
    wire [{in_bits - 1}:0] mb = b[{in_bits - 1}] ? -b : b;
    /* verilator lint_on UNUSEDSIGNAL */
"""
        result = f"(a[{in_bits - 1}] ^ b[{in_bits - 1}]) ? -q : q"
    else:
        address, prologue, result = "{a, b}", "", "q"
    return f"""`timescale 1ns / 1ps
// the multiplier's exhaustive table as a ROM, generated by axc
module {m.identifier()} (
    input  wire [{in_bits - 1}:0] a,
    input  wire [{in_bits - 1}:0] b,
    output wire signed [{out_bits - 1}:0] p
);
{prologue}    reg signed [{out_bits - 1}:0] rom [0:{(1 << (2 * n)) - 1}];
    initial begin
{init}
    end
    wire signed [{out_bits - 1}:0] q = rom[{address}];
    assign p = {result};
endmodule
"""


# ------------------------------------------------------------------ families
@dataclass(frozen=True)
class Family:
    name: str
    params: tuple[tuple[str, int], ...]  # (name, default)
    build: Callable[..., Expr]  # (bits, *params) -> core expression on magnitudes a, b
    reference: str
    summary: str
    example: tuple[int, ...] = ()  # a representative parameter set at 8 bits

    def check(self, bits: int, values: tuple[int, ...]) -> None:
        for (pname, _), v in zip(self.params, values, strict=True):
            if not isinstance(v, int) or v < 0:
                raise UserError(f"{self.name}: {pname} must be a non-negative integer, got {v!r}")
        if self.name in ("trunc", "trunc_corrected") and values[0] > 2 * bits:
            raise UserError(f"{self.name}({values[0]}): at most {2 * bits} columns can be dropped")
        if self.name == "drum" and not 2 <= values[0] <= bits:
            raise UserError(f"drum({values[0]}): k must be in 2..{bits}")
        if self.name == "perforated":
            start, count = values
            if start + count > bits:
                raise UserError(f"perforated({start}, {count}): rows beyond the {bits} there are")
        if self.name == "bam":
            h, v = values
            if h > bits or v > 2 * bits:
                raise UserError(f"bam({h}, {v}): breaks beyond the array")


def _pp_rows(bits: int, a: Expr, b: Expr) -> list[Expr]:
    """Row i of the partial-product array: a_i * b, shifted by i."""
    return [select(a.bit(i), b << i, 0) for i in range(bits)]


def _exact(bits: int) -> Expr:
    return var("a") * var("b")


def _truncated(bits: int, k: int, corrected: bool = False) -> Expr:
    """Drop the partial-product bits of the k least-significant columns."""
    a, b = var("a"), var("b")
    mask = ~((1 << k) - 1)
    rows = [(row & mask) for row in _pp_rows(bits, a, b)]
    if corrected:
        # expected value of the dropped bits for uniform operands: a pp bit is
        # 1 with probability 1/4, and column c holds min(c, bits - 1) + 1 of them
        dropped = sum((min(c, bits - 1) + 1) * (1 << c) for c in range(min(k, 2 * bits)))
        rows.append(const(round(dropped / 4)))
    return total(rows)


def _trunc_corrected(bits: int, k: int) -> Expr:
    return _truncated(bits, k, corrected=True)


def _bam(bits: int, h: int, v: int) -> Expr:
    """Broken-array multiplier: omit partial-product bits a_i b_j with i < h
    (the horizontal break) or i + j < v (the vertical break)."""
    a, b = var("a"), var("b")
    terms = []
    for i in range(h, bits):
        # bits j of b with i + j >= v survive: mask off the columns below v
        low = max(0, v - i)
        if low >= bits:
            continue
        terms.append(select(a.bit(i), (b >> low) << (low + i), 0))
    return total(terms)


def _perforated(bits: int, start: int, count: int) -> Expr:
    """Partial-product perforation: rows start .. start + count - 1 are not generated."""
    rows = _pp_rows(bits, var("a"), var("b"))
    return total([r for i, r in enumerate(rows) if not start <= i < start + count])


def _drum_operand(x: Expr, k: int) -> tuple[Expr, Expr]:
    """DRUM's operand: the k bits from the leading one, the lowest forced to 1;
    returns (value, shift)."""
    t = lod(x)
    fits = t.lt(k)  # at most k significant bits: the operand is used as it is
    shift = select(fits, 0, t - (k - 1))
    value = select(fits, x, (x >> shift) | 1)
    return value, shift


def _drum(bits: int, k: int) -> Expr:
    """DRUM(k): dynamic-range unbiased multiplier."""
    a, b = var("a"), var("b")
    va, sa = _drum_operand(a, k)
    vb, sb = _drum_operand(b, k)
    return (va * vb) << (sa + sb)


def _mitchell(bits: int) -> Expr:
    """Mitchell's logarithmic multiplier, with n fraction bits."""
    a, b = var("a"), var("b")
    f = bits
    ka, kb = lod(a), lod(b)
    # fraction of x = x / 2^k - 1 as an f-bit fixed-point value
    fa = ((a - (const(1) << ka)) << f) >> ka
    fb = ((b - (const(1) << kb)) << f) >> kb
    s = fa + fb
    k = ka + kb
    one = 1 << f
    carry = s.lt(one) ^ 1  # 1 when the fractions add up to 1 or more
    mant = select(carry, s, s + one)  # (1 + s) below 1, else 2 * s ... scaled below
    p = select(carry, (mant << (k + 1)) >> f, (mant << k) >> f)
    zero = a.eq(0) | b.eq(0)
    return select(zero, 0, p)


def _roba(bits: int) -> Expr:
    """Rounding-based approximate multiplier: a*b ~ ar*b + a*br - ar*br with ar,
    br the operands rounded to the nearest power of two (ties up)."""
    a, b = var("a"), var("b")

    def rounded_log(x: Expr) -> Expr:
        t = lod(x)
        below = select(t.lt(1), 0, t - 1)  # the bit under the leading one
        up = select(t.lt(1), 0, (x >> below) & 1)
        return t + up

    ea, eb = rounded_log(a), rounded_log(b)
    p = (b << ea) + (a << eb) - (const(1) << (ea + eb))
    zero = a.eq(0) | b.eq(0)
    return select(zero, 0, p)


def _kulkarni(bits: int) -> Expr:
    """Kulkarni's underdesigned multiplier: 2x2 blocks with 3 x 3 = 7, summed exactly."""
    a, b = var("a"), var("b")
    digits = (bits + 1) // 2
    terms = []
    for i in range(digits):
        for j in range(digits):
            da, db = (a >> (2 * i)) & 3, (b >> (2 * j)) & 3
            block = select(da.eq(3) & db.eq(3), 7, da * db)
            terms.append(block << (2 * (i + j)))
    return total(terms)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("exact", (), _exact, "", "the exact product"),
        Family(
            "trunc",
            (("k", 4),),
            _truncated,
            "truncated multiplier: M. J. Schulte and E. E. Swartzlander, 'Truncated "
            "multiplication with correction constant', VLSI Signal Processing VI, 1993",
            "drops the k least-significant partial-product columns",
            (4,),
        ),
        Family(
            "trunc_corrected",
            (("k", 4),),
            _trunc_corrected,
            "Schulte and Swartzlander 1993 (constant correction)",
            "as trunc(k), plus the expected value of the dropped bits",
            (4,),
        ),
        Family(
            "bam",
            (("h", 0), ("v", 6)),
            _bam,
            "broken-array multiplier: H. R. Mahdiani et al., 'Bio-inspired imprecise "
            "computational blocks for efficient VLSI implementation of soft-computing "
            "applications', IEEE TCAS-I, 2010",
            "omits the partial-product bits of rows below h and of columns below v",
            (1, 6),
        ),
        Family(
            "drum",
            (("k", 4),),
            _drum,
            "S. Hashemi, R. I. Bahar and S. Reda, 'DRUM: A dynamic range unbiased "
            "multiplier for approximate applications', ICCAD 2015",
            "multiplies the k bits from each operand's leading one, the lowest forced to 1",
            (4,),
        ),
        Family(
            "mitchell",
            (),
            _mitchell,
            "J. N. Mitchell, 'Computer multiplication and division using binary "
            "logarithms', IRE Trans. Electronic Computers, 1962",
            "adds piecewise-linear base-2 logarithms",
        ),
        Family(
            "perforated",
            (("start", 0), ("count", 2)),
            _perforated,
            "G. Zervakis et al., 'Design-efficient approximate multiplication "
            "circuits through partial product perforation', IEEE TVLSI, 2016",
            "omits count partial-product rows from row start",
            (0, 2),
        ),
        Family(
            "roba",
            (),
            _roba,
            "R. Zendegani et al., 'RoBA multiplier: a rounding-based approximate "
            "multiplier for high-speed yet energy-efficient digital signal "
            "processing', IEEE TVLSI, 2017",
            "rounds each operand to the nearest power of two: a*br + ar*b - ar*br",
        ),
        Family(
            "kulkarni",
            (),
            _kulkarni,
            "P. Kulkarni, P. Gupta and M. Ercegovac, 'Trading accuracy for power with "
            "an underdesigned multiplier architecture', VLSI Design 2011",
            "2x2 blocks that give 7 for 3 x 3, summed exactly",
        ),
    ]
}


def sign_magnitude(core: np.ndarray) -> np.ndarray:
    """The table on operands -(2^n - 1)..2^n - 1 of the wrapper
    sign(a) sign(b) core(|a|, |b|), from the (2^n, 2^n) unsigned core table."""
    lim = core.shape[0] - 1
    a = np.arange(-lim, lim + 1)[:, None]
    b = np.arange(-lim, lim + 1)[None, :]
    values = core[np.abs(a), np.abs(b)]
    return np.where((a < 0) ^ (b < 0), -values, values)


def builtin(family: str, *params: int, bits: int = 8) -> Multiplier:
    """A built-in family's multiplier on sign-magnitude operands with ``bits``-bit magnitudes."""
    if family not in FAMILIES:
        raise UserError(f"unknown multiplier {family!r}; built-in families: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    if not 2 <= bits <= 8:
        raise UserError(f"multipliers are {2}..8 bits wide, not {bits}")
    if len(params) > len(fam.params):
        raise UserError(f"{family} takes {len(fam.params)} parameters, got {len(params)}")
    values = tuple(params) + tuple(d for _, d in fam.params[len(params) :])
    fam.check(bits, values)
    core = fam.build(bits, *values)
    lim = (1 << bits) - 1
    grid = np.arange(lim + 1, dtype=np.int64)
    table = sign_magnitude(ex.evaluate(core, {"a": grid[:, None], "b": grid[None, :]}))
    out_lim = 1 << (2 * bits + 1)
    if np.abs(table).max() >= out_lim:  # pragma: no cover - a family's definition error
        raise ValueError(f"{family}{values}: products exceed {2 * bits + 2} bits")
    return Multiplier(
        name=family,
        bits=bits,
        table=table.astype(np.int32),
        a_lo=-lim,
        b_lo=-lim,
        family=family,
        params=values,
        reference=fam.reference,
        core=core,
    )


def exact_multiplier(bits: int = 8) -> Multiplier:
    return builtin("exact", bits=bits)


_SPEC = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$")


def _spec_parts(spec: str) -> tuple[str, list[int | str]]:
    match = _SPEC.match(spec)
    if match is None:
        return spec.strip().strip("\"'"), []
    name, inner = match.group(1), match.group(2)
    args: list[int | str] = []
    for part in (inner or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part[0] in "\"'" and part[-1] == part[0]:
            args.append(part[1:-1])
            continue
        try:
            args.append(int(part))
        except ValueError:
            raise UserError(f"multiplier {spec!r}: parameter {part!r} is not an integer") from None
    return name, args


def parse_multiplier(spec: str | Multiplier, bits: int = 8, base: str | None = None) -> Multiplier:
    """A multiplier from its directive form: ``exact``, ``trunc(4)``,
    ``bam(1, 6)``, or a file: ``mul8u_xxx.c``, ``m.v``, ``t.npy``, also written
    ``evo("mul8u_xxx.c")``. Relative files are looked up in ``base``."""
    if isinstance(spec, Multiplier):
        return spec
    name, args = _spec_parts(str(spec))
    if name in ("evo", "file") and len(args) == 1 and isinstance(args[0], str):
        name, args = args[0], []
    if name.endswith((".c", ".v", ".sv", ".npy")):
        from axc.arith.external import load_multiplier

        return load_multiplier(name, base=base)
    if name not in FAMILIES:
        close = difflib.get_close_matches(name, list(FAMILIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown multiplier {name!r}{hint} (built-in: {', '.join(FAMILIES)})")
    if not all(isinstance(a, int) for a in args):
        raise UserError(f"{name}: parameters must be integers, got {args!r}")
    return builtin(name, *(int(a) for a in args), bits=bits)


@lru_cache(maxsize=256)
def _resolve(spec: str, bits: int, stamp: float) -> Multiplier:
    return parse_multiplier(spec, bits=bits)


def resolve(spec: str, bits: int = 8) -> Multiplier:
    """``parse_multiplier`` with a cache (a file is read again when it changes)."""
    name, args = _spec_parts(spec)
    path = args[0] if name in ("evo", "file") and args and isinstance(args[0], str) else name
    stamp = os.stat(path).st_mtime if os.path.isfile(str(path)) else 0.0
    return _resolve(spec, bits, stamp)


def representatives(bits: int = 8) -> list[Multiplier]:
    """One multiplier per built-in family, with its representative parameters."""
    return [builtin(f.name, *f.example, bits=bits) for f in FAMILIES.values()]


def log2_ceil(x: int) -> int:
    return max(0, math.ceil(math.log2(max(1, x))))
