"""Execution of axc graphs: the float executor and the bit-accurate integer
simulator."""

import os

# Numba's OpenMP workers spin after each parallel kernel by default and then
# compete with BLAS's threads for the same cores (measured: a 1x1 conv took
# 16 ms instead of 8 ms on 2 cores). Passive waiting gives the cores back. A
# user's own setting wins; it must be set before OpenMP starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# before any kernel is defined: the compiled kernels' folder (jit_cache.py)
import axc.sim.jit_cache  # noqa: F401
from axc.sim.executor import Executor, run

__all__ = ["Executor", "run"]
