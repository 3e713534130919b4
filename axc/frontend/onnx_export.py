"""axc IR -> ONNX (opset 21), runnable by onnxruntime with the same results.

Fused activations become a separate Relu again; Softmax over several
trailing axes (old-opset semantics) becomes Flatten, Softmax, Reshape.
Integer ops are written as QDQ: DequantizeLinear, the float op,
QuantizeLinear, the form onnxruntime and Netron read (integer ops with no
scales, from ConvInteger or MatMulInteger, are written as those ops).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from axc.errors import UserError
from axc.ir import Graph, Node, QuantParams
from axc.ir.types import Shape

__all__ = ["EXPORT_OPSET", "export_model", "save"]

EXPORT_OPSET = 21


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: set[str] = set(graph.tensors) | set(graph.nodes)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def add(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))


def _reshape_target(shape: Shape) -> np.ndarray:
    return np.array([-1 if isinstance(d, str) else d for d in shape], dtype=np.int64)


def _linear(b: _Builder, node: Node, op: str, attrs: dict[str, Any]) -> None:
    out = node.outputs[0]
    if node.attrs.get("activation") == "relu":
        pre = b.fresh(f"{out}.pre_relu")
        b.add(op, [t for t in node.inputs], [pre], node.name, **attrs)
        b.add("Relu", [pre], [out], b.fresh(f"{node.name}.relu"))
    else:
        b.add(op, list(node.inputs), [out], node.name, **attrs)


def _window(node: Node) -> dict[str, Any]:
    a = node.attrs
    return {
        "kernel_shape": list(a["kernel_shape"]),
        "strides": list(a["strides"]),
        "pads": list(a["pads"]),
        "dilations": list(a["dilations"]),
    }


def _conv(b: _Builder, n: Node) -> None:
    _linear(b, n, "Conv", {**_window(n), "group": n.attrs["group"]})


def _gemm(b: _Builder, n: Node) -> None:
    a = n.attrs
    _linear(
        b,
        n,
        "Gemm",
        {
            "transA": int(a["trans_a"]),
            "transB": int(a["trans_b"]),
            "alpha": float(a["alpha"]),
            "beta": float(a["beta"]),
        },
    )


def _pool(b: _Builder, n: Node) -> None:
    attrs = {**_window(n), "ceil_mode": int(n.attrs["ceil_mode"])}
    if n.op == "AveragePool":
        attrs["count_include_pad"] = int(n.attrs["count_include_pad"])
    b.add(n.op, list(n.inputs), list(n.outputs), n.name, **attrs)


def _plain(b: _Builder, n: Node) -> None:
    attrs = {
        k: v for k, v in n.attrs.items() if k in ("alpha", "beta", "size", "bias", "perm", "axis")
    }
    if "perm" in attrs:
        attrs["perm"] = list(attrs["perm"])
    b.add(n.op, list(n.inputs), list(n.outputs), n.name, **attrs)


def _clip(b: _Builder, n: Node) -> None:
    dtype = b.graph.tensors[n.inputs[0]].dtype.numpy_dtype()
    bounds = [
        b.const(f"{n.name}.{k}", np.array(n.attrs[k], dtype=dtype))
        if n.attrs[k] is not None
        else ""
        for k in ("min", "max")
    ]
    b.add("Clip", [n.inputs[0], *bounds], list(n.outputs), n.name)


def _softmax(b: _Builder, n: Node) -> None:
    axes = tuple(n.attrs["axes"])
    shape = b.graph.tensors[n.inputs[0]].shape
    if len(axes) == 1:
        b.add("Softmax", list(n.inputs), list(n.outputs), n.name, axis=axes[0])
        return
    flat, soft = b.fresh(f"{n.name}.flat"), b.fresh(f"{n.name}.soft")
    b.add("Flatten", [n.inputs[0]], [flat], b.fresh(f"{n.name}.flatten"), axis=axes[0])
    b.add("Softmax", [flat], [soft], n.name, axis=1)
    target = b.const(f"{n.name}.shape", _reshape_target(shape))
    b.add("Reshape", [soft, target], list(n.outputs), b.fresh(f"{n.name}.unflatten"))


def _reshape(b: _Builder, n: Node) -> None:
    target = b.const(f"{n.name}.shape", _reshape_target(n.attrs["shape"]))
    b.add("Reshape", [n.inputs[0], target], list(n.outputs), n.name)


def _split(b: _Builder, n: Node) -> None:
    sizes = b.const(f"{n.name}.split", np.array(n.attrs["sizes"], dtype=np.int64))
    b.add("Split", [n.inputs[0], sizes], list(n.outputs), n.name, axis=n.attrs["axis"])


def _slice(b: _Builder, n: Node) -> None:
    parts = [
        b.const(f"{n.name}.{k}", np.array(n.attrs[k], dtype=np.int64))
        for k in ("starts", "ends", "axes", "steps")
    ]
    b.add("Slice", [n.inputs[0], *parts], list(n.outputs), n.name)


def _pad(b: _Builder, n: Node) -> None:
    pads = b.const(f"{n.name}.pads", np.array(n.attrs["pads"], dtype=np.int64))
    inputs = [n.inputs[0], pads]
    if n.attrs["mode"] == "constant":
        dtype = b.graph.tensors[n.inputs[0]].dtype.numpy_dtype()
        inputs.append(b.const(f"{n.name}.value", np.array(n.attrs["value"], dtype=dtype)))
    b.add("Pad", inputs, list(n.outputs), n.name, mode=n.attrs["mode"])


# ----------------------------------------------------------------- integers
def _quant(b: _Builder, tensor: str) -> QuantParams:
    params = b.graph.tensors[tensor].quant
    if params is None:
        raise UserError(f"cannot export integer tensor {tensor!r} as QDQ: it has no scale")
    return params


def _qparams(b: _Builder, tensor: str, params: QuantParams) -> list[str]:
    dtype = b.graph.tensors[tensor].dtype.numpy_dtype()
    many = params.axis is not None
    scale = np.array(params.scale if many else params.scale[0], np.float32)
    zero = np.array(params.zero_point if many else params.zero_point[0], dtype)
    return [b.const(f"{tensor}.scale", scale), b.const(f"{tensor}.zero_point", zero)]


def _dq(b: _Builder, tensor: str, params: QuantParams | None = None) -> str:
    params = params or _quant(b, tensor)
    out = b.fresh(f"{tensor}.dequantized")
    attrs = {"axis": params.axis} if params.axis is not None else {}
    b.add(
        "DequantizeLinear",
        [tensor, *_qparams(b, tensor, params)],
        [out],
        b.fresh(f"{tensor}.dequantize"),
        **attrs,
    )
    return out


def _q(
    b: _Builder, value: str, tensor: str, qmin: int | None = None, qmax: int | None = None
) -> None:
    """QuantizeLinear into ``tensor``; a Clip narrows to [qmin, qmax] when that
    range is tighter than the storage type (narrow widths, fused ReLU)."""
    params = _quant(b, tensor)
    info = np.iinfo(b.graph.tensors[tensor].dtype.numpy_dtype())
    narrow = (qmin is not None and qmin > info.min) or (qmax is not None and qmax < info.max)
    target = b.fresh(f"{tensor}.unclipped") if narrow else tensor
    b.add(
        "QuantizeLinear",
        [value, *_qparams(b, tensor, params)],
        [target],
        b.fresh(f"{tensor}.quantize"),
    )
    if narrow:
        dtype = info.dtype
        bounds = [
            b.const(f"{tensor}.min", np.array(info.min if qmin is None else qmin, dtype)),
            b.const(f"{tensor}.max", np.array(info.max if qmax is None else qmax, dtype)),
        ]
        b.add("Clip", [target, *bounds], [tensor], b.fresh(f"{tensor}.clip"))


def _requant_range(node: Node) -> tuple[int, int]:
    req = node.attrs.get("requant", node.attrs)
    return int(req["qmin"]), int(req["qmax"])


def _int_weights(b: _Builder, node: Node) -> tuple[str, str | None]:
    """Dequantized weight and bias (bias scale = x_scale * w_scale, zero point 0)."""
    w_params = _quant(b, node.inputs[1])
    weight = _dq(b, node.inputs[1], w_params)
    if len(node.inputs) < 3 or not node.inputs[2]:
        return weight, None
    x_scale = np.float32(_quant(b, node.inputs[0]).scale[0])
    scales = (x_scale * np.asarray(w_params.scale, np.float32)).astype(np.float32)
    count = len(scales)
    bias_params = QuantParams(
        tuple(float(v) for v in scales), (0,) * count, 0 if count > 1 else None
    )
    return weight, _dq(b, node.inputs[2], bias_params)


def _qlinear(b: _Builder, n: Node) -> None:
    identity = n.attrs["requant"].get("multiplier") == (1 << 30,) and n.attrs["requant"].get(
        "shift"
    ) == (30,)
    if b.graph.tensors[n.inputs[1]].quant is None and identity and len(n.inputs) == 2:
        return _integer_op(b, n)
    x = _dq(b, n.inputs[0])
    weight, bias = _int_weights(b, n)
    out = n.outputs[0]
    value = b.fresh(f"{out}.real")
    if n.op == "QConv":
        b.add(
            "Conv",
            [x, weight] + ([bias] if bias else []),
            [value],
            n.name,
            **_window(n),
            group=n.attrs["group"],
        )
    elif len(b.graph.tensors[n.inputs[0]].shape) == 2:
        b.add("Gemm", [x, weight] + ([bias] if bias else []), [value], n.name, transB=1)
    else:
        turned = b.fresh(f"{n.inputs[1]}.transposed")
        b.add("Transpose", [weight], [turned], b.fresh(f"{n.name}.transpose"), perm=[1, 0])
        product = b.fresh(f"{out}.product") if bias else value
        b.add("MatMul", [x, turned], [product], n.name)
        if bias:
            b.add("Add", [product, bias], [value], b.fresh(f"{n.name}.bias"))
    _q(b, value, out, *_requant_range(n))


def _integer_op(b: _Builder, n: Node) -> None:
    """QConv/QGemm that only accumulate (ConvInteger, MatMulInteger)."""
    dtype = b.graph.tensors[n.inputs[0]].dtype.numpy_dtype()
    w_dtype = b.graph.tensors[n.inputs[1]].dtype.numpy_dtype()
    x_zero = b.const(f"{n.name}.x_zero_point", np.array(n.attrs["x_zero_point"], dtype))
    w_zero = b.const(f"{n.name}.w_zero_point", np.array(n.attrs["w_zero_point"], w_dtype))
    if n.op == "QConv":
        b.add(
            "ConvInteger",
            [n.inputs[0], n.inputs[1], x_zero, w_zero],
            list(n.outputs),
            n.name,
            **_window(n),
            group=n.attrs["group"],
        )
        return
    turned = b.const(
        f"{n.inputs[1]}.transposed", np.ascontiguousarray(b.graph.constants[n.inputs[1]].T)
    )
    b.add("MatMulInteger", [n.inputs[0], turned, x_zero, w_zero], list(n.outputs), n.name)


def _qadd(b: _Builder, n: Node) -> None:
    value = b.fresh(f"{n.outputs[0]}.real")
    b.add("Add", [_dq(b, n.inputs[0]), _dq(b, n.inputs[1])], [value], n.name)
    _q(b, value, n.outputs[0], *_requant_range(n))


def _qpool(b: _Builder, n: Node) -> None:
    value = b.fresh(f"{n.outputs[0]}.real")
    if n.op == "QGlobalAveragePool":
        b.add("GlobalAveragePool", [_dq(b, n.inputs[0])], [value], n.name)
    else:
        b.add(
            "AveragePool",
            [_dq(b, n.inputs[0])],
            [value],
            n.name,
            **_window(n),
            ceil_mode=int(n.attrs["ceil_mode"]),
            count_include_pad=int(n.attrs["count_include_pad"]),
        )
    _q(b, value, n.outputs[0], *_requant_range(n))


def _requantize(b: _Builder, n: Node) -> None:
    _q(b, _dq(b, n.inputs[0]), n.outputs[0], *_requant_range(n))


def _quantize(b: _Builder, n: Node) -> None:
    params = QuantParams(tuple(n.attrs["scale"]), tuple(n.attrs["zero_point"]), n.attrs["axis"])
    b.graph.tensors[n.outputs[0]].quant = b.graph.tensors[n.outputs[0]].quant or params
    x = n.inputs[0]
    _q(b, x, n.outputs[0], n.attrs["qmin"], n.attrs["qmax"])


def _dequantize(b: _Builder, n: Node) -> None:
    params = QuantParams(tuple(n.attrs["scale"]), tuple(n.attrs["zero_point"]), n.attrs["axis"])
    attrs = {"axis": params.axis} if params.axis is not None else {}
    b.add(
        "DequantizeLinear",
        [n.inputs[0], *_qparams(b, n.inputs[0], params)],
        list(n.outputs),
        n.name,
        **attrs,
    )


def _range_restrict(b: _Builder, n: Node) -> None:
    """Range restriction as Max/Min (clip) or Where (zero), in the tensor's own type."""
    x, out = n.inputs[0], n.outputs[0]
    info = b.graph.tensors[x]
    dtype = info.dtype.numpy_dtype()
    shape = [1] * len(info.shape)
    if n.attrs.get("axis") is not None and len(n.attrs["low"]) > 1:
        shape[n.attrs["axis"]] = -1
    low = b.const(f"{n.name}.low", np.asarray(n.attrs["low"], dtype).reshape(shape))
    high = b.const(f"{n.name}.high", np.asarray(n.attrs["high"], dtype).reshape(shape))
    if n.attrs.get("action", "clip") == "zero":
        above, below = b.fresh(f"{out}.above"), b.fresh(f"{out}.below")
        inside, zero = b.fresh(f"{out}.inside"), b.const(f"{n.name}.zero", np.zeros((), dtype))
        b.add("GreaterOrEqual", [x, low], [above], b.fresh(f"{n.name}.ge"))
        b.add("LessOrEqual", [x, high], [below], b.fresh(f"{n.name}.le"))
        b.add("And", [above, below], [inside], b.fresh(f"{n.name}.and"))
        b.add("Where", [inside, x, zero], [out], n.name)
        return
    raised = b.fresh(f"{out}.raised")
    b.add("Max", [x, low], [raised], b.fresh(f"{n.name}.max"))
    b.add("Min", [raised, high], [out], n.name)


def _vote(b: _Builder, n: Node) -> None:
    # ONNX has no fault to vote on: the value is the first replica's
    b.add("Identity", [n.inputs[0]], [n.outputs[0]], n.name)


def _detector(b: _Builder, n: Node) -> None:
    """Detection checks (checksums) have no ONNX form; their flags are left out."""


_EXPORTERS: dict[str, Callable[[_Builder, Node], None]] = {
    "RangeRestrict": _range_restrict,
    "Vote": _vote,
    "AbftCheck": _detector,
    "Conv": _conv,
    "Gemm": _gemm,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "Clip": _clip,
    "Softmax": _softmax,
    "Reshape": _reshape,
    "Split": _split,
    "Slice": _slice,
    "Pad": _pad,
    "QConv": _qlinear,
    "QGemm": _qlinear,
    "QAdd": _qadd,
    "QAveragePool": _qpool,
    "QGlobalAveragePool": _qpool,
    "Requantize": _requantize,
    "Quantize": _quantize,
    "Dequantize": _dequantize,
}


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    info = graph.tensors[name]
    elem = helper.np_dtype_to_tensor_dtype(info.dtype.numpy_dtype())
    dims = [d if isinstance(d, str) else int(d) for d in info.shape]
    return helper.make_tensor_value_info(name, elem, dims)


def export_model(graph: Graph) -> onnx.ModelProto:
    """The graph as an ONNX model (float graphs; quantized ones in a later release)."""
    b = _Builder(graph)
    checks_only = {
        name
        for name in graph.constants
        if graph.consumers(name) and all(c.op == "AbftCheck" for c in graph.consumers(name))
    }
    for name, value in graph.constants.items():
        if name not in checks_only:  # a checksum's column sums have no use in ONNX
            b.initializers.append(numpy_helper.from_array(np.asarray(value), name))
    for node in graph.topological():
        _EXPORTERS.get(node.op, _plain)(b, node)
    outputs = []
    flags = set(graph.metadata.get("due_outputs", []))
    for name in graph.outputs:
        if name in flags:
            continue
        if name in graph.constants or name in graph.inputs:
            alias = b.fresh(f"{name}.out")
            b.add("Identity", [name], [alias], b.fresh(f"{name}.identity"))
            info = _value_info(graph, name)
            info.name = alias
            outputs.append(info)
        else:
            outputs.append(_value_info(graph, name))
    inputs = [_value_info(graph, i) for i in graph.inputs]
    onnx_graph = helper.make_graph(b.nodes, graph.name, inputs, outputs, b.initializers)
    model = helper.make_model(
        onnx_graph, producer_name="axc", opset_imports=[helper.make_opsetid("", EXPORT_OPSET)]
    )
    model.ir_version = 8
    approximate = {
        n.name: n.annotations["multiplier"]
        for n in graph.topological()
        if n.annotations.get("multiplier") and n.annotations["multiplier"] != "exact"
    }
    protection = {
        n.name: n.annotations["protect"]
        for n in graph.topological()
        if n.annotations.get("protect")
    }
    if protection:
        helper.set_model_props(
            model,
            {
                "axc.protection": json.dumps(protection),
                "axc.protection_note": "range restriction is exported as Max/Min (or Where); "
                "checksum checks and redundancy comparators have no ONNX form and are left "
                "out (a voter passes its first replica on)",
            },
        )
    if approximate:
        # ONNX has no approximate multiplier: the operators compute exact
        # products; the choice is recorded so that nobody mistakes the two
        helper.set_model_props(
            model,
            {
                "axc.approximate_multipliers": json.dumps(approximate),
                "axc.note": "these layers' products are approximate in axc's IR and "
                "simulator; the ONNX operators here compute them exactly",
            },
        )
    onnx.checker.check_model(model)
    return model


def save(graph: Graph, path: str | os.PathLike[str]) -> None:
    model = export_model(graph)
    size = sum(math.prod(v.shape) * v.itemsize for v in graph.constants.values())
    if size > 1_500_000_000:
        onnx.save(
            model,
            os.fspath(path),
            save_as_external_data=True,
            location=os.path.basename(os.fspath(path)) + ".data",
        )
    else:
        onnx.save(model, os.fspath(path))
