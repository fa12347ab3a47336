"""Ctrl-C and SIGTERM sent to a real harvest process: stop, finish, record, summarise."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from messor import SQLiteMemory

CHILD = Path(__file__).with_name("signal_child.py")


def start(tmp_path: Path, *, hanging: bool) -> tuple[subprocess.Popen[str], Path, str]:
    log, spec = tmp_path / "started.log", f"sqlite:///{tmp_path / 'harvest.db'}"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), spec, str(log), "yes" if hanging else "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return child, log, spec


def wait_for_starts(log: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while not log.exists() or len(log.read_text().split()) < count:
        assert time.monotonic() < deadline, "the harvest did not start"
        time.sleep(0.02)


def counts(output: str) -> dict[str, int]:
    return {k.lower(): int(v) for k, v in re.findall(r"^(\w+) tasks: (\d+)$", output, re.M)}


@pytest.mark.slow
def test_sigterm_finishes_the_running_tasks_prints_the_summary_and_returns(
    tmp_path: Path,
) -> None:
    child, log, _ = start(tmp_path, hanging=False)
    wait_for_starts(log, 20)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert "returned: interrupted by SIGTERM" in out
    summary = counts(out)
    memory = SQLiteMemory(tmp_path / "harvest.db")
    assert summary == memory.count_by_status()
    started = set(log.read_text().split())
    assert set(memory.get_completed_tasks()) == started  # every started task was recorded
    assert summary["pending"] == 200 - len(started) > 0
    assert summary["failed"] == 0


@pytest.mark.slow
def test_a_second_ctrl_c_abandons_hanging_tasks_which_stay_pending(tmp_path: Path) -> None:
    child, log, _ = start(tmp_path, hanging=True)
    wait_for_starts(log, 10)
    child.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the quick task running beside the hanging ones finishes
    child.send_signal(signal.SIGINT)
    began = time.monotonic()
    out, err = child.communicate(timeout=30)
    assert time.monotonic() - began < 10  # not the minute the hanging tasks would take
    assert child.returncode == 130, err
    memory = SQLiteMemory(tmp_path / "harvest.db")
    assert memory.get_task_status("hang0") == "pending"
    assert memory.get_task_status("hang1") == "pending"
    assert len(memory.get_completed_tasks()) >= 8
    assert counts(out) == memory.count_by_status()
