"""``Executor``: what every executor shares — its options, its memory and ``status_summary``.

Subclasses only decide where an attempt runs; the run itself is
:class:`~messor.run.harvest.Harvest`.
"""

from __future__ import annotations

import queue
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Protocol, TypeVar

from messor.errors import ConfigurationError
from messor.memories.base import FAILED, Memory
from messor.run.attempt import Attempt, Outcome
from messor.run.controls import Backoff, RateLimiter
from messor.run.harvest import Harvest, RunReport, StopConditions, summary_text
from messor.selection import open_memory
from messor.terminal import printable

__all__ = ["Executor", "Workers", "drive", "take_all"]

T = TypeVar("T")

#: How long a driver waits when nothing runs and the harvest names no time.
IDLE_POLL = 0.05


class Executor(ABC):
    """Runs a task set against a memory; a second ``run()`` resumes where the first stopped.

    Args:
        tasks: any iterable of tasks (objects with ``get_id()`` and
            ``__call__()``); a generator is consumed lazily, and only once:
            a second ``run()`` refuses it and needs a new one (set
            ``executor.tasks``), while a list runs again as it is.
        memory: a :class:`~messor.memories.base.Memory`, a spec for
            :func:`messor.open_memory` (``"sqlite:///harvest.db"``), or None for
            the configured default.
        max_concurrency: how many tasks run at once.
        stop_all_when: a function, or a list of them (such as
            :func:`messor.stop_on`), checked before each task starts and after
            each one ends; once one returns True no new task starts, running
            ones finish and are recorded, the rest stay pending.
        retry: how many more attempts a failing task gets within one run.
        progress: show a progress bar (default: only when stderr is a terminal).
        rate_limit: at most this many starts, shared by every worker:
            ``"10/s"``, ``"600/m"``, ``"1000/h"`` or a number per second.
        rate_burst: how many starts may follow each other at once after a
            pause (1: evenly spaced).
        retry_on: retry only failures of these exception types (default: all).
        backoff: before the n-th retry, wait a random time up to
            ``backoff * 2**(n-1)`` seconds, at most ``backoff_max`` (0: none).
        timeout: seconds after which a running task is recorded failed with a
            TimeoutError and its slot given to the next task.
    """

    def __init__(
        self,
        tasks: Iterable[object],
        memory: Memory | str | None = None,
        max_concurrency: int = 4,
        stop_all_when: StopConditions = None,
        retry: int = 1,
        *,
        progress: bool | None = None,
        rate_limit: str | float | None = None,
        rate_burst: int = 1,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        backoff: float = 0.0,
        backoff_max: float = 60.0,
        timeout: float | None = None,
    ) -> None:
        _check_count("max_concurrency", max_concurrency, minimum=1)
        _check_count("retry", retry, minimum=0)
        self.stop_all_when = _check_conditions(stop_all_when)
        if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Iterable):
            raise ConfigurationError(
                "tasks must be an iterable of tasks (a list or a generator), "
                f"got {type(tasks).__name__}"
            )
        if memory is not None and not isinstance(memory, (Memory, str)):
            raise ConfigurationError(
                f"memory must be a messor.Memory, a spec such as 'sqlite:///harvest.db', or None; "
                f"got {type(memory).__name__} (a custom memory must subclass messor.Memory)"
            )
        if rate_limit is not None:
            RateLimiter(rate_limit, rate_burst)  # checks both now, not at the first start
        Backoff(backoff, backoff_max)
        self.retry_on = _check_exception_types(retry_on)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.tasks = tasks
        self.memory = memory if isinstance(memory, Memory) else open_memory(memory)
        self.max_concurrency = max_concurrency
        self.retry = retry
        self.progress = progress
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.timeout = timeout
        #: What the last ``run()`` did, also when it raised.
        self.report = RunReport()
        self._last_run: Harvest | None = None

    @abstractmethod
    def run(self) -> RunReport:
        """Run every task that is not completed yet; return what this run did."""

    def _harvest(self) -> Harvest:
        """A new run over the tasks; its report stays readable as ``self.report``, Ctrl-C or not."""
        if self._last_run is not None and self._last_run.read_once is self.tasks:
            name = getattr(self.tasks, "__name__", None)
            remake = (
                f"{name}()" if isinstance(name, str) and name.isidentifier() else "make_tasks()"
            )
            raise ConfigurationError(
                f"run() was called again with the same {type(self.tasks).__name__} of tasks, which "
                "the previous run() read; a generator (like any iterator) gives its tasks only "
                f"once, so none are left. Give the executor a new one (executor.tasks = {remake}) "
                "or a list, which runs again as often as you like."
            )
        harvest = Harvest(
            self.tasks,
            self.memory,
            retry=self.retry,
            stop_all_when=self.stop_all_when,
            progress=self.progress,
            rate_limit=self.rate_limit,
            rate_burst=self.rate_burst,
            retry_on=self.retry_on,
            backoff=self.backoff,
            backoff_max=self.backoff_max,
            timeout=self.timeout,
        )
        harvest.concurrency = self.max_concurrency
        self.report = harvest.report
        self._last_run = harvest
        return harvest

    def status_summary(self, failures: int = 0) -> dict[str, int]:
        """Print the number of pending, completed and failed tasks in the memory; return them.

        With ``failures``, also list that many failed tasks with their
        attempts and last error, control characters escaped (see
        :mod:`messor.terminal`).
        """
        counts = self.memory.count_by_status()
        print(summary_text(counts))
        if failures > 0 and counts.get(FAILED):
            for index, record in enumerate(self.memory.iter_records(FAILED)):
                if index == failures:
                    print(f"  ... and {counts[FAILED] - failures} more")
                    break
                plural = "" if record.attempts == 1 else "s"
                tries = f" after {record.attempts} attempt{plural}" if record.attempts else ""
                print(f"  {printable(record.task_id)}{tries}: {printable(str(record.error))}")
        return counts


class Workers(Protocol):
    """Where an executor's attempts run: threads, an event loop."""

    #: Attempts handed out and not settled yet; at most ``window`` of them.
    in_flight: int
    window: int

    def submit(self, attempt: Attempt) -> None:
        """Start ``attempt`` (or queue it for the next free worker)."""

    def outcomes(self, timeout: float | None) -> list[Outcome]:
        """The attempts that ended: waits up to ``timeout`` seconds for one (or a wake-up)."""

    def recall(self) -> list[Attempt]:
        """Take back the attempts handed out but not started."""

    def gave_up(self, attempt: Attempt) -> None:
        """``attempt`` timed out and is recorded failed: free its slot."""

    def came_back(self, outcome: Outcome) -> None:
        """The outcome of an attempt given up on before: nothing to record."""


def take_all(source: queue.SimpleQueue[T], timeout: float | None) -> list[T]:
    """Everything on ``source``: waits up to ``timeout`` seconds for the first item
    (None: as long as it takes; 0 or less: not at all), takes the rest as they are."""
    found: list[T] = []
    try:
        wait = timeout is None or timeout > 0
        found.append(source.get(timeout=timeout) if wait else source.get_nowait())
        while True:
            found.append(source.get_nowait())
    except queue.Empty:
        return found


def drive(harvest: Harvest, workers: Workers) -> None:
    """Keep the workers busy until the harvest has nothing left to start and nothing runs."""
    while True:
        while workers.in_flight < workers.window:
            attempt = harvest.next_attempt()
            if attempt is None:
                break
            workers.submit(attempt)
        if harvest.halting:
            for attempt in workers.recall():
                harvest.give_back(attempt)
        if workers.in_flight == 0 and harvest.done:
            return
        wait = harvest.wait_hint(room=workers.in_flight < workers.window)
        if wait is None and workers.in_flight == 0:
            wait = IDLE_POLL  # a safety net: never wait forever with nothing running
        # Every outcome already there counts before any deadline is judged:
        # a result that came back in time is never taken for a timeout.
        for outcome in workers.outcomes(wait):
            if harvest.on_outcome(outcome):
                workers.in_flight -= 1
            else:
                workers.came_back(outcome)
        for attempt in harvest.expire():
            workers.gave_up(attempt)


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_conditions(stop_all_when: object) -> StopConditions:
    if stop_all_when is None or callable(stop_all_when):
        return stop_all_when
    if isinstance(stop_all_when, list | tuple) and all(callable(c) for c in stop_all_when):
        return list(stop_all_when)
    raise ConfigurationError(
        "stop_all_when must be a function returning True to stop, or a list of them "
        f"(such as messor.stop_on(SomeError)), got {stop_all_when!r}"
    )


def _check_exception_types(
    retry_on: object,
) -> tuple[type[BaseException], ...] | None:
    if retry_on is None:
        return None
    types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise ConfigurationError(
            f"retry_on must be an exception class or a tuple of them, got {retry_on!r}"
        )
    return types
