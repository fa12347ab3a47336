"""The run loop every executor shares: what to start next, and what to do with each outcome.

:class:`Harvest` decides and records; an executor only runs attempts
somewhere (threads, coroutines, a cluster) and drives the harvest::

    with Harvest(tasks, memory, RunOptions(retry=1)) as harvest:
        while True:
            while <room for one more> and (attempt := harvest.next_attempt()):
                <start it; it ends in perform(attempt), an Outcome>
            if <nothing running> and harvest.done:
                break
            <wait for an outcome, at most harvest.wait_hint() seconds (None: no limit)>
            if harvest.on_outcome(outcome):   # False: an attempt given up already
                <its slot is free>
            for attempt in harvest.expire():  # timed out: give up on them
                <their slots are free; their late outcomes will be ignored>

``next_attempt`` never waits: None means "nothing to start now" (a rate
limit, a retry's backoff, a slow generator), and ``done`` tells whether
anything ever will start again. An executor sets ``harvest.wake`` to a
function that ends its wait early: a generator's reader calls it (from its
own thread) when tasks arrive while the executor waits. Registration and resume (through
:class:`~messor.run.sources.TaskSource`), retries with backoff, stop conditions,
rate limit, timeouts, Ctrl-C and SIGTERM, batched writes (through
:class:`~messor.run.writer.RecordWriter`), the progress bar and the run's report
all live here, once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from tqdm import tqdm

from messor.errors import TaskTimeoutError
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate, Memory
from messor.memories.claims import ClaimWatch, RunOwner, release_nothing
from messor.options import RunOptions
from messor.run.attempt import Attempt, Outcome, describe_error, failure, perform
from messor.run.controls import Backoff, RateLimiter
from messor.run.heartbeat import Heartbeat, RunState
from messor.run.interrupts import InterruptGuard
from messor.run.sources import REGISTRATION_CHUNK, TaskSource
from messor.run.stops import AttemptOutcome
from messor.run.writer import RecordWriter

__all__ = [
    "REGISTRATION_CHUNK",
    "Attempt",
    "Harvest",
    "Outcome",
    "RunReport",
    "describe_error",
    "perform",
    "summary_text",
]

logger = logging.getLogger("messor")

#: How often an idle run asks a slow generator for news, in seconds.
SOURCE_POLL = 0.02


@dataclass
class RunReport:
    """What one ``run()`` did (the memory holds the full state; see ``status_summary``)."""

    #: Tasks recorded completed (or failed) by this run, as the memory confirmed.
    completed: int = 0
    failed: int = 0
    #: Attempts that failed and were tried again; attempts that ran out of time.
    retried: int = 0
    timed_out: int = 0
    #: Tasks completed in an earlier run, not run again.
    skipped: int = 0
    #: Why the run ended before every task was done (None: it did them all).
    stopped_because: str | None = None
    stopped: bool = False  # by a stop condition
    interrupted: bool = False  # by Ctrl-C or SIGTERM
    elapsed: float = 0.0
    refused_results: list[tuple[str, str]] = field(default_factory=list)


def summary_text(counts: dict[str, int]) -> str:
    """``Pending tasks: N`` and so on, one line per status, as ``status_summary`` prints them."""
    order = [PENDING, COMPLETED, FAILED]
    order += sorted(s for s, n in counts.items() if s not in order and n)
    return "\n".join(f"{status.capitalize()} tasks: {counts.get(status, 0)}" for status in order)


class Harvest:
    """One run over a task set: registration, resume, retries, stops, pacing, recording.

    ``Harvest(tasks, memory, options)``: ``memory`` is an open
    :class:`~messor.memories.base.Memory`, ``options`` a
    :class:`~messor.options.RunOptions` (None: the defaults). An executor
    drives it, inside ``with harvest:``, through :meth:`next_attempt`,
    :attr:`done`, :attr:`halting` and :meth:`give_back`, :meth:`wait_hint`,
    :meth:`on_outcome`, :meth:`expire` and :attr:`wake`, as
    :func:`messor.executors.base.drive` does; :attr:`report` says what the run did.
    """

    def __init__(
        self, tasks: Iterable[object], memory: Memory, options: RunOptions | None = None
    ) -> None:
        self.memory = memory
        self.options = RunOptions() if options is None else options
        self.report = RunReport()
        #: The one-pass iterator (a generator) this run began to read: no run can read it again.
        self.read_once: Iterator[object] | None = None
        self._tasks = tasks
        self._conditions = self.options.stop_all_when
        self._observers = [c for c in self._conditions if hasattr(c, "observe")]
        rate = self.options.rate_limit
        self._limiter = None if rate is None else RateLimiter(rate, self.options.rate_burst)
        self._backoff = Backoff(self.options.backoff, self.options.backoff_max)
        #: Ends the executor's wait from another thread; the executor sets it.
        self.wake: Callable[[], None] = _nothing
        self._source = TaskSource(
            tasks, memory, self._skipped, lambda: self.wake(), lambda: self._stopping
        )
        self._writer = RecordWriter(memory)
        self._release_claim = release_nothing
        self._claim = ClaimWatch()
        self._interrupts = InterruptGuard(self.interrupt, lambda: self._writer.backlog)
        self._order = itertools.count()  # ties in the heaps below
        self._retries: list[tuple[float, int, Attempt]] = []  # by when they may start
        self._deadlines: list[tuple[float, int, Attempt]] = []  # running, by deadline
        self._settled_deadlines = 0  # entries of _deadlines whose attempt has ended
        self._rate_wait = 0.0  # when the rate limit lets the next attempt start
        self._failures = 0  # failures handed to the writer
        self._stopping = False
        self._halting = False
        self._failure: BaseException | None = None
        self._bar: tqdm[Any] | None = None
        self._started = 0.0
        #: The executor's limit on running attempts, for the run's heartbeat (None: not said).
        self.concurrency: int | None = None
        self._in_flight = 0  # attempts handed out and not settled, for the heartbeat
        self._heartbeat: Heartbeat | None = None

    # -- the run's life ----------------------------------------------------------

    def __enter__(self) -> Harvest:
        self._started = time.perf_counter()
        for condition in self._conditions:
            reset = getattr(condition, "reset", None)
            if reset is not None:
                reset()  # a helper reused by a second run() starts afresh
        # Before anything is registered: a second run on this memory is refused.
        owner = RunOwner()
        self._claim = owner.watch
        self._claim.listen(self._claim_news)
        self._release_claim = self.memory.claim_run(owner)
        # Signals are handled from the start: registering a big list takes a while.
        self._interrupts.install()
        try:
            total = self._source.open()
        except BaseException:
            self._interrupts.restore()
            self._release_claim()
            raise
        if total is None and isinstance(self._tasks, Iterator):
            self.read_once = self._tasks
        bar = tqdm(
            total=total,
            initial=self.report.skipped,
            unit="task",
            desc="messor",
            disable=None if self.options.progress is None else not self.options.progress,
            dynamic_ncols=True,
        )
        self._bar = None if bar.disable else bar
        self._writer.start()
        self._heartbeat = Heartbeat(self.memory, self._run_state, known_total=total)
        self._heartbeat.start()
        logger.info(
            "Harvest started on %r (%s tasks)", self.memory, "streamed" if total is None else total
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self._interrupts.flushing()
        left_undone = bool(self._retries) or not self._source.exhausted
        abandoned = False
        try:
            self._source.close()
            # A retry the run did not get to: the task goes back to pending,
            # with its last error, and its retries start afresh next run.
            for _, _, attempt in self._retries:
                self._record(attempt, PENDING, None, attempt.last_error, attempt.number - 1)
            self._retries.clear()
            self._writer.close()
            self._tidy_memory()
        except KeyboardInterrupt:
            # A second signal while the last outcomes were written: give up on
            # those (they run again next time), report what was stored.
            self._writer.abandon()
            abandoned = True
        finally:
            try:
                self._release_claim()  # after the last write: the next run sees all of it
            except Exception as exc:  # it ends with the process anyway
                logger.warning("Could not end this run's claim on %r: %s", self.memory, exc)
            self._interrupts.restore()
            if self._bar is not None:
                self._bar.close()
        self._settle_report(exc_type if not abandoned else KeyboardInterrupt, left_undone)
        if self._heartbeat is not None:
            self._heartbeat.finish(
                self.report.stopped_because, store_failed=self._writer.error is not None
            )
        first_signal = self._interrupts.first_signal
        if self.report.interrupted and not abandoned:
            self._print_summary()  # by a signal, or by cancelling run_async()
        if exc_type is not None or abandoned:
            # A second signal abandoned the run; after a SIGTERM, run() returns.
            if first_signal == signal.SIGTERM:
                return True
            if abandoned:
                raise KeyboardInterrupt
            return False
        if self._writer.error is not None:
            raise self._writer.failure() from self._writer.error
        if self._failure is not None:
            raise self._failure
        if first_signal == signal.SIGINT:
            raise KeyboardInterrupt
        return False

    # -- what the executor calls ---------------------------------------------------

    def next_attempt(self) -> Attempt | None:
        """The next attempt to start, or None if there is none right now (see :attr:`done`).

        The stop conditions are asked only when an attempt could start: before
        each start, not on every idle pass of the executor.
        """
        if self._stopping or not self._claim.certain:
            return None
        now = time.monotonic()
        retry_due = bool(self._retries) and self._retries[0][0] <= now
        if not retry_due:
            try:
                if self._source.peek() is None:
                    if self._source.exhausted and self._source.error is not None:
                        # The tasks read before it were all handed out: let them run.
                        self._fail(self._source.error, halt=False)
                    return None
            except Exception as exc:  # the memory failed while registering tasks
                self._fail(exc)
                return None
        if self._should_stop():
            return None
        if self._limiter is not None:
            wait = self._limiter.try_acquire(now)
            if wait > 0:
                self._rate_wait = now + wait
                return None
        self._rate_wait = 0.0
        if retry_due:
            attempt = heapq.heappop(self._retries)[2]
            self.report.retried += 1
            self._show_failures()
        else:
            attempt = self._source.take()
        if self.options.timeout is not None:
            attempt.deadline = now + self.options.timeout
            heapq.heappush(self._deadlines, (attempt.deadline, next(self._order), attempt))
        self._in_flight += 1
        return attempt

    @property
    def done(self) -> bool:
        """True once nothing will start any more: stopped, or every task started, no retry due."""
        return self._stopping or (self._source.exhausted and not self._retries)

    def wait_hint(self, *, room: bool = True) -> float | None:
        """How long an executor may wait for an outcome before asking again (None: no limit).

        ``room``: whether the executor could start an attempt now. Without
        room only deadlines matter: a due retry waits for a free slot, which
        only an outcome (or a timeout) brings.
        """
        now = time.monotonic()
        times = []
        if self._deadlines:
            times.append(self._deadlines[0][0])
        if room and not self._stopping and self._claim.certain:
            if self._rate_wait > now:
                # Nothing starts before the rate limit allows it, however many
                # tasks are ready: asking again sooner would only spin.
                times.append(self._rate_wait)
            else:
                if self._retries:
                    times.append(self._retries[0][0])
                if self._source.ready:
                    times.append(now)
                elif self._source.streaming:
                    times.append(now + SOURCE_POLL)
        return max(0.0, min(times) - now) if times else None

    def on_outcome(self, outcome: Outcome) -> bool:
        """Record a finished attempt (or schedule its retry), then check the stop conditions.

        Returns False, and changes nothing, for an attempt given up already
        (timed out): its slot was freed then.
        """
        attempt = outcome.attempt
        if attempt.settled:
            return False
        attempt.settled = True
        self._in_flight -= 1
        if attempt.deadline is not None:
            self._forget_deadline()
        if outcome.ok:
            self._record(attempt, COMPLETED, outcome.result_json, None, attempt.number)
        elif self._retryable(outcome):
            ready = time.monotonic() + self._backoff.delay(attempt.number)
            retry = Attempt(attempt.task_id, attempt.task, attempt.number + 1, outcome.error)
            heapq.heappush(self._retries, (ready, next(self._order), retry))
            logger.debug("Task %r failed, will retry: %s", attempt.task_id, outcome.error)
        else:
            self._record(attempt, FAILED, None, outcome.error, attempt.number)
            logger.debug("Task %r failed: %s", attempt.task_id, outcome.error)
        if self._writer.error is not None:
            self._stop("outcomes could not be recorded")
        if self._observers:
            self._observe(
                AttemptOutcome(attempt.task_id, outcome.ok, outcome.error, outcome.error_type)
            )
        if self._conditions:
            self._should_stop()
        return True

    def expire(self) -> list[Attempt]:
        """Give up on the running attempts past their deadline: each fails with a TimeoutError."""
        now = time.monotonic()
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            attempt = heapq.heappop(self._deadlines)[2]
            if attempt.settled:
                continue
            self.report.timed_out += 1
            error = TaskTimeoutError(
                f"no result after {self.options.timeout:g} s; the attempt was given up (what it "
                "returns later is ignored)"
            )
            self.on_outcome(failure(attempt, error))
            expired.append(attempt)
        return expired

    def stop(self) -> None:
        """Start no more attempts; running ones still get recorded."""
        self._stop("asked to stop")

    @property
    def halting(self) -> bool:
        """Nothing may start any more, not even what waits for a thread: take it back.

        False after a generator's bad item: what was read before it still runs.
        """
        return self._halting

    def give_back(self, attempt: Attempt) -> None:
        """An attempt handed out but never started (the run stopped first)."""
        attempt.settled = True
        self._in_flight -= 1
        if attempt.number > 1:
            # A retry that did not happen: the task goes back to pending with
            # its error, like the retries still waiting when the run ends.
            retry = Attempt(attempt.task_id, attempt.task, attempt.number, attempt.last_error)
            heapq.heappush(self._retries, (0.0, next(self._order), retry))
            self.report.retried -= 1

    # -- inside -------------------------------------------------------------------

    def interrupt(self, name: str) -> None:
        """Stop as on a first Ctrl-C (``name`` says what stopped it): running ones are recorded."""
        self._stop(f"interrupted by {name}")
        self.report.interrupted = True
        self.wake()  # end a long wait (a backoff, a slow rate) now

    def _claim_news(self) -> None:
        """The memory's news of this run's claim (from its thread): lost, or certain again."""
        if self._claim.error is not None:
            self._fail(self._claim.error)
        self.wake()

    def _stop(self, reason: str, *, halt: bool = True) -> None:
        self._halting = self._halting or halt
        if not self._stopping:
            self._stopping = True
            self.report.stopped_because = reason
            logger.info("No new tasks start: %s", reason)

    def _should_stop(self) -> bool:
        if self._stopping:
            return True
        for condition in self._conditions:
            try:
                stop = bool(condition())
            except Exception as exc:
                self._fail(exc)
                return True
            if stop:
                reason = getattr(condition, "reason", "") or getattr(condition, "__name__", "")
                self._stop(f"stop_all_when: {reason or repr(condition)}")
                self.report.stopped = True
                return True
        return False

    def _observe(self, outcome: AttemptOutcome) -> None:
        """Tell the stop conditions that watch outcomes; one that raises stops the run."""
        for condition in self._observers:
            try:
                condition.observe(outcome)
            except Exception as exc:
                self._fail(exc)

    def _forget_deadline(self) -> None:
        """Count a settled attempt in the deadline heap; rebuild the heap when they dominate."""
        self._settled_deadlines += 1
        if self._settled_deadlines > len(self._deadlines) // 2 + 64:
            self._deadlines = [entry for entry in self._deadlines if not entry[2].settled]
            heapq.heapify(self._deadlines)
            self._settled_deadlines = 0

    def _fail(self, exc: BaseException, *, halt: bool = True) -> None:
        logger.error("The run stops: %s", describe_error(exc))
        self._stop(f"error: {describe_error(exc)}", halt=halt)
        if self._failure is None:
            self._failure = exc

    def _retryable(self, outcome: Outcome) -> bool:
        if not outcome.retryable or outcome.attempt.number > self.options.retry:
            return False
        retry_on = self.options.retry_on
        if retry_on is None or outcome.error_type is TaskTimeoutError:
            return True  # running out of time is retried whatever retry_on says
        return outcome.error_type is not None and issubclass(outcome.error_type, retry_on)

    def _record(
        self, attempt: Attempt, status: str, result: str | None, error: str | None, attempts: int
    ) -> None:
        # The hot path: no logging, and the bar only when it is shown.
        self._writer.put(EncodedUpdate(attempt.task_id, status, result, error, attempts))
        if status != COMPLETED:
            self._failures += status == FAILED
            self._show_failures()
        if self._bar is not None and status != PENDING:
            self._bar.update()

    def _skipped(self, count: int) -> None:
        self.report.skipped += count
        if self._bar is not None and count:
            self._bar.update(count)

    def _show_failures(self) -> None:
        """Failures and retries on the bar: redrawn only when one of them changes."""
        if self._bar is not None:
            self._bar.set_postfix(failed=self._failures, retries=self.report.retried, refresh=False)

    def _run_state(self) -> RunState:
        """This run's live state, for its heartbeat (read from the heartbeat's thread)."""
        return RunState(
            completed=self._writer.stored[COMPLETED],
            failed=self._writer.stored[FAILED],
            retried=self.report.retried,
            skipped=self.report.skipped,
            concurrency=self.concurrency,
            # Handed out includes a few queued for the next free worker: at
            # most `concurrency` of them run.
            in_flight=min(self._in_flight, self.concurrency or self._in_flight),
        )

    def _tidy_memory(self) -> None:
        """Let the memory tidy up after the run; its records are safe, so a failure only warns."""
        if self._writer.error is not None:
            return
        try:
            self.memory.flush()
        except Exception as exc:
            logger.warning("%r could not tidy up after the run: %s", self.memory, exc)

    def _print_summary(self) -> None:
        try:
            print(summary_text(self.memory.count_by_status()), flush=True)
        except Exception as exc:
            logger.warning("Could not read the summary from %r: %s", self.memory, exc)

    def _settle_report(self, exc_type: type[BaseException] | None, left_undone: bool) -> None:
        r = self.report
        if r.stopped and not left_undone:
            # The condition tripped on the last outcome: nothing was cut short.
            r.stopped, r.stopped_because = False, None
        # Only what the memory confirmed counts: a result it refused was
        # recorded failed, and after a store failure the rest was not recorded.
        r.completed = self._writer.stored[COMPLETED]
        r.failed = self._writer.stored[FAILED]
        r.refused_results = list(self._writer.refused)
        if exc_type is KeyboardInterrupt or self._interrupts.first_signal is not None:
            r.interrupted = True
            r.stopped_because = r.stopped_because or "interrupted"
        r.elapsed = time.perf_counter() - self._started
        logger.info(
            "Harvest %s in %.2fs: %d completed, %d failed, %d retries, %d already completed",
            *(r.stopped_because or "finished", r.elapsed, r.completed, r.failed, r.retried),
            r.skipped,
        )


def _nothing() -> None:
    pass
