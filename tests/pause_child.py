"""A harvest that the pause campaign runs in a child process, then stops and continues.

    python tests/pause_child.py MEMORY_SPEC EXECUTION_LOG NAME COUNT

Task ``p<n>`` sleeps a few milliseconds and returns ``{"n": n, "by": NAME}``:
each result says which run recorded it. Each execution appends
``<NAME> <task id> start`` and then ``... finish`` to EXECUTION_LOG, each line
one ``write()`` on an ``O_APPEND`` file, so the parent can tell which run
started what, and when.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from messor import LocalThreadedExecutor

#: Threads of the child's harvest.
MAX_CONCURRENCY = 8


class PauseTask:
    def __init__(self, log: int, name: str, number: int) -> None:
        self.log, self.name, self.number = log, name, number
        self.task_id = f"p{number}"

    def get_id(self) -> str:
        return self.task_id

    def __call__(self) -> dict[str, Any]:
        self.write("start")
        time.sleep(0.002 + 0.001 * (self.number % 5))
        self.write("finish")
        return {"n": self.number, "by": self.name}

    def write(self, event: str) -> None:
        os.write(self.log, f"{self.name} {self.task_id} {event}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("memory")
    parser.add_argument("execution_log")
    parser.add_argument("name")
    parser.add_argument("count", type=int)
    options = parser.parse_args()
    log = os.open(options.execution_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    tasks = [PauseTask(log, options.name, n) for n in range(options.count)]
    LocalThreadedExecutor(
        tasks, memory=options.memory, max_concurrency=MAX_CONCURRENCY, progress=False
    ).run()


if __name__ == "__main__":
    main()
