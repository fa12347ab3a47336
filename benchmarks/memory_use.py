"""Peak memory of a run over 1,000,000 generated tasks, next to a bare ThreadPoolExecutor.

    .venv/bin/python benchmarks/memory_use.py              # 1,000,000 tasks, SQLite file
    .venv/bin/python benchmarks/memory_use.py -n 200000 --memory memory://

Each run happens in a fresh child process, whose peak resident set size
(``ru_maxrss``) is the figure: the tasks come from a generator, so a run that
keeps its window bounded stays flat however many tasks there are. The bare
executor is fed through a bounded window too (a plain ``map`` would queue a
Future per task first). A second run over the same memory measures the
resume, where every task is skipped. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import concurrent.futures, resource, sys, time
from itertools import islice

count, kind, memory = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def noop():
    return None

started = time.perf_counter()
if kind == "bare":
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tasks = iter(range(count))
        window = {pool.submit(noop) for _ in islice(tasks, 64)}
        while window:
            done, window = concurrent.futures.wait(window, return_when="FIRST_COMPLETED")
            window |= {pool.submit(noop) for _ in islice(tasks, len(done))}
elif kind == "async":
    from messor import AsyncExecutor, FunctionTask

    async def anoop():
        return None

    tasks = (FunctionTask(f"task-{n}", anoop) for n in range(count))
    report = AsyncExecutor(tasks, memory=memory, max_concurrency=1000, progress=False).run()
    assert report.completed + report.skipped == count, report
else:
    from messor import FunctionTask, LocalThreadedExecutor
    tasks = (FunctionTask(f"task-{n}", noop) for n in range(count))
    report = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8, progress=False).run()
    assert report.completed + report.skipped == count, report
elapsed = time.perf_counter() - started
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(count: int, kind: str, memory: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one run in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(count), kind, memory],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, peak_kb = done.stdout.split()
    return float(seconds), int(peak_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("-n", "--tasks", type=int, default=1_000_000, help="tasks (1000000)")
    parser.add_argument("--memory", help="memory spec (default: a new SQLite file)")
    parser.add_argument(
        "--executor",
        choices=["threads", "async"],
        default="threads",
        help="threads: LocalThreadedExecutor, 8 threads; async: AsyncExecutor, 1,000 coroutines",
    )
    options = parser.parse_args()
    kind = "async" if options.executor == "async" else "messor"
    with tempfile.TemporaryDirectory() as directory:
        memory = options.memory or f"sqlite:///{Path(directory) / 'harvest.db'}"
        baseline = measure(0, "bare", memory)
        rows = [
            ("python + imports, no tasks", baseline),
            ("bare ThreadPoolExecutor", measure(options.tasks, "bare", memory)),
            ("messor, first run", measure(options.tasks, kind, memory)),
            ("messor, resume (all done)", measure(options.tasks, kind, memory)),
        ]
    how = "AsyncExecutor, 1,000 at once" if kind == "async" else "8 threads"
    print(f"\n{options.tasks:,} generated no-op tasks, {how}, {memory.split('/')[0]}...\n")
    print(f"{'':30} {'seconds':>8} {'peak RSS MB':>12}")
    for name, (seconds, peak) in rows:
        print(f"{name:30} {seconds:8.2f} {peak:12.1f}")


if __name__ == "__main__":
    main()
