"""Syntax tree of a directive file. Every node knows where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Call",
    "Directive",
    "Explore",
    "ExploreItem",
    "GlobSelector",
    "Ident",
    "IndexSelector",
    "ListValue",
    "NameSelector",
    "Number",
    "OpSelector",
    "Param",
    "RangeSelector",
    "RangeValue",
    "Selector",
    "Span",
    "Statement",
    "String",
    "Value",
]


@dataclass(frozen=True)
class Span:
    line: int
    column: int
    end_line: int
    end_column: int


# ------------------------------------------------------------------- values
@dataclass(frozen=True)
class Number:
    value: int | float
    span: Span

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class Ident:
    name: str
    span: Span

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class String:
    text: str
    span: Span

    def __str__(self) -> str:
        return '"' + self.text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Value, ...]
    kwargs: tuple[tuple[str, Value], ...]
    span: Span

    def __str__(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={v}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span

    def __str__(self) -> str:
        return "[" + ", ".join(str(i) for i in self.items) + "]"


@dataclass(frozen=True)
class RangeValue:
    low: Value
    high: Value
    span: Span

    def __str__(self) -> str:
        return f"{self.low}..{self.high}"


Value = Number | Ident | String | Call | ListValue | RangeValue


# ---------------------------------------------------------------- selectors
@dataclass(frozen=True)
class NameSelector:
    name: str
    quoted: bool
    span: Span

    def __str__(self) -> str:
        return f'"{self.name}"' if self.quoted else self.name


@dataclass(frozen=True)
class GlobSelector:
    pattern: str
    span: Span

    def __str__(self) -> str:
        return self.pattern


@dataclass(frozen=True)
class OpSelector:
    ops: tuple[str, ...]
    span: Span

    def __str__(self) -> str:
        return f"op({', '.join(self.ops)})"


@dataclass(frozen=True)
class IndexSelector:
    index: int
    span: Span

    def __str__(self) -> str:
        return f"layers[{self.index}]"


@dataclass(frozen=True)
class RangeSelector:
    start: int | None
    stop: int | None
    span: Span

    def __str__(self) -> str:
        return (
            f"layers[{'' if self.start is None else self.start}:"
            f"{'' if self.stop is None else self.stop}]"
        )


Selector = NameSelector | GlobSelector | OpSelector | IndexSelector | RangeSelector


# --------------------------------------------------------------- statements
@dataclass(frozen=True)
class Param:
    name: str
    value: Value
    span: Span  # of the parameter name


@dataclass(frozen=True)
class Directive:
    pass_name: str
    selector: Selector | None
    params: tuple[Param, ...]
    positionals: tuple[Call, ...]
    span: Span  # of the pass name

    def __str__(self) -> str:
        parts = [self.pass_name]
        if self.selector is not None:
            parts.append(str(self.selector))
        parts += [str(c) for c in self.positionals]
        parts += [f"{p.name}={p.value}" for p in self.params]
        return " ".join(parts)


@dataclass(frozen=True)
class ExploreItem:
    pass_name: str
    selector: Selector | None
    param: str
    domain: Value
    span: Span
    param_span: Span


@dataclass(frozen=True)
class Explore:
    params: tuple[Param, ...]
    items: tuple[ExploreItem, ...]
    span: Span


Statement = Directive | Explore


@dataclass
class DirectiveFile:
    """A parsed directive file: its statements and the text they came from."""

    path: str
    text: str
    statements: list[Statement] = field(default_factory=list)
