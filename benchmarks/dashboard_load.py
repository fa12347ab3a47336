"""How fast the dashboard's page loads, and how much memory its process holds, on a big harvest.

    .venv/bin/python benchmarks/dashboard_load.py [--tasks 1000000] [--loads 5]

Builds a SQLite memory of ``--tasks`` tasks (70% completed, 2% failed with
errors of a dozen causes, the rest pending; a live run's heartbeat), starts
``messor dashboard`` on it in a process of its own, and loads the page in
headless Chromium (Debian's, as the tests do) ``--loads`` times. A load is
timed from the request to the moment the page shows the counts and the
failure groups (everything it shows), each after the server's caches
expired: the memory is read afresh for every load. Prints the median and the worst, the
JSON endpoints' own times (the first, uncached, call and a later one), and
the dashboard process's resident memory after the loads (RSS and its peak).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from messor import SQLiteMemory
from messor.memories.base import COMPLETED, FAILED
from tests.browser import chromium
from tests.console import MESSOR
from tests.redis_server import free_port

CHUNK = 50_000
CAUSES = [
    "LookupError: 404 Not Found: https://shop.example.org/product/{n}",
    "TimeoutError: no result after 30 s",
    "requests.exceptions.HTTPError: 429 Too Many Requests for url: https://api.example.org/?p={n}",
    "ValueError: price {n}.99 is not a number for item '{n}'",
] + [f"RuntimeError: upstream {k} answered {{n}}" for k in range(8)]


def build(path: Path, tasks: int) -> None:
    memory = SQLiteMemory(path)
    completed, failed = int(tasks * 0.70), int(tasks * 0.02)
    for start in range(0, tasks, CHUNK):
        ids = range(start, min(start + CHUNK, tasks))
        memory.store_tasks([(f"https://shop.example.org/product/{n}", {"n": n}) for n in ids])
        rows: list[tuple[str, str, Any, str | None]] = []
        for n in ids:
            task_id = f"https://shop.example.org/product/{n}"
            if n < completed:
                rows.append((task_id, COMPLETED, {"price": n % 100}, None))
            elif n < completed + failed:
                rows.append((task_id, FAILED, None, CAUSES[n % len(CAUSES)].format(n=n)))
        memory.update_task_statuses(rows)
    now = time.time()
    history = [[now - 3600 + 10 * k, k * 1000] for k in range(361)]
    memory.write_beat("bench", json.dumps({
        "run_id": "bench", "host": "bench", "pid": 1, "started": now - 3600, "updated": now,
        "interval": 3600.0, "known_total": tasks, "completed": completed, "failed": failed,
        "retried": 0, "skipped": 0, "rate": 100.0, "concurrency": 16, "in_flight": 16,
        "finished": False, "history": history,
    }))  # fmt: skip
    memory.close()


def timed_get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
    return time.perf_counter() - started


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "big.db"
        started = time.perf_counter()
        build(path, arguments.tasks)
        print(f"built {arguments.tasks:,} tasks in {time.perf_counter() - started:.1f} s")
        port = free_port()
        server = subprocess.Popen(
            [str(MESSOR), "dashboard", "-m", str(path), "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    first = {p: timed_get(url + p) for p in ("/api/overview", "/api/failures")}
                    break
                except OSError:
                    time.sleep(0.05)
            loads = []
            with chromium() as driver:
                for _ in range(arguments.loads):
                    time.sleep(11)  # past every cache: each load reads the memory afresh
                    started = time.perf_counter()
                    driver.get(url + "/")
                    while not driver.execute_script(
                        "return document.getElementById('count-total').textContent !== '\\u2013'"
                        " && document.querySelector('#groups tbody tr') !== null"
                    ):
                        time.sleep(0.005)
                    loads.append(time.perf_counter() - started)
            later = {p: timed_get(url + p) for p in ("/api/overview", "/api/failures")}
            memory = rss_kib(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    median = statistics.median(loads)
    print(f"page load, until counts and failure groups show: median {median:.3f} s, "
          f"worst {max(loads):.3f} s over {len(loads)} loads")  # fmt: skip
    for endpoint in first:
        print(f"{endpoint}: first call {first[endpoint]:.3f} s, later {later[endpoint]:.3f} s")
    print(f"dashboard process: RSS {memory['VmRSS'] / 1024:.0f} MiB, "
          f"peak {memory['VmHWM'] / 1024:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
