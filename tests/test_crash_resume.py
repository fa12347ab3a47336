"""A harvest killed with SIGKILL at any instant loses nothing recorded, redoes nothing recorded."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from messor import open_memory
from messor.memory import COMPLETED
from tests.crash_child import expected_result
from tests.redis_server import real_redis
from tests.s3_server import new_bucket, server_endpoint

CHILD = Path(__file__).with_name("crash_child.py")
COUNT = 2000


def executions(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def recorded(spec: str) -> dict[str, object]:
    """Completed task id -> result, read by a fresh connection as a new process would."""
    memory = open_memory(spec)
    try:
        return {r.task_id: r.result for r in memory.iter_records(COMPLETED)}
    finally:
        memory.close()


def run_child(spec: str, log: Path, *, kill_at_executions: int | None) -> None:
    """Run the harvest; with ``kill_at_executions``, SIGKILL it once that many tasks ran."""
    command = [sys.executable, str(CHILD), spec, str(log), str(COUNT)]
    if kill_at_executions is None:
        subprocess.run(command, check=True, timeout=120)
        return
    child = subprocess.Popen(command)
    deadline = time.monotonic() + 60
    while len(executions(log)) < kill_at_executions:
        assert child.poll() is None, "the harvest ended before it could be killed"
        assert time.monotonic() < deadline, "the harvest made no progress"
        time.sleep(0.005)
    child.kill()
    child.wait()


@pytest.fixture(params=["sqlite", "redis", "s3"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the killed harvest keeps its memory: a SQLite file, redis-server, moto's S3 server."""
    if request.param == "redis":
        return f"{real_redis().url}?namespace=crash-{tmp_path.name}"
    if request.param == "s3":
        endpoint = server_endpoint()
        # batch_delay short enough that each kill finds something recorded
        return f"s3://{new_bucket(endpoint)}/crash?endpoint_url={endpoint}&batch_delay=0.1"
    return f"sqlite:///{tmp_path / 'harvest.db'}"


@pytest.mark.slow
def test_a_harvest_killed_with_sigkill_resumes_without_redoing_recorded_work(
    spec: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    before: dict[str, object] = {}
    # Killed three times at growing progress, then left to finish.
    for kill_at in (300, 900, 1500, None):
        ran_before = len(executions(log))
        run_child(spec, log, kill_at_executions=kill_at)
        after = recorded(spec)
        if kill_at is not None:
            assert 0 < len(after) < COUNT, "the kill did not land mid-run"
        assert before.items() <= after.items(), "a recorded result was lost or changed"
        assert all(result == expected_result(int(i[1:])) for i, result in after.items())
        ran_again = set(executions(log)[ran_before:]) & set(before)
        assert not ran_again, f"tasks recorded completed ran again: {sorted(ran_again)[:5]}"
        before = after
    assert before == {f"t{n}": expected_result(n) for n in range(COUNT)}
    memory = open_memory(spec)
    assert memory.count_by_status() == {"pending": 0, "completed": COUNT, "failed": 0}
    assert set(executions(log)) == set(before)
