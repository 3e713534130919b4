"""The systolic-array backend: a parameterized Verilog accelerator for a graph's
conv and GEMM layers, its test bench, and RTL verification against the simulator.

Layout of what it writes (``outdir``)::

    rtl/<top>.v            tile controller, skew, accumulation, output stage (generated)
    rtl/<top>_array.v      R x C PEs and their multipliers (generated)
    rtl/axc_mul_*.v        the multiplier's Verilog view (from the multiplier library)
    rtl/axc_pe_*.v, axc_requant.v, axc_range.v   cells copied from runtime/rtl
    tb/<top>_tb.v          runs a program of tiles from files (Icarus Verilog)
    files.f                the design's file list
    synth.ys               yosys synth_xilinx script
    layers.json            each layer's products, tiles and cycles (axc.hw.systolic)

A design whose layers use different multipliers gets one array per
multiplier (a heterogeneous accelerator, as in layer-wise approximation):
every array has the same rows, columns and dataflow, each layer runs on the
array of its multiplier, and the arrays are named ``<top>_a0``, ``<top>_a1``,
... in the order their first layers appear. One multiplier: one array,
named ``<top>``.

Module names come from ``--option top=...`` (sanitized), never from layer
names; layer names appear only in layers.json, as data.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axc.backend import Artifacts, Backend
from axc.errors import UserError
from axc.hw.gemm import LayerProduct, layer_products, linear_layers, to_layout
from axc.hw.systolic import ArrayShape, Tile, gemm_cost, tiles
from axc.ir import Graph

from .rtl import ArrayConfig, array_verilog, testbench_verilog, top_verilog

__all__ = [
    "ArrayPart",
    "SystolicBackend",
    "SystolicOptions",
    "array_config",
    "array_parts",
    "run_product",
]

CELLS = ("axc_pe_ws.v", "axc_pe_os.v", "axc_requant.v", "axc_range.v")


@dataclass(frozen=True)
class SystolicOptions:
    #: array rows and columns (default: the ``target systolic`` directive's, else 8)
    rows: int | None = None
    cols: int | None = None
    #: ``ws`` (weight-stationary) or ``os`` (output-stationary); default as rows
    dataflow: str | None = None
    #: fault-injection ports in the PE registers (tied off, at no cost, when false)
    fault_ports: bool = False
    #: requantizer and range restriction at the array's output
    output_stage: bool = True
    #: the top module's name (made a legal, safe Verilog identifier)
    top: str = "axc_systolic"

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 256:
                raise ValueError(f"{name} must lie in 1..256, got {value}")
        if self.dataflow is not None and self.dataflow not in ("ws", "os"):
            raise ValueError(f"dataflow must be ws or os, got {self.dataflow!r}")


def identifier(text: str) -> str:
    """``text`` as a Verilog identifier: letters, digits and _, not starting with a
    digit, never a keyword-like bare name, at most 64 characters."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", text)[:64] or "axc"
    if not safe[0].isalpha():
        safe = f"m_{safe}"
    return safe if safe.startswith("axc") else f"axc_{safe}"


def _multiplier_key(node: Any) -> tuple[str, int] | None:
    """(spec, bits) of a layer's approximate multiplier; None for the exact product
    (no annotation, or an exact one)."""
    from axc.arith.multipliers import resolve

    spec = node.annotations.get("multiplier")
    if not spec:
        return None
    bits = int(node.annotations.get("multiplier_bits", 8))
    return None if resolve(str(spec), bits).is_exact else (str(spec), bits)


@dataclass(frozen=True)
class ArrayPart:
    """One array of a design and the layers that run on it."""

    config: ArrayConfig
    multiplier: Any
    layers: tuple[Any, ...]


def array_parts(
    graph: Graph, options: SystolicOptions, layers: list[Any] | None = None
) -> list[ArrayPart]:
    """The arrays of ``graph``'s design: one per multiplier its conv and GEMM
    layers use (the exact product counts as one), in the order of their
    first layers, each sized for its own layers' widths."""
    layers = linear_layers(graph) if layers is None else layers
    if not layers:
        raise UserError("the systolic backend lowers QConv and QGemm layers; the graph has none")
    groups: dict[tuple[str, int] | None, list[Any]] = {}
    for n in layers:
        groups.setdefault(_multiplier_key(n), []).append(n)
    top = identifier(options.top)
    parts = []
    for index, (key, members) in enumerate(groups.items()):
        name = top if len(groups) == 1 else f"{top}_a{index}"
        cfg, mult = _array(graph, options, members, key, name)
        parts.append(ArrayPart(cfg, mult, tuple(members)))
    return parts


def array_config(
    graph: Graph, options: SystolicOptions, layers: list[Any] | None = None
) -> tuple[ArrayConfig, Any]:
    """The array's configuration for ``graph``'s conv and GEMM layers, and its
    multiplier, where they all use one multiplier (else :func:`array_parts`)."""
    parts = array_parts(graph, options, layers)
    if len(parts) > 1:
        names = ", ".join(p.multiplier.identifier() for p in parts)
        raise UserError(
            f"the layers use {len(parts)} multipliers ({names}): the design has one "
            "array per multiplier, and this step takes one array"
        )
    return parts[0].config, parts[0].multiplier


def _array(
    graph: Graph,
    options: SystolicOptions,
    layers: list[Any],
    key: tuple[str, int] | None,
    top: str,
) -> tuple[ArrayConfig, Any]:
    from axc.arith.multipliers import exact_multiplier, resolve

    target = graph.metadata.get("target") or {}
    if target.get("backend") != "systolic":
        target = {}
    rows = options.rows or int(target.get("rows", 8))
    cols = options.cols or int(target.get("cols", 8))
    dataflow = options.dataflow or str(target.get("dataflow", "ws"))
    if dataflow not in ("ws", "os"):
        raise UserError(f"the systolic backend builds ws and os arrays, not {dataflow!r}")
    bits = 0
    acc = 0
    out_bits, out_signed = 0, True
    for n in layers:
        for t in (n.inputs[0], n.inputs[1]):
            info = graph.tensors.get(t, None)
            dtype = info.dtype if info is not None else None
            if dtype is None or dtype.is_float:
                arr = graph.constants.get(t)
                if arr is None:
                    raise UserError(f"layer {n.name!r} is not quantized")
                bits = max(bits, np.dtype(arr.dtype).itemsize * 8)
            else:
                bits = max(bits, dtype.bits)
        acc = max(acc, int(n.attrs["acc_bits"]))
        out = graph.tensors[n.outputs[0]].dtype
        out_bits = max(out_bits, out.bits)
        out_signed = out_signed and out.signed
    if acc > 48:
        raise UserError(f"accumulators of {acc} bits: the array builds at most 48")
    mult = exact_multiplier(bits) if key is None else resolve(*key)
    cfg = _config(
        top, rows, cols, dataflow, mult, acc, out_bits, out_signed,
        options.fault_ports, options.output_stage,
    )  # fmt: skip
    return cfg, mult


def write_rtl(cfg: ArrayConfig, mult: Any, outdir: Path) -> list[Path]:
    """The project of one array (see :func:`write_project`)."""
    return write_project([(cfg, mult)], outdir)


def write_project(arrays: list[tuple[ArrayConfig, Any]], outdir: Path) -> list[Path]:
    """RTL, test benches, file list and synthesis script of a design's arrays."""
    from importlib.resources import files as resources

    rtl = outdir / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    (outdir / "tb").mkdir(exist_ok=True)
    cells = resources("axc.runtime") / "rtl"
    written: list[Path] = []
    benches = []

    def put(name: str, text: str) -> None:
        path = rtl / name
        if path not in written:
            path.write_text(text)
            written.append(path)

    for cfg, mult in arrays:
        for cell in CELLS:
            if cell.startswith(f"axc_pe_{'os' if cfg.dataflow == 'ws' else 'ws'}"):
                continue
            if not cfg.output_stage and cell in ("axc_requant.v", "axc_range.v"):
                continue
            put(cell, (cells / cell).read_text())
        put(f"{mult.identifier()}.v", mult.verilog())
        put(f"{cfg.top}_array.v", array_verilog(cfg))
        put(f"{cfg.top}.v", top_verilog(cfg))
        bench = outdir / "tb" / f"{cfg.top}_tb.v"
        bench.write_text(testbench_verilog(cfg))
        benches.append(bench)
    filelist = outdir / "files.f"
    filelist.write_text("".join(f"rtl/{p.name}\n" for p in written))
    synth = outdir / "synth.ys"
    reads = "".join(f"read_verilog rtl/{p.name}\n" for p in written)
    # one synthesis per array (each a top of its own), its statistics after it
    synth.write_text(
        "design -reset\n".join(
            f"{reads}synth_xilinx -flatten -top {cfg.top}\nstat\n" for cfg, _ in arrays
        )
    )
    return [*written, *benches, filelist, synth]


class SystolicBackend(Backend):
    name = "systolic"
    Options = SystolicOptions
    summary = "a parameterized systolic array in Verilog (RTL simulation with Icarus: axc verify)"

    @staticmethod
    def verify_layers(
        graph: Graph, options: SystolicOptions, x: np.ndarray, work: Path, project: Path
    ) -> dict[str, Any]:
        return verify_layers(graph, options, x, work, project)

    def lower(self, graph: Graph, options: SystolicOptions, outdir: Path) -> Artifacts:
        parts = array_parts(graph, options)
        files = write_project([(p.config, p.multiplier) for p in parts], outdir)
        cfg = parts[0].config
        shape = ArrayShape(cfg.rows, cfg.cols, cfg.dataflow)
        target = graph.metadata.get("target") or {}
        clock = (
            float(target.get("clock_mhz", 200.0)) if target.get("backend") == "systolic" else 200.0
        )
        plan = []
        total = 0
        macs = 0
        on = {n.name: p.config.top for p in parts for n in p.layers}
        for n in linear_layers(graph):
            for n_rows, k, m, group in layer_dims(graph, n):
                cost = gemm_cost(shape, n_rows, k, m)
                total += cost.cycles
                macs += cost.macs
                plan.append(
                    {
                        "layer": n.name,
                        "array": on[n.name],
                        "group": group,
                        "n_per_image": n_rows,
                        "k": k,
                        "m": m,
                        "cycles_per_image": cost.cycles,
                        **cost.to_json(shape, clock),
                    }
                )
        configs = [dataclasses.asdict(p.config) for p in parts]
        (outdir / "layers.json").write_text(
            json.dumps(
                # "array": the first (with one multiplier, the only) array
                {"array": configs[0], "arrays": configs, "clock_mhz": clock, "layers": plan},
                indent=1,
            )
            + "\n"
        )
        files.append(outdir / "layers.json")
        names = [p.multiplier.name if not p.multiplier.params else p.multiplier.identifier()
                 for p in parts]  # fmt: skip
        return Artifacts(
            outdir,
            files,
            {
                "top": ", ".join(p.config.top for p in parts),
                "array": f"{cfg.rows}x{cfg.cols} {cfg.dataflow}"
                + (f" (x{len(parts)}, one per multiplier)" if len(parts) > 1 else ""),
                "multiplier": ", ".join(names),
                "layers": len(on),
                "cycles_per_image": total,
                "latency_us_per_image": round(total / clock, 3),
                # every array idles while another one runs its layers
                "utilization": round(macs / max(1, total * cfg.rows * cfg.cols * len(parts)), 4),
            },
        )


def layer_dims(graph: Graph, node: Any) -> list[tuple[int, int, int, int]]:
    """(N per image, K, M, group) of each product of a layer."""
    import math

    w = graph.constants[node.inputs[1]]
    m = w.shape[0]
    if node.op == "QGemm":
        return [(1, int(np.prod(w.shape[1:])), m, 0)]
    out_shape = graph.tensors[node.outputs[0]].shape
    pixels = math.prod(int(d) for d in out_shape[2:])
    group = int(node.attrs["group"])
    k = int(np.prod(w.shape[1:]))
    return [(pixels, k, m // group, g) for g in range(group)]


# ------------------------------------------------------------- RTL runs
@dataclass
class RtlResult:
    acc: np.ndarray  # (N, M) int64 accumulators (bias included), fault-free
    out: np.ndarray  # (N, M) int64 output codes
    cycles: list[int]  # per tile
    faulty: list[tuple[np.ndarray, np.ndarray]]  # (acc, out) per fault
    traffic: tuple[int, int, int] = (0, 0, 0)  # result rows written, re-read, codes written


def _pack(lanes: np.ndarray, width: int) -> list[str]:
    """Rows of lanes (two's complement, ``width`` bits each, lane 0 lowest) as hex."""
    mask = (1 << width) - 1
    digits = (lanes.shape[1] * width + 3) // 4
    out = []
    for row in lanes.tolist():
        value = 0
        for i, v in enumerate(row):
            value |= (int(v) & mask) << (i * width)
        out.append(f"{value:0{digits}x}")
    return out


def _unpack(text: str, lanes: int, width: int, signed: bool) -> list[int]:
    value = int(text, 16)
    mask = (1 << width) - 1
    out = []
    for i in range(lanes):
        v = (value >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


@dataclass(frozen=True)
class RtlFault:
    """A fault at the RTL's fault ports: register ``kind`` (0 weight, 1 input,
    2 partial sum) of PE (row, col) is written with ((d & and) | or) ^ xor
    during tile cycles first..last of tile ``tile`` (-1: every tile)."""

    kind: int
    row: int
    col: int
    and_mask: int
    or_mask: int
    xor_mask: int
    first: int
    last: int
    tile: int = -1


def _compile(project: Path, cfg: ArrayConfig, work: Path, sizes: dict[str, int]) -> Path:
    from axc.arith.sweep import require_tool

    iverilog = require_tool("iverilog", "simulate the systolic array")
    sources = [str(project / line) for line in (project / "files.f").read_text().split()]
    binary = work / "sim.vvp"
    params = [f"-P{cfg.top}_tb.{k}={max(1, v)}" for k, v in sizes.items()]
    proc = subprocess.run(
        [iverilog, "-g2012", "-o", str(binary), "-s", f"{cfg.top}_tb", *params,
         *sources, str(project / "tb" / f"{cfg.top}_tb.v")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise UserError(f"iverilog could not build the test bench:\n{proc.stderr[-2000:]}")
    return binary


def run_product(
    project: Path,
    cfg: ArrayConfig,
    product: LayerProduct,
    work: Path,
    faults: list[RtlFault] = (),  # type: ignore[assignment]
    restrict: tuple[np.ndarray, np.ndarray, bool] | None = None,
) -> RtlResult:
    """Run one product through the RTL, tile by tile, with Icarus Verilog.
    ``restrict``: per-channel (low, high) bounds and whether outside values
    become zero, for the output stage's range restriction."""
    from axc.arith.sweep import require_tool

    vvp = require_tool("vvp", "simulate the systolic array")
    shape = ArrayShape(cfg.rows, cfg.cols, cfg.dataflow)
    n, k, m = product.shape
    r, c = cfg.rows, cfg.cols
    plan = tiles(shape, n, k, m)
    work.mkdir(parents=True, exist_ok=True)
    x_rows: list[str] = []
    w_rows: list[str] = []
    x_base: dict[int, int] = {}
    w_base: dict[tuple[int, int], int] = {}
    lines = []
    m_tiles = (m + c - 1) // c

    def lanes(block: np.ndarray, width: int, count: int) -> list[str]:
        full = np.zeros((block.shape[0], count), np.int64)
        full[:, : block.shape[1]] = block
        return _pack(full, width)

    for t in plan:
        mt = t.m0 // c
        if cfg.dataflow == "ws":
            key_x = t.k0
            if key_x not in x_base:
                x_base[key_x] = len(x_rows)
                x_rows += lanes(product.x[:, t.k0 : t.k0 + t.k], cfg.a_w, r)
            key_w = (t.m0, t.k0)
            if key_w not in w_base:
                w_base[key_w] = len(w_rows)
                w_rows += lanes(product.w[t.k0 : t.k0 + t.k, t.m0 : t.m0 + t.m], cfg.b_w, c)
            xb, wb, yb = x_base[key_x], w_base[key_w], mt * n
            length, rows = n, t.k
        else:
            key_x = t.n0
            if key_x not in x_base:
                x_base[key_x] = len(x_rows)
                x_rows += lanes(product.x[t.n0 : t.n0 + t.n].T, cfg.a_w, r)
            key_w = (t.m0, 0)
            if key_w not in w_base:
                w_base[key_w] = len(w_rows)
                w_rows += lanes(product.w[:, t.m0 : t.m0 + t.m], cfg.b_w, c)
            xb, wb, yb = x_base[key_x], w_base[key_w], mt * n + t.n0
            length, rows = k, t.n
        lines.append(f"{xb} {wb} {yb} {length} {rows} {int(t.first)} {int(t.last)} {mt}")
    bias = np.zeros((m_tiles, c), np.int64)
    mult = np.zeros((m_tiles, c), np.int64)
    shift = np.ones((m_tiles, c), np.int64)
    low = np.zeros((m_tiles, c), np.int64)
    high = np.zeros((m_tiles, c), np.int64)
    for mt in range(m_tiles):
        sel = slice(mt * c, min(m, (mt + 1) * c))
        width = sel.stop - sel.start
        bias[mt, :width] = product.bias[sel]
        mult[mt, :width] = product.mult[sel]
        shift[mt, :width] = product.shift[sel]
        if restrict is not None:
            low[mt, :width] = np.broadcast_to(restrict[0], (m,))[sel]
            high[mt, :width] = np.broadcast_to(restrict[1], (m,))[sel]
    if restrict is not None and not cfg.output_stage:
        raise UserError("range restriction in the array needs its output stage (output_stage=true)")
    (work / "x.hex").write_text("\n".join(x_rows) + "\n")
    (work / "w.hex").write_text("\n".join(w_rows) + "\n")
    (work / "bias.hex").write_text("\n".join(_pack(bias, cfg.acc_w)) + "\n")
    (work / "mult.hex").write_text("\n".join(_pack(mult, 31)) + "\n")
    (work / "shift.hex").write_text("\n".join(_pack(shift, 6)) + "\n")
    (work / "low.hex").write_text("\n".join(_pack(low, cfg.out_w)) + "\n")
    (work / "high.hex").write_text("\n".join(_pack(high, cfg.out_w)) + "\n")
    mask32 = (1 << 32) - 1
    enable = f"{int(restrict is not None)} {int(bool(restrict and restrict[2]))}"
    header = (
        f"{len(plan)} {product.zero_point & mask32:x} {product.qmin & mask32:x} "
        f"{product.qmax & mask32:x}\n{enable}\n"
    )
    (work / "tiles.txt").write_text(header + "\n".join(lines) + "\n")
    fault_file = work / "faults.txt"
    if faults:
        if not cfg.faults:
            raise UserError("this array has no fault ports (build it with fault_ports=true)")
        acc_mask = (1 << cfg.acc_w) - 1
        fault_file.write_text(
            f"{len(faults)}\n"
            + "".join(
                f"{f.tile} {f.kind} {f.row} {f.col} {f.and_mask & acc_mask:x} "
                f"{f.or_mask & acc_mask:x} {f.xor_mask & acc_mask:x} {f.first:x} {f.last:x}\n"
                for f in faults
            )
        )
    elif fault_file.exists():
        fault_file.unlink()
    sizes = {"XN": len(x_rows), "WN": len(w_rows), "YN": m_tiles * n, "MT": m_tiles}
    binary = _compile(project, cfg, work, sizes)
    proc = subprocess.run(
        [vvp, "-n", str(binary), f"+dir={work}"],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    results = work / "results.txt"
    if proc.returncode != 0 or not results.exists():
        raise UserError(f"the RTL simulation failed:\n{(proc.stderr or proc.stdout)[-2000:]}")
    cycles: list[int] = []
    counted: tuple[int, ...] = (0, 0, 0)
    runs: list[tuple[np.ndarray, np.ndarray]] = []
    current: list[str] = []

    def finish(rows: list[str]) -> None:
        acc = np.zeros((n, m), np.int64)
        out = np.zeros((n, m), np.int64)
        for index, row in enumerate(rows):
            mt, i = divmod(index, n)
            width = min(c, m - mt * c)
            y_text, q_text = row.split()
            acc[i, mt * c : mt * c + width] = _unpack(y_text, c, cfg.acc_w, True)[:width]
            out[i, mt * c : mt * c + width] = _unpack(q_text, c, cfg.out_w, cfg.out_signed)[:width]
        runs.append((acc, out))

    started = False
    for line in results.read_text().splitlines():
        if line.startswith("cycles"):
            cycles.append(int(line.split()[2]))
        elif line.startswith("traffic"):
            counted = tuple(int(v) for v in line.split()[1:4])
        elif line.startswith("run"):
            if started:
                finish(current)
            current, started = [], True
        elif line.strip():
            current.append(line)
    if started:
        finish(current)
    if not runs:
        raise UserError(f"the RTL simulation wrote no results:\n{proc.stdout[-2000:]}")
    return RtlResult(runs[0][0], runs[0][1], cycles, runs[1:], counted)  # type: ignore[arg-type]


def verify_layers(
    graph: Graph,
    options: SystolicOptions,
    x: np.ndarray,
    work: Path,
    project: Path | None = None,
) -> dict[str, Any]:
    """Every conv and GEMM layer of ``graph`` through the RTL, tile by tile, for
    the inputs ``x``, compared bit for bit with the simulator (accumulators
    and output codes), with each tile's cycles against the closed form."""
    from axc.sim import Executor
    from axc.sim.int_kernels import accumulate

    layers = linear_layers(graph)
    parts = array_parts(graph, options, layers)
    if project is None:
        project = work / "project"
        project.mkdir(parents=True, exist_ok=True)
        write_project([(p.config, p.multiplier) for p in parts], project)
    on = {n.name: p.config for p in parts for n in p.layers}
    cfg = parts[0].config
    executor = Executor(graph)
    values: dict[str, np.ndarray] = {}
    guards = {n.name: _range_after(graph, n) if options.output_stage else None for n in layers}
    wanted = {t for n in layers for t in (n.inputs[0], n.outputs[0])}
    wanted |= {g.outputs[0] for g in guards.values() if g is not None}
    executor.run(
        {graph.inputs[0]: x},
        observe=lambda name, value: values.__setitem__(name, value) if name in wanted else None,
    )
    shape = ArrayShape(cfg.rows, cfg.cols, cfg.dataflow)
    report = []
    for index, node in enumerate(linear_layers(graph)):
        cfg = on[node.name]
        step = executor.order.index(node)
        plan = executor.plan(step)
        args = [values[node.inputs[0]]] + [
            graph.constants.get(t) if t else None for t in node.inputs[1:]
        ]
        acc_want = accumulate(plan, node.op, args, int(node.attrs["acc_bits"]))
        guard = guards[node.name]
        restrict = None
        if guard is not None:  # the output stage restricts the range as the graph does
            m_all = int(graph.constants[node.inputs[1]].shape[0])
            low = np.broadcast_to(np.asarray(guard.attrs["low"], np.int64).reshape(-1), (m_all,))
            high = np.broadcast_to(np.asarray(guard.attrs["high"], np.int64).reshape(-1), (m_all,))
            restrict = (low, high, guard.attrs.get("action", "clip") == "zero")
        out_want = np.asarray(values[(guard or node).outputs[0]], np.int64)
        same_acc = same_out = True
        cycles_ok = True
        traffic_ok = True
        cycles = 0
        per_tile: list[int] = []
        for product in layer_products(graph, node, values[node.inputs[0]]):
            part = None
            if restrict is not None:
                mg = product.w.shape[1]
                sel_g = slice(product.group * mg, (product.group + 1) * mg)
                part = (restrict[0][sel_g], restrict[1][sel_g], restrict[2])
            got = run_product(
                project, cfg, product, work / f"layer{index}_g{product.group}", restrict=part
            )
            m = product.w.shape[1]
            sel = slice(product.group * m, (product.group + 1) * m)
            if node.op == "QConv":
                want_a = acc_want[:, sel].reshape(product.images, m, -1)
                want_o = out_want[:, sel].reshape(product.images, m, -1)
            else:
                want_a = acc_want.reshape(-1, acc_want.shape[-1])[:, sel]
                want_o = out_want.reshape(-1, out_want.shape[-1])[:, sel]
            same_acc &= bool(np.array_equal(to_layout(product, got.acc), want_a))
            same_out &= bool(np.array_equal(to_layout(product, got.out), want_o))
            expected: list[Tile] = tiles(shape, *product.shape)
            cycles_ok &= [t.cycles for t in expected] == got.cycles
            cost = gemm_cost(shape, *product.shape)
            c = cfg.cols
            traffic_ok &= got.traffic == (
                cost.y_writes // c,
                cost.y_reads // c,
                cost.out_writes // c,
            )
            cycles += sum(got.cycles)
            per_tile += got.cycles
        report.append(
            {
                "layer": node.name,
                "array": cfg.top,
                "op": node.op,
                "range_restriction": guard is not None,
                "accumulators_equal": same_acc,
                "outputs_equal": same_out,
                "cycles": cycles,
                "tile_cycles": per_tile,
                "cycles_match_model": cycles_ok,
                "traffic_matches_model": traffic_ok,
            }
        )
    return {
        "backend": "systolic",
        "array": f"{cfg.rows}x{cfg.cols} {cfg.dataflow}",
        "multiplier": ", ".join(p.multiplier.identifier() for p in parts),
        "arrays": len(parts),
        "images": int(x.shape[0]),
        "layers": report,
        "bit_exact": all(r["accumulators_equal"] and r["outputs_equal"] for r in report),
        "cycles_match_model": all(r["cycles_match_model"] for r in report),
        "traffic_matches_model": all(r["traffic_matches_model"] for r in report),
    }


def _range_after(graph: Graph, node: Any) -> Any:
    """The RangeRestrict that alone reads ``node``'s output with bounds per
    channel or per tensor (what the output stage can do), if there is one."""
    users = graph.consumers(node.outputs[0])
    if len(users) != 1 or users[0].op != "RangeRestrict":
        return None
    guard = users[0]
    m = int(graph.constants[node.inputs[1]].shape[0])
    for key in ("low", "high"):
        size = np.asarray(guard.attrs[key]).size
        if size not in (1, m):
            return None
    axis = guard.attrs.get("axis")
    if np.asarray(guard.attrs["low"]).size > 1 and axis not in (None, 1, -1):
        return None
    return guard


def lint(project: Path, top: str) -> str:
    """``verilator --lint-only -Wall`` over the design; returns its output (empty when clean)."""
    from axc.arith.sweep import require_tool

    verilator = require_tool("verilator", "lint the generated Verilog")
    sources = [str(project / line) for line in (project / "files.f").read_text().split()]
    proc = subprocess.run(
        [verilator, "--lint-only", "-Wall", "--top-module", top, *sources],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return (proc.stdout + proc.stderr).strip() if proc.returncode != 0 or proc.stderr else ""


def standalone_config(
    rows: int, cols: int, dataflow: str, multiplier: str, bits: int = 8, acc_bits: int = 32
) -> tuple[ArrayConfig, Any]:
    """An array for ``bits``-bit operands without a model (cost tables, sweeps)."""
    from axc.arith.multipliers import exact_multiplier, resolve

    mult = exact_multiplier(bits) if multiplier == "exact" else resolve(multiplier, bits)
    cfg = _config("axc_systolic", rows, cols, dataflow, mult, acc_bits, bits, True, False, True)
    return cfg, mult


def _config(
    top: str,
    rows: int,
    cols: int,
    dataflow: str,
    mult: Any,
    acc_bits: int,
    out_bits: int,
    out_signed: bool,
    faults: bool,
    output_stage: bool,
) -> ArrayConfig:
    """The widths follow the multiplier's ports: operands of ``bits + 1`` bits,
    products of ``2 bits + 2``, accumulators wide enough for one product."""
    a_w, p_w = mult.ports
    return ArrayConfig(
        top=top,
        rows=rows,
        cols=cols,
        dataflow=dataflow,
        a_w=a_w,
        b_w=a_w,
        p_w=p_w,
        acc_w=max(acc_bits, p_w + 1),
        out_w=out_bits,
        out_signed=out_signed,
        multiplier=mult.identifier(),
        faults=faults,
        output_stage=output_stage,
    )


def synthesize_array(
    cfg: ArrayConfig, mult: Any, *, use_cache: bool = True, dsp: bool = True
) -> Any:
    """yosys ``synth_xilinx`` of the generated array (cached, see axc.hw.synth);
    without ``dsp``, with ``-nodsp`` (every multiplier from LUTs)."""
    import tempfile

    from axc.hw.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="axc-array-") as tmp:
        files = write_rtl(cfg, mult, Path(tmp))
        listed = (Path(tmp) / "files.f").read_text().split()
        text = "\n".join((Path(tmp) / name).read_text() for name in listed)
    _ = files
    return synthesize(text, cfg.top, use_cache=use_cache, dsp=dsp)
