"""The Vitis-HLS backend: a compiled, quantized graph as an HLS C++ project.

Layout of what it writes (``outdir``)::

    firmware/axc_model.h       types, sizes, the top function's declaration
    firmware/axc_model.cpp     one function per layer, and the top function
    firmware/weights/*.h       each layer's constants as ROM arrays
    firmware/axc_mul_*.h       the C++ view of each approximate multiplier
    tb/axc_tb.cpp              a testbench: inputs from a file, outputs to a file
    run_hls.tcl                csim, csynth and cosim for those who have Vitis HLS
    build.sh                   g++ csim build without Vitis (docs/backends.md)

Every identifier is derived from the layer's position (``layer3_qconv``),
never from its name; names appear only in comments, with comment delimiters
and line breaks removed. The integer semantics are docs/arithmetic.md's,
operation by operation, so csim equals axc's simulator bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axc.backend import Artifacts, Backend
from axc.errors import UserError
from axc.ir import BATCH, Graph, Node

__all__ = ["HlsBackend", "HlsOptions"]

SUPPORTED = (
    "Quantize",
    "Dequantize",
    "QConv",
    "QGemm",
    "MaxPool",
    "Reshape",
    "RangeRestrict",
    "AbftCheck",
    "Vote",
    "QAdd",
    "QAveragePool",
    "QGlobalAveragePool",
)


@dataclass(frozen=True)
class HlsOptions:
    #: clock period target for csynth, in ns
    clock_ns: float = 5.0
    #: the part for the Tcl script
    part: str = "xc7z020clg400-1"
    #: the reuse factor of layers without a ``reuse`` directive, as hls4ml's: each
    #: multiplier serves that many output channels (0: one multiplier per layer)
    reuse: int = 0

    def __post_init__(self) -> None:
        if not self.clock_ns > 0:
            raise ValueError(f"clock_ns must be positive, got {self.clock_ns}")
        if self.reuse < 0:
            raise ValueError(f"reuse must be 0 (serial) or a factor >= 1, got {self.reuse}")


def comment(text: str) -> str:
    """``text`` safe inside a // comment: printable, one line, no comment delimiters."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    clean = clean.replace("*/", "* /").replace("/*", "/ *").replace("\\", "/")
    return clean[:120] + ("..." if len(clean) > 120 else "")


def _shape(graph: Graph, tensor: str) -> tuple[int, ...]:
    shape = graph.tensors[tensor].shape
    if not shape or shape[0] != BATCH:
        raise UserError(f"tensor {comment(tensor)!r}: the HLS backend needs a batch axis first")
    return tuple(int(d) for d in shape[1:])


def _ctype(graph: Graph, tensor: str) -> str:
    dtype = graph.tensors[tensor].dtype
    if dtype.is_float:
        return "float"
    return f"ap_{'int' if dtype.signed else 'uint'}<{dtype.bits}>"


def _minus(value: int) -> str:
    """``- value`` as a reader writes it: ``- 5``, ``+ 128``."""
    return f"- {value}" if value >= 0 else f"+ {-value}"


def _partition(rom: str, factor: int) -> str:
    if factor <= 1:
        return ""
    return f"    AXC_PRAGMA(HLS ARRAY_PARTITION variable={rom} cyclic factor={factor})\n"


def _rom_type(bits: int) -> str:
    """The narrowest C integer type for a ROM of signed ``bits``-bit words (ap_int
    arrays with initializers trip g++'s -Wuninitialized inside ap_private)."""
    for width in (8, 16, 32):
        if bits <= width:
            return f"int{width}_t"
    return "int64_t"


def _array(name: str, ctype: str, values: np.ndarray) -> str:
    flat = ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
    return f"static const {ctype} {name}[{max(1, values.size)}] = {{{flat or '0'}}};\n"


class _Writer:
    def __init__(self, graph: Graph, options: HlsOptions) -> None:
        self.graph = graph
        self.options = options
        self.layers: list[str] = []
        self.headers: dict[str, str] = {}
        self.multipliers: dict[str, str] = {}
        self.buffers: dict[str, str] = {}  # tensor -> C identifier

    def buffer(self, tensor: str) -> str:
        if tensor not in self.buffers:
            self.buffers[tensor] = f"t{len(self.buffers)}"
        return self.buffers[tensor]

    # ------------------------------------------------------------- layers
    def layer(self, index: int, node: Node) -> str:
        fn = f"layer{index}_{node.op.lower()}"
        body = getattr(self, f"_{node.op.lower()}")(node, fn, index)
        return f"// layer {index}: {comment(node.name)} ({node.op})\n{body}\n"

    def _io(self, node: Node) -> tuple[str, str, str, str, int, int]:
        x, y = node.inputs[0], node.outputs[0]
        nx, ny = math.prod(_shape(self.graph, x)), math.prod(_shape(self.graph, y))
        return _ctype(self.graph, x), _ctype(self.graph, y), x, y, nx, ny

    def _elementwise(self, node: Node, fn: str, body: str, head: str = "") -> str:
        """A layer that maps x[i] to y[i]: ``body`` (one statement) in a pipelined
        loop, after the declarations ``head``."""
        tx, ty, _, _, n, _ = self._io(node)
        return (
            f"static void {fn}(const {tx} x[{n}], {ty} y[{n}]) {{\n"
            f"{head}"
            f"    for (int i = 0; i < {n}; ++i) {{\n"
            f"        AXC_PRAGMA(HLS PIPELINE II=1)\n"
            f"        {body}\n"
            f"    }}\n}}\n"
        )

    def _quantize(self, node: Node, fn: str, index: int) -> str:
        a = node.attrs
        if len(a["scale"]) != 1 or a.get("offset_first"):
            raise UserError(f"layer {comment(node.name)!r}: the HLS backend quantizes per tensor")
        scale = float(np.float32(a["scale"][0]))
        return self._elementwise(
            node,
            fn,
            f"y[i] = axc_quantize(x[i], {scale!r}f, {int(a['zero_point'][0])}, "
            f"{a['qmin']}, {a['qmax']});",
        )

    def _dequantize(self, node: Node, fn: str, index: int) -> str:
        a = node.attrs
        if len(a["scale"]) != 1:
            raise UserError(f"layer {comment(node.name)!r}: the HLS backend dequantizes per tensor")
        scale = float(np.float32(a["scale"][0]))
        return self._elementwise(
            node,
            fn,
            f"y[i] = axc_dequantize((long)x[i], {int(a['zero_point'][0])}, {scale!r}f);",
        )

    def _reshape(self, node: Node, fn: str, index: int) -> str:
        return self._elementwise(node, fn, "y[i] = x[i];  // the same values, a new shape")

    def _rangerestrict(self, node: Node, fn: str, index: int) -> str:
        a = node.attrs
        shape = _shape(self.graph, node.inputs[0])
        per = len(a["high"]) > 1
        inner = math.prod(shape[1:]) if per else 1
        lows = ", ".join(str(int(v)) for v in a["low"])
        highs = ", ".join(str(int(v)) for v in a["high"])
        pick = f"(i / {inner})" if per else "0"
        action = (
            "(v < lo || v > hi) ? 0 : v;" if a.get("action") == "zero" else "axc_clamp(v, lo, hi);"
        )
        head = (
            f"    static const long low[] = {{{lows}}};\n"
            f"    static const long high[] = {{{highs}}};\n"
        )
        body = f"long v = (long)x[i], lo = low[{pick}], hi = high[{pick}];\n        y[i] = {action}"
        return (
            f"// protection: {a.get('mechanism', 'range')} ({a.get('action', 'clip')})\n"
            + self._elementwise(node, fn, body, head)
        )

    def _maxpool(self, node: Node, fn: str, index: int) -> str:
        a = node.attrs
        tx, ty, x, y, n, m = self._io(node)
        c, h, w = _shape(self.graph, x)
        _, oh, ow = _shape(self.graph, y)
        (kh, kw), (sh, sw) = a["kernel_shape"], a["strides"]
        (dh, dw), pads = a["dilations"], a["pads"]
        return (
            f"static void {fn}(const {tx} x[{n}], {ty} y[{m}]) {{\n"
            f"    for (int c = 0; c < {c}; ++c)\n"
            f"        for (int i = 0; i < {oh}; ++i)\n"
            f"            for (int j = 0; j < {ow}; ++j) {{\n"
            f"                AXC_PRAGMA(HLS PIPELINE II=1)\n"
            f"                bool any = false;\n"
            f"                {tx} best = 0;\n"
            f"                for (int u = 0; u < {kh}; ++u)\n"
            f"                    for (int v = 0; v < {kw}; ++v) {{\n"
            f"                        int r = i * {sh} + u * {dh} - {pads[0]};\n"
            f"                        int q = j * {sw} + v * {dw} - {pads[1]};\n"
            f"                        if (r < 0 || r >= {h} || q < 0 || q >= {w}) continue;\n"
            f"                        {tx} value = x[(c * {h} + r) * {w} + q];\n"
            f"                        if (!any || value > best) best = value;\n"
            f"                        any = true;\n"
            f"                    }}\n"
            f"                y[(c * {oh} + i) * {ow} + j] = best;\n"
            f"            }}\n}}\n"
        )

    def _weights(self, node: Node, index: int) -> tuple[str, str, str]:
        """ROM headers of a linear layer: centered weights, bias, requantizer."""
        g = self.graph
        w = g.constants[node.inputs[1]].astype(np.int64)
        zw = np.asarray(node.attrs["w_zero_point"], np.int64).reshape(-1)
        w = w - (zw.reshape((-1,) + (1,) * (w.ndim - 1)) if zw.size > 1 else zw[0])
        bias = node.inputs[2] if len(node.inputs) > 2 else ""
        b = g.constants[bias].astype(np.int64) if bias else np.zeros(w.shape[0], np.int64)
        wbits = max(2, int(np.abs(w).max()).bit_length() + 1)
        req = node.attrs["requant"]
        name = f"w{index}"
        text = f"// constants of layer {index}: {comment(node.name)}\n"
        text += f"// weights: {wbits}-bit signed, centered on their zero point\n"
        text += _array(f"{name}_weight", _rom_type(wbits), w)
        bbits = max(2, int(np.abs(b).max()).bit_length() + 1)
        text += _array(f"{name}_bias", _rom_type(bbits), b)
        m = w.shape[0]
        if req.get("mode") == "float32":
            scale = np.broadcast_to(np.asarray(req["scale"], np.float32), (m,))
            text += (
                f"static const float {name}_scale[{m}] = {{"
                + ", ".join(f"{float(v)!r}f" for v in scale)
                + "};\n"
            )
        else:
            mult = np.broadcast_to(np.asarray(req["multiplier"], np.int64), (m,))
            shift = np.broadcast_to(np.asarray(req["shift"], np.int64), (m,))
            text += _array(f"{name}_mult", "int64_t", mult) + _array(f"{name}_shift", "int", shift)
        self.headers[f"weights/layer{index}.h"] = text
        return name, f"weights/layer{index}.h", req.get("mode", "fixed")

    def _product(self, node: Node) -> str:
        spec = node.annotations.get("multiplier")
        if not spec or spec == "exact":
            return "(long)xc * (long)wc"
        from axc.arith.multipliers import resolve

        m = resolve(str(spec), int(node.annotations.get("multiplier_bits", 8)))
        if m.is_exact:
            return "(long)xc * (long)wc"
        ident = m.identifier()
        self.multipliers[ident] = m.cpp()
        return f"(long){ident}((int32_t)xc, (int32_t)wc)"

    def _finish(self, node: Node, name: str, mode: str, ty: str) -> str:
        req = node.attrs["requant"]
        if mode == "float32":
            return (
                f"axc_requant_float((long)acc, {name}_scale[m], {req['zero_point']}, "
                f"{req['qmin']}, {req['qmax']})"
            )
        return (
            f"axc_requant((long)acc, {name}_mult[m], {name}_shift[m], {req['zero_point']}, "
            f"{req['qmin']}, {req['qmax']})"
        )

    def _abftcheck(self, node: Node, fn: str, index: int) -> str:
        a, g = node.attrs, self.graph
        x, sums = node.inputs[0], node.inputs[1]
        tx = _ctype(g, x)
        n = math.prod(_shape(g, x))
        ns = math.prod(_shape(g, sums))
        ws = g.constants[node.inputs[2]].astype(np.int64)
        bs = (
            g.constants[node.inputs[3]].astype(np.int64)
            if len(node.inputs) > 3 and node.inputs[3]
            else np.zeros(max(1, int(a.get("group", 1))), np.int64)
        )
        name = f"w{index}"
        self.headers[f"weights/layer{index}.h"] = (
            f"// checksum constants of layer {index}: the column sums of the weights, per group\n"
            + _array(f"{name}_wsum", "int64_t", ws)
            + _array(f"{name}_bsum", "int64_t", bs)
        )
        zx, bits = int(a["x_zero_point"]), int(a["acc_bits"])
        head = (
            f'#include "weights/layer{index}.h"\n'
            f"// protection: ABFT checksum; returns 1 when a group's accumulator sum is wrong\n"
            f"static int {fn}(const {tx} x[{n}], const long s[{ns}]) {{\n"
            f"    int flag = 0;\n"
        )
        if a["kind"] == "gemm":
            k = ws.size
            return head + (
                f"    long e = {name}_bsum[0];\n"
                f"    for (int k = 0; k < {k}; ++k)\n"
                f"        e += ((long)x[k] {_minus(zx)}) * {name}_wsum[k];\n"
                f"    flag |= axc_wrap(e, {bits}) != s[0];\n"
                f"    return flag;\n}}\n"
            )
        c, h, w = _shape(g, x)
        groups = int(a["group"])
        _, _, oh, ow = (0, 0, *_shape(g, sums)[1:])
        (kh, kw), (sh, sw) = a["kernel_shape"], a["strides"]
        (dh, dw), pads = a["dilations"], a["pads"]
        cg = c // groups
        return head + (
            f"    for (int g = 0; g < {groups}; ++g)\n"
            f"        for (int i = 0; i < {oh}; ++i)\n"
            f"            for (int j = 0; j < {ow}; ++j) {{\n"
            f"                long e = {name}_bsum[g];\n"
            f"                for (int c = 0; c < {cg}; ++c)\n"
            f"                    for (int u = 0; u < {kh}; ++u)\n"
            f"                        for (int v = 0; v < {kw}; ++v) {{\n"
            f"                            int r = i * {sh} + u * {dh} - {pads[0]};\n"
            f"                            int q = j * {sw} + v * {dw} - {pads[1]};\n"
            f"                            if (r < 0 || r >= {h} || q < 0 || q >= {w}) continue;\n"
            f"                            long xc = (long)x[((g * {cg} + c) * {h} + r) * {w} + q]"
            f" {_minus(zx)};\n"
            f"                            e += xc * {name}_wsum[((g * {cg} + c) * {kh} + u) * {kw}"
            f" + v];\n"
            f"                        }}\n"
            f"                flag |= axc_wrap(e, {bits}) != s[(g * {oh} + i) * {ow} + j];\n"
            f"            }}\n"
            f"    return flag;\n}}\n"
        )

    def _vote(self, node: Node, fn: str, index: int) -> str:
        replicas = [t for t in node.inputs if t]
        t = _ctype(self.graph, replicas[0])
        n = math.prod(_shape(self.graph, replicas[0]))
        params = ", ".join(f"const {t} {v}[{n}]" for v in "abc"[: len(replicas)])
        if len(replicas) == 2:
            body = "        y[i] = a[i];\n        flag |= a[i] != b[i];\n"
            what = "duplication with comparison; returns 1 when the copies differ"
        else:
            body = (
                "        bool ab = a[i] == b[i], ac = a[i] == c[i], bc = b[i] == c[i];\n"
                "        y[i] = (ab || ac) ? a[i] : (bc ? b[i] : a[i]);\n"
                "        flag |= !(ab || ac || bc);\n"
            )
            what = "triplication with a majority voter; returns 1 when no two copies agree"
        return (
            f"// protection: {what}\n"
            f"static int {fn}({params}, {t} y[{n}]) {{\n"
            f"    int flag = 0;\n"
            f"    for (int i = 0; i < {n}; ++i) {{\n"
            f"        AXC_PRAGMA(HLS PIPELINE II=1)\n{body}"
            f"    }}\n    return flag;\n}}\n"
        )

    def _qadd(self, node: Node, fn: str, index: int) -> str:
        a, g = node.attrs, self.graph
        left, right, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if a.get("mode") == "float32" or _shape(g, left) != _shape(g, right):
            raise UserError(
                f"layer {comment(node.name)!r}: the HLS backend adds same-shape tensors with a "
                "fixed-point requantizer"
            )
        n = math.prod(_shape(g, y))
        ta, tb, ty = _ctype(g, left), _ctype(g, right), _ctype(g, y)
        return (
            f"static void {fn}(const {ta} a[{n}], const {tb} b[{n}], {ty} y[{n}]) {{\n"
            f"    for (int i = 0; i < {n}; ++i) {{\n"
            f"        AXC_PRAGMA(HLS PIPELINE II=1)\n"
            f"        y[i] = axc_add((long)a[i], (long)b[i], {a['a_zero_point']}, "
            f"{a['b_zero_point']}, {a['a_multiplier']}, {a['b_multiplier']}, {a['shift']}, "
            f"{a['zero_point']}, {a['qmin']}, {a['qmax']});\n"
            f"    }}\n}}\n"
        )

    def _requant_parts(self, node: Node, value: str, channel: str) -> tuple[str, str]:
        """(declarations, expression): the node's requantizer applied to ``value``,
        per channel when it has several (indexed by ``channel``)."""
        req = node.attrs["requant"]
        if req.get("mode") == "float32":
            scale = np.asarray(req["scale"], np.float32).reshape(-1)
            pick = channel if scale.size > 1 else "0"
            table = ", ".join(f"{float(v)!r}f" for v in scale)
            return (
                f"    static const float scale[{scale.size}] = {{{table}}};\n",
                f"axc_requant_float({value}, scale[{pick}], {req['zero_point']}, "
                f"{req['qmin']}, {req['qmax']})",
            )
        mult = np.asarray(req["multiplier"], np.int64).reshape(-1)
        shift = np.asarray(req["shift"], np.int64).reshape(-1)
        pick = channel if mult.size > 1 else "0"
        return (
            f"    static const long mult[{mult.size}] = {{{', '.join(map(str, mult))}}};\n"
            f"    static const int shift[{shift.size}] = {{{', '.join(map(str, shift))}}};\n",
            f"axc_requant({value}, mult[{pick}], shift[{pick}], {req['zero_point']}, "
            f"{req['qmin']}, {req['qmax']})",
        )

    def _qaveragepool(self, node: Node, fn: str, index: int) -> str:
        a, g = node.attrs, self.graph
        if len(a["kernel_shape"]) != 2:
            raise UserError(f"layer {comment(node.name)!r}: the HLS backend pools in 2-D")
        tx, ty, x, y, n, m = self._io(node)
        c, h, w = _shape(g, x)
        _, oh, ow = _shape(g, y)
        (kh, kw), (sh, sw) = a["kernel_shape"], a["strides"]
        (dh, dw), pads = a.get("dilations", (1, 1)), a["pads"]
        include = 1 if a.get("count_include_pad") else 0
        tables, finish = self._requant_parts(node, "mean", "c")
        # a window position counts when it is in the image, or in the explicit
        # padding with count_include_pad; the ceil-mode extension never counts
        return (
            f"static void {fn}(const {tx} x[{n}], {ty} y[{m}]) {{\n"
            + tables
            + f"    for (int c = 0; c < {c}; ++c)\n"
            f"        for (int i = 0; i < {oh}; ++i)\n"
            f"            for (int j = 0; j < {ow}; ++j) {{\n"
            f"                AXC_PRAGMA(HLS PIPELINE II=1)\n"
            f"                long total = 0, count = 0;\n"
            f"                for (int u = 0; u < {kh}; ++u)\n"
            f"                    for (int v = 0; v < {kw}; ++v) {{\n"
            f"                        int r = i * {sh} + u * {dh} - {pads[0]};\n"
            f"                        int q = j * {sw} + v * {dw} - {pads[1]};\n"
            f"                        bool inside = r >= 0 && r < {h} && q >= 0 && q < {w};\n"
            f"                        bool padded = r >= -{pads[0]} && r < {h + pads[2]} && "
            f"q >= -{pads[1]} && q < {w + pads[3]};\n"
            f"                        if (inside) {{\n"
            f"                            total += (long)x[(c * {h} + r) * {w} + q] "
            f"{_minus(a['x_zero_point'])};\n"
            f"                            count += 1;\n"
            f"                        }} else if (padded) {{\n"
            f"                            count += {include};\n"
            f"                        }}\n"
            f"                    }}\n"
            f"                long mean = axc_divide_round_half_up(total, count);\n"
            f"                y[(c * {oh} + i) * {ow} + j] = {finish};\n"
            f"            }}\n}}\n"
        )

    def _qglobalaveragepool(self, node: Node, fn: str, index: int) -> str:
        a, g = node.attrs, self.graph
        tx, ty, x, _, n, m = self._io(node)
        shape = _shape(g, x)
        c, area = shape[0], math.prod(shape[1:])
        tables, finish = self._requant_parts(node, "mean", "c")
        return (
            f"static void {fn}(const {tx} x[{n}], {ty} y[{m}]) {{\n"
            + tables
            + f"    for (int c = 0; c < {c}; ++c) {{\n"
            f"        long total = 0;\n"
            f"        for (int k = 0; k < {area}; ++k) {{\n"
            f"            AXC_PRAGMA(HLS PIPELINE II=1)\n"
            f"            total += (long)x[c * {area} + k] {_minus(a['x_zero_point'])};\n"
            f"        }}\n"
            f"        long mean = axc_divide_round_half_up(total, {area});\n"
            f"        y[c] = {finish};\n"
            f"    }}\n}}\n"
        )

    def _unroll(self, node: Node, outputs: int) -> int:
        """Output channels in parallel: ceil(M / reuse factor) (the layer's
        ``reuse`` annotation, else the option; 0 means one at a time)."""
        factor = int(node.annotations.get("reuse", self.options.reuse))
        return 1 if factor == 0 else -(-outputs // factor)

    def _qconv(self, node: Node, fn: str, index: int) -> str:
        a = node.attrs
        if len(a["kernel_shape"]) != 2:
            raise UserError(
                f"layer {comment(node.name)!r}: the HLS backend lowers 2-D convolutions"
            )
        tx, ty, x, y, n, total = self._io(node)
        name, header, mode = self._weights(node, index)
        c, h, w = _shape(self.graph, x)
        m, oh, ow = _shape(self.graph, y)
        (kh, kw), (sh, sw) = a["kernel_shape"], a["strides"]
        (dh, dw), pads = a["dilations"], a["pads"]
        groups = a["group"]
        cg, mg = c // groups, m // groups
        unroll = self._unroll(node, m)
        checked = bool(a.get("checksum"))
        sums_param = f", long s[{groups * oh * ow}]" if checked else ""
        sums_init = (
            f"    for (int k = 0; k < {groups * oh * ow}; ++k) s[k] = 0;  // checksum sums\n"
            if checked
            else ""
        )
        sums_add = (
            f"                s[(g * {oh} + i) * {ow} + j] = axc_wrap(s[(g * {oh} + i) * {ow} + j]"
            f" + (long)acc, {a['acc_bits']});\n"
            if checked
            else ""
        )
        return (
            f'#include "{header}"\n'
            f"static void {fn}(const {tx} x[{n}], {ty} y[{total}]{sums_param}) {{\n"
            + _partition(f"{name}_weight", unroll)
            + sums_init
            + f"    for (int i = 0; i < {oh}; ++i)\n"
            f"        for (int j = 0; j < {ow}; ++j)\n"
            f"            for (int m = 0; m < {m}; ++m) {{\n"
            f"                AXC_PRAGMA(HLS UNROLL factor={unroll})\n"
            f"                const int g = m / {mg};\n"
            f"                ap_int<{a['acc_bits']}> acc = {name}_bias[m];  // wraps\n"
            f"                for (int c = 0; c < {cg}; ++c)\n"
            f"                    for (int u = 0; u < {kh}; ++u)\n"
            f"                        for (int v = 0; v < {kw}; ++v) {{\n"
            f"                            AXC_PRAGMA(HLS PIPELINE II=1)\n"
            f"                            int r = i * {sh} + u * {dh} - {pads[0]};\n"
            f"                            int q = j * {sw} + v * {dw} - {pads[1]};\n"
            f"                            bool in = r >= 0 && r < {h} && q >= 0 && q < {w};\n"
            f"                            long xv = in ? (long)x[((g * {cg} + c) * {h} + r) * "
            f"{w} + q] : {a['x_zero_point']};\n"
            f"                            long xc = xv {_minus(a['x_zero_point'])};\n"
            f"                            long wc = {name}_weight[((m * {cg} + c) * {kh} + u) * "
            f"{kw} + v];\n"
            f"                            acc += {self._product(node)};\n"
            f"                        }}\n"
            f"                y[(m * {oh} + i) * {ow} + j] = "
            f"{self._finish(node, name, mode, ty)};\n" + sums_add + "            }\n}\n"
        )

    def _qgemm(self, node: Node, fn: str, index: int) -> str:
        a = node.attrs
        tx, ty, x, y, n, total = self._io(node)
        if len(_shape(self.graph, x)) != 1:
            raise UserError(f"layer {comment(node.name)!r}: the HLS backend lowers (N, K) inputs")
        name, header, mode = self._weights(node, index)
        k = _shape(self.graph, x)[0]
        m = _shape(self.graph, y)[0]
        unroll = self._unroll(node, m)
        checked = bool(a.get("checksum"))
        return (
            f'#include "{header}"\n'
            f"static void {fn}(const {tx} x[{n}], {ty} y[{total}]"
            + (", long s[1]) {\n    s[0] = 0;  // the checksum sum\n" if checked else ") {\n")
            + _partition(f"{name}_weight", unroll)
            + f"    for (int m = 0; m < {m}; ++m) {{\n"
            f"        AXC_PRAGMA(HLS UNROLL factor={unroll})\n"
            f"        ap_int<{a['acc_bits']}> acc = {name}_bias[m];  // wraps\n"
            f"        for (int k = 0; k < {k}; ++k) {{\n"
            f"            AXC_PRAGMA(HLS PIPELINE II=1)\n"
            f"            long xc = (long)x[k] {_minus(a['x_zero_point'])};\n"
            f"            long wc = {name}_weight[m * {k} + k];\n"
            f"            acc += {self._product(node)};\n"
            f"        }}\n"
            f"        y[m] = {self._finish(node, name, mode, ty)};\n"
            + (f"        s[0] = axc_wrap(s[0] + (long)acc, {a['acc_bits']});\n" if checked else "")
            + "    }\n}\n"
        )


PRELUDE = """// Generated by axc. Integer semantics: docs/arithmetic.md.
#pragma once
#include <cmath>
#include <cstdint>
#if defined(__GNUC__) && !defined(__SYNTHESIS__)
// g++ -O2 reports ap_private's own inlined arithmetic as (maybe) uninitialized,
// a false positive inside the vendor header: silenced there, and only there
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "ap_int.h"
#pragma GCC diagnostic pop
#else
#include "ap_int.h"
#endif

#ifdef __SYNTHESIS__
#define AXC_PRAGMA(x) _Pragma(#x)
#else
#define AXC_PRAGMA(x)
#endif

// The fault-injection hook, compiled in with -DAXC_FAULTS and absent (no cost)
// otherwise: element `index` of layer output `site` gets
// ((word & and) | or) ^ xor on its `width`-bit pattern, as axc's fault lists
// describe (docs/faults.md).
#ifdef AXC_FAULTS
struct axc_fault_t {
    int site;
    long index;
    unsigned long and_mask, or_mask, xor_mask;
};
extern axc_fault_t axc_fault;
template <typename T>
static void axc_inject(int site, T* values, long size, int width, bool is_signed) {
    if (site != axc_fault.site || axc_fault.index < 0 || axc_fault.index >= size) return;
    unsigned long full = width >= 64 ? ~0UL : ((1UL << width) - 1);
    unsigned long word = (unsigned long)(long)values[axc_fault.index] & full;
    word = (((word & axc_fault.and_mask) | axc_fault.or_mask) ^ axc_fault.xor_mask) & full;
    long v = (long)word;
    if (is_signed && width < 64 && ((word >> (width - 1)) & 1)) v -= (long)(1UL << width);
    values[axc_fault.index] = v;
}
#endif

#include "axc_arith.h"
"""


class HlsBackend(Backend):
    name = "hls"
    Options = HlsOptions
    summary = "a Vitis-HLS C++ project (csim with g++ and ap_int headers: axc verify)"

    @staticmethod
    def run(project: Path, x: np.ndarray, work: Path) -> np.ndarray:
        """csim: the project built with g++ and run on ``x``."""
        return csim(project, x, work)

    def lower(self, graph: Graph, options: HlsOptions, outdir: Path) -> Artifacts:
        if len(graph.inputs) != 1:
            raise UserError("the HLS backend lowers models with one input")
        order = graph.topological()
        missing = sorted({n.op for n in order if n.op not in SUPPORTED})
        if missing:
            raise UserError(
                f"the HLS backend cannot lower {', '.join(missing)} yet "
                f"(it lowers {', '.join(SUPPORTED)})"
            )
        writer = _Writer(graph, options)
        functions, calls, buffers = [], [], []
        sites: dict[str, int] = {}  # integer layer outputs -> fault site number
        source = graph.inputs[0]
        output = graph.outputs[0]
        n_in = math.prod(_shape(graph, source))
        n_out = math.prod(_shape(graph, output))
        writer.buffers[source] = "in"
        flags = set(graph.metadata.get("due_outputs", []))
        for index, node in enumerate(order):
            functions.append(writer.layer(index, node))
            call = f"layer{index}_{node.op.lower()}"
            if node.op == "AbftCheck":
                args = f"{writer.buffer(node.inputs[0])}, {writer.buffer(node.inputs[1])}"
                calls.append(f"    status |= {call}({args});")
                continue
            ins = [t for t in node.inputs if t and t not in graph.constants]
            if node.op not in ("Vote", "QAdd"):
                ins = ins[:1]
            outs = [t for t in node.outputs if t and t not in flags]
            for t in outs:
                if t == output:
                    writer.buffers[t] = "out"
                else:
                    size = math.prod(_shape(graph, t))
                    ctype = _ctype(graph, t) if t == outs[0] else "long"
                    buffers.append(f"    static {ctype} {writer.buffer(t)}[{size}];")
            args = ", ".join(writer.buffer(t) for t in [*ins, *outs])
            calls.append(f"    {'status |= ' if node.op == 'Vote' else ''}{call}({args});")
            y = outs[0]
            info = graph.tensors[y]
            if not info.dtype.is_float:
                size = math.prod(_shape(graph, y))
                sites[y] = index
                calls.append(
                    f"#ifdef AXC_FAULTS\n    axc_inject({index}, {writer.buffer(y)}, {size}, "
                    f"{info.dtype.bits}, {'true' if info.dtype.signed else 'false'});\n#endif"
                )
        fw = outdir / "firmware"
        (fw / "weights").mkdir(parents=True)
        files = []
        mul_includes = ""
        for ident, code in sorted(writer.multipliers.items()):
            path = fw / f"{ident}.h"
            path.write_text(f"#pragma once\n{code}\n")
            files.append(path)
            mul_includes += f'#include "{ident}.h"\n'
        for rel, text in writer.headers.items():
            path = fw / rel
            path.write_text("#pragma once\n" + text)
            files.append(path)
        from importlib.resources import files as resources

        arith = fw / "axc_arith.h"
        arith.write_text((resources("axc.runtime") / "hls" / "axc_arith.h").read_text())
        files.append(arith)
        header = fw / "axc_model.h"
        header.write_text(
            PRELUDE
            + f"\nconst int AXC_IN = {n_in};\nconst int AXC_OUT = {n_out};\n"
            + "// returns 1 when a protection check flagged the inference (a detected fault)\n"
            + "int axc_top(const float in[AXC_IN], float out[AXC_OUT]);\n"
        )
        body = (
            '#include "axc_model.h"\n'
            + mul_includes
            + "\n".join(functions)
            + "\n// the accelerator: AXI-Stream in and out, AXI-Lite control\n"
            + "int axc_top(const float in[AXC_IN], float out[AXC_OUT]) {\n"
            + "    AXC_PRAGMA(HLS INTERFACE axis port=in)\n"
            + "    AXC_PRAGMA(HLS INTERFACE axis port=out)\n"
            + "    AXC_PRAGMA(HLS INTERFACE s_axilite port=return)\n"
            + "\n".join(buffers)
            + "\n"
            + "\n    int status = 0;\n"
            + "\n".join(calls)
            + "\n    return status;\n}\n"
        )
        model = fw / "axc_model.cpp"
        model.write_text(body)
        tb = outdir / "tb" / "axc_tb.cpp"
        tb.parent.mkdir()
        tb.write_text(TESTBENCH)
        tcl = outdir / "run_hls.tcl"
        tcl.write_text(
            "open_project -reset axc_prj\nset_top axc_top\n"
            'add_files firmware/axc_model.cpp -cflags "-std=c++14"\n'
            'add_files -tb tb/axc_tb.cpp -cflags "-std=c++14 -Ifirmware"\n'
            f"open_solution -reset solution1\nset_part {{{options.part}}}\n"
            f"create_clock -period {options.clock_ns}\n"
            "csim_design -argv {inputs.bin outputs.bin}\ncsynth_design\n"
            "cosim_design -argv {inputs.bin outputs.bin}\nexit\n"
        )
        files += [header, model, tb, tcl]
        return Artifacts(
            outdir,
            files,
            {
                "layers": len(functions),
                "multipliers": sorted(writer.multipliers),
                "fault_sites": sites,
            },
        )


TESTBENCH = """// Testbench: reads N inputs (float32, AXC_IN each) from argv[1], writes the
// N outputs (float32, AXC_OUT each) to argv[2], and to argv[2].status one byte
// per inference: 1 when a protection check flagged it. Built with -DAXC_FAULTS, it
// reads one fault from argv[3] ("site index and_mask or_mask xor_mask", the
// masks in hex) and injects it into every inference.
#include <cstdio>
#include <string>
#include <vector>
#include "axc_model.h"

#ifdef AXC_FAULTS
axc_fault_t axc_fault = {-1, -1, 0, 0, 0};
#endif

int main(int argc, char** argv) {
#ifdef AXC_FAULTS
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s INPUTS.bin OUTPUTS.bin FAULT.txt\\n", argv[0]);
        return 2;
    }
    std::FILE* spec = std::fopen(argv[3], "r");
    if (!spec || std::fscanf(spec, "%d %ld %lx %lx %lx", &axc_fault.site, &axc_fault.index,
                             &axc_fault.and_mask, &axc_fault.or_mask, &axc_fault.xor_mask) != 5) {
        std::fprintf(stderr, "cannot read the fault from %s\\n", argv[3]);
        return 2;
    }
    std::fclose(spec);
#else
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s INPUTS.bin OUTPUTS.bin\\n", argv[0]);
        return 2;
    }
#endif
    std::FILE* in = std::fopen(argv[1], "rb");
    std::FILE* out = std::fopen(argv[2], "wb");
    if (!in || !out) {
        std::fprintf(stderr, "cannot open the input or output file\\n");
        return 2;
    }
    std::string status_name = std::string(argv[2]) + ".status";
    std::FILE* status = std::fopen(status_name.c_str(), "wb");
    if (!status) {
        std::fprintf(stderr, "cannot open %s\\n", status_name.c_str());
        return 2;
    }
    std::vector<float> x(AXC_IN), y(AXC_OUT);
    while (std::fread(x.data(), sizeof(float), AXC_IN, in) == (size_t)AXC_IN) {
        unsigned char flagged = axc_top(x.data(), y.data()) ? 1 : 0;
        std::fwrite(y.data(), sizeof(float), AXC_OUT, out);
        std::fwrite(&flagged, 1, 1, status);
    }
    std::fclose(in);
    std::fclose(out);
    std::fclose(status);
    return 0;
}
"""


def find_ap_headers() -> Path:
    """The folder with ap_int.h (the hls4ml wheel ships Xilinx's open-source headers)."""
    import importlib.util

    spec = importlib.util.find_spec("hls4ml")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = Path(root) / "templates" / "vivado" / "ap_types"
            if (candidate / "ap_int.h").is_file():
                return candidate
    raise UserError(
        "csim needs the ap_int.h headers: pip install --no-deps hls4ml==1.3.0 "
        "(its wheel ships them)"
    )


def csim(
    project: Path, x: np.ndarray, work: Path, fault: tuple[int, int, int, int, int] | None = None
) -> np.ndarray:
    """Build the project's testbench with g++ (once per project and build
    kind, in ``project/build``) and run it on ``x``; the outputs. ``fault``
    (site, index, and, or, xor) uses the build with the fault hook and injects
    that fault into every inference."""
    import shutil
    import subprocess

    gxx = shutil.which("g++")
    if gxx is None:
        raise UserError("csim needs g++: apt install g++ (or build-essential)")
    headers = find_ap_headers()
    build = project / "build"
    build.mkdir(exist_ok=True)
    exe = build / ("axc_csim_faults" if fault is not None else "axc_csim")
    if not exe.exists():
        cmd = [gxx, "-std=c++17", "-O2", "-Wall", "-Werror"]
        if fault is not None:
            cmd.append("-DAXC_FAULTS")
        cmd += [f"-I{project / 'firmware'}", "-isystem", str(headers)]
        cmd += [str(project / "firmware" / "axc_model.cpp"), str(project / "tb" / "axc_tb.cpp")]
        built = subprocess.run([*cmd, "-o", str(exe)], capture_output=True, text=True, check=False)
        if built.returncode:
            raise RuntimeError(f"the generated project does not compile:\n{built.stderr[-4000:]}")
    inputs, outputs = work / "inputs.bin", work / "outputs.bin"
    np.ascontiguousarray(x, np.float32).tofile(inputs)
    argv = [str(exe), str(inputs), str(outputs)]
    if fault is not None:
        spec = work / "fault.txt"
        site, index, and_mask, or_mask, xor_mask = fault
        spec.write_text(f"{site} {index} {and_mask:x} {or_mask:x} {xor_mask:x}\n")
        argv.append(str(spec))
    ran = subprocess.run(argv, capture_output=True, text=True, check=False)
    if ran.returncode:
        raise RuntimeError(f"csim failed: {ran.stderr[-2000:]}")
    return np.fromfile(outputs, np.float32).reshape(len(x), -1)


def csim_status(work: Path) -> np.ndarray:
    """The detection flags (one per inference) of the last :func:`csim` run in ``work``."""
    return np.fromfile(work / "outputs.bin.status", np.uint8)
