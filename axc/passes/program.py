"""Binding parsed directives to passes: the validated program.

Binding checks pass names, parameter names and types and builds each pass's
``Params``; it needs no model. Selectors are resolved against a graph just
before a pass runs (an earlier pass may have changed the layers), or all at
once by ``axc check``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

from axc.directives import ast
from axc.directives.diagnostics import did_you_mean, error_at
from axc.directives.selectors import select
from axc.directives.types import Where, coerce, expand_range
from axc.errors import DirectiveError
from axc.ir import Graph
from axc.passes.registry import Pass, available_passes, get_pass

__all__ = ["BoundDirective", "ExploreParams", "ExploreSpace", "Program", "bind"]

Objective = Literal["accuracy", "vulnerability", "luts", "area", "latency"]


@dataclass(frozen=True)
class ExploreParams:
    """Options of the ``explore`` block (executed by the exploration engine)."""

    objectives: tuple[Objective, ...] = ("accuracy", "luts")
    algorithm: Literal["auto", "nsga2", "exhaustive"] = "auto"
    population: int = 32
    generations: int = 20
    seed: int = 0
    #: test set for accuracy (default: test.npz beside the model) and its first N images
    data: str | None = None
    images: int | None = None
    #: the fixed, seeded fault sample behind the vulnerability objective
    faults: int = 200
    fault_images: int = 50
    #: the FPGA part whose budget constrains the design (default: the target's)
    device: str | None = None

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ValueError("explore needs at least one objective")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("an objective is listed twice")
        if self.population < 2 or self.generations < 1:
            raise ValueError("population must be >= 2 and generations >= 1")
        if (
            self.faults < 1
            or self.fault_images < 1
            or (self.images is not None and self.images < 1)
        ):
            raise ValueError("faults, fault_images and images must be positive")
        if self.device is not None:
            from axc.hw.devices import DEVICES

            if not any(self.device.lower().startswith(k) for k in DEVICES):
                raise ValueError(
                    f"device={self.device!r} is not a known part ({', '.join(DEVICES)})"
                )


@dataclass(frozen=True)
class BoundDirective:
    directive: ast.Directive
    pass_cls: type[Pass]
    params: Any
    source: ast.DirectiveFile

    def error(self, span: ast.Span, message: str) -> DirectiveError:
        return error_at(self.source.path, self.source.text, span, message)

    def targets(self, graph: Graph) -> list[str]:
        if self.directive.selector is None or not self.pass_cls.selects:
            return []
        return select(self.directive.selector, graph, self.error)


@dataclass(frozen=True)
class BoundExploreItem:
    item: ast.ExploreItem
    pass_cls: type[Pass]
    values: tuple[Any, ...]
    raw: tuple[ast.Value, ...] = ()  # the values as written (ranges expanded)


@dataclass(frozen=True)
class ExploreSpace:
    params: ExploreParams
    items: tuple[BoundExploreItem, ...]

    def size(self) -> int:
        total = 1
        for item in self.items:
            total *= len(item.values)
        return total


@dataclass
class Program:
    source: ast.DirectiveFile
    directives: list[BoundDirective] = field(default_factory=list)
    explore: ExploreSpace | None = None

    def error(self, span: ast.Span, message: str) -> DirectiveError:
        return error_at(self.source.path, self.source.text, span, message)

    @property
    def explore_line(self) -> int | None:
        """The line the explore block starts on (None without one)."""
        for statement in self.source.statements:
            if isinstance(statement, ast.Explore):
                return statement.span.line
        return None

    def explore_targets(self, item: BoundExploreItem, graph: Graph) -> list[str]:
        """The layers an explore item varies (none for passes without a selector)."""
        if item.item.selector is None:
            return []
        return select(item.item.selector, graph, self.error)


def _lookup(name: str, span: ast.Span, err: Any) -> type[Pass]:
    cls = get_pass(name)
    if cls is None:
        names = list(available_passes())
        raise err(
            span,
            f"unknown pass {name!r}{did_you_mean(name, [*names, 'explore'])} "
            f"(passes: {', '.join(names)})",
        )
    return cls


def _params_of(
    cls: type,
    params: list[tuple[str, ast.Value, ast.Span]],
    err: Any,
    where_span: ast.Span,
    label: str,
) -> Any:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for name, value, span in params:
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise err(
                span,
                f"{label} has no parameter {name!r}{did_you_mean(name, fields)} "
                f"(parameters: {known})",
            )
        if name in values:
            raise err(span, f"parameter {name!r} given twice")
        values[name] = coerce(value, hints[name], Where(err, f"parameter {name!r}"))
    missing = [
        n
        for n, f in fields.items()
        if n not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise err(where_span, f"{label} needs parameter {', '.join(map(repr, missing))}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        for name, value, span in params:  # point at the parameter the message names
            if message.startswith((f"{name}=", f"{name}:")):
                raise err(value_span(value, span), f"{label}: {message}") from None
        raise err(where_span, f"{label}: {message}") from None


def value_span(value: ast.Value, fallback: ast.Span) -> ast.Span:
    return getattr(value, "span", fallback)


def _bind_directive(d: ast.Directive, source: ast.DirectiveFile, err: Any) -> BoundDirective:
    cls = _lookup(d.pass_name, d.span, err)
    items = [(p.name, p.value, p.span) for p in d.params]
    selector = d.selector
    positionals: list[ast.Value] = list(d.positionals)
    if not cls.selects and isinstance(selector, ast.NameSelector) and cls.positional:
        positionals.insert(0, ast.Ident(selector.name, selector.span))
        selector = None
    if selector is not None and not cls.selects:
        raise err(selector.span, f"pass {cls.name!r} takes no layer selector")
    if selector is None and cls.selects:
        raise err(
            d.span,
            f"pass {cls.name!r} needs a layer selector (a name, a glob such as "
            "conv*, op(Conv) or layers[0:3])",
        )
    if positionals:
        if cls.positional is None or len(positionals) > 1:
            raise err(
                positionals[-1].span,
                f"pass {cls.name!r} takes "
                f"{'no' if cls.positional is None else 'one'} positional value",
            )
        items.insert(0, (cls.positional, positionals[0], positionals[0].span))
    params = _params_of(cls.Params, items, err, d.span, f"pass {cls.name!r}")
    return BoundDirective(d, cls, params, source)


def _bind_explore(e: ast.Explore, err: Any) -> ExploreSpace:
    params = _params_of(
        ExploreParams, [(p.name, p.value, p.span) for p in e.params], err, e.span, "explore"
    )
    items = []
    seen: set[tuple[str, str, str]] = set()
    for item in e.items:
        cls = _lookup(item.pass_name, item.span, err)
        hints = get_type_hints(cls.Params)
        names = [f.name for f in dataclasses.fields(cls.Params)]
        if item.param not in names:
            raise err(
                item.param_span,
                f"pass {cls.name!r} has no parameter {item.param!r}"
                f"{did_you_mean(item.param, names)} (parameters: {', '.join(names)})",
            )
        if item.selector is not None and not cls.selects:
            raise err(item.selector.span, f"pass {cls.name!r} takes no layer selector")
        key = (cls.name, str(item.selector), item.param)
        if key in seen:
            raise err(item.span, f"{cls.name} {item.selector or ''} {item.param} is explored twice")
        seen.add(key)
        where = Where(err, f"parameter {item.param!r}")
        domain = item.domain
        raw = (
            expand_range(domain, where)
            if isinstance(domain, ast.RangeValue)
            else list(domain.items)
            if isinstance(domain, ast.ListValue)
            else [domain]
        )
        if not raw:
            raise err(item.param_span, f"no values to explore for {item.param!r}")
        values = tuple(coerce(v, hints[item.param], where) for v in raw)
        items.append(BoundExploreItem(item, cls, values, tuple(raw)))
    return ExploreSpace(params, tuple(items))


def bind(source: ast.DirectiveFile) -> Program:
    """Validate every statement of a parsed file against the pass registry."""

    def err(span: ast.Span, message: str) -> DirectiveError:
        return error_at(source.path, source.text, span, message)

    program = Program(source)
    for statement in source.statements:
        if isinstance(statement, ast.Explore):
            if program.explore is not None:
                raise err(statement.span, "only one explore block is allowed")
            program.explore = _bind_explore(statement, err)
        else:
            program.directives.append(_bind_directive(statement, source, err))
    return program
