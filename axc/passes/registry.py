"""The pass registry. A directive names a pass; adding a pass adds a directive.

A pass is a class with a ``name`` (the directive keyword), a frozen
dataclass ``Params`` of typed options, and ``run``. Built-in passes register
with :func:`register_pass`; out-of-tree ones through the entry-point group
``axc.passes``, loaded the first time a name is not found.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from axc.errors import UserError
from axc.ir import Graph

__all__ = ["Pass", "PassContext", "available_passes", "data_file", "get_pass", "register_pass"]

log = logging.getLogger(__name__)


@dataclass
class PassContext:
    """What a pass may need beyond the graph: where the model and directives
    came from, and a place for shared results (profiles, caches)."""

    model_path: str | None = None
    directives_path: str | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    #: work that runs once after the last directive (e.g. lowering quantization
    #: after all per-layer quantize directives), by name, in registration order
    finalizers: dict[str, Callable[[Graph, PassContext], None]] = field(default_factory=dict)
    #: checks of the final graph, after every lowering (a directive whose
    #: meaning depends on the lowered graph, such as ``inject``'s bit widths)
    checks: list[Callable[[Graph], None]] = field(default_factory=list)
    #: ``file:line:col`` of the directive running now
    location: str = ""


def data_file(given: str | None, ctx: PassContext, need: str) -> Path:
    """A pass's data set: ``given`` (looked up beside the directive file when
    relative), else ``calib.npz`` beside the model; ``need`` says what for."""
    if given is not None:
        path = Path(given)
        if not path.is_absolute() and not path.exists() and ctx.directives_path:
            beside = Path(ctx.directives_path).parent / path
            if beside.exists():
                return beside
        return path
    if ctx.model_path:
        beside = Path(ctx.model_path).parent / "calib.npz"
        if beside.is_file():
            return beside
    raise UserError(
        f"{need}: give data=FILE.npz (an array x of inputs), or put calib.npz beside the model"
    )


class Pass(ABC):
    #: the directive keyword
    name: ClassVar[str]
    #: a frozen dataclass of typed options; directive parameters fill it
    Params: ClassVar[type]
    #: one line for `axc check` and the docs
    summary: ClassVar[str] = ""
    #: whether the directive takes a layer selector
    selects: ClassVar[bool] = True
    #: the field a bare word or call after the pass name fills, if any
    positional: ClassVar[str | None] = None

    @abstractmethod
    def run(self, graph: Graph, targets: list[str], params: Any, ctx: PassContext) -> bool:
        """Transform ``graph`` in place for the selected ``targets``; return
        whether anything changed."""


_PASSES: dict[str, type[Pass]] = {}
_plugins_loaded = False


def register_pass(cls: type[Pass]) -> type[Pass]:
    if cls.name in _PASSES and _PASSES[cls.name] is not cls:
        raise ValueError(f"pass {cls.name!r} is registered twice")
    _PASSES[cls.name] = cls
    return cls


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in entry_points(group="axc.passes"):
        try:
            register_pass(entry.load())
        except Exception as exc:  # a broken plugin must not break axc
            log.warning("cannot load pass plugin %s: %s", entry.name, exc)


def get_pass(name: str) -> type[Pass] | None:
    _builtin()
    if name not in _PASSES:
        _load_plugins()
    return _PASSES.get(name)


def available_passes() -> dict[str, type[Pass]]:
    _builtin()
    _load_plugins()
    return dict(sorted(_PASSES.items()))


def _builtin() -> None:
    # importing the modules registers them
    from axc.passes import approximate, cut, inject, protect, quantize, reuse, target  # noqa: F401
