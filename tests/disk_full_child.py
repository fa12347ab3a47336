"""A harvest whose SQLite file runs out of room, run by the store fault tests in a child.

    python tests/disk_full_child.py DATABASE COUNT [SIZE_LIMIT]

Opens the memory, then (with SIZE_LIMIT) forbids any file of the process to
grow past SIZE_LIMIT bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so a write past it
fails with EFBIG as on a full disk, and root is bound by it too), and runs
COUNT tasks (see :func:`tasks`). Prints one JSON line: how ``run()`` ended
(``error``: its message, or None) and what the report counted.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time

from messor import FunctionTask, LocalThreadedExecutor, SQLiteMemory


def result_of(number: int) -> dict[str, object]:
    """What task ``t<number>`` returns: half a kilobyte, so that the file grows fast."""
    return {"n": number, "padding": "x" * 500}


def work(number: int, seconds: float) -> dict[str, object]:
    time.sleep(seconds)
    return result_of(number)


def tasks(count: int, seconds: float = 0.001) -> list[FunctionTask]:
    """Task ``t<n>`` returns ``result_of(n)`` after ``seconds``: the file fills over commits."""
    return [FunctionTask(f"t{n}", work, n, seconds) for n in range(count)]


def main() -> None:
    path, count = sys.argv[1], int(sys.argv[2])
    memory = SQLiteMemory(path)
    if len(sys.argv) > 3:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(sys.argv[3])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    executor = LocalThreadedExecutor(tasks(count), memory=memory, max_concurrency=4)
    error = None
    try:
        executor.run()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    report = executor.report
    print(json.dumps({"error": error, "completed": report.completed, "failed": report.failed}))


if __name__ == "__main__":
    main()
