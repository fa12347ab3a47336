"""Server-aware pacing: pauses on a server's say-so, adaptive concurrency and rate, keyed limits.

The run loop (:class:`~messor.run.harvest.Harvest`) asks a :class:`Pacer`
which attempt may start next. The pacer keeps, per *key* (the whole run, or
each host, API key or model when the run has keyed :class:`~messor.Limit`\\ s):

- a **pause**: a throttled attempt (429/503/529 with ``Retry-After``, or
  :class:`~messor.Throttled`) pauses its key until the server's time, or for
  1 s, 2 s, 4 s ... (at most a minute, back to 1 s after a success) when the
  task named none. Nothing of that key starts before; the attempt itself
  waits in the queue, its retries untouched. (A bare 503 or 529, which a run
  with adaptive concurrency takes as a throttle too, pauses nothing: it cuts
  the concurrency limit below, and only its attempt waits, 1 s, 2 s ...)
- a learned **start rate**: unlimited until the key's first throttle, then
  :data:`~messor.run.knobs.RATE_BETA` times the rate the server accepted (successes per second
  over the last few seconds), growing back along a cubic curve (below).
- with adaptive concurrency, a **concurrency limit**: from ``Adaptive.start``
  (by default a quarter of the ceiling), +1 per success (doubling every round
  trip) until the first capacity signal (a bare 503 or 529, a
  timeout), then cut to :data:`~messor.run.knobs.CONCURRENCY_BETA` of what ran,
  growing back along the same curve. Each signal cuts the knob it speaks of: a
  bare 503 or 529 (overloaded: too many at once) or a timeout this one (to
  :data:`~messor.run.knobs.STEADY_BETA` where the server said no before), a
  throttle that pauses (a quota: too many a second) the rate.

The curve (as TCP CUBIC's): after a cut from ``peak`` at time ``t0``, a knob is
``peak * (1 + (1 - beta) * ((t - t0 - K) / K) ** 3)``: it climbs fast at first,
flattens out near ``peak`` (where the server said no) for a while, and only then
probes beyond, slowly, then faster. ``K`` is 10 s, doubled up to 20 s while
the server keeps saying no at the same place (its limit is steady: probe it
less often; :mod:`messor.run.knobs` has the constants). Against a fixed quota the run settles
just under it and is throttled rarely; when the quota rises it finds that out
within a few ``K``. A cut counts once per round trip: signals from attempts
started before the last cut are ignored (they were sent at the old pace). The
rate is cut when the pause ends, to what the server accepted over the seconds
before the throttle (pauses included: over a pause and the burst after it,
that is its quota); a success still in flight when the pause ends is not
counted.

Tasks whose key is blocked (paused, over its limits) are held aside, per key,
so that they never block other keys; at most :data:`MAX_PARKED` are held,
beyond which the run reads no further ahead.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from messor.run.attempt import Attempt, Outcome
from messor.run.knobs import (
    CONCURRENCY_BETA,
    Adaptive,
    KeyPace,
    Knob,
)
from messor.run.limits import Gate, Limit, LimitGate, by_host
from messor.run.throttling import Throttle
from messor.run.usage import tokens_of

__all__ = ["MAX_PARKED", "Learned", "Pacer", "PacingState"]

#: Attempts held aside for blocked keys, at most.
MAX_PARKED = 1000
#: Keys whose learned pace a run hands on to the next, at most (the latest cut).
LEARNED_KEYS = 100

#: What a run learned, per key ("" for the whole run): {"concurrency": 23.0, "rate": 41.5}.
Learned = dict[str, dict[str, float]]


@dataclass(frozen=True)
class PacingState:
    """The pacing of a run at one instant, for its heartbeat and progress bar (read-only)."""

    #: When the pause that ends last ends (seconds since the epoch), and why; None: no pause.
    paused_until: float | None = None
    pause_reason: str | None = None
    #: Keys paused right now (1 for a run-wide pause).
    paused_keys: int = 0
    #: The run-wide adaptive concurrency limit (None: not adaptive, or learned per key).
    concurrency: int | None = None
    #: The run-wide learned start rate per second (None: unlimited).
    rate: float | None = None
    #: Throttled attempts so far.
    throttled: int = 0
    #: What the tasks reported spending, summed.
    usage: Mapping[str, float] = field(default_factory=dict)
    #: What a next run on the same memory starts from (see :class:`Pacer`).
    learned: Learned = field(default_factory=dict)


class Pacer:
    """Decides which attempt may start now, and learns from each outcome (see the module).

    ``cap``: attempts at once at most (the executor's ``max_concurrency``, or
    the adaptive ceiling). ``learned``: what an earlier run on the same memory
    learned (``pacing_state().learned`` of that run), to start from.
    ``successes``: the start times of the run's successes so far (the run's own
    record, kept on from here).
    """

    def __init__(
        self,
        limits: tuple[Limit, ...],
        adaptive: Adaptive | None,
        cap: float,
        learned: Learned | None = None,
        successes: deque[float] | None = None,
    ) -> None:
        self.limits = limits
        self.adaptive = adaptive
        self.cap = cap
        #: The limit whose key names the key a throttle pauses (the first with a key function).
        self.keyed = next((limit for limit in limits if limit.key is not None), None)
        self._learned = dict(learned or {})
        self.run = None if self.keyed is not None else self._new_pace(None, successes)
        self.paces: dict[str, KeyPace] = {}
        self.gates: list[dict[str, LimitGate]] = [{} for _ in limits]
        self._due: list[tuple[float, int, Gate]] = []
        self._order = itertools.count()
        self._parked = 0
        self._held: Attempt | None = None
        #: Throttles paused for so far: each makes the executor take back the attempts
        #: it queued and has not started.
        self.pauses = 0
        self.throttled = 0

    # -- which attempt starts -------------------------------------------------------

    def run_wait(self, now: float, in_flight: int) -> float:
        """Seconds before anything at all may start (0: now; inf: when an attempt ends)."""
        if in_flight >= self.cap:
            return math.inf
        return 0.0 if self.run is None else self.run.wait(now)

    def next(self, now: float, take: Callable[[], Attempt | None]) -> Attempt | None:
        """The next attempt allowed to start: one held aside whose key opened, else the next of
        ``take()`` (holding aside those whose key is blocked). It stays the next until
        :meth:`commit`. None: none may start now."""
        held, self._held = self._held, None
        if held is not None and self._admit(held, now, front=True) is None:
            return held
        while self._due and self._due[0][0] <= now:
            when, _, gate = heapq.heappop(self._due)
            if gate.wake_at != when:
                continue  # rescheduled since
            gate.wake_at = math.inf
            if not gate.parked:
                continue
            attempt = gate.parked.popleft()
            self._parked -= 1
            blocker = self._admit(attempt, now, front=True)
            if blocker is not gate and gate.parked:
                self._wake(gate, now)  # its next one is looked at now, in order
            if blocker is None:
                return attempt
        while self._parked < MAX_PARKED:
            candidate = take()
            if candidate is None:
                return None
            if self._admit(candidate, now, front=False) is None:
                return candidate
        return None

    def _admit(self, attempt: Attempt, now: float, *, front: bool) -> Gate | None:
        """Hold ``attempt`` as the next to start (returns None), or aside at the gate that
        blocks it (returns that gate). Within one :meth:`next` nothing starts or ends, so
        a gate's answer holds, and every attempt looked at comes to rest."""
        if not attempt.holds:
            attempt.holds = self._gates_for(attempt.task)
        for gate in attempt.holds:
            if gate is self.run:
                continue  # run-wide: run_wait decides
            wait = gate.wait(now)
            if wait > 0:
                if front:
                    gate.parked.appendleft(attempt)
                else:
                    gate.parked.append(attempt)
                self._parked += 1
                if wait < math.inf:
                    self._wake(gate, now + wait)
                return gate
        self._held = attempt
        return None

    def _wake(self, gate: Gate, when: float) -> None:
        if when < gate.wake_at:
            gate.wake_at = when
            heapq.heappush(self._due, (when, next(self._order), gate))

    def commit(self, attempt: Attempt, now: float) -> None:
        """``attempt`` (what :meth:`next` returned) starts now."""
        self._held = None
        for gate in attempt.holds:
            gate.start(now)

    def wake_time(self) -> float | None:
        """When an attempt held aside may start (None: none waits for a time)."""
        while self._due and self._due[0][2].wake_at != self._due[0][0]:
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    @property
    def holding(self) -> bool:
        """Attempts are held aside (or one admitted waits to start)."""
        return self._parked > 0 or self._held is not None

    @property
    def full(self) -> bool:
        """As many held aside as allowed: read no further ahead."""
        return self._parked >= MAX_PARKED

    def held(self) -> Iterator[Attempt]:
        """Every attempt held aside, and the one admitted: for the run's end to account for."""
        if self._held is not None:
            yield self._held
        for gate in itertools.chain(self.paces.values(), *(g.values() for g in self.gates)):
            yield from gate.parked

    # -- what the outcomes teach ----------------------------------------------------

    def ended(self, attempt: Attempt, outcome: Outcome | None, now: float) -> None:
        """An attempt handed out ended (``outcome`` None: taken back unstarted)."""
        tokens = None
        if outcome is not None and outcome.usage is not None:
            tokens = tokens_of(outcome.usage)
        for gate in attempt.holds:
            if outcome is None:
                gate.unstart()
            else:
                gate.end(tokens, now)
            if gate.parked:
                self._wake(gate, now)
        if outcome is not None and outcome.ok:
            self._pace_of(attempt).success(attempt.started)

    def throttle(self, attempt: Attempt, throttle: Throttle, now: float) -> float:
        """Pause the attempt's key (or the key the server named); returns when it may go on."""
        self.throttled += 1
        if throttle.key is not None and self.keyed is not None:
            pace = self._pace(throttle.key)
        else:
            pace = self._pace_of(attempt)
        until, paused = pace.throttle(throttle, attempt, now)
        if paused:
            self.pauses += 1
            if pace.parked:
                self._wake(pace, until)
        return until

    def congestion(self, attempt: Attempt, now: float) -> None:
        """An attempt timed out, or the server was overloaded: cut its key's concurrency limit."""
        if self.adaptive is not None:
            self._pace_of(attempt).congestion(attempt, now, rate=False)

    def state(self, now: float, *, learned: bool = True) -> PacingState:
        """What :meth:`messor.run.harvest.Harvest.pacing_state` reports (``usage`` left empty).

        ``learned=False`` leaves ``learned`` empty: the progress bar, redrawn on
        every failure, needs none of it.
        """
        # Called from other threads (a heartbeat): copies of what the driver changes.
        paces = [*list(self.paces.values()), *([self.run] if self.run is not None else [])]
        paused = [pace for pace in paces if pace.paused_until > now]
        last = max(paused, key=lambda pace: pace.paused_until, default=None)
        wall = time.time() - now
        concurrency = rate = None
        if self.run is not None:
            rate = self.run.rate.at(now) if self.run.rate.peak is not None else None
            limit = self.run.concurrency.at(now) if self.run.concurrency is not None else None
            concurrency = None if limit is None else max(1, int(limit))
        return PacingState(
            paused_until=None if last is None else last.paused_until + wall,
            pause_reason=None if last is None else last.reason,
            paused_keys=len(paused),
            concurrency=concurrency,
            rate=rate,
            throttled=self.throttled,
            learned=self.learned(now) if learned else {},
        )

    def learned(self, now: float) -> Learned:
        """Per key, the knobs a server cut: at most LEARNED_KEYS keys, the latest cut first,
        so that a run over many hosts leaves a small last heartbeat."""
        paces = [pace for pace in (self.run, *list(self.paces.values())) if pace is not None]
        if len(paces) > LEARNED_KEYS:
            paces = heapq.nlargest(LEARNED_KEYS, paces, key=lambda pace: pace.last_cut)
        found: Learned = {}
        for pace in paces:
            if values := pace.learned(now):
                found[pace.name or ""] = values
        return found

    # -- keys -------------------------------------------------------------------------

    def _gates_for(self, task: object) -> tuple[Gate, ...]:
        gates: list[Gate] = [] if self.run is None else [self.run]
        key = None
        if self.keyed is not None:
            key = self.keyed.key_of(task)
            gates.append(self._pace(key))
        for limit, accounts in zip(self.limits, self.gates, strict=True):
            if limit.rate is None and limit.concurrency is None and limit.tokens is None:
                continue  # a key only
            name = key if limit is self.keyed and key is not None else limit.key_of(task)
            gate = accounts.get(name)
            if gate is None:
                gate = accounts[name] = LimitGate(limit)
            gates.append(gate)
        return tuple(gates)

    def _pace_of(self, attempt: Attempt) -> KeyPace:
        if self.run is not None:
            return self.run
        if not attempt.holds:
            attempt.holds = self._gates_for(attempt.task)
        pace = attempt.holds[0]
        assert isinstance(pace, KeyPace)
        return pace

    def _pace(self, key: str) -> KeyPace:
        pace = self.paces.get(key)
        if pace is None:
            pace = self.paces[key] = self._new_pace(key)
        return pace

    def _label(self, key: str) -> str:
        """How a key is shown (pause reasons) and kept (``learned``, in heartbeats).

        A host from :func:`~messor.run.limits.by_host` as it is; any other key
        may be an API key or a tenant's secret, so only a digest of it leaves
        the run: ``key#3f2a9c01d4``.
        """
        if self.keyed is not None and self.keyed.key is by_host:
            return key
        return "key#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]

    def _new_pace(self, key: str | None, successes: deque[float] | None = None) -> KeyPace:
        concurrency = None
        now = time.monotonic()
        if self.adaptive is not None:
            ceiling = float(self.adaptive.ceiling or self.cap)
            concurrency = Knob(
                self.adaptive.first(ceiling), floor=1.0, ceiling=ceiling, beta=CONCURRENCY_BETA
            )
        label = None if key is None else self._label(key)
        pace = KeyPace(label, concurrency, successes)
        learned = self._learned.get(label or "", {})
        if "rate" in learned:
            pace.rate.resume_at(learned["rate"], now)
        if concurrency is not None and "concurrency" in learned:
            concurrency.resume_at(learned["concurrency"], now)
        return pace
