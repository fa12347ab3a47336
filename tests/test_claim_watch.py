"""Any memory can tell a run about its claim: the run waits while it is in doubt, stops once lost.

A memory whose claim lapses unless renewed reports each renewal and a loss
through the owner's :class:`~messor.memories.claims.ClaimWatch` (the Redis memory does;
see tests/test_claim_fence.py); these tests play such a memory.
"""

from __future__ import annotations

import threading
import time

import pytest

from messor import ClaimLostError, FunctionTask, InProcessMemory, LocalThreadedExecutor, RunOptions
from messor.memories.claims import ClaimWatch, Release, RunOwner
from messor.run.harvest import Harvest


class LapsingMemory(InProcessMemory):
    """An in-process memory whose claim behaves like a remote store's: the test renews it."""

    watch: ClaimWatch

    def claim_run(self, owner: RunOwner) -> Release:
        self.watch = owner.watch
        owner.watch.renewed(time.monotonic() + 60)
        return super().claim_run(owner)


def lose(memory: LapsingMemory) -> None:
    memory.watch.lost(ClaimLostError("This run lost its claim (a test)"))


def test_a_run_starts_nothing_while_its_claim_is_in_doubt_and_goes_on_once_renewed() -> None:
    memory = LapsingMemory()
    tasks = [FunctionTask(f"t{n}", int, n) for n in range(3)]
    woken: list[bool] = []
    with Harvest(tasks, memory, RunOptions(progress=False)) as harvest:
        harvest.wake = lambda: woken.append(True)
        assert harvest.next_attempt() is not None
        memory.watch.renewed(time.monotonic() - 1)  # its lapse has passed: a pause, say
        assert harvest.next_attempt() is None
        assert not harvest.done
        assert harvest.wait_hint() is None  # waits to be woken, no busy loop
        memory.watch.renewed(time.monotonic() + 60)
        assert woken == [True]
        assert harvest.next_attempt() is not None
        harvest.stop()


def test_a_run_told_its_claim_is_lost_stops_and_ends_with_the_memory_s_error() -> None:
    memory = LapsingMemory()
    tasks = [FunctionTask(f"t{n}", int, n) for n in range(3)]
    woken: list[bool] = []
    harvest = Harvest(tasks, memory, RunOptions(progress=False)).__enter__()
    harvest.wake = lambda: woken.append(True)
    assert harvest.next_attempt() is not None
    lose(memory)
    assert woken == [True]
    assert harvest.next_attempt() is None
    assert harvest.done
    with pytest.raises(ClaimLostError, match="a test"):
        harvest.__exit__(None, None, None)


def test_a_claim_lost_while_a_task_runs_lets_no_other_task_start() -> None:
    memory = LapsingMemory()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        # The memory's own thread finds the claim gone.
        reporter = threading.Thread(target=lose, args=(memory,))
        reporter.start()
        reporter.join()

    tasks = [FunctionTask("first", first)]
    tasks += [FunctionTask(f"t{n}", ran.append, f"t{n}") for n in range(10)]
    # One thread, attempts handed out only when it is free (a timeout is set).
    executor = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=1, timeout=60)
    with pytest.raises(ClaimLostError):
        executor.run()
    assert ran == ["first"]
