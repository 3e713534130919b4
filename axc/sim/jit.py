"""Numba kernels in two builds: parallel (``prange`` over threads) and serial.

A run that splits its batch across Python threads (see executor.py) must not
start OpenMP parallel regions from several threads at once: the runtime then
serializes them and is slower than one thread (measured: 0.4x). Each kernel
is therefore compiled twice, both cached on disk, and a thread that runs a
shard uses the serial build (:func:`serial`).
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba

__all__ = ["parallel_kernel", "serial", "serial_mode"]

_LOCAL = threading.local()


def serial_mode() -> bool:
    return bool(getattr(_LOCAL, "serial", False))


@contextmanager
def serial() -> Iterator[None]:
    """Within the block, kernels called from this thread run their serial build."""
    before = serial_mode()
    _LOCAL.serial = True
    try:
        yield
    finally:
        _LOCAL.serial = before


class _Kernel:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.py_func = fn
        self.parallel = numba.njit(parallel=True, cache=True, nogil=True)(fn)
        # a copy under another name, so that its on-disk cache is its own
        clone = types.FunctionType(
            fn.__code__, fn.__globals__, f"{fn.__name__}_serial", fn.__defaults__, fn.__closure__
        )
        clone.__qualname__ = f"{fn.__qualname__}_serial"
        clone.__doc__ = fn.__doc__
        self.serial = numba.njit(cache=True, nogil=True)(clone)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, *args: Any) -> Any:
        return (self.serial if getattr(_LOCAL, "serial", False) else self.parallel)(*args)


def parallel_kernel(fn: Callable[..., Any]) -> Any:
    """Decorator: ``fn`` (using ``numba.prange``) as a parallel and a serial kernel."""
    return _Kernel(fn)
