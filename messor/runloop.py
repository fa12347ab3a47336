"""The run loop every executor shares: what to start next, and what to do with each outcome.

:class:`Harvest` decides and records; an executor only runs attempts
somewhere (threads, coroutines, a cluster) and drives the harvest::

    with Harvest(tasks, memory, retry=1) as harvest:
        while True:
            while <room for one more> and (attempt := harvest.next_attempt()):
                <start it; it ends in perform(attempt), an Outcome>
            if <nothing running> and harvest.done:
                break
            <wait for an outcome, at most harvest.wait_hint() seconds (None: no limit)>
            harvest.on_outcome(outcome)   # for each outcome that arrived

``next_attempt`` never waits: None means "nothing to start now", and ``done``
tells whether anything ever will be again. Registration, resume, duplicate
ids, retries, stop conditions, Ctrl-C, batched writes (through
:class:`~messor.writer.RecordWriter`), the progress bar and the run's report
all live here, once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from tqdm import tqdm

from messor.errors import RecordingError
from messor.interrupts import InterruptGuard
from messor.memory import COMPLETED, FAILED, EncodedUpdate, Memory, encode_json
from messor.sources import StreamReader, duplicate_task
from messor.tasks import Task, as_task, task_id_of
from messor.writer import RecordWriter

__all__ = ["Attempt", "Harvest", "Outcome", "RunReport", "describe_error", "perform"]

logger = logging.getLogger("messor")

#: Tasks registered per round trip to the memory (one look-up, one store).
REGISTRATION_CHUNK = 1000
#: How often an idle run asks a slow generator for news, in seconds.
SOURCE_POLL = 0.02


@dataclass(slots=True)
class Attempt:
    """One try at running one task; ``number`` counts from 1."""

    task_id: str
    task: Task
    number: int = 1
    last_error: str | None = None


@dataclass(slots=True)
class Outcome:
    """How an attempt ended: its result as JSON text, or the error text of what it raised."""

    attempt: Attempt
    ok: bool
    result_json: str | None = None
    error: str | None = None
    retryable: bool = True


@dataclass
class RunReport:
    """What one ``run()`` did (the memory holds the full state; see ``status_summary``)."""

    #: Tasks recorded completed (or failed) by this run, as the memory confirmed.
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
    """Run one attempt and encode its result, catching whatever either raises.

    The result is encoded here, once, as the task returns it: what is
    recorded is the value at that instant, even if the task's code changes
    the object later.
    """
    try:
        result = attempt.task()
    except BaseException as exc:
        # BaseException too: a task's SystemExit must fail that task, not
        # kill the worker that ran it and leave the run waiting for it.
        return Outcome(attempt, ok=False, error=describe_error(exc))
    try:
        text = encode_json(result, task_id=attempt.task_id)
    except Exception as exc:  # not JSON, or a value whose own methods raise while encoded
        return Outcome(attempt, ok=False, error=describe_error(exc), retryable=False)
    return Outcome(attempt, ok=True, result_json=text)


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
        self._writer = RecordWriter(memory)
        self._interrupts = InterruptGuard(self.stop, lambda: self._writer.backlog)
        self._retries: deque[Attempt] = deque()
        self._runnable: deque[Attempt] = deque()
        self._listed: Iterator[Attempt] | None = None  # a list's attempts, made on demand
        self._reader: StreamReader | None = None  # a generator's tasks, read on a thread
        self._source_done = False
        self._stopping = False
        self._failure: BaseException | None = None
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
            self._listed = self._register_all(items)
        else:
            self._reader = StreamReader(iter(self._tasks), max_ahead=REGISTRATION_CHUNK)
        self._bar = tqdm(
            total=total,
            initial=self.report.skipped,
            unit="task",
            desc="messor",
            disable=None if self._progress is None else not self._progress,
            dynamic_ncols=True,
        )
        self._writer.start()
        if self._reader is not None:
            self._reader.start()
        self._interrupts.install()
        logger.info(
            "Harvest started on %r (%s tasks)",
            self.memory,
            "streamed" if total is None else total,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._interrupts.flushing()
        try:
            if self._reader is not None:
                self._reader.close()
            # A task waiting for its retry when the run stopped failed in this
            # run: say so, with its error; the next run retries it.
            while self._retries:
                attempt = self._retries.popleft()
                self._record_failure(attempt, attempt.last_error)
            self._writer.close()
            self._tidy_memory()
        finally:
            self._interrupts.restore()
            if self._bar is not None:
                self._bar.close()
        self._settle_report(interrupted=exc_type is KeyboardInterrupt)
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
        if self._interrupts.received:
            raise KeyboardInterrupt

    # -- what the executor calls ---------------------------------------------------

    def next_attempt(self) -> Attempt | None:
        """The next attempt to start, or None if there is none right now (see :attr:`done`)."""
        if self._should_stop():
            return None
        if self._retries:
            return self._retries.popleft()
        if not self._runnable:
            try:
                self._refill()
            except Exception as exc:  # the memory failed while registering tasks
                self._fail(exc)
                return None
        return self._runnable.popleft() if self._runnable else None

    @property
    def done(self) -> bool:
        """True once nothing will start any more: stopped, or every task started, no retry due."""
        return self._stopping or (self._source_done and not self._runnable and not self._retries)

    def wait_hint(self) -> float | None:
        """How long an executor may wait for an outcome before asking again (None: no limit)."""
        if self._reader is None or self._source_done or self._stopping:
            return None
        return SOURCE_POLL

    def on_outcome(self, outcome: Outcome) -> None:
        """Record a finished attempt (or schedule its retry), then check the stop condition."""
        attempt = outcome.attempt
        if outcome.ok:
            self._writer.put(EncodedUpdate(attempt.task_id, COMPLETED, outcome.result_json, None))
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
        self._writer.put(EncodedUpdate(attempt.task_id, FAILED, None, error))
        self.report.failed += 1
        logger.debug("Task %r failed: %s", attempt.task_id, error)
        self._advance()
        if self._bar is not None:
            self._bar.set_postfix(failed=self.report.failed, refresh=False)

    def _advance(self, count: int = 1) -> None:
        if self._bar is not None and count:
            self._bar.update(count)

    def _refill(self) -> None:
        """Move the next tasks of the source into ``_runnable``, without waiting."""
        if self._source_done:
            return
        if self._listed is not None:
            for attempt in self._listed:
                self._runnable.append(attempt)
                if len(self._runnable) >= REGISTRATION_CHUNK:
                    return
            self._source_done = True
            return
        assert self._reader is not None
        pairs = self._reader.take(REGISTRATION_CHUNK)
        if pairs:
            runnable = self._register([task_id for task_id, _ in pairs])
            self._advance(runnable.count(False))
            self._runnable.extend(
                Attempt(i, t) for (i, t), run in zip(pairs, runnable, strict=True) if run
            )
        if self._reader.ended and not self._runnable:
            # Every task read before a bad one (a duplicate id, a generator
            # that raised) has started: now the run stops, with that error.
            self._source_done = True
            if self._reader.error is not None:
                self._fail(self._reader.error)

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

    def _tidy_memory(self) -> None:
        """Let the memory tidy up after the run; its records are safe, so a failure only warns."""
        if self._writer.error is not None:
            return
        try:
            self.memory.flush()
        except Exception as exc:
            logger.warning("%r could not tidy up after the run: %s", self.memory, exc)

    def _settle_report(self, *, interrupted: bool) -> None:
        r = self.report
        # Only what the memory confirmed counts: a result it refused was
        # recorded failed, and after a store failure the rest was not recorded.
        r.completed = self._writer.stored[COMPLETED]
        r.failed = self._writer.stored[FAILED]
        r.refused_results = list(self._writer.refused)
        r.interrupted = interrupted or bool(self._interrupts.received)
        r.elapsed = time.perf_counter() - self._started
        how = "interrupted" if r.interrupted else "stopped" if r.stopped else "finished"
        logger.info(
            "Harvest %s in %.2fs: %d completed, %d failed, %d retries, %d already completed",
            *(how, r.elapsed, r.completed, r.failed, r.retried, r.skipped),
        )


def _refuse_duplicates(ids: list[str]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for task_id in ids:
        if task_id in seen:
            raise duplicate_task(task_id)
        seen.add(task_id)
