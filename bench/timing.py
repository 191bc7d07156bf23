"""Micro-benchmark helpers shared by the bench modules: per-call timing and a printed row against a baseline."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(median, p99) of one call, in microseconds, after a short warm-up."""
    for _ in range(min(200, calls)):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        fn()
        samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def row(label: str, figures: tuple[float, float], baseline: tuple[float, float] | None = None, width: int = 58) -> None:
    """Print one figure: median and p99 in µs, and as ratios of `baseline` when given."""
    median, p99 = figures
    ratio = f"  x{median / baseline[0]:7.1f} of baseline (p99 x{p99 / baseline[1]:.1f})" if baseline else ""
    print(f"  {label:<{width}} median {median:9.2f} us   p99 {p99:9.2f} us{ratio}", flush=True)
