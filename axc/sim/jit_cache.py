"""Where Numba keeps axc's compiled kernels: a folder named after the kernels' sources.

Numba's on-disk cache checks only the file that defines a kernel. A kernel
that calls (and so compiles in) a kernel of another module keeps its cached
machine code when only that other module changes: after a ``git pull`` into
an editable install, fused.py's kernels would still run the old
approx_kernels.py code, with no error. Every cached kernel of axc therefore
lives in ``axc-<fingerprint>``, where the fingerprint hashes all of axc's
source files that use Numba: any change to them compiles afresh.

The folder lies in ``$NUMBA_CACHE_DIR`` when that is set, else in
``__pycache__/numba`` inside the package (a checkout's own, like Numba's
default; older fingerprints there are removed), or in the user's cache
(``$XDG_CACHE_HOME/axc/numba``) when the package folder is read-only.
``NUMBA_CACHE_DIR`` is set to the folder, so that worker processes use it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numba

__all__ = ["cache_folder", "configure", "fingerprint", "prune"]

PACKAGE = Path(__file__).resolve().parent.parent


def fingerprint(root: Path = PACKAGE) -> str:
    """A hash of every source file under ``root`` that uses Numba."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        text = path.read_bytes()
        if b"numba" in text:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + text + b"\0")
    return digest.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def cache_folder(key: str, environ: dict[str, str] | None = None) -> tuple[Path, bool]:
    """The folder for fingerprint ``key``, and whether it is the package's own."""
    env = os.environ if environ is None else environ
    name = f"axc-{key}"
    given = env.get("NUMBA_CACHE_DIR", "")
    if given and Path(given).name == name:  # set by the process that started this one
        return Path(given), False
    if given:
        return Path(given) / name, False
    own = PACKAGE / "__pycache__" / "numba"
    if _writable(own):
        return own / name, True
    home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "axc" / "numba" / name, False


def prune(folder: Path) -> None:
    """Remove the other fingerprints' folders beside ``folder``."""
    for old in folder.parent.glob("axc-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


def configure() -> Path:
    """Point Numba's cache at the fingerprint's folder (before any kernel is defined)."""
    folder, own = cache_folder(fingerprint())
    if own:  # a checkout holds one version of its sources: older folders are stale
        prune(folder)
    if os.environ.get("NUMBA_CACHE_DIR") != str(folder):
        os.environ["NUMBA_CACHE_DIR"] = str(folder)
        numba.core.config.reload_config()
    return folder


configure()
