"""``quantize``: choose integer types per layer; lower float ops to integer ops.

    quantize *          weights=int8 activations=int8 calibration=percentile(99.99)
    quantize op(Gemm)   weights=int6            # later directives override earlier ones

Directives only record each selected layer's settings. Once the last
directive has run, the graph is lowered in one step (see
:mod:`axc.passes.lower_quant`): activation ranges are calibrated on the float
model, and Conv, Gemm, Add and average pooling become QConv, QGemm, QAdd and
QAveragePool; data movement runs on integers; anything else stays float
between a Dequantize and a Quantize.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from axc.arith import IntSpec
from axc.ir import ElemType, Graph
from axc.passes.calibration import Calibration, MinMax
from axc.passes.registry import Pass, PassContext, data_file, register_pass

__all__ = ["Quantize", "QuantizeParams"]


def _int_type(name: str, value: str, low: int, high: int, signed_only: bool = False) -> ElemType:
    try:
        elem = ElemType.parse(value)
    except ValueError:
        raise ValueError(
            f"{name}={value}: expected an integer type such as int8 or uint4"
        ) from None
    if elem.kind != "int":
        raise ValueError(f"{name}={value}: expected an integer type such as int8 or uint4")
    if not low <= elem.bits <= high:
        raise ValueError(
            f"{name}={value}: {elem.bits}-bit integers are not supported (widths {low} to {high})"
        )
    if signed_only and not elem.signed:
        raise ValueError(f"{name}={value}: must be a signed type")
    return elem


@dataclass(frozen=True)
class QuantizeParams:
    weights: str = "int8"
    activations: str = "int8"
    weight_scheme: Literal["symmetric", "asymmetric"] = "symmetric"
    activation_scheme: Literal["symmetric", "asymmetric"] = "asymmetric"
    granularity: Literal["per_tensor", "per_channel"] = "per_channel"
    calibration: Calibration = field(default_factory=MinMax)
    data: str | None = None
    samples: int = 200
    bias: str = "int32"
    accumulator: str = "int32"

    def __post_init__(self) -> None:
        _int_type("weights", self.weights, 2, 16)
        _int_type("activations", self.activations, 2, 16)
        _int_type("bias", self.bias, 8, 32, signed_only=True)
        _int_type("accumulator", self.accumulator, 8, 32, signed_only=True)
        if self.samples < 1:
            raise ValueError(f"samples={self.samples}: need at least one calibration sample")

    def weight_spec(self) -> IntSpec:
        elem = ElemType.parse(self.weights)
        return IntSpec(elem.bits, elem.signed, self.weight_scheme == "symmetric")

    def activation_spec(self) -> IntSpec:
        elem = ElemType.parse(self.activations)
        return IntSpec(elem.bits, elem.signed, self.activation_scheme == "symmetric")

    @property
    def bias_bits(self) -> int:
        return ElemType.parse(self.bias).bits

    @property
    def accumulator_bits(self) -> int:
        return ElemType.parse(self.accumulator).bits


def _resolve_data(params: QuantizeParams, ctx: PassContext) -> Path:
    return data_file(params.data, ctx, "quantize needs calibration data")


@register_pass
class Quantize(Pass):
    name = "quantize"
    Params = QuantizeParams
    summary = "integer types per layer; lowers float ops to integer ops after the last directive"

    def run(
        self, graph: Graph, targets: list[str], params: QuantizeParams, ctx: PassContext
    ) -> bool:
        configs: dict[str, QuantizeParams] = ctx.shared.setdefault("quantize", {})
        for name in targets:
            configs[name] = params
            graph.nodes[name].annotations["quantize"] = {
                "weights": params.weights,
                "activations": params.activations,
            }
        ctx.shared.setdefault("quantize_data", _resolve_data(params, ctx))
        ctx.finalizers.setdefault("quantize", _finalize)
        return bool(targets)


def _finalize(graph: Graph, ctx: PassContext) -> None:
    from axc.passes.lower_quant import lower_quantization
    from axc.sim.dataset import load_dataset

    configs: dict[str, QuantizeParams] = ctx.shared.pop("quantize", {})
    data_path = ctx.shared.pop("quantize_data")
    if not configs:
        return
    samples = max(c.samples for c in configs.values())
    data = load_dataset(data_path, graph, limit=samples)
    lowered = lower_quantization(graph, configs, data.x)
    graph.replace_with(lowered)
