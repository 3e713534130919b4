"""Lowering a float graph to integer ops, given per-layer quantize settings.

The graph is rebuilt node by node. Every float tensor of the old graph may
get an integer twin (``name.q``, with its scale and zero point); float and
integer versions are made on demand, with Quantize and Dequantize nodes where
a float op meets an integer one. Graph outputs stay float and keep their
names; their integer versions are listed in ``metadata["integer_outputs"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from axc.arith import IntSpec, Requantizer, choose_params, int_range, quantize
from axc.ir import FLOAT32, ElemType, Graph, Node, QuantParams, TensorInfo
from axc.passes.calibration import collect_stats
from axc.passes.quantize import QuantizeParams

__all__ = ["lower_quantization"]

_MOVES = ("MaxPool", "Reshape", "Transpose", "Slice", "Split", "Gather", "Identity", "Pad")
_WINDOW = ("kernel_shape", "strides", "pads", "dilations")


@dataclass(frozen=True)
class _Int:
    name: str
    scale: float
    zero_point: int
    spec: IntSpec


def _elem(spec: IntSpec) -> ElemType:
    return ElemType("int", spec.bits, spec.signed)


class _Lowering:
    def __init__(
        self, old: Graph, configs: dict[str, QuantizeParams], stats: dict[str, Any]
    ) -> None:
        self.old, self.configs, self.stats = old, configs, stats
        self.new = Graph(old.name)
        self.new.metadata = dict(old.metadata)
        for name in old.inputs:
            info = old.tensors[name]
            self.new.add_input(name, info.shape, info.dtype)
        self.float: dict[str, str] = {name: name for name in old.inputs}
        self.int: dict[str, _Int] = {}

    # ------------------------------------------------------------- values
    def constant(self, name: str) -> str:
        if name not in self.new.constants:
            self.new.add_constant(name, self.old.constants[name])
        return name

    def float_of(self, tensor: str) -> str:
        if not tensor:
            return ""
        if tensor in self.old.constants:
            return self.constant(tensor)
        if tensor not in self.float:
            q = self.int[tensor]
            self._emit(
                "Dequantize",
                [q.name],
                [tensor],
                FLOAT32,
                {"scale": (q.scale,), "zero_point": (q.zero_point,), "axis": None},
                f"{tensor}.dequantize",
            )
            self.float[tensor] = tensor
        return self.float[tensor]

    def params_for(self, tensor: str, config: QuantizeParams) -> tuple[float, int, IntSpec]:
        spec = config.activation_spec()
        low, high = self.stats[tensor].range(config.calibration, spec)
        scale, zero = choose_params(low, high, spec)
        return float(scale), int(zero), spec

    def int_of(self, tensor: str, config: QuantizeParams | None) -> _Int:
        if tensor not in self.int:
            if config is None:
                raise AssertionError(f"{tensor} has no integer version and no quantize settings")
            scale, zero, spec = self.params_for(tensor, config)
            source = self.float_of(tensor)
            name = self.new.unique_name(f"{tensor}.q")
            self._emit(
                "Quantize",
                [source],
                [name],
                _elem(spec),
                {
                    "scale": (scale,),
                    "zero_point": (zero,),
                    "axis": None,
                    "qmin": spec.qmin,
                    "qmax": spec.qmax,
                },
                f"{tensor}.quantize",
                quant=(scale, zero),
            )
            self.int[tensor] = _Int(name, scale, zero, spec)
        return self.int[tensor]

    def _emit(
        self,
        op: str,
        inputs: list[str],
        outputs: list[str],
        dtype: ElemType,
        attrs: dict[str, Any],
        name: str,
        shapes: list[Any] | None = None,
        quant: tuple[float, int] | None = None,
        annotations: dict[str, Any] | None = None,
    ) -> None:
        from axc.ir.ops import infer_shapes

        in_shapes = [self.new.tensors[i].shape if i else () for i in inputs]
        out_shapes = shapes or infer_shapes(op, attrs, in_shapes)
        for out, shape in zip(outputs, out_shapes, strict=True):
            qp = QuantParams((quant[0],), (quant[1],)) if quant else None
            self.new.tensors[out] = TensorInfo(out, tuple(shape), dtype, qp)
        self.new.add_node(
            Node(self.new.unique_name(name), op, inputs, outputs, attrs, dict(annotations or {}))
        )

    def new_int(self, tensor: str, scale: float, zero: int, spec: IntSpec) -> _Int:
        q = _Int(self.new.unique_name(f"{tensor}.q"), scale, zero, spec)
        self.int[tensor] = q
        return q

    # -------------------------------------------------------------- nodes
    def lower(self, node: Node) -> None:
        config = self.configs.get(node.name)
        x = node.inputs[0] if node.inputs else ""
        const_weights = all(t in self.old.constants for t in node.inputs[1:] if t)
        is_float = self.old.tensors[node.outputs[0]].dtype.is_float
        if (
            config is not None
            and is_float
            and node.op in ("Conv", "Gemm")
            and const_weights
            and not (
                node.op == "Gemm"
                and (
                    node.attrs["trans_a"]
                    or not node.attrs["trans_b"]
                    or node.attrs["alpha"] != 1.0
                    or node.attrs["beta"] != 1.0
                )
            )
        ):
            return self.linear(node, config)
        if (
            config is not None
            and node.op == "Add"
            and not any(t in self.old.constants for t in node.inputs)
        ):
            return self.add(node, config)
        if config is not None and node.op in ("AveragePool", "GlobalAveragePool"):
            return self.average(node, config)
        int_input = x in self.int and x not in self.float
        if node.op == "Concat" and (
            config is not None or all(t in self.int and t not in self.float for t in node.inputs)
        ):
            return self.concat(node, config)
        if (
            node.op in (*_MOVES, "Relu")
            and (config is not None or int_input)
            and x not in self.old.constants
        ):
            return self.move(node, config)
        self.keep_float(node)

    def keep_float(self, node: Node) -> None:
        inputs = [self.float_of(t) for t in node.inputs]
        for out in node.outputs:
            self.new.tensors[out] = TensorInfo(
                out, self.old.tensors[out].shape, self.old.tensors[out].dtype
            )
            self.float[out] = out
        self.new.add_node(
            Node(
                node.name,
                node.op,
                inputs,
                list(node.outputs),
                dict(node.attrs),
                dict(node.annotations),
            )
        )

    def linear(self, node: Node, config: QuantizeParams) -> None:
        x = self.int_of(node.inputs[0], config)
        weight = self.old.constants[node.inputs[1]].astype(np.float64)
        wspec = config.weight_spec()
        channels = weight.shape[0]
        flat = weight.reshape(channels, -1)
        if config.granularity == "per_channel":
            sw, zw = choose_params(flat.min(axis=1), flat.max(axis=1), wspec)
        else:
            s, z = choose_params(flat.min(), flat.max(), wspec)
            sw, zw = np.full(channels, s, np.float32), np.full(channels, z, np.int64)
        wq = quantize(weight, sw, zw, wspec.qmin, wspec.qmax, axis=0)
        wname = self.new.add_constant(
            self.new.unique_name(f"{node.name}.weight_q"), wq.astype(_elem(wspec).numpy_dtype())
        )
        self.new.tensors[wname].quant = QuantParams(tuple(map(float, sw)), tuple(map(int, zw)), 0)
        inputs = [x.name, wname]
        bias_scale = np.float32(x.scale) * sw.astype(np.float32)
        if len(node.inputs) > 2 and node.inputs[2]:
            bias = self.old.constants[node.inputs[2]].astype(np.float32)
            blo, bhi = int_range(config.bias_bits, True)
            bq = np.clip(np.rint(bias / bias_scale), blo, bhi).astype(np.int64)
            bname = self.new.add_constant(
                self.new.unique_name(f"{node.name}.bias_q"),
                bq.astype(np.int32 if config.bias_bits <= 32 else np.int64),
            )
            inputs.append(bname)
        out = node.outputs[0]
        sy, zy, spec = self.params_for(out, config)
        qmin = max(spec.qmin, zy) if node.attrs.get("activation") == "relu" else spec.qmin
        requant = Requantizer.from_scale(bias_scale.astype(np.float64) / sy, zy, qmin, spec.qmax)
        attrs: dict[str, Any] = {
            "x_zero_point": x.zero_point,
            "w_zero_point": tuple(int(z) for z in np.unique(zw))
            if np.unique(zw).size == 1
            else tuple(int(z) for z in zw),
            "acc_bits": config.accumulator_bits,
            "requant": requant.to_attr(),
        }
        if node.op == "Conv":
            attrs = {**{k: node.attrs[k] for k in _WINDOW}, "group": node.attrs["group"], **attrs}
        q = self.new_int(out, sy, zy, spec)
        self._emit(
            "QConv" if node.op == "Conv" else "QGemm",
            inputs,
            [q.name],
            _elem(spec),
            attrs,
            node.name,
            quant=(sy, zy),
            annotations=node.annotations,
        )

    def add(self, node: Node, config: QuantizeParams) -> None:
        a, b = (self.int_of(t, config) for t in node.inputs)
        out = node.outputs[0]
        sy, zy, spec = self.params_for(out, config)
        ra, rb = a.scale / sy, b.scale / sy
        shift = min(62, max(1, 30 - math.frexp(max(ra, rb))[1]))
        attrs = {
            "a_zero_point": a.zero_point,
            "b_zero_point": b.zero_point,
            "a_multiplier": round(ra * 2**shift),
            "b_multiplier": round(rb * 2**shift),
            "shift": shift,
            "zero_point": zy,
            "qmin": spec.qmin,
            "qmax": spec.qmax,
        }
        q = self.new_int(out, sy, zy, spec)
        self._emit(
            "QAdd", [a.name, b.name], [q.name], _elem(spec), attrs, node.name, quant=(sy, zy)
        )

    def average(self, node: Node, config: QuantizeParams) -> None:
        x = self.int_of(node.inputs[0], config)
        identity = Requantizer((1 << 30,), (30,), x.zero_point, x.spec.qmin, x.spec.qmax)
        attrs = {
            **{k: v for k, v in node.attrs.items()},
            "x_zero_point": x.zero_point,
            "requant": identity.to_attr(),
        }
        q = self.new_int(node.outputs[0], x.scale, x.zero_point, x.spec)
        self._emit(
            f"Q{node.op}",
            [x.name],
            [q.name],
            _elem(x.spec),
            attrs,
            node.name,
            quant=(x.scale, x.zero_point),
        )

    def concat(self, node: Node, config: QuantizeParams | None) -> None:
        parts = [self.int_of(t, config) for t in node.inputs]
        out = node.outputs[0]
        if config is not None:
            sy, zy, spec = self.params_for(out, config)
        else:
            sy, zy, spec = parts[0].scale, parts[0].zero_point, parts[0].spec
        names = []
        for part, source in zip(parts, node.inputs, strict=True):
            if (part.scale, part.zero_point, part.spec) == (sy, zy, spec):
                names.append(part.name)
                continue
            requant = Requantizer.from_scale(part.scale / sy, zy, spec.qmin, spec.qmax)
            name = self.new.unique_name(f"{source}.rq")
            self._emit(
                "Requantize",
                [part.name],
                [name],
                _elem(spec),
                {"x_zero_point": part.zero_point, "requant": requant.to_attr()},
                f"{node.name}.requantize",
                quant=(sy, zy),
            )
            names.append(name)
        q = self.new_int(out, sy, zy, spec)
        self._emit(
            "Concat", names, [q.name], _elem(spec), dict(node.attrs), node.name, quant=(sy, zy)
        )

    def move(self, node: Node, config: QuantizeParams | None) -> None:
        x = self.int_of(node.inputs[0], config)
        op, attrs = node.op, dict(node.attrs)
        if op == "Relu":
            op, attrs = "Clip", {"min": x.zero_point, "max": None}
        elif op == "Pad":
            attrs["value"] = int(
                np.clip(
                    round(float(attrs["value"]) / x.scale) + x.zero_point, x.spec.qmin, x.spec.qmax
                )
            )
        inputs = [x.name] + [self.constant(t) for t in node.inputs[1:] if t]
        outs = [self.new_int(t, x.scale, x.zero_point, x.spec) for t in node.outputs]
        self._emit(
            op,
            inputs,
            [o.name for o in outs],
            _elem(x.spec),
            attrs,
            node.name,
            quant=(x.scale, x.zero_point),
        )


def lower_quantization(graph: Graph, configs: dict[str, QuantizeParams], x: np.ndarray) -> Graph:
    """A new graph with the configured layers lowered to integer ops."""
    tensors = [
        t for t, info in graph.tensors.items() if info.dtype.is_float and t not in graph.constants
    ]
    stats = collect_stats(graph, x, tensors)
    lowering = _Lowering(graph, configs, stats)
    for node in graph.topological():
        lowering.lower(node)
    new = lowering.new
    new.outputs = [lowering.float_of(t) for t in graph.outputs]
    new.metadata["integer_outputs"] = {
        t: lowering.int[t].name for t in graph.outputs if t in lowering.int
    }
    new.metadata["quantized_layers"] = sorted(configs)
    new.remove_unused()
    fuse_integer_relu(new)
    return new


_REQUANTIZING = ("QConv", "QGemm", "QAdd", "QAveragePool", "QGlobalAveragePool", "Requantize")


def fuse_integer_relu(graph: Graph) -> int:
    """Fold ``Clip(min=zero_point)`` (an integer ReLU) into the op that produced
    its input by raising that op's ``qmin``: the clamp the requantizer does
    anyway. Applies where the intermediate tensor has no other use."""
    fused = 0
    for node in graph.topological():
        if node.op != "Clip" or node.attrs.get("max") is not None:
            continue
        producer = graph.producer(node.inputs[0])
        if producer is None or producer.op not in _REQUANTIZING:
            continue
        if len(graph.consumers(node.inputs[0])) != 1 or node.inputs[0] in graph.outputs:
            continue
        target = producer.attrs if producer.op == "QAdd" else producer.attrs["requant"]
        if node.attrs["min"] != target["zero_point"]:
            continue
        target["qmin"] = max(int(target["qmin"]), int(node.attrs["min"]))
        graph.absorb(node.name)
        fused += 1
    return fused
