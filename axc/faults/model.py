"""Fault sites, fault models, and fault lists as data.

A fault is a row of a structured array (:data:`FAULT_DTYPE`): which site
(a layer and what of it: its output, an input, a weight, a bias, an
accumulator or a partial sum), which element, which bits, and the three
masks that say what it does to the element's bit pattern::

    corrupted = ((word & and_mask) | or_mask) ^ xor_mask

``word`` is the element's hardware representation: the two's-complement
pattern of its integer width for quantized tensors (int8 activations, the
weights' width, the accumulator's ``acc_bits``), the IEEE-754 pattern for
float32 ones. A bit flip sets bits of ``xor_mask``, stuck-at-0 clears bits of
``and_mask``, stuck-at-1 sets bits of ``or_mask``, and a random value is
``and_mask = 0`` with the value in ``or_mask``. A fault list therefore
replays exactly, whatever produced it (:func:`write_faults`, :func:`read_faults`).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from axc.directives.types import call_form
from axc.errors import UserError
from axc.ir import BATCH, Graph, Node

__all__ = [
    "FAULT_DTYPE",
    "MODELS",
    "SITES",
    "Auto",
    "BitFlip",
    "FaultGroup",
    "RandomValue",
    "Site",
    "StuckAt",
    "apply_masks",
    "generate",
    "group_from_dict",
    "group_to_dict",
    "read_faults",
    "sites_of",
    "write_faults",
]

SITES = (
    "activations", "inputs", "weights", "biases", "accumulators", "psums",
    "pe_weight", "pe_input", "pe_psum",
)  # fmt: skip
SiteKind = Literal[
    "activations", "inputs", "weights", "biases", "accumulators", "psums",
    "pe_weight", "pe_input", "pe_psum",
]  # fmt: skip
MODELS = ("bitflip", "stuck_at_0", "stuck_at_1", "random")

FAULT_DTYPE = np.dtype(
    [
        ("id", np.int64),
        ("group", np.int32),
        ("site", np.int32),  # index into the campaign's site table
        ("index", np.int64),  # element: flat, within one sample (or the constant)
        ("step", np.int32),  # partial sums: terms summed before the fault; else -1
        ("bit", np.int16),  # lowest bit hit; -1 for a random value
        ("nbits", np.int16),
        ("model", np.int8),  # index into MODELS
        ("and_mask", np.uint64),
        ("or_mask", np.uint64),
        ("xor_mask", np.uint64),
    ]
)

_LINEAR = ("QConv", "QGemm", "Conv", "Gemm", "MatMul")
_INTEGER_LINEAR = ("QConv", "QGemm")
# ops that only move data: their outputs are their inputs, laid out anew
_MOVES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dequantize")
# protection hardware (its own faults are out of scope: it is the checker)
_PROTECTION = ("RangeRestrict", "AbftCheck", "Vote")


# ------------------------------------------------------------ fault models
@call_form("bitflip")
@dataclass(frozen=True)
class BitFlip:
    """Flip ``k`` bits: adjacent ones (a burst) or any ``k`` distinct ones."""

    k: int = 1
    adjacent: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 64:
            raise ValueError(f"k must lie in 1..64, got {self.k}")


@call_form("stuck_at")
@dataclass(frozen=True)
class StuckAt:
    """A bit stuck at 0 or 1: permanent, so on every inference of the run."""

    value: int

    def __post_init__(self) -> None:
        if self.value not in (0, 1):
            raise ValueError(f"a bit is stuck at 0 or 1, not {self.value}")


@call_form("random")
@dataclass(frozen=True)
class RandomValue:
    """The element replaced by a uniformly random bit pattern of its width."""


FaultModel = BitFlip | StuckAt | RandomValue


@call_form("auto")
@dataclass(frozen=True)
class Auto:
    """A statistical sample size (Leveugle et al.) for the population at hand."""

    confidence: float = 0.95
    margin: float = 0.01
    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got {self.confidence}")
        if not 0.0 < self.margin < 0.5:
            raise ValueError(f"margin must lie strictly between 0 and 0.5, got {self.margin}")
        if not 0.0 < self.p < 1.0:
            raise ValueError(f"p must lie strictly between 0 and 1, got {self.p}")


def model_name(model: FaultModel) -> str:
    if isinstance(model, BitFlip):
        return (
            "bitflip"
            if model.k == 1
            else f"bitflip({model.k}{'' if model.adjacent else ', random'})"
        )
    if isinstance(model, StuckAt):
        return f"stuck_at_{model.value}"
    return "random"


# ------------------------------------------------------------------- sites
@dataclass(frozen=True)
class Site:
    """One place faults can hit: ``kind`` of ``layer``, held in ``tensor``."""

    kind: str
    layer: str
    tensor: str
    elements: int  # per sample (activations, inputs, accumulators, psums) or in all
    width: int  # bits of the representation
    signed: bool
    is_float: bool
    steps: int = 0  # partial sums: the reduction length K

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "layer": self.layer,
            "tensor": self.tensor,
            "elements": self.elements,
            "width": self.width,
            "signed": self.signed,
            "is_float": self.is_float,
            "steps": self.steps,
        }


def _per_sample(graph: Graph, tensor: str) -> int:
    shape = graph.tensors[tensor].shape
    if not shape or shape[0] != BATCH:
        return 0
    return int(math.prod(int(d) for d in shape[1:]))


def _word(graph: Graph, tensor: str, where: str) -> tuple[int, bool, bool]:
    dtype = graph.tensors[tensor].dtype
    if dtype.is_float:
        if dtype.bits != 32:
            raise UserError(f"{where}: faults hit float32 or integer tensors, not {dtype}")
        return 32, True, True
    return dtype.bits, dtype.signed, False


def _reduction(graph: Graph, node: Node) -> int:
    w = graph.constants[node.inputs[1]]
    if node.op == "QConv":
        return int(math.prod(w.shape[1:]))
    return int(w.shape[1])


def sites_of(graph: Graph, layers: Sequence[str], kind: str) -> list[Site]:
    """The fault sites of ``kind`` in the given layers (an error when there are none)."""
    if kind not in SITES:
        raise UserError(f"unknown fault site {kind!r}; one of {', '.join(SITES)}")
    out: list[Site] = []
    for name in layers:
        node = graph.nodes[name]
        where = f"layer {name!r}"
        if kind == "activations":
            if node.op in (*_MOVES, *_PROTECTION):
                continue
            for t in node.outputs:
                if t and _per_sample(graph, t):
                    width, signed, is_float = _word(graph, t, where)
                    out.append(Site(kind, name, t, _per_sample(graph, t), width, signed, is_float))
        elif kind == "inputs":
            t = node.inputs[0] if node.inputs else ""
            # a Quantize node's input is the float data before the accelerator
            skip = node.op in (*_MOVES, *_PROTECTION, "Quantize")
            if skip or not t or t in graph.constants or not _per_sample(graph, t):
                continue
            width, signed, is_float = _word(graph, t, where)
            out.append(Site(kind, name, t, _per_sample(graph, t), width, signed, is_float))
        elif kind in ("weights", "biases"):
            slot = 1 if kind == "weights" else 2
            if node.op not in _LINEAR or len(node.inputs) <= slot:
                continue
            t = node.inputs[slot]
            if not t or t not in graph.constants:
                continue
            value = graph.constants[t]
            if t in graph.tensors:
                width, signed, is_float = _word(graph, t, where)
            elif value.dtype == np.float32:
                width, signed, is_float = 32, True, True
            else:
                width, signed, is_float = value.dtype.itemsize * 8, value.dtype.kind == "i", False
            out.append(Site(kind, name, t, int(value.size), width, signed, is_float))
        elif kind.startswith("pe_"):
            if node.op not in _INTEGER_LINEAR:
                if node.op in _LINEAR:
                    raise UserError(
                        f"{where} is a float {node.op}: PE faults hit the integer array; "
                        "quantize the model first"
                    )
                continue
            from axc.faults import pe

            array = pe.array_of(graph)
            mult = pe.layer_multiplier(graph, node)
            width = pe.register_width(kind[3:], mult, int(node.attrs["acc_bits"]))
            cycles = sum(t.cycles for plan in pe.layer_schedule(graph, node, array) for t in plan)
            # elements: the PEs, row-major; steps: the cycles of one input's run, plus one
            elements = array.rows * array.cols
            out.append(Site(kind, name, node.outputs[0], elements, width, True, False, cycles + 1))
        else:  # accumulators, psums
            if node.op not in _INTEGER_LINEAR:
                if node.op in _LINEAR:
                    raise UserError(
                        f"{where} is a float {node.op}: "
                        f"{'accumulator' if kind == 'accumulators' else 'partial-sum'} faults "
                        "hit integer accumulators; quantize the model first"
                    )
                continue
            t = node.outputs[0]
            steps = _reduction(graph, node) if kind == "psums" else 0
            if kind == "psums" and steps < 2:
                continue
            out.append(
                Site(
                    kind,
                    name,
                    t,
                    _per_sample(graph, t),
                    int(node.attrs["acc_bits"]),
                    True,
                    False,
                    steps,
                )
            )
    if not out:
        what = {
            "weights": "Conv or Gemm layers with constant weights",
            "biases": "Conv or Gemm layers with a bias",
            "accumulators": "integer Conv or Gemm layers",
            "psums": "integer Conv or Gemm layers",
            "pe_weight": "integer Conv or Gemm layers",
            "pe_input": "integer Conv or Gemm layers",
            "pe_psum": "integer Conv or Gemm layers",
        }.get(kind, "layers with a tensor per sample")
        raise UserError(
            f"no {kind} to inject into: the selected layers ({', '.join(layers)}) hold no {what}"
        )
    return out


# -------------------------------------------------------------- generation
@dataclass(frozen=True)
class FaultGroup:
    """One ``inject`` directive: its layers, site kind, model, bits and count."""

    kind: str
    layers: tuple[str, ...]
    model: FaultModel = field(default_factory=BitFlip)
    bits: Any = "any"  # "any", "msb" or a tuple of bit positions
    count: Any = field(default_factory=Auto)  # int, Auto or "all"
    per: str = "none"  # "none", "layer" or "bit"
    where: str = ""  # the directive's location, for messages


def _bit_set(group: FaultGroup, site: Site) -> list[int]:
    if group.bits == "any":
        return list(range(site.width))
    if group.bits == "msb":
        return [site.width - 1]
    bits = sorted({int(b) for b in group.bits})
    for b in bits:
        if not 0 <= b < site.width:
            raise UserError(
                f"{group.where}bit {b} is beyond the {site.width}-bit {site.kind} of layer "
                f"{site.layer!r} (bits 0..{site.width - 1})"
            )
    return bits


def _choices(group: FaultGroup, site: Site) -> list[tuple[int, ...]]:
    """The bit sets one fault at one element can hit."""
    bits = _bit_set(group, site)
    model = group.model
    if isinstance(model, RandomValue):
        return [()]
    if isinstance(model, StuckAt) or model.k == 1:
        return [(b,) for b in bits]
    k = model.k
    if k > site.width:
        raise UserError(
            f"{group.where}bitflip({k}) needs {k} bits; the {site.kind} of layer "
            f"{site.layer!r} have {site.width}"
        )
    if model.adjacent:
        if group.bits == "msb":
            return [tuple(range(site.width - k, site.width))]
        starts = [b for b in bits if b + k <= site.width]
        if group.bits != "any":
            starts = [b for b in bits if all(b + j in bits for j in range(k))]
        return [tuple(range(b, b + k)) for b in starts]
    if math.comb(len(bits), k) > 1 << 20:
        raise UserError(f"{group.where}bitflip({k}, adjacent=false): too many bit combinations")
    return list(itertools.combinations(bits, k))


def _masks(
    model: FaultModel, site: Site, bits: tuple[int, ...], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """(and_mask, or_mask, xor_mask, model index) for one fault."""
    full = (1 << site.width) - 1
    if isinstance(model, RandomValue):
        return 0, int(rng.integers(0, full, endpoint=True, dtype=np.uint64)), 0, 3
    pattern = sum(1 << b for b in bits)
    if isinstance(model, StuckAt):
        if model.value == 0:
            return full & ~pattern, 0, 0, 1
        return full, pattern, 0, 2
    return full, 0, pattern, 0


def _sample(population: int, count: Any, rng: np.random.Generator, where: str) -> np.ndarray:
    from axc.faults.stats import sample_size

    if population == 0:
        return np.zeros(0, np.int64)
    if count == "all":
        return np.arange(population, dtype=np.int64)
    if isinstance(count, Auto):
        n = sample_size(population, count.margin, count.confidence, count.p)
    else:
        n = int(count)
        if n <= 0:
            raise UserError(f"{where}count must be positive, got {n}")
    if n >= population:
        return np.arange(population, dtype=np.int64)
    picked = rng.choice(population, size=n, replace=False)
    return np.sort(picked).astype(np.int64)


def generate(
    groups: Sequence[FaultGroup], graph: Graph, seed: int
) -> tuple[np.ndarray, list[Site], list[dict[str, Any]]]:
    """Fault list, site table and per-stratum plan for ``groups``, from ``seed``.

    Each group draws from its own stream (seeded by the seed and the group's
    position), so the faults of one directive do not change when another is
    added. Within a stratum (the whole group, each layer, or each bit
    position, as ``per`` says) faults are drawn without replacement."""
    sites: list[Site] = []
    site_index: dict[tuple[str, str, str], int] = {}
    rows: list[np.ndarray] = []
    plan: list[dict[str, Any]] = []
    for g, group in enumerate(groups):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, g])
        group_sites = sites_of(graph, group.layers, group.kind)
        ids = []
        for s in group_sites:
            key = (s.kind, s.layer, s.tensor)
            if key not in site_index:
                site_index[key] = len(sites)
                sites.append(s)
            ids.append(site_index[key])
        choices = [_choices(group, s) for s in group_sites]
        if isinstance(group.model, StuckAt):  # a stuck PE register holds for the whole run
            group_sites = [
                dataclasses.replace(s, steps=0) if s.kind.startswith("pe_") else s
                for s in group_sites
            ]
        # one population cell: (site, element, step, choice)
        cells = [
            (sid, s, ch, s.elements * max(1, s.steps - 1) * len(ch))
            for sid, s, ch in zip(ids, group_sites, choices, strict=True)
        ]
        strata: list[tuple[str, list[tuple[int, Site, list[tuple[int, ...]], int]]]] = []
        if group.per == "layer":
            strata = [(s.layer, [c]) for c in cells for s in [c[1]]]
        elif group.per == "bit":
            positions = sorted({ch[0] if ch else -1 for c in cells for ch in c[2]})
            for b in positions:
                part = []
                for sid, s, ch, _ in cells:
                    mine = [c for c in ch if (c[0] if c else -1) == b]
                    if mine:
                        part.append((sid, s, mine, s.elements * max(1, s.steps - 1) * len(mine)))
                strata.append((f"bit {b}", part))
        else:
            strata = [("all", cells)]
        for label, part in strata:
            population = sum(c[3] for c in part)
            picked = _sample(population, group.count, rng, group.where)
            plan.append(
                {"group": g, "stratum": label, "population": population, "faults": len(picked)}
            )
            if not len(picked):
                continue
            bounds = np.cumsum([0] + [c[3] for c in part])
            block = np.zeros(len(picked), FAULT_DTYPE)
            block["group"] = g
            for j, p in enumerate(picked):
                cell = int(np.searchsorted(bounds, p, side="right") - 1)
                sid, s, ch, _ = part[cell]
                rest = int(p - bounds[cell])
                rest, which = divmod(rest, len(ch))
                steps = max(1, s.steps - 1)
                element, step = divmod(rest, steps)
                bits = ch[which]
                a, o, x, m = _masks(group.model, s, bits, rng)
                block[j] = (
                    0,
                    g,
                    sid,
                    element,
                    step + 1 if s.steps else -1,
                    min(bits) if bits else -1,
                    len(bits) if bits else s.width,
                    m,
                    a,
                    o,
                    x,
                )
            rows.append(block)
    faults = np.concatenate(rows) if rows else np.zeros(0, FAULT_DTYPE)
    faults["id"] = np.arange(len(faults))
    return faults, sites, plan


def group_to_dict(group: FaultGroup) -> dict[str, Any]:
    """A fault group as plain data (for metadata, JSON and the results file)."""
    model: dict[str, Any]
    if isinstance(group.model, BitFlip):
        model = {"name": "bitflip", "k": group.model.k, "adjacent": group.model.adjacent}
    elif isinstance(group.model, StuckAt):
        model = {"name": "stuck_at", "value": group.model.value}
    else:
        model = {"name": "random"}
    count: Any = group.count
    if isinstance(count, Auto):
        count = {"auto": {"confidence": count.confidence, "margin": count.margin, "p": count.p}}
    return {
        "site": group.kind,
        "layers": list(group.layers),
        "model": model,
        "bits": group.bits if isinstance(group.bits, str) else list(group.bits),
        "count": count,
        "per": group.per,
    }


def group_from_dict(data: dict[str, Any]) -> FaultGroup:
    m = data["model"]
    model: FaultModel
    if m["name"] == "bitflip":
        model = BitFlip(int(m["k"]), bool(m["adjacent"]))
    elif m["name"] == "stuck_at":
        model = StuckAt(int(m["value"]))
    else:
        model = RandomValue()
    count = data["count"]
    if isinstance(count, dict):
        count = Auto(**count["auto"])
    bits = data["bits"] if isinstance(data["bits"], str) else tuple(data["bits"])
    where = f"{data['location']}: " if data.get("location") else ""
    return FaultGroup(data["site"], tuple(data["layers"]), model, bits, count, data["per"], where)


# -------------------------------------------------------------- application
def apply_masks(
    values: np.ndarray, site: Site, and_m: np.ndarray, or_m: np.ndarray, xor_m: np.ndarray
) -> np.ndarray:
    """``values`` (any shape) with each element's word corrupted by its masks."""
    if site.is_float:
        if values.dtype != np.float32:
            raise UserError(
                f"layer {site.layer!r}: float faults hit float32 tensors, not {values.dtype}"
            )
        word = values.view(np.uint32).astype(np.uint64)
        word = ((word & and_m) | or_m) ^ xor_m
        return (word & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    full = np.uint64((1 << site.width) - 1)
    word = values.astype(np.int64).view(np.uint64) & full
    word = (((word & and_m) | or_m) ^ xor_m) & full
    signed = word.view(np.int64)
    if site.signed:
        half = np.int64(1) << np.int64(site.width - 1)
        signed = np.where(signed >= half, signed - (half << np.int64(1)), signed)
    return signed.astype(values.dtype)


# ------------------------------------------------------------------ files
_COLUMNS = (
    "id",
    "group",
    "site",
    "layer",
    "tensor",
    "index",
    "step",
    "bit",
    "nbits",
    "model",
    "and_mask",
    "or_mask",
    "xor_mask",
)


def write_faults(path: str | os.PathLike[str], faults: np.ndarray, sites: Sequence[Site]) -> None:
    """A fault list as CSV, one fault per row (masks in hex), replayable by :func:`read_faults`."""
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(_COLUMNS)
            for f in faults:
                s = sites[int(f["site"])]
                out.writerow(
                    [
                        int(f["id"]),
                        int(f["group"]),
                        s.kind,
                        s.layer,
                        s.tensor,
                        int(f["index"]),
                        int(f["step"]),
                        int(f["bit"]),
                        int(f["nbits"]),
                        MODELS[int(f["model"])],
                        hex(int(f["and_mask"])),
                        hex(int(f["or_mask"])),
                        hex(int(f["xor_mask"])),
                    ]
                )
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}") from None


def read_faults(path: str | os.PathLike[str], graph: Graph) -> tuple[np.ndarray, list[Site]]:
    """A fault list written by :func:`write_faults`, checked against ``graph``."""
    sites: list[Site] = []
    index: dict[tuple[str, str], int] = {}
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or set(_COLUMNS) - set(reader.fieldnames):
                raise UserError(f"{path}: not an axc fault list (columns {', '.join(_COLUMNS)})")
            for line, r in enumerate(reader, start=2):
                try:
                    key = (r["site"], r["layer"])
                    if key not in index:
                        if r["layer"] not in graph.nodes:
                            raise UserError(f"{path}:{line}: no layer {r['layer']!r} in the model")
                        found = [
                            s
                            for s in sites_of(graph, [r["layer"]], r["site"])
                            if s.tensor == r["tensor"]
                        ]
                        if not found:
                            raise UserError(
                                f"{path}:{line}: layer {r['layer']!r} has no {r['site']} "
                                f"tensor {r['tensor']!r}"
                            )
                        index[key] = len(sites)
                        sites.append(found[0])
                    s = sites[index[key]]
                    element = int(r["index"])
                    size = s.elements
                    if not 0 <= element < size:
                        raise UserError(f"{path}:{line}: index {element} outside 0..{size - 1}")
                    bit = int(r["bit"])
                    if bit >= s.width:
                        raise UserError(
                            f"{path}:{line}: bit {bit} is beyond the {s.width}-bit word"
                        )
                    if r["model"] not in MODELS:
                        raise UserError(f"{path}:{line}: unknown fault model {r['model']!r}")
                    rows.append(
                        (
                            int(r["id"]),
                            int(r["group"]),
                            index[key],
                            element,
                            int(r["step"]),
                            bit,
                            int(r["nbits"]),
                            MODELS.index(r["model"]),
                            int(r["and_mask"], 16),
                            int(r["or_mask"], 16),
                            int(r["xor_mask"], 16),
                        )
                    )
                except (KeyError, ValueError, TypeError) as exc:
                    raise UserError(f"{path}:{line}: malformed fault ({exc})") from None
    except OSError as exc:
        raise UserError(f"cannot read fault list {path}: {exc}") from None
    if not rows:
        raise UserError(f"{path}: the fault list is empty")
    return np.array(rows, FAULT_DTYPE), sites
