"""``target``: record which hardware the design is lowered to.

    target systolic rows=8 cols=8 dataflow=ws clock_mhz=200 device=xc7z020
    target hls clock_mhz=150 device=xc7z020

The choice is stored in ``graph.metadata["target"]``; backends and the
hardware model read it. ``axc compile`` uses it to pick the backend when no
``--backend`` is given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from axc.ir import Graph
from axc.passes.registry import Pass, PassContext, register_pass

__all__ = ["Target", "TargetParams"]


@dataclass(frozen=True)
class TargetParams:
    backend: Literal["hls", "systolic"]
    rows: int = 8
    cols: int = 8
    dataflow: Literal["ws", "os", "is"] = "ws"
    clock_mhz: float = 200.0
    device: str = "xc7z020"

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            if not 1 <= getattr(self, name) <= 512:
                raise ValueError(f"{name} must lie in 1..512, got {getattr(self, name)}")
        if not 0 < self.clock_mhz <= 2000:
            raise ValueError(f"clock_mhz must lie in (0, 2000], got {self.clock_mhz}")


@register_pass
class Target(Pass):
    name = "target"
    Params = TargetParams
    summary = "choose the backend and the array or device the design is built for"
    selects = False
    positional = "backend"

    def run(self, graph: Graph, targets: list[str], params: TargetParams, ctx: PassContext) -> bool:
        before = graph.metadata.get("target")
        graph.metadata["target"] = dataclasses.asdict(params)
        return before != graph.metadata["target"]
