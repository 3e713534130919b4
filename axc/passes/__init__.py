"""Passes, their registry, directive binding and the pass manager."""

from axc.passes.manager import PassManager, PassRecord
from axc.passes.program import Program, bind
from axc.passes.registry import Pass, PassContext, available_passes, get_pass, register_pass

__all__ = [
    "Pass",
    "PassContext",
    "PassManager",
    "PassRecord",
    "Program",
    "available_passes",
    "bind",
    "get_pass",
    "register_pass",
]
