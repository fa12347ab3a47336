"""Tasks for the Dask tests: importable by worker processes, each run logged to a file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import messor
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


def paced(url: str, log: str, seconds: float, throttle_marker: str | None = None) -> str:
    """Logs ``start``/``end`` with the host and the time (one monotonic clock for every process
    on Linux); the first task of all to reach ``throttle_marker`` raises messor.Throttled(1.0)."""
    host = url.split("/")[2]
    log_line(Path(log), f"start\t{host}\t{time.monotonic()!r}")
    if throttle_marker is not None:
        try:
            os.close(os.open(throttle_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            log_line(Path(log), f"throttled\t{host}\t{time.monotonic()!r}")
            raise messor.Throttled(1.0)
    time.sleep(seconds)
    log_line(Path(log), f"end\t{host}\t{time.monotonic()!r}")
    return url


def paced_log(log: Path) -> list[tuple[str, str, float]]:
    """``(event, host, time)`` for each line :func:`paced` wrote."""
    events = []
    for line in log.read_text().splitlines():
        event, host, at = line.split("\t")
        events.append((event, host, float(at)))
    return events
