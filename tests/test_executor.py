"""The executors (threads and asyncio): what users rely on, on every memory the core ships."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import messor.run.sources
from messor import (
    ConfigurationError,
    DuplicateTaskError,
    FunctionTask,
    InvalidTaskError,
    LocalThreadedExecutor,
    Memory,
    RecordingError,
    ResultTooLargeError,
    RunInProgressError,
    SQLiteMemory,
)
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate
from messor.memories.claims import RunOwner
from messor.run.harvest import REGISTRATION_CHUNK
from tests.executors import run_with_each_executor

#: The executor under test; each test runs with both (see the fixture below).
Executor: Any = LocalThreadedExecutor

executor = run_with_each_executor(globals())


class Recorder:
    """Counts how often each task ran, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def hit(self, task_id: str) -> None:
        with self._lock:
            self.calls[task_id] += 1


class Page:
    """A task in the seed's style: get_id() and __call__()."""

    def __init__(self, task_id: str, recorder: Recorder, fail_times: int = 0, sleep: float = 0):
        self.task_id = task_id
        self.recorder = recorder
        self.fail_times = fail_times
        self.sleep = sleep

    def get_id(self) -> str:
        return self.task_id

    def __call__(self) -> str:
        self.recorder.hit(self.task_id)
        if self.sleep:
            time.sleep(self.sleep)
        if self.recorder.calls[self.task_id] <= self.fail_times:
            raise ConnectionError(f"attempt {self.recorder.calls[self.task_id]} of {self.task_id}")
        return f"Processed {self.task_id}"


def pages(count: int, recorder: Recorder, **options: Any) -> list[Page]:
    return [Page(f"task_{i}", recorder, **options) for i in range(count)]


# -- the seed's behaviour -------------------------------------------------------------------


def test_every_task_is_registered_run_and_completed(any_memory: Memory) -> None:
    recorder = Recorder()
    Executor(pages(20, recorder), memory=any_memory, max_concurrency=2).run()
    assert sorted(any_memory.get_completed_tasks()) == sorted(f"task_{i}" for i in range(20))
    assert any_memory.get_task_result("task_3") == "Processed task_3"
    assert set(recorder.calls.values()) == {1}


def test_a_rerun_skips_completed_tasks_and_runs_pending_and_failed_ones(
    any_memory: Memory,
) -> None:
    recorder = Recorder()
    tasks = pages(6, recorder)
    any_memory.store_tasks([(t.get_id(), {}) for t in tasks])
    any_memory.update_task_statuses(
        [("task_0", COMPLETED, "earlier", None), ("task_1", FAILED, None, "boom")]
    )
    report = Executor(tasks, memory=any_memory).run()
    assert recorder.calls["task_0"] == 0
    assert recorder.calls["task_1"] == 1
    assert any_memory.get_task_result("task_0") == "earlier"
    assert any_memory.get_task_status("task_1") == COMPLETED
    assert (report.completed, report.skipped) == (5, 1)


def test_a_second_run_executes_nothing_when_everything_completed(any_memory: Memory) -> None:
    recorder = Recorder()
    Executor(pages(10, recorder), memory=any_memory).run()
    report = Executor(pages(10, recorder), memory=any_memory).run()
    assert sum(recorder.calls.values()) == 10
    assert (report.completed, report.skipped) == (0, 10)


def test_status_summary_prints_and_returns_the_counts(
    any_memory: Memory, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    tasks = [*pages(3, recorder), Page("bad", recorder, fail_times=99)]
    executor = Executor(tasks, memory=any_memory, retry=0)
    executor.run()
    any_memory.store_tasks([("later", {})])
    capsys.readouterr()
    counts = executor.status_summary()
    assert capsys.readouterr().out == "Pending tasks: 1\nCompleted tasks: 3\nFailed tasks: 1\n"
    assert counts == {PENDING: 1, COMPLETED: 3, FAILED: 1}


def test_run_prints_nothing_to_stdout(
    any_memory: Memory, capsys: pytest.CaptureFixture[str]
) -> None:
    Executor(pages(5, Recorder()), memory=any_memory).run()
    assert capsys.readouterr().out == ""


# -- concurrency -----------------------------------------------------------------------------


def test_max_concurrency_tasks_really_run_at_once_and_never_more() -> None:
    barrier = threading.Barrier(4, timeout=10)
    lock = threading.Lock()
    running = [0, 0]  # now, peak

    def meet() -> None:
        with lock:
            running[0] += 1
            running[1] = max(running)
        barrier.wait()  # breaks (and fails the task) unless 4 run at once
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    memory = SQLiteMemory(":memory:")
    tasks = [FunctionTask(f"t{i}", meet) for i in range(12)]
    Executor(tasks, memory=memory, max_concurrency=4, retry=0).run()
    assert memory.get_failed_tasks() == []
    assert running[1] == 4


# -- failures and retries ----------------------------------------------------------------------


def test_a_failing_task_is_recorded_with_its_error_and_the_run_goes_on(
    any_memory: Memory,
) -> None:
    recorder = Recorder()
    tasks = [Page("bad", recorder, fail_times=99), *pages(5, recorder)]
    report = Executor(tasks, memory=any_memory, retry=0).run()
    assert any_memory.get_failed_tasks() == [("bad", "ConnectionError: attempt 1 of bad")]
    assert len(any_memory.get_completed_tasks()) == 5
    assert (report.completed, report.failed) == (5, 1)


def test_error_text_names_the_module_of_non_builtin_exceptions() -> None:
    class QuotaExceeded(Exception):
        pass

    def over_quota() -> None:
        raise QuotaExceeded("429 Too Many Requests")

    memory = SQLiteMemory(":memory:")
    Executor([FunctionTask("t", over_quota)], memory=memory, retry=0).run()
    (_, error), *_ = memory.get_failed_tasks()
    assert error is not None
    assert error.endswith(".QuotaExceeded: 429 Too Many Requests")
    assert error.startswith(__name__)


@pytest.mark.parametrize(("retry", "fail_times", "status", "calls"), [
    (0, 1, FAILED, 1),
    (1, 1, COMPLETED, 2),
    (2, 2, COMPLETED, 3),
    (2, 3, FAILED, 3),
])  # fmt: skip
def test_retry_n_gives_up_to_n_more_attempts_within_one_run(
    retry: int, fail_times: int, status: str, calls: int
) -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")
    task = Page("flaky", recorder, fail_times=fail_times)
    Executor([task], memory=memory, retry=retry).run()
    assert memory.get_task_status("flaky") == status
    assert recorder.calls["flaky"] == calls


def test_the_default_is_one_retry() -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")
    Executor([Page("flaky", recorder, fail_times=1)], memory=memory).run()
    assert memory.get_task_status("flaky") == COMPLETED


def test_a_result_that_is_not_json_fails_its_task_with_the_reason_and_is_not_retried(
    any_memory: Memory,
) -> None:
    calls: Counter[str] = Counter()

    def returns_a_set() -> set[int]:
        calls["set"] += 1
        return {1, 2}

    tasks = [FunctionTask("set", returns_a_set), FunctionTask("fine", lambda: [1, 2])]
    report = Executor(tasks, memory=any_memory, retry=3).run()
    [(task_id, error)] = any_memory.get_failed_tasks()
    assert task_id == "set"
    assert error is not None
    assert "JSON" in error
    assert "set" in error
    assert calls["set"] == 1
    assert any_memory.get_task_result("fine") == [1, 2]
    assert report.failed == 1


def test_a_task_raising_systemexit_fails_that_task_only() -> None:
    def exits() -> None:
        raise SystemExit(3)

    memory = SQLiteMemory(":memory:")
    tasks = [FunctionTask("exit", exits), FunctionTask("ok", lambda: 1)]
    Executor(tasks, memory=memory, retry=0).run()
    assert memory.get_failed_tasks() == [("exit", "SystemExit: 3")]
    assert memory.get_task_status("ok") == COMPLETED


def test_an_exception_whose_str_raises_is_still_recorded() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def fails() -> None:
        raise Unprintable

    memory = SQLiteMemory(":memory:")
    Executor([FunctionTask("t", fails)], memory=memory, retry=0).run()
    [(_, error)] = memory.get_failed_tasks()
    assert error is not None
    assert "Unprintable" in error


class PickyMemory(SQLiteMemory):
    """A memory that refuses results its JSON check cannot see (say, too large for the store)."""

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        if any('"huge":true' in (row.result_json or "") for row in outcomes):
            raise ResultTooLargeError("result larger than the store's 1 MB limit")
        super().record_outcomes(outcomes)


def test_a_result_the_memory_refuses_fails_that_task_and_keeps_its_batch_mates() -> None:
    memory = PickyMemory(":memory:")
    tasks = [FunctionTask(f"t{i}", lambda i=i: {"huge": i == 3, "i": i}) for i in range(8)]
    report = Executor(tasks, memory=memory).run()
    [(task_id, error)] = memory.get_failed_tasks()
    assert task_id == "t3"
    assert error is not None
    assert "1 MB limit" in error
    assert len(memory.get_completed_tasks()) == 7
    assert [task for task, _ in report.refused_results] == ["t3"]
    assert (report.completed, report.failed) == (7, 1)


class BuggyMemory(SQLiteMemory):
    """A memory with a bug that shows on one result: not a refusal it declares."""

    error: type[Exception] = ValueError

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        if any('"huge":true' in (row.result_json or "") for row in outcomes):
            raise self.error("a bug in the memory")
        super().record_outcomes(outcomes)


@pytest.mark.parametrize("error", [ValueError, TypeError])
def test_a_memory_bug_stops_the_run_and_is_never_recorded_as_the_tasks_failure(
    error: type[Exception],
) -> None:
    memory = BuggyMemory(":memory:")
    memory.error = error
    tasks = [FunctionTask(f"t{i}", lambda i=i: {"huge": i == 3, "i": i}) for i in range(8)]
    executor = Executor(tasks, memory=memory, max_concurrency=1)
    with pytest.raises(RecordingError, match="a bug in the memory") as raised:
        executor.run()
    assert isinstance(raised.value.__cause__, error)
    assert memory.get_failed_tasks() == []
    assert memory.get_task_status("t3") == PENDING  # runs again once the memory is fixed
    assert executor.report.refused_results == []


class BreakingMemory(SQLiteMemory):
    """A memory whose store goes away after ``good_writes`` writes."""

    def __init__(self, good_writes: int) -> None:
        super().__init__(":memory:")
        self.good_writes = good_writes

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        if self.good_writes <= 0:
            raise ConnectionError("the store went away")
        self.good_writes -= 1
        super().record_outcomes(outcomes)


def test_when_outcomes_cannot_be_recorded_the_run_stops_with_a_clear_error() -> None:
    memory = BreakingMemory(good_writes=1)
    recorder = Recorder()
    tasks = pages(200, recorder, sleep=0.002)
    executor = Executor(tasks, memory=memory, max_concurrency=2)
    with pytest.raises(RecordingError, match="the store went away") as raised:
        executor.run()
    assert isinstance(raised.value.__cause__, ConnectionError)
    completed = memory.get_completed_tasks()
    assert executor.report.completed == len(completed)  # nothing reported that was not stored
    assert 1 <= len(completed) < 200
    assert all(memory.get_task_result(t) == f"Processed {t}" for t in completed)
    assert sum(recorder.calls.values()) < 200


# -- stop conditions ------------------------------------------------------------------------------


def test_stop_all_when_is_checked_before_each_start_and_after_each_end(
    any_memory: Memory,
) -> None:
    recorder = Recorder()
    checks: list[int] = []

    def after_three() -> bool:
        checks.append(sum(recorder.calls.values()))
        return sum(recorder.calls.values()) >= 3

    tasks = pages(10, recorder)
    report = Executor(tasks, memory=any_memory, max_concurrency=1, stop_all_when=after_three).run()
    assert sum(recorder.calls.values()) == 3
    assert report.stopped
    assert len(any_memory.get_completed_tasks()) == 3
    assert len(any_memory.get_pending_tasks()) == 7
    # one check before each of the 3 starts, one after each of the 3 ends
    # (the last of which stopped the run)
    assert len(checks) == 3 + 3


def test_a_stop_lets_running_tasks_finish_and_records_them(any_memory: Memory) -> None:
    recorder = Recorder()
    stop = threading.Event()

    class Trigger(Page):
        def __call__(self) -> str:
            stop.set()
            time.sleep(0.05)  # the others are running meanwhile
            return super().__call__()

    tasks: list[Page] = [Trigger("trigger", recorder), *pages(50, recorder, sleep=0.05)]
    Executor(tasks, memory=any_memory, max_concurrency=4, stop_all_when=stop.is_set).run()
    ran = {task_id for task_id, n in recorder.calls.items() if n}
    assert 1 <= len(ran) <= 4
    assert set(any_memory.get_completed_tasks()) == ran
    assert len(any_memory.get_pending_tasks()) == 51 - len(ran)
    assert any_memory.get_failed_tasks() == []


def test_a_stop_sends_a_task_waiting_for_its_retry_back_to_pending_with_its_error() -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")
    tasks = [Page("flaky", recorder, fail_times=1)]
    Executor(
        tasks, memory=memory, retry=3, stop_all_when=lambda: recorder.calls["flaky"] >= 1
    ).run()
    [record] = memory.iter_records()
    assert (record.status, record.error) == (PENDING, "ConnectionError: attempt 1 of flaky")
    assert record.attempts == 1  # the stop did not use up its retries
    Executor(tasks, memory=memory).run()
    assert memory.get_task_status("flaky") == COMPLETED


def test_a_stop_condition_that_raises_stops_the_run_and_raises_after_recording() -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")

    def broken_condition() -> bool:
        if sum(recorder.calls.values()) >= 2:
            raise ZeroDivisionError("bug in the stop condition")
        return False

    with pytest.raises(ZeroDivisionError):
        Executor(
            pages(10, recorder), memory=memory, max_concurrency=1, stop_all_when=broken_condition
        ).run()
    assert len(memory.get_completed_tasks()) == 2
    assert len(memory.get_pending_tasks()) == 8


# -- task sets ------------------------------------------------------------------------------------


def test_tasks_may_come_from_a_generator_consumed_lazily() -> None:
    pulled = [0]
    recorder = Recorder()

    def endless() -> Iterator[Page]:
        while True:
            pulled[0] += 1
            yield Page(f"gen-{pulled[0]}", recorder)

    memory = SQLiteMemory(":memory:")
    Executor(
        endless(), memory=memory, stop_all_when=lambda: sum(recorder.calls.values()) >= 10
    ).run()
    assert len(memory.get_completed_tasks()) >= 10
    # read ahead by at most one registration chunk, plus one chunk registered
    assert pulled[0] <= 2 * REGISTRATION_CHUNK + 1


def test_a_list_is_registered_whole_before_its_first_task_starts(tmp_path: Path) -> None:
    path = tmp_path / "harvest.db"
    seen: list[dict[str, int]] = []

    def look() -> None:
        # As `messor status` from another terminal: its own connection to the file.
        other = SQLiteMemory(path)
        seen.append(other.count_by_status())
        other.close()

    tasks = [
        FunctionTask("first", look),
        *(FunctionTask(f"t{n}", lambda: None) for n in range(4999)),
    ]
    Executor(tasks, memory=SQLiteMemory(path), max_concurrency=1).run()
    assert seen == [{PENDING: 5000, COMPLETED: 0, FAILED: 0}]


def test_after_ctrl_c_every_task_of_a_list_not_run_is_in_the_memory_pending() -> None:
    memory = SQLiteMemory(":memory:")
    tasks = [
        FunctionTask("ctrl-c", os.kill, os.getpid(), signal.SIGINT),
        *(FunctionTask(f"t{n}", time.sleep, 0.01) for n in range(4999)),
    ]
    with pytest.raises(KeyboardInterrupt):
        Executor(tasks, memory=memory, max_concurrency=1).run()
    counts = memory.count_by_status()
    assert sum(counts.values()) == 5000  # `messor status` can tell how much is left
    assert counts[PENDING] > 4900


def test_a_generator_task_set_resumes_like_a_list(any_memory: Memory) -> None:
    recorder = Recorder()
    Executor(iter(pages(30, recorder)), memory=any_memory).run()
    report = Executor(iter(pages(40, recorder)), memory=any_memory).run()
    assert (report.completed, report.skipped) == (10, 30)
    assert sum(recorder.calls.values()) == 40


def test_a_generator_read_by_a_run_is_refused_by_the_next_run_with_the_fix(
    tmp_path: Path,
) -> None:
    recorder = Recorder()

    def every_page() -> Iterator[Page]:
        yield from pages(30, recorder)

    path = tmp_path / "harvest.db"
    executor = Executor(every_page(), memory=SQLiteMemory(path))
    release = SQLiteMemory(path).claim_run(RunOwner())  # another run holds the memory
    with pytest.raises(RunInProgressError):
        executor.run()  # refused before reading a single task: the generator is intact
    release()
    assert executor.run().completed == 30
    with pytest.raises(ConfigurationError, match=r"only once, so none are left") as raised:
        executor.run()  # it would silently do nothing
    assert isinstance(raised.value, ValueError)
    assert "executor.tasks = " in str(raised.value)
    executor.tasks = every_page()
    assert executor.run().skipped == 30


def test_duplicate_ids_in_a_list_are_refused_before_anything_is_written(
    any_memory: Memory,
) -> None:
    recorder = Recorder()
    any_memory.store_tasks([("task_1", {})])
    any_memory.update_task_statuses([("task_1", COMPLETED, "kept", None)])
    tasks = [*pages(5, recorder), Page("task_3", recorder)]
    with pytest.raises(DuplicateTaskError, match="'task_3'") as raised:
        Executor(tasks, memory=any_memory).run()
    assert isinstance(raised.value, ValueError)
    assert sum(recorder.calls.values()) == 0
    assert any_memory.dump_all()["task_statuses"] == {"task_1": COMPLETED}
    assert any_memory.get_task_result("task_1") == "kept"


def test_a_duplicate_id_from_a_generator_stops_the_run_before_it_overwrites() -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")

    def with_a_duplicate() -> Iterator[Page]:
        yield from pages(100, recorder)
        yield Page("task_7", recorder)

    with pytest.raises(ValueError, match="'task_7'"):
        Executor(with_a_duplicate(), memory=memory).run()
    assert recorder.calls["task_7"] == 1
    assert len(memory.get_completed_tasks()) == 100


def test_plain_functions_become_tasks_named_after_them() -> None:
    memory = SQLiteMemory(":memory:")
    Executor([harvest_one, harvest_two], memory=memory).run()
    assert memory.get_task_result(f"{__name__}.harvest_one") == 1
    assert memory.get_task_result(f"{__name__}.harvest_two") == 2


def harvest_one() -> int:
    return 1


def harvest_two() -> int:
    return 2


def test_function_task_pairs_a_callable_its_arguments_and_an_id() -> None:
    memory = SQLiteMemory(":memory:")
    task = FunctionTask("sum", lambda a, b, scale=1: (a + b) * scale, 2, 3, scale=10)
    Executor([task], memory=memory).run()
    assert memory.get_task_result("sum") == 50


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (lambda: 1, "not a task"),
        (42, "not a task"),
        (FunctionTask(7, print), "returned int"),  # type: ignore[arg-type]
    ],
)
def test_objects_that_are_not_usable_tasks_are_refused_with_the_fix(
    task: object, message: str
) -> None:
    with pytest.raises(InvalidTaskError, match=message) as raised:
        Executor([task], memory=SQLiteMemory(":memory:")).run()
    assert isinstance(raised.value, TypeError)


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"retry": -1}, "retry"),
        ({"retry": True}, "retry"),
        ({"stop_all_when": True}, "stop_all_when"),
        ({"memory": 42}, "memory"),
        ({"tasks": "not a list"}, "tasks"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], name: str) -> None:
    arguments: dict[str, Any] = {"tasks": [], "memory": "memory://", **options}
    with pytest.raises(ConfigurationError, match=name):
        Executor(**arguments)


def test_memory_may_be_a_spec_string() -> None:
    executor = Executor([harvest_one], memory="sqlite:///specified.db")
    executor.run()
    assert SQLiteMemory("specified.db").get_task_result(f"{__name__}.harvest_one") == 1


def test_without_a_memory_the_default_sqlite_file_in_the_working_directory_is_used() -> None:
    Executor([harvest_one]).run()
    assert SQLiteMemory("messor.db").get_task_status(f"{__name__}.harvest_one") == COMPLETED


# -- progress and logging ------------------------------------------------------------------------


def test_the_progress_bar_counts_tasks_done_in_earlier_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")
    Executor(pages(6, recorder), memory=memory).run()
    capsys.readouterr()
    Executor(pages(10, recorder), memory=memory, progress=True).run()
    err = capsys.readouterr().err
    assert " 6/10 " in err
    assert "10/10" in err


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Executor(pages(5, Recorder()), memory=SQLiteMemory(":memory:")).run()
    assert capsys.readouterr().err == ""


def test_diagnostics_go_to_the_messor_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="messor")
    recorder = Recorder()
    tasks = [*pages(3, recorder), Page("bad", recorder, fail_times=99)]
    Executor(tasks, memory=SQLiteMemory(":memory:"), retry=1).run()
    messages = [r.getMessage() for r in caplog.records if r.name == "messor"]
    assert any("3 completed, 1 failed" in m for m in messages)
    assert any("'bad'" in m and "retry" in m for m in messages)


# -- interrupts ----------------------------------------------------------------------------------


def test_ctrl_c_waits_for_running_tasks_records_them_and_raises() -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")
    started = threading.Event()

    class Interrupter(Page):
        def __call__(self) -> str:
            started.set()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # still running when the main thread sees the Ctrl-C
            return super().__call__()

    tasks: list[Page] = [Interrupter("ctrl-c", recorder), *pages(100, recorder, sleep=0.05)]
    executor = Executor(tasks, memory=memory, max_concurrency=4)
    with pytest.raises(KeyboardInterrupt):
        executor.run()
    assert started.is_set()
    assert executor.report.interrupted
    completed = set(memory.get_completed_tasks())
    assert "ctrl-c" in completed
    assert completed == {task_id for task_id, n in recorder.calls.items() if n}
    assert len(memory.get_pending_tasks()) == 101 - len(completed)
    assert len(completed) < 20


def test_a_second_ctrl_c_abandons_running_tasks_which_stay_pending() -> None:
    recorder = Recorder()
    memory = SQLiteMemory(":memory:")
    release = threading.Event()

    class Stuck(Page):
        def __call__(self) -> str:
            release.wait(timeout=10)
            return super().__call__()

    first_seen = threading.Event()

    class FirstSeen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Ctrl-C: no new tasks start"):
                first_seen.set()

    class DoubleInterrupter(Page):
        def __call__(self) -> str:
            os.kill(os.getpid(), signal.SIGINT)
            # Two signals sent before Python handles the first count as one.
            first_seen.wait(timeout=5)
            time.sleep(0.1)  # a person does not press twice within microseconds
            os.kill(os.getpid(), signal.SIGINT)
            return super().__call__()

    tasks: list[Page] = [
        *(Page(f"first_{i}", recorder) for i in range(3)),
        Stuck("stuck", recorder),
        DoubleInterrupter("ctrl-c-twice", recorder),
        *pages(50, recorder, sleep=0.05),
    ]
    logger = logging.getLogger("messor")
    handler = FirstSeen()
    logger.addHandler(handler)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            Executor(tasks, memory=memory, max_concurrency=2).run()
    finally:
        logger.removeHandler(handler)
    assert first_seen.is_set()
    assert time.monotonic() - started < 8
    release.set()
    assert memory.get_task_status("stuck") == PENDING
    assert {"first_0", "first_1", "first_2"} <= set(memory.get_completed_tasks())
    assert memory.get_failed_tasks() == []


def test_the_previous_sigint_handler_is_restored_after_a_run() -> None:
    before = signal.getsignal(signal.SIGINT)
    Executor(pages(3, Recorder()), memory=SQLiteMemory(":memory:")).run()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_slow_generator_does_not_hold_up_the_tasks_it_already_gave() -> None:
    memory = SQLiteMemory(":memory:")
    started: dict[str, float] = {}
    begin = time.monotonic()

    def slow_source() -> Iterator[FunctionTask]:
        for n in range(5):
            yield FunctionTask(f"t{n}", lambda n=n: started.setdefault(f"t{n}", time.monotonic()))
            time.sleep(0.2)

    Executor(slow_source(), memory=memory).run()
    assert started["t0"] - begin < 0.15
    assert len(memory.get_completed_tasks()) == 5


def test_a_generator_fed_by_the_tasks_themselves_runs_to_the_end() -> None:
    import queue

    frontier: queue.Queue[str] = queue.Queue()
    for seed in ("a", "b"):
        frontier.put(seed)

    def crawl(page: str) -> str:
        if len(page) < 4:  # each page links to two deeper ones
            frontier.put(page + "0")
            frontier.put(page + "1")
        return page

    def pages_to_visit() -> Iterator[FunctionTask]:
        while True:
            try:
                page = frontier.get(timeout=1)
            except queue.Empty:
                return
            yield FunctionTask(page, crawl, page)

    memory = SQLiteMemory(":memory:")
    started = time.monotonic()
    Executor(pages_to_visit(), memory=memory).run()
    assert len(memory.get_completed_tasks()) == 2 * (1 + 2 + 4 + 8)
    assert time.monotonic() - started < 5


def test_duplicates_are_found_among_many_generated_ids_with_little_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(messor.run.sources, "SEEN_IN_MEMORY", 100)
    monkeypatch.setattr(messor.run.sources, "BATCH", 7)
    seen = messor.run.sources.SeenIds()
    ids = [f"id-{n}" for n in range(5000)]
    assert not any(seen.check_and_add(i) for i in ids)
    assert all(seen.check_and_add(i) for i in ids[::97])  # early, late, and still in a batch
    # An id whose hash is taken (as by a collision) is still new: the file says so.
    seen._put(hash("fresh") or 1)
    assert not seen.check_and_add("fresh")
    assert seen.check_and_add("fresh")
    seen.close()

    def with_a_late_duplicate() -> Iterator[FunctionTask]:
        yield from (FunctionTask(f"t{n}", int) for n in range(3000))
        yield FunctionTask("t1234", int)

    memory = SQLiteMemory(":memory:")
    with pytest.raises(DuplicateTaskError, match="t1234"):
        Executor(with_a_late_duplicate(), memory=memory).run()
    assert len(memory.get_completed_tasks()) == 3000
