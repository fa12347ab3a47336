"""What waits to start: retries until their backoff ends, throttled attempts until their time.

:class:`Waiting` keeps them by the time they may start. Once a run paces
itself (keyed limits or adaptive concurrency configured, or a server's first
throttle) it also holds the run's :class:`~messor.run.pacing.Pacer`, which
holds aside the attempts whose key is blocked and decides what starts.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Mapping

from messor.options import RunOptions
from messor.run.attempt import Attempt
from messor.run.knobs import Adaptive
from messor.run.pacing import Learned, Pacer, PacingState
from messor.run.throttling import Throttle

__all__ = ["Waiting"]


class Waiting:
    """Attempts that wait for a time, and the run's pacing (see the module).

    ``learned``: what an earlier run on the same memory learned of the
    servers' pace (its ``PacingState.learned``), to start from. ``successes``:
    the start times of the run's successful attempts, which the run records
    until it paces itself, and the pacing from then on.
    """

    def __init__(
        self, options: RunOptions, learned: Learned | None, successes: deque[float]
    ) -> None:
        self._options = options
        self._learned = learned
        self._successes = successes
        self._heap: list[tuple[float, int, Attempt]] = []
        self._order = itertools.count()
        #: The pacing, from the start when configured (or learned before), else from the
        #: first throttle on.
        paced = options.limits or options.adaptive or learned
        self.pacer = self._new_pacer() if paced else None
        #: Attempts throttled so far; seconds the run (or one of its keys) was paused.
        self.throttled = 0
        self.paused_seconds = 0.0
        #: When the latest pause ends (monotonic clock; 0: none yet).
        self.paused_until = 0.0

    # -- the queue -------------------------------------------------------------------

    def push(self, attempt: Attempt, ready: float) -> None:
        """``attempt`` may start from ``ready`` on (monotonic clock; 0: at once)."""
        heapq.heappush(self._heap, (ready, next(self._order), attempt))

    def due(self, now: float) -> bool:
        return bool(self._heap) and self._heap[0][0] <= now

    def pop(self) -> Attempt:
        """The attempt that may start first (check :meth:`due`)."""
        return heapq.heappop(self._heap)[2]

    def next_time(self) -> float | None:
        """When the next attempt may start, or one held aside be looked at again."""
        times = [self._heap[0][0]] if self._heap else []
        if self.pacer is not None and (held := self.pacer.wake_time()) is not None:
            times.append(held)
        return min(times, default=None)

    @property
    def empty(self) -> bool:
        return not self._heap and (self.pacer is None or not self.pacer.holding)

    def take_all(self) -> list[Attempt]:
        """Every attempt still waiting (the run ends without them); none are left."""
        left = [entry[2] for entry in self._heap]
        if self.pacer is not None:
            left.extend(self.pacer.held())
        self._heap.clear()
        return left

    # -- throttles -------------------------------------------------------------------

    def throttle(self, attempt: Attempt, throttle: Throttle) -> bool:
        """Pause the attempt's key for the server's time, and put it back to go then.

        Returns False (the attempt is a failure after all) once its task was
        throttled ``max_throttles`` times in this run.
        """
        if self.pacer is None:
            self.pacer = self._new_pacer()
        now = time.monotonic()
        pauses = self.pacer.pauses
        until = self.pacer.throttle(attempt, throttle, now)
        self.throttled += 1
        if self.pacer.pauses != pauses:
            self.paused_seconds += max(0.0, until - max(now, self.paused_until))
            self.paused_until = max(self.paused_until, until)
        attempt.throttled += 1
        if attempt.throttled >= self._options.max_throttles:
            return False
        again = Attempt(attempt.task_id, attempt.task, attempt.number, attempt.last_error)
        again.throttled, again.again = attempt.throttled, True
        self.push(again, until)
        return True

    def state(self, usage: Mapping[str, float], *, learned: bool = True) -> PacingState:
        """The pacing now, for the run's heartbeat and progress bar (``learned``: with it)."""
        if self.pacer is None:
            return PacingState(throttled=self.throttled, usage=dict(usage))
        state = self.pacer.state(time.monotonic(), learned=learned)
        return dataclasses.replace(state, usage=dict(usage))

    def _new_pacer(self) -> Pacer:
        options = self._options
        adaptive, cap = options.adaptive, options.max_concurrency
        assert not isinstance(adaptive, bool)  # settled by RunOptions
        assert not isinstance(cap, Adaptive | str)
        return Pacer(options.limits, adaptive, cap or math.inf, self._learned, self._successes)
