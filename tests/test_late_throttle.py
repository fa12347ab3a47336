"""A throttle the run does not pause for must not leave the worker threads holding their queue."""

from __future__ import annotations

import threading
import time

import messor
from messor import InProcessMemory, Throttled


def test_a_throttle_from_an_attempt_already_timed_out_does_not_stall_the_other_tasks() -> None:
    # Task 0 outlives its timeout, then says 429: its thread holds back what
    # the queue gives it until the run takes it back. The run had given the
    # attempt up (no pause), yet it must still take the queue back and go on.
    def task(n: int) -> None:
        if n == 0:
            time.sleep(1.0)
            raise Throttled(retry_after=0.05)
        threading.Event().wait(0.1)  # still running when task 0 comes back

    memory = InProcessMemory()
    report = messor.LocalThreadedExecutor(
        [messor.FunctionTask(str(n), task, n) for n in range(30)],
        memory=memory,
        max_concurrency=2,
        timeout=0.5,
        retry=0,
        progress=False,
    ).run()
    assert report.completed == 29
    assert memory.count_by_status()["completed"] == 29
    assert memory.get_task_status("0") == "failed"  # timed out, the only one
