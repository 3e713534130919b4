"""axc's integer semantics in one place (specified in docs/arithmetic.md)."""

from axc.arith.quant import IntSpec, choose_params, dequantize, int_range, quantize
from axc.arith.requant import Requantizer, fixed_point, wrap

__all__ = [
    "IntSpec",
    "Requantizer",
    "choose_params",
    "dequantize",
    "fixed_point",
    "int_range",
    "quantize",
    "wrap",
]
