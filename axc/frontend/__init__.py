"""ONNX import and export."""

from axc.frontend.converters import SUPPORTED_OPS
from axc.frontend.onnx_export import export_model, save
from axc.frontend.onnx_import import import_model, load

__all__ = ["SUPPORTED_OPS", "export_model", "import_model", "load", "save"]
