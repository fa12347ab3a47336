"""I/O-bound tasks on a Dask cluster of 1, 2 and 4 worker processes, next to local threads.

    .venv/bin/python benchmarks/dask_throughput.py            # 2,000 tasks of 20 ms
    .venv/bin/python benchmarks/dask_throughput.py -n 500 --threads 8

Every contender runs the same tasks (``time.sleep(0.02)``) into a new SQLite
file, in one process run: a bare ``ThreadPoolExecutor`` (no persistence), the
``LocalThreadedExecutor``, and ``DaskExecutor`` on a ``LocalCluster`` of worker
processes with ``--threads`` threads each (its default window: twice the
cluster's threads). Prints the median of ``--repeats`` runs as tasks per
second and as a ratio to the bare executor. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time

from distributed import Client, LocalCluster
from timing import median_seconds

from messor import FunctionTask, LocalThreadedExecutor
from messor_dask import DaskExecutor

SECONDS = 0.02


def pause() -> None:
    time.sleep(SECONDS)


def tasks(count: int) -> list[FunctionTask]:
    return [FunctionTask(f"io-{n}", pause) for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("-n", "--tasks", type=int, default=2000, help="tasks per run (2000)")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker (16)")
    parser.add_argument("--workers", default="1,2,4", help="Dask worker processes (1,2,4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender (3)")
    options = parser.parse_args()
    count, threads = options.tasks, options.threads
    workers = [int(w) for w in options.workers.split(",")]
    rows: list[tuple[str, float]] = []

    def bare(memory: str) -> None:
        with concurrent.futures.ThreadPoolExecutor(threads * max(workers)) as pool:
            list(pool.map(lambda _: pause(), range(count)))

    rows.append((f"bare ThreadPoolExecutor, {threads * max(workers)} threads",
                 median_seconds(bare, options.repeats)))  # fmt: skip
    for width in sorted({threads, threads * max(workers)}):

        def local(memory: str, width: int = width) -> None:
            LocalThreadedExecutor(tasks(count), memory, width, progress=False).run()

        rows.append(
            (f"LocalThreadedExecutor, {width} threads", median_seconds(local, options.repeats))
        )
    for n in workers:
        with (
            LocalCluster(n_workers=n, threads_per_worker=threads, dashboard_address=":0") as cl,
            Client(cl, set_as_default=False) as client,
        ):
            client.submit(pause).result()  # workers warmed up

            def on_dask(memory: str, client: Client = client) -> None:
                DaskExecutor(tasks(count), memory, client=client, progress=False).run()

            seconds = median_seconds(on_dask, options.repeats)
        rows.append((f"DaskExecutor, {n} worker process(es) x {threads} threads", seconds))
    base = rows[0][1]
    print(f"\n{count:,} tasks of time.sleep({SECONDS}), medians of {options.repeats} runs\n")
    print(f"{'contender':52} {'seconds':>8} {'tasks/s':>9} {'vs bare':>8}")
    for name, seconds in rows:
        print(f"{name:52} {seconds:8.2f} {count / seconds:9,.0f} {seconds / base:7.2f}x")


if __name__ == "__main__":
    main()
