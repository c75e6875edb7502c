"""How collaface measures latency, shared by ``collaface bench`` and ``scripts/bench_complete.py``.

One method everywhere: a fixed number of threads (given by the caller, 1 by default: on a busy
2-core machine several threads spin waiting for each other and one run takes 10x longer),
``WARMUP`` untimed runs, then the **median** of ``repeats`` timed runs; the machine's load
average is recorded before and after, so figures from a busy machine read as such. Nothing
here imports torch.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

WARMUP = 2
REPEATS = 20
THREADS = 1


def cpu_name() -> str:
    """The CPU's model name (as ``lscpu`` shows it), e.g. 'AMD EPYC 9B14'."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def median_latency(run: Callable[[], object], repeats: int = REPEATS, warmup: int = WARMUP) -> dict:
    """Time ``run()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    -> {"median_ms", "min_ms", "max_ms", "repeats", "warmup", "load_before", "load_after"}.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    load_before = load_average()
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "repeats": repeats, "warmup": warmup, "load_before": load_before, "load_after": load_average()}
