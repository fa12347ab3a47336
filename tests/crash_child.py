"""A harvest that the crash tests run in a child process, and kill.

    python tests/crash_child.py MEMORY_SPEC EXECUTION_LOG COUNT [ID_PREFIX]

Each task appends its id to EXECUTION_LOG before returning a result derived
from its number, so the parent can tell which tasks ran, and how often.
"""

from __future__ import annotations

import os
import sys
import time

from messor import FunctionTask, LocalThreadedExecutor


def expected_result(number: int) -> dict[str, int]:
    return {"n": number, "square": number * number}


def fetch(log: int, number: int) -> dict[str, int]:
    os.write(log, f"t{number}\n".encode())  # one write() on an O_APPEND file: whole lines
    time.sleep(0.004)
    return expected_result(number)


def main(memory: str, execution_log: str, count: int, id_prefix: str = "") -> None:
    log = os.open(execution_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    tasks = [FunctionTask(f"{id_prefix}t{n}", fetch, log, n) for n in range(count)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=4).run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
