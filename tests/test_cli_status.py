"""``messor status`` says what is true: the rate of a young run, a memory that holds nothing."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from messor import InProcessMemory, Memory, SQLiteMemory, open_memory
from tests.console import MESSOR, assert_one_line_error, messor
from tests.paused_run import PausedRun
from tests.redis_server import real_redis

pytestmark = pytest.mark.slow


def record_spread(path: Path, outcomes: int, first: float, last: float) -> None:
    """``outcomes`` completed tasks in the SQLite file ``path``, recorded evenly from
    ``first`` to ``last`` (epoch seconds), as a run that long would have left them."""
    memory = SQLiteMemory(path)
    ids = [f"page-{n}" for n in range(outcomes)]
    memory.store_tasks([(i, {}) for i in ids])
    memory.update_task_statuses([(i, "completed", n, None) for n, i in enumerate(ids)])
    memory.close()
    step = (last - first) / max(outcomes - 1, 1)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "UPDATE messor_tasks SET updated = ? WHERE id = ?",
            [(first + n * step, i) for n, i in enumerate(ids)],
        )
    conn.close()


# -- a run going on -----------------------------------------------------------------------------


@pytest.fixture
def paused_run(tmp_path: Path) -> Iterator[Path]:
    """The SQLite file of a run going on, paused by the server (see tests/paused_run.py)."""
    path = tmp_path / "harvest.db"
    with PausedRun(SQLiteMemory(path)):
        yield path


def test_status_shows_a_live_runs_pause_until_when_and_why_its_throttles_and_usage(
    paused_run: Path,
) -> None:
    done = messor("status", "--memory", f"sqlite:///{paused_run}", cwd=paused_run.parent)
    assert done.returncode == 0, done.stderr
    assert "Given up tasks: 1" in done.stdout
    [line] = [line for line in done.stdout.splitlines() if line.startswith("  live ")]
    assert "1 completed, 0 failed, 1 failed for good" in line
    found = re.search(
        r"paused by the server until (\d\d:\d\d:\d\d) UTC \(429 quota\), (.*) left", line
    )
    assert found is not None, line
    assert found[2] in ("9 min", "10 min")
    assert "0 running of 1 at most" in line
    assert "throttled once" in line
    assert "spent tokens_in=1210 cost=0.5" in line
    assert "Progress: 2 of 3 tasks done" in done.stdout


def test_status_watch_shows_the_pause_of_a_run_going_on(paused_run: Path) -> None:
    command = [str(MESSOR), "status", "--memory", f"sqlite:///{paused_run}", "--watch", "0.2"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        lines = iter(process.stdout.readline, "")
        line = next(line for line in lines if line.startswith("  live "))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert "paused by the server until" in line
    assert "throttled once" in line


# -- the recent rate ----------------------------------------------------------------------------


def test_the_rate_of_a_run_younger_than_a_minute_is_over_the_time_it_ran(tmp_path: Path) -> None:
    now = time.time()
    record_spread(tmp_path / "messor.db", 120, now - 2, now)  # 60 per second for 2 s

    data = json.loads(messor("status", "--json", cwd=tmp_path).stdout)
    assert data["recent"]["last_minute"] == {"completed": 120}
    covered = data["recent_seconds"]["last_minute"]
    assert 2 <= covered < 60  # 2 s and the moments since: the run is not a minute old
    assert data["recent_seconds"]["last_5_minutes"] == covered

    text = messor("status", cwd=tmp_path).stdout
    found = re.search(r"last minute: 120 \((\d+\.\d)/s on average over (\d+) s\)", text)
    assert found is not None, text
    rate, seconds = float(found[1]), int(found[2])
    assert 2 <= seconds < 60
    assert 120 / (seconds + 0.5) <= rate <= 120 / (seconds - 0.5)  # not 2.0/s: 120 in 60 s


def test_a_window_the_harvest_fills_is_divided_by_its_whole_length(tmp_path: Path) -> None:
    now = time.time()
    record_spread(tmp_path / "messor.db", 600, now - 200, now)  # 3 per second for 200 s
    text = messor("status", cwd=tmp_path).stdout
    found = re.search(r"last minute: (\d+) \((\d+\.\d)/s on average\)", text)
    assert found is not None, text
    assert float(found[2]) == pytest.approx(int(found[1]) / 60, abs=0.05)
    assert re.search(r"last 5 minutes: 600 \(\d+\.\d/s on average over 2\d\d s\)", text), text


def test_the_default_earliest_since_finds_the_first_time_per_status_in_the_records() -> None:
    # The contract suite checks the memories that answer it themselves; this is the
    # base class's answer for one that keeps times and does not.
    memory = InProcessMemory()
    before = time.time()
    memory.store_tasks([("a", {}), ("b", {}), ("c", {})])
    memory.update_task_statuses([("a", "completed", 1, None)])
    memory.update_task_statuses([("b", "completed", 2, None), ("c", "failed", None, "E: x")])
    after = time.time()
    times = {r.task_id: r.updated_at for r in memory.iter_records()}
    default = Memory.earliest_since
    assert default(memory, before) == {"completed": times["a"], "failed": times["c"]}
    assert default(memory, after + 1) == {}


# -- a memory that holds nothing ----------------------------------------------------------------

INSPECTING = (["status"], ["failed"], ["results"], ["retry", "--failed"])


def record_one(spec: str) -> None:
    with closing(open_memory(spec)) as memory:
        memory.store_tasks([("page-1", {})])
        memory.update_task_statuses([("page-1", "completed", 1, None)])
        memory.flush()


def test_a_redis_namespace_holding_nothing_is_an_error_naming_those_that_hold_one(
    tmp_path: Path,
) -> None:
    url = real_redis().url
    name = f"catalogue-{uuid.uuid4().hex[:8]}"
    record_one(f"{url}?namespace={name}")
    typo = name.replace("catalogue", "catalog")
    try:
        for command in INSPECTING:
            done = messor(*command, "--memory", f"{url}?namespace={typo}", cwd=tmp_path)
            assert_one_line_error(
                done,
                2,
                f"There is no harvest in namespace '{typo}' of Redis at {url}",
                f"did you mean namespace '{name}' (?namespace={name})?",
            )
        done = messor("status", "--memory", f"{url}?namespace={name}", cwd=tmp_path)
        assert "Completed tasks: 1" in done.stdout
    finally:
        open_memory(f"{url}?namespace={name}").clear()


def test_a_redis_database_without_any_harvest_says_so(tmp_path: Path) -> None:
    url = real_redis().url.removesuffix("/0") + "/15"  # a database no test writes
    done = messor("status", "--memory", url, cwd=tmp_path)
    assert_one_line_error(
        done, 2, "no harvest in namespace 'default'", "nor in any other namespace"
    )


def test_an_s3_prefix_holding_nothing_is_an_error_naming_prefixes_near_it_that_hold_one(
    tmp_path: Path, endpoint: str, bucket: str
) -> None:
    record_one(f"s3://{bucket}/harvests/catalogue?endpoint_url={endpoint}")
    record_one(f"s3://{bucket}/harvests/images?endpoint_url={endpoint}")
    for command in INSPECTING:
        spec = f"s3://{bucket}/harvests/catalog?endpoint_url={endpoint}"
        assert_one_line_error(
            messor(*command, "--memory", spec, cwd=tmp_path),
            2,
            f"There is no harvest at s3://{bucket}/harvests/catalog",
            f"s3://{bucket}/harvests/catalogue, s3://{bucket}/harvests/images",
            f"did you mean s3://{bucket}/harvests/catalogue?",
        )
    # A parent folder given for the harvest: the harvests below it are named.
    spec = f"s3://{bucket}/harvests?endpoint_url={endpoint}"
    assert_one_line_error(
        messor("status", "--memory", spec, cwd=tmp_path), 2, f"s3://{bucket}/harvests/images"
    )
    spec = f"s3://{bucket}/harvests/catalogue?endpoint_url={endpoint}"
    assert "Completed tasks: 1" in messor("status", "--memory", spec, cwd=tmp_path).stdout
