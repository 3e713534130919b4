"""The directive language: parsing, typed values, selectors."""

from axc.directives.ast import Directive, DirectiveFile, Explore
from axc.directives.parser import parse_file, parse_text
from axc.directives.selectors import select
from axc.directives.types import call_form, coerce

__all__ = [
    "Directive",
    "DirectiveFile",
    "Explore",
    "call_form",
    "coerce",
    "parse_file",
    "parse_text",
    "select",
]
