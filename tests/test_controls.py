"""Harvest controls: rate limit, backoff, retries, stops, timeouts, reports, function tasks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import messor
from messor import (
    ConfigurationError,
    FunctionTask,
    InvalidTaskError,
    LocalThreadedExecutor,
    Memory,
    SQLiteMemory,
    stop_after_consecutive_failures,
    stop_on,
)
from messor.memories.base import COMPLETED, FAILED, PENDING
from messor.run.attempt import perform
from messor.run.controls import Backoff, RateLimiter, parse_rate
from messor.run.stops import StopCondition
from tests.conftest import opened_memory
from tests.executors import run_with_each_executor

#: The executor under test; each test runs with both (see the fixture below).
Executor: Any = LocalThreadedExecutor

executor = run_with_each_executor(globals())


class Starts:
    """Records when each task started, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.by_task: Counter[str] = Counter()

    def task(self, task_id: str, fail_with: type[BaseException] | None = None) -> FunctionTask:
        def run() -> str:
            with self.lock:
                self.times.append(time.monotonic())
                self.by_task[task_id] += 1
            if fail_with is not None:
                raise fail_with(f"{task_id} failed")
            return task_id

        return FunctionTask(task_id, run)


# -- rate limit ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "per_second"),
    [
        ("10/s", 10.0),
        ("600/m", 10.0),
        ("36000/h", 10.0),
        ("864000/d", 10.0),
        (5, 5.0),
        ("2.5/second", 2.5),
        (0.5, 0.5),
    ],
)
def test_rates_are_read_per_second_minute_hour_or_day(rate: str | float, per_second: float) -> None:
    assert parse_rate(rate) == pytest.approx(per_second)


@pytest.mark.parametrize("rate", ["fast", "10/w", "10 per second", 0, -1, True, "0/s"])
def test_a_rate_that_is_not_one_is_refused_with_the_forms_to_use(rate: Any) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit"):
        Executor([], memory="memory://", rate_limit=rate)


def test_the_rate_limit_holds_within_5_percent_across_all_threads() -> None:
    starts = Starts()
    tasks = [starts.task(f"t{n}") for n in range(121)]
    Executor(tasks, memory="memory://", max_concurrency=8, rate_limit="40/s").run()
    assert len(starts.times) == 121
    span = starts.times[-1] - starts.times[0]
    assert (len(starts.times) - 1) / span == pytest.approx(40, rel=0.05)
    # Smooth: no half second holds more than its share (20), plus the one that
    # opens it, plus one start that the machine's scheduling made late (under
    # load, a thread or the event loop may lag its slot by a few ms).
    for first in starts.times:
        assert sum(first <= t < first + 0.5 for t in starts.times) <= 22


@pytest.mark.parametrize("source", [list, iter], ids=["list", "generator"])
def test_a_rate_limited_run_sleeps_until_the_next_start_instead_of_spinning(
    source: Any,
) -> None:
    # Tasks ready to start, free slots, and the rate limit says "not yet":
    # the run loop must sleep until the next start, not ask again at once.
    tasks = source(FunctionTask(f"t{n}", time.sleep, 0.4) for n in range(12))
    cpu, wall = time.process_time(), time.monotonic()
    Executor(tasks, memory="memory://", max_concurrency=4, rate_limit="6/s").run()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert cpu < 0.3 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s of a run of sleeping tasks"


def test_a_burst_lets_that_many_start_at_once_and_no_more() -> None:
    limiter = RateLimiter("1/s", burst=5)
    assert [limiter.try_acquire(now=100.0) for _ in range(5)] == [0.0] * 5
    assert limiter.try_acquire(now=100.0) == pytest.approx(1.0)
    assert limiter.try_acquire(now=101.0) == 0.0


# -- retries -----------------------------------------------------------------------------


def test_backoff_waits_longer_after_each_failure_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("messor.run.controls.random.uniform", lambda low, high: high)
    backoff = Backoff(0.5, cap=3.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert Backoff(0.0).delay(3) == 0.0


def test_retries_wait_for_their_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("messor.run.controls.random.uniform", lambda low, high: high)
    starts = Starts()
    tasks = [starts.task("flaky", fail_with=ConnectionError)]
    Executor(tasks, memory="memory://", retry=2, backoff=0.1).run()
    first, second, third = starts.times
    assert second - first >= 0.09
    assert third - second >= 0.19


def test_retry_on_retries_only_those_exceptions() -> None:
    starts = Starts()
    tasks = [
        starts.task("connection", fail_with=ConnectionError),
        starts.task("bug", fail_with=KeyError),
    ]
    memory = SQLiteMemory(":memory:")
    Executor(tasks, memory=memory, retry=3, retry_on=ConnectionError).run()
    assert starts.by_task == {"connection": 4, "bug": 1}
    assert dict(memory.get_failed_tasks())["bug"] == "KeyError: 'bug failed'"


@pytest.mark.parametrize("kind", ["sqlite-file", "in-process", "redis-fake", "s3-mock"])
def test_attempts_and_the_last_error_are_kept_in_the_memory(kind: str, tmp_path: Path) -> None:
    for memory in opened_memory(kind, tmp_path):
        starts = Starts()
        tasks = [starts.task("flaky", fail_with=TimeoutError), starts.task("fine")]
        Executor(tasks, memory=memory, retry=2).run()
        records = {r.task_id: r for r in memory.iter_records()}
        assert (records["flaky"].status, records["flaky"].attempts) == (FAILED, 3)
        assert records["flaky"].error == "TimeoutError: flaky failed"
        assert (records["fine"].status, records["fine"].attempts) == (COMPLETED, 1)


def test_status_summary_can_list_failures_with_their_attempts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    starts = Starts()
    tasks = [starts.task(f"bad{n}", fail_with=ValueError) for n in range(3)]
    executor = Executor(tasks, memory="memory://", retry=1)
    executor.run()
    capsys.readouterr()
    executor.status_summary(failures=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["Pending tasks: 0", "Completed tasks: 0", "Failed tasks: 3"]
    assert lines[3].endswith("after 2 attempts: ValueError: " + lines[3].split()[0] + " failed")
    assert lines[5] == "  ... and 1 more"


# -- stop conditions -------------------------------------------------------------------------


def test_stop_after_consecutive_failures_stops_a_run_against_a_dead_service() -> None:
    starts = Starts()
    tasks = [starts.task(f"t{n}", fail_with=ConnectionError) for n in range(20)]
    memory = SQLiteMemory(":memory:")
    report = Executor(
        tasks,
        memory=memory,
        max_concurrency=1,
        retry=0,
        stop_all_when=stop_after_consecutive_failures(3),
    ).run()
    assert len(starts.times) == 3
    assert report.stopped
    assert report.stopped_because is not None
    assert "3 attempts failed in a row" in report.stopped_because
    assert len(memory.get_pending_tasks()) == 17


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    starts = Starts()
    tasks = [
        starts.task(f"t{n}", fail_with=None if n % 3 == 2 else ConnectionError) for n in range(12)
    ]
    # One at a time: with more, two groups' failures may finish before the
    # success between them, and that is three in a row.
    report = Executor(
        tasks,
        memory="memory://",
        max_concurrency=1,
        retry=0,
        stop_all_when=stop_after_consecutive_failures(3),
    ).run()
    assert len(starts.times) == 12
    assert report.stopped_because is None


class BannedError(Exception):
    pass


def test_stop_on_stops_at_the_first_ban_and_the_banned_task_keeps_its_retries() -> None:
    starts = Starts()
    tasks = [starts.task(f"t{n}", fail_with=BannedError if n == 3 else None) for n in range(10)]
    memory = SQLiteMemory(":memory:")
    report = Executor(
        tasks, memory=memory, max_concurrency=1, retry=2, stop_all_when=[stop_on(BannedError)]
    ).run()
    assert starts.by_task["t3"] == 1
    assert report.stopped_because is not None
    assert "BannedError" in report.stopped_because
    assert memory.get_task_status("t3") == PENDING  # goes back, retries intact
    assert len(memory.get_completed_tasks()) == 3
    assert len(memory.get_pending_tasks()) == 7


def test_stop_helpers_compose_with_your_own_condition() -> None:
    starts = Starts()
    tasks = [starts.task(f"t{n}") for n in range(10)]
    report = Executor(
        tasks,
        memory="memory://",
        max_concurrency=1,
        stop_all_when=[stop_on(BannedError), lambda: len(starts.times) >= 4],
    ).run()
    assert len(starts.times) == 4
    assert report.stopped_because is not None
    assert "<lambda>" in report.stopped_because


def test_a_stop_condition_list_with_something_not_callable_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="stop_all_when"):
        Executor(
            [],
            memory="memory://",
            stop_all_when=[stop_on(BannedError), 3],
        )


# -- timeouts ------------------------------------------------------------------------------------


def test_a_task_past_its_timeout_fails_and_frees_its_slot() -> None:
    release = threading.Event()
    starts = Starts()

    def hangs() -> str:
        release.wait(10)
        return "too late"

    tasks = [FunctionTask("hangs", hangs), *(starts.task(f"quick{n}") for n in range(5))]
    memory = SQLiteMemory(":memory:")
    began = time.monotonic()
    report = Executor(tasks, memory=memory, max_concurrency=1, retry=0, timeout=0.2).run()
    assert time.monotonic() - began < 2
    assert report.timed_out == 1
    [(task_id, error)] = memory.get_failed_tasks()
    assert task_id == "hangs"
    assert error is not None
    assert error.startswith("messor.errors.TaskTimeoutError: no result after 0.2 s")
    assert len(memory.get_completed_tasks()) == 5
    release.set()
    time.sleep(0.2)  # the abandoned call returns: its result is ignored
    assert memory.get_task_status("hangs") == FAILED


def test_a_timed_out_task_is_retried_like_any_failure() -> None:
    calls = Counter[str]()

    def slow() -> None:
        calls["slow"] += 1
        time.sleep(0.5)

    memory = SQLiteMemory(":memory:")
    report = Executor([FunctionTask("slow", slow)], memory=memory, retry=1, timeout=0.1).run()
    assert calls["slow"] == 2
    assert report.timed_out == 2
    [record] = memory.iter_records()
    assert (record.status, record.attempts) == (FAILED, 2)


# -- reports and progress -------------------------------------------------------------------


def test_the_report_says_why_a_run_ended(tmp_path: Path) -> None:
    memory: Memory = SQLiteMemory(tmp_path / "h.db")
    starts = Starts()
    finished = Executor([starts.task("a")], memory=memory).run()
    assert finished.stopped_because is None
    assert finished.elapsed > 0
    stopped = Executor([starts.task("b")], memory=memory, stop_all_when=lambda: True).run()
    assert stopped.stopped_because == "stop_all_when: <lambda>"


def test_the_progress_bar_shows_failures_and_retries(capsys: pytest.CaptureFixture[str]) -> None:
    starts = Starts()
    tasks = [starts.task("bad", fail_with=ValueError), starts.task("good")]
    Executor(tasks, memory="memory://", retry=2, progress=True).run()
    err = capsys.readouterr().err
    assert "failed=1" in err
    assert "retries=2" in err
    assert "2/2" in err


# -- function tasks ----------------------------------------------------------------------------


def fetch(url: str, retries: int = 3) -> str:
    return f"{url} ({retries})"


def test_task_derives_a_stable_readable_id_from_the_call() -> None:
    first = messor.task(fetch, "https://example.org/1", retries=2)
    again = messor.task(fetch, "https://example.org/1", retries=2)
    assert first.get_id() == again.get_id() == 'fetch("https://example.org/1", retries=2)'
    assert messor.task(fetch, "https://example.org/2").get_id() != first.get_id()
    assert first() == "https://example.org/1 (2)"


def test_a_long_derived_id_ends_in_a_hash() -> None:
    task_id = messor.task(fetch, "x" * 500).get_id()
    assert task_id.startswith("fetch#")
    assert len(task_id) < 40


@pytest.mark.parametrize(
    ("function", "args", "message"),
    [(fetch, (object(),), "must be JSON"), (lambda: None, (), "FunctionTask")],
)
def test_task_refuses_what_it_cannot_name(
    function: Any, args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        messor.task(function, *args)


def test_a_function_tasks_arguments_are_stored_as_its_definition() -> None:
    memory = SQLiteMemory(":memory:")
    Executor([messor.task(fetch, "https://example.org/1")], memory=memory).run()
    [definition] = memory.dump_all()["task_definitions"].values()
    assert definition == {"function": f"{__name__}.fetch", "args": ["https://example.org/1"]}


def test_a_start_woken_a_little_late_keeps_the_schedule() -> None:
    limiter = RateLimiter("10/s")
    assert limiter.try_acquire(now=0.0) == 0.0
    assert limiter.try_acquire(now=0.13) == 0.0  # 30 ms late
    assert limiter.try_acquire(now=0.13) == pytest.approx(0.07)  # due at 0.2, not 0.23


def test_after_a_pause_starts_are_spaced_again_not_bunched() -> None:
    limiter = RateLimiter("10/s")
    assert limiter.try_acquire(now=0.0) == 0.0
    assert limiter.try_acquire(now=5.0) == 0.0
    assert limiter.try_acquire(now=5.0) == pytest.approx(0.1)


# -- found in review ----------------------------------------------------------------------------


def test_a_passed_rate_wait_never_leaves_an_idle_run_waiting_forever() -> None:
    from messor.run.harvest import Harvest

    tasks = [FunctionTask(f"t{n}", lambda: None) for n in range(2)]
    with Harvest(tasks, messor.InProcessMemory(), messor.RunOptions(rate_limit="10/s")) as harvest:
        assert harvest.next_attempt() is not None
        assert harvest.next_attempt() is None  # the rate limit says: in 0.1 s
        time.sleep(0.15)  # the executor was slow to ask again
        assert harvest.wait_hint() == 0.0


def test_results_that_came_back_in_time_are_not_taken_for_timeouts() -> None:
    def slow_condition() -> bool:
        time.sleep(0.02)  # asks a quota API, say
        return False

    tasks = [FunctionTask(f"t{n}", time.sleep, 0.05) for n in range(200)]
    report = Executor(
        tasks, memory="memory://", max_concurrency=16, timeout=0.5, stop_all_when=slow_condition
    ).run()
    assert report.timed_out == 0
    assert report.completed == 200


def test_a_retry_waiting_for_a_busy_slot_does_not_spin() -> None:
    starts = Starts()
    tasks = [FunctionTask("long", time.sleep, 1.0), starts.task("flaky", fail_with=OSError)]
    cpu, wall = time.process_time(), time.monotonic()
    Executor(tasks, memory="memory://", max_concurrency=1, retry=1).run()
    assert time.process_time() - cpu < 0.5 * (time.monotonic() - wall)


def test_stop_helpers_start_afresh_on_a_second_run() -> None:
    down = [True]

    def call() -> None:
        if down[0]:
            raise ConnectionError("down")

    tasks = [FunctionTask(f"t{n}", call) for n in range(10)]
    executor = Executor(
        tasks,
        memory="memory://",
        max_concurrency=1,
        retry=0,
        stop_all_when=stop_after_consecutive_failures(3),
    )
    assert executor.run().stopped
    down[0] = False
    second = executor.run()
    assert not second.stopped
    assert second.completed == 10


def test_sigterm_ends_a_long_wait_at_once() -> None:
    import os
    import signal

    tasks = [FunctionTask(f"t{n}", lambda: None) for n in range(5)]
    threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
    began = time.monotonic()
    report = Executor(tasks, memory="memory://", rate_limit="3/m").run()
    assert time.monotonic() - began < 2  # not the 20 s the next start was due in
    assert report.stopped_because == "interrupted by SIGTERM"
    assert report.completed == 1


def test_a_stop_condition_whose_observe_raises_stops_the_run_and_loses_nothing() -> None:
    class Broken(StopCondition):
        def observe(self, outcome: Any) -> None:
            raise RuntimeError("bug in observe")

        def __call__(self) -> bool:
            return False

    memory = SQLiteMemory(":memory:")
    tasks = [FunctionTask(f"t{n}", lambda: None) for n in range(5)]
    with pytest.raises(RuntimeError, match="bug in observe"):
        Executor(tasks, memory=memory, max_concurrency=1, stop_all_when=Broken()).run()
    assert memory.get_completed_tasks() == ["t0"]


def test_finished_attempts_do_not_linger_in_the_deadlines() -> None:
    from messor.run.harvest import Harvest

    tasks = [FunctionTask(f"t{n}", lambda: None) for n in range(3000)]
    with Harvest(tasks, messor.InProcessMemory(), messor.RunOptions(timeout=3600)) as harvest:
        while (attempt := harvest.next_attempt()) is not None:
            harvest.on_outcome(perform(attempt))
        assert len(harvest._deadlines) < 200


def test_backoff_after_thousands_of_failures_stays_at_its_cap() -> None:
    assert 0 <= Backoff(0.001, cap=1.0).delay(5000) <= 1.0


def test_a_timeout_is_retried_even_when_retry_on_names_other_errors() -> None:
    calls = Counter[str]()

    def slow() -> None:
        calls["slow"] += 1
        time.sleep(0.3)

    Executor(
        [FunctionTask("slow", slow)], memory="memory://", retry=1, retry_on=KeyError, timeout=0.1
    ).run()
    assert calls["slow"] == 2


def test_a_retry_cancelled_by_a_stop_is_not_counted_as_retried() -> None:
    starts = Starts()
    report = Executor(
        [starts.task("flaky", fail_with=OSError)],
        memory="memory://",
        retry=3,
        stop_all_when=lambda: len(starts.times) >= 1,
    ).run()
    assert report.retried == 0


def test_a_condition_tripping_on_the_last_outcome_stops_nothing() -> None:
    starts = Starts()
    report = Executor(
        [starts.task("only")], memory="memory://", stop_all_when=lambda: len(starts.times) >= 1
    ).run()
    assert (report.stopped, report.stopped_because) == (False, None)


def test_stop_conditions_are_asked_before_starts_and_after_ends_not_while_idle() -> None:
    asked = [0]

    def condition() -> bool:
        asked[0] += 1
        return False

    def slow_source() -> Any:
        for n in range(3):
            time.sleep(0.3)
            yield FunctionTask(f"t{n}", lambda: None)

    Executor(slow_source(), memory="memory://", stop_all_when=condition).run()
    assert asked[0] <= 2 * 3


def test_a_stopped_run_closes_its_generator() -> None:
    closed = threading.Event()

    def source() -> Any:
        try:
            for n in range(10_000):
                yield FunctionTask(f"t{n}", lambda: None)
        finally:
            closed.set()  # a file or a session the generator holds

    Executor(source(), memory="memory://", stop_all_when=lambda: True).run()
    assert closed.wait(2)


@pytest.mark.parametrize("rate", ["10/ms", "10/hs", "10/weeks"])
def test_rate_units_are_read_exactly(rate: str) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit"):
        parse_rate(rate)


def test_ctrl_c_during_a_big_lists_run_ends_it_without_registering_the_rest() -> None:
    import os
    import signal

    class SlowMemory(SQLiteMemory):
        def get_statuses(self, task_ids: Any) -> dict[str, str]:
            time.sleep(0.05)
            return super().get_statuses(task_ids)

    memory = SlowMemory(":memory:")
    tasks = [FunctionTask(f"t{n}", lambda: None) for n in range(100_000)]
    executor = Executor(tasks, memory=memory)
    # Only once the executor exists: building it (the asyncio one converts
    # 100,000 tasks) must not take the Ctrl-C meant for the run.
    threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        executor.run()
    assert time.monotonic() - began < 3  # not the 5 s that registering everything takes
    assert executor.report.interrupted
    assert sum(memory.count_by_status().values()) < 100_000


def test_a_stop_leaves_every_unstarted_task_of_a_long_list_pending() -> None:
    starts = Starts()
    tasks = [starts.task(f"t{n}") for n in range(5000)]
    memory = SQLiteMemory(":memory:")
    Executor(
        tasks, memory=memory, max_concurrency=1, stop_all_when=lambda: len(starts.times) >= 10
    ).run()
    assert memory.count_by_status() == {PENDING: 4990, COMPLETED: 10, FAILED: 0}
