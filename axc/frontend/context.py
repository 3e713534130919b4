"""State shared by the ONNX converters while one model is imported."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from axc.errors import ModelError, NeedsConstantError
from axc.frontend.fold import is_symbolic
from axc.ir import Graph, Node, ShapeError, infer_shapes
from axc.ir.types import ElemType, Shape, TensorInfo

__all__ = ["ImportContext"]


class ImportContext:
    """Maps ONNX tensor names to IR tensors and constants while nodes are converted."""

    def __init__(self, graph: Graph, opset: int) -> None:
        self.graph = graph
        self.opset = opset
        self.alias: dict[str, str] = {}  # ONNX tensor name -> IR tensor name
        self.values: dict[str, np.ndarray] = {}  # folded values, incl. symbolic shapes
        # constants that came out of a DequantizeLinear: their integer values,
        # scale, zero point and axis, so QDQ fusion can use the integers
        self.dequantized: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int | None]] = {}
        self.onode: onnx.NodeProto | None = None
        self.node_name = ""

    # -------------------------------------------------------------- operands
    def ir(self, name: str) -> str:
        return self.alias.get(name, name)

    def value(self, name: str) -> np.ndarray | None:
        """The constant value of ONNX tensor ``name``, or None when it is computed."""
        if not name:
            return None
        return self.values.get(self.ir(name))

    def require_value(self, index: int, what: str) -> np.ndarray | None:
        """Operand ``index`` of the current node, which must be constant if present."""
        node = self.current
        if index >= len(node.input) or not node.input[index]:
            return None
        value = self.value(node.input[index])
        if value is None:
            raise NeedsConstantError(
                f"node {self.node_name!r} ({node.op_type}): its {what} (operand {index}, "
                f"{node.input[index]!r}) must be a constant: axc's IR has static shapes and "
                "parameters",
                node.input[index],
            )
        return value

    def numeric(self, index: int, what: str) -> np.ndarray | None:
        value = self.require_value(index, what)
        if value is not None and is_symbolic(value):
            self.fail(f"its {what} depends on the symbolic batch dimension")
        return value

    def shape(self, name: str) -> Shape:
        ir_name = self.ir(name)
        if ir_name in self.graph.tensors:
            return self.graph.tensors[ir_name].shape
        return tuple(self.values[ir_name].shape)

    def dtype(self, name: str) -> ElemType:
        ir_name = self.ir(name)
        if ir_name in self.graph.tensors:
            return self.graph.tensors[ir_name].dtype
        return ElemType.from_numpy(self.values[ir_name].dtype)

    @property
    def current(self) -> onnx.NodeProto:
        assert self.onode is not None
        return self.onode

    def attr(self, name: str, default: Any = None) -> Any:
        for a in self.current.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def fail(self, message: str) -> None:
        node = self.current
        raise ModelError(f"node {self.node_name!r} ({node.op_type}): {message}")

    # --------------------------------------------------------------- results
    def constant_operand(self, value: np.ndarray, hint: str) -> str:
        """Register a new constant made during conversion (e.g. a folded weight)."""
        name = self.graph.unique_name(f"{self.node_name}.{hint}")
        self.graph.add_constant(name, value)
        self.values[name] = self.graph.constants[name]
        return name

    def operand(self, name: str) -> str:
        """The IR tensor for ONNX operand ``name``, materializing folded constants."""
        if not name:
            return ""
        ir_name = self.ir(name)
        if ir_name in self.graph.tensors:
            return ir_name
        value = self.values.get(ir_name)
        if value is None:
            raise ModelError(f"tensor {name!r} is used before it is produced")
        if is_symbolic(value):
            self.fail(f"operand {name!r} depends on the symbolic batch dimension")
        self.graph.add_constant(ir_name, value)
        return ir_name

    def emit(
        self,
        op: str,
        inputs: list[str],
        attrs: dict[str, Any],
        outputs: list[str] | None = None,
        suffix: str = "",
        dtype: ElemType | None = None,
    ) -> list[str]:
        """Add one canonical node; returns its output tensor names.

        ``outputs`` are ONNX output names for the last node a converter emits;
        intermediate nodes get fresh names."""
        name = self.graph.unique_name(self.node_name + suffix)
        ir_inputs = [self.operand(i) for i in inputs]
        shapes = [self.graph.tensors[i].shape if i else () for i in ir_inputs]
        try:
            out_shapes = infer_shapes(op, attrs, shapes)
        except ShapeError as exc:
            self.fail(str(exc))
        if outputs is None:
            outputs = [
                self.graph.unique_name(f"{name}.out{k}" if k else f"{name}.out")
                for k in range(len(out_shapes))
            ]
        else:
            wanted = outputs
            outputs = [self.graph.unique_name(o) if o in self.graph.tensors else o for o in outputs]
            for onnx_name, ir_name in zip(wanted, outputs, strict=True):
                self.bind(onnx_name, ir_name)
        elem = dtype or (self.graph.tensors[ir_inputs[0]].dtype if ir_inputs else None)
        assert elem is not None
        for out, shape in zip(outputs, out_shapes, strict=True):
            self.graph.tensors[out] = TensorInfo(out, tuple(shape), elem)
        self.graph.add_node(Node(name, op, ir_inputs, list(outputs), attrs))
        return list(outputs)

    def bind(self, onnx_name: str, ir_name: str) -> None:
        """Record that ONNX tensor ``onnx_name`` is IR tensor ``ir_name``."""
        if onnx_name != ir_name:
            self.alias[onnx_name] = ir_name
