"""Pacing against throttling APIs: Messor next to tenacity and aiometer, in one run.

    .venv/bin/python benchmarks/pacing.py                  # 2,000 tasks a scenario, ~15 min
    .venv/bin/python benchmarks/pacing.py --quick          # 400 tasks a scenario, ~3 min
    .venv/bin/python benchmarks/pacing.py -s b --plot docs/pacing.svg

Each contender runs against its own tests/api_server.py in a child process
(so the server's CPU is not counted) on loopback:

  (a) 50 requests/s per token bucket, 429 with ``Retry-After: 2`` beyond it;
      32 threads, nothing configured but ``retry=5``.
  (b) the same API, whose quota drops to 20/s halfway (after tasks/100 s):
      Messor with adaptive concurrency, next to (a)'s configuration.
  (c) an LLM-like API: each call 0.5-3 s, 529 "overloaded" (no Retry-After)
      beyond 120 calls in flight; AsyncExecutor at 200 (also with backoff=1,
      the cookbook's retry waits), and adaptive.

(a) and (b) answer accepted requests after ``--latency`` (50 ms), as a nearby
API does. The baselines are what a careful user writes by hand: a
ThreadPoolExecutor whose tasks retry with tenacity as the OpenAI cookbook
does (``wait_random_exponential(min=1, max=60)``, ``stop_after_attempt(6)``),
the same sleeping the ``Retry-After`` a 429 names, and ``aiometer`` told the
documented quota (``max_per_second=50``) with the same tenacity retries.

Columns, from the server's log: done (ids answered 200, % of tasks), 429/529
(answers declining a request for load), late (those after the first 5 s, %
of tasks), in window (requests sent inside a Retry-After window the server
had announced: after its 429 went out, before the time it named), told ago
(the longest its key had been told to wait when one of those was sent: a
few milliseconds is a request already on its way), wall seconds, x ideal
(wall / (tasks / quota)), CPU (this process's CPU seconds, every thread).
Async contenders use aiohttp: httpx's connection pool spends CPU quadratic in
its connections (encode/httpx#3215), which would be counted against them.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.*

import aiohttp
import aiometer
import requests
import tenacity
from pacing_plot import Panel, Series, write_svg

import messor
from messor import AsyncExecutor, FunctionTask, LocalThreadedExecutor
from messor.run.harvest import Harvest
from tests.api_server import ApiConfig, ApiProcess, Entry

LATE = 5.0  # seconds after the first request: throttles before are the price of learning
# The OpenAI cookbook's retries: exponential backoff with full jitter, six attempts in all.
COOKBOOK_WAIT = tenacity.wait_random_exponential(min=1, max=60)
COOKBOOK_STOP = tenacity.stop_after_attempt(6)


class Probe:
    """What the client side saw: attempts running now, sampled over time for the plot."""

    def __init__(self) -> None:
        self.running = 0
        self.lock = threading.Lock()
        #: (time.monotonic(), attempts running, Messor's concurrency limit, Messor's start rate)
        self.samples: list[tuple[float, int, float | None, float | None]] = []
        self.pacing: Callable[[], tuple[float | None, float | None]] | None = None

    @contextlib.contextmanager
    def attempt(self) -> Iterator[dict[str, str]]:
        """Count an attempt running; yields the header that stamps when it was sent."""
        with self.lock:
            self.running += 1
        try:
            yield {"X-Sent-At": repr(time.monotonic())}
        finally:
            with self.lock:
                self.running -= 1

    @contextlib.contextmanager
    def sampling(self, every: float = 0.1) -> Iterator[None]:
        done = threading.Event()

        def sample() -> None:
            while not done.wait(every):
                limit, rate = self.pacing() if self.pacing is not None else (None, None)
                self.samples.append((time.monotonic(), self.running, limit, rate))

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


@dataclass
class Scenario:
    name: str
    title: str
    config: ApiConfig
    tasks: int
    ideal: float
    contenders: list[tuple[str, Callable[[str, int, Probe], object]]] = field(default_factory=list)


@dataclass
class Row:
    contender: str
    tasks: int
    ideal: float
    wall: float
    cpu: float
    log: list[Entry]
    probe: Probe
    notes: str = ""

    def cells(self) -> str:
        done = len({entry.path for entry in self.log if entry.status == 200})
        declined = [entry for entry in self.log if entry.status in (429, 503, 529)]
        first = min((entry.arrived for entry in self.log), default=0.0)
        late = sum(entry.arrived - first > LATE for entry in declined)
        ages = [entry.window_age for entry in self.log if entry.window_age is not None]
        oldest = f"{max(ages) * 1000:,.0f} ms" if ages else "-"
        return (f"{self.contender:44} {done / self.tasks:7.1%} {len(declined):8,} "
                f"{late / self.tasks:6.1%} {len(ages):9,} {oldest:>9} {self.wall:7.1f} "
                f"{self.wall / self.ideal:6.2f}x {self.cpu:6.1f}")  # fmt: skip


HEADER = (f"{'contender':44} {'done':>7} {'429/529':>8} {'late':>6} {'in window':>9} "
          f"{'told ago':>9} {'wall s':>7} {'x ideal':>7} {'CPU s':>6}")  # fmt: skip


def measure(scenario: Scenario, name: str, run: Callable[[str, int, Probe], object]) -> Row:
    with ApiProcess(scenario.config) as api:
        probe = Probe()
        cpu, started = time.process_time(), time.perf_counter()
        with probe.sampling():
            notes = run(api.url, scenario.tasks, probe)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        log = api.log()
    row = Row(name, scenario.tasks, scenario.ideal, wall, cpu, log, probe, str(notes or ""))
    print(row.cells(), flush=True)
    if row.notes:
        print(f"{'':46}{row.notes}", flush=True)
    return row


# The task every contender runs: GET one item, raise for anything but 2xx.

_session = threading.local()


def fetch(url: str, probe: Probe) -> None:
    session = getattr(_session, "session", None)
    if session is None:
        session = _session.session = requests.Session()
    with probe.attempt() as stamp:
        session.get(url, headers=stamp, timeout=60).raise_for_status()


async def afetch(client: aiohttp.ClientSession, url: str, probe: Probe) -> None:
    with probe.attempt() as stamp:
        async with client.get(url, headers=stamp) as response:
            await response.read()
            response.raise_for_status()


def new_client() -> aiohttp.ClientSession:
    """aiohttp rather than httpx: httpx's pool costs CPU quadratic in connections (#3215)."""
    no_limit = aiohttp.TCPConnector(limit=0)
    return aiohttp.ClientSession(connector=no_limit, timeout=aiohttp.ClientTimeout(total=60))


def wait_retry_after(state: tenacity.RetryCallState) -> float:
    """Sleep what a 429 names in ``Retry-After``, else the cookbook's random exponential."""
    error = state.outcome.exception() if state.outcome else None
    response = getattr(error, "response", None)
    named = response.headers.get("Retry-After") if response is not None else None
    return float(named) if named else COOKBOOK_WAIT(state)


# Messor.


def memory_file() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='messor-pacing-')}/harvest.db"


def report_notes(report: messor.RunReport) -> str:
    return (f"Messor: completed {report.completed}, failed {report.failed}, "
            f"throttled {report.throttled}, paused {report.paused_seconds:.1f} s")  # fmt: skip


def messor_threads(concurrency: int | messor.Adaptive) -> Callable[[str, int, Probe], object]:
    def run(url: str, count: int, probe: Probe) -> str:
        tasks = [FunctionTask(f"item-{n}", fetch, f"{url}/items/{n}", probe) for n in range(count)]
        executor = LocalThreadedExecutor(tasks, memory_file(), concurrency, retry=5, progress=False)
        watch(executor, probe)
        return report_notes(executor.run())

    return run


def messor_async(
    concurrency: int | messor.Adaptive, backoff: float = 0.0
) -> Callable[[str, int, Probe], object]:
    def run(url: str, count: int, probe: Probe) -> str:
        async def main() -> messor.RunReport:
            async with new_client() as client:
                tasks = [FunctionTask(f"item-{n}", afetch, client, f"{url}/items/{n}", probe)
                         for n in range(count)]  # fmt: skip
                executor = AsyncExecutor(
                    tasks, memory_file(), concurrency, retry=5, backoff=backoff, progress=False
                )
                watch(executor, probe)
                return await executor.run_async()

        return report_notes(asyncio.run(main()))

    return run


def watch(executor: messor.Executor, probe: Probe) -> None:
    """Let ``probe`` sample the pacing of the harvest that ``executor.run()`` makes."""
    new_harvest = executor.new_harvest

    def watched() -> Harvest:
        harvest = new_harvest()

        def pacing() -> tuple[float | None, float | None]:
            try:
                state = harvest.pacing_state()
            except RuntimeError:  # the run loop changed a dict while this thread read it
                return None, None
            return state.concurrency, state.rate

        probe.pacing = pacing
        return harvest

    executor.new_harvest = watched  # type: ignore[method-assign]


# Baselines.


def tenacity_threads(
    threads: int, wait: Callable[[tenacity.RetryCallState], float]
) -> Callable[[str, int, Probe], object]:
    def run(url: str, count: int, probe: Probe) -> None:
        retrying = tenacity.retry(wait=wait, stop=COOKBOOK_STOP, reraise=True)(fetch)

        def one(n: int) -> None:
            with contextlib.suppress(requests.RequestException):
                retrying(f"{url}/items/{n}", probe)

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(count)))

    return run


def tenacity_async(at_once: int) -> Callable[[str, int, Probe], object]:
    def run(url: str, count: int, probe: Probe) -> None:
        async def main() -> None:
            gate = asyncio.Semaphore(at_once)
            retrying = tenacity.retry(wait=COOKBOOK_WAIT, stop=COOKBOOK_STOP, reraise=True)(afetch)
            async with new_client() as client:

                async def one(n: int) -> None:
                    async with gate:
                        with contextlib.suppress(aiohttp.ClientError):
                            await retrying(client, f"{url}/items/{n}", probe)

                await asyncio.gather(*(one(n) for n in range(count)))

        asyncio.run(main())

    return run


def aiometer_async(at_once: int, per_second: float | None) -> Callable[[str, int, Probe], object]:
    def run(url: str, count: int, probe: Probe) -> None:
        async def main() -> None:
            retrying = tenacity.retry(wait=COOKBOOK_WAIT, stop=COOKBOOK_STOP, reraise=True)(afetch)
            async with new_client() as client:

                async def one(n: int) -> None:
                    with contextlib.suppress(aiohttp.ClientError):
                        await retrying(client, f"{url}/items/{n}", probe)

                jobs = [functools.partial(one, n) for n in range(count)]
                await aiometer.run_all(jobs, max_at_once=at_once, max_per_second=per_second)

        asyncio.run(main())

    return run


# The scenarios.


def scenarios(count: int, latency: float) -> list[Scenario]:
    drop_at = count / 2 / 50  # half the tasks done at 50/s, the rest at 20/s
    adaptive_threads = messor.Adaptive(ceiling=32)
    a = Scenario(
        "a",
        f"(a) 50 req/s, 429 + Retry-After: 2; {count:,} tasks, 32 threads, retry=5",
        ApiConfig(rate=50, retry_after=2, latency=latency),
        count,
        count / 50,
    )
    a.contenders = [
        ("Messor, 32 threads", messor_threads(32)),
        ("threads + tenacity (cookbook)", tenacity_threads(32, COOKBOOK_WAIT)),
        ("threads + tenacity sleeping Retry-After", tenacity_threads(32, wait_retry_after)),
        ("aiometer 50/s, 32 at once + tenacity", aiometer_async(32, 50)),
    ]
    b = Scenario(
        "b",
        f"(b) quota 50/s then 20/s from {drop_at:g} s; {count:,} tasks, 32 threads, retry=5",
        ApiConfig(rate=50, retry_after=2, latency=latency, rate_changes=((drop_at, 20.0),)),
        count,
        drop_at + (count - 50 * drop_at) / 20,
    )
    b.contenders = [
        ("Messor, adaptive <= 32 threads", messor_threads(adaptive_threads)),
        ("Messor, 32 threads", messor_threads(32)),
        ("threads + tenacity sleeping Retry-After", tenacity_threads(32, wait_retry_after)),
        ("aiometer 50/s, 32 at once + tenacity", aiometer_async(32, 50)),
    ]
    cap, mean = 120, (0.5 + 3.0) / 2
    c = Scenario(
        "c",
        f"(c) LLM-like: 0.5-3 s a call, 529 beyond {cap} in flight; {count:,} tasks, 200 at once",
        ApiConfig(max_in_flight=cap, overload_status=529, latency=(0.5, 3.0)),
        count,
        count * mean / cap,
    )
    c.contenders = [
        ("Messor AsyncExecutor, 200", messor_async(200)),
        ("Messor AsyncExecutor, 200, backoff=1", messor_async(200, backoff=1.0)),
        ("Messor AsyncExecutor, adaptive <= 200", messor_async(messor.Adaptive(ceiling=200))),
        ("asyncio, 200 at once + tenacity (cookbook)", tenacity_async(200)),
        ("aiometer 200 at once + tenacity (cookbook)", aiometer_async(200, None)),
    ]
    return [a, b, c]


def plot(row: Row, config: ApiConfig, path: Path) -> None:
    """Rate and concurrency over time of one run of (b), with the server's limit."""
    first = min(entry.arrived for entry in row.log)
    end = max(entry.arrived for entry in row.log) - first
    seconds = int(end) + 1
    accepted, declined = [0] * seconds, [0] * seconds
    for entry in row.log:
        bins = accepted if entry.status == 200 else declined
        bins[int(entry.arrived - first)] += 1
    limit = [(0.0, config.rate or 0.0)]
    for at, rate in config.rate_changes:
        limit += [(at, limit[-1][1]), (at, rate)]
    limit.append((end, limit[-1][1]))
    ok = [(t + 0.5, float(n)) for t, n in enumerate(accepted)]
    throttled = [(t + 0.5, float(n)) for t, n in enumerate(declined)]
    rate_series = [
        Series("server's quota (requests/s)", limit, "#444", dashed=True),
        Series("answered 200 per second", ok, "#1f77b4"),
        Series("answered 429 per second", throttled, "#d62728", width=1.2),
    ]
    samples = [(t - first, n, limit, rate) for t, n, limit, rate in row.probe.samples if t >= first]
    learned = [(t, rate) for t, _, _, rate in samples if rate is not None]
    if learned:
        rate_series.append(Series("Messor's start rate", learned, "#2ca02c"))
    concurrency = [
        Series("attempts running", [(t, float(n)) for t, n, _, _ in samples], "#9467bd", width=1.2),
    ]
    limits = [(t, limit) for t, _, limit, _ in samples if limit is not None]
    if limits:
        concurrency.insert(0, Series("Messor's concurrency limit", limits, "#ff7f0e"))
    panels = [
        Panel(f"{row.contender}: rate", "requests per second", rate_series),
        Panel(f"{row.contender}: concurrency", "attempts at once", concurrency),
    ]
    write_svg(path, panels, "seconds since the first request")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="400 tasks a scenario, not 2,000")
    parser.add_argument("-n", "--tasks", type=int, help="tasks a scenario (2000; 400 with --quick)")
    parser.add_argument("-s", "--scenarios", default="abc", help="which to run (abc)")
    parser.add_argument("--latency", type=float, default=0.05, help="(a), (b): seconds (0.05)")
    parser.add_argument("--plot", type=Path, help="draw (b)'s first Messor run into this SVG")
    options = parser.parse_args()
    count = options.tasks or (400 if options.quick else 2000)
    for scenario in scenarios(count, options.latency):
        if scenario.name not in options.scenarios:
            continue
        print(f"\n{scenario.title}; ideal {scenario.ideal:.1f} s\n{HEADER}", flush=True)
        rows = [measure(scenario, name, run) for name, run in scenario.contenders]
        if scenario.name == "b" and options.plot:
            plot(rows[0], scenario.config, options.plot)
            print(f"plot of {rows[0].contender!r} written to {options.plot}")


if __name__ == "__main__":
    main()
