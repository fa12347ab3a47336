"""Settling a run's attempts: what becomes of each outcome, and when the run stops.

:class:`Settling` is the half of :class:`~messor.run.harvest.Harvest` that
runs after an attempt ends: it records the outcome (completed, failed, failed
for good) through the run's :class:`~messor.run.writer.RecordWriter`, schedules a
retry after its backoff, puts a throttled attempt back until the server's time,
gives up on attempts past their deadline, takes back attempts never started,
and asks the stop conditions. The other half (the run's life, and which
attempt starts next) stays in :mod:`messor.run.harvest`. Apart because the
run loop grew past what one reads at once; ``Harvest`` is the only subclass,
and the only name executors use.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import deque

from messor.errors import TaskTimeoutError
from messor.memories.base import COMPLETED, FAILED, GAVE_UP, PENDING, EncodedUpdate, Memory
from messor.options import RunOptions
from messor.run.attempt import Attempt, Outcome, describe_error, failure
from messor.run.controls import Backoff
from messor.run.knobs import SUCCESSES_KEPT
from messor.run.pacing import Learned, PacingState
from messor.run.progress import Progress
from messor.run.report import RunReport
from messor.run.stops import AttemptOutcome, SpendingLimit
from messor.run.waiting import Waiting
from messor.run.writer import RecordWriter

__all__ = ["Settling"]

logger = logging.getLogger("messor")


class Settling:
    """What a run does with each attempt's outcome, and its stop conditions (see the module).

    ``memory``, ``options`` and ``learned`` as :class:`~messor.run.harvest.Harvest` takes them.
    """

    def __init__(self, memory: Memory, options: RunOptions, learned: Learned | None) -> None:
        self.options = options
        self.report = RunReport()
        budget = () if options.budget is None else (SpendingLimit(**options.budget),)
        self._conditions = (*options.stop_all_when, *budget)
        self._observers = [c for c in self._conditions if hasattr(c, "observe")]
        #: The start times of successful attempts: how fast servers take them.
        self._successes: deque[float] = deque(maxlen=SUCCESSES_KEPT)
        #: Retries and throttled attempts, by when they may start; the run's pacing.
        #: ``learned``: what an earlier run learned of the servers' pace.
        self._waiting = Waiting(options, learned, self._successes)
        self._in_flight = 0  # attempts handed out and not settled
        self._progress = Progress()
        self._pause_shown = 0.0  # the pause on the progress bar, until it ends
        self._backoff = Backoff(options.backoff, options.backoff_max)
        self._writer = RecordWriter(memory)
        self._order = itertools.count()  # ties in the heap below
        self._deadlines: list[tuple[float, int, Attempt]] = []  # running, by deadline
        self._settled_deadlines = 0  # entries of _deadlines whose attempt has ended
        self._stopping = False
        self._halting = False
        self._failure: BaseException | None = None

    def _hand_out(self, attempt: Attempt, now: float) -> Attempt:
        """``attempt`` starts now: it runs until settled; its deadline is watched."""
        if self.options.timeout is not None:
            attempt.deadline = now + self.options.timeout
            heapq.heappush(self._deadlines, (attempt.deadline, next(self._order), attempt))
        attempt.started = now
        self._in_flight += 1
        return attempt

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
        if outcome.usage is not None:
            self._progress.add_usage(outcome.usage)
            self._show_postfix()
        pacer = self._waiting.pacer
        if pacer is not None:
            pacer.ended(attempt, outcome, time.monotonic())
        throttled = False
        if outcome.ok:
            if pacer is None:  # else the pacer keeps them
                self._successes.append(attempt.started)
            self._record(attempt, COMPLETED, outcome.result_json, None, attempt.number)
        elif outcome.gave_up or _matches_types(self.options.give_up_on, outcome.error_type):
            self._record(attempt, GAVE_UP, None, outcome.error, attempt.number)
            logger.debug("Task %r failed for good: %s", attempt.task_id, outcome.error)
        elif throttled := self._throttled(outcome):
            pass  # back in the queue, not before the server's time
        elif self._retryable(outcome):
            ready = time.monotonic() + self._backoff.delay(attempt.number)
            retry = Attempt(attempt.task_id, attempt.task, attempt.number + 1, outcome.error)
            retry.throttled = attempt.throttled
            self._waiting.push(retry, ready)
            logger.debug("Task %r failed, will retry: %s", attempt.task_id, outcome.error)
        else:
            self._record(attempt, FAILED, None, outcome.error, attempt.number)
            logger.debug("Task %r failed: %s", attempt.task_id, outcome.error)
        if self._waiting.pacer is not None and outcome.error_type is TaskTimeoutError:
            self._waiting.pacer.congestion(attempt, time.monotonic())
        if self._writer.error is not None:
            self._stop("outcomes could not be recorded")
        if self._observers:
            self._observe(
                AttemptOutcome(
                    attempt.task_id,
                    outcome.ok,
                    outcome.error,
                    outcome.error_type,
                    outcome.usage,
                    throttled,
                )
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
        """An attempt handed out but never started: the run stopped, or a server paused it."""
        attempt.settled = True
        self._in_flight -= 1
        if self._waiting.pacer is not None:
            self._waiting.pacer.ended(attempt, None, time.monotonic())
        if attempt.number > 1 or not self._halting:
            # Back in the queue, first in line: it starts when its key may
            # (a retry that did not happen goes back to pending with its
            # error if the run ends first, like the retries still waiting).
            again = Attempt(attempt.task_id, attempt.task, attempt.number, attempt.last_error)
            again.throttled, again.again = attempt.throttled, attempt.again
            self._waiting.push(again, 0.0)
            if attempt.number > 1 and not attempt.again:
                self.report.retried -= 1

    @property
    def pauses(self) -> int:
        """Throttles the run paused for so far: when it grows, :func:`~messor.executors.base.drive`
        takes back the attempts an executor queued and has not started."""
        pacer = self._waiting.pacer
        return 0 if pacer is None else pacer.pauses

    def pacing_state(self, *, learned: bool = True) -> PacingState:
        """The run's pacing now, read-only, for its heartbeat: pauses, concurrency, rate,
        throttles, usage totals, and what a next run starts from (``learned``, unless
        ``learned=False``).

        Callable from any thread.
        """
        return self._waiting.state(self._progress.usage, learned=learned)

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
        if outcome.attempt.number > self.options.retry:
            return False
        if outcome.error_type is TaskTimeoutError:
            return True  # running out of time is retried whatever retry_on says
        # Judged where the attempt ran (retry_on, a result that cannot be stored);
        # exception types once more here, for an executor that ran it without the rules.
        retry_on = self.options.retry_on
        return outcome.retryable and (
            not isinstance(retry_on, tuple) or _matches_types(retry_on, outcome.error_type)
        )

    def _throttled(self, outcome: Outcome) -> bool:
        """A server's throttle: the attempt goes back, its key pauses. False if it is none, or
        the task was throttled too often (then it is a failed attempt)."""
        throttle = outcome.throttle
        if throttle is None:
            return False
        if not throttle.honoured(self.options.adaptive is not None):
            return False  # a 503 that names no time is a failure, unless the run adapts
        requeued = self._waiting.throttle(outcome.attempt, throttle)
        self.report.throttled = self._waiting.throttled
        self._pause_shown = max(self._pause_shown, self._waiting.paused_until)
        self._show_postfix()
        return requeued

    def _record(
        self, attempt: Attempt, status: str, result: str | None, error: str | None, attempts: int
    ) -> None:
        # The hot path: no logging, and the bar only when it is shown.
        self._writer.put(EncodedUpdate(attempt.task_id, status, result, error, attempts))
        if status != COMPLETED:
            self._progress.failures += status == FAILED
            self._show_postfix()
        if status != PENDING:
            self._progress.advance()

    def _show_postfix(self) -> None:
        """Failures, retries, the server's pace and the usage on the bar (when it changes)."""
        paced = self._waiting.pacer is not None
        self._progress.show(
            self.report.retried, lambda: self.pacing_state(learned=False) if paced else None
        )


def _matches_types(rule: object, error_type: type[BaseException] | None) -> bool:
    """``error_type`` is one of the exception types of a rule (False for a predicate)."""
    return isinstance(rule, tuple) and error_type is not None and issubclass(error_type, rule)
