"""Execution of axc graphs: the float executor (the bit-accurate integer
simulator builds on it)."""

from axc.sim.executor import Executor, run

__all__ = ["Executor", "run"]
