"""Error messages that point at the source: ``file:line:col``, the line, a caret."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from axc.directives.ast import Span
from axc.errors import DirectiveError

__all__ = ["did_you_mean", "error_at", "format_location", "nearest"]


def nearest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to ``word``, best first (case-insensitive)."""
    pool = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in pool}
    found = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[f] for f in found]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = nearest(word, candidates, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def format_location(path: str, text: str, span: Span, message: str) -> str:
    lines = text.splitlines()
    line = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    width = span.end_column - span.column if span.end_line == span.line else 1
    width = max(1, min(width, len(line) - span.column + 2))
    caret = " " * (span.column - 1) + "^" + "~" * (width - 1)
    return f"{path}:{span.line}:{span.column}: {message}\n    {line}\n    {caret}"


def error_at(path: str, text: str, span: Span, message: str) -> DirectiveError:
    error = DirectiveError(format_location(path, text, span, message))
    error.span = span  # type: ignore[attr-defined]
    return error
