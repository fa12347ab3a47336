"""A harvest that the crash tests run in a child process, and kill.

    python tests/crash_child.py MEMORY_SPEC EXECUTION_LOG COUNT [ID_PREFIX]
                                [--run N] [--generator]

Task ``t<n>`` returns ``expected_result(n)``; how long it takes and whether
it fails depend on ``n`` alone (see :func:`behaviour`), so every run of the
same set does the same work. Each execution appends ``<run> <task id> start``
and then ``... finish`` or ``... fail`` to EXECUTION_LOG, each line one
``write()`` on an ``O_APPEND`` file: the lines of a killed run are whole, and
the parent can count executions per run. ``--run`` numbers the run (some
tasks fail in every attempt of the early runs); ``--generator`` hands the
tasks over as a generator instead of a list.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

from messor import LocalThreadedExecutor

#: Every task succeeds in this run and later ones (and fails in none of them twice).
LAST_FAILING_RUN = 3

_attempts: Counter[str] = Counter()  # per task, in this process
_attempts_lock = threading.Lock()


def expected_result(number: int) -> dict[str, Any]:
    """Small, mostly; one in ten a page of text too big to keep inline (S3: a blob)."""
    result: dict[str, Any] = {"n": number, "square": number * number}
    if number % 10 == 7:
        result["page"] = f"página {number}: " + "ab€" * (100 + number % 500)
    return result


class Behaviour(NamedTuple):
    seconds: float
    #: Fails in every attempt of the runs numbered up to this (0: never).
    fails_until_run: int
    #: Fails in its first attempt of every run; its retry succeeds.
    flaky: bool


def behaviour(number: int) -> Behaviour:
    """Mostly instant tasks, a third of a few ms, a few slow ones; a few failing for a while."""
    mixed = (number * 2654435761) % 2**32  # Knuth's multiplicative hash: spread, reproducible
    roll = mixed % 100
    if roll < 60:
        seconds = 0.0
    elif roll < 95:
        seconds = 0.001 * (1 + (mixed >> 8) % 5)
    else:
        seconds = 0.05 + 0.01 * ((mixed >> 8) % 10)
    fault = (mixed >> 16) % 100
    fails_until_run = 1 + fault % LAST_FAILING_RUN if fault < 8 else 0
    return Behaviour(seconds, fails_until_run, flaky=8 <= fault < 16)


class CrashTask:
    """Task ``<prefix>t<number>``, logging each execution to the log's descriptor."""

    def __init__(self, log: int, run: int, prefix: str, number: int) -> None:
        self.log, self.run, self.number = log, run, number
        self.task_id = f"{prefix}t{number}"

    def get_id(self) -> str:
        return self.task_id

    def get_data(self) -> dict[str, int]:
        return {"n": self.number}

    def __call__(self) -> dict[str, Any]:
        with _attempts_lock:
            _attempts[self.task_id] += 1
            first = _attempts[self.task_id] == 1
        self.write("start")
        how = behaviour(self.number)
        time.sleep(how.seconds)
        if self.run <= how.fails_until_run or (how.flaky and first):
            self.write("fail")
            raise ConnectionError(f"task {self.task_id} failed in run {self.run}")
        self.write("finish")
        return expected_result(self.number)

    def write(self, event: str) -> None:
        os.write(self.log, f"{self.run} {self.task_id} {event}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("memory")
    parser.add_argument("execution_log")
    parser.add_argument("count", type=int)
    parser.add_argument("id_prefix", nargs="?", default="")
    parser.add_argument("--run", type=int, default=LAST_FAILING_RUN + 1)
    parser.add_argument("--generator", action="store_true")
    options = parser.parse_args()
    log = os.open(options.execution_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def generate() -> Iterator[CrashTask]:
        for n in range(options.count):
            yield CrashTask(log, options.run, options.id_prefix, n)

    tasks = generate() if options.generator else list(generate())
    LocalThreadedExecutor(
        tasks, memory=options.memory, max_concurrency=8, retry=2, progress=False
    ).run()


if __name__ == "__main__":
    main()
