"""Keyed limits: per host (or API key, model), at most so many running, so many starts a second,
so many tokens a minute; exact within a run, several at once, and a blocked key never holds up
the others. On threads and on asyncio."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import defaultdict
from typing import Any

import pytest

import messor
from messor import AsyncExecutor, InProcessMemory, Limit, LocalThreadedExecutor, by_host
from messor.errors import ConfigurationError
from messor.run.limits import LimitGate


class Log:
    """When each task started and ended, by key, and how many of a key ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.running: dict[str, int] = defaultdict(int)
        self.most: dict[str, int] = defaultdict(int)
        self.most_overall = 0

    def begin(self, key: str) -> None:
        with self.lock:
            self.starts[key].append(time.monotonic())
            self.running[key] += 1
            self.most[key] = max(self.most[key], self.running[key])
            self.most_overall = max(self.most_overall, sum(self.running.values()))

    def end(self, key: str) -> None:
        with self.lock:
            self.running[key] -= 1


class Page:
    """A task with a ``url`` (what by_host reads), doing ``seconds`` of work."""

    def __init__(self, url: str, log: Log, seconds: float = 0.02, tokens: float = 0) -> None:
        self.url, self.log, self.seconds, self.tokens = url, log, seconds, tokens

    @property
    def host(self) -> str:
        return by_host(self)

    def get_id(self) -> str:
        return self.url

    def __call__(self) -> str:
        self.log.begin(self.host)
        try:
            time.sleep(self.seconds)
            if self.tokens:
                messor.report_usage(tokens=self.tokens)
            return self.url
        finally:
            self.log.end(self.host)


class AsyncPage(Page):
    async def __call__(self) -> str:  # type: ignore[override]
        self.log.begin(self.host)
        try:
            await asyncio.sleep(self.seconds)
            if self.tokens:
                messor.report_usage(tokens=self.tokens)
            return self.url
        finally:
            self.log.end(self.host)


KINDS = [
    pytest.param(LocalThreadedExecutor, Page, id="threads"),
    pytest.param(AsyncExecutor, AsyncPage, id="asyncio"),
]


def most_in_a_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)))


@pytest.mark.parametrize(("executor", "page"), KINDS)
def test_concurrency_per_host_is_never_exceeded_and_hosts_run_side_by_side(
    executor: type[messor.Executor], page: type[Page]
) -> None:
    log = Log()
    tasks = [page(f"https://{h}.example/{n}", log) for n in range(12) for h in "abc"]
    limit = Limit(concurrency=2, key=by_host)
    report = executor(tasks, InProcessMemory(), 16, limits=[limit]).run()
    assert report.completed == 36
    assert dict(log.most) == {"a.example": 2, "b.example": 2, "c.example": 2}
    assert log.most_overall > 2


@pytest.mark.parametrize(("executor", "page"), KINDS)
def test_several_limits_combine(executor: type[messor.Executor], page: type[Page]) -> None:
    log = Log()
    tasks = [page(f"https://{h}.example/{n}", log) for h in "abc" for n in range(8)]
    limits = [Limit(concurrency=2, key=by_host), Limit(concurrency=3)]
    report = executor(tasks, InProcessMemory(), 16, limits=limits).run()
    assert report.completed == 24
    assert max(log.most.values()) == 2
    assert log.most_overall == 3


@pytest.mark.parametrize(("executor", "page"), KINDS)
def test_starts_per_host_stay_within_the_rate(
    executor: type[messor.Executor], page: type[Page]
) -> None:
    log = Log()
    tasks = [page(f"https://{h}.example/{n}", log, 0.0) for n in range(20) for h in "ab"]
    report = executor(tasks, InProcessMemory(), 16, limits=[Limit(rate="20/s", key=by_host)]).run()
    assert report.completed == 40
    for times in log.starts.values():
        # Evenly spaced at 20/s: at most 10 in half a second (and a little for jitter).
        assert most_in_a_window(times, 0.5) <= 10 + 3
        assert max(times) - min(times) >= 19 / 20 - 0.05


def test_a_host_held_back_by_its_limit_never_holds_up_other_hosts() -> None:
    log = Log()
    slow = [Page(f"https://slow.example/{n}", log, 0.0) for n in range(4)]
    others = [Page(f"https://h{n}.example/", log, 0.0) for n in range(30)]
    report = LocalThreadedExecutor(
        [*slow, *others], InProcessMemory(), 4, limits=[Limit(rate="2/s", key=by_host)]
    ).run()
    assert report.completed == 34
    third_slow = sorted(log.starts["slow.example"])[2]  # a second after the first
    other_starts = [
        t for host, times in log.starts.items() if host != "slow.example" for t in times
    ]
    assert max(other_starts) < third_slow


def test_tokens_are_debited_as_tasks_report_them() -> None:
    log = Log()
    tasks = [Page(f"https://llm.example/{n}", log, 0.01, tokens=500) for n in range(12)]
    started_at = time.monotonic()
    report = LocalThreadedExecutor(
        tasks,
        InProcessMemory(),
        8,
        limits=[Limit(tokens=2000)],  # 2,000 a second
    ).run()
    assert report.completed == 12
    assert report.usage == {"tokens": 6000}
    starts = sorted(log.starts["llm.example"])
    for count, at in enumerate(starts, start=1):
        # The bucket (a second's worth) plus what refilled; one task may probe ahead.
        assert count * 500 <= 2000 + 2000 * (at - started_at) + 500


def test_a_key_function_that_returns_no_str_stops_the_run_naming_the_limit() -> None:
    log = Log()
    limit = Limit(concurrency=1, key=lambda task: 7)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match=r"returned int 7 .*keys must be str"):
        LocalThreadedExecutor(
            [Page("https://a.example/", log)], InProcessMemory(), limits=limit
        ).run()


# -- a key's account, on a clock of its own -----------------------------------------------------


def test_a_token_account_runs_one_task_until_one_reports_then_reserves_the_average() -> None:
    gate = LimitGate(Limit(tokens="600/m"))  # 10 a second, 600 deep
    assert gate.wait(0.0) == 0.0
    gate.start(0.0)
    assert gate.wait(0.0) == math.inf  # what a task costs is not known yet
    gate.end(200, 1.0)  # 600 - 200 = 400 left
    assert gate.wait(1.0) == 0.0
    gate.start(1.0)
    assert gate.wait(1.0) == 0.0  # room for two at 200 each
    gate.start(1.0)
    assert gate.wait(1.0) == pytest.approx((600 - 400) / 10)  # a third: 20 s of refill
    gate.end(1000, 2.0)  # far more than the average: the balance goes below zero
    gate.end(200, 2.0)
    assert gate.wait(2.0) > 60


def test_an_attempt_that_reports_no_tokens_leaves_the_account_running_one_at_a_time() -> None:
    # A 429 or a timeout reports nothing: what a task costs is still unknown,
    # so the account must not take it for a task that cost nothing.
    gate = LimitGate(Limit(tokens="600/m"))
    gate.start(0.0)
    gate.end(None, 1.0)
    gate.start(1.0)
    assert gate.wait(1.0) == math.inf
    gate.end(300, 2.0)
    assert gate.wait(2.0) == 0.0  # one has reported: each start reserves its cost


def test_a_rate_account_spaces_starts_evenly() -> None:
    gate = LimitGate(Limit(rate="600/m"))
    gate.start(0.0)
    assert gate.wait(0.0) == pytest.approx(0.1)
    assert gate.wait(0.1) == 0.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"rate": "fast"}, "Limit rate 'fast' is not a rate"),
        ({"concurrency": 0}, "Limit concurrency must be an int >= 1"),
        ({"tokens": -5}, "Limit tokens must be more than 0"),
        ({"key": "host"}, "Limit key must be a function task -> str"),
    ],
)
def test_a_bad_limit_is_refused_naming_what_to_write(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Limit(**arguments)


def test_limits_must_be_limits() -> None:
    with pytest.raises(ConfigurationError, match=r"limits must be a messor\.Limit"):
        messor.RunOptions(limits=["rate=5/s"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task", "host"),
    [
        (messor.FunctionTask("t", print, "https://Example.ORG:443/a?b"), "example.org"),
        (messor.FunctionTask("t", print, "http://example.org:8080/"), "example.org:8080"),
        (messor.task(print, "https://api.example.org/v1"), "api.example.org"),
    ],
)
def test_by_host_reads_the_url_of_a_task(task: object, host: str) -> None:
    assert by_host(task) == host


def test_by_host_reads_a_url_attribute_or_get_url() -> None:
    class WithGetUrl:
        def get_url(self) -> str:
            return "https://b.example/x"

    assert by_host(WithGetUrl()) == "b.example"
    with pytest.raises(ConfigurationError, match="by_host found no URL"):
        by_host(messor.FunctionTask("t", print, 42))
