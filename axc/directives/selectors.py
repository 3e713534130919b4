"""Which layers a selector picks.

Layers are the graph's nodes in topological order; ``layers[i]`` and
``layers[a:b]`` index that order (Python semantics, negative indices
allowed). ``op(Conv, Gemm)`` picks by canonical op; a glob (``conv*``,
``/features/*``) uses shell-style matching; a bare or quoted name picks
exactly one layer.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from axc.directives import ast
from axc.directives.diagnostics import did_you_mean, nearest
from axc.errors import DirectiveError
from axc.ir import OPS, Graph

__all__ = ["select"]


def select(
    selector: ast.Selector, graph: Graph, error: Callable[[ast.Span, str], DirectiveError]
) -> list[str]:
    """Names of the selected layers in topological order; an empty pick is an error."""
    layers = [n.name for n in graph.topological()]
    picked: list[str]
    if isinstance(selector, ast.NameSelector):
        if selector.name in graph.nodes:
            return [selector.name]
        close = nearest(selector.name, layers, n=5)
        hint = (
            f"; nearest names: {', '.join(close)}"
            if close
            else f"; layers are {', '.join(layers[:8])}{', ...' if len(layers) > 8 else ''}"
        )
        raise error(selector.span, f"no layer named {selector.name!r}{hint}")
    if isinstance(selector, ast.GlobSelector):
        picked = [n for n in layers if fnmatch.fnmatchcase(n, selector.pattern)]
        if not picked:
            stem = selector.pattern.replace("*", "").replace("?", "")
            close = nearest(stem, layers, n=5) if stem else []
            hint = (
                f"; nearest names: {', '.join(close)}"
                if close
                else f"; layers are {', '.join(layers[:8])}{', ...' if len(layers) > 8 else ''}"
            )
            raise error(selector.span, f"pattern {selector.pattern!r} matches no layer{hint}")
        return picked
    if isinstance(selector, ast.OpSelector):
        for op in selector.ops:
            if op not in OPS:
                raise error(selector.span, f"unknown op {op!r}{did_you_mean(op, OPS)}")
        picked = [n.name for n in graph.topological() if n.op in selector.ops]
        if not picked:
            present = sorted(graph.ops())
            raise error(
                selector.span,
                f"the model has no {' or '.join(selector.ops)} layer; "
                f"its ops are {', '.join(present)}",
            )
        return picked
    if isinstance(selector, ast.IndexSelector):
        if not -len(layers) <= selector.index < len(layers):
            raise error(
                selector.span,
                f"layer index {selector.index} out of range: the model "
                f"has {len(layers)} layers (0..{len(layers) - 1})",
            )
        return [layers[selector.index]]
    picked = layers[selector.start : selector.stop]
    if not picked:
        raise error(
            selector.span,
            f"{selector} selects no layer: the model has "
            f"{len(layers)} layers (0..{len(layers) - 1})",
        )
    return picked
