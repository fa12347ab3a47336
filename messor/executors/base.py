"""``Executor``: what every executor shares — its options, its memory and ``status_summary``.

Subclasses only decide where an attempt runs (a :class:`Workers`); the run
itself is :class:`~messor.run.harvest.Harvest`, driven by :func:`drive`.
docs/executors.md shows how to write one.
"""

from __future__ import annotations

import dataclasses
import queue
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Protocol, TypeVar, overload

from messor.errors import ConfigurationError
from messor.memories.base import FAILED, Memory
from messor.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_THROTTLES,
    RunOptions,
    StopConditions,
    exception_classes,
    stop_conditions,
)
from messor.run.attempt import Attempt, Outcome
from messor.run.harvest import Harvest, RunReport, summary_text
from messor.run.heartbeat import last_learned
from messor.run.knobs import Adaptive
from messor.run.limits import Limit
from messor.run.verdicts import ExceptionRule, exception_rule
from messor.selection import open_memory
from messor.terminal import printable

__all__ = ["Executor", "Workers", "drive", "take_all"]

T = TypeVar("T")

#: How long a driver waits when nothing runs and the harvest names no time.
IDLE_POLL = 0.05


class _Option(Generic[T]):
    """``executor.retry`` and the like: the run option of that name, in ``executor.options``.

    Setting one replaces ``executor.options`` with a copy holding the new
    value, checked as any option is.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, executor: None, owner: type) -> _Option[T]: ...
    @overload
    def __get__(self, executor: Executor, owner: type) -> T: ...
    def __get__(self, executor: Executor | None, owner: type) -> _Option[T] | T:
        if executor is None:
            return self
        value: T = getattr(executor.options, self._name)
        return value

    def __set__(self, executor: Executor, value: T) -> None:
        change: dict[str, Any] = {self._name: value}
        executor.options = dataclasses.replace(executor.options, **change)


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
        options: every run option at once, as a :class:`~messor.options.RunOptions`;
            or give them as keywords, described there:
            ``max_concurrency`` (how many tasks run at once, or ``"auto"``),
            ``stop_all_when`` (a function, or a list of them such as
            :func:`messor.stop_on`), ``retry`` (more attempts after a failure),
            ``progress``, ``rate_limit`` (``"10/s"``), ``rate_burst``,
            ``retry_on`` and ``give_up_on`` (exception types or a predicate),
            ``backoff``, ``backoff_max``, ``timeout`` (seconds), ``limits``
            (:class:`messor.Limit`), ``adaptive``, ``max_throttles`` and
            ``budget``.

    Each option is also readable (and settable) as an attribute:
    ``executor.retry``.
    """

    #: Attempts at once when the options leave it to the executor (None).
    default_concurrency: ClassVar[int] = DEFAULT_CONCURRENCY
    #: The most attempts at once when concurrency is adaptive and the options set no ceiling.
    adaptive_ceiling: ClassVar[int] = 64

    max_concurrency = _Option[int]()  # always a number: None becomes default_concurrency
    retry = _Option[int]()
    retry_on = _Option[ExceptionRule | None]()
    give_up_on = _Option[ExceptionRule | None]()
    limits = _Option[tuple[Limit, ...]]()
    adaptive = _Option[Adaptive | None]()
    max_throttles = _Option[int]()
    budget = _Option[dict[str, float] | None]()
    backoff = _Option[float]()
    backoff_max = _Option[float]()
    rate_limit = _Option[str | float | None]()
    rate_burst = _Option[int]()
    timeout = _Option[float | None]()
    stop_all_when = _Option[tuple[Callable[[], bool], ...]]()
    progress = _Option[bool | None]()

    def __init__(
        self,
        tasks: Iterable[object],
        memory: Memory | str | None = None,
        max_concurrency: int | str | Adaptive | None = None,
        stop_all_when: StopConditions = None,
        retry: int = 1,
        *,
        progress: bool | None = None,
        rate_limit: str | float | None = None,
        rate_burst: int = 1,
        retry_on: type[BaseException] | ExceptionRule | None = None,
        give_up_on: type[BaseException] | ExceptionRule | None = None,
        backoff: float = 0.0,
        backoff_max: float = 60.0,
        timeout: float | None = None,
        limits: Limit | Iterable[Limit] = (),
        adaptive: Adaptive | bool | None = None,
        max_throttles: int = DEFAULT_MAX_THROTTLES,
        budget: dict[str, float] | None = None,
        options: RunOptions | None = None,
    ) -> None:
        keywords = RunOptions(
            max_concurrency=max_concurrency,
            stop_all_when=stop_conditions(stop_all_when),
            retry=retry,
            progress=progress,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            retry_on=exception_classes(retry_on),
            give_up_on=exception_rule(give_up_on, "give_up_on"),
            backoff=backoff,
            backoff_max=backoff_max,
            timeout=timeout,
            limits=limits if isinstance(limits, Limit) else tuple(limits),  # type: ignore[arg-type]
            adaptive=adaptive,
            max_throttles=max_throttles,
            budget=budget,
        )
        if options is None:
            options = keywords
        else:
            _check_alone(options, keywords, self.default_concurrency)
        if options.max_concurrency is None:
            # Adaptive: its ceiling; else as many as the executor runs by default.
            adaptive = options.adaptive is not None
            default = self.adaptive_ceiling if adaptive else self.default_concurrency
            options = dataclasses.replace(options, max_concurrency=default)
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
        #: The run options: every ``run()`` reads them as they are when it starts.
        self.options = options
        self.tasks = tasks
        self.memory = memory if isinstance(memory, Memory) else open_memory(memory)
        #: What the last ``run()`` did, also when it raised.
        self.report = RunReport()
        self._last_run: Harvest | None = None

    @property
    def where(self) -> str:
        """Where the attempts run, for ``messor run`` to say ("on the Dask cluster at ...");
        empty for this process."""
        return ""

    @abstractmethod
    def run(self) -> RunReport:
        """Run every task that is not completed yet; return what this run did."""

    def new_harvest(self) -> Harvest:
        """A new run over the tasks, with these options: what ``run()`` drives. It paces
        itself from what the last run on the memory learned (its last heartbeat).

        Its report becomes ``self.report`` (readable whatever happens: Ctrl-C,
        an error). Refuses a generator that a previous run read already.
        """
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
        harvest = Harvest(self.tasks, self.memory, self.options, learned=last_learned(self.memory))
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
    """Where an executor's attempts run (threads, an event loop, a cluster), as :func:`drive`
    sees it.

    Every method is called from the driving thread; only an executor's own
    wake-up (``harvest.wake``) comes from other threads.
    """

    #: Attempts handed out and not settled yet: :meth:`submit` adds one;
    #: :func:`drive` takes one off for each outcome the harvest records;
    #: :meth:`recall` and :meth:`gave_up` take off theirs.
    in_flight: int
    #: At most this many in flight: :func:`drive` hands out no more.
    window: int

    def submit(self, attempt: Attempt) -> None:
        """Start ``attempt`` (or queue it for the next free worker); count it in ``in_flight``."""

    def outcomes(self, timeout: float | None) -> list[Outcome]:
        """The attempts that ended: waits up to ``timeout`` seconds for one (None: as long
        as it takes; 0: not at all), or until woken; an empty list is fine."""

    def recall(self) -> list[Attempt]:
        """Take back the attempts handed out but not started: the run is stopping, or a
        server asked it to pause (what starts now would be sent inside its window)."""

    def gave_up(self, attempt: Attempt) -> None:
        """``attempt`` timed out and is recorded failed: free its slot (stop it if you can)."""

    def came_back(self, outcome: Outcome) -> None:
        """The outcome of an attempt given up on before: nothing to record, its worker is free."""


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
    """Keep the workers busy until the harvest has nothing left to start and nothing runs.

    The one run loop of every executor: hand out attempts while there is
    room, take back those not started when the run halts, wait for outcomes
    no longer than the harvest says, record them, give up on attempts past
    their deadline. Call it inside ``with harvest:``; what ends it early (a
    second Ctrl-C, a lost cluster) propagates, after which the executor
    records the outcomes that came in and lets go of its workers.
    """
    recalled = (False, 0)  # the halt and the pauses whose attempts were taken back
    throttled = False  # an outcome a server throttled came back since the last recall
    while True:
        while workers.in_flight < workers.window:
            attempt = harvest.next_attempt()
            if attempt is None:
                break
            workers.submit(attempt)
        if (harvest.halting, harvest.pauses) != recalled or throttled:
            # Halting, or a server paused the run: what waits in a worker's
            # queue must not start. Once per event: a queue only fills again
            # once the run goes on. Also after any throttle the run did not
            # pause for (its attempt had timed out, its key was paused already):
            # workers that held back their queue for it get going again.
            recalled, throttled = (harvest.halting, harvest.pauses), False
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
            throttled |= outcome.throttle is not None and outcome.throttle.pauses
            if harvest.on_outcome(outcome):
                workers.in_flight -= 1
            else:
                workers.came_back(outcome)
        for attempt in harvest.expire():
            workers.gave_up(attempt)


def _check_alone(options: object, keywords: RunOptions, default_concurrency: int) -> None:
    """``options=`` replaces the option keywords: refuse both at once, naming those given."""
    if not isinstance(options, RunOptions):
        raise ConfigurationError(
            f"options must be a messor.RunOptions, got {type(options).__name__}"
        )
    defaults = RunOptions(max_concurrency=keywords.max_concurrency)
    given = [
        f.name
        for f in dataclasses.fields(RunOptions)
        if getattr(keywords, f.name) != getattr(defaults, f.name)
    ]
    if keywords.max_concurrency not in (None, default_concurrency):
        given.insert(0, "max_concurrency")
    if given:
        raise ConfigurationError(
            f"Give the run options as options=RunOptions(...) or as keywords, not both "
            f"({', '.join(given)} given as keywords too)"
        )
