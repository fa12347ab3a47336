"""``Executor``: what every executor shares — its options, its memory and ``status_summary``.

Subclasses only decide where an attempt runs; the run itself is
:class:`~messor.runloop.Harvest`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from messor.errors import ConfigurationError
from messor.memory import COMPLETED, FAILED, PENDING, Memory
from messor.runloop import Harvest, RunReport
from messor.selection import open_memory

__all__ = ["Executor"]


class Executor(ABC):
    """Runs a task set against a memory; a second ``run()`` resumes where the first stopped.

    Args:
        tasks: any iterable of tasks (objects with ``get_id()`` and
            ``__call__()``); a generator is consumed lazily, and only once:
            a second ``run()`` needs a new one.
        memory: a :class:`~messor.memory.Memory`, a spec for
            :func:`messor.open_memory` (``"sqlite:///harvest.db"``), or None for
            the configured default.
        max_concurrency: how many tasks run at once.
        stop_all_when: checked before each task starts and after each one
            ends; once it returns True no new task starts, running ones finish
            and are recorded, the rest stay pending.
        retry: how many more attempts a failing task gets within one run.
        progress: show a progress bar (default: only when stderr is a terminal).
    """

    def __init__(
        self,
        tasks: Iterable[object],
        memory: Memory | str | None = None,
        max_concurrency: int = 4,
        stop_all_when: Callable[[], bool] | None = None,
        retry: int = 1,
        *,
        progress: bool | None = None,
    ) -> None:
        _check_count("max_concurrency", max_concurrency, minimum=1)
        _check_count("retry", retry, minimum=0)
        if stop_all_when is not None and not callable(stop_all_when):
            raise ConfigurationError(
                f"stop_all_when must be a function returning True to stop, got {stop_all_when!r}"
            )
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
        self.tasks = tasks
        self.memory = memory if isinstance(memory, Memory) else open_memory(memory)
        self.max_concurrency = max_concurrency
        self.stop_all_when = stop_all_when
        self.retry = retry
        self.progress = progress
        #: What the last ``run()`` did, also when it raised.
        self.report = RunReport()

    @abstractmethod
    def run(self) -> RunReport:
        """Run every task that is not completed yet; return what this run did."""

    def _harvest(self) -> Harvest:
        """A new run over the tasks; its report stays readable as ``self.report``, Ctrl-C or not."""
        harvest = Harvest(
            self.tasks,
            self.memory,
            retry=self.retry,
            stop_all_when=self.stop_all_when,
            progress=self.progress,
        )
        self.report = harvest.report
        return harvest

    def status_summary(self) -> dict[str, int]:
        """Print the number of pending, completed and failed tasks in the memory; return them."""
        counts = self.memory.count_by_status()
        for status in (PENDING, COMPLETED, FAILED):
            print(f"{status.capitalize()} tasks: {counts.get(status, 0)}")
        for status, count in sorted(counts.items()):
            if status not in (PENDING, COMPLETED, FAILED) and count:
                print(f"{status.capitalize()} tasks: {count}")
        return counts


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
