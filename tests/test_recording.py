"""How outcomes reach the memory: encoded once, in batches, never piling up, never lost silently."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence

import pytest

from messor import FunctionTask, LocalThreadedExecutor, SQLiteMemory
from messor.memories.base import COMPLETED, EncodedUpdate
from messor.run.writer import RecordWriter


class SlowMemory(SQLiteMemory):
    """A memory whose writes take a while, like a store across a network."""

    def __init__(self, delay: float) -> None:
        super().__init__(":memory:")
        self.delay = delay
        self.batches: list[int] = []

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        time.sleep(self.delay)
        self.batches.append(len(outcomes))
        super().record_outcomes(outcomes)


def test_the_result_recorded_is_the_value_at_return_even_if_the_task_changes_it_later() -> None:
    memory = SlowMemory(delay=0.05)
    shared: list[int] = []

    def append(number: int) -> list[int]:
        shared.append(number)
        return shared  # the same list, changed again by the next task

    tasks = [FunctionTask(f"p{n}", append, n) for n in range(5)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=1).run()
    assert [memory.get_task_result(f"p{n}") for n in range(5)] == [
        [0],
        [0, 1],
        [0, 1, 2],
        [0, 1, 2, 3],
        [0, 1, 2, 3, 4],
    ]


def test_a_result_whose_encoding_raises_fails_its_task_and_the_run_ends() -> None:
    class Treacherous(dict[str, int]):
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("changed size during iteration")

    memory = SQLiteMemory(":memory:")
    tasks = [FunctionTask("bad", lambda: Treacherous(a=1)), FunctionTask("good", lambda: 1)]
    finished = threading.Event()

    def run() -> None:
        LocalThreadedExecutor(tasks, memory=memory, retry=3).run()
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    assert finished.wait(timeout=10), "the run hung"
    [(task_id, error)] = memory.get_failed_tasks()
    assert task_id == "bad"
    assert error is not None
    assert "changed size during iteration" in error
    assert memory.get_task_status("good") == COMPLETED


def test_outcomes_are_written_in_batches_when_the_memory_is_slow() -> None:
    memory = SlowMemory(delay=0.05)
    tasks = [FunctionTask(f"t{n}", lambda: None) for n in range(2000)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8).run()
    assert sum(memory.batches) == 2000
    assert len(memory.batches) < 100


def test_finished_outcomes_never_pile_up_beyond_the_backlog_limit() -> None:
    memory = SlowMemory(delay=0.02)
    rows: list[tuple[str, dict[str, object]]] = [(f"t{n}", {}) for n in range(600)]
    memory.store_tasks(rows)
    writer = RecordWriter(memory, max_batch=50, max_backlog=100)
    writer.start()
    peak = 0
    for task_id, _ in rows:
        writer.put(EncodedUpdate(task_id, COMPLETED, "null", None))
        peak = max(peak, writer.backlog)
    writer.close()
    assert peak <= 101
    assert memory.count_by_status()[COMPLETED] == 600


def test_a_result_too_large_for_sqlite_fails_that_task_and_the_run_goes_on() -> None:
    memory = SQLiteMemory(":memory:")
    memory._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000)  # stands in for SQLite's 1 GB
    tasks = [FunctionTask(f"t{n}", lambda n=n: "x" * (20_000 if n == 3 else 10)) for n in range(8)]
    report = LocalThreadedExecutor(tasks, memory=memory).run()
    [(task_id, error)] = memory.get_failed_tasks()
    assert task_id == "t3"
    assert error is not None
    assert "too large for SQLite" in error
    assert len(memory.get_completed_tasks()) == 7
    assert (report.completed, report.failed) == (7, 1)


class CountingMemory(SQLiteMemory):
    """Counts record_outcomes calls and flushes."""

    def __init__(self, batch_delay: float = 0.0, flush_error: Exception | None = None) -> None:
        super().__init__(":memory:")
        self.batch_delay = batch_delay
        self.flush_error = flush_error
        self.calls = 0
        self.flushes = 0

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        self.calls += 1
        super().record_outcomes(outcomes)

    def flush(self) -> None:
        self.flushes += 1
        if self.flush_error is not None:
            raise self.flush_error


def test_a_memory_that_bills_per_request_gets_its_trickle_of_outcomes_in_few_calls() -> None:
    memory = CountingMemory(batch_delay=10.0)
    tasks = [FunctionTask(f"t{n}", time.sleep, 0.01) for n in range(30)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=1).run()
    assert memory.calls == 1  # gathered over the whole run, written when it ended
    assert memory.count_by_status()[COMPLETED] == 30


def test_without_a_batch_delay_a_trickle_is_recorded_as_it_comes() -> None:
    memory = CountingMemory(batch_delay=0.0)
    tasks = [FunctionTask(f"t{n}", time.sleep, 0.01) for n in range(30)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=1).run()
    assert memory.calls > 10


def test_the_memory_is_flushed_once_at_the_end_of_every_run() -> None:
    memory = CountingMemory()
    LocalThreadedExecutor([FunctionTask("t", lambda: 1)], memory=memory).run()
    assert memory.flushes == 1


def test_a_memory_that_fails_to_flush_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    memory = CountingMemory(flush_error=OSError("compaction failed"))
    report = LocalThreadedExecutor([FunctionTask("t", lambda: 1)], memory=memory).run()
    assert report.completed == 1
    assert "could not tidy up after the run: compaction failed" in caplog.text
