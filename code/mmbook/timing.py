"""Timing a function the way the chapters report it (Chapters 4, 7 and 8).

:func:`latency` is the median of several runs after a warm-up: what a user of a model waits, typically.
:func:`fastest` is the minimum of several runs: the cost of the computation itself, with the noise of a
busy machine removed as far as possible, for comparing two implementations.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def _times(fn: Callable[[], Any], repeats: int) -> list[float]:
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def latency(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs (Chapter 8)."""
    for _ in range(warmup):
        fn()
    return statistics.median(_times(fn, repeats))


def fastest(fn: Callable[[], Any], *, repeats: int = 5) -> float:
    """The shortest wall-clock seconds of ``fn()`` over ``repeats`` runs (Chapters 4 and 7)."""
    return min(_times(fn, repeats))
