"""Messor's benchmark suite: every memory against a bare ThreadPoolExecutor, in one process.

    python3 dev.py bench                                   # everything (about 10 minutes)
    .venv/bin/python benchmarks/throughput.py --quick      # smaller N, 2 repeats
    .venv/bin/python benchmarks/throughput.py --scenarios noop io --memories sqlite

Scenarios (each figure the median of --repeats runs, interleaved with the
bare executor's so that a slow moment of the machine hits every contender):

* noop:   N = 20,000 and 100,000 no-op tasks on 8 threads;
* io:     N = 2,000 tasks of time.sleep(0.005) on 64 threads;
* resume: run() over N = 100,000 (and, for SQLite, 1,000,000) tasks all
          completed before: the time from run() to its return;
* naive:  N = 20,000 no-op tasks through a per-task-commit SQLite baseline,
          written the way a script does it, next to Messor on SQLite;
* rss:    peak RSS of 1,000,000 generated tasks (benchmarks/memory_use.py).

The Redis memory runs on a real redis-server started on a free loopback
port, the S3 memory on moto's S3 server; each is left out, with a note, if
not installed. Speed is measured here, never asserted in the tests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import messor
from messor import FunctionTask, LocalThreadedExecutor, Memory
from messor.memories.base import COMPLETED, EncodedUpdate

MEMORIES = ("sqlite", "memory", "redis", "s3")
SCENARIOS = ("noop", "io", "resume", "naive", "rss")


def noop() -> None:
    return None


def io_task() -> None:
    time.sleep(0.005)


# -- contenders ----------------------------------------------------------------------------


def bare(count: int, threads: int, work: Callable[[], None]) -> float:
    """A bare ThreadPoolExecutor, no persistence: the reference."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(count)]:
            future.result()
    return time.perf_counter() - started


def messor_run(memory: Memory, count: int, threads: int, work: Callable[[], None]) -> float:
    tasks = [FunctionTask(f"task-{n}", work) for n in range(count)]
    started = time.perf_counter()
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=threads, progress=False).run()
    elapsed = time.perf_counter() - started
    assert memory.count_by_status()[COMPLETED] == count
    return elapsed


def naive_sqlite(path: Path, count: int, threads: int) -> float:
    """What a script does by hand: one connection, one row and one commit per task."""
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, status TEXT, result TEXT)")
    conn.executemany(
        "INSERT INTO tasks VALUES (?, 'pending', NULL)", ((f"t{n}",) for n in range(count))
    )
    conn.commit()
    lock = threading.Lock()

    def task(n: int) -> None:
        noop()
        with lock:
            conn.execute(
                "UPDATE tasks SET status = 'completed', result = 'null' WHERE id = ?", (f"t{n}",)
            )
            conn.commit()

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(task, range(count)))
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def completed_store(memory: Memory, count: int) -> Memory:
    """Fill ``memory`` with ``count`` completed tasks, the way a finished run leaves it."""
    for start in range(0, count, 10_000):
        ids = [f"task-{n}" for n in range(start, min(start + 10_000, count))]
        memory.store_tasks([(i, {}) for i in ids])
        memory.record_outcomes([EncodedUpdate(i, COMPLETED, "null", None, 1) for i in ids])
    memory.flush()
    return memory


def resume(memory: Memory, count: int) -> float:
    tasks = [FunctionTask(f"task-{n}", noop) for n in range(count)]
    executor = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8, progress=False)
    started = time.perf_counter()
    report = executor.run()
    elapsed = time.perf_counter() - started
    assert (report.skipped, report.completed) == (count, 0)
    return elapsed


# -- servers -------------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A throw-away redis-server on a free loopback port; None if none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(200):
            try:
                messor.open_memory(url).close()
                break
            except messor.MemoryUnavailableError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait()


@contextmanager
def moto_server() -> Iterator[str | None]:
    """moto's S3 server on a free loopback port, with fake credentials; None without moto."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        yield None
        return
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def factories(
    names: list[str], directory: Path, redis_url: str | None, s3_endpoint: str | None
) -> dict[str, Callable[[], Memory]]:
    """A fresh, empty memory per call, for each memory measured."""
    made: dict[str, Callable[[], Memory]] = {}
    if "sqlite" in names:
        made["sqlite file"] = lambda: messor.SQLiteMemory(directory / f"{uuid.uuid4()}.db")
    if "memory" in names:
        made["in-process"] = messor.InProcessMemory
    if "redis" in names and redis_url is not None:
        made["redis-server"] = lambda: messor.open_memory(
            f"{redis_url}?namespace={uuid.uuid4().hex}"
        )
    if "s3" in names and s3_endpoint is not None:

        def s3() -> Memory:
            import boto3

            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
            return messor.open_memory(f"s3://{bucket}/harvest?endpoint_url={s3_endpoint}")

        made["s3 (moto server)"] = s3
    return made


# -- the table -----------------------------------------------------------------------------


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, int, float | None]] = []

    def add(
        self, scenario: str, name: str, samples: list[float], count: int, reference: float | None
    ) -> None:
        median = statistics.median(samples)
        self.rows.append(
            (scenario, name, median, count, None if reference is None else median / reference)
        )
        ratio = "" if reference is None else f"{median / reference:6.2f}x"
        print(
            f"  {scenario:24} {name:26} {median:9.3f} s {count / median:12,.0f}/s {ratio}",
            flush=True,
        )


def run_speed(
    table: Table, scenario: str, count: int, threads: int, work: Callable[[], None],
    made: dict[str, Callable[[], Memory]], repeats: int,
) -> None:  # fmt: skip
    times: dict[str, list[float]] = {"bare ThreadPoolExecutor": []}
    times.update({name: [] for name in made})
    for _ in range(repeats):
        times["bare ThreadPoolExecutor"].append(bare(count, threads, work))
        for name, factory in made.items():
            memory = factory()
            times[name].append(messor_run(memory, count, threads, work))
            memory.close()
    reference = statistics.median(times["bare ThreadPoolExecutor"])
    for name, samples in times.items():
        table.add(scenario, name, samples, count, reference)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--memories", nargs="+", choices=MEMORIES, default=list(MEMORIES))
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per figure; the median counts (3)"
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of the tasks, 2 repeats")
    options = parser.parse_args()
    scale = 10 if options.quick else 1
    repeats = 2 if options.quick else options.repeats
    table = Table()
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis_url = stack.enter_context(redis_server()) if "redis" in options.memories else None
        s3_endpoint = stack.enter_context(moto_server()) if "s3" in options.memories else None
        for name, missing in (("redis", redis_url), ("s3", s3_endpoint)):
            if name in options.memories and missing is None:
                print(f"({name} is not available here: its memory is not measured)")
        made = factories(options.memories, directory, redis_url, s3_endpoint)
        print(
            f"\n  {'scenario':24} {'contender':26} {'median':>11} {'throughput':>14} {'vs bare':>7}"
        )
        if "noop" in options.scenarios:
            for count in (20_000 // scale, 100_000 // scale):
                run_speed(table, f"no-op N={count:,}", count, 8, noop, made, repeats)
        if "io" in options.scenarios:
            run_speed(table, "sleep 5 ms N=2,000", 2_000, 64, io_task, made, repeats)
        if "resume" in options.scenarios:
            for count in (100_000 // scale, 1_000_000 // scale):
                for name, factory in made.items():
                    if count > 100_000 // scale and name != "sqlite file":
                        continue
                    memory = completed_store(factory(), count)
                    samples = [resume(memory, count) for _ in range(repeats)]
                    table.add(f"resume N={count:,}", name, samples, count, None)
                    memory.close()
        if "naive" in options.scenarios and "sqlite" in options.memories:
            count = 20_000 // scale
            naive = [naive_sqlite(directory / f"naive-{k}.db", count, 8) for k in range(repeats)]
            table.add(f"naive N={count:,}", "per-task commit SQLite", naive, count, None)
            ours = [messor_run(made["sqlite file"](), count, 8, noop) for _ in range(repeats)]
            table.add(f"naive N={count:,}", "sqlite file", ours, count, statistics.median(naive))
    if "rss" in options.scenarios:
        script = Path(__file__).with_name("memory_use.py")
        count = 1_000_000 // scale
        print(f"\n  peak RSS, {count:,} generated tasks (benchmarks/memory_use.py):", flush=True)
        subprocess.run([sys.executable, str(script), "-n", str(count)], check=True)


if __name__ == "__main__":
    main()
