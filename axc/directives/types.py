"""Turning parsed values into the typed fields of a pass's parameter dataclass.

Supported annotations: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
``tuple[T, ...]``, unions (``A | B``, ``Optional``), and *call forms*:
frozen dataclasses registered with :func:`call_form`, written in a directive
as ``name(arg, key=value)`` (or as a bare ``name`` when every field has a
default). Every mismatch is a :class:`DirectiveError` at the value's position.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from axc.directives import ast
from axc.directives.diagnostics import did_you_mean
from axc.errors import DirectiveError

__all__ = ["CALL_FORMS", "Where", "call_form", "coerce", "describe", "expand_range"]

CALL_FORMS: dict[type, str] = {}


def call_form(name: str) -> Callable[[type], type]:
    """Register a dataclass as the call ``name(...)`` in directive values."""

    def register(cls: type) -> type:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        CALL_FORMS[cls] = name
        return cls

    return register


class Where:
    """Builds errors located in one directive file."""

    def __init__(self, error: Callable[[ast.Span, str], DirectiveError], what: str) -> None:
        self.error = error
        self.what = what  # e.g. "parameter 'weights'"


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return get_args(annotation)
    return (annotation,)


def describe(annotation: Any) -> str:
    """A short human description of what a field accepts."""
    members = _members(annotation)
    if len(members) > 1:
        return " or ".join(describe(m) for m in members if m is not type(None))
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if origin in (tuple, list):
        return f"a list of {describe(get_args(annotation)[0])}"
    if annotation in CALL_FORMS:
        fields = ", ".join(f.name for f in dataclasses.fields(annotation))
        return f"{CALL_FORMS[annotation]}({fields})"
    return {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a name or string",
    }.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _names(annotation: Any) -> list[str]:
    """Bare words the annotation accepts (for did-you-mean)."""
    out: list[str] = []
    for member in _members(annotation):
        if get_origin(member) is Literal:
            out += [str(a) for a in get_args(member)]
        elif member in CALL_FORMS:
            out.append(CALL_FORMS[member])
        elif member is bool:
            out += ["true", "false"]
    return out


class _Mismatch(Exception):
    pass


def _coerce_one(value: ast.Value, annotation: Any, where: Where) -> Any:
    origin = get_origin(annotation)
    if annotation is Any:
        return _plain(value)
    if annotation is type(None):
        if isinstance(value, ast.Ident) and value.name == "none":
            return None
        raise _Mismatch
    if annotation is bool:
        if isinstance(value, ast.Ident) and value.name in ("true", "false"):
            return value.name == "true"
        raise _Mismatch
    if annotation is int:
        if isinstance(value, ast.Number) and isinstance(value.value, int):
            return value.value
        raise _Mismatch
    if annotation is float:
        if isinstance(value, ast.Number):
            return float(value.value)
        raise _Mismatch
    if annotation is str:
        if isinstance(value, ast.Ident):
            return value.name
        if isinstance(value, ast.String):
            return value.text
        raise _Mismatch
    if origin is Literal:
        text = (
            value.name
            if isinstance(value, ast.Ident)
            else value.text
            if isinstance(value, ast.String)
            else None
        )
        choices = get_args(annotation)
        if text is not None and text in choices:
            return text
        raise _Mismatch
    if origin in (tuple, list):
        inner = get_args(annotation)[0]
        items = value.items if isinstance(value, ast.ListValue) else (value,)
        return tuple(coerce(item, inner, where) for item in items)
    if annotation in CALL_FORMS:
        return _call(value, annotation, where)
    raise _Mismatch


def _call(value: ast.Value, cls: type, where: Where) -> Any:
    name = CALL_FORMS[cls]
    if isinstance(value, ast.Ident) and value.name == name:
        value = ast.Call(name, (), (), value.span)
    if not isinstance(value, ast.Call) or value.name != name:
        raise _Mismatch
    fields = [f for f in dataclasses.fields(cls) if f.init]
    hints = get_type_hints(cls)
    if len(value.args) > len(fields):
        raise where.error(
            value.span,
            f"{name}() takes at most {len(fields)} arguments "
            f"({', '.join(f.name for f in fields)}), got {len(value.args)}",
        )
    kwargs: dict[str, Any] = {}
    for field, arg in zip(fields, value.args, strict=False):
        kwargs[field.name] = coerce(
            arg, hints[field.name], Where(where.error, f"argument {field.name!r} of {name}()")
        )
    known = {f.name for f in fields}
    for key, arg in value.kwargs:
        if key not in known:
            raise where.error(
                arg.span, f"{name}() has no argument {key!r}{did_you_mean(key, known)}"
            )
        if key in kwargs:
            raise where.error(arg.span, f"{name}() got argument {key!r} twice")
        kwargs[key] = coerce(arg, hints[key], Where(where.error, f"argument {key!r} of {name}()"))
    missing = [
        f.name
        for f in fields
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise where.error(value.span, f"{name}() needs argument {', '.join(map(repr, missing))}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise where.error(value.span, f"{name}(): {exc}") from None


def _plain(value: ast.Value) -> Any:
    if isinstance(value, ast.Number):
        return value.value
    if isinstance(value, ast.Ident):
        return value.name
    if isinstance(value, ast.String):
        return value.text
    if isinstance(value, ast.ListValue):
        return tuple(_plain(v) for v in value.items)
    return str(value)


def coerce(value: ast.Value, annotation: Any, where: Where) -> Any:
    """``value`` as an instance of ``annotation``, or a located DirectiveError."""
    if isinstance(value, ast.RangeValue):
        raise where.error(value.span, f"a range ({value}) is only allowed in an explore block")
    for member in _members(annotation):
        try:
            return _coerce_one(value, member, where)
        except _Mismatch:
            continue
    word = value.name if isinstance(value, (ast.Ident, ast.Call)) else None
    names = _names(annotation)
    if word is not None and names:
        raise where.error(
            value.span,
            f"unknown value {word!r} for {where.what}"
            f"{did_you_mean(word, names)} (expected {describe(annotation)})",
        )
    raise where.error(value.span, f"{where.what} expects {describe(annotation)}, got {value}")


def expand_range(value: ast.RangeValue, where: Where) -> list[ast.Value]:
    """``4..8`` -> 4, 5, 6, 7, 8; ``int4..int8`` -> int4, int5, ..., int8."""
    low, high = value.low, value.high
    if (
        isinstance(low, ast.Number)
        and isinstance(high, ast.Number)
        and isinstance(low.value, int)
        and isinstance(high.value, int)
    ):
        if low.value > high.value:
            raise where.error(value.span, f"empty range {value}")
        return [ast.Number(v, value.span) for v in range(low.value, high.value + 1)]
    if isinstance(low, ast.Ident) and isinstance(high, ast.Ident):
        stem_a, num_a = _split_number(low.name)
        stem_b, num_b = _split_number(high.name)
        if stem_a == stem_b and num_a is not None and num_b is not None and num_a <= num_b:
            return [ast.Ident(f"{stem_a}{v}", value.span) for v in range(num_a, num_b + 1)]
    raise where.error(
        value.span,
        f"cannot enumerate range {value}: write two integers "
        "(4..8) or two names that differ in a trailing number (int4..int8)",
    )


def _split_number(name: str) -> tuple[str, int | None]:
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    return stem, int(digits) if digits else None
