"""QONNX ``Quant``/``IntQuant`` nodes (what Brevitas exports).

    q = round_half_even(clamp(x / scale + zero_point, min_int, max_int))
    y = (q - zero_point) * scale

with ``min_int``/``max_int`` from ``bitwidth``, ``signed`` and ``narrow``,
in float32 (qonnx's reference). On a computed tensor this becomes a Quantize
(of that width and range) followed by a Dequantize. On a constant (weights)
it is folded, and the integers are remembered so that QDQ fusion can run the
layer on them. What cannot be represented exactly is refused: rounding
modes other than half-to-even, non-integer zero points, bit widths outside
2..16 (including 1-bit bipolar quantization) and scales that vary along more
than one axis.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from axc.frontend.context import ImportContext
from axc.ir import FLOAT32, ElemType, QuantParams

__all__ = ["QONNX_DOMAINS", "qonnx_quant"]

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn")


def _limits(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - (1 if narrow else 0)


def _axis(ctx: ImportContext, scale: np.ndarray, rank: int) -> int | None:
    if scale.size == 1:
        return None
    shape = (1,) * (rank - scale.ndim) + scale.shape
    axes = [i for i, d in enumerate(shape) if d != 1]
    if len(axes) != 1:
        ctx.fail(f"a scale of shape {scale.shape} varies along several axes")
    return axes[0]


def qonnx_quant(ctx: ImportContext, known: bool) -> None:
    node = ctx.current
    if node.op_type not in ("Quant", "IntQuant"):
        ctx.fail(f"QONNX op {node.op_type} is not supported (Quant and IntQuant are)")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = attrs.get("rounding_mode", b"ROUND")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode.upper() not in ("ROUND", "HALF_EVEN"):
        ctx.fail(f"rounding mode {mode} cannot be represented (axc rounds half to even)")
    scale = ctx.numeric(1, "scale")
    zero = ctx.numeric(2, "zero point")
    bitwidth = ctx.numeric(3, "bit width")
    assert scale is not None and zero is not None and bitwidth is not None
    if bitwidth.size != 1 or float(bitwidth.reshape(-1)[0]) != int(bitwidth.reshape(-1)[0]):
        ctx.fail(f"bit width {bitwidth.reshape(-1)} must be a single integer")
    bits = int(bitwidth.reshape(-1)[0])
    if not 2 <= bits <= 16:
        ctx.fail(f"{bits}-bit quantization cannot be represented (widths 2 to 16)")
    if np.any(zero != np.round(zero)):
        ctx.fail("non-integer zero points cannot be represented")
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        ctx.fail("scales must be positive and finite")
    signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    qmin, qmax = _limits(bits, signed, narrow)
    elem = ElemType("int", bits, signed)
    x = node.input[0]
    rank = len(ctx.shape(x))
    axis = _axis(ctx, scale, rank)
    scales = scale.astype(np.float32).reshape(-1)
    zeros = np.broadcast_to(zero.reshape(-1), scales.shape).astype(np.int64)
    if known:
        value = ctx.value(x)
        assert value is not None
        s = scale.astype(np.float32)
        q = np.round(np.clip(value.astype(np.float32) / s + zero.astype(np.float32), qmin, qmax))
        result = ((q - zero.astype(np.float32)) * s).astype(np.float32)
        ctx.values[node.output[0]] = result
        ints = q.astype(elem.numpy_dtype())
        ctx.dequantized[node.output[0]] = (ints, scales, zeros.astype(ints.dtype), axis)
        return
    scale_values = tuple(float(v) for v in scales)
    zero_values = tuple(int(v) for v in zeros)
    q_attrs = {
        "scale": scale_values,
        "zero_point": zero_values,
        "axis": axis,
        "qmin": qmin,
        "qmax": qmax,
    }
    (q_name,) = ctx.emit("Quantize", [x], q_attrs, suffix=".quantize", dtype=elem)
    ctx.graph.tensors[q_name].quant = QuantParams(scale_values, zero_values, axis)
    d_attrs = {k: q_attrs[k] for k in ("scale", "zero_point", "axis")}
    ctx.emit("Dequantize", [q_name], d_attrs, outputs=[node.output[0]], dtype=FLOAT32)
