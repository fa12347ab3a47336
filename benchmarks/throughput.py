"""Throughput of no-op tasks: Messor on each memory against a bare ThreadPoolExecutor.

    .venv/bin/python benchmarks/throughput.py                 # N=20,000, 8 threads, 3 repeats
    .venv/bin/python benchmarks/throughput.py -n 100000 --repeats 5
    .venv/bin/python benchmarks/throughput.py --memories sqlite redis

Every figure is the median wall time of ``run()`` (registration, execution,
recording) over the repeats, each on a fresh, empty memory, measured in this
one process next to a bare ``concurrent.futures.ThreadPoolExecutor`` running
the same tasks with no persistence. The Redis memory runs on a real
redis-server started on a free loopback port (skipped if none is installed),
the S3 memory on moto's S3 server (skipped if moto is not installed).
Not part of the test suite: speed is measured here, never asserted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import messor
from messor import FunctionTask, LocalThreadedExecutor, Memory

MEMORIES = ("sqlite", "memory", "redis", "s3")


def noop() -> None:
    return None


def bare_executor(count: int, threads: int) -> float:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(noop) for _ in range(count)]:
            future.result()
    return time.perf_counter() - started


def messor_run(memory: Memory, count: int, threads: int) -> float:
    tasks = [FunctionTask(f"task-{n}", noop) for n in range(count)]
    started = time.perf_counter()
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=threads, progress=False).run()
    elapsed = time.perf_counter() - started
    assert memory.count_by_status()["completed"] == count
    return elapsed


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


def s3_memory(endpoint: str) -> Memory:
    import boto3

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return messor.open_memory(f"s3://{bucket}/harvest?endpoint_url={endpoint}")


def memory_factories(
    names: list[str], directory: Path, redis_url: str | None, s3_endpoint: str | None
) -> dict[str, Callable[[], Memory]]:
    """A fresh, empty memory per call, for each memory measured."""
    factories: dict[str, Callable[[], Memory]] = {}
    if "sqlite" in names:
        factories["sqlite file"] = lambda: messor.SQLiteMemory(directory / f"{uuid.uuid4()}.db")
    if "memory" in names:
        factories["in-process"] = messor.InProcessMemory
    if "redis" in names and redis_url is not None:
        factories["redis-server"] = lambda: messor.open_memory(
            f"{redis_url}?namespace={uuid.uuid4().hex}"
        )
    if "s3" in names and s3_endpoint is not None:
        factories["s3 (moto server)"] = lambda: s3_memory(s3_endpoint)
    return factories


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("-n", "--tasks", type=int, default=20_000, help="tasks per run (20000)")
    parser.add_argument("--threads", type=int, default=8, help="threads of every executor (8)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per figure; the median counts (3)"
    )
    parser.add_argument("--memories", nargs="+", choices=MEMORIES, default=list(MEMORIES))
    options = parser.parse_args()
    count, threads = options.tasks, options.threads

    with (
        tempfile.TemporaryDirectory() as directory,
        redis_server() as redis_url,
        moto_server() as s3_endpoint,
    ):
        if "redis" in options.memories and redis_url is None:
            print("redis-server is not installed: the Redis memory is not measured")
        if "s3" in options.memories and s3_endpoint is None:
            print("moto is not installed: the S3 memory is not measured")
        factories = memory_factories(options.memories, Path(directory), redis_url, s3_endpoint)
        times: dict[str, list[float]] = {"bare ThreadPoolExecutor": []}
        times.update({name: [] for name in factories})
        # Interleaved, so that a slow moment of the machine hits every contender.
        for _ in range(options.repeats):
            times["bare ThreadPoolExecutor"].append(bare_executor(count, threads))
            for name, factory in factories.items():
                memory = factory()
                times[name].append(messor_run(memory, count, threads))
                memory.close()

    bare = statistics.median(times["bare ThreadPoolExecutor"])
    print(f"\n{count:,} no-op tasks, {threads} threads, median of {options.repeats} runs\n")
    print(f"{'':28} {'wall s':>8} {'tasks/s':>10} {'vs bare time':>12}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:28} {median:8.3f} {count / median:10,.0f} {median / bare:12.2f}")


if __name__ == "__main__":
    main()
