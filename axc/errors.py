"""The two kinds of failure axc distinguishes.

A :class:`UserError` is caused by what the user gave us (a model, a directive
file, an output folder, a missing tool). The CLI prints its message and exits
with status 1, never with a traceback. Anything else is a bug in axc and exits
with status 2.
"""

from __future__ import annotations

__all__ = [
    "DirectiveError",
    "ModelError",
    "NeedsConstantError",
    "ToolError",
    "UnsupportedOpError",
    "UserError",
]


class UserError(Exception):
    """An error the user can fix; its message is shown as it is."""

    exit_code = 1


class ModelError(UserError):
    """The model file is missing, corrupt, unsafe or cannot be represented."""


class UnsupportedOpError(ModelError):
    """The model uses an op axc does not implement."""


class NeedsConstantError(ModelError):
    """An operand that axc needs as a constant (a shape, pads, a bound) is computed.

    ``tensor`` names it, so a caller that knows its value (the ONNX backend
    specializing on an input) can bind it and import again."""

    def __init__(self, message: str, tensor: str) -> None:
        super().__init__(message)
        self.tensor = tensor


class DirectiveError(UserError):
    """A directive file is wrong; the message carries file:line:col and a caret."""


class ToolError(UserError):
    """An external tool (a compiler, a simulator, yosys) axc needs is missing."""
