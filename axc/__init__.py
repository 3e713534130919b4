"""axc: a compiler for cheap and dependable DNN accelerators."""

from axc.api import (
    CheckEntry,
    CompileResult,
    apply,
    check,
    compile,
    evaluate,
    export,
    inject,
    load,
    parse_directives,
    simulate,
)
from axc.errors import DirectiveError, ModelError, UnsupportedOpError, UserError
from axc.ir import Graph, Node, read_ir, to_dot, to_text, verify

__version__ = "0.1.0"

__all__ = [
    "CheckEntry",
    "CompileResult",
    "DirectiveError",
    "Graph",
    "ModelError",
    "Node",
    "UnsupportedOpError",
    "UserError",
    "__version__",
    "apply",
    "check",
    "compile",
    "evaluate",
    "export",
    "inject",
    "load",
    "parse_directives",
    "read_ir",
    "simulate",
    "to_dot",
    "to_text",
    "verify",
]
