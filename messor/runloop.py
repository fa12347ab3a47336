"""The run loop every executor shares: what to start next, and what to do with each outcome.

:class:`Harvest` decides and records; it never waits. An executor only runs
attempts somewhere (threads, coroutines, a cluster) and drives the harvest::

    with Harvest(tasks, memory, retry=1) as harvest:
        while True:
            while <room for one more> and (attempt := harvest.next_attempt()):
                <start attempt; it ends in perform(attempt)>
            if <nothing running>:
                break
            harvest.on_outcome(<wait for one finished attempt>)

Registration, resume, duplicate ids, retries, stop conditions, batched writes
(through :class:`~messor.writer.RecordWriter`), the progress bar and the run's
report all live here, once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from itertools import islice
from types import TracebackType
from typing import Any

from tqdm import tqdm

from messor.errors import DuplicateTaskError, MessorError, RecordingError, TaskDataError
from messor.memory import COMPLETED, FAILED, Memory, encode_json
from messor.tasks import Task, as_task, task_id_of
from messor.writer import RecordWriter

__all__ = ["Attempt", "Harvest", "Outcome", "RunReport", "describe_error", "perform"]

logger = logging.getLogger("messor")

#: Tasks registered per round trip to the memory (one look-up, one store).
REGISTRATION_CHUNK = 1000
# A generator is read in growing chunks, so that a slow one starts work early.
_FIRST_STREAM_CHUNK = 32


@dataclass(slots=True)
class Attempt:
    """One try at running one task; ``number`` counts from 1."""

    task_id: str
    task: Task
    number: int = 1
    last_error: str | None = None


@dataclass(slots=True)
class Outcome:
    """How an attempt ended: a result, or the error text of what it raised."""

    attempt: Attempt
    ok: bool
    result: Any = None
    error: str | None = None
    retryable: bool = True


@dataclass
class RunReport:
    """What one ``run()`` did (the memory holds the full state; see ``status_summary``)."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    stopped: bool = False
    interrupted: bool = False
    elapsed: float = 0.0
    refused_results: list[tuple[str, str]] = field(default_factory=list)


def describe_error(exc: BaseException) -> str:
    """``"module.Type: message"`` (builtins without module), even if ``str(exc)`` raises."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    try:
        # Lone surrogates (from surrogateescape-decoded bytes) cannot be stored.
        message = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")
    except Exception:
        message = "<the exception's message could not be read>"
    return f"{name}: {message}" if message else name


def perform(attempt: Attempt) -> Outcome:
    """Run one attempt, catching whatever it raises, and check that its result can be stored."""
    try:
        result = attempt.task()
    except BaseException as exc:
        # BaseException too: a task's SystemExit must fail that task, not
        # silently kill the worker that ran it and leave the run waiting.
        return Outcome(attempt, ok=False, error=describe_error(exc))
    try:
        encode_json(result, task_id=attempt.task_id)
    except TaskDataError as exc:
        return Outcome(attempt, ok=False, error=describe_error(exc), retryable=False)
    return Outcome(attempt, ok=True, result=result)


class Harvest:
    """One run over a task set: registration, resume, retries, stop, recording, progress."""

    def __init__(
        self,
        tasks: Iterable[object],
        memory: Memory,
        *,
        retry: int = 1,
        stop_all_when: Callable[[], bool] | None = None,
        progress: bool | None = None,
    ) -> None:
        self.memory = memory
        self.retry = retry
        self.stop_all_when = stop_all_when
        self.report = RunReport()
        self._tasks = tasks
        self._progress = progress
        self._retries: deque[Attempt] = deque()
        self._stopping = False
        self._failure: BaseException | None = None
        self._writer = RecordWriter(memory)
        self._source: Iterator[Attempt] = iter(())
        self._bar: tqdm[Any] | None = None
        self._started = 0.0

    # -- the run's life ----------------------------------------------------------

    def __enter__(self) -> Harvest:
        self._started = time.perf_counter()
        total: int | None = None
        if isinstance(self._tasks, Sized):
            # A list is registered whole before anything runs: duplicates are
            # refused up front, and after a stop every unstarted task is
            # visibly pending in the memory.
            items = list(self._tasks)
            total = len(items)
            self._source = self._register_all(items)
        else:
            self._source = self._register_stream(iter(self._tasks))
        self._bar = tqdm(
            total=total,
            initial=self.report.skipped,
            unit="task",
            desc="messor",
            disable=None if self._progress is None else not self._progress,
            dynamic_ncols=True,
        )
        self._writer.start()
        logger.info(
            "Harvest started on %r (%s tasks)", self.memory, "streamed" if total is None else total
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is KeyboardInterrupt:
            self.report.interrupted = True
        # A task waiting for its retry when the run stopped failed in this run:
        # say so, with its error; the next run retries it.
        while self._retries:
            attempt = self._retries.popleft()
            self._record_failure(attempt, attempt.last_error)
        self._writer.close()
        if self._bar is not None:
            self._bar.close()
        self.report.elapsed = time.perf_counter() - self._started
        self.report.refused_results = list(self._writer.refused)
        self._log_report()
        if exc_type is not None:
            return
        if self._writer.error is not None:
            raise RecordingError(
                f"The run stopped because outcomes could not be recorded in {self.memory!r}: "
                f"{describe_error(self._writer.error)}. Everything recorded before is intact; "
                "fix the memory and run again to resume."
            ) from self._writer.error
        if self._failure is not None:
            raise self._failure

    # -- what the executor calls ---------------------------------------------------

    def next_attempt(self) -> Attempt | None:
        """The next attempt to start, or None if nothing may start now.

        None means: stopped, or everything started; the executor then waits for
        running attempts, whose outcomes may bring retries.
        """
        if self._should_stop():
            return None
        if self._retries:
            return self._retries.popleft()
        try:
            return next(self._source)
        except StopIteration:
            return None
        except Exception as exc:
            # A duplicate id or a broken task in a generator, or the generator
            # itself raising: finish what runs, record it, then raise.
            self._fail(exc)
            return None

    def on_outcome(self, outcome: Outcome) -> None:
        """Record a finished attempt (or schedule its retry), then check the stop condition."""
        attempt = outcome.attempt
        if outcome.ok:
            self._writer.put((attempt.task_id, COMPLETED, outcome.result, None))
            self.report.completed += 1
            self._advance()
        elif outcome.retryable and attempt.number <= self.retry:
            self.report.retried += 1
            self._retries.append(
                Attempt(attempt.task_id, attempt.task, attempt.number + 1, outcome.error)
            )
            logger.debug("Task %r failed, will retry: %s", attempt.task_id, outcome.error)
        else:
            self._record_failure(attempt, outcome.error)
        if self._writer.error is not None:
            self._stopping = True
        self._should_stop()

    def stop(self) -> None:
        """Start no more attempts (after a Ctrl-C, say); running ones still get recorded."""
        self._stopping = True

    # -- inside -------------------------------------------------------------------

    def _should_stop(self) -> bool:
        if self._stopping:
            return True
        if self.stop_all_when is None:
            return False
        try:
            stop = bool(self.stop_all_when())
        except Exception as exc:
            self._fail(exc)
            return True
        if stop:
            self._stopping = True
            self.report.stopped = True
            logger.info("stop_all_when() returned True: no new tasks start")
        return stop

    def _fail(self, exc: BaseException) -> None:
        logger.error("The run stops: %s", describe_error(exc))
        self._stopping = True
        if self._failure is None:
            self._failure = exc

    def _record_failure(self, attempt: Attempt, error: str | None) -> None:
        self._writer.put((attempt.task_id, FAILED, None, error))
        self.report.failed += 1
        logger.debug("Task %r failed: %s", attempt.task_id, error)
        self._advance()
        if self._bar is not None:
            self._bar.set_postfix(failed=self.report.failed, refresh=False)

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def _register(self, ids: list[str]) -> list[bool]:
        """Store the unknown tasks among ``ids``; return, per id, whether it still has to run."""
        statuses = self.memory.get_statuses(ids)
        new: list[tuple[str, dict[str, Any]]] = [(i, {}) for i in ids if i not in statuses]
        if new:
            self.memory.store_tasks(new)
        runnable = [statuses.get(task_id) != COMPLETED for task_id in ids]
        self.report.skipped += runnable.count(False)
        return runnable

    def _register_all(self, items: Sequence[object]) -> Iterator[Attempt]:
        """Register a whole task list now; return its attempts, made as they are asked for."""
        tasks = [as_task(item) for item in items]
        ids = [task_id_of(task) for task in tasks]
        _refuse_duplicates(ids)
        runnable = bytearray()
        for start in range(0, len(ids), REGISTRATION_CHUNK):
            runnable.extend(self._register(ids[start : start + REGISTRATION_CHUNK]))
        return (Attempt(ids[k], tasks[k]) for k, run in enumerate(runnable) if run)

    def _register_stream(self, items: Iterator[object]) -> Iterator[Attempt]:
        """Register a generator's tasks chunk by chunk, as the run consumes them."""
        seen: set[str] = set()
        size = _FIRST_STREAM_CHUNK
        while chunk := list(islice(items, size)):
            size = min(size * 2, REGISTRATION_CHUNK)
            tasks: list[Task] = []
            ids: list[str] = []
            problem: MessorError | None = None
            for item in chunk:
                try:
                    task = as_task(item)
                    task_id = task_id_of(task)
                    if task_id in seen:
                        raise _duplicate(task_id)
                except MessorError as exc:
                    # The tasks before the bad one still run; then the run stops.
                    problem = exc
                    break
                seen.add(task_id)
                tasks.append(task)
                ids.append(task_id)
            runnable = self._register(ids) if ids else []
            if self._bar is not None:
                self._bar.update(runnable.count(False))
            yield from (
                Attempt(i, t) for i, t, run in zip(ids, tasks, runnable, strict=True) if run
            )
            if problem is not None:
                raise problem

    def _log_report(self) -> None:
        r = self.report
        how = "interrupted" if r.interrupted else "stopped" if r.stopped else "finished"
        logger.info(
            "Harvest %s in %.2fs: %d completed, %d failed, %d retries, %d already completed",
            how,
            r.elapsed,
            r.completed,
            r.failed,
            r.retried,
            r.skipped,
        )


def _refuse_duplicates(ids: list[str]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for task_id in ids:
        if task_id in seen:
            raise _duplicate(task_id)
        seen.add(task_id)


def _duplicate(task_id: str) -> DuplicateTaskError:
    return DuplicateTaskError(
        f"Two tasks of this run have the id {task_id!r}; the second would overwrite the "
        "first one's record. Give every task a unique get_id()."
    )
