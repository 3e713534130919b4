"""Element types, quantization parameters and tensor descriptions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BATCH",
    "FLOAT32",
    "Dim",
    "ElemType",
    "QuantParams",
    "Shape",
    "TensorInfo",
    "concrete_shape",
]

#: The one symbolic dimension axc accepts: the free batch size, always dim 0.
BATCH = "N"

Dim = int | str
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class ElemType:
    """A scalar element type: ``float`` with 16/32/64 bits, ``int`` with any
    width from 1 to 64 bits and a signedness, or ``bool``."""

    kind: str
    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "bool"):
            raise ValueError(f"unknown element kind {self.kind!r}")
        if not 1 <= self.bits <= 64:
            raise ValueError(f"bit width {self.bits} outside 1..64")

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    def __str__(self) -> str:
        if self.kind == "float":
            return f"float{self.bits}"
        if self.kind == "bool":
            return "bool"
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @staticmethod
    def parse(text: str) -> ElemType:
        if text == "bool":
            return ElemType("bool", 1, False)
        for prefix, kind, signed in (
            ("float", "float", True),
            ("uint", "int", False),
            ("int", "int", True),
        ):
            if text.startswith(prefix) and text[len(prefix) :].isdigit():
                return ElemType(kind, int(text[len(prefix) :]), signed)
        raise ValueError(f"unknown element type {text!r}")

    def numpy_dtype(self) -> np.dtype:
        """The numpy type that holds values of this type (widened to a byte multiple)."""
        if self.kind == "bool":
            return np.dtype(np.bool_)
        if self.kind == "float":
            return np.dtype(f"float{self.bits}")
        width = 8
        while width < self.bits:
            width *= 2
        return np.dtype(f"{'int' if self.signed else 'uint'}{width}")

    @staticmethod
    def from_numpy(dtype: np.dtype | type) -> ElemType:
        dt = np.dtype(dtype)
        if dt == np.bool_:
            return ElemType("bool", 1, False)
        if dt.kind == "f":
            return ElemType("float", dt.itemsize * 8)
        if dt.kind in "iu":
            return ElemType("int", dt.itemsize * 8, dt.kind == "i")
        raise ValueError(f"numpy type {dt} has no axc element type")


FLOAT32 = ElemType("float", 32)


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: ``real = scale * (q - zero_point)``.

    ``axis`` is None for per-tensor parameters, else the channel axis the
    1-D ``scale``/``zero_point`` arrays run along."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        if len(self.scale) != len(self.zero_point):
            raise ValueError("scale and zero_point differ in length")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor quantization takes one scale")


@dataclass
class TensorInfo:
    """What the IR knows about a tensor: shape, element type, quantization."""

    name: str
    shape: Shape
    dtype: ElemType = FLOAT32
    quant: QuantParams | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return len(self.shape)

    def shape_str(self) -> str:
        return "x".join(str(d) for d in self.shape) if self.shape else "scalar"


def concrete_shape(shape: Shape, batch: int) -> tuple[int, ...]:
    """Replace the symbolic batch dimension with ``batch``."""
    return tuple(batch if isinstance(d, str) else d for d in shape)
