"""The backend interface: discovery through entry points, options, errors.

An out-of-tree backend (tests/data/backend_plugin, a package of its own) is
installed into this environment for the module and removed afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from axc.backend import Backend, make_options
from axc.errors import UserError
from tests.conftest import DIGITS, ROOT

PLUGIN = ROOT / "tests" / "data" / "backend_plugin"


def _axc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axc", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def toy_installed():  # type: ignore[no-untyped-def]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(PLUGIN)],
        check=True,
    )
    yield
    subprocess.run([*pip, "uninstall", "-y", "axc-toy-backend"], check=True)


@pytest.mark.slow
def test_an_out_of_tree_backend_is_found_and_used(toy_installed, tmp_path) -> None:
    listed = _axc("backends", "--json")
    assert listed.returncode == 0, listed.stderr
    toy = {row["name"]: row for row in json.loads(listed.stdout)}["toy"]
    assert set(toy["options"]) == {"title", "indent"}
    out = tmp_path / "build"
    result = _axc(
        "compile",
        str(DIGITS / "digits_cnn.onnx"),
        "-d",
        str(DIGITS / "quantize.ax"),
        "-o",
        str(out),
        "--backend",
        "toy",
        "--option",
        "title=digits",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["backend"]["name"] == "toy"
    assert summary["backend"]["options"] == {"title": "digits", "indent": 1}
    layers = json.loads((out / "toy" / "digits.json").read_text())["layers"]
    assert [layer["op"] for layer in layers][:2] == ["Quantize", "QConv"]
    assert summary["backend"]["layers"] == len(layers)


@pytest.mark.slow
def test_backend_mistakes_are_user_errors(toy_installed, tmp_path) -> None:
    base = ["compile", str(DIGITS / "digits_cnn.onnx"), "-d", str(DIGITS / "quantize.ax")]
    cases = [
        (["--backend", "toyy"], "unknown backend 'toyy'; did you mean 'toy'"),
        (["--backend", "toy", "--option", "titel=x"], "has no option 'titel'; did you mean"),
        (["--backend", "toy", "--option", "indent=wide"], "--option indent=wide: expected"),
        (["--backend", "toy", "--option", "indent=-2"], "indent must be >= 0"),
        (["--option", "title=x"], "--option needs --backend"),
    ]
    for k, (extra, message) in enumerate(cases):
        out = tmp_path / f"o{k}"
        result = _axc(*base, "-o", str(out), *extra)
        assert result.returncode == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()  # nothing written


def test_options_are_typed() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Options:
        rows: int = 8
        clock: float = 200.0
        fast: bool = False
        part: str | None = None

    class Dummy(Backend):
        name = "dummy"

        def lower(self, graph, options, outdir):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    Dummy.Options = Options
    got = make_options(Dummy, ["rows=16", "clock=150.5", "fast=true", "part=none"])
    assert got == Options(16, 150.5, True, None)
    with pytest.raises(UserError, match="expected"):
        make_options(Dummy, ["fast=maybe"])
    assert Path(PLUGIN / "pyproject.toml").exists()
