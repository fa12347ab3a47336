"""AsyncExecutor specifics: thousands of coroutines at once, run_async in a running loop,
cancellation, timeouts that cancel, a loop the memory never blocks, and SIGKILL.

The behaviour it shares with the threaded executor is tested on both, in
test_executor.py and test_controls.py."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import messor
from messor import AsyncExecutor, FunctionTask, InProcessMemory, SQLiteMemory, TaskTimeoutError
from messor.memories.base import EncodedUpdate
from tests.test_signals import counts, wait_for_starts

ROOT = Path(__file__).resolve().parent.parent


class Gauge:
    """How many coroutines are inside at once, and the most there ever were."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    async def hold(self, seconds: float, n: int = 0) -> int:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1
        return n


def test_10000_sleeping_coroutines_at_2000_finish_in_a_small_multiple_of_the_ideal() -> None:
    gauge = Gauge()
    tasks = [messor.task(gauge.hold, 0.05, n) for n in range(10_000)]
    started = time.monotonic()
    report = AsyncExecutor(tasks, memory="memory://", max_concurrency=2000).run()
    elapsed = time.monotonic() - started
    assert report.completed == 10_000
    assert gauge.peak == 2000
    assert elapsed < 0.25 * 12, f"{elapsed:.2f} s for an ideal of 0.25 s"


def test_5000_at_once_and_one_failure_cancels_nothing_else() -> None:
    gauge = Gauge()

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("only me")

    tasks = [FunctionTask("bad", fails), *(messor.task(gauge.hold, 0.3, n) for n in range(6000))]
    memory = InProcessMemory()
    report = AsyncExecutor(tasks, memory=memory, max_concurrency=5000, retry=0).run()
    assert gauge.peak == 5000
    assert (report.completed, report.failed) == (6000, 1)
    assert memory.get_failed_tasks() == [("bad", "ValueError: only me")]


def test_run_async_works_inside_a_running_loop() -> None:
    async def main() -> messor.RunReport:
        tasks = [messor.task(asyncio.sleep, 0.01, n) for n in range(200)]
        return await AsyncExecutor(tasks, memory="memory://", max_concurrency=50).run_async()

    report = asyncio.run(main())
    assert report.completed == 200


def test_cancelling_run_async_lets_running_tasks_finish_records_them_and_leaves_the_rest(
    tmp_path: Path,
) -> None:
    memory = SQLiteMemory(tmp_path / "harvest.db")
    gauge = Gauge()

    async def main() -> None:
        tasks = [messor.task(gauge.hold, 0.2, n) for n in range(100)]
        run = asyncio.create_task(
            AsyncExecutor(tasks, memory=memory, max_concurrency=10).run_async()
        )
        await asyncio.sleep(0.3)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    counts = memory.count_by_status()
    # The first batch, and those running at the cancel: let finish and recorded.
    assert 10 <= counts["completed"] <= 40
    assert counts["completed"] + counts["pending"] == 100
    assert gauge.now == 0


def test_a_timeout_cancels_the_coroutine_and_frees_its_slot_at_once() -> None:
    cancelled: list[str] = []

    async def hangs() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("hangs")
            raise

    memory = InProcessMemory()
    tasks = [
        FunctionTask("hangs", hangs),
        *(messor.task(asyncio.sleep, 0.01, n) for n in range(20)),
    ]
    started = time.monotonic()
    report = AsyncExecutor(tasks, memory=memory, max_concurrency=1, retry=0, timeout=0.3).run()
    assert time.monotonic() - started < 5
    assert (report.completed, report.failed, report.timed_out) == (20, 1, 1)
    assert cancelled == ["hangs"]
    [(_, error)] = memory.get_failed_tasks()
    assert error is not None
    assert error.startswith(f"{TaskTimeoutError.__module__}.TaskTimeoutError")


class SlowMemory(InProcessMemory):
    """Takes half a second to record each batch."""

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        time.sleep(0.5)
        super().record_outcomes(outcomes)


def test_a_slow_memory_never_blocks_the_event_loop() -> None:
    lags: list[float] = []

    async def ticker(until: float) -> None:
        while time.monotonic() < until:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    async def main() -> None:
        tasks = [messor.task(asyncio.sleep, 0.001, n) for n in range(300)]
        executor = AsyncExecutor(tasks, memory=SlowMemory(), max_concurrency=20)
        watcher = asyncio.create_task(ticker(time.monotonic() + 1.5))
        report = await executor.run_async()
        await watcher
        assert report.completed == 300

    asyncio.run(main())
    assert max(lags) < 0.2, f"the loop stalled for {max(lags):.2f} s"


CHILD = """
import asyncio, os, sys
from messor import AsyncExecutor, FunctionTask

log = sys.argv[2]

async def page(n):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{n}\\n".encode())
    os.close(fd)
    await asyncio.sleep(0.02)
    return {"n": n, "double": 2 * n}

tasks = (FunctionTask(f"p{n}", page, n) for n in range(600))
AsyncExecutor(tasks, memory=sys.argv[1], max_concurrency=20, progress=False).run()
"""


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_without_redoing_recorded_work(
    tmp_path: Path,
) -> None:
    spec, log = f"sqlite:///{tmp_path / 'harvest.db'}", tmp_path / "runs.log"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), spec, str(log)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    while not log.exists() or len(log.read_text().splitlines()) < 200:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    memory = SQLiteMemory(tmp_path / "harvest.db")
    done = set(memory.get_completed_tasks())
    assert 0 < len(done) < 600
    assert all(memory.get_task_result(t)["double"] == 2 * int(t[1:]) for t in done)
    log.write_text("")
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), spec, str(log)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    rerun = {f"p{n}" for n in log.read_text().split()}
    assert not rerun & done  # nothing recorded ran again
    assert memory.count_by_status() == {"pending": 0, "completed": 600, "failed": 0}


def test_a_task_raising_cancellederror_itself_fails_and_the_run_ends() -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError("a library gave up")

    memory = InProcessMemory()
    tasks = [FunctionTask("gives-up", gives_up), messor.task(asyncio.sleep, 0.01, 1)]
    report = AsyncExecutor(tasks, memory=memory, retry=0).run()
    assert (report.completed, report.failed) == (1, 1)
    error = "asyncio.exceptions.CancelledError: a library gave up"
    assert memory.get_failed_tasks() == [("gives-up", error)]


def test_background_tasks_left_by_a_task_do_not_spoil_the_report() -> None:
    async def leaves_a_task_behind() -> int:
        asyncio.get_running_loop().create_task(asyncio.sleep(60))
        return 1

    started = time.monotonic()
    report = AsyncExecutor([FunctionTask("t", leaves_a_task_behind)], memory="memory://").run()
    assert report.completed == 1
    assert time.monotonic() - started < 5


def test_run_inside_a_running_loop_says_to_use_run_async() -> None:
    async def main() -> None:
        with pytest.raises(messor.ConfigurationError, match=r"await executor\.run_async"):
            AsyncExecutor([FunctionTask("t", asyncio.sleep, 0)], memory="memory://").run()

    asyncio.run(main())


def test_cancelling_run_async_twice_abandons_the_running_which_stay_pending() -> None:
    memory = InProcessMemory()
    gauge = Gauge()

    async def main() -> None:
        tasks = [messor.task(gauge.hold, 0.05 if n < 5 else 30, n) for n in range(20)]
        run = asyncio.create_task(
            AsyncExecutor(tasks, memory=memory, max_concurrency=10).run_async()
        )
        await asyncio.sleep(0.3)
        run.cancel()
        await asyncio.sleep(0.2)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())  # the loop itself ends normally: no KeyboardInterrupt escapes
    counts = memory.count_by_status()
    assert counts["completed"] == 5  # what finished before is recorded
    assert counts["pending"] == 15  # the abandoned ones, and those never started


# -- tasks whose call is a plain function --------------------------------------------------------


class Meeting:
    """Five calls that each block until all five are inside at once (10 s at most)."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(5, timeout=10)

    def join(self, n: int) -> int:
        self.barrier.wait()
        return n

    async def later(self, n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    def join_then_await(self, n: int) -> Any:
        self.barrier.wait()
        return self.later(n)  # an awaitable: awaited on the loop


class BlockingPage:
    """A seed-style task whose ``__call__`` is a plain, blocking method."""

    def __init__(self, meeting: Meeting, n: int) -> None:
        self.meeting, self.n = meeting, n

    def get_id(self) -> str:
        return f"page-{self.n}"

    def __call__(self) -> int:
        return self.meeting.join(self.n)


@pytest.mark.parametrize("kind", ["function", "object", "function-returning-a-coroutine"])
def test_plain_blocking_tasks_run_on_threads_max_concurrency_at_once(kind: str) -> None:
    # On the event loop the first call would block it, and the other four
    # would never join: the barrier breaks after 10 s and every task fails.
    meeting = Meeting()
    make: dict[str, Callable[[int], object]] = {
        "function": lambda n: messor.task(meeting.join, n),
        "object": lambda n: BlockingPage(meeting, n),
        "function-returning-a-coroutine": lambda n: messor.task(meeting.join_then_await, n),
    }
    memory = InProcessMemory()
    tasks = [make[kind](n) for n in range(5)]
    report = AsyncExecutor(tasks, memory=memory, max_concurrency=5, retry=0).run()
    assert (report.completed, report.failed) == (5, 0), memory.get_failed_tasks()
    assert sorted(memory.get_task_result(i) for i in memory.get_completed_tasks()) == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_a_blocking_task_past_its_timeout_frees_its_slot_while_its_thread_runs_on() -> None:
    release, returned = threading.Event(), threading.Event()
    released: list[bool] = []

    def hangs() -> str:
        released.append(release.wait(10))
        returned.set()
        return "too late"

    async def quick(n: int) -> int:
        await asyncio.sleep(0.01)
        if n == 9:
            release.set()
        return n

    memory = InProcessMemory()
    tasks = [FunctionTask("hangs", hangs), *(messor.task(quick, n) for n in range(10))]
    report = AsyncExecutor(tasks, memory=memory, max_concurrency=1, retry=0, timeout=0.3).run()
    assert (report.completed, report.failed, report.timed_out) == (10, 1, 1)
    assert returned.wait(10)
    assert released == [True]  # the quick tasks ran while the hanging call blocked its thread
    [(_, error)] = memory.get_failed_tasks()
    assert error is not None
    assert "TaskTimeoutError" in error


ABANDONED = """
import time
from messor import AsyncExecutor, FunctionTask

hangs = FunctionTask("hangs", time.sleep, 60)
report = AsyncExecutor([hangs], memory="memory://", retry=0, timeout=0.5).run()
print(report.timed_out, flush=True)
"""


def test_a_blocking_call_given_up_on_does_not_keep_the_process_alive() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ABANDONED],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,  # not the minute the abandoned call sleeps
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]


# -- Ctrl-C around asyncio.run(main()), the README's pattern -----------------------------------

SIGNAL_CHILD = Path(__file__).with_name("async_signal_child.py")


def start_readme_harvest(
    tmp_path: Path, *, hanging: bool
) -> tuple[subprocess.Popen[str], Path, SQLiteMemory]:
    log, spec = tmp_path / "started.log", f"sqlite:///{tmp_path / 'harvest.db'}"
    child = subprocess.Popen(
        [sys.executable, str(SIGNAL_CHILD), spec, str(log), "yes" if hanging else "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return child, log, SQLiteMemory(tmp_path / "harvest.db")


@pytest.mark.slow
def test_ctrl_c_around_asyncio_run_finishes_the_running_tasks_and_prints_the_summary(
    tmp_path: Path,
) -> None:
    child, log, memory = start_readme_harvest(tmp_path, hanging=False)
    wait_for_starts(log, 20)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    # asyncio.run() turns the cancellation into KeyboardInterrupt, as run() raises it.
    assert child.returncode == -signal.SIGINT, err
    assert err.rstrip().endswith("KeyboardInterrupt")
    summary = counts(out)
    assert summary == memory.count_by_status()
    started = set(log.read_text().split())
    assert set(memory.get_completed_tasks()) == started  # every started task was recorded
    assert summary["pending"] == 200 - len(started) > 0


@pytest.mark.slow
def test_a_second_ctrl_c_around_asyncio_run_abandons_hanging_tasks_and_prints_the_summary(
    tmp_path: Path,
) -> None:
    child, log, memory = start_readme_harvest(tmp_path, hanging=True)
    wait_for_starts(log, 10)
    child.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the quick task running beside the hanging ones finishes
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)  # not the minute the hanging tasks would take
    assert child.returncode == -signal.SIGINT, err
    assert memory.get_task_status("hang0") == "pending"
    assert memory.get_task_status("hang1") == "pending"
    assert len(memory.get_completed_tasks()) >= 8
    assert counts(out) == memory.count_by_status()
