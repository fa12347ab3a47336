"""Against a server with a capacity (declining with a bare 529 what it cannot take at once), an
adaptive run finds that capacity fast and stays near it.

The real run loop (:func:`messor.executors.base.drive` and :class:`Harvest`) drives attempts
against a simulated LLM-like API, on a simulated clock: every figure here is deterministic, and
none is timed."""

from __future__ import annotations

import heapq
import itertools
import random
import time
import types
from dataclasses import dataclass, field

import pytest

from messor import Adaptive, FunctionTask, InProcessMemory, Limit, RunOptions
from messor.executors.base import drive
from messor.plugin import Attempt, Harvest
from messor.run import harvest as harvest_module
from messor.run import pacing, waiting
from messor.run.attempt import Outcome
from messor.run.throttling import Throttle


class Clock:
    """Simulated seconds, for the modules of the run loop that read ``time.monotonic``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def namespace(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(
            monotonic=lambda: self.now, time=time.time, perf_counter=time.perf_counter
        )


@dataclass
class Server:
    """An LLM-like API: each call takes ``latency`` seconds (uniform); beyond ``capacity`` calls
    at once it answers 529 at once (in ``decline_latency``), naming no time."""

    capacity: int = 120
    latency: tuple[float, float] = (0.5, 3.0)
    decline_latency: float = 0.002
    seed: int = 15
    running: int = 0
    declined: int = 0
    answered: int = 0
    random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)


class SimulatedWorkers:
    """Workers (as :func:`drive` sees them) whose attempts are calls to ``server``, each
    answered at a simulated time; waiting for outcomes moves the clock on."""

    def __init__(self, server: Server, clock: Clock, window: int) -> None:
        self.server, self.clock, self.window = server, clock, window
        self.in_flight = 0
        self._answers: list[tuple[float, int, Outcome]] = []
        self._order = itertools.count()
        self.samples: list[tuple[float, int]] = []  # (time, calls the server is answering)

    def submit(self, attempt: Attempt) -> None:
        self.in_flight += 1
        server, now = self.server, self.clock.now
        if server.running >= server.capacity:
            server.declined += 1
            outcome = Outcome(attempt, ok=False, error="529 overloaded", error_type=OSError,
                              throttle=Throttle(None, 529))  # fmt: skip
            at = now + server.decline_latency
        else:
            server.running += 1
            outcome = Outcome(attempt, ok=True, result_json="null")
            at = now + server.random.uniform(*server.latency)
        heapq.heappush(self._answers, (at, next(self._order), outcome))

    def outcomes(self, timeout: float | None) -> list[Outcome]:
        if not self._answers or (timeout is not None and timeout <= 0):
            if timeout is not None and timeout > 0:
                self.clock.now += timeout
            found = self._due()
            if not found and timeout == 0:
                self.clock.now += 0.001  # the loop asks again at once: let time pass
            return found
        first = self._answers[0][0]
        self.clock.now = max(self.clock.now, min(first, self.clock.now + (timeout or first)))
        return self._due()

    def _due(self) -> list[Outcome]:
        found = []
        while self._answers and self._answers[0][0] <= self.clock.now:
            outcome = heapq.heappop(self._answers)[2]
            if outcome.ok:
                self.server.running -= 1
                self.server.answered += 1
            found.append(outcome)
        self.samples.append((self.clock.now, self.server.running))
        return found

    def recall(self) -> list[Attempt]:
        return []  # an event loop starts what it is handed at once

    def gave_up(self, attempt: Attempt) -> None:
        self.in_flight -= 1

    def came_back(self, outcome: Outcome) -> None:
        pass


@dataclass
class Run:
    """What a simulated run did."""

    seconds: float
    completed: int
    failed: int
    declined: int
    #: (seconds since the start, calls the server was answering)
    busy: list[tuple[float, int]]

    def busy_at(self, second: float) -> int:
        """Calls the server was answering at ``second``."""
        return next((n for t, n in reversed(self.busy) if t <= second), 0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    for module in (harvest_module, waiting, pacing):
        monkeypatch.setattr(module, "time", clock.namespace())
    return clock


def simulate(
    clock: Clock, options: RunOptions, tasks: int = 2000, server: Server | None = None
) -> Run:
    """``tasks`` calls to ``server`` (:class:`Server`'s defaults: scenario (c) of the pacing
    benchmark), run by the real run loop with ``options``."""
    server = server or Server()
    work = [FunctionTask(f"call-{n}", print) for n in range(tasks)]
    assert isinstance(options.max_concurrency, int)
    workers = SimulatedWorkers(server, clock, options.max_concurrency)
    begun = clock.now
    harvest = Harvest(work, InProcessMemory(), options)
    with harvest:
        drive(harvest, workers)
    busy = [(t - begun, n) for t, n in workers.samples]
    report = harvest.report
    return Run(clock.now - begun, report.completed, report.failed, server.declined, busy)


def adaptive(ceiling: int = 200) -> RunOptions:
    return RunOptions(max_concurrency=Adaptive(ceiling=ceiling), retry=5, progress=False)


IDEAL = 2000 * 1.75 / 120  # scenario (c): tasks x mean call / calls at once


def test_an_adaptive_run_reaches_an_llm_apis_capacity_within_the_issues_target(
    clock: Clock,
) -> None:
    """Scenario (c): 0.5-3 s a call, 529 beyond 120 at once, adaptive up to 200."""
    run = simulate(clock, adaptive(200))
    assert (run.completed, run.failed) == (2000, 0)
    assert run.seconds <= 1.2 * IDEAL
    assert run.busy_at(4) >= 90  # near the capacity within a few calls' time
    assert run.declined <= 0.05 * 2000


def test_a_capacity_signal_sets_no_start_rate(clock: Clock) -> None:
    """A bare 529 says "too many at once", not "too many a second": only concurrency falls."""
    options = adaptive(200)
    work = [FunctionTask(f"call-{n}", print) for n in range(600)]
    workers = SimulatedWorkers(Server(), clock, 200)
    harvest = Harvest(work, InProcessMemory(), options)
    with harvest:
        drive(harvest, workers)
    assert harvest.report.throttled > 0
    state = harvest.pacing_state()
    assert state.rate is None
    assert state.concurrency is not None
    assert state.concurrency < 130


def test_an_adaptive_run_against_a_small_capacity_declines_few_and_fails_none(
    clock: Clock,
) -> None:
    """The start at a quarter of the ceiling costs one burst of 529s against a small API."""
    run = simulate(clock, adaptive(200), tasks=500, server=Server(capacity=10))
    assert (run.completed, run.failed) == (500, 0)
    assert run.seconds <= 1.2 * 500 * 1.75 / 10
    assert run.declined <= 0.3 * 500  # in its first second


def test_a_limit_no_server_cut_is_not_handed_to_the_next_run() -> None:
    # Still in its slow start: a next run resumed there would climb slower than it starts.
    pacer = pacing.Pacer((), Adaptive(start=4, ceiling=64), cap=64)
    assert pacer.learned(time.monotonic()) == {}


def test_what_a_run_hands_on_is_bounded_to_the_keys_cut_last() -> None:
    limit = Limit(concurrency=2, key=lambda task: "unused")
    pacer = pacing.Pacer((limit,), Adaptive(start=4, ceiling=64), cap=64)
    now = time.monotonic()
    keys = [f"tenant-{n}" for n in range(pacing.LEARNED_KEYS + 50)]
    for n, key in enumerate(keys):  # each key cut once, one second after the one before
        attempt = Attempt(key, FunctionTask(key, print))
        attempt.started = now - 1
        pacer._pace(key).congestion(attempt, now + n, rate=False)
    learned = pacer.learned(now + 1000)
    assert set(learned) == {pacer._label(key) for key in keys[50:]}
