"""The canonical op set: operands, attributes and output shapes.

Import lowers every ONNX op into this set (docs/ir.md lists it). Each op's
schema says how many operands it takes, which attributes it carries and how
its output shapes follow from its input shapes, so that import and
:func:`axc.ir.verify` compute shapes by the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from axc.ir.types import Dim, Shape

__all__ = ["ACTIVATIONS", "OPS", "OpSchema", "ShapeError", "infer_shapes", "pool_output_dim"]

ACTIVATIONS = (None, "relu")


class ShapeError(ValueError):
    """Operand shapes an op cannot take."""


@dataclass(frozen=True)
class OpSchema:
    name: str
    inputs: tuple[str, ...]  # a trailing "?" marks optional, a trailing "*" variadic
    attrs: dict[str, str]  # attribute name -> a short type description for docs and verify
    doc: str
    shape: Callable[[dict[str, Any], Sequence[Shape]], list[Shape]]
    outputs: int = 1  # -1: as many as the "sizes" attribute says

    def arity(self) -> tuple[int, int | None]:
        required = sum(1 for i in self.inputs if not i.endswith(("?", "*")))
        variadic = any(i.endswith("*") for i in self.inputs)
        return required, None if variadic else len(self.inputs)


def _static(d: Dim, what: str) -> int:
    if isinstance(d, str):
        raise ShapeError(f"{what} depends on the symbolic batch dimension")
    return d


def _same(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    return [tuple(shapes[0])]


def broadcast(a: Shape, b: Shape) -> Shape:
    out: list[Dim] = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(f"shapes {tuple(a)} and {tuple(b)} do not broadcast")
    return tuple(reversed(out))


def _binary(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    return [broadcast(shapes[0], shapes[1])]


def pool_output_dim(
    size: int, k: int, stride: int, pad_begin: int, pad_end: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a sliding window, with ONNX's rule that in ceil mode
    the last window must start inside the input or its left padding."""
    span = size + pad_begin + pad_end - dilation * (k - 1) - 1
    if span < 0:
        raise ShapeError(f"window of {dilation * (k - 1) + 1} is larger than padded input {size}")
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _window(attrs: dict[str, Any], shapes: Sequence[Shape], channels: Dim) -> list[Shape]:
    x = shapes[0]
    nd = len(attrs["kernel_shape"])
    if len(x) != nd + 2:
        raise ShapeError(f"input of rank {len(x)} for a {nd}-D window")
    spatial = []
    for i in range(nd):
        spatial.append(
            pool_output_dim(
                _static(x[2 + i], "a spatial size"),
                attrs["kernel_shape"][i],
                attrs["strides"][i],
                attrs["pads"][i],
                attrs["pads"][nd + i],
                attrs["dilations"][i],
                bool(attrs.get("ceil_mode", False)),
            )
        )
    return [(x[0], channels, *spatial)]


def _conv(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    x, w = shapes[0], shapes[1]
    group = attrs["group"]
    if _static(x[1], "channel count") != _static(w[1], "weight") * group:
        raise ShapeError(f"input has {x[1]} channels, weight expects {w[1]} x {group} groups")
    if _static(w[0], "filters") % group:
        raise ShapeError(f"{w[0]} filters do not split into {group} groups")
    if tuple(w[2:]) != tuple(attrs["kernel_shape"]):
        raise ShapeError(f"weight {tuple(w)} does not match kernel_shape {attrs['kernel_shape']}")
    if len(shapes) > 2 and shapes[2] and tuple(shapes[2]) != (w[0],):
        raise ShapeError(f"bias of shape {tuple(shapes[2])} for {w[0]} filters")
    return _window(attrs, shapes, w[0])


def _pool(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    return _window(attrs, shapes, shapes[0][1])


def _global_pool(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    x = shapes[0]
    return [(x[0], x[1], *([1] * (len(x) - 2)))]


def _gemm(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    a, b = shapes[0], shapes[1]
    if len(a) != 2 or len(b) != 2:
        raise ShapeError("Gemm takes 2-D operands")
    m, ka = (a[1], a[0]) if attrs["trans_a"] else (a[0], a[1])
    kb, n = (b[1], b[0]) if attrs["trans_b"] else (b[0], b[1])
    if ka != kb:
        raise ShapeError(f"Gemm reduction lengths differ: {ka} and {kb}")
    if len(shapes) > 2 and shapes[2] is not None:
        broadcast((m, n), shapes[2])
    return [(m, n)]


def _qgemm(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    a, w = shapes[0], shapes[1]
    if len(a) < 2 or len(w) != 2 or a[-1] != w[1]:
        raise ShapeError(f"QGemm takes (..., K) by (N, K), got {tuple(a)} and {tuple(w)}")
    out: list[Shape] = [(*a[:-1], w[0])]
    if attrs.get("checksum"):
        out.append((*a[:-1], 1))
    return out


def _qconv(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    out = _conv(attrs, shapes)
    if attrs.get("checksum"):
        y = out[0]
        out.append((y[0], attrs["group"], *y[2:]))
    return out


def _flag(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    return [(shapes[0][0],)]


def _vote(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    if any(tuple(s) != tuple(shapes[0]) for s in shapes[1:]):
        raise ShapeError(f"replicas disagree in shape: {[tuple(s) for s in shapes]}")
    return [tuple(shapes[0]), (shapes[0][0],)]


def _matmul(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    a, b = list(shapes[0]), list(shapes[1])
    drop_a, drop_b = len(a) == 1, len(b) == 1
    if drop_a:
        a = [1, *a]
    if drop_b:
        b = [*b, 1]
    if a[-1] != b[-2]:
        raise ShapeError(f"MatMul reduction lengths differ: {a[-1]} and {b[-2]}")
    out = [*broadcast(tuple(a[:-2]), tuple(b[:-2])), a[-2], b[-1]]
    if drop_a:
        del out[-2]
    if drop_b:
        del out[-1]
    return [tuple(out)]


def _reshape(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    target = tuple(attrs["shape"])
    if _numel(shapes[0]) != _numel(target):
        raise ShapeError(f"cannot reshape {tuple(shapes[0])} into {target}")
    return [target]


def _numel(shape: Shape) -> object:
    sym = tuple(d for d in shape if isinstance(d, str))
    return sym, math.prod(d for d in shape if isinstance(d, int))


def _transpose(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    perm = attrs["perm"]
    if sorted(perm) != list(range(len(shapes[0]))):
        raise ShapeError(f"perm {perm} is not a permutation of rank {len(shapes[0])}")
    return [tuple(shapes[0][p] for p in perm)]


def _concat(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    axis = attrs["axis"]
    first = list(shapes[0])
    total = 0
    for s in shapes:
        if len(s) != len(first) or any(s[i] != first[i] for i in range(len(s)) if i != axis):
            raise ShapeError(f"Concat operands {[tuple(x) for x in shapes]} differ off axis {axis}")
        total += _static(s[axis], "a Concat along the batch axis")
    first[axis] = total
    return [tuple(first)]


def _split(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    axis, sizes = attrs["axis"], attrs["sizes"]
    if sum(sizes) != _static(shapes[0][axis], "a Split along the batch axis"):
        raise ShapeError(f"split sizes {sizes} do not add up to {shapes[0][axis]}")
    return [tuple(s if i != axis else n for i, s in enumerate(shapes[0])) for n in sizes]


def slice_length(size: int, start: int, end: int, step: int) -> int:
    return len(range(*slice(start, end, step).indices(size)))


def _slice(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    out = list(shapes[0])
    for start, end, axis, step in zip(
        attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"], strict=True
    ):
        out[axis] = slice_length(_static(out[axis], "a Slice of the batch axis"), start, end, step)
    return [tuple(out)]


def _pad(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    x, pads = shapes[0], attrs["pads"]
    r = len(x)
    out = []
    for i, d in enumerate(x):
        if pads[i] == 0 and pads[r + i] == 0:
            out.append(d)
        else:
            out.append(_static(d, "padding the batch axis") + pads[i] + pads[r + i])
    return [tuple(out)]


def _gather(attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    x, idx, axis = shapes[0], shapes[1], attrs["axis"]
    return [(*x[:axis], *idx, *x[axis + 1 :])]


_W = "kernel_shape: ints; strides: ints; pads: ints (all begins, then all ends); dilations: ints"
_A = {"activation": "None | 'relu' (fused activation)"}
_POOL = {k.split(":")[0].strip(): "ints" for k in _W.split(";")}

OPS: dict[str, OpSchema] = {}


def _op(
    name: str,
    inputs: tuple[str, ...],
    attrs: dict[str, str],
    doc: str,
    shape: Callable[[dict[str, Any], Sequence[Shape]], list[Shape]] = _same,
    outputs: int = 1,
) -> None:
    OPS[name] = OpSchema(name, inputs, attrs, doc, shape, outputs)


_op(
    "Conv",
    ("X", "W", "B?"),
    {**_POOL, "group": "int", **_A},
    "N-D convolution (grouped and depthwise included) with optional bias and fused activation.",
    _conv,
)
_op(
    "Gemm",
    ("A", "B", "C?"),
    {"trans_a": "bool", "trans_b": "bool", "alpha": "float", "beta": "float", **_A},
    "Y = alpha * op(A) @ op(B) + beta * C. Constant weights are stored as (N, K) with "
    "trans_b = True, alpha = beta = 1.",
    _gemm,
)
_op("MatMul", ("A", "B"), {}, "numpy-style batched matrix product.", _matmul)
for _name in ("Add", "Sub", "Mul", "Div"):
    _op(
        _name,
        ("A", "B"),
        {},
        f"Elementwise {_name.lower()} with numpy broadcasting. Integer Div truncates toward zero."
        if _name == "Div"
        else f"Elementwise {_name.lower()} with numpy broadcasting.",
        _binary,
    )
_op("Relu", ("X",), {}, "max(x, 0).")
_op("LeakyRelu", ("X",), {"alpha": "float"}, "x if x >= 0 else alpha * x.")
_op("Clip", ("X",), {"min": "number | None", "max": "number | None"}, "Saturate to [min, max].")
_op("Sigmoid", ("X",), {}, "1 / (1 + exp(-x)).")
_op("Tanh", ("X",), {}, "tanh(x).")
_op("HardSigmoid", ("X",), {"alpha": "float", "beta": "float"}, "clip(alpha * x + beta, 0, 1).")
_op("HardSwish", ("X",), {}, "x * clip(x / 6 + 1 / 2, 0, 1).")
_op(
    "Softmax",
    ("X",),
    {"axes": "ints (normalized over these axes together)"},
    "exp(x) / sum(exp(x)) over the given trailing axes.",
)
_op(
    "LRN",
    ("X",),
    {"size": "int", "alpha": "float", "beta": "float", "bias": "float"},
    "Local response normalization across channels.",
)
_op(
    "MaxPool", ("X",), {**_POOL, "ceil_mode": "bool"}, "Max over each window; pads are -inf.", _pool
)
_op(
    "AveragePool",
    ("X",),
    {**_POOL, "ceil_mode": "bool", "count_include_pad": "bool", "sum_order": "str"},
    "Mean over each window. sum_order 'rows' (the default) adds the window one "
    "element at a time in row-major order; 'columns' first sums each position of "
    "the last window axis over the other axes, then adds these partial sums in "
    "order (onnxruntime's kernel for opsets before 19).",
    _pool,
)
_op("GlobalAveragePool", ("X",), {}, "Mean over all spatial positions.", _global_pool)
_op("GlobalMaxPool", ("X",), {}, "Max over all spatial positions.", _global_pool)
_op(
    "Reshape",
    ("X",),
    {"shape": "dims (the output shape; 'N' is the batch)"},
    "Reinterpret the shape (Flatten, Squeeze and Unsqueeze import as Reshape).",
    _reshape,
)
_op("Transpose", ("X",), {"perm": "ints"}, "Permute the axes.", _transpose)
_op("Concat", ("X*",), {"axis": "int (non-negative)"}, "Join along an axis.", _concat)
_op(
    "Split",
    ("X",),
    {"axis": "int (non-negative)", "sizes": "ints"},
    "Cut along an axis into pieces of the given sizes.",
    _split,
    outputs=-1,
)
_op(
    "Slice",
    ("X",),
    {"starts": "ints", "ends": "ints", "axes": "ints", "steps": "ints"},
    "Python-style strided slice per axis.",
    _slice,
)
_op(
    "Pad",
    ("X",),
    {
        "pads": "ints (all begins, then all ends)",
        "mode": "'constant' | 'reflect' | 'edge' | 'wrap'",
        "value": "number",
    },
    "Pad each axis.",
    _pad,
)
_op(
    "Gather",
    ("X", "indices"),
    {"axis": "int (non-negative)"},
    "Take entries along an axis at constant indices.",
    _gather,
)
_op("Identity", ("X",), {}, "Copy; kept only where a graph output must alias another tensor.")


# ------------------------------------------------------------- integer ops
# Their arithmetic is specified in docs/arithmetic.md and implemented once in
# axc/arith; ``requant`` is the dict form of axc.arith.Requantizer.
_REQ = {"requant": "dict(multiplier, shift, zero_point, qmin, qmax)"}
_op(
    "Quantize",
    ("X",),
    {"scale": "floats", "zero_point": "ints", "axis": "int | None", "qmin": "int", "qmax": "int"},
    "Float to integer: clamp(round_half_even(x / scale) + zero_point).",
)
_op(
    "Dequantize",
    ("X",),
    {"scale": "floats", "zero_point": "ints", "axis": "int | None"},
    "Integer to float32: (q - zero_point) * scale.",
)
_op(
    "QConv",
    ("X", "W", "B?"),
    {
        **_POOL,
        "group": "int",
        "x_zero_point": "int",
        "w_zero_point": "ints (per output channel or one)",
        "acc_bits": "int",
        "checksum": "bool (optional; a second output S: each group's accumulator sum)",
        **_REQ,
    },
    "Integer convolution: acc = sum((x - x_zp)(w - w_zp)) + bias, wrapped to acc_bits, "
    "then requantized.",
    _qconv,
)
_op(
    "QGemm",
    ("A", "B", "C?"),
    {
        "x_zero_point": "int",
        "w_zero_point": "ints",
        "acc_bits": "int",
        "checksum": "bool (optional; a second output S: the accumulator sum)",
        **_REQ,
    },
    "Integer fully connected layer, weights stored (N, K): acc = (a - a_zp) @ (w - w_zp).T + "
    "bias, wrapped, then requantized. A may have leading batch axes: (..., K) -> (..., N).",
    _qgemm,
)
_op(
    "QAdd",
    ("A", "B"),
    {
        "a_zero_point": "int",
        "b_zero_point": "int",
        "a_multiplier": "int",
        "b_multiplier": "int",
        "shift": "int",
        "zero_point": "int",
        "qmin": "int",
        "qmax": "int",
    },
    "Integer add of two differently scaled tensors: "
    "((a - a_zp) * Ma + (b - b_zp) * Mb + 2^(S-1)) >> S, plus zero_point, clamped.",
    _binary,
)
_op(
    "QAveragePool",
    ("X",),
    {**_POOL, "ceil_mode": "bool", "count_include_pad": "bool", "x_zero_point": "int", **_REQ},
    "Integer average: window sum of (x - x_zp), divided by the count rounding half up, "
    "then requantized.",
    _pool,
)
_op(
    "QGlobalAveragePool",
    ("X",),
    {"x_zero_point": "int", **_REQ},
    "Integer global average, with the division rule of QAveragePool.",
    _global_pool,
)
_op(
    "Requantize",
    ("X",),
    {"x_zero_point": "int", **_REQ},
    "Change the scale and zero point of an integer tensor: requant(x - x_zp).",
)


_op(
    "RangeRestrict",
    ("X",),
    {
        "low": "ints (per channel or one)",
        "high": "ints (per channel or one)",
        "axis": "int | None (the channel axis of per-channel bounds)",
        "action": "'clip' (saturate to the bound) or 'zero'",
        "mechanism": "'range' or 'bounded_relu'",
    },
    "Protection (Ranger-style range restriction, or a bounded ReLU): a value outside "
    "[low, high] is saturated to the bound it crosses, or set to zero.",
)
_op(
    "AbftCheck",
    ("X", "S", "WS", "BS?"),
    {**_POOL, "group": "int", "x_zero_point": "int", "acc_bits": "int", "kind": "'conv' | 'gemm'"},
    "Protection (ABFT checksum of a QConv or QGemm with checksum=True): recomputes each group's "
    "accumulator sum from the input X and the weight column sums WS (plus the bias sums BS), "
    "wrapped to acc_bits, and flags the samples where it differs from the layer's sums S. "
    "Output: one flag per sample (1: a fault was detected).",
    _flag,
)
_op(
    "Vote",
    ("A", "B", "C?"),
    {},
    "Protection (redundancy): with two replicas, output A and flag the samples where A and B "
    "differ (duplication with comparison); with three, the element-wise majority, and flag "
    "the samples where no two agree (triplication with a voter). Outputs: the value and one "
    "flag per sample.",
    _vote,
    outputs=2,
)


def infer_shapes(op: str, attrs: dict[str, Any], shapes: Sequence[Shape]) -> list[Shape]:
    """Output shapes of ``op`` for the given operand shapes; raises :class:`ShapeError`."""
    return OPS[op].shape(attrs, shapes)
