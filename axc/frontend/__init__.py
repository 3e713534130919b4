"""ONNX import and export."""

from axc.frontend.converters import SUPPORTED_OPS
from axc.frontend.onnx_import import import_model, load

__all__ = ["SUPPORTED_OPS", "import_model", "load"]
