"""A harvest the signal tests run in a child process, and signal.

    python tests/signal_child.py MEMORY_SPEC STARTED_LOG HANGING

Runs 2 tasks that hang for a minute when HANGING is "yes", then 200 that take
50 ms each, on 3 threads. Each task appends its id to STARTED_LOG when it
starts. The exit code says how run() ended: 0 it returned, 130 it raised
KeyboardInterrupt.
"""

from __future__ import annotations

import os
import sys
import time

from messor import FunctionTask, LocalThreadedExecutor


def work(log: int, task_id: str, seconds: float) -> str:
    os.write(log, f"{task_id}\n".encode())
    time.sleep(seconds)
    return task_id


def main(memory: str, started_log: str, hanging: str) -> int:
    log = os.open(started_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    tasks = [FunctionTask(f"hang{n}", work, log, f"hang{n}", 60) for n in range(2)]
    tasks = tasks if hanging == "yes" else []
    tasks += [FunctionTask(f"quick{n}", work, log, f"quick{n}", 0.05) for n in range(200)]
    try:
        report = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=3).run()
    except KeyboardInterrupt:
        return 130
    print(f"returned: {report.stopped_because}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
