"""What the benchmark scripts share: timing a measurement the same way in each of them.

The scripts run as ``python benchmarks/bench_….py``, so this folder is on ``sys.path`` and they
import this module as ``_common`` (worker processes inherit that path).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(function: Callable[[], object], repeat: int) -> float:
    """Call ``function`` ``repeat`` times; return the median wall-clock time of one call [s]."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
