"""A server's "slow down" is obeyed: the run pauses for the Retry-After it names, burns no retry,
takes back what it queued, learns the pace the server accepts, and adapts its concurrency.

Behaviour against tests/api_server.py (real requests and httpx clients; its log says when each
request was sent and whether that was inside a Retry-After window it had announced), and the
algorithm itself on a simulated clock."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

import messor
from messor import (
    Adaptive,
    AsyncExecutor,
    FunctionTask,
    InProcessMemory,
    LocalThreadedExecutor,
    SQLiteMemory,
    Throttled,
)
from messor.plugin import Attempt, Harvest
from messor.run.heartbeat import read_beats
from messor.run.knobs import CONCURRENCY_BETA, HORIZON, RATE_BETA, STEADY_BETA, KeyPace, Knob
from messor.run.pacing import Pacer, PacingState
from messor.run.throttling import Throttle
from tests.api_server import ApiConfig, ApiServer, Entry
from tests.test_readme import code_block_after

#: Time a client may take to hear of a 429 while it sends what it had already started.
GRACE = 0.25


def fetch(url: str) -> Any:
    """A task as users write them: requests, raise_for_status; says when it sent (X-Sent-At)."""
    answer = requests.get(url, headers={"X-Sent-At": repr(time.monotonic())}, timeout=30)
    answer.raise_for_status()
    return answer.json()


async def fetch_async(url: str) -> Any:
    async with httpx.AsyncClient() as client:
        answer = await client.get(url, headers={"X-Sent-At": repr(time.monotonic())})
        answer.raise_for_status()
        return answer.json()


def sent_late_in_a_window(log: list[Entry]) -> list[Entry]:
    """Requests sent inside a Retry-After window later than GRACE after it opened: sent by a
    client that had heard of the 429 (or should have)."""
    opened = sorted(e.answered for e in log if e.status in (429, 503, 529) and e.retry_after)
    late = []
    for entry in log:
        if entry.in_window and entry.sent is not None:
            last = max((t for t in opened if t <= entry.sent), default=-math.inf)
            if entry.sent - last > GRACE:
                late.append(entry)
    return late


EXECUTORS = [
    pytest.param(LocalThreadedExecutor, fetch, id="threads-requests"),
    pytest.param(AsyncExecutor, fetch_async, id="asyncio-httpx"),
]


# -- the pause ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("executor", "function"), EXECUTORS)
def test_a_429_with_retry_after_pauses_the_run_and_burns_no_retry(
    executor: type[messor.Executor], function: Callable[[str], Any]
) -> None:
    with ApiServer(ApiConfig(rate=10, retry_after=1.0, latency=0.05)) as api:
        tasks = [FunctionTask(f"item-{n}", function, f"{api.url}/items/{n}") for n in range(40)]
        memory = InProcessMemory()
        report = executor(tasks, memory, 8, retry=0, progress=False).run()
        log = api.log()
    assert (report.completed, report.failed, report.retried) == (40, 0, 0)
    refused = [e for e in log if e.status == 429]
    assert refused, "the server never throttled: the test tests nothing"
    assert report.throttled == len(refused)
    assert report.paused_seconds >= 1.0
    assert sent_late_in_a_window(log) == []
    assert {r.attempts for r in memory.iter_records()} == {1}


def test_a_retry_after_as_an_http_date_is_honoured_too() -> None:
    config = ApiConfig(rate=10, burst=3, retry_after=1, retry_after_date=True, latency=0.02)
    with ApiServer(config) as api:
        tasks = [FunctionTask(f"item-{n}", fetch, f"{api.url}/items/{n}") for n in range(12)]
        report = LocalThreadedExecutor(tasks, InProcessMemory(), 4, retry=0).run()
        log = api.log()
    assert (report.completed, report.throttled) == (12, len([e for e in log if e.status == 429]))
    assert report.throttled > 0
    assert sent_late_in_a_window(log) == []


def test_a_503_without_retry_after_is_still_a_failure_when_nothing_is_configured() -> None:
    """The one default that changed is a throttle that names its time."""
    with ApiServer(ApiConfig(max_in_flight=0)) as api:
        report = LocalThreadedExecutor(
            [FunctionTask("busy", fetch, f"{api.url}/items/1")], InProcessMemory(), retry=2
        ).run()
    assert (report.failed, report.retried, report.throttled) == (1, 2, 0)


def test_a_throttled_task_is_not_failed_and_keeps_its_attempt_count() -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Throttled(0.1, reason="busy")
        return "done"

    memory = SQLiteMemory(":memory:")
    report = LocalThreadedExecutor([FunctionTask("t", flaky)], memory, retry=0).run()
    assert (report.completed, report.retried, report.throttled) == (1, 0, 2)
    [record] = list(memory.iter_records())
    assert (record.status, record.result, record.attempts) == ("completed", "done", 1)
    assert calls[1] - calls[0] >= 0.1
    assert calls[2] - calls[1] >= 0.1


def test_a_task_throttled_max_throttles_times_counts_as_a_failed_attempt() -> None:
    calls: list[int] = []

    def always_throttled() -> None:
        calls.append(1)
        raise Throttled(0.0)

    memory = InProcessMemory()
    report = LocalThreadedExecutor(
        [FunctionTask("t", always_throttled)], memory, retry=1, max_throttles=3
    ).run()
    assert (report.failed, report.retried) == (1, 1)
    # Three throttles make the first attempt a failure; its retry is throttled once more.
    assert len(calls) == 4
    [(_, error)] = memory.get_failed_tasks()
    assert "Throttled" in str(error)


def test_a_throttle_without_retry_after_backs_off_and_resets_on_success() -> None:
    starts: list[float] = []

    def second_try_works() -> None:
        starts.append(time.monotonic())
        if len(starts) % 2:
            raise Throttled()  # no time named: 1 s after the first, since each success resets

    tasks = [FunctionTask(f"t{n}", second_try_works) for n in range(2)]
    report = LocalThreadedExecutor(tasks, InProcessMemory(), 1, retry=0).run()
    assert (report.completed, report.throttled) == (2, 2)
    assert starts[1] - starts[0] >= 1.0
    assert starts[3] - starts[2] >= 1.0
    assert starts[3] - starts[2] < 2.0  # not 2 s: the success between reset the backoff


def test_attempts_queued_for_threads_are_taken_back_when_a_server_pauses_the_run() -> None:
    """Nothing configured: the threads read 64 attempts ahead; a throttle must stop them."""
    starts: dict[str, list[float]] = {}
    throttled_at: list[float] = []

    def work(name: str) -> None:
        starts.setdefault(name, []).append(time.monotonic())
        if name == "t3" and not throttled_at:
            throttled_at.append(time.monotonic())
            raise Throttled(0.6)
        time.sleep(0.02)

    tasks = [FunctionTask(f"t{n}", work, f"t{n}") for n in range(12)]
    report = LocalThreadedExecutor(tasks, InProcessMemory(), 2, retry=0).run()
    assert (report.completed, report.throttled) == (12, 1)
    [at] = throttled_at
    inside = [n for n, times in starts.items() for t in times if at + 0.05 < t < at + 0.6]
    assert inside == []
    assert sum(len(times) for times in starts.values()) == 13  # each once, t3 twice


def test_threads_start_nothing_more_from_their_queue_once_a_server_throttles() -> None:
    """Quick tasks: the threads would empty their queue before the run hears of the 429."""
    starts: list[float] = []
    throttled_at: list[float] = []

    def work(n: int) -> None:
        now = time.monotonic()
        if n == 50 and not throttled_at:
            throttled_at.append(now)
            raise Throttled(0.5)
        starts.append(now)

    tasks = [FunctionTask(f"t{n}", work, n) for n in range(120)]
    report = LocalThreadedExecutor(tasks, InProcessMemory(), 4, retry=0).run()
    assert (report.completed, report.throttled) == (120, 1)
    [at] = throttled_at
    # At most what the three other threads had started in that very instant.
    assert len([t for t in starts if at < t < at + 0.5]) <= 3


# -- the algorithm, on a simulated clock ---------------------------------------------------------


def value(knob: Knob, at: float) -> float:
    found = knob.at(at)
    assert found is not None, "the knob is unlimited"
    return found


def attempt_started(at: float) -> Attempt:
    attempt = Attempt("t", FunctionTask("t", print))
    attempt.started = at
    return attempt


def test_a_throttle_cuts_the_rate_to_what_the_server_accepted_then_it_climbs_back() -> None:
    pace = KeyPace(None, None)
    for n in range(250):  # 50 per second for 5 s, all accepted
        pace.start(n / 50)
        pace.end(None, n / 50)
        pace.success(n / 50)
    assert pace.rate.at(5.0) is None  # unlimited until a server says otherwise
    pace.throttle(Throttle(1.0, 429), attempt_started(5.0), 5.0)
    assert pace.wait(5.5) == pytest.approx(0.5)  # paused
    assert pace.wait(6.0) == 0.0
    assert pace.rate.at(6.0) == pytest.approx(RATE_BETA * 50, rel=0.02)
    pace.start(6.0)
    assert pace.wait(6.0) == pytest.approx(1 / (RATE_BETA * 50), rel=0.02)  # evenly spaced
    assert pace.rate.at(6.0 + HORIZON) == pytest.approx(50, rel=0.02)  # back where it failed
    assert value(pace.rate, 6.0 + 2 * HORIZON) > 50  # then probing beyond


def test_signals_from_attempts_started_before_a_cut_do_not_cut_again() -> None:
    concurrency = Knob(10.0, floor=1, ceiling=64, beta=CONCURRENCY_BETA)
    pace = KeyPace(None, concurrency)
    for _ in range(10):
        pace.start(0.0)
    pace.throttle(Throttle(None, 529), attempt_started(0.0), 1.0)  # 10 ran: cut to 7
    cut = value(concurrency, 1.0)
    assert cut == pytest.approx(CONCURRENCY_BETA * 10)
    pace.throttle(Throttle(None, 529), attempt_started(0.5), 1.1)  # sent before the cut
    assert value(concurrency, 1.1) >= cut  # climbing back, not cut again
    pace.throttle(Throttle(None, 529), attempt_started(1.05), 1.2)  # sent after: cuts
    assert value(concurrency, 1.2) < cut


def test_a_burst_of_signals_within_one_clock_tick_cuts_once() -> None:
    """A coarse clock (15 ms on some systems) stamps a burst of starts and their 529s alike."""
    concurrency = Knob(150.0, floor=1, ceiling=200, beta=CONCURRENCY_BETA)
    pace = KeyPace(None, concurrency)
    for _ in range(120):
        pace.start(1.0)
    for _ in range(5):
        pace.throttle(Throttle(None, 529), attempt_started(1.0), 1.0)
    assert value(concurrency, 1.0) == pytest.approx(CONCURRENCY_BETA * 121)


def test_a_capacity_signal_where_the_server_said_no_before_cuts_gently() -> None:
    """A bare 529 at the level of the last one: the capacity is known, and just passed."""
    concurrency = Knob(150.0, floor=1, ceiling=200, beta=CONCURRENCY_BETA)
    pace = KeyPace(None, concurrency)
    for _ in range(120):
        pace.start(0.0)
    overloaded = Throttle(None, 529)
    pace.throttle(overloaded, attempt_started(0.5), 1.0)  # a new level: cut hard
    assert value(concurrency, 1.0) == pytest.approx(CONCURRENCY_BETA * 121)
    later = 1.0 + 3 * HORIZON  # climbed back past 121, running 120 again
    pace.throttle(overloaded, attempt_started(later - 0.5), later)
    assert value(concurrency, later) == pytest.approx(STEADY_BETA * 121)


def test_a_quota_throttle_cuts_the_rate_and_leaves_the_concurrency_alone() -> None:
    """A 429 with Retry-After says "too many a second": cutting the 3 at once that ran (50 ms
    each) to 2 would allow only 40 a second against a quota of 50."""
    concurrency = Knob(4.0, floor=1, ceiling=32, beta=CONCURRENCY_BETA)
    pace = KeyPace(None, concurrency)
    for n in range(250):  # 50 per second for 5 s, all accepted, 3 at once
        pace.start(n / 50)
        pace.end(None, n / 50)
        pace.success(n / 50)
    for _ in range(3):
        pace.start(5.0)
    pace.throttle(Throttle(2.0, 429), attempt_started(5.0), 5.0)
    assert pace.wait(7.0) == 0.0  # the pause is over
    assert pace.rate.at(7.0) == pytest.approx(RATE_BETA * 50, rel=0.02)
    assert value(concurrency, 7.0) == 32  # still in slow start: no capacity signal came


@pytest.mark.parametrize(
    ("adaptive", "start"),
    [
        (Adaptive(ceiling=200), 50),  # a quarter of the ceiling
        (Adaptive(ceiling=1000), 64),  # at most 64
        (Adaptive(ceiling=8), 4),  # at least 4
        (Adaptive(ceiling=2), 2),  # never above the ceiling
        (Adaptive(start=4, ceiling=200), 4),  # or where it is told
    ],
)
def test_adaptive_concurrency_starts_at_a_quarter_of_its_ceiling(
    adaptive: Adaptive, start: int
) -> None:
    assert adaptive.ceiling is not None
    pacer = Pacer((), adaptive, cap=adaptive.ceiling)
    assert pacer.run is not None
    assert pacer.run.concurrency is not None
    assert value(pacer.run.concurrency, 0.0) == start


def test_adaptive_concurrency_grows_by_one_per_success_until_the_first_congestion() -> None:
    pacer = Pacer((), Adaptive(start=4, ceiling=20), cap=20)
    assert pacer.run is not None
    assert pacer.run.concurrency is not None
    for n in range(30):
        pacer.run.success(float(n))
    assert value(pacer.run.concurrency, 30.0) == 20  # up to its ceiling, no further
    pacer.congestion(attempt_started(31.0), 31.0)  # a timeout, say
    assert value(pacer.run.concurrency, 31.0) < 20


class Quota:
    """A server's token bucket on a simulated clock: ``rate`` per second, a second deep."""

    def __init__(self, rate: float) -> None:
        self.rate, self.tokens, self.at = rate, rate, 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def simulate(quota: Quota, seconds: float, pace: KeyPace) -> tuple[list[float], list[float]]:
    """A client that could send 1000 requests/s, paced by ``pace``: (successes, throttles)."""
    now, ok, refused = 0.0, [], []
    while now < seconds:
        wait = pace.wait(now)
        if wait > 0:
            now += wait
            continue
        pace.start(now)
        pace.end(None, now + 0.001)
        if quota.take(now):
            pace.success(now)
            ok.append(now)
        else:
            refused.append(now)
            pace.throttle(Throttle(2.0, 429), attempt_started(now), now + 0.001)
        now += 0.001
    return ok, refused


def test_the_rate_settles_just_under_a_fixed_quota_and_is_rarely_throttled() -> None:
    ok, refused = simulate(Quota(50), 300, KeyPace(None, None))
    settled = [t for t in ok if t >= 100]
    assert 0.9 * 50 <= len(settled) / 200 <= 50
    assert len([t for t in refused if t >= 100]) <= 12  # a probe now and then


def test_a_resumed_pace_starts_from_what_the_last_run_learned() -> None:
    pacer = Pacer((), None, cap=8, learned={"": {"rate": 30.0}})
    assert pacer.run is not None
    now = time.monotonic()
    assert pacer.run.rate.at(now) == pytest.approx(30.0, rel=0.01)
    pacer.run.start(now)
    assert pacer.run.wait(now) == pytest.approx(1 / 30, rel=0.02)


# -- learned, and the state a heartbeat shows ---------------------------------------------------


class Remembering(LocalThreadedExecutor):
    """Starts each run from what ``learned`` holds (the run's heartbeat will carry it) and keeps
    the harvest, to read its pacing state."""

    learned: dict[str, dict[str, float]] | None = None
    harvest: Harvest | None = None

    def new_harvest(self) -> Harvest:
        self.harvest = Harvest(self.tasks, self.memory, self.options, learned=self.learned)
        self.report = self.harvest.report
        return self.harvest


def test_a_run_started_from_what_the_last_one_learned_is_not_throttled(tmp_path: Path) -> None:
    config = ApiConfig(rate=20, retry_after=1.0, latency=0.02)
    with ApiServer(config) as api:
        tasks = [FunctionTask(f"item-{n}", fetch, f"{api.url}/items/{n}") for n in range(30)]
        first = Remembering(tasks, InProcessMemory(), 8, retry=0)
        assert first.run().throttled > 0
        assert first.harvest is not None
        learned = first.harvest.pacing_state().learned
        assert 10 < learned[""]["rate"] <= 25
    # The same API, its bucket full again, as after the pause between two runs.
    with ApiServer(config) as api:
        tasks = [FunctionTask(f"item-{n}", fetch, f"{api.url}/items/{n}") for n in range(30, 60)]
        second = Remembering(tasks, InProcessMemory(), 8, retry=0)
        second.learned = learned
        report = second.run()
    assert (report.completed, report.throttled) == (30, 0)


class FirstState(LocalThreadedExecutor):
    """Keeps the pacing state of its run as it is built, before any attempt starts."""

    first: PacingState | None = None

    def new_harvest(self) -> Harvest:
        harvest = super().new_harvest()
        self.first = harvest.pacing_state()
        return harvest


def test_a_resumed_run_starts_from_the_concurrency_the_last_run_learned_in_its_sqlite_file(
    overloadable: ApiServer, tmp_path: Path
) -> None:
    url, path = overloadable.url, tmp_path / "harvest.db"
    tasks = [FunctionTask(f"item-{n}", fetch, f"{url}/items/{n}") for n in range(200)]
    adaptive = Adaptive(start=2, ceiling=32)
    first = FirstState(tasks[:150], SQLiteMemory(path), adaptive, retry=0)
    assert first.run().throttled > 0  # it found the server's capacity
    assert first.first is not None
    assert first.first.concurrency == 2  # nothing learned yet: the slow start
    with SQLiteMemory(path) as memory:
        [beat] = read_beats(memory)
    learned = beat["learned"][""]["concurrency"]
    assert learned > 2
    # Another process, later: the same file, the rest of the tasks.
    second = FirstState(tasks, SQLiteMemory(path), adaptive, retry=0)
    report = second.run()
    assert second.first is not None
    assert second.first.concurrency == int(learned)
    assert report.completed == 50


def test_the_pacing_state_shows_the_pause_its_reason_and_the_usage() -> None:
    """What a run's heartbeat will show, read from another thread while the run is paused."""
    executor = Remembering([], InProcessMemory(), 1)
    throttled = threading.Event()
    seen: list[PacingState] = []

    def throttled_once() -> None:
        messor.report_usage(tokens_in=10, cost=0.5)
        if not throttled.is_set():
            throttled.set()
            raise Throttled(1.0, reason="quota")

    def watch() -> None:
        throttled.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            assert executor.harvest is not None
            state = executor.harvest.pacing_state()
            if state.throttled:
                seen.append(state)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    executor.tasks = [FunctionTask("t", throttled_once)]
    before = time.time()
    executor.run()
    watcher.join()
    [state] = seen
    assert (state.throttled, state.pause_reason, state.paused_keys) == (1, "quota", 1)
    assert state.paused_until is not None
    assert before + 1.0 <= state.paused_until <= time.time() + 1.0
    assert state.usage == {"tokens_in": 10, "cost": 0.5}
    assert executor.report.usage == {"tokens_in": 20, "cost": 1.0}


# -- adaptive concurrency, against a server that refuses above its capacity -----------------------


@pytest.fixture
def overloadable() -> Iterator[ApiServer]:
    """Answers 503 (no Retry-After) above 6 requests in flight; each takes 50 ms."""
    with ApiServer(ApiConfig(max_in_flight=6, latency=0.05)) as api:
        yield api


@pytest.mark.parametrize(("executor", "function"), EXECUTORS)
def test_adaptive_concurrency_finds_the_servers_capacity_without_burning_retries(
    overloadable: ApiServer, executor: type[messor.Executor], function: Callable[[str], Any]
) -> None:
    url = overloadable.url
    tasks = [FunctionTask(f"item-{n}", function, f"{url}/items/{n}") for n in range(150)]
    report = executor(tasks, InProcessMemory(), Adaptive(start=2, ceiling=32), retry=0).run()
    log = overloadable.log()
    assert (report.completed, report.retried) == (150, 0)
    refused = [e for e in log if e.status == 503]
    assert refused, "the run never went past the capacity: the test tests nothing"
    assert report.throttled == len(refused)
    # Above the capacity only while it searched: most answers were accepted ones.
    assert len(refused) < 0.5 * len(log)


def test_max_concurrency_auto_is_adaptive_up_to_the_executors_ceiling() -> None:
    threads = LocalThreadedExecutor([], "memory://", "auto")
    assert (threads.max_concurrency, threads.adaptive) == (64, Adaptive(ceiling=64))
    coroutines = AsyncExecutor([], "memory://", adaptive=True)
    assert coroutines.max_concurrency == 1000
    assert LocalThreadedExecutor([], "memory://", 16, adaptive=True).adaptive == Adaptive(None, 16)
    two = LocalThreadedExecutor([], "memory://", 2, adaptive=Adaptive(start=4))
    assert two.adaptive == Adaptive(2, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrency": "fast"}, "max_concurrency must be an int >= 1, 'auto'"),
        ({"adaptive": "yes"}, "adaptive must be True, False, None or a messor.Adaptive"),
        ({"max_concurrency": 0, "adaptive": True}, "max_concurrency must be an int >= 1"),
    ],
)
def test_a_bad_adaptive_setting_is_refused_naming_it(options: dict[str, Any], message: str) -> None:
    with pytest.raises(messor.ConfigurationError, match=message):
        messor.RunOptions(**options)


def test_an_adaptive_start_above_its_ceiling_is_refused() -> None:
    with pytest.raises(messor.ConfigurationError, match=r"start \(8\) is above its ceiling \(4\)"):
        Adaptive(start=8, ceiling=4)


def test_the_readmes_requests_example_runs_against_a_throttling_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = code_block_after("A harvest of a REST API with requests", "python")
    with ApiServer(ApiConfig(rate=15, retry_after=1, missing=frozenset({"7"}))) as api:
        code = compile(example.replace("https://api.example.org", api.url), "README.md", "exec")
        exec(code, {"__name__": "readme"})
        log = api.log()
    completed, throttled, _ = capsys.readouterr().out.split()
    assert (int(completed), int(throttled)) == (59, len([e for e in log if e.status == 429]))
    assert int(throttled) > 0
    memory = SQLiteMemory("products.db")
    assert memory.get_statuses([f'fetch("{api.url}/products/7")']).popitem()[1] == "gave_up"
    assert sent_late_in_a_window(log) == []
