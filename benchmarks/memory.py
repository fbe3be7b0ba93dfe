"""Memory growth over many verifications of the same assertion.

Two views: the process RSS (sees leaks in lxml, libxml2 and OpenSSL, which
allocate outside Python) over the full count, and tracemalloc's traced Python
heap over a shorter run (tracing slows every allocation down).
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MemoryResult", "measure_memory", "rss_bytes"]

MIB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class MemoryResult:
    count: int
    rss_growth: int
    traced_count: int
    traced_growth: int


def measure_memory(
    call: Callable[[], object], count: int = 20_000, traced_count: int = 2_000, warmup: int = 2_000
) -> MemoryResult:
    """RSS growth over ``count`` calls and traced growth over ``traced_count``, after a warmup."""
    for _ in range(warmup):
        call()
    gc.collect()
    before = rss_bytes()
    for _ in range(count):
        call()
    gc.collect()
    rss_growth = rss_bytes() - before

    tracemalloc.start()
    try:
        for _ in range(min(200, traced_count)):
            call()
        gc.collect()
        traced_before, _ = tracemalloc.get_traced_memory()
        for _ in range(traced_count):
            call()
        gc.collect()
        traced_after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return MemoryResult(count, rss_growth, traced_count, traced_after - traced_before)
