"""The reference docs name what the code has."""

from __future__ import annotations

import re

from axc.frontend import SUPPORTED_OPS
from axc.ir import OPS
from axc.passes import available_passes
from tests.conftest import ROOT


def test_ir_doc_lists_every_canonical_and_imported_op() -> None:
    text = (ROOT / "docs" / "ir.md").read_text()
    headings = re.findall(r"^### (\w+)$", text, flags=re.M)
    assert sorted(headings) == sorted(OPS)
    listed = re.search(r"axc imports.*?\n\n(.*?)\n\n", text, flags=re.S)
    assert listed is not None
    assert [w.strip() for w in listed.group(1).split(",")] == list(SUPPORTED_OPS)


def test_directive_doc_covers_every_pass() -> None:
    text = (ROOT / "docs" / "directives.md").read_text()
    for name in available_passes():
        if not name.startswith("test_"):
            assert f"### `{name}`" in text, name
