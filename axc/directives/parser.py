"""Parsing directive files with the Lark grammar in grammar/axc.lark."""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from axc.directives import ast
from axc.directives.diagnostics import error_at
from axc.errors import DirectiveError

__all__ = ["parse_file", "parse_text"]

_TERMINALS = {
    "NAME": "a name",
    "GLOB": "a glob pattern",
    "INT": "an integer",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "EQUAL": "'='",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "_NL": "end of line",
    "$END": "end of file",
    "IN": "'in'",
    "__ANON_0": "'..'",
    "OP": "'op'",
    "LAYERS": "'layers'",
    "EXPLORE": "'explore'",
}


@functools.cache
def _parser() -> Lark:
    grammar = resources.files("axc.grammar").joinpath("axc.lark").read_text(encoding="utf-8")
    return Lark(
        grammar, parser="lalr", strict=True, propagate_positions=True, maybe_placeholders=True
    )


def _span(item: Any) -> ast.Span:
    return ast.Span(item.line, item.column, item.end_line, item.end_column)


def _unquote(token: str) -> str:
    body = token[1:-1]
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape")


@v_args(meta=True)
class _ToAst(Transformer):
    # values
    def number(self, meta: Any, children: list[Token]) -> ast.Number:
        return ast.Number(float(children[0]), _span(meta))

    def integer(self, meta: Any, children: list[Token]) -> ast.Number:
        return ast.Number(int(children[0]), _span(meta))

    def string(self, meta: Any, children: list[Token]) -> ast.String:
        return ast.String(_unquote(children[0]), _span(meta))

    def ident(self, meta: Any, children: list[Token]) -> ast.Ident:
        return ast.Ident(str(children[0]), _span(meta))

    def _call(self, meta: Any, children: list[Any]) -> ast.Call:
        name, *args = children
        positional = tuple(a[1] for a in args if a is not None and a[0] is None)
        keywords = tuple((a[0], a[1]) for a in args if a is not None and a[0] is not None)
        return ast.Call(str(name), positional, keywords, _span(meta))

    call = _call
    positional = _call

    def positional_arg(self, meta: Any, children: list[Any]) -> tuple[None, ast.Value]:
        return (None, children[0])

    def keyword_arg(self, meta: Any, children: list[Any]) -> tuple[str, ast.Value]:
        return (str(children[0]), children[1])

    def list_value(self, meta: Any, children: list[Any]) -> ast.ListValue:
        items = tuple(c for c in children if c is not None)
        span = _span(meta) if not meta.empty else ast.Span(0, 0, 0, 0)
        return ast.ListValue(items, span)

    def range(self, meta: Any, children: list[Any]) -> ast.RangeValue:
        return ast.RangeValue(children[0], children[1], _span(meta))

    # selectors
    def name_selector(self, meta: Any, children: list[Token]) -> ast.NameSelector:
        token = children[0]
        quoted = token.type == "STRING"
        return ast.NameSelector(_unquote(token) if quoted else str(token), quoted, _span(meta))

    def glob_selector(self, meta: Any, children: list[Token]) -> ast.GlobSelector:
        return ast.GlobSelector(str(children[0]), _span(meta))

    def op_selector(self, meta: Any, children: list[Token]) -> ast.OpSelector:
        return ast.OpSelector(tuple(str(c) for c in children), _span(meta))

    def index_selector(self, meta: Any, children: list[Token]) -> ast.IndexSelector:
        return ast.IndexSelector(int(children[0]), _span(meta))

    def range_selector(self, meta: Any, children: list[Token | None]) -> ast.RangeSelector:
        start, stop = (None if c is None else int(c) for c in children)
        return ast.RangeSelector(start, stop, _span(meta))

    # statements
    def param(self, meta: Any, children: list[Any]) -> ast.Param:
        return ast.Param(str(children[0]), children[1], _span(children[0]))

    def directive(self, meta: Any, children: list[Any]) -> ast.Directive:
        name, selector, *rest = children
        params = tuple(r for r in rest if isinstance(r, ast.Param))
        positionals = tuple(r for r in rest if isinstance(r, ast.Call))
        return ast.Directive(str(name), selector, params, positionals, _span(name))

    def explore_item(self, meta: Any, children: list[Any]) -> ast.ExploreItem:
        name, selector, param, domain = children
        return ast.ExploreItem(str(name), selector, str(param), domain, _span(name), _span(param))

    def explore(self, meta: Any, children: list[Any]) -> ast.Explore:
        params = tuple(c for c in children if isinstance(c, ast.Param))
        items = tuple(c for c in children if isinstance(c, ast.ExploreItem))
        return ast.Explore(params, items, _span(meta))

    def start(self, meta: Any, children: list[Any]) -> list[ast.Statement]:
        return [c for c in children if c is not None]


_EXAMPLES: dict[str, list[str]] = {
    "missing value after '='": ["quantize * weights=\n", "quantize * weights= a=1\n"],
    "a parameter needs the form name=value": [
        "quantize * weights int8\n",
        "target systolic rows 8\n",
    ],
    "unclosed '('": ["quantize * calibration=percentile(99\n"],
    "unclosed '['": ["explore objectives=[accuracy {\n}\n"],
    "an explore item has the form: pass [selector] parameter in [values] or low..high": [
        "explore {\nquantize * weights int8\n}\n",
        "explore {\nquantize * weights=int8\n}\n",
    ],
}


def _syntax_error(path: str, text: str, exc: UnexpectedInput) -> DirectiveError:
    line, column = max(exc.line, 1), max(exc.column, 1)
    width = 1
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        width = max(1, len(str(exc.token)))
        found = "end of line" if exc.token.type == "_NL" else repr(str(exc.token))
    elif isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        found = repr(text[pos]) if pos < len(text) else "end of file"
    else:
        found = "end of file"
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    hint = None
    try:
        hint = exc.match_examples(_parser().parse, _EXAMPLES, use_accepts=True)
    except Exception:  # match_examples re-parses; it must never mask the real error
        hint = None
    expected: set[str] = set()
    if isinstance(exc, (UnexpectedToken, UnexpectedEOF)):
        expected = set(exc.expected)
    elif isinstance(exc, UnexpectedCharacters):
        expected = set(exc.allowed or ())
    wanted = sorted({_TERMINALS.get(t, repr(t.lower())) for t in expected})
    message = f"syntax error: unexpected {found}"
    if found.strip("'") in (".", "/", "\\", "~"):
        hint = 'quote file names and paths: data="calib.npz"'
    if hint:
        message += f" ({hint})"
    if wanted:
        message += f"; expected {', '.join(wanted)}"
    return error_at(path, text, ast.Span(line, column, line, column + width), message)


def parse_text(text: str, path: str = "<directives>") -> ast.DirectiveFile:
    """Parse directive source; syntax errors raise :class:`DirectiveError`."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(path, text, exc) from None
    statements = _ToAst().transform(tree)
    return ast.DirectiveFile(path, text, statements)


def parse_file(path: str | os.PathLike[str]) -> ast.DirectiveFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DirectiveError(f"{p}: no such directive file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectiveError(f"{p}: cannot read directive file: {exc}") from None
    return parse_text(text, str(path))
