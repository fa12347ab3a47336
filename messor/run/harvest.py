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
limit, a retry's backoff, a server's pause, a slow generator), and ``done``
tells whether anything ever will start again. An executor sets ``harvest.wake`` to a
function that ends its wait early: a generator's reader calls it (from its
own thread) when tasks arrive while the executor waits. Registration and resume (through
:class:`~messor.run.sources.TaskSource`), retries with backoff, stop conditions,
rate limit, timeouts, Ctrl-C and SIGTERM, batched writes (through
:class:`~messor.run.writer.RecordWriter`), the progress bar and the run's report
all live here, once; so does server-aware pacing (pauses on a 429, adaptive
concurrency, keyed limits: :class:`~messor.run.pacing.Pacer`), which a run
uses once it is configured or a server first throttles it. What becomes of
each outcome (recorded, retried, put back, timed out) and the stop conditions
are the half in :mod:`messor.run.settling`, which ``Harvest`` extends.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

from messor.memories.base import COMPLETED, FAILED, GAVE_UP, PENDING, Memory
from messor.memories.claims import ClaimWatch, RunOwner, release_nothing
from messor.options import RunOptions
from messor.run.attempt import Attempt, Outcome, describe_error, perform
from messor.run.controls import RateLimiter
from messor.run.heartbeat import Heartbeat, RunState
from messor.run.interrupts import InterruptGuard
from messor.run.pacing import Learned, Pacer
from messor.run.report import RunReport, summary_text
from messor.run.settling import Settling
from messor.run.sources import REGISTRATION_CHUNK, TaskSource
from messor.run.verdicts import Rules

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


class Harvest(Settling):
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
        self,
        tasks: Iterable[object],
        memory: Memory,
        options: RunOptions | None = None,
        *,
        learned: Learned | None = None,
    ) -> None:
        options = RunOptions() if options is None else options
        super().__init__(memory, options, learned)
        self.memory = memory
        #: The one-pass iterator (a generator) this run began to read: no run can read it again.
        self.read_once: Iterator[object] | None = None
        #: How an attempt's exception is judged: executors hand them to ``perform``.
        self.rules = Rules(options.retry_on, options.give_up_on)
        self._tasks = tasks
        rate = options.rate_limit
        self._limiter = None if rate is None else RateLimiter(rate, options.rate_burst)
        #: Ends the executor's wait from another thread; the executor sets it.
        self.wake: Callable[[], None] = _nothing
        self._source = TaskSource(
            tasks, memory, self._skipped, lambda: self.wake(), lambda: self._stopping
        )
        self._release_claim = release_nothing
        self._claim = ClaimWatch()
        self._interrupts = InterruptGuard(self.interrupt, lambda: self._writer.backlog)
        self._rate_wait = 0.0  # when the rate limit lets the next attempt start
        self._started = 0.0
        #: The executor's limit on running attempts, for the run's heartbeat (None: not said).
        self.concurrency: int | None = None
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
        self._progress.open(self.options.progress, total, self.report.skipped)
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
        left_undone = not self._waiting.empty or not self._source.exhausted
        abandoned = False
        try:
            self._source.close()
            # A retry the run did not get to: the task goes back to pending,
            # with its last error, and its retries start afresh next run.
            for attempt in self._waiting.take_all():
                if attempt.number > 1:
                    self._record(attempt, PENDING, None, attempt.last_error, attempt.number - 1)
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
            self._progress.close()
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
        if self._waiting.pacer is not None:
            return self._next_paced(now, self._waiting.pacer)
        retry_due = self._waiting.due(now)
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
        if self._should_stop() or self._held_by_rate_limit(now):
            return None
        self._rate_wait = 0.0
        if retry_due:
            attempt = self._waiting.pop()
            self._count_retry(attempt)
        else:
            attempt = self._source.take()
        return self._hand_out(attempt, now)

    def _held_by_rate_limit(self, now: float) -> bool:
        """Whether ``rate_limit`` holds the next start back (then ``_rate_wait`` says till when)."""
        if self._limiter is None:
            return False
        wait = self._limiter.try_acquire(now)
        if wait > 0:
            self._rate_wait = now + wait
        return wait > 0

    def _count_retry(self, attempt: Attempt) -> None:
        if not attempt.again:  # a throttled attempt going again is no new retry
            self.report.retried += 1
            self._show_postfix()

    def _next_paced(self, now: float, pacer: Pacer) -> Attempt | None:
        """``next_attempt`` when the run paces itself: what the pacer lets start."""
        wait = pacer.run_wait(now, self._in_flight)
        self._rate_wait = now + wait if wait > 0 else 0.0
        if wait > 0:
            return None
        try:
            attempt = pacer.next(now, lambda: self._take(now))
        except Exception as exc:  # the memory failed while registering, or a key function raised
            self._fail(exc)
            return None
        if attempt is None or self._should_stop() or self._held_by_rate_limit(now):
            return None
        pacer.commit(attempt, now)
        if attempt.number > 1:
            self._count_retry(attempt)
        if self._pause_shown and now >= self._pause_shown:
            self._pause_shown = 0.0
            self._show_postfix()
        return self._hand_out(attempt, now)

    def _take(self, now: float) -> Attempt | None:
        """The next attempt to look at: a retry that is due, else the source's next."""
        if self._waiting.due(now):
            return self._waiting.pop()
        if self._source.peek() is None:
            if self._source.exhausted and self._source.error is not None:
                self._fail(self._source.error, halt=False)
            return None
        return self._source.take()

    @property
    def done(self) -> bool:
        """True once nothing will start any more: stopped, or every task started, no retry due."""
        return self._stopping or (self._source.exhausted and self._waiting.empty)

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
                # Nothing starts before the rate limit (or a pause) allows it,
                # however many tasks are ready: asking again sooner would only
                # spin. Infinite: not before an attempt ends.
                times.append(self._rate_wait)
            else:
                pacer = self._waiting.pacer
                if (waiting := self._waiting.next_time()) is not None:
                    times.append(waiting)
                if pacer is not None and pacer.full:
                    pass  # reads no further ahead until held tasks can go
                elif self._source.ready:
                    times.append(now)
                elif self._source.streaming:
                    times.append(now + SOURCE_POLL)
        times = [t for t in times if t < math.inf]
        return max(0.0, min(times) - now) if times else None

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

    def _skipped(self, count: int) -> None:
        self.report.skipped += count
        self._progress.advance(count)

    def _run_state(self) -> RunState:
        """This run's live state, for its heartbeat (read from the heartbeat's thread)."""
        pacing = self.pacing_state()
        return RunState(
            completed=self._writer.stored[COMPLETED],
            failed=self._writer.stored[FAILED],
            gave_up=self._writer.stored[GAVE_UP],
            retried=self.report.retried,
            skipped=self.report.skipped,
            # The limit in force: the adaptive one while the run adapts.
            concurrency=pacing.concurrency or self.concurrency,
            # Handed out includes a few queued for the next free worker: at
            # most `concurrency` of them run.
            in_flight=min(self._in_flight, self.concurrency or self._in_flight),
            paused_until=pacing.paused_until,
            pause_reason=pacing.pause_reason,
            throttled=pacing.throttled,
            usage=pacing.usage,
            learned=pacing.learned,
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
        r.gave_up = self._writer.stored[GAVE_UP]
        r.usage = dict(self._progress.usage)
        # A pause that outlasts the run was not waited out.
        outlasting = max(0.0, self._waiting.paused_until - time.monotonic())
        r.paused_seconds = max(0.0, self._waiting.paused_seconds - outlasting)
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
