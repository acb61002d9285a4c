"""Timing a function the way the chapters report it (Chapters 4, 7 and 8).

:func:`latency` is the median of several runs after a warm-up: what a user of a model waits, typically.
:func:`fastest` is the minimum of several runs: the cost of the computation itself, with the noise of a
busy machine removed as far as possible, for comparing two implementations. :func:`interleaved` times
several implementations in turns, so that a busy machine slows them alike (Chapter 13).
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


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int = 15, warmup: int = 2, *, statistic: str = "median",
    relative_to: str | None = None,
) -> dict[str, float]:
    """Seconds of each function, timed in turns (A, B, C, then B, C, A, …: each round starts one further
    along) so that a busy machine slows all of them alike (Chapter 13).

    ``statistic="median"`` is what a user typically waits; ``"min"`` is the cost of the computation itself
    with the interruptions of a shared machine removed (for comparing kernels, as ``mmbook.timing.fastest``).
    With ``relative_to``, each result is divided by that function's: for the median, the median over
    rounds of the time divided by that function's time in the same round (a paired ratio, steadier when
    the load changes); for the minimum, the ratio of the two minima.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if statistic not in ("median", "min"):
        raise ValueError(f"statistic must be 'median' or 'min', got {statistic!r}")
    if relative_to is not None and relative_to not in fns:
        raise KeyError(f"relative_to={relative_to!r} is not one of {list(fns)}")
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    if relative_to is None:
        return {name: statistics.median(t) if statistic == "median" else min(t) for name, t in times.items()}
    base = times[relative_to]
    if statistic == "min":
        return {name: min(t) / min(base) for name, t in times.items()}
    return {name: statistics.median(a / b for a, b in zip(t, base, strict=True)) for name, t in times.items()}
