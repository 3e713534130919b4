"""One converter per supported ONNX op, lowering it into canonical IR ops.

A converter reads the current ONNX node through the :class:`ImportContext`
and emits zero or more canonical nodes. Opset differences (attributes that
became inputs, changed defaults) are resolved here, so the IR never sees
them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import helper

from axc.arith.requant import float32_requantizer
from axc.frontend.context import ImportContext
from axc.frontend.fold import is_symbolic
from axc.ir.types import FLOAT32, Dim, ElemType, QuantParams

__all__ = ["CONVERTERS", "SUPPORTED_OPS"]

Converter = Callable[[ImportContext], None]
CONVERTERS: dict[str, Converter] = {}

_INT_LIMIT = 2**62


def converts(*ops: str) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for op in ops:
            CONVERTERS[op] = fn
        return fn

    return register


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _ints(value: object) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(value).reshape(-1))


# ------------------------------------------------------------------ windows
def _window_attrs(
    ctx: ImportContext, spatial: Sequence[Dim], kernel: Sequence[int], ceil_mode: bool = False
) -> dict[str, object]:
    nd = len(kernel)
    strides = tuple(ctx.attr("strides", [1] * nd))
    dilations = tuple(ctx.attr("dilations", [1] * nd))
    pads = list(ctx.attr("pads", [0] * (2 * nd)))
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            size = spatial[i]
            if isinstance(size, str):
                ctx.fail("SAME padding over a symbolic spatial size")
            assert isinstance(size, int)
            out = math.ceil(size / strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small, large = total // 2, total - total // 2
            pads[i], pads[nd + i] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad != "NOTSET":
        ctx.fail(f"unknown auto_pad {auto_pad!r}")
    return {
        "kernel_shape": tuple(int(k) for k in kernel),
        "strides": tuple(map(int, strides)),
        "pads": tuple(map(int, pads)),
        "dilations": tuple(map(int, dilations)),
        **({"ceil_mode": ceil_mode} if ceil_mode is not None else {}),
    }


@converts("Conv")
def _conv(ctx: ImportContext) -> None:
    node = ctx.current
    x_shape, w_shape = ctx.shape(node.input[0]), ctx.shape(node.input[1])
    kernel = ctx.attr("kernel_shape") or [int(d) for d in w_shape[2:]]
    attrs = _window_attrs(ctx, x_shape[2:], kernel)
    del attrs["ceil_mode"]
    attrs["group"] = int(ctx.attr("group", 1))
    attrs["activation"] = None
    inputs = list(node.input[:3])
    ctx.emit("Conv", inputs, attrs, outputs=[node.output[0]])


def _pool(ctx: ImportContext, op: str) -> None:
    node = ctx.current
    if len(node.output) > 1 and node.output[1]:
        ctx.fail("the Indices output of MaxPool is not supported")
    x_shape = ctx.shape(node.input[0])
    attrs = _window_attrs(
        ctx, x_shape[2:], ctx.attr("kernel_shape"), ceil_mode=bool(ctx.attr("ceil_mode", 0))
    )
    if op == "AveragePool":
        attrs["count_include_pad"] = bool(ctx.attr("count_include_pad", 0))
        # onnxruntime runs AveragePool of opsets before 19 on its MLAS kernel,
        # which sums a window column by column; from opset 19 on, row-major
        attrs["sum_order"] = "columns" if ctx.opset < 19 else "rows"
    ctx.emit(op, [node.input[0]], attrs, outputs=[node.output[0]])


converts("MaxPool")(lambda ctx: _pool(ctx, "MaxPool"))
converts("AveragePool")(lambda ctx: _pool(ctx, "AveragePool"))


@converts("GlobalAveragePool", "GlobalMaxPool", "Relu", "Sigmoid", "Tanh", "HardSwish")
def _plain(ctx: ImportContext) -> None:
    node = ctx.current
    ctx.emit(node.op_type, [node.input[0]], {}, outputs=[node.output[0]])


@converts("LeakyRelu")
def _leaky(ctx: ImportContext) -> None:
    node = ctx.current
    ctx.emit(
        "LeakyRelu",
        [node.input[0]],
        {"alpha": float(ctx.attr("alpha", 0.01))},
        outputs=[node.output[0]],
    )


@converts("HardSigmoid")
def _hard_sigmoid(ctx: ImportContext) -> None:
    node = ctx.current
    attrs = {"alpha": float(ctx.attr("alpha", 0.2)), "beta": float(ctx.attr("beta", 0.5))}
    ctx.emit("HardSigmoid", [node.input[0]], attrs, outputs=[node.output[0]])


@converts("LRN")
def _lrn(ctx: ImportContext) -> None:
    node = ctx.current
    attrs = {
        "size": int(ctx.attr("size")),
        "alpha": float(ctx.attr("alpha", 1e-4)),
        "beta": float(ctx.attr("beta", 0.75)),
        "bias": float(ctx.attr("bias", 1.0)),
    }
    ctx.emit("LRN", [node.input[0]], attrs, outputs=[node.output[0]])


def _scalar(value: np.ndarray | None, is_int: bool) -> float | int | None:
    if value is None or value.size == 0:
        return None
    item = value.reshape(-1)[0]
    return int(item) if is_int else float(item)


@converts("Clip")
def _clip(ctx: ImportContext) -> None:
    node = ctx.current
    is_int = not ctx.dtype(node.input[0]).is_float
    if ctx.opset < 11:
        low, high = ctx.attr("min"), ctx.attr("max")
        attrs = {
            "min": None if low is None else float(low),
            "max": None if high is None else float(high),
        }
    else:
        attrs = {
            "min": _scalar(ctx.numeric(1, "minimum"), is_int),
            "max": _scalar(ctx.numeric(2, "maximum"), is_int),
        }
    ctx.emit("Clip", [node.input[0]], attrs, outputs=[node.output[0]])


@converts("Softmax")
def _softmax(ctx: ImportContext) -> None:
    node = ctx.current
    rank = len(ctx.shape(node.input[0]))
    if ctx.opset < 13:
        axis = _axis(int(ctx.attr("axis", 1)), rank)
        axes = tuple(range(axis, rank))
    else:
        axes = (_axis(int(ctx.attr("axis", -1)), rank),)
    ctx.emit("Softmax", [node.input[0]], {"axes": axes}, outputs=[node.output[0]])


# --------------------------------------------------------------- arithmetic
@converts("Add", "Sub", "Mul", "Div")
def _binary(ctx: ImportContext) -> None:
    node = ctx.current
    ctx.emit(node.op_type, list(node.input[:2]), {}, outputs=[node.output[0]])


@converts("Sum")
def _sum(ctx: ImportContext) -> None:
    node = ctx.current
    if len(node.input) == 1:
        ctx.bind(node.output[0], ctx.operand(node.input[0]))
        return
    acc = node.input[0]
    for k, operand in enumerate(node.input[1:], start=1):
        last = k == len(node.input) - 1
        acc = ctx.emit(
            "Add",
            [acc, operand],
            {},
            outputs=[node.output[0]] if last else None,
            suffix="" if last else f".add{k}",
        )[0]


@converts("Gemm")
def _gemm(ctx: ImportContext) -> None:
    node = ctx.current
    trans_a, trans_b = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    a, b = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 else ""
    b_value = ctx.value(b)
    if b_value is not None and not is_symbolic(b_value) and (alpha != 1.0 or not trans_b):
        weight = b_value if trans_b else b_value.T
        if alpha != 1.0:
            weight = (weight * alpha).astype(b_value.dtype)
            alpha = 1.0
        b = ctx.constant_operand(np.ascontiguousarray(weight), "weight")
        trans_b = True
    c_value = ctx.value(c)
    if c_value is not None and not is_symbolic(c_value):
        n = int(ctx.shape(b)[0] if trans_b else ctx.shape(b)[1])
        bias = c_value * beta if beta != 1.0 else c_value
        vector = bias.size == 1 or (bias.ndim >= 1 and bias.shape[-1] == n and bias.size == n)
        if vector and (beta != 1.0 or bias.shape != (n,)):
            bias = np.broadcast_to(bias.reshape(-1), (n,)).astype(c_value.dtype)
            c = ctx.constant_operand(np.ascontiguousarray(bias), "bias")
        elif beta != 1.0:
            c = ctx.constant_operand(np.ascontiguousarray(bias), "bias")
        beta = 1.0
    attrs = {
        "trans_a": trans_a,
        "trans_b": trans_b,
        "alpha": alpha,
        "beta": beta,
        "activation": None,
    }
    ctx.emit("Gemm", [a, b, c] if c else [a, b], attrs, outputs=[node.output[0]])


@converts("MatMul")
def _matmul(ctx: ImportContext) -> None:
    node = ctx.current
    ctx.emit("MatMul", list(node.input[:2]), {}, outputs=[node.output[0]])


@converts("BatchNormalization")
def _batchnorm(ctx: ImportContext) -> None:
    node = ctx.current
    if int(ctx.attr("training_mode", 0)) or any(o for o in node.output[1:]):
        ctx.fail("training-mode BatchNormalization (extra outputs) is not supported")
    x = node.input[0]
    rank = len(ctx.shape(x))
    params = [
        ctx.numeric(i, what)
        for i, what in enumerate(("input", "scale", "bias", "mean", "variance"))
        if i > 0
    ]
    scale, bias, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
    eps = float(ctx.attr("epsilon", 1e-5))
    mul = scale / np.sqrt(var + eps)
    add = bias - mean * mul
    channel_shape = (-1,) + (1,) * (rank - 2)
    dtype = ctx.dtype(x).numpy_dtype()
    m = ctx.constant_operand(mul.astype(dtype).reshape(channel_shape), "bn_scale")
    a = ctx.constant_operand(add.astype(dtype).reshape(channel_shape), "bn_shift")
    scaled = ctx.emit("Mul", [x, m], {}, suffix=".scale")[0]
    ctx.emit("Add", [scaled, a], {}, outputs=[node.output[0]])


# ------------------------------------------------------------------- shapes
@converts("Identity")
def _identity(ctx: ImportContext) -> None:
    node = ctx.current
    ctx.bind(node.output[0], ctx.operand(node.input[0]))


@converts("Dropout")
def _dropout(ctx: ImportContext) -> None:
    node = ctx.current
    ctx.bind(node.output[0], ctx.operand(node.input[0]))
    if len(node.output) > 1 and node.output[1]:
        shape = ctx.shape(node.input[0])
        if any(isinstance(d, str) for d in shape):
            ctx.fail("the mask output needs a static shape")
        mask = np.ones(tuple(int(d) for d in shape), dtype=np.bool_)
        ctx.values[node.output[1]] = mask


def _reshape_to(ctx: ImportContext, target: Sequence[Dim]) -> None:
    node = ctx.current
    if tuple(target) == tuple(ctx.shape(node.input[0])):
        ctx.bind(node.output[0], ctx.operand(node.input[0]))
        return
    ctx.emit("Reshape", [node.input[0]], {"shape": tuple(target)}, outputs=[node.output[0]])


def _resolve_reshape(
    ctx: ImportContext, source: Sequence[Dim], spec: Sequence[object], allowzero: bool
) -> list[Dim]:
    out: list[Dim | None] = []
    for i, d in enumerate(spec):
        if isinstance(d, str):
            out.append(d)
        elif int(d) == 0 and not allowzero:  # type: ignore[call-overload]
            if i >= len(source):
                ctx.fail(f"shape entry {i} copies a dimension the input lacks")
            out.append(source[i])
        elif int(d) == -1:  # type: ignore[call-overload]
            out.append(None)
        else:
            out.append(int(d))  # type: ignore[call-overload]
    syms_in = [d for d in source if isinstance(d, str)]
    known_in = math.prod(d for d in source if isinstance(d, int))
    syms_out = [d for d in out if isinstance(d, str)]
    known_out = math.prod(d for d in out if isinstance(d, int))
    if out.count(None) > 1:
        ctx.fail("more than one -1 in the target shape")
    if None in out:
        if len(syms_out) == len(syms_in):
            if known_out == 0 or known_in % known_out:
                ctx.fail(f"cannot reshape {tuple(source)} into {tuple(spec)}")
            out[out.index(None)] = known_in // known_out
        elif len(syms_out) + 1 == len(syms_in) and known_in == known_out:
            out[out.index(None)] = syms_in[0]
        else:
            ctx.fail(
                f"reshape of {tuple(source)} into {tuple(spec)} mixes the batch dimension "
                "with other dimensions"
            )
    elif len(syms_out) != len(syms_in) or known_in != known_out:
        ctx.fail(f"cannot reshape {tuple(source)} into {tuple(spec)}")
    return [d for d in out if d is not None]


@converts("Reshape")
def _reshape(ctx: ImportContext) -> None:
    node = ctx.current
    spec = ctx.require_value(1, "target shape")
    assert spec is not None
    source = ctx.shape(node.input[0])
    _reshape_to(
        ctx, _resolve_reshape(ctx, source, list(spec.reshape(-1)), bool(ctx.attr("allowzero", 0)))
    )


def _merge(ctx: ImportContext, dims: Sequence[Dim]) -> Dim:
    syms = [d for d in dims if isinstance(d, str)]
    known = math.prod(d for d in dims if isinstance(d, int))
    if not syms:
        return known
    if len(syms) == 1 and known == 1:
        return syms[0]
    ctx.fail("it merges the batch dimension with other dimensions")
    raise AssertionError


@converts("Flatten")
def _flatten(ctx: ImportContext) -> None:
    node = ctx.current
    shape = ctx.shape(node.input[0])
    axis = _axis(int(ctx.attr("axis", 1)), len(shape))
    _reshape_to(ctx, [_merge(ctx, shape[:axis]), _merge(ctx, shape[axis:])])


def _axes_operand(ctx: ImportContext) -> list[int] | None:
    if ctx.opset < 13:
        axes = ctx.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    value = ctx.numeric(1, "axes")
    return None if value is None else [int(a) for a in value.reshape(-1)]


@converts("Squeeze")
def _squeeze(ctx: ImportContext) -> None:
    node = ctx.current
    shape = ctx.shape(node.input[0])
    axes = _axes_operand(ctx)
    drop = (
        {i for i, d in enumerate(shape) if d == 1}
        if axes is None
        else {_axis(a, len(shape)) for a in axes}
    )
    for a in drop:
        if shape[a] != 1:
            ctx.fail(f"cannot squeeze axis {a} of size {shape[a]}")
    _reshape_to(ctx, [d for i, d in enumerate(shape) if i not in drop])


@converts("Unsqueeze")
def _unsqueeze(ctx: ImportContext) -> None:
    node = ctx.current
    shape = list(ctx.shape(node.input[0]))
    axes = _axes_operand(ctx) or []
    rank = len(shape) + len(axes)
    for a in sorted(_axis(a, rank) for a in axes):
        shape.insert(a, 1)
    _reshape_to(ctx, shape)


@converts("Transpose")
def _transpose(ctx: ImportContext) -> None:
    node = ctx.current
    rank = len(ctx.shape(node.input[0]))
    perm = tuple(int(p) for p in ctx.attr("perm", list(range(rank))[::-1]))
    ctx.emit("Transpose", [node.input[0]], {"perm": perm}, outputs=[node.output[0]])


@converts("Concat")
def _concat(ctx: ImportContext) -> None:
    node = ctx.current
    rank = len(ctx.shape(node.input[0]))
    axis = _axis(int(ctx.attr("axis")), rank)
    ctx.emit("Concat", list(node.input), {"axis": axis}, outputs=list(node.output[:1]))


@converts("Split")
def _split(ctx: ImportContext) -> None:
    node = ctx.current
    shape = ctx.shape(node.input[0])
    axis = _axis(int(ctx.attr("axis", 0)), len(shape))
    length = shape[axis]
    if isinstance(length, str):
        ctx.fail("it splits the batch dimension")
    assert isinstance(length, int)
    count = len(node.output)
    if ctx.opset < 13:
        split = ctx.attr("split")
        sizes = list(split) if split else None
    else:
        value = ctx.numeric(1, "split sizes")
        sizes = None if value is None else [int(s) for s in value.reshape(-1)]
        if sizes is None and ctx.opset >= 18 and ctx.attr("num_outputs") is not None:
            count = int(ctx.attr("num_outputs"))
    if sizes is None:
        chunk = -(-length // count)
        sizes = [min(chunk, length - k * chunk) for k in range(count)]
    ctx.emit(
        "Split",
        [node.input[0]],
        {"axis": axis, "sizes": tuple(int(s) for s in sizes)},
        outputs=list(node.output),
    )


@converts("Slice")
def _slice(ctx: ImportContext) -> None:
    node = ctx.current
    rank = len(ctx.shape(node.input[0]))
    if ctx.opset < 10:
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        axes = list(ctx.attr("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = _ints(ctx.numeric(1, "starts"))  # type: ignore[assignment]
        ends = _ints(ctx.numeric(2, "ends"))  # type: ignore[assignment]
        axes_v, steps_v = ctx.numeric(3, "axes"), ctx.numeric(4, "steps")
        axes = list(range(len(starts))) if axes_v is None else list(_ints(axes_v))
        steps = [1] * len(starts) if steps_v is None else list(_ints(steps_v))
    clamp = lambda v: max(-_INT_LIMIT, min(_INT_LIMIT, int(v)))  # noqa: E731
    attrs = {
        "starts": tuple(clamp(s) for s in starts),
        "ends": tuple(clamp(e) for e in ends),
        "axes": tuple(_axis(int(a), rank) for a in axes),
        "steps": tuple(int(s) for s in steps),
    }
    ctx.emit("Slice", [node.input[0]], attrs, outputs=[node.output[0]])


@converts("Pad")
def _pad(ctx: ImportContext) -> None:
    node = ctx.current
    rank = len(ctx.shape(node.input[0]))
    mode = ctx.attr("mode", "constant")
    if ctx.opset < 11:
        pads = [int(p) for p in ctx.attr("pads")]
        value: float | int = float(ctx.attr("value", 0.0))
    else:
        pads = list(_ints(ctx.numeric(1, "pads")))
        fill = ctx.numeric(2, "constant value")
        value = _scalar(fill, not ctx.dtype(node.input[0]).is_float) or 0
        axes_v = ctx.numeric(3, "axes") if ctx.opset >= 18 else None
        if axes_v is not None:
            axes = [_axis(int(a), rank) for a in axes_v.reshape(-1)]
            full = [0] * (2 * rank)
            for k, a in enumerate(axes):
                full[a], full[rank + a] = pads[k], pads[len(axes) + k]
            pads = full
    if mode not in ("constant", "reflect", "edge", "wrap"):
        ctx.fail(f"unknown pad mode {mode!r}")
    ctx.emit(
        "Pad",
        [node.input[0]],
        {"pads": tuple(pads), "mode": mode, "value": value},
        outputs=[node.output[0]],
    )


@converts("Gather")
def _gather(ctx: ImportContext) -> None:
    node = ctx.current
    shape = ctx.shape(node.input[0])
    axis = _axis(int(ctx.attr("axis", 0)), len(shape))
    indices = ctx.numeric(1, "indices")
    assert indices is not None
    size = shape[axis]
    if isinstance(size, str):
        ctx.fail("it gathers along the batch dimension")
    idx = np.where(indices < 0, indices + size, indices).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= int(size)):
        ctx.fail(f"indices out of range for axis of size {size}")
    const = ctx.constant_operand(idx, "indices")
    ctx.emit("Gather", [node.input[0], const], {"axis": axis}, outputs=[node.output[0]])


@converts("Shape")
def _shape(ctx: ImportContext) -> None:
    node = ctx.current
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    start = int(ctx.attr("start", 0))
    end = ctx.attr("end")
    start = min(max(start + rank if start < 0 else start, 0), rank)
    stop = rank if end is None else min(max(int(end) + rank if int(end) < 0 else int(end), 0), rank)
    dims = list(shape[start:stop])
    if any(isinstance(d, str) for d in dims):
        value = np.array(dims, dtype=object)
    else:
        value = np.array(dims, dtype=np.int64)
    ctx.values[node.output[0]] = value


_QTYPES = {np.dtype(t): t for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)}


def _quant_operands(ctx: ImportContext, rank: int) -> tuple[dict[str, object], np.dtype]:
    """Scale, zero point and axis of a QuantizeLinear/DequantizeLinear node."""
    scale = ctx.numeric(1, "scale")
    zero = ctx.numeric(2, "zero point")
    if scale is None:
        ctx.fail("it has no scale")
    assert scale is not None
    if ctx.attr("block_size", 0):
        ctx.fail("blocked quantization (block_size) cannot be represented")
    if zero is None:
        out_type = ctx.attr("output_dtype", 0)
        zero = np.zeros(
            scale.shape, np.uint8 if not out_type else helper.tensor_dtype_to_np_dtype(out_type)
        )
    if zero.dtype not in _QTYPES:
        ctx.fail(
            f"quantized type {zero.dtype} is not supported (int8, uint8, int16, uint16, int32)"
        )
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        ctx.fail("scales must be positive and finite")
    axis = _axis(int(ctx.attr("axis", 1)), rank) if scale.size > 1 else None
    info = np.iinfo(zero.dtype)
    attrs: dict[str, object] = {
        "scale": tuple(float(v) for v in scale.astype(np.float32).reshape(-1)),
        "zero_point": tuple(int(v) for v in zero.reshape(-1)),
        "axis": axis,
        "qmin": int(info.min),
        "qmax": int(info.max),
    }
    return attrs, zero.dtype


@converts("QuantizeLinear")
def _quantize_linear(ctx: ImportContext) -> None:
    node = ctx.current
    attrs, dtype = _quant_operands(ctx, len(ctx.shape(node.input[0])))
    if ctx.attr("saturate", 1) == 0:
        ctx.fail("saturate=0 applies to float8 only")
    (out,) = ctx.emit(
        "Quantize",
        [node.input[0]],
        attrs,
        outputs=[node.output[0]],
        dtype=ElemType.from_numpy(dtype),
    )
    axis = attrs["axis"]
    ctx.graph.tensors[out].quant = _params(
        attrs["scale"], attrs["zero_point"], axis if isinstance(axis, int) else None
    )


@converts("DequantizeLinear")
def _dequantize_linear(ctx: ImportContext) -> None:
    node = ctx.current
    attrs, _ = _quant_operands(ctx, len(ctx.shape(node.input[0])))
    attrs = {k: attrs[k] for k in ("scale", "zero_point", "axis")}
    ctx.emit("Dequantize", [node.input[0]], attrs, outputs=[node.output[0]], dtype=FLOAT32)


def _zero_point(ctx: ImportContext, index: int, like: np.ndarray | None, what: str) -> np.ndarray:
    value = ctx.numeric(index, what)
    if value is None:
        return np.zeros(1, like.dtype if like is not None else np.uint8)
    return value


def _identity_int32() -> dict[str, object]:
    """Requantizer that passes an int32 accumulator through unchanged."""
    return {
        "multiplier": (1 << 30,),
        "shift": (30,),
        "zero_point": 0,
        "qmin": -(1 << 31),
        "qmax": (1 << 31) - 1,
    }


def _linear_integer(
    ctx: ImportContext,
    op: str,
    x: str,
    weight: np.ndarray,
    x_zero: np.ndarray,
    w_zero: np.ndarray,
    bias: np.ndarray | None,
    requant: dict[str, object],
    out_dtype: np.dtype,
    window: dict[str, object] | None,
    scales: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    output: str | None = None,
) -> str:
    """Emit QConv/QGemm into IR tensor ``output`` (by default the node's first
    output) and return its name. ``scales`` (x_scale, w_scale, y_scale,
    y_zero) are recorded on the tensors, so the graph can be exported as QDQ
    again."""
    node = ctx.current
    if x_zero.size != 1:
        ctx.fail("per-row input zero points are not supported")
    inputs = [x, ctx.constant_operand(weight, "weight_q")]
    if bias is not None:
        inputs.append(ctx.constant_operand(bias.astype(np.int32), "bias_q"))
    attrs: dict[str, object] = {
        **(window or {}),
        "x_zero_point": int(x_zero.reshape(-1)[0]),
        "w_zero_point": _w_zero_points(w_zero),
        "acc_bits": 32,
        "requant": requant,
    }
    (out,) = ctx.emit(
        op,
        inputs,
        attrs,
        outputs=[output] if output is not None else [node.output[0]],
        suffix=".conv" if output is not None else "",
        dtype=ElemType.from_numpy(out_dtype),
    )
    if scales is None:
        return out
    x_scale, w_scale, y_scale, y_zero = scales
    tensors = ctx.graph.tensors
    if tensors[ctx.ir(x)].quant is None:
        tensors[ctx.ir(x)].quant = _params(x_scale, x_zero, None)
    count = weight.shape[0]
    per_channel = w_scale.size > 1 or w_zero.size > 1
    tensors[inputs[1]].quant = _params(
        np.broadcast_to(w_scale.reshape(-1), (count,)) if per_channel else w_scale,
        np.broadcast_to(w_zero.reshape(-1), (count,)) if per_channel else w_zero,
        0 if per_channel else None,
    )
    tensors[out].quant = _params(y_scale, y_zero, None)
    return out


def _params(scale: Any, zero: Any, axis: int | None) -> QuantParams:
    return QuantParams(
        tuple(float(v) for v in np.asarray(scale, np.float32).reshape(-1)),
        tuple(int(v) for v in np.asarray(zero).reshape(-1)),
        axis,
    )


def _w_zero_points(w_zero: np.ndarray) -> tuple[int, ...]:
    """Per-channel weight zero points, or one when they are all equal."""
    values = tuple(int(z) for z in w_zero.reshape(-1))
    return values if len(set(values)) > 1 else values[:1]


def _conv_window(ctx: ImportContext, x: str, weight: np.ndarray) -> dict[str, object]:
    kernel = ctx.attr("kernel_shape") or [int(d) for d in weight.shape[2:]]
    window = _window_attrs(ctx, ctx.shape(x)[2:], kernel)
    del window["ceil_mode"]
    window["group"] = int(ctx.attr("group", 1))
    return window


def _float32_scale(*parts: np.ndarray) -> np.ndarray:
    x_scale, w_scale, y_scale = (np.asarray(p, np.float32).reshape(-1) for p in parts)
    return (x_scale * w_scale).astype(np.float32) / y_scale


@converts("QLinearConv")
def _qlinear_conv(ctx: ImportContext) -> None:
    _qlinear_conv_nchw(ctx, ctx.current.input[0], None)


@converts("com.microsoft.QLinearConv")
def _microsoft_qlinear_conv(ctx: ImportContext) -> None:
    """onnxruntime's QLinearConv with ``channels_last=1`` (NHWC), which its
    layout optimizer writes: the same arithmetic between two transposes."""
    node = ctx.current
    if not int(ctx.attr("channels_last", 0)):
        _qlinear_conv_nchw(ctx, node.input[0], None)
        return
    rank = len(ctx.shape(node.input[0]))
    to_nchw = (0, rank - 1, *range(1, rank - 1))
    to_nhwc = (0, *range(2, rank), 1)
    (x,) = ctx.emit("Transpose", [node.input[0]], {"perm": to_nchw}, suffix=".nchw")
    y = _qlinear_conv_nchw(ctx, x, ctx.graph.unique_name(f"{ctx.node_name}.nchw_out"))
    ctx.emit("Transpose", [y], {"perm": to_nhwc}, outputs=[node.output[0]])


def _qlinear_conv_nchw(ctx: ImportContext, x: str, output: str | None) -> str:
    x_scale, x_zero = ctx.numeric(1, "x scale"), _zero_point(ctx, 2, None, "x zero point")
    weight = ctx.numeric(3, "weights")
    w_scale, w_zero = ctx.numeric(4, "w scale"), _zero_point(ctx, 5, weight, "w zero point")
    y_scale, y_zero = ctx.numeric(6, "y scale"), _zero_point(ctx, 7, None, "y zero point")
    bias = ctx.numeric(8, "bias")
    assert weight is not None and x_scale is not None and w_scale is not None
    assert y_scale is not None
    info = np.iinfo(y_zero.dtype)
    requant = float32_requantizer(
        _float32_scale(x_scale, w_scale, y_scale), int(y_zero.reshape(-1)[0]), info.min, info.max
    )
    return _linear_integer(
        ctx,
        "QConv",
        x,
        weight,
        x_zero,
        w_zero,
        bias,
        requant,
        y_zero.dtype,
        _conv_window(ctx, x, weight),
        (x_scale, w_scale, y_scale, y_zero),
        output,
    )


@converts("ConvInteger")
def _conv_integer(ctx: ImportContext) -> None:
    node = ctx.current
    weight = ctx.numeric(1, "weights")
    assert weight is not None
    x_zero = _zero_point(ctx, 2, None, "x zero point")
    w_zero = _zero_point(ctx, 3, weight, "w zero point")
    _linear_integer(
        ctx,
        "QConv",
        node.input[0],
        weight,
        x_zero,
        w_zero,
        None,
        _identity_int32(),
        np.dtype(np.int32),
        _conv_window(ctx, node.input[0], weight),
    )


def _matmul_weight(
    ctx: ImportContext, weight: np.ndarray, zero: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if weight.ndim != 2:
        ctx.fail("only a 2-D constant right-hand operand is supported")
    if zero.size not in (1, weight.shape[1]):
        ctx.fail("zero points of the right-hand operand must be per tensor or per column")
    return np.ascontiguousarray(weight.T), zero


@converts("QLinearMatMul")
def _qlinear_matmul(ctx: ImportContext) -> None:
    node = ctx.current
    a_scale, a_zero = ctx.numeric(1, "a scale"), _zero_point(ctx, 2, None, "a zero point")
    weight = ctx.numeric(3, "b")
    b_scale, b_zero = ctx.numeric(4, "b scale"), _zero_point(ctx, 5, weight, "b zero point")
    y_scale, y_zero = ctx.numeric(6, "y scale"), _zero_point(ctx, 7, None, "y zero point")
    assert weight is not None and a_scale is not None and b_scale is not None
    assert y_scale is not None
    info = np.iinfo(y_zero.dtype)
    requant = float32_requantizer(
        _float32_scale(a_scale, b_scale, y_scale), int(y_zero.reshape(-1)[0]), info.min, info.max
    )
    if weight.ndim == 3:
        return _batched_matmul(ctx, weight, a_zero, b_zero, requant, y_zero.dtype)
    w, w_zero = _matmul_weight(ctx, weight, b_zero)
    _linear_integer(
        ctx,
        "QGemm",
        node.input[0],
        w,
        a_zero,
        w_zero,
        None,
        requant,
        y_zero.dtype,
        None,
        (a_scale, b_scale, y_scale, y_zero),
    )


def _batched_matmul(
    ctx: ImportContext,
    weight: np.ndarray,
    a_zero: np.ndarray,
    b_zero: np.ndarray,
    requant: dict[str, object],
    out_dtype: np.dtype,
) -> None:
    """A (B, M, K) by a constant B (B, K, N): one QGemm per batch, concatenated."""
    node = ctx.current
    a_shape = ctx.shape(node.input[0])
    if len(a_shape) != 3 or a_shape[0] != weight.shape[0]:
        ctx.fail(f"batched operands {tuple(a_shape)} and {weight.shape} must share the batch")
    parts = []
    for b in range(weight.shape[0]):
        piece = ctx.emit(
            "Slice",
            [node.input[0]],
            {"starts": (b,), "ends": (b + 1,), "axes": (0,), "steps": (1,)},
            suffix=f".slice{b}",
        )[0]
        w, w_zero = _matmul_weight(ctx, weight[b], b_zero)
        name = ctx.graph.unique_name(f"{ctx.node_name}.part{b}")
        ctx.emit(
            "QGemm",
            [piece, ctx.constant_operand(w, f"weight{b}_q")],
            {
                "x_zero_point": int(a_zero.reshape(-1)[0]),
                "w_zero_point": _w_zero_points(w_zero),
                "acc_bits": 32,
                "requant": requant,
            },
            outputs=[name],
            dtype=ElemType.from_numpy(out_dtype),
        )
        parts.append(name)
    ctx.emit("Concat", parts, {"axis": 0}, outputs=[node.output[0]])


@converts("com.microsoft.QGemm")
def _microsoft_qgemm(ctx: ImportContext) -> None:
    """onnxruntime's QGemm contrib op (its QOperator format writes it for Gemm)."""
    node = ctx.current
    if int(ctx.attr("transA", 0)):
        ctx.fail("transA=1 is not supported")
    a_scale, a_zero = ctx.numeric(1, "a scale"), _zero_point(ctx, 2, None, "a zero point")
    weight = ctx.numeric(3, "b")
    b_scale, b_zero = ctx.numeric(4, "b scale"), _zero_point(ctx, 5, weight, "b zero point")
    bias = ctx.numeric(6, "bias")
    y_scale = ctx.numeric(7, "y scale")
    if y_scale is None:
        ctx.fail("a float output (no y_scale) is not supported")
    y_zero = _zero_point(ctx, 8, None, "y zero point")
    assert weight is not None and a_scale is not None and b_scale is not None
    assert y_scale is not None
    alpha = np.float32(ctx.attr("alpha", 1.0))
    w = weight if int(ctx.attr("transB", 0)) else np.ascontiguousarray(weight.T)
    info = np.iinfo(y_zero.dtype)
    scale = (_float32_scale(a_scale, b_scale, y_scale) * alpha).astype(np.float32)
    requant = float32_requantizer(scale, int(y_zero.reshape(-1)[0]), info.min, info.max)
    _linear_integer(
        ctx,
        "QGemm",
        node.input[0],
        w,
        a_zero,
        b_zero,
        bias,
        requant,
        y_zero.dtype,
        None,
        (a_scale, b_scale, y_scale, y_zero),
    )


@converts("com.microsoft.QLinearAdd")
def _microsoft_qlinear_add(ctx: ImportContext) -> None:
    """onnxruntime's QLinearAdd, with the arithmetic of its x86 kernel:
    ``round_half_even(fma(a, ra, fma(b, rb, fixed)))`` in float32, where
    ``ra = a_scale / c_scale``, ``rb = b_scale / c_scale`` and
    ``fixed = c_zp - (ra * a_zp + rb * b_zp)``."""
    node = ctx.current
    a_scale, a_zero = ctx.numeric(1, "a scale"), _zero_point(ctx, 2, None, "a zero point")
    b_scale, b_zero = ctx.numeric(4, "b scale"), _zero_point(ctx, 5, None, "b zero point")
    c_scale, c_zero = ctx.numeric(6, "c scale"), _zero_point(ctx, 7, None, "c zero point")
    assert a_scale is not None and b_scale is not None and c_scale is not None
    f32 = np.float32
    ra = f32(f32(a_scale.reshape(-1)[0]) / f32(c_scale.reshape(-1)[0]))
    rb = f32(f32(b_scale.reshape(-1)[0]) / f32(c_scale.reshape(-1)[0]))
    za, zb, zc = (int(z.reshape(-1)[0]) for z in (a_zero, b_zero, c_zero))
    fixed = f32(f32(zc) - f32(f32(ra * f32(za)) + f32(rb * f32(zb))))
    info = np.iinfo(c_zero.dtype)
    attrs = {
        "mode": "float32",
        "a_ratio": float(ra),
        "b_ratio": float(rb),
        "fixed": float(fixed),
        "a_zero_point": za,
        "b_zero_point": zb,
        "a_multiplier": 0,
        "b_multiplier": 0,
        "shift": 1,
        "zero_point": zc,
        "qmin": int(info.min),
        "qmax": int(info.max),
    }
    (out,) = ctx.emit(
        "QAdd",
        [node.input[0], node.input[3]],
        attrs,
        outputs=[node.output[0]],
        dtype=ElemType.from_numpy(c_zero.dtype),
    )
    ctx.graph.tensors[out].quant = _params(c_scale, c_zero, None)


def _per_tensor(scale: np.ndarray, zero: np.ndarray, saturate: bool = False) -> dict[str, Any]:
    """Dequantize (or, with ``saturate``, Quantize) attributes for one scale and
    zero point; Quantize saturates to the zero point's integer type."""
    attrs: dict[str, Any] = {
        "scale": (float(np.float32(scale.reshape(-1)[0])),),
        "zero_point": (int(zero.reshape(-1)[0]),),
        "axis": None,
    }
    if saturate:
        info = np.iinfo(zero.dtype)
        attrs.update(qmin=int(info.min), qmax=int(info.max))
    return attrs


@converts("com.microsoft.QLinearAveragePool")
def _microsoft_qlinear_average_pool(ctx: ImportContext) -> None:
    """onnxruntime's QLinearAveragePool: dequantize, average in float32 (row by
    row), then ``round_half_even(y / y_scale + y_zero_point)``."""
    node = ctx.current
    if int(ctx.attr("channels_last", 0)):
        ctx.fail("channels_last=1 is not supported")
    x_scale, x_zero = ctx.numeric(1, "x scale"), _zero_point(ctx, 2, None, "x zero point")
    y_scale, y_zero = ctx.numeric(3, "y scale"), _zero_point(ctx, 4, None, "y zero point")
    assert x_scale is not None and y_scale is not None
    x_shape = ctx.shape(node.input[0])
    window = _window_attrs(
        ctx, x_shape[2:], ctx.attr("kernel_shape"), ceil_mode=bool(ctx.attr("ceil_mode", 0))
    )
    window["count_include_pad"] = bool(ctx.attr("count_include_pad", 0))
    d_attrs = _per_tensor(x_scale, x_zero)
    (real,) = ctx.emit("Dequantize", [node.input[0]], d_attrs, suffix=".dequantize", dtype=FLOAT32)
    (mean,) = ctx.emit("AveragePool", [real], window, suffix=".average")
    q_attrs = {**_per_tensor(y_scale, y_zero, saturate=True), "offset_first": True}
    (out,) = ctx.emit(
        "Quantize",
        [mean],
        q_attrs,
        outputs=[node.output[0]],
        dtype=ElemType.from_numpy(y_zero.dtype),
    )
    ctx.graph.tensors[out].quant = _params(y_scale, y_zero, None)


@converts("com.microsoft.QLinearGlobalAveragePool")
def _microsoft_qlinear_global_average_pool(ctx: ImportContext) -> None:
    """onnxruntime's QLinearGlobalAveragePool: the integer sum of x - x_zp over
    the image, then ``round_half_even(float32(sum) * s) + y_zp`` with
    ``s = float32(x_scale / float32(y_scale * N))``, N the image size. That is a
    depthwise QConv with a window of the whole image, weights 1 and the
    float32 requantizer, which axc runs and exports as it is."""
    node = ctx.current
    if int(ctx.attr("channels_last", 0)):
        ctx.fail("channels_last=1 is not supported")
    x_scale, x_zero = ctx.numeric(1, "x scale"), _zero_point(ctx, 2, None, "x zero point")
    y_scale, y_zero = ctx.numeric(3, "y scale"), _zero_point(ctx, 4, None, "y zero point")
    assert x_scale is not None and y_scale is not None
    shape = ctx.shape(node.input[0])
    channels, spatial = int(shape[1]), [int(d) for d in shape[2:]]
    size = int(np.prod(spatial))
    s = np.float32(x_scale.reshape(-1)[0]) / (np.float32(y_scale.reshape(-1)[0]) * np.float32(size))
    info = np.iinfo(y_zero.dtype)
    requant = float32_requantizer(
        np.array([s], np.float32), int(y_zero.reshape(-1)[0]), info.min, info.max
    )
    nd = len(spatial)
    window: dict[str, object] = {
        "kernel_shape": tuple(spatial),
        "strides": (1,) * nd,
        "pads": (0,) * (2 * nd),
        "dilations": (1,) * nd,
        "group": channels,
    }
    ones = np.ones((channels, 1, *spatial), np.int8)
    _linear_integer(
        ctx,
        "QConv",
        node.input[0],
        ones,
        x_zero,
        np.zeros(1, np.int8),
        None,
        requant,
        y_zero.dtype,
        window,
    )
    ctx.graph.tensors[ctx.ir(node.output[0])].quant = _params(y_scale, y_zero, None)


@converts("com.microsoft.QLinearConcat")
def _microsoft_qlinear_concat(ctx: ImportContext) -> None:
    """onnxruntime's QLinearConcat (Y_scale, Y_zp, then X, X_scale, X_zp per
    input): an input with the output's scale and zero point is copied; any
    other goes through a table onnxruntime builds as dequantize-then-quantize
    in float32, i.e. Dequantize and Quantize here, then an integer Concat."""
    node = ctx.current
    if (len(node.input) - 2) % 3 or len(node.input) < 5:
        ctx.fail("expected Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input")
    y_scale, y_zero = ctx.numeric(0, "y scale"), _zero_point(ctx, 1, None, "y zero point")
    assert y_scale is not None
    y_attrs = _per_tensor(y_scale, y_zero)
    parts: list[str] = []
    for i in range(2, len(node.input), 3):
        x = node.input[i]
        x_scale, x_zero = ctx.numeric(i + 1, "x scale"), _zero_point(ctx, i + 2, None, "x zp")
        assert x_scale is not None
        d_attrs = _per_tensor(x_scale, x_zero)
        if d_attrs == y_attrs and x_zero.dtype == y_zero.dtype:
            parts.append(x)
            continue
        (real,) = ctx.emit("Dequantize", [x], d_attrs, suffix=f".dequantize{i // 3}", dtype=FLOAT32)
        q_attrs = _per_tensor(y_scale, y_zero, saturate=True)
        (q,) = ctx.emit(
            "Quantize",
            [real],
            q_attrs,
            suffix=f".requantize{i // 3}",
            dtype=ElemType.from_numpy(y_zero.dtype),
        )
        parts.append(q)
    rank = len(ctx.shape(parts[0]))
    axis = _axis(int(ctx.attr("axis")), rank)
    (out,) = ctx.emit(
        "Concat",
        parts,
        {"axis": axis},
        outputs=[node.output[0]],
        dtype=ElemType.from_numpy(y_zero.dtype),
    )
    ctx.graph.tensors[out].quant = _params(y_scale, y_zero, None)


@converts("MatMulInteger")
def _matmul_integer(ctx: ImportContext) -> None:
    node = ctx.current
    weight = ctx.numeric(1, "b")
    assert weight is not None
    a_zero = _zero_point(ctx, 2, None, "a zero point")
    b_zero = _zero_point(ctx, 3, weight, "b zero point")
    w, w_zero = _matmul_weight(ctx, weight, b_zero)
    _linear_integer(
        ctx,
        "QGemm",
        node.input[0],
        w,
        a_zero,
        w_zero,
        None,
        _identity_int32(),
        np.dtype(np.int32),
        None,
    )


@converts("ConstantOfShape")
def _constant_of_shape(ctx: ImportContext) -> None:
    # reached only when the shape is computed: that is an error
    ctx.require_value(0, "shape")
    raise AssertionError("ConstantOfShape with a constant shape is folded")


# Ops that are always folded (they have no operands).
FOLD_ONLY = ("Constant",)

SUPPORTED_OPS: tuple[str, ...] = tuple(
    sorted({op for op in CONVERTERS if "." not in op} | set(FOLD_ONLY))
)
#: onnxruntime contrib ops (domain com.microsoft) axc imports
MICROSOFT_OPS: tuple[str, ...] = tuple(
    sorted(op.split(".")[-1] for op in CONVERTERS if op.startswith("com.microsoft."))
)


def element_type(elem: int) -> ElemType:
    return ElemType.from_numpy(helper.tensor_dtype_to_np_dtype(elem))
