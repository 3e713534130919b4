"""axc's intermediate representation."""

from axc.ir.graph import Graph, Node
from axc.ir.ops import OPS, OpSchema, ShapeError, infer_shapes
from axc.ir.printer import to_dot, to_text
from axc.ir.serialize import read_ir, write_ir
from axc.ir.types import BATCH, FLOAT32, ElemType, QuantParams, TensorInfo, concrete_shape
from axc.ir.verify import VerificationError, verify

__all__ = [
    "BATCH",
    "FLOAT32",
    "OPS",
    "ElemType",
    "Graph",
    "Node",
    "OpSchema",
    "QuantParams",
    "ShapeError",
    "TensorInfo",
    "VerificationError",
    "concrete_shape",
    "infer_shapes",
    "read_ir",
    "to_dot",
    "to_text",
    "verify",
    "write_ir",
]
