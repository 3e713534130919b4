"""``inject``: declare a fault-injection campaign over the selected layers.

    inject *          site=activations model=bitflip count=auto(confidence=0.95, margin=0.01)
    inject op(Conv)   site=weights model=stuck_at(1) bits=msb count=500
    inject "/3/Conv"  site=accumulators model=bitflip(2) bits=[0, 15, 31] per=bit
    inject *          site=activations model=random count=all

Each directive is one fault group of the campaign ``axc inject`` runs:
``site`` is what the faults hit (layer outputs, layer inputs, weights,
biases, accumulators, or partial sums of the accumulation), ``model`` how
(``bitflip``, ``bitflip(k)``, ``bitflip(k, adjacent=false)``, ``stuck_at(0)``,
``stuck_at(1)``, ``random``), ``bits`` which bits (``any``, ``msb`` or a
list), ``count`` how many (a number, ``all`` for every possible fault, or
``auto(...)`` for a statistical sample, Leveugle et al.) and ``per`` whether
the count applies to the whole group, to each layer or to each bit position.
The pass changes no computation: it records the group in
``graph.metadata["inject"]`` and names the site in each layer's
``fault_site`` annotation. docs/faults.md describes every form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from axc.errors import UserError
from axc.faults.model import Auto, FaultGroup, FaultModel, group_to_dict, sites_of
from axc.faults.model import BitFlip as _BitFlip
from axc.ir import Graph
from axc.passes.registry import Pass, PassContext, register_pass

__all__ = ["Inject", "InjectParams"]

SiteKind = Literal[
    "activations", "inputs", "weights", "biases", "accumulators", "psums",
    "pe_weight", "pe_input", "pe_psum",
]  # fmt: skip


@dataclass(frozen=True)
class InjectParams:
    site: SiteKind = "activations"
    model: FaultModel = field(default_factory=_BitFlip)
    bits: Literal["any", "msb"] | tuple[int, ...] = "any"
    count: int | Auto | Literal["all"] = field(default_factory=Auto)
    per: Literal["none", "layer", "bit"] = "none"

    def __post_init__(self) -> None:
        if isinstance(self.count, int) and self.count <= 0:
            raise ValueError(f"count must be positive, got {self.count}")
        if isinstance(self.bits, tuple):
            if not self.bits:
                raise ValueError("bits=[] selects no bit")
            for b in self.bits:
                if not 0 <= b < 64:
                    raise ValueError(f"bit {b} is outside 0..63")


@register_pass
class Inject(Pass):
    name = "inject"
    Params = InjectParams
    summary = "declare a fault group (site, model, bits, count) for `axc inject` campaigns"

    def run(self, graph: Graph, targets: list[str], params: InjectParams, ctx: PassContext) -> bool:
        group = FaultGroup(
            params.site, tuple(targets), params.model, params.bits, params.count, params.per
        )
        entry = group_to_dict(group)
        entry["location"] = ctx.location
        groups = graph.metadata.setdefault("inject", [])
        groups.append(entry)
        index = len(groups) - 1
        # the sites, widths and bits are checked on the final graph, after
        # quantization has lowered the layers to their integer form
        ctx.checks.append(lambda g: _check(g, index))
        return True


def _check(graph: Graph, index: int) -> None:
    entry = graph.metadata["inject"][index]
    where = f"{entry['location']}: " if entry.get("location") else ""
    layers = [name for name in entry["layers"] if name in graph.nodes]
    try:
        sites = sites_of(graph, layers, entry["site"])
    except UserError as exc:
        raise UserError(f"{where}{exc}") from None
    if not isinstance(entry["bits"], str):
        for b in entry["bits"]:
            bad = next((s for s in sites if b >= s.width), None)
            if bad is not None:
                raise UserError(
                    f"{where}bit {b} is beyond the {bad.width}-bit {entry['site']} of layer "
                    f"{bad.layer!r} (bits 0..{bad.width - 1})"
                )
    entry["layers"] = list(dict.fromkeys(s.layer for s in sites))
    for s in sites:
        notes = graph.nodes[s.layer].annotations
        kinds = list(notes.get("fault_site", []))
        if entry["site"] not in kinds:
            notes["fault_site"] = [*kinds, entry["site"]]
