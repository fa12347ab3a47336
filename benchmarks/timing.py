"""What the benchmark scripts share: timing a run into a new SQLite file."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["median_seconds"]


def median_seconds(run: Callable[[str], object], repeats: int) -> float:
    """Median wall time of ``run(memory)``, each time into a new SQLite file."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as directory:
            memory = f"sqlite:///{Path(directory) / 'harvest.db'}"
            started = time.perf_counter()
            run(memory)
            times.append(time.perf_counter() - started)
    return statistics.median(times)
