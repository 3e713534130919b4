"""The compiled kernels' folder follows every Numba source of axc (jit_cache.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba

from axc.sim import jit_cache
from tests.conftest import ROOT


def test_the_fingerprint_follows_numba_sources_only(tmp_path: Path) -> None:
    (tmp_path / "sim").mkdir()
    kernel = tmp_path / "sim" / "kernels.py"
    caller = tmp_path / "sim" / "fused.py"
    other = tmp_path / "cli.py"
    kernel.write_text("import numba\n@numba.njit\ndef f(x):\n    return x + 1\n")
    caller.write_text("import numba\nfrom sim.kernels import f\n")
    other.write_text("print('hello')\n")
    first = jit_cache.fingerprint(tmp_path)
    other.write_text("print('hello, world')\n")
    assert jit_cache.fingerprint(tmp_path) == first  # no kernel there
    # the callee changes, the caller's file does not: Numba alone would keep
    # the caller's cached code; the folder changes
    kernel.write_text("import numba\n@numba.njit\ndef f(x):\n    return x + 2\n")
    assert jit_cache.fingerprint(tmp_path) != first


def test_the_folder_nests_in_a_given_cache_and_is_inherited(tmp_path: Path) -> None:
    folder, own = jit_cache.cache_folder("abc", {"NUMBA_CACHE_DIR": str(tmp_path)})
    assert folder == tmp_path / "axc-abc" and not own
    again, _ = jit_cache.cache_folder("abc", {"NUMBA_CACHE_DIR": str(folder)})
    assert again == folder  # a worker process started with it keeps it
    mine, own = jit_cache.cache_folder("abc", {})
    assert mine.name == "axc-abc" and own == mine.is_relative_to(jit_cache.PACKAGE)


def test_a_read_only_package_caches_in_the_users_folder(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # as root every folder is writable, so the check itself is what is replaced
    monkeypatch.setattr(jit_cache, "_writable", lambda folder: False)
    folder, own = jit_cache.cache_folder("abc", {"XDG_CACHE_HOME": str(tmp_path)})
    assert folder == tmp_path / "axc" / "numba" / "axc-abc" and not own


def test_older_fingerprints_are_pruned(tmp_path: Path) -> None:
    for name in ("axc-old", "axc-new", "keep-me"):
        (tmp_path / name / "sim").mkdir(parents=True)
        (tmp_path / name / "sim" / "k.nbi").write_bytes(b"x")
    jit_cache.prune(tmp_path / "axc-new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["axc-new", "keep-me"]
    assert (tmp_path / "axc-new" / "sim" / "k.nbi").exists()


def test_numba_caches_axc_kernels_in_the_fingerprint_folder(tmp_path: Path) -> None:
    expected = jit_cache.cache_folder(jit_cache.fingerprint())[0]
    assert Path(numba.config.CACHE_DIR) == expected == Path(os.environ["NUMBA_CACHE_DIR"])
    # a fresh process with a cache of its own: its kernels land in axc-<fingerprint>
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = (
        "import numpy as np, numba\n"
        "from axc.sim.blas import sgemm, sgemm_address\n"
        "a, b = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)\n"
        "c = np.zeros((3, 2), np.float32)\n"
        "sgemm(sgemm_address(), a, b, c)\n"
        "assert (c == 4).all()\n"
        "print(numba.config.CACHE_DIR)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    folder = tmp_path / f"axc-{jit_cache.fingerprint()}"
    assert out == str(folder)
    assert list(folder.rglob("*.nbi")), "no kernel was cached there"
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]
