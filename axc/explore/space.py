"""The design space of an ``explore`` block, and the directives of each point.

Each explore item is one decision variable: ``approximate op(Conv) multiplier
in [exact, drum(4)]`` gives every layer the selector picks the same value.
To vary layers independently, write one item per layer (``approximate
"/0/Conv" multiplier in [...]``). A point is one value index per variable.

A point's directives are the file's own directives, with the varied
parameter replaced on the layers the item selects: a directive whose
selection an item touches is written out layer by layer (quoted names), so
the ``.ax`` file of a point is plain, complete and reproduces it with
``axc compile``. An item whose layers no directive of its pass covers adds a
directive of its own where the explore block stands; ``protect ...
mechanism=none`` turns a layer's protection off.
"""

from __future__ import annotations

from dataclasses import dataclass

from axc.directives import ast
from axc.errors import UserError
from axc.ir import Graph
from axc.passes.program import BoundDirective, BoundExploreItem, Program

__all__ = ["Space", "Variable", "build_space"]


@dataclass(frozen=True)
class Variable:
    """One decision variable: an explore item, the layers it sets and its values."""

    index: int
    item: BoundExploreItem
    layers: tuple[str, ...]  # empty for a pass without selector (target)
    texts: tuple[str, ...]  # each value as written in a directive

    @property
    def label(self) -> str:
        i = self.item.item
        return " ".join(p for p in (i.pass_name, str(i.selector or ""), i.param) if p)

    @property
    def location(self) -> str:
        return f"{self.item.item.span.line}:{self.item.item.span.column}"


@dataclass(frozen=True)
class Space:
    program: Program
    variables: tuple[Variable, ...]
    #: each base directive's layers (resolved against the imported graph)
    selections: tuple[tuple[str, ...], ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v.texts) for v in self.variables)

    def size(self) -> int:
        total = 1
        for n in self.sizes:
            total *= n
        return total

    def describe(self, point: tuple[int, ...]) -> dict[str, str]:
        return {v.label: v.texts[i] for v, i in zip(self.variables, point, strict=True)}

    def directives(self, point: tuple[int, ...], header: str = "") -> str:
        """The directive text that builds ``point`` (without an explore block)."""
        if len(point) != len(self.variables):
            raise ValueError(f"a point has {len(self.variables)} values, got {len(point)}")
        lines = [f"# {line}" if line else "#" for line in header.splitlines()]
        covered: set[tuple[int, str]] = set()  # (variable, layer) a base directive carries
        explore_line = self.program.explore_line
        pending = True
        for bound, layers in zip(self.program.directives, self.selections, strict=True):
            if pending and explore_line is not None and bound.directive.span.line > explore_line:
                lines += self._extra(point, covered)
                pending = False
            lines += self._rewrite(bound, layers, point, covered)
        if pending:
            lines += self._extra(point, covered)
        return "\n".join(lines) + "\n"

    def _overrides(
        self, bound: BoundDirective, layer: str | None, point: tuple[int, ...]
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        for v, i in zip(self.variables, point, strict=True):
            if v.item.pass_cls is not bound.pass_cls:
                continue
            applies = layer is None if not v.layers else layer in v.layers
            if applies:
                out[v.item.item.param] = v.texts[i]
        return out

    def _rewrite(
        self,
        bound: BoundDirective,
        layers: tuple[str, ...],
        point: tuple[int, ...],
        covered: set[tuple[int, str]],
    ) -> list[str]:
        base = _params_text(bound)
        d = bound.directive
        if not bound.pass_cls.selects:
            over = self._overrides(bound, None, point)
            for v in self.variables:
                if v.item.pass_cls is bound.pass_cls and not v.layers:
                    covered.add((v.index, ""))
            return [_line(d.pass_name, None, {**base, **over})]
        for v in self.variables:
            if v.item.pass_cls is bound.pass_cls:
                covered.update((v.index, layer) for layer in layers if layer in v.layers)
        per_layer = {layer: {**base, **self._overrides(bound, layer, point)} for layer in layers}
        off = bound.pass_cls.name == "protect"
        if len({tuple(p.items()) for p in per_layer.values()}) <= 1:  # one value for all
            params = next(iter(per_layer.values()), base)
            if off and params.get("mechanism") == "none":
                return []  # protection off: no directive at all
            return [_line(d.pass_name, str(d.selector), params)]
        return [
            _line(d.pass_name, _quote(layer), params)
            for layer, params in per_layer.items()
            if not (off and params.get("mechanism") == "none")
        ]

    def _extra(self, point: tuple[int, ...], covered: set[tuple[int, str]]) -> list[str]:
        """Directives for what an item sets but no base directive covers."""
        out = []
        for v, i in zip(self.variables, point, strict=True):
            param = v.item.item.param
            if not v.layers:
                if (v.index, "") not in covered:
                    out.append(_line(v.item.pass_cls.name, None, {param: v.texts[i]}))
                continue
            rest = [layer for layer in v.layers if (v.index, layer) not in covered]
            if not rest or (v.item.pass_cls.name == "protect" and v.texts[i] == "none"):
                continue
            for layer in rest:
                out.append(_line(v.item.pass_cls.name, _quote(layer), {param: v.texts[i]}))
        return out


def _quote(name: str) -> str:
    return str(ast.NameSelector(name, True, ast.Span(0, 0, 0, 0)))


def _line(pass_name: str, selector: str | None, params: dict[str, str]) -> str:
    parts = [pass_name] + ([selector] if selector else [])
    parts += [f"{k}={v}" for k, v in params.items()]
    return " ".join(parts)


def _params_text(bound: BoundDirective) -> dict[str, str]:
    """A directive's parameters as ``name=value`` texts (positionals named)."""
    d = bound.directive
    out: dict[str, str] = {}
    positionals: list[ast.Value] = list(d.positionals)
    if isinstance(d.selector, ast.NameSelector) and not bound.pass_cls.selects:
        positionals.insert(0, ast.Ident(d.selector.name, d.selector.span))
    if positionals and bound.pass_cls.positional:
        out[bound.pass_cls.positional] = str(positionals[0])
    for p in d.params:
        out[p.name] = str(p.value)
    return out


def build_space(program: Program, graph: Graph) -> Space:
    """The decision variables of ``program``'s explore block on ``graph``."""
    if program.explore is None:
        raise UserError(f"{program.source.path}: no explore block to run (docs/directives.md)")
    if not program.explore.items:
        line = program.explore_line or 1
        raise program.error(ast.Span(line, 1, line, 8), "the explore block varies nothing")
    variables = []
    for index, item in enumerate(program.explore.items):
        layers = tuple(program.explore_targets(item, graph)) if item.pass_cls.selects else ()
        texts = tuple(str(v) for v in item.raw)
        variables.append(Variable(index, item, layers, texts))
    selections = tuple(tuple(b.targets(graph)) for b in program.directives)
    return Space(program, tuple(variables), selections)
