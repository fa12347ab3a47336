"""The knobs of server-aware pacing: one key's pause, start rate and concurrency limit.

A :class:`KeyPace` is what :class:`~messor.run.pacing.Pacer` keeps per key
(or for the whole run); its rate and concurrency limit are :class:`Knob`\\ s,
moved by the server's signals as the algorithm of :mod:`messor.run.pacing`
(and docs/pacing.md) says. Every method takes the time it is asked at, so
that the algorithm can be run on a simulated clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from messor.errors import ConfigurationError
from messor.run.attempt import Attempt
from messor.run.limits import Gate
from messor.run.throttling import Throttle

__all__ = [
    "CONCURRENCY_BETA",
    "HORIZON",
    "MAX_BACKOFF",
    "MAX_HORIZON",
    "MAX_START",
    "MEASURE",
    "MIN_RATE",
    "MIN_START",
    "RATE_BETA",
    "STEADY_BETA",
    "SUCCESSES_KEPT",
    "Adaptive",
    "KeyPace",
    "Knob",
]

#: Seconds a knob takes to climb back to where the server said no (CUBIC's K); doubled,
#: up to MAX_HORIZON, each time the server says no within STEADY of where it did before.
HORIZON = 10.0
MAX_HORIZON = 20.0
STEADY = 0.1
#: A throttle cuts the start rate to this share of the rate the server accepted.
RATE_BETA = 0.85
#: A congestion signal cuts the concurrency limit to this share of what ran.
CONCURRENCY_BETA = 0.7
#: ... and a capacity signal (a bare 503 or 529, a timeout) where the server said no
#: before (within STEADY) to this share: the server's capacity is known, and was only
#: just passed.
STEADY_BETA = 0.9
#: The slowest a learned rate goes (starts per second).
MIN_RATE = 0.1
#: How far back the accepted rate is measured, in seconds (at least one second is assumed).
MEASURE = 5.0
#: Start times of successes kept per key, at most (enough for MEASURE at 10,000/s).
SUCCESSES_KEPT = 65536
#: Longest pause when a server throttles without saying how long.
MAX_BACKOFF = 60.0
#: An adaptive concurrency limit given no start begins at a quarter of its ceiling, within these.
MIN_START = 4
MAX_START = 64


@dataclass(frozen=True)
class Adaptive:
    """``max_concurrency=messor.Adaptive(ceiling=128)``: find the server's capacity.

    ``ceiling``: never more attempts at once (None: the executor's, 64 for
    threads, 1000 for coroutines). ``start``: attempts at once to begin with
    (None: a quarter of the ceiling, at least 4 and at most 64; a resumed run
    begins where the last one ended). ``max_concurrency="auto"`` is
    ``Adaptive()``.
    """

    start: int | None = None
    ceiling: int | None = None

    def __post_init__(self) -> None:
        for name in ("start", "ceiling"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"Adaptive {name} must be an int >= 1, got {value!r}")
        if self.start is not None and self.ceiling is not None and self.start > self.ceiling:
            raise ConfigurationError(
                f"Adaptive start ({self.start}) is above its ceiling ({self.ceiling})"
            )

    def first(self, ceiling: float) -> float:
        """The concurrency limit to begin with, under ``ceiling``.

        Slow start doubles the limit every round trip: from 4, an API whose calls
        take seconds is reached only after many (an LLM API taking 120 at once, in
        8 s of a 30 s run). A quarter of the ceiling the user accepts is found in
        two round trips, and costs at most that many declined attempts, once.
        """
        if self.start is not None:
            return float(min(self.start, ceiling))
        return float(min(ceiling, max(MIN_START, min(MAX_START, ceiling // 4))))


class Knob:
    """One value the server's signals move: ``at(now)`` gives it (None: unlimited)."""

    __slots__ = ("beta", "ceiling", "drop", "floor", "horizon", "peak", "since", "value")

    def __init__(self, value: float | None, *, floor: float, ceiling: float, beta: float) -> None:
        self.value = value  # before the first cut
        self.floor, self.ceiling, self.beta = floor, ceiling, beta
        self.peak: float | None = None  # where the server said no, once it did
        self.since = 0.0  # when the climb back began
        self.horizon = HORIZON
        self.drop = beta  # the share of the peak the last cut went down to

    def at(self, now: float) -> float | None:
        if self.peak is None:
            return self.value
        t = (now - self.since - self.horizon) / self.horizon
        value = self.peak * (1 + (1 - self.drop) * t * t * t)
        return min(self.ceiling, max(self.floor, value))

    def grow(self) -> None:
        """One success before the first cut (slow start): +1."""
        if self.peak is None and self.value is not None:
            self.value = min(self.ceiling, self.value + 1)

    def cut(
        self, reached: float, now: float, resume: float, steady_beta: float | None = None
    ) -> None:
        """The server said no at ``reached`` (at ``now``): climb back from ``beta * reached``
        (``steady_beta * reached`` if given and the server said no there before), from
        ``resume`` on."""
        current = self.at(now)
        peak = max(reached if current is None else min(reached, current), self.floor)
        # The server said no where it did last time: its limit holds, stay near it longer.
        steady = self.peak is not None and abs(peak - self.peak) <= STEADY * self.peak
        self.horizon = min(MAX_HORIZON, 2 * self.horizon) if steady else HORIZON
        self.drop = steady_beta if steady and steady_beta is not None else self.beta
        self.peak = peak
        self.since = max(resume, now)

    def resume_at(self, value: float, now: float) -> None:
        """Begin where a previous run ended: at ``value``, on the flat of the curve."""
        self.peak = min(self.ceiling, max(self.floor, value))
        self.since = now - self.horizon


class KeyPace(Gate):
    """The pacing of one key (or of the whole run): its pause, rate and concurrency.

    ``successes``: the start times of its attempts that succeeded (the run's
    are kept by the run from its start, before it paces itself).
    """

    __slots__ = (
        "backoffs",
        "concurrency",
        "first_start",
        "last_cut",
        "name",
        "next_start",
        "paused_until",
        "pending_cut",
        "rate",
        "reason",
        "running",
        "successes",
    )

    def __init__(
        self, name: str | None, concurrency: Knob | None, successes: deque[float] | None = None
    ) -> None:
        super().__init__()
        self.name = name
        self.paused_until = -math.inf
        self.reason = ""
        self.backoffs = 0  # throttles in a row without Retry-After
        self.rate = Knob(None, floor=MIN_RATE, ceiling=math.inf, beta=RATE_BETA)
        self.concurrency = concurrency
        self.running = 0
        self.next_start = -math.inf
        self.last_cut = -math.inf
        #: When a throttle asked to cut the rate: the cut is made when the pause ends,
        #: once the attempts sent before it have told whether they got through.
        self.pending_cut: float | None = None
        self.first_start = math.inf
        self.successes = deque(maxlen=SUCCESSES_KEPT) if successes is None else successes

    def wait(self, now: float) -> float:
        if self.paused_until > now:
            return self.paused_until - now
        if self.pending_cut is not None:
            self._cut_rate(now)
        if self.concurrency is not None:
            limit = self.concurrency.at(now)
            if limit is not None and self.running >= max(1, int(limit)):
                return math.inf
        if self.rate.peak is not None:
            return max(0.0, self.next_start - now)
        return 0.0

    def start(self, now: float) -> None:
        self.running += 1
        self.first_start = min(self.first_start, now)
        rate = self.rate.at(now)
        if rate is not None:
            interval = 1.0 / rate
            base = self.next_start if now - self.next_start < interval else now
            self.next_start = base + interval

    def end(self, tokens: float | None, now: float) -> None:
        self.running -= 1

    def unstart(self) -> None:
        self.running -= 1

    def success(self, started: float) -> None:
        self.backoffs = 0
        successes = self.successes
        successes.append(started)
        while successes[0] < started - 2 * MEASURE:  # only the last seconds are measured
            successes.popleft()
        if self.concurrency is not None:
            self.concurrency.grow()

    def accepted_rate(self, until: float) -> float:
        """How fast the server took this key's attempts: those started in the MEASURE
        seconds before ``until`` that succeeded, per second (pauses included: over a
        pause and its burst, that is the server's quota), over at least a second."""
        since = max(self.first_start, until - MEASURE)
        if self.successes and (since == math.inf or len(self.successes) == self.successes.maxlen):
            # Began before this pacing (the run's first attempts), or more were kept
            # than fit: from the oldest success kept.
            since = max(until - MEASURE, self.successes[0])
        count = sum(1 for t in self.successes if since <= t <= until)
        return count / max(1.0, until - since)

    def throttle(self, throttle: Throttle, attempt: Attempt, now: float) -> tuple[float, bool]:
        """Pause for the server's time, or a backoff; returns (when the attempt may go again,
        whether the key is paused).

        A bare 503 or 529 (the server is overloaded and names no time) pauses
        nothing: the concurrency limit is cut and that attempt alone waits, 1 s, 2 s ...
        """
        self.congestion(attempt, now, rate=throttle.pauses)
        if not throttle.pauses:
            return now + min(MAX_BACKOFF, 2.0**attempt.throttled), False
        delay = throttle.retry_after
        if delay is None:
            delay = min(MAX_BACKOFF, 2.0**self.backoffs)
            self.backoffs += 1
        until = now + delay
        if until > self.paused_until:
            self.paused_until = until
            where = f" {self.name}" if self.name else ""
            self.reason = f"{throttle.describe()}{where}"
        return self.paused_until, True

    def congestion(self, attempt: Attempt, now: float, *, rate: bool) -> None:
        """Cut the knob the signal speaks of, once per round trip: ``rate`` (a throttle that
        pauses: too many a second) the rate, when the pause ends; else (a bare 503 or 529,
        a timeout: too many at once) the concurrency, now.

        A quota throttle leaves the concurrency alone: cut to what ran (a few, against
        a quota of short calls), it would cap the rate below the quota."""
        if attempt.started <= self.last_cut:
            # Sent at the old pace: the cut for it was made already. (Started at the very
            # instant of the cut, too: a coarse clock gives a burst of them one instant,
            # and each must not cut again.)
            return
        self.last_cut = now
        if rate:
            self.pending_cut = now
        elif self.concurrency is not None:
            self.concurrency.cut(self.running + 1, now, now, STEADY_BETA)  # +1: the one back

    def _cut_rate(self, now: float) -> None:
        when, self.pending_cut = self.pending_cut, None
        assert when is not None
        accepted = self.accepted_rate(when)
        if accepted > 0:  # nothing got through yet says nothing of the server's rate
            self.rate.cut(accepted, when, now)

    def learned(self, now: float) -> dict[str, float]:
        found: dict[str, float] = {}
        rate = self.rate.at(now) if self.rate.peak is not None else None
        if rate is not None:
            found["rate"] = round(rate, 3)
        # Only what a server cut: before that, a limit is still climbing its slow
        # start, and a next run resumed there would climb it slower.
        concurrency = self.concurrency
        if concurrency is not None and concurrency.peak is not None:
            limit = concurrency.at(now)
            if limit is not None:
                found["concurrency"] = round(limit, 1)
        return found
