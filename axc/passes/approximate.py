"""``approximate``: choose the multiplier of the selected layers' products.

    approximate conv2        multiplier=trunc(4)
    approximate op(Conv)     drum(4)                      # the multiplier is positional
    approximate op(Gemm)     multiplier=evo("mul8u_xxx.c")
    approximate *            multiplier="table.npy" bits=8

Among the selected layers, the convolutions and dense layers (Conv, Gemm and
MatMul before quantization; QConv and QGemm after) take the multiplier; a
selection with none of them is an error. The choice is recorded in
the node's ``multiplier`` annotation (a file by its absolute path), and the
simulator, the HLS and the RTL backends all compute those layers' products
with that multiplier, bit for bit (docs/arithmetic.md). Multiplier files are
looked up next to the directive file, then next to the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axc.arith.multipliers import FAMILIES, _spec_parts, parse_multiplier
from axc.errors import UserError
from axc.ir import Graph
from axc.passes.registry import Pass, PassContext, register_pass

__all__ = ["Approximate", "ApproximateParams"]

_LINEAR = ("Conv", "Gemm", "MatMul", "QConv", "QGemm")


@dataclass(frozen=True)
class ApproximateParams:
    #: a built-in form (``trunc(4)``), a file, or ``evo("file.c")``
    multiplier: Any
    bits: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "multiplier", str(self.multiplier))
        if not 2 <= self.bits <= 8:
            raise ValueError(f"bits must be 2..8, got {self.bits}")
        name, _ = _spec_parts(self.multiplier)
        is_file = name in ("evo", "file") or name.endswith((".c", ".v", ".sv", ".npy"))
        if not is_file:  # files are read when the pass runs, next to the directives
            try:
                parse_multiplier(self.multiplier, bits=self.bits)
            except UserError as exc:  # located at the directive by the binder
                raise ValueError(str(exc)) from None


@register_pass
class Approximate(Pass):
    name = "approximate"
    Params = ApproximateParams
    summary = "compute the selected layers' products with an (approximate) multiplier"
    positional = "multiplier"

    def run(
        self, graph: Graph, targets: list[str], params: ApproximateParams, ctx: PassContext
    ) -> bool:
        linear = [t for t in targets if graph.nodes[t].op in _LINEAR]
        if not linear:
            ops = sorted({graph.nodes[t].op for t in targets})
            raise UserError(
                f"approximate applies to Conv and Gemm layers; the selection holds only "
                f"{', '.join(ops)}"
            )
        spec = self._canonical(params, ctx)
        changed = False
        for name in linear:
            notes = graph.nodes[name].annotations
            if notes.get("multiplier") != spec or notes.get("multiplier_bits") != params.bits:
                notes["multiplier"] = spec
                notes["multiplier_bits"] = params.bits
                changed = True
        return changed

    @staticmethod
    def _canonical(params: ApproximateParams, ctx: PassContext) -> str:
        """The spec as stored: a built-in form, or a file's absolute path."""
        name, args = _spec_parts(params.multiplier)
        if name in FAMILIES:
            m = parse_multiplier(params.multiplier, bits=params.bits)
            return m.family + (f"({', '.join(map(str, m.params))})" if m.params else "")
        path = str(args[0]) if name in ("evo", "file") and args else name
        for base in (ctx.directives_path, ctx.model_path):
            if base and not Path(path).is_absolute():
                candidate = Path(base).resolve().parent / path
                if candidate.exists():
                    path = str(candidate)
                    break
        m = parse_multiplier(path, bits=params.bits)  # imports (and checks) the file now
        return str(Path(path).resolve()) if Path(path).exists() else m.name
