"""``cut``: make the selected layers' outputs the graph outputs.

    cut conv2            # keep the network up to conv2 (a feature extractor)
    cut layers[0:4]      # expose the outputs of the first four layers

Everything that no longer reaches an output is removed. Use it to build an
accelerator for part of a network, or to look at intermediate activations.
"""

from __future__ import annotations

from dataclasses import dataclass

from axc.ir import Graph
from axc.passes.registry import Pass, PassContext, register_pass

__all__ = ["Cut", "CutParams"]


@dataclass(frozen=True)
class CutParams:
    pass


@register_pass
class Cut(Pass):
    name = "cut"
    Params = CutParams
    summary = "make the selected layers' outputs the graph outputs; drop what follows"

    def run(self, graph: Graph, targets: list[str], params: CutParams, ctx: PassContext) -> bool:
        outputs = [t for name in targets for t in graph.nodes[name].outputs if t]
        if outputs == graph.outputs:
            return False
        graph.outputs = outputs
        graph.remove_unused()
        return True
