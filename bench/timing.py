"""Timing shared by the benchmark scripts (run them as ``python bench/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeat: int, budget_s: float = 1.0) -> float:
    """The fastest of at least ``repeat`` runs, repeated until ``budget_s`` has
    passed (short runs are noisy on a shared machine), after one warm-up."""
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeat or spent < budget_s:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)
