"""`pip install .` (a real wheel, non-editable) gives a working `axc` in a fresh
virtualenv, with the grammar and runtime files inside the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import DIGITS, ROOT


@pytest.mark.slow
def test_wheel_installs_into_fresh_virtualenv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("axc-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)

    work = tmp_path / "elsewhere"  # not the source tree, so only the wheel can be imported
    work.mkdir()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.resources as r, axc, axc.backends, axc.runtime;"
            "print(axc.__file__);"
            "print(r.files('axc.grammar').joinpath('axc.lark').read_text()[:20])",
        ],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in probe.stdout.splitlines()[0]
    assert probe.stdout.splitlines()[1].startswith("// The axc directive")

    out = tmp_path / "x"
    result = subprocess.run(
        [
            str(env_dir / "bin" / "axc"),
            "compile",
            str(DIGITS / "digits_cnn.onnx"),
            "--directives",
            str(DIGITS / "d.ax"),
            "-o",
            str(out),
        ],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "digits_cnn.onnx").is_file() and (out / "digits_cnn.axc.json").is_file()
    assert "MACs/input  25,408" in result.stdout
