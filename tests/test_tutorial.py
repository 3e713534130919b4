"""docs/tutorial.md runs as written: its directive files are written, its
commands run in order in a copy of examples/digits, and what they print is
checked against what the tutorial says they print."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from axc.cli import main
from tests.conftest import DIGITS, ROOT

pytestmark = [pytest.mark.tools, pytest.mark.slow]
TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)(?: (\S+))?\n(.*?)^```", re.M | re.S)

#: what each command must print (the tutorial's prose says so)
EXPECT: dict[str, str | tuple[str, ...]] = {
    "show": "/0/Conv",
    "check": "quantize",
    "simulate": "top-1",
    "compile": "hls",
    "multipliers": "drum",
    "inject": "SDC-1",
    "verify": ("bit for bit", "/0/Conv"),  # HLS says so; the systolic table lists layers
    "synth": "xc7z020",
    "explore": "Pareto front",
}


def blocks() -> list[tuple[str, str | None, str]]:
    return [(m[1], m[2], m[3]) for m in FENCE.finditer(TUTORIAL.read_text())]


def _statements(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_tutorial_has_what_the_test_runs() -> None:
    kinds = [k for k, _, _ in blocks()]
    assert kinds.count("sh") >= 8 and "python" in kinds and "ax" in kinds
    commands = {
        shlex.split(line)[1] for k, _, b in blocks() if k == "sh" for line in b.splitlines()
    }
    assert commands >= set(EXPECT)


def test_every_tutorial_command_works(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "digits"
    shutil.copytree(DIGITS, work, ignore=shutil.ignore_patterns("*.py", "README.md"))
    monkeypatch.chdir(work)
    ran = 0
    for kind, name, body in blocks():
        if kind == "ax":
            assert name, "an ax block names its file"
            (work / name).write_text(body)
            if (DIGITS / name).exists():  # the tutorial shows the example's own directives
                assert _statements(body) == _statements((DIGITS / name).read_text()), name
        elif kind == "sh":
            for line in body.splitlines():
                args = shlex.split(line.split("  #")[0])
                assert args[0] == "axc", line
                code = main(args[1:])
                out = capsys.readouterr()
                assert code == 0, f"{line}\n{out.err[-2000:]}"
                expect = EXPECT[args[1]]
                choices = expect if isinstance(expect, tuple) else (expect,)
                assert any(c in out.out for c in choices), f"{line}\n{out.out[-2000:]}"
                ran += 1
        elif kind == "python":
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(body, str(TUTORIAL), "exec"), {})
            assert re.search(r"int8 top-1: 0\.9\d+", printed.getvalue()), printed.getvalue()
    assert ran >= 12
    assert (work / "dse" / "report.html").is_file() and (work / "build" / "hls").is_dir()
