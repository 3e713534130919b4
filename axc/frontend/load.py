"""Reading an ONNX file safely.

Everything that can be wrong with the file itself (missing, not a model,
truncated, external data pointing outside the model's folder, an opset axc
does not know) becomes one :class:`~axc.errors.ModelError` here, before any
import work starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from axc.errors import ModelError

__all__ = ["MAX_OPSET", "MIN_OPSET", "check_opset", "load_model_proto"]

MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()


def _tensors_with_external_data(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.HasField("data_location") and tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def _check_external_data(model: onnx.ModelProto, base: Path) -> None:
    """Refuse external-data locations that are absolute or leave the model's folder."""
    root = base.resolve()
    for tensor in _tensors_with_external_data(model):
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"tensor {tensor.name!r}: external data location {location!r}"
        if not location:
            raise ModelError(f"{where} is empty")
        if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location:
            raise ModelError(
                f"{where} is an absolute path; axc reads external data only "
                f"from the model's own folder {root}"
            )
        target = (root / location).resolve()
        if target != root and root not in target.parents:
            raise ModelError(f"{where} points outside the model's folder {root}; refused")
        if not target.is_file():
            raise ModelError(f"{where}: file {target} does not exist")


def load_model_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load and validate ``path``; every failure is a :class:`ModelError`."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such file")
    if not p.is_file():
        raise ModelError(f"{p}: not a file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"{p}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise ModelError(
            f"{p}: not an ONNX model (no IR version or empty graph); "
            "is the file truncated or of another format?"
        )
    _check_external_data(model, p.parent)
    if any(True for _ in _tensors_with_external_data(model)):
        try:
            external_data_helper.load_external_data_for_model(model, str(p.parent))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{p}: cannot read external tensor data: {exc}") from None
    check_opset(model, str(p))
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{p}: invalid ONNX model: {first}") from None
    return model


def check_opset(model: onnx.ModelProto, where: str = "model") -> int:
    """The default-domain opset, which must lie in MIN_OPSET..MAX_OPSET."""
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    if version is None:
        raise ModelError(f"{where}: the model imports no default-domain opset")
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise ModelError(
            f"{where}: opset {version} is outside the supported range {MIN_OPSET}..{MAX_OPSET}"
        )
    return version
