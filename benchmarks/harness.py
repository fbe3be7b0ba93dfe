"""Interleaved timing: every candidate of a group runs in every round.

A round calls each candidate ``batch`` times, in an order rotated from round
to round, so slow phases of a shared machine (another tenant, frequency
scaling, a GC pause) fall on every candidate alike. Each call is timed on its
own, giving a distribution per candidate: median and p99.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Stats", "interleave", "percentile", "summarize"]


@dataclass(frozen=True)
class Stats:
    """Per-call times of one candidate, in microseconds."""

    name: str
    count: int
    median: float
    p99: float
    mean: float

    def ratio(self, baseline: Stats) -> float:
        return self.median / baseline.median


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(name: str, samples_ns: list[int]) -> Stats:
    values = sorted(ns / 1000 for ns in samples_ns)
    return Stats(
        name=name,
        count=len(values),
        median=statistics.median(values) if values else math.nan,
        p99=percentile(values, 0.99),
        mean=statistics.fmean(values) if values else math.nan,
    )


def interleave(
    candidates: Mapping[str, Callable[[], object]],
    rounds: int,
    batch: int = 5,
    warmup: int = 20,
    time_cap: float = 60.0,
) -> dict[str, Stats]:
    """Time ``candidates`` round-robin; stop after ``rounds`` or ``time_cap`` seconds.

    :param candidates: name to a callable taking no argument.
    :param rounds: how many rounds at most; every round times each candidate
        ``batch`` times.
    :param warmup: untimed calls of each candidate first.
    :param time_cap: seconds after which no new round starts.
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    deadline = time.monotonic() + time_cap
    gc.collect()
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            call = candidates[name]
            out = samples[name]
            for _ in range(batch):
                start = clock()
                call()
                out.append(clock() - start)
        if time.monotonic() >= deadline:
            break
    return {name: summarize(name, samples[name]) for name in names}
