"""A run paused longer than its claim's lapse (SIGSTOP, a suspended VM) never undoes another's.

The pause campaign runs a harvest in a child process (tests/pause_child.py),
stops it with SIGSTOP at a random point of its run, and lets a second run try
the same memory while it sleeps. On Redis the first run's claim lapses and
the second takes over; the first, continued with SIGCONT while the second
runs or after it ended, must stop with ``ClaimLostError``, start nothing new
and write nothing at all, so that every result the second recorded stays. On
SQLite the claim is a lock the kernel holds for the stopped process: the
second run is refused however long the pause, and the first finishes. The
seed is random unless ``MESSOR_PAUSE_SEED`` is set; a failure names it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from messor import open_memory
from messor.executors.threads import PREFETCH
from messor.memories.base import COMPLETED, TaskRecord
from tests.pause_child import MAX_CONCURRENCY
from tests.redis_server import real_redis

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).with_name("pause_child.py")
TASKS = 300
#: The paused run's claim lapses this long after its last renewal.
LAPSE = 2.0
#: Longest wait for anything a child should do.
TIMEOUT = 120.0


class Child:
    """One harvest of tests/pause_child.py, named ``name`` in the execution log."""

    def __init__(self, spec: str, log: Path, name: str, directory: Path) -> None:
        self.log, self.name = log, name
        self._stderr = directory / f"{name}-{uuid.uuid4().hex}.txt"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, str(CHILD), spec, str(log), name, str(TASKS)]
        with self._stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=stderr, env=env
            )

    def events(self, event: str) -> list[str]:
        return events(self.log, self.name, event)

    @property
    def ended(self) -> bool:
        return self.process.poll() is not None

    def signal(self, number: int) -> None:
        if not self.ended:
            self.process.send_signal(number)

    def wait(self) -> tuple[int, str]:
        """Its exit status and the end of its stderr."""
        code = self.process.wait(timeout=TIMEOUT)
        return code, self._stderr.read_text(errors="replace")[-3000:]


def events(log: Path, run: str, event: str) -> list[str]:
    """The task ids of ``run``'s ``event`` lines ("start", "finish") in ``log``, in order."""
    text = log.read_text() if log.exists() else ""
    return [
        task_id
        for name, task_id, what in (line.split() for line in text.splitlines())
        if name == run and what == event
    ]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {TIMEOUT:g} s"
        time.sleep(0.005)


def records(spec: str) -> dict[str, TaskRecord]:
    with open_memory(spec) as memory:
        return {r.task_id: r._replace(updated_at=None) for r in memory.iter_records()}


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("MESSOR_PAUSE_SEED") or random.randrange(2**32))


@pytest.mark.slow
@pytest.mark.parametrize("round_number", range(4))
def test_a_redis_run_paused_past_its_claim_lapse_stops_and_overwrites_nothing_of_the_next_run(
    round_number: int, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed + round_number)
    where = f"seed {seed}, round {round_number}"
    namespace = f"pause-{uuid.uuid4().hex}"
    spec = f"{real_redis().url}?namespace={namespace}"
    log = tmp_path / "executions.log"
    first = Child(f"{spec}&claim_seconds={LAPSE:g}", log, "A", tmp_path)
    pause_after = rng.randint(1, TASKS // 2)
    wake_while_second_runs = rng.random() < 0.5
    try:
        wait_for(lambda: len(first.events("finish")) >= pause_after, "A's first tasks")
        first.signal(signal.SIGSTOP)
        client = real_redis().client()
        wait_for(lambda: client.get(f"messor:{{{namespace}}}:run") is None, "A's claim to lapse")
        # A holds no claim now: whatever it wrote before the lapse is all it may ever write.
        before = records(spec)
        started_before = len(first.events("start"))
        second = Child(spec, log, "B", tmp_path)
        if wake_while_second_runs:
            left = sum(r.status != COMPLETED for r in before.values())
            wake_after = rng.randint(1, max(1, left // 2))
            wait_for(
                lambda: len(second.events("finish")) >= wake_after or second.ended, "B's tasks"
            )
            first.signal(signal.SIGCONT)
        else:
            assert second.wait()[0] == 0, where
            after_second = records(spec)
    finally:
        first.signal(signal.SIGCONT)
    code, errors = first.wait()
    assert code != 0, f"{where}: the paused run went on as if it still held its claim"
    assert "ClaimLostError: This run lost its claim" in errors, f"{where}:\n{errors}"
    assert second.wait()[0] == 0, where
    final = records(spec)

    # Nothing of A's after the pause: what it recorded before stays, the rest is B's.
    assert {r.status for r in final.values()} == {COMPLETED}, where
    done_before = {i for i, r in before.items() if r.status == COMPLETED}
    assert {i: final[i] for i in done_before} == {i: before[i] for i in done_before}, where
    by_second = {i: r.result for i, r in final.items() if i not in done_before}
    assert by_second == {i: {"n": int(i[1:]), "by": "B"} for i in by_second}, where
    if not wake_while_second_runs:
        assert final == after_second, where
    assert not done_before & set(second.events("start")), where
    # A handed out nothing new after the pause: at most what was already in
    # its workers' window (running, or waiting for a thread) started later.
    assert len(first.events("start")) - started_before <= MAX_CONCURRENCY + PREFETCH, where


@pytest.mark.slow
@pytest.mark.parametrize("round_number", range(2))
def test_a_sqlite_run_paused_for_any_time_keeps_its_claim_and_finishes(
    round_number: int, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed + round_number)
    where = f"seed {seed}, round {round_number}"
    spec = f"sqlite:///{tmp_path / 'harvest.db'}"
    log = tmp_path / "executions.log"
    first = Child(spec, log, "A", tmp_path)
    try:
        wait_for(lambda: len(first.events("finish")) >= rng.randint(1, TASKS // 2), "A's tasks")
        first.signal(signal.SIGSTOP)
        paused = time.monotonic()
        refusals: list[str] = []
        for _ in range(2):
            second = Child(spec, log, "B", tmp_path)
            code, errors = second.wait()
            assert code != 0, f"{where}: a second run started while the first was paused"
            refusals.append(errors)
            # Let the pause outlast what would be a lapse (Redis's), then try again.
            time.sleep(max(0.0, paused + LAPSE - time.monotonic()))
    finally:
        first.signal(signal.SIGCONT)
    for errors in refusals:
        assert "RunInProgressError" in errors, f"{where}:\n{errors}"
        assert f"process {first.process.pid} on" in errors, where
    assert first.wait()[0] == 0, where
    final = records(spec)
    expected: dict[str, Any] = {f"p{n}": {"n": n, "by": "A"} for n in range(TASKS)}
    assert {i: r.result for i, r in final.items()} == expected, where
    assert {r.status for r in final.values()} == {COMPLETED}, where
    assert events(log, "B", "start") == [], where
