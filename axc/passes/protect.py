"""``protect``: insert fault protection into the selected layers, as IR nodes.

    protect *              range(bounds=profile(100))          # Ranger-style, per layer
    protect *              range(profile(99.9), margin=0.1, granularity=per_channel, action=zero)
    protect op(Conv)       bounded_relu(bound=profile(100))
    protect op(Conv, Gemm) checksum()                          # ABFT, integer layers
    protect "/9/Gemm"      triplicate()                        # TMR with a voter
    protect "/7/Gemm"      duplicate()                         # DMR with a comparator

Range restriction and bounded ReLU add a ``RangeRestrict`` node after the
layer (bounds in the output's own integer codes, profiled now on the
calibration data and stored in the node). ``checksum`` gives an integer Conv
or Gemm a second output, each group's accumulator sum, and adds an
``AbftCheck`` node that recomputes it from the input and the weights'
column sums. ``duplicate`` and ``triplicate`` copy the layer and add a
``Vote`` node. Detection flags become graph outputs, listed in
``graph.metadata["due_outputs"]``: a campaign counts a flagged inference as a
detected fault (DUE), not as an SDC. The nodes are inserted after every
lowering (quantization first), so they act on the hardware's integers.
docs/protection.md describes each mechanism, its coverage and its cost.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from axc.directives.types import call_form
from axc.errors import UserError
from axc.ir import BATCH, ElemType, Graph, Node, TensorInfo
from axc.passes.registry import Pass, PassContext, data_file, register_pass

__all__ = [
    "BoundedRelu",
    "Checksum",
    "Duplicate",
    "NoProtection",
    "Profile",
    "Protect",
    "ProtectParams",
    "Range",
    "Triplicate",
    "protection_cost",
]

#: fewer profiling images than this gets a warning (Ranger's tools use 300)
MIN_PROFILE = 100
_MOVES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Quantize", "Dequantize")
_PROTECTION = ("RangeRestrict", "AbftCheck", "Vote")


@call_form("profile")
@dataclass(frozen=True)
class Profile:
    """Bounds from the calibration data: the (100 - p)-th and p-th percentiles."""

    p: float = 100.0

    def __post_init__(self) -> None:
        if not 50.0 < self.p <= 100.0:
            raise ValueError(f"profile(p) needs 50 < p <= 100, got {self.p}")


@call_form("range")
@dataclass(frozen=True)
class Range:
    """Range restriction (Ranger): out-of-range values clipped to the bound or zeroed."""

    bounds: Profile = field(default_factory=Profile)
    margin: float = 0.0
    action: Literal["clip", "zero"] = "clip"
    granularity: Literal["per_layer", "per_channel"] = "per_layer"

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 10.0:
            raise ValueError(
                f"margin is a fraction of the profiled range, 0..10; got {self.margin}"
            )


@call_form("bounded_relu")
@dataclass(frozen=True)
class BoundedRelu:
    """A ReLU clipped at a profiled bound, or at ``bound`` (in real units)."""

    bound: Profile | float = field(default_factory=Profile)
    granularity: Literal["per_layer", "per_channel"] = "per_layer"


@call_form("checksum")
@dataclass(frozen=True)
class Checksum:
    """ABFT: each group's accumulator sum against one recomputed from the input."""


@call_form("duplicate")
@dataclass(frozen=True)
class Duplicate:
    """Two copies and a comparator: a difference is detected (DUE)."""


@call_form("triplicate")
@dataclass(frozen=True)
class Triplicate:
    """Three copies and a majority voter: one faulty copy is outvoted."""


@call_form("none")
@dataclass(frozen=True)
class NoProtection:
    """No protection: what an exploration writes to turn a layer's protection off."""


Mechanism = Range | BoundedRelu | Checksum | Duplicate | Triplicate | NoProtection
_NAMES = {
    NoProtection: "none",
    Range: "range",
    BoundedRelu: "bounded_relu",
    Checksum: "checksum",
    Duplicate: "duplicate",
    Triplicate: "triplicate",
}


@dataclass(frozen=True)
class ProtectParams:
    mechanism: Mechanism
    #: images to profile bounds on (default: calib.npz beside the model)
    data: str | None = None
    samples: int = 300

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be positive, got {self.samples}")


@register_pass
class Protect(Pass):
    name = "protect"
    Params = ProtectParams
    summary = "insert range restriction, bounded ReLU, ABFT checksums or redundancy"
    positional = "mechanism"

    def run(
        self, graph: Graph, targets: list[str], params: ProtectParams, ctx: PassContext
    ) -> bool:
        if ctx.shared.get("skip_protect") or isinstance(params.mechanism, NoProtection):
            return False  # the unprotected twin of a comparison, or protection off
        where = ctx.location
        data = (
            _data_path(params, ctx) if isinstance(params.mechanism, (Range, BoundedRelu)) else None
        )
        ctx.checks.append(lambda g: _insert(g, targets, params, data, where))
        return True


def _data_path(params: ProtectParams, ctx: PassContext) -> Path:
    return data_file(params.data, ctx, "protect needs data to profile bounds on")


def _fail(where: str, message: str) -> UserError:
    return UserError(f"{where}: {message}" if where else message)


def _covered(graph: Graph, name: str, mechanism: Mechanism, where: str) -> bool:
    """Whether ``mechanism`` applies to layer ``name``; an error when it cannot."""
    node = graph.nodes[name]
    label = _NAMES[type(mechanism)]
    if node.op in _PROTECTION or node.op in _MOVES:
        return False
    out = node.outputs[0] if node.outputs else ""
    per_sample = bool(out) and graph.tensors[out].shape[:1] == (BATCH,)
    if isinstance(mechanism, Checksum):
        if node.op not in ("QConv", "QGemm"):
            raise _fail(
                where,
                f"checksum protects integer Conv and Gemm layers (quantize first); layer "
                f"{name!r} is a {node.op}",
            )
        if node.op == "QConv" and len(node.attrs["kernel_shape"]) != 2:
            raise _fail(where, f"checksum needs a 2-D convolution; layer {name!r} is not one")
        if node.annotations.get("multiplier") not in (None, "exact"):
            raise _fail(
                where,
                f"checksum cannot cover layer {name!r}: its approximate multiplier makes the "
                "products non-linear, so column sums do not predict the accumulator sum",
            )
        return True
    if not per_sample:
        raise _fail(where, f"{label} needs a layer with a per-sample output; {name!r} has none")
    if isinstance(mechanism, BoundedRelu):
        info = graph.tensors[out]
        relu = node.attrs.get("activation") == "relu"
        if not info.dtype.is_float and "requant" in node.attrs:
            req = node.attrs["requant"]
            relu = int(req["qmin"]) >= int(req["zero_point"])
        if not relu:
            raise _fail(where, f"bounded_relu replaces a ReLU; layer {name!r} ({node.op}) has none")
    return True


def _insert(
    graph: Graph, targets: list[str], params: ProtectParams, data: Path | None, where: str
) -> None:
    mechanism = params.mechanism
    present = [t for t in targets if t in graph.nodes]
    if len(present) == 1:  # one layer named: it must be one the mechanism covers
        layers = present if _covered(graph, present[0], mechanism, where) else []
    else:  # a wider selection: the layers the mechanism covers
        layers = []
        for t in present:
            try:
                if _covered(graph, t, mechanism, where):
                    layers.append(t)
            except UserError:
                continue
    if not layers:
        raise _fail(
            where,
            f"{_NAMES[type(mechanism)]} covers none of the selected layers ({', '.join(present)})",
        )
    if isinstance(mechanism, (Range, BoundedRelu)):
        assert data is not None
        _restrict(graph, layers, mechanism, params, data, where)
    elif isinstance(mechanism, Checksum):
        for name in layers:
            _checksum(graph, name)
    else:
        for name in layers:
            _replicate(graph, name, 2 if isinstance(mechanism, Duplicate) else 3)


# ------------------------------------------------------------------ bounds
def _profile(
    graph: Graph, tensors: list[str], params: ProtectParams, data: Path, where: str
) -> dict[str, np.ndarray]:
    """Every value each tensor takes on the profiling images (per channel: axis 1 first)."""
    from axc.sim import Executor
    from axc.sim.dataset import load_dataset

    dataset = load_dataset(data, graph, limit=params.samples)
    if len(dataset) < MIN_PROFILE:
        warnings.warn(
            f"{where}: protection bounds profiled on only {len(dataset)} images from {data}; "
            f"bounds from fewer than {MIN_PROFILE} are likely too tight (clean results may "
            "change)",
            stacklevel=2,
        )
    seen: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    executor = Executor(graph)

    def keep(name: str, value: np.ndarray) -> None:
        if name in seen:
            seen[name].append(np.asarray(value))

    for start in range(0, len(dataset), 256):
        executor.run({graph.inputs[0]: dataset.x[start : start + 256]}, observe=keep)
    return {t: np.concatenate(v) for t, v in seen.items()}


def _bounds(values: np.ndarray, p: float, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    if per_channel and values.ndim >= 2:
        flat = np.moveaxis(values, 1, 0).reshape(values.shape[1], -1).astype(np.float64)
        axis = 1
    else:
        flat = values.reshape(1, -1).astype(np.float64)
        axis = 1
    if p >= 100.0:
        return flat.min(axis=axis), flat.max(axis=axis)
    return np.percentile(flat, 100.0 - p, axis=axis), np.percentile(flat, p, axis=axis)


def _restrict(
    graph: Graph,
    layers: list[str],
    mechanism: Range | BoundedRelu,
    params: ProtectParams,
    data: Path,
    where: str,
) -> None:
    outputs = {name: graph.nodes[name].outputs[0] for name in layers}
    profile = mechanism.bounds if isinstance(mechanism, Range) else mechanism.bound
    per_channel = mechanism.granularity == "per_channel"
    seen = (
        _profile(graph, list(outputs.values()), params, data, where)
        if isinstance(profile, Profile)
        else {}
    )
    for name, tensor in outputs.items():
        info = graph.tensors[tensor]
        channel = per_channel and len(info.shape) >= 2
        if isinstance(profile, Profile):
            low, high = _bounds(seen[tensor], profile.p, channel)
        else:  # a given bound, in real units
            q = info.quant
            value = float(profile)
            if q is not None and not info.dtype.is_float:
                value = value / float(q.scale[0]) + float(q.zero_point[0])
            high = np.array([value])
            low = np.array([-np.inf])
        if isinstance(mechanism, Range) and mechanism.margin:
            span = high - low
            low, high = low - mechanism.margin * span, high + mechanism.margin * span
        if isinstance(mechanism, BoundedRelu):
            node = graph.nodes[name]
            floor = 0.0
            if not info.dtype.is_float and "requant" in node.attrs:
                floor = float(node.attrs["requant"]["zero_point"])
            low = np.full_like(high, floor)
        if info.dtype.is_float:
            lows = tuple(float(v) for v in low)
            highs = tuple(float(v) for v in high)
        else:
            dtype = info.dtype
            top = (1 << (dtype.bits - 1)) - 1 if dtype.signed else (1 << dtype.bits) - 1
            bottom = -(1 << (dtype.bits - 1)) if dtype.signed else 0
            lows = tuple(int(max(bottom, math.floor(v))) for v in low)
            highs = tuple(int(min(top, math.ceil(v))) for v in high)
        kind = "range" if isinstance(mechanism, Range) else "bounded_relu"
        attrs = {
            "low": lows,
            "high": highs,
            "axis": 1 if channel else None,
            "action": mechanism.action if isinstance(mechanism, Range) else "clip",
            "mechanism": kind,
        }
        _after(graph, name, "RangeRestrict", attrs, f"{name}.{kind}")


def _after(graph: Graph, name: str, op: str, attrs: dict[str, Any], label: str) -> str:
    """Insert ``op`` on layer ``name``'s output; its readers read the new node's output."""
    tensor = graph.nodes[name].outputs[0]
    info = graph.tensors[tensor]
    new = graph.unique_name(f"{tensor}.{op.lower()}")
    readers = [
        (n.name, i) for n in graph.consumers(tensor) for i, t in enumerate(n.inputs) if t == tensor
    ]
    graph.tensors[new] = TensorInfo(new, info.shape, info.dtype, info.quant)
    node = graph.add_node(Node(graph.unique_name(label), op, [tensor], [new], attrs))
    for reader, index in readers:
        graph.set_input(reader, index, new)
    graph.outputs = [new if t == tensor else t for t in graph.outputs]
    node.annotations["protect"] = {"layer": name, "mechanism": attrs.get("mechanism", op)}
    graph.nodes[name].annotations.setdefault("protected_by", []).append(node.name)
    return node.name


def _flag_output(graph: Graph, name: str) -> str:
    graph.tensors[name] = TensorInfo(name, (BATCH,), ElemType("int", 8, False))
    graph.outputs = [*graph.outputs, name]
    graph.metadata.setdefault("due_outputs", []).append(name)
    return name


# ---------------------------------------------------------------- checksum
def _checksum(graph: Graph, name: str) -> None:
    node = graph.nodes[name]
    a = node.attrs
    w = graph.constants[node.inputs[1]].astype(np.int64)
    zw = np.asarray(a["w_zero_point"], np.int64).reshape(-1)
    w = w - (zw.reshape((-1,) + (1,) * (w.ndim - 1)) if zw.size > 1 else zw[0])
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    b = graph.constants[bias].astype(np.int64) if bias else np.zeros(w.shape[0], np.int64)
    bits = int(a["acc_bits"])
    if node.op == "QConv":
        groups = int(a["group"])
        wsum = w.reshape(groups, w.shape[0] // groups, *w.shape[1:]).sum(axis=1)
        bsum = b.reshape(groups, -1).sum(axis=1)
        check = {k: a[k] for k in ("kernel_shape", "strides", "pads", "dilations", "group")}
        check["kind"] = "conv"
    else:
        wsum = w.sum(axis=0, keepdims=True)
        bsum = b.sum(keepdims=True)
        check = {"kind": "gemm", "group": 1}
    check.update({"x_zero_point": int(a["x_zero_point"]), "acc_bits": bits})
    node.attrs = {**a, "checksum": True}
    out = node.outputs[0]
    sums = graph.unique_name(f"{out}.sum")
    shape = graph.tensors[out].shape
    sum_shape = (shape[0], int(a["group"]), *shape[2:]) if node.op == "QConv" else (*shape[:-1], 1)
    graph.tensors[sums] = TensorInfo(sums, sum_shape, ElemType("int", bits, True))
    graph.remove_node(name)
    node.outputs = [out, sums]
    graph.add_node(node)
    ws = graph.add_constant(graph.unique_name(f"{name}.wsum"), wsum)
    bs = graph.add_constant(graph.unique_name(f"{name}.bsum"), bsum)
    for t, v in ((ws, wsum), (bs, bsum)):
        graph.tensors[t] = TensorInfo(t, v.shape, ElemType("int", 64, True))
    flag = _flag_output(graph, graph.unique_name(f"{name}.abft"))
    checker = graph.add_node(
        Node(
            graph.unique_name(f"{name}.abft_check"),
            "AbftCheck",
            [node.inputs[0], sums, ws, bs],
            [flag],
            check,
        )
    )
    checker.annotations["protect"] = {"layer": name, "mechanism": "checksum"}
    node.annotations.setdefault("protected_by", []).append(checker.name)


# -------------------------------------------------------------- redundancy
def _replicate(graph: Graph, name: str, copies: int) -> None:
    node = graph.nodes[name]
    out = node.outputs[0]
    info = graph.tensors[out]
    replicas = [out]
    for k in range(1, copies):
        t = graph.unique_name(f"{out}.copy{k}")
        graph.tensors[t] = TensorInfo(t, info.shape, info.dtype, info.quant)
        copy = graph.add_node(
            Node(
                graph.unique_name(f"{name}.copy{k}"),
                node.op,
                list(node.inputs),
                [t],
                # a copy computes the value only; a checksum stays with the original
                {a: v for a, v in node.attrs.items() if a != "checksum"},
                {
                    k2: v
                    for k2, v in node.annotations.items()
                    if k2 in ("multiplier", "multiplier_bits", "quantize", "reuse")
                },
            )
        )
        copy.annotations["replica_of"] = name
        replicas.append(t)
    mechanism = "duplicate" if copies == 2 else "triplicate"
    voted = graph.unique_name(f"{out}.voted")
    readers = [
        (n.name, i) for n in graph.consumers(out) for i, t in enumerate(n.inputs) if t == out
    ]
    graph.tensors[voted] = TensorInfo(voted, info.shape, info.dtype, info.quant)
    flag = _flag_output(graph, graph.unique_name(f"{name}.{mechanism}_flag"))
    voter = graph.add_node(
        Node(
            graph.unique_name(f"{name}.vote"),
            "Vote",
            replicas,
            [voted, flag],
            {"mechanism": mechanism},
        )
    )
    for reader, index in readers:
        graph.set_input(reader, index, voted)
    graph.outputs = [voted if t == out else t for t in graph.outputs]
    voter.annotations["protect"] = {"layer": name, "mechanism": mechanism}
    node.annotations.setdefault("protected_by", []).append(voter.name)


# --------------------------------------------------------------------- cost
def protection_cost(graph: Graph) -> list[dict[str, Any]]:
    """Per protection node: the mechanism, the layer, extra operations per image
    (comparisons, MACs, additions) and extra storage in bits."""
    from axc.ir.stats import layer_macs

    rows = []
    for node in graph.topological():
        note = node.annotations.get("protect")
        if not note:
            continue
        layer = graph.nodes.get(note["layer"])
        mechanism = note["mechanism"]
        row: dict[str, Any] = {"node": node.name, "layer": note["layer"], "mechanism": mechanism}
        if node.op == "RangeRestrict":
            shape = graph.tensors[node.inputs[0]].shape
            size = math.prod(int(d) for d in shape[1:])
            bits = graph.tensors[node.inputs[0]].dtype.bits
            bounds = len(node.attrs["high"]) + (
                0 if mechanism == "bounded_relu" else len(node.attrs["low"])
            )
            row.update(
                compares=(1 if mechanism == "bounded_relu" else 2) * size,
                macs=0,
                adds=0,
                storage_bits=bounds * bits,
            )
        elif node.op == "AbftCheck":
            sums = graph.tensors[node.inputs[1]].shape
            positions = math.prod(int(d) for d in sums[1:])
            ws = graph.constants[node.inputs[2]]
            per_position = int(ws.size) // max(1, int(node.attrs["group"]))
            m = graph.tensors[layer.outputs[0]].shape if layer else sums
            outputs = math.prod(int(d) for d in m[1:])
            row.update(
                compares=positions,
                macs=positions * per_position,
                adds=outputs,
                storage_bits=int(ws.size) * 32 + 32 * len(graph.constants[node.inputs[3]]),
            )
        else:  # Vote
            shape = graph.tensors[node.inputs[0]].shape
            size = math.prod(int(d) for d in shape[1:])
            copies = len([t for t in node.inputs if t])
            macs = layer_macs(graph, layer) * (copies - 1) if layer is not None else 0
            row.update(compares=size * (1 if copies == 2 else 3), macs=macs, adds=0, storage_bits=0)
        rows.append(row)
    return rows
