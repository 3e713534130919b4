"""A toy axc backend: writes the compiled graph's layers as JSON.

It shows the whole interface: a name, typed options, and lower()."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from axc.backend import Artifacts, Backend
from axc.errors import UserError
from axc.ir import Graph


@dataclass(frozen=True)
class ToyOptions:
    title: str = "network"
    indent: int = 1

    def __post_init__(self) -> None:
        if self.indent < 0:
            raise ValueError(f"indent must be >= 0, got {self.indent}")


class ToyBackend(Backend):
    name = "toy"
    Options = ToyOptions
    summary = "the layers of the compiled graph as JSON (an example plugin)"

    def lower(self, graph: Graph, options: ToyOptions, outdir: Path) -> Artifacts:
        if not graph.nodes:
            raise UserError("the toy backend needs at least one layer")
        layers = [
            {"name": n.name, "op": n.op, "outputs": list(n.outputs)} for n in graph.topological()
        ]
        path = outdir / f"{options.title}.json"
        path.write_text(json.dumps({"layers": layers}, indent=options.indent))
        return Artifacts(outdir, [path], {"layers": len(layers)})
