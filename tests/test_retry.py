"""`messor retry` racing a run on the same SQLite file: nothing completed is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from messor import SQLiteMemory
from messor.cli import build_parser, inspect
from messor.cli.common import CommandError
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate, Memory

MESSOR = Path(sys.executable).parent / "messor"


def retry(*args: str) -> int:
    """``messor retry ARGS`` in this process (a subprocess could not be raced at will)."""
    arguments = build_parser().parse_args(["retry", *args])
    try:
        code: int = arguments.handler(arguments)
    except CommandError as exc:
        return exc.exit_code
    return code


class RunCompletesAfterTheLookUp(SQLiteMemory):
    """A SQLite file on which a run, on a connection of its own, completes task 'a'
    right after `messor retry` has looked up what to reset (deterministically, the
    moment that another process's write can land at any time)."""

    run_done = False

    def _run_completes_a(self) -> None:
        if not self.run_done:
            self.run_done = True
            with SQLiteMemory(self.path) as run:
                run.record_outcomes([EncodedUpdate("a", COMPLETED, '"late success"', None, 2)])

    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        found = super().get_failed_tasks()
        self._run_completes_a()
        return found

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        found = super().get_statuses(task_ids)
        self._run_completes_a()
        return found


@pytest.fixture
def racing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite file with tasks 'a' and 'b' failed, which `messor retry` opens as above."""
    path = tmp_path / "messor.db"
    with SQLiteMemory(path) as memory:
        memory.store_tasks([("a", {}), ("b", {})])
        memory.update_task_statuses([("a", FAILED, None, "E: a"), ("b", FAILED, None, "E: b")])

    def open_racing(spec: str | None, **_: Any) -> tuple[Memory, None]:
        return RunCompletesAfterTheLookUp(path), None

    monkeypatch.setattr(inspect, "open_chosen_memory", open_racing)
    return path


@pytest.mark.parametrize("args", [["--failed"], ["a", "b"]], ids=["--failed", "by-id"])
def test_retry_keeps_a_task_a_run_completed_after_the_look_up_and_says_so(
    racing_file: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert retry(*args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "1 task is pending again: the next run of the harvest runs it.",
        "1 task ('a') was completed meanwhile by a run: kept, with the result.",
    ]
    with SQLiteMemory(racing_file) as memory:
        assert memory.get_task_result("a") == "late success"
        assert memory.get_task_status("b") == PENDING


def test_retry_force_resets_a_task_completed_after_the_look_up(
    racing_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert retry("--force", "a", "b") == 0
    assert (
        capsys.readouterr().out
        == "2 tasks are pending again: the next run of the harvest runs them.\n"
    )
    with SQLiteMemory(racing_file) as memory:
        assert memory.count_by_status() == {PENDING: 2, COMPLETED: 0, FAILED: 0}
        assert memory.get_task_result("a") is None


#: 4000 pages; none starts before the file ./go exists, so the test retries from the start.
PAGES = """
import os, time
import messor

def fetch(n):
    while not os.path.exists("go"):
        time.sleep(0.01)
    time.sleep(0.001)
    return {"page": n}

pages = [messor.task(fetch, n) for n in range(4000)]
"""


@pytest.mark.slow
def test_retry_by_id_hammering_a_run_in_another_process_never_resets_a_completed_task(
    tmp_path: Path,
) -> None:
    # `messor retry ID...` of every task not completed yet, again and again,
    # while `messor run` completes them: each retry races the run's commits.
    (tmp_path / "pages.py").write_text(textwrap.dedent(PAGES), encoding="utf-8")
    path = tmp_path / "messor.db"
    env = {k: v for k, v in os.environ.items() if k != "MESSOR_MEMORY"}
    run = subprocess.Popen(
        [str(MESSOR), "run", "pages:pages", "-c", "4", "--no-progress", "--memory", str(path)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    retries = 0
    try:
        while not path.exists() and run.poll() is None:
            time.sleep(0.01)
        with SQLiteMemory(path) as watcher:
            while run.poll() is None:
                ids = watcher.get_pending_tasks()[:300]
                if not ids:
                    time.sleep(0.01)  # not registered yet, or all running
                    continue
                # 2: some completed since the look-up above, and nothing was changed.
                assert retry("--memory", str(path), *ids) in (0, 2)
                retries += 1
                (tmp_path / "go").touch()
        output = run.communicate(timeout=120)[0]
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 0, output
    assert retries > 0
    with SQLiteMemory(path) as memory:
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 4000, FAILED: 0}
        assert memory.get_task_result("fetch(3999)") == {"page": 3999}
