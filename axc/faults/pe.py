"""PE-level fault sites: a fault in a register of one processing element of a
systolic array, mapped to exactly the accumulators it corrupts.

PyTorchFI and the simulator's tensor-level sites corrupt values; a fault in
hardware corrupts a register, and which values that register touches follows
from the array's shape, its dataflow and the layer's tiling
(:mod:`axc.hw.systolic`, docs/hardware.md). Each PE has three registers:

==========  ==========================================  ======================================
register    weight-stationary (ws)                      output-stationary (os)
==========  ==========================================  ======================================
weight      the stationary weight (loaded by shifting    the weight passing down
            down the column before each tile)
input       the activation passing right                 the activation passing right
psum        the partial sum passing down                 the stationary accumulator (drained
                                                         down the column after each tile)
==========  ==========================================  ======================================

A fault rewrites the register's value ``d`` as ``((d & and) | or) ^ xor`` on
the register's width, either on every write (``permanent``: stuck-at bits) or
on the write at one cycle of one tile (transient: an upset, which persists in
a register that holds its value). Cycles count from a tile's first busy
cycle, as the RTL's counter does. The RTL has the same fault ports, and the
tests hold the two equal fault by fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from axc.hw.systolic import ArrayShape, Tile, tiles

__all__ = ["REGISTERS", "PeFault", "faulty_accumulators", "wide_product"]

REGISTERS = ("weight", "input", "psum")


@dataclass(frozen=True)
class PeFault:
    register: str  # weight | input | psum
    row: int
    col: int
    and_mask: int = -1
    or_mask: int = 0
    xor_mask: int = 0
    permanent: bool = False
    tile: int = 0  # transient faults: the tile ...
    cycle: int = 0  # ... and its cycle

    def __post_init__(self) -> None:
        if self.register not in REGISTERS:
            raise ValueError(f"register must be one of {', '.join(REGISTERS)}")

    @property
    def kind(self) -> int:
        """The RTL's f_kind code."""
        return REGISTERS.index(self.register)

    def apply(self, value: np.ndarray | int, width: int) -> np.ndarray:
        """The faulty value of a ``width``-bit two's complement register."""
        mask = (1 << width) - 1
        v = np.asarray(value, np.int64) & mask
        v = ((v & (self.and_mask & mask)) | (self.or_mask & mask)) ^ (self.xor_mask & mask)
        return np.where(v >> (width - 1) != 0, v - (1 << width), v)


def _wrap(v: np.ndarray, bits: int) -> np.ndarray:
    half = np.int64(1) << np.int64(bits - 1)
    return ((np.asarray(v, np.int64) + half) & ((half << np.int64(1)) - 1)) - half


@lru_cache(maxsize=16)
def _edge_products(verilog: str, top: str, a_w: int, p_w: int) -> np.ndarray:
    """(2, 2^a_w): the Verilog view's products m(-2^(a_w-1), b) and m(a, -2^(a_w-1))
    for every operand code, by simulating the module with Icarus Verilog
    (cached on disk). That one code's magnitude does not fit the port width,
    and what a view makes of it depends on how its expression reads the
    magnitude, so it is measured rather than derived."""
    import hashlib
    import subprocess
    import tempfile

    from axc.arith.sweep import require_tool
    from axc.hw.synth import cache_dir

    key = hashlib.sha256(f"{a_w} {p_w}\n{verilog}".encode()).hexdigest()[:32]
    path = cache_dir() / "pe" / f"{key}.npy"
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass
    iverilog = require_tool("iverilog", "measure a multiplier view on out-of-range operands")
    vvp = require_tool("vvp", "measure a multiplier view on out-of-range operands")
    codes = 1 << a_w
    edge = codes // 2
    bench = f"""module axc_edge_tb;
    reg [{a_w - 1}:0] a, b;
    wire signed [{p_w - 1}:0] p;
    integer i, fd;
    {top} dut (.a(a), .b(b), .p(p));
    initial begin
        fd = $fopen("edge.txt", "w");
        for (i = 0; i < {codes}; i = i + 1) begin a = {edge}; b = i; #1 $fdisplay(fd, "%0d", p); end
        for (i = 0; i < {codes}; i = i + 1) begin a = i; b = {edge}; #1 $fdisplay(fd, "%0d", p); end
        $fclose(fd);
        $finish;
    end
endmodule
"""
    with tempfile.TemporaryDirectory(prefix="axc-edge-") as tmp:
        folder = Path(tmp)
        (folder / "mul.v").write_text(verilog)
        (folder / "tb.v").write_text(bench)
        subprocess.run([iverilog, "-o", "edge", "tb.v", "mul.v"], cwd=folder, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        subprocess.run([vvp, "-n", "edge"], cwd=folder, check=True, capture_output=True,
                       timeout=300)  # fmt: skip
        values = np.loadtxt(folder / "edge.txt", dtype=np.int64).reshape(2, codes)
    # rows indexed by the other operand's two's complement code
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return values


def wide_product(mult: object, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The product the multiplier's Verilog view computes for any (bits + 1)-bit
    operand codes, including those a fault pushed outside the multiplier's
    range [-(2^bits - 1), 2^bits - 1]: the only such code is -2^bits, whose
    magnitude overflows the port; its products are measured on the Verilog
    view (:func:`_edge_products`). In range, the multiplier's table."""
    bits = int(mult.bits)  # type: ignore[attr-defined]
    a_w, p_w = mult.ports  # type: ignore[attr-defined]
    if not getattr(mult, "sign_magnitude", False) or a_w != bits + 1:
        raise ValueError("PE faults need a sign-magnitude multiplier (all built-in ones are)")
    a = _wrap(a, a_w)
    b = _wrap(b, a_w)
    edge = -(1 << bits)
    table = mult.table  # type: ignore[attr-defined]
    ia = np.where(a == edge, 0, a) - mult.a_lo  # type: ignore[attr-defined]
    ib = np.where(b == edge, 0, b) - mult.b_lo  # type: ignore[attr-defined]
    out = table[ia, ib].astype(np.int64)
    odd_a, odd_b = a == edge, b == edge
    if odd_a.any() or odd_b.any():
        edges = _edge_products(mult.verilog(), mult.identifier(), a_w, p_w)  # type: ignore[attr-defined]
        mask = (1 << a_w) - 1
        out = np.where(odd_a, edges[0][b & mask], out)
        out = np.where(odd_b & ~odd_a, edges[1][a & mask], out)
    return _wrap(out, p_w)


@dataclass
class _Widths:
    a: int
    b: int
    acc: int


def _ws_tile(
    x: np.ndarray,
    w: np.ndarray,
    t: Tile,
    array: ArrayShape,
    mult: object,
    fault: PeFault | None,
    widths: _Widths,
) -> np.ndarray:
    """(N, C) results of a weight-stationary tile (before accumulation across tiles)."""
    r, c = array.rows, array.cols
    n = x.shape[0]
    xt = np.zeros((n, r), np.int64)
    xt[:, : t.k] = x[:, t.k0 : t.k0 + t.k]
    wt = np.zeros((r, c), np.int64)
    wt[: t.k, : t.m] = w[t.k0 : t.k0 + t.k, t.m0 : t.m0 + t.m]
    valid = (np.arange(r) < t.k)[None, :, None]
    i0, j0 = (fault.row, fault.col) if fault is not None else (-1, -1)

    def active(cyc: int | np.ndarray) -> np.ndarray | bool:
        if fault is None:
            return False
        return fault.permanent or (fault.tile == t.index and np.asarray(cyc) == fault.cycle)

    # weights: R preload cycles shift rows R-1 .. 0 down each column
    weights = np.broadcast_to(wt, (n, r, c)).copy()
    if fault is not None and fault.register == "weight":
        column = np.zeros(r, np.int64)
        for cyc in range(r):
            column = np.concatenate([[wt[r - 1 - cyc, j0]], column[:-1]])
            if active(cyc):
                column[i0] = fault.apply(column[i0], widths.b)
        weights[:, :, j0] = column[None, :]
        if fault.permanent:
            weights[:, i0, j0] = fault.apply(column[i0], widths.b)
        elif fault.tile == t.index and fault.cycle >= r:
            # an upset while the weight is held: PE (i0, j0) multiplies input row n at
            # stream step n + i0 + j0, i.e. tile cycle r + n + i0 + j0
            later = r + np.arange(n) + i0 + j0 > fault.cycle
            weights[later, i0, j0] = fault.apply(column[i0], widths.b)
    inputs = np.broadcast_to(xt[:, :, None], (n, r, c)).copy()
    if fault is not None and fault.register == "input":
        # x_q(i0, j0) feeds PEs (i0, j0 + 1 ..) one cycle later; row n passes it at
        # tile cycle r + n + i0 + j0
        hit = np.asarray(active(r + np.arange(n) + i0 + j0)) & np.ones(n, bool)
        inputs[hit, i0, j0 + 1 :] = fault.apply(xt[hit, i0], widths.a)[:, None]
    prods = np.where(valid, wide_product(mult, inputs, weights), 0)
    total = _wrap(prods.sum(axis=1), widths.acc)
    if fault is not None and fault.register == "psum":
        hit = np.asarray(active(r + np.arange(n) + i0 + j0)) & np.ones(n, bool)
        upper = _wrap(prods[hit, : i0 + 1, j0].sum(axis=1), widths.acc)
        lower = prods[hit, i0 + 1 :, j0].sum(axis=1)
        total[hit, j0] = _wrap(fault.apply(upper, widths.acc) + lower, widths.acc)
    return total


def _os_tile(
    x: np.ndarray,
    w: np.ndarray,
    t: Tile,
    array: ArrayShape,
    mult: object,
    fault: PeFault | None,
    widths: _Widths,
) -> np.ndarray:
    """(R, C) results of an output-stationary tile."""
    r, c = array.rows, array.cols
    k = x.shape[1]
    xt = np.zeros((r, k), np.int64)
    xt[: t.n] = x[t.n0 : t.n0 + t.n]
    wt = np.zeros((k, c), np.int64)
    wt[:, : t.m] = w[:, t.m0 : t.m0 + t.m]
    valid = (np.arange(r) < t.n)[:, None, None]
    i0, j0 = (fault.row, fault.col) if fault is not None else (-1, -1)
    steps = np.arange(k)

    def active(cyc: int | np.ndarray) -> np.ndarray:
        if fault is None:
            return np.zeros(np.shape(cyc), bool)
        if fault.permanent:
            return np.ones(np.shape(cyc), bool)
        return np.asarray(fault.tile == t.index) & (np.asarray(cyc) == fault.cycle)

    inputs = np.broadcast_to(xt[:, :, None], (r, k, c)).copy()
    weights = np.broadcast_to(wt[None], (r, k, c)).copy()
    # product k of PE (i, j) happens at stream step k + i + j: tile cycle 1 + k + i + j
    if fault is not None and fault.register == "input":
        hit = active(1 + steps + i0 + j0)
        inputs[i0, hit, j0 + 1 :] = fault.apply(xt[i0, hit], widths.a)[:, None]
    if fault is not None and fault.register == "weight":
        hit = active(1 + steps + i0 + j0)
        weights[i0 + 1 :, hit, j0] = fault.apply(wt[hit, j0], widths.b)[None, :]
    prods = np.where(valid, wide_product(mult, inputs, weights), 0)
    total = _wrap(prods.sum(axis=1), widths.acc)
    if fault is not None and fault.register == "psum":
        stream = k + r + c - 2
        own = prods[i0, :, j0]
        if fault.permanent:
            acc = fault.apply(0, widths.acc)
            for s in range(stream):
                kk = s - i0 - j0
                add = own[kk] if 0 <= kk < k else 0
                acc = fault.apply(_wrap(acc + add, widths.acc), widths.acc)
            total[i0, j0] = acc
            # the accumulators of the rows above drain through this register
            total[:i0, j0] = fault.apply(total[:i0, j0], widths.acc)
        elif fault.tile == t.index:
            cyc = fault.cycle
            if cyc == 0:  # the clear
                total[i0, j0] = _wrap(fault.apply(0, widths.acc) + own.sum(), widths.acc)
            elif cyc <= stream:
                done = min(k, max(0, cyc - 1 - i0 - j0 + 1))
                partial = _wrap(own[:done].sum(), widths.acc)
                rest = own[done:].sum()
                total[i0, j0] = _wrap(fault.apply(partial, widths.acc) + rest, widths.acc)
            else:  # drain step d writes row i0 - 1 - d's accumulator here
                d = cyc - 1 - stream
                row = i0 - 1 - d
                if row >= 0:
                    total[row, j0] = fault.apply(total[row, j0], widths.acc)
    return total


def faulty_accumulators(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    array: ArrayShape,
    mult: object,
    acc_bits: int,
    fault: PeFault | None,
) -> np.ndarray:
    """The accumulators ``bias + X W`` (N, M), wrapped to ``acc_bits``, of a product
    run on ``array`` with ``fault`` in one PE register (None: fault-free).
    ``x`` (N, K) and ``w`` (K, M) are the centred operands."""
    if fault is not None and not (0 <= fault.row < array.rows and 0 <= fault.col < array.cols):
        raise ValueError(
            f"PE ({fault.row}, {fault.col}) is outside the {array.rows}x{array.cols} array"
        )
    a_w, _ = mult.ports  # type: ignore[attr-defined]
    widths = _Widths(a_w, a_w, acc_bits)
    n, k = x.shape
    m = w.shape[1]
    acc = np.broadcast_to(np.asarray(bias, np.int64), (n, m)).copy()
    for t in tiles(array, n, k, m):
        if array.dataflow == "ws":
            part = _ws_tile(x, w, t, array, mult, fault, widths)
            acc[:, t.m0 : t.m0 + t.m] += part[:, : t.m]
        else:
            part = _os_tile(x, w, t, array, mult, fault, widths)
            acc[t.n0 : t.n0 + t.n, t.m0 : t.m0 + t.m] += part[: t.n, : t.m]
        acc = _wrap(acc, acc_bits)
    return acc


def _tile_part(
    x: np.ndarray,
    w: np.ndarray,
    t: Tile,
    array: ArrayShape,
    mult: object,
    fault: PeFault | None,
    widths: _Widths,
) -> np.ndarray:
    if array.dataflow == "ws":
        return _ws_tile(x, w, t, array, mult, fault, widths)[:, : t.m]
    return _os_tile(x, w, t, array, mult, fault, widths)[: t.n, : t.m]


def _region(t: Tile, array: ArrayShape, n: int) -> tuple[slice, slice]:
    rows = slice(0, n) if array.dataflow == "ws" else slice(t.n0, t.n0 + t.n)
    return rows, slice(t.m0, t.m0 + t.m)


def accumulator_delta(
    x: np.ndarray, w: np.ndarray, array: ArrayShape, mult: object, acc_bits: int, fault: PeFault
) -> np.ndarray:
    """What ``fault`` adds (modulo 2^acc_bits) to the accumulators of ``X W``:
    only the tiles it touches are computed (one, for a transient fault)."""
    a_w, _ = mult.ports  # type: ignore[attr-defined]
    widths = _Widths(a_w, a_w, acc_bits)
    n, k = x.shape
    m = w.shape[1]
    delta = np.zeros((n, m), np.int64)
    for t in tiles(array, n, k, m):
        if not fault.permanent and t.index != fault.tile:
            continue
        bad = _tile_part(x, w, t, array, mult, fault, widths)
        good = _tile_part(x, w, t, array, mult, None, widths)
        delta[_region(t, array, n)] += bad - good
    return delta


# ----------------------------------------------------- campaigns over a graph
PE_SITES = tuple(f"pe_{r}" for r in REGISTERS)


def array_of(graph: object) -> ArrayShape:
    """The array a graph's ``target systolic`` directive names (8x8 ws without one)."""
    target = graph.metadata.get("target") or {}  # type: ignore[attr-defined]
    if target.get("backend") != "systolic":
        return ArrayShape(8, 8, "ws")
    dataflow = str(target.get("dataflow", "ws"))
    if dataflow not in ("ws", "os"):
        from axc.errors import UserError

        raise UserError(f"PE faults model ws and os arrays, not {dataflow!r}")
    return ArrayShape(int(target.get("rows", 8)), int(target.get("cols", 8)), dataflow)


def layer_multiplier(graph: object, node: object) -> object:
    """The multiplier a layer's PEs use: its ``approximate`` annotation, else exact."""
    from axc.arith.multipliers import exact_multiplier, resolve

    spec = node.annotations.get("multiplier")  # type: ignore[attr-defined]
    bits = int(node.annotations.get("multiplier_bits", 8))  # type: ignore[attr-defined]
    if spec:
        return resolve(str(spec), bits)
    x = graph.tensors[node.inputs[0]].dtype  # type: ignore[attr-defined]
    wt = graph.constants[node.inputs[1]]  # type: ignore[attr-defined]
    return exact_multiplier(max(x.bits, np.dtype(wt.dtype).itemsize * 8))


def register_width(register: str, mult: object, acc_bits: int) -> int:
    a_w, p_w = mult.ports  # type: ignore[attr-defined]
    return {"weight": a_w, "input": a_w, "psum": max(acc_bits, p_w + 1)}[register]


def layer_schedule(graph: object, node: object, array: ArrayShape) -> list[list[Tile]]:
    """The tiles of each group of ``node`` for one input, in the order they run."""
    import math

    w = graph.constants[node.inputs[1]]  # type: ignore[attr-defined]
    m = int(w.shape[0])
    k = int(np.prod(w.shape[1:]))
    if node.op == "QGemm":  # type: ignore[attr-defined]
        return [tiles(array, 1, k, m)]
    out_shape = graph.tensors[node.outputs[0]].shape  # type: ignore[attr-defined]
    pixels = math.prod(int(d) for d in out_shape[2:])
    group = int(node.attrs["group"])  # type: ignore[attr-defined]
    return [tiles(array, pixels, k, m // group) for _ in range(group)]


def locate(schedule: list[list[Tile]], cycle: int) -> tuple[int, int, int]:
    """(group, tile, cycle within the tile) of a cycle counted over the layer's run."""
    for g, plan in enumerate(schedule):
        for t in plan:
            if cycle < t.cycles:
                return g, t.index, cycle
            cycle -= t.cycles
    raise ValueError("cycle beyond the layer's run")


def layer_accumulators(
    graph: object,
    node: object,
    x: np.ndarray,
    acc: np.ndarray,
    array: ArrayShape,
    register: str,
    row: int,
    col: int,
    masks: tuple[int, int, int],
    cycle: int,
) -> np.ndarray:
    """The accumulators (laid out as ``acc``, the fault-free ones for the inputs
    ``x``) of ``node`` run one input at a time on ``array`` with a fault in
    ``register`` of PE (row, col): stuck-at when ``cycle`` < 0, else an upset at
    that cycle of the layer's run."""
    from axc.hw.gemm import layer_products

    mult = layer_multiplier(graph, node)
    bits = int(node.attrs["acc_bits"])  # type: ignore[attr-defined]
    schedule = layer_schedule(graph, node, array)
    permanent = cycle < 0
    group, tile, local = (0, 0, 0) if permanent else locate(schedule, cycle)
    fault = PeFault(register, row, col, *masks, permanent=permanent, tile=tile, cycle=local)
    out = np.array(acc, np.int64, copy=True)
    conv = node.op == "QConv"  # type: ignore[attr-defined]
    images = x.shape[0]
    for product in layer_products(graph, node, x):  # type: ignore[arg-type]
        if not permanent and product.group != group:
            continue
        p = product.pixels
        if permanent and array.dataflow == "ws":
            # a weight-stationary array treats every streamed row alike: one call
            delta = accumulator_delta(product.x, product.w, array, mult, bits, fault)
        else:  # the schedule restarts with each input
            delta = np.concatenate(
                [
                    accumulator_delta(product.x[i * p : (i + 1) * p], product.w, array, mult,
                                      bits, fault)
                    for i in range(images)
                ]
            )  # fmt: skip
        mg = delta.shape[1]
        sel = slice(product.group * mg, (product.group + 1) * mg)
        if conv:
            grid = out[:, sel].reshape(images, mg, -1)
            grid[...] = _wrap(grid + delta.reshape(images, p, mg).transpose(0, 2, 1), bits)
            out[:, sel] = grid.reshape(out[:, sel].shape)
        else:
            out[:, sel] = _wrap(out[:, sel] + delta.reshape(images, mg), bits)
    return out
