"""The IR on disk: a JSON description plus an .npz of constants.

``model.axc.json`` holds nodes, tensors, inputs, outputs and metadata;
``model.axc.npz`` holds the constants. :func:`read_ir` restores a graph
equal to the one written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from axc.ir.graph import Graph, Node
from axc.ir.types import ElemType, QuantParams, TensorInfo

__all__ = ["FORMAT_VERSION", "graph_to_dict", "read_ir", "write_ir"]

FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _tensor(info: TensorInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"shape": list(info.shape), "dtype": str(info.dtype)}
    if info.quant is not None:
        out["quant"] = {
            "scale": list(info.quant.scale),
            "zero_point": list(info.quant.zero_point),
            "axis": info.quant.axis,
        }
    return out


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    return {
        "format": "axc-ir",
        "version": FORMAT_VERSION,
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "metadata": _plain(graph.metadata),
        "tensors": {name: _tensor(info) for name, info in graph.tensors.items()},
        "constants": sorted(graph.constants),
        "nodes": [
            {
                "name": n.name,
                "op": n.op,
                "inputs": n.inputs,
                "outputs": n.outputs,
                "attrs": _plain(n.attrs),
                "annotations": _plain(n.annotations),
            }
            for n in graph.topological()
        ],
    }


def write_ir(graph: Graph, json_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``X.axc.json`` and ``X.axc.npz``; returns both paths."""
    path = Path(json_path)
    npz = path.with_suffix(".npz")
    path.write_text(json.dumps(graph_to_dict(graph), indent=1) + "\n", encoding="utf-8")
    names = sorted(graph.constants)
    with open(npz, "wb") as handle:
        arrays: dict[str, Any] = {f"c{i}": graph.constants[n] for i, n in enumerate(names)}
        np.savez(handle, **arrays)
    return path, npz


def _attr(value: Any) -> Any:
    return tuple(_attr(v) for v in value) if isinstance(value, list) else value


def read_ir(json_path: str | os.PathLike[str]) -> Graph:
    path = Path(json_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != "axc-ir" or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not an axc IR file of version {FORMAT_VERSION}")
    graph = Graph(data["name"])
    graph.metadata = data["metadata"]
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
        for i, name in enumerate(data["constants"]):
            graph.constants[name] = npz[f"c{i}"]
    for name, t in data["tensors"].items():
        quant = t.get("quant")
        graph.tensors[name] = TensorInfo(
            name,
            tuple(t["shape"]),
            ElemType.parse(t["dtype"]),
            QuantParams(tuple(quant["scale"]), tuple(quant["zero_point"]), quant["axis"])
            if quant
            else None,
        )
    graph.inputs = list(data["inputs"])
    for n in data["nodes"]:
        attrs = {k: _attr(v) for k, v in n["attrs"].items()}
        graph.add_node(
            Node(
                n["name"],
                n["op"],
                list(n["inputs"]),
                list(n["outputs"]),
                attrs,
                dict(n["annotations"]),
            )
        )
    graph.outputs = list(data["outputs"])
    return graph
