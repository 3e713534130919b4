"""``reuse``: how many times each multiplier of a layer is used, in hardware.

    reuse *           factor=4      # every layer: each multiplier serves 4 outputs
    reuse "/3/Conv"   factor=1      # this one fully parallel over its outputs

As hls4ml's reuse factor: a layer with M outputs per position gets
ceil(M / factor) multipliers working in parallel, so factor 1 is the fastest
and largest, and a larger factor trades speed for area. The choice is the
node's ``reuse`` annotation; backends read it (the HLS backend unrolls the
output loop by ceil(M / factor) and partitions the weight ROM to match).
Layers without it use the backend's own default.
"""

from __future__ import annotations

from dataclasses import dataclass

from axc.ir import Graph
from axc.passes.registry import Pass, PassContext, register_pass

__all__ = ["Reuse", "ReuseParams"]

_LINEAR = ("Conv", "Gemm", "MatMul", "QConv", "QGemm")


@dataclass(frozen=True)
class ReuseParams:
    factor: int

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor}")


@register_pass
class Reuse(Pass):
    name = "reuse"
    Params = ReuseParams
    summary = "set the reuse factor of the selected layers' multipliers (hardware parallelism)"
    positional = None

    def run(self, graph: Graph, targets: list[str], params: ReuseParams, ctx: PassContext) -> bool:
        changed = False
        for name in targets:
            node = graph.nodes[name]
            if node.op in _LINEAR and node.annotations.get("reuse") != params.factor:
                node.annotations["reuse"] = params.factor
                changed = True
        return changed
