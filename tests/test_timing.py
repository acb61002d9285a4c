"""mmbook.timing: the median after a warm-up, and the minimum, on a clock the test controls."""

from __future__ import annotations

import itertools
import time

import pytest
from mmbook import timing


@pytest.fixture
def clock(monkeypatch):
    """``time.perf_counter`` returning 0, then run i of the measured function takes ``durations[i]``."""
    durations = [5.0, 1.0, 3.0, 2.0, 9.0]
    ticks = itertools.accumulate(d for duration in durations for d in (0.0, duration))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    return durations


def test_latency_is_the_median_after_the_warmup(clock) -> None:
    calls = []
    assert timing.latency(lambda: calls.append(1), repeats=5, warmup=2) == 3.0
    assert len(calls) == 7  # two warm-up runs, untimed, then five timed ones


def test_fastest_is_the_minimum(clock) -> None:
    assert timing.fastest(lambda: None, repeats=5) == 1.0


def test_no_runs_is_an_error() -> None:
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        timing.fastest(lambda: None, repeats=0)


def test_interleaved_times_every_function_in_turns() -> None:
    calls: list[str] = []
    result = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3,
                                   warmup=1)  # fmt: skip
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"] and set(result) == {"a", "b"}
    ratios = timing.interleaved({"a": lambda: None, "b": lambda: time.sleep(0.002)}, repeats=3,
                                   relative_to="b")  # fmt: skip
    assert ratios["b"] == 1.0 and ratios["a"] < 1.0
    with pytest.raises(ValueError, match="repeats"):
        timing.interleaved({"a": lambda: None}, repeats=0)
    assert timing.interleaved({"a": lambda: time.sleep(0.001)}, repeats=2, statistic="min")["a"] >= 0.001
    with pytest.raises(ValueError, match="statistic"):
        timing.interleaved({"a": lambda: None}, statistic="mean")
    with pytest.raises(KeyError, match="c"):
        timing.interleaved({"a": lambda: None}, relative_to="c")
