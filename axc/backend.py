"""The backend interface: how a compiled graph becomes something to build.

A backend is a class with a ``name``, a frozen dataclass of typed
``Options``, and ``lower(graph, options, outdir) -> Artifacts``. Backends are
found through the entry-point group ``axc.backends`` (the built-in ones
register the same way), so a package that declares

    [project.entry-points."axc.backends"]
    mybackend = "my_package:MyBackend"

adds ``axc compile ... --backend mybackend``. docs/backends.md walks
through writing one.
"""

from __future__ import annotations

import dataclasses
import logging
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from axc.directives.diagnostics import did_you_mean
from axc.errors import UserError
from axc.ir import Graph

__all__ = ["Artifacts", "Backend", "available_backends", "get_backend", "make_options"]

log = logging.getLogger(__name__)
GROUP = "axc.backends"


@dataclass
class Artifacts:
    """What a backend wrote: the files (below ``outdir``) and a summary for people
    and for ``--json``."""

    outdir: Path
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    """A backend without options."""


class Backend(ABC):
    #: the name after ``--backend``
    name: ClassVar[str]
    #: a frozen dataclass of typed options (``--option KEY=VALUE`` fills it)
    Options: ClassVar[type] = NoOptions
    #: one line for ``axc backends``
    summary: ClassVar[str] = ""

    @abstractmethod
    def lower(self, graph: Graph, options: Any, outdir: Path) -> Artifacts:
        """Write the lowered design into the existing, empty folder ``outdir``.

        Raise :class:`axc.UserError` for what the user can fix (a layer the
        backend cannot lower, a missing tool); anything else is a bug."""


_cache: dict[str, type[Backend]] | None = None


def available_backends() -> dict[str, type[Backend]]:
    """Every backend installed, by name (loaded once; a broken one is skipped with a warning)."""
    global _cache
    if _cache is None:
        found: dict[str, type[Backend]] = {}
        for entry in entry_points(group=GROUP):
            try:
                cls = entry.load()
            except Exception as exc:  # a broken plugin must not break axc
                log.warning("cannot load backend %s: %s", entry.name, exc)
                continue
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                log.warning("backend %s (%s) is not an axc.backend.Backend", entry.name, cls)
                continue
            found[getattr(cls, "name", entry.name)] = cls
        _cache = dict(sorted(found.items()))
    return dict(_cache)


def get_backend(name: str) -> type[Backend]:
    backends = available_backends()
    if name not in backends:
        listed = ", ".join(backends) or "none installed"
        raise UserError(f"unknown backend {name!r}{did_you_mean(name, backends)} ({listed})")
    return backends[name]


def _convert(text: str, annotation: Any, key: str) -> Any:
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    if text == "none" and type(None) in members:
        return None
    for kind in members or (annotation,):
        if kind is type(None):
            continue
        try:
            if kind is bool:
                if text in ("true", "false"):
                    return text == "true"
                raise ValueError
            if kind in (int, float, str):
                return kind(text)
        except ValueError:
            continue
    raise UserError(f"--option {key}={text}: expected {annotation}")


def make_options(backend: type[Backend], pairs: list[str]) -> Any:
    """The backend's Options from ``KEY=VALUE`` strings, each checked and converted."""
    cls = backend.Options
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise UserError(
                f"backend {backend.name!r} has no option {key!r}{did_you_mean(key, fields)} "
                f"(options: {known})"
            )
        values[key] = _convert(text, hints[key], key)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"backend {backend.name!r}: {exc}") from None
