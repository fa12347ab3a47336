"""Tasks for the Dask tests: importable by worker processes, each run logged to a file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from messor import FunctionTask


def log_line(log: Path, line: str) -> None:
    """Append one line at once (O_APPEND): lines from many processes never mix."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def square(n: int, log: str, run: str, seconds: float) -> dict[str, int]:
    log_line(Path(log), f"{run}\t{n}")
    time.sleep(seconds)
    return {"n": n, "square": n * n}


def kill_my_worker(log: str) -> None:
    log_line(Path(log), "killer")
    os._exit(1)  # as if the worker ran out of memory


def squares(count: int, log: Path, run: str, seconds: float = 0.0) -> list[FunctionTask]:
    return [FunctionTask(f"sq-{n}", square, n, str(log), run, seconds) for n in range(count)]


def executions(log: Path, run: str | None = None) -> dict[str, int]:
    """How many times each task ran, from the log (in one run, or in all)."""
    counts: dict[str, int] = {}
    if not log.exists():
        return counts
    for line in log.read_text().splitlines():
        logged_run, _, n = line.partition("\t")
        if n and (run is None or logged_run == run):
            counts[f"sq-{n}"] = counts.get(f"sq-{n}", 0) + 1
    return counts


def from_environment() -> list[FunctionTask]:
    """``SQUARES`` tasks logging to ``SQUARES_LOG``: for ``messor run`` in a subprocess."""
    return squares(int(os.environ["SQUARES"]), Path(os.environ["SQUARES_LOG"]), "cli")
