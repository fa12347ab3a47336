"""Coroutine tasks on AsyncExecutor next to blocking ones on threads, in one process run.

    .venv/bin/python benchmarks/async_throughput.py           # 20,000 tasks of 10 ms
    .venv/bin/python benchmarks/async_throughput.py -n 5000 --concurrency 500

The same work, waiting 10 ms, as ``await asyncio.sleep(0.01)`` for the
asyncio contenders and ``time.sleep(0.01)`` for the threaded ones, recorded
into a new SQLite file per run: bare asyncio (a semaphore, no persistence),
``AsyncExecutor`` at ``--concurrency``, a bare ``ThreadPoolExecutor`` and
``LocalThreadedExecutor`` at several thread counts (the best one is what
threads can do here). Medians of ``--repeats`` runs, as tasks per second
and as a ratio of wall time to the bare ThreadPoolExecutor's at the same
concurrency. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import time

from timing import median_seconds

from messor import AsyncExecutor, FunctionTask, LocalThreadedExecutor

SECONDS = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("-n", "--tasks", type=int, default=20_000, help="tasks (20000)")
    parser.add_argument("--concurrency", type=int, default=1000, help="at once (1000)")
    parser.add_argument("--threads", default="64,256,1000", help="thread counts (64,256,1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender (3)")
    options = parser.parse_args()
    count, width = options.tasks, options.concurrency

    def bare_asyncio(memory: str) -> None:
        async def main() -> None:
            gate = asyncio.Semaphore(width)

            async def one() -> None:
                async with gate:
                    await asyncio.sleep(SECONDS)

            await asyncio.gather(*(one() for _ in range(count)))

        asyncio.run(main())

    def on_coroutines(memory: str) -> None:
        tasks = (FunctionTask(f"a-{n}", asyncio.sleep, SECONDS) for n in range(count))
        AsyncExecutor(tasks, memory, width, progress=False).run()

    rows = [
        (f"bare asyncio, {width} at once", median_seconds(bare_asyncio, options.repeats), width),
        (f"AsyncExecutor, {width} at once", median_seconds(on_coroutines, options.repeats), width),
    ]
    for threads in (int(t) for t in options.threads.split(",")):

        def bare_threads(memory: str, threads: int = threads) -> None:
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                list(pool.map(time.sleep, [SECONDS] * count))

        def on_threads(memory: str, threads: int = threads) -> None:
            tasks = [FunctionTask(f"t-{n}", time.sleep, SECONDS) for n in range(count)]
            LocalThreadedExecutor(tasks, memory, threads, progress=False).run()

        rows.append((f"bare ThreadPoolExecutor, {threads} threads",
                     median_seconds(bare_threads, options.repeats), threads))  # fmt: skip
        rows.append((f"LocalThreadedExecutor, {threads} threads",
                     median_seconds(on_threads, options.repeats), threads))  # fmt: skip
    bare = {w: s for name, s, w in rows if name.startswith("bare ThreadPool")}
    print(f"\n{count:,} tasks waiting {SECONDS * 1000:g} ms, medians of {options.repeats} runs\n")
    print(f"{'contender':40} {'seconds':>8} {'tasks/s':>9} {'vs bare threads':>16}")
    for name, seconds, w in rows:
        ratio = f"{seconds / bare[w]:.2f}x" if w in bare else ""
        print(f"{name:40} {seconds:8.2f} {count / seconds:9,.0f} {ratio:>16}")


if __name__ == "__main__":
    main()
