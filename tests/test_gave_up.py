"""Failing for good: a task that must not run again (a 404) is recorded ``gave_up``; no later run
retries it; ``messor failed`` shows it, ``messor retry --gave-up`` (or its id) brings it back.
And retry_on as a predicate: one raise_for_status(), a 503 retried, a 404 not."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from messor import (
    GAVE_UP,
    FailForGood,
    FunctionTask,
    InProcessMemory,
    LocalThreadedExecutor,
    Memory,
    SQLiteMemory,
    http_status,
)
from messor.run.harvest import summary_text
from tests.api_server import ApiConfig, ApiServer
from tests.console import messor as run_messor


def page(name: str, calls: list[str]) -> str:
    calls.append(name)
    if name == "gone":
        raise FailForGood("404 Not Found")
    return name


def test_a_task_that_fails_for_good_is_not_run_again_by_the_next_run(any_memory: Memory) -> None:
    calls: list[str] = []
    tasks = [FunctionTask(name, page, name, calls) for name in ("here", "gone")]
    first = LocalThreadedExecutor(tasks, any_memory, retry=3).run()
    assert (first.completed, first.gave_up, first.failed, first.retried) == (1, 1, 0, 0)
    assert any_memory.get_task_status("gone") == GAVE_UP
    assert any_memory.get_statuses(["gone"]) == {"gone": GAVE_UP}
    again = LocalThreadedExecutor(tasks, any_memory).run()
    assert (again.completed, again.skipped) == (0, 2)
    assert calls == ["here", "gone"] or calls == ["gone", "here"]
    [record] = list(any_memory.iter_records(GAVE_UP))
    assert (record.task_id, record.error) == (
        "gone",
        "messor.run.verdicts.FailForGood: 404 Not Found",
    )


def fetch(url: str) -> Any:
    answer = requests.get(url, timeout=30)
    answer.raise_for_status()
    return answer.json()


@pytest.fixture
def gone_and_busy() -> Any:
    """Two servers: one answers 404 for id 'gone', the other 503 (no Retry-After) to all."""
    with (
        ApiServer(ApiConfig(missing=frozenset({"gone"}))) as pages,
        ApiServer(ApiConfig(max_in_flight=0)) as busy,
    ):
        yield pages, busy


def test_retry_on_a_predicate_retries_a_503_and_not_a_404(gone_and_busy: Any) -> None:
    pages, busy = gone_and_busy
    tasks = [
        FunctionTask("gone", fetch, f"{pages.url}/items/gone"),
        FunctionTask("busy", fetch, f"{busy.url}/items/busy"),
        FunctionTask("fine", fetch, f"{pages.url}/items/fine"),
    ]
    memory = InProcessMemory()
    retry_on = http_status(500, 502, 503, 504)
    report = LocalThreadedExecutor(tasks, memory, retry=2, retry_on=retry_on).run()
    assert (report.completed, report.failed, report.retried) == (1, 2, 2)
    sent = Counter(e.path for e in pages.log() + busy.log())
    assert sent == {"/items/gone": 1, "/items/busy": 3, "/items/fine": 1}
    errors = dict(memory.get_failed_tasks())
    assert "404 Client Error" in str(errors["gone"])


def test_give_up_on_a_404_records_it_for_good(gone_and_busy: Any, tmp_path: Path) -> None:
    pages, _ = gone_and_busy
    memory = SQLiteMemory(tmp_path / "h.db")
    tasks = [FunctionTask(n, fetch, f"{pages.url}/items/{n}") for n in ("gone", "fine")]
    report = LocalThreadedExecutor(tasks, memory, retry=3, give_up_on=http_status(404)).run()
    assert (report.completed, report.gave_up, report.retried) == (1, 1, 0)
    assert memory.get_task_status("gone") == GAVE_UP
    assert [e.path for e in pages.log()].count("/items/gone") == 1


def test_the_summary_counts_given_up_tasks_after_the_seeds_three_lines() -> None:
    counts = {"pending": 1, "completed": 2, "failed": 3, GAVE_UP: 4}
    assert summary_text(counts) == (
        "Pending tasks: 1\nCompleted tasks: 2\nFailed tasks: 3\nGiven up tasks: 4"
    )
    assert summary_text({"pending": 0, "completed": 1, "failed": 0, GAVE_UP: 0}) == (
        "Pending tasks: 0\nCompleted tasks: 1\nFailed tasks: 0"
    )


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def harvest(tmp_path: Path) -> Path:
    """A memory with one task given up, one failed, one completed."""
    (tmp_path / "pages.py").write_text(
        "import messor\n"
        "def get(name):\n"
        "    if name == 'gone':\n"
        "        raise messor.FailForGood('404 Not Found')\n"
        "    if name == 'broken':\n"
        "        raise ValueError('bad page')\n"
        "    return name\n"
        "pages = [messor.FunctionTask(n, get, n) for n in ('gone', 'broken', 'fine')]\n"
    )
    done = run_messor("run", "pages:pages", "--retry", "0", "-m", "sqlite:///h.db", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "This run: 1 completed, 1 failed, 1 failed for good," in done.stdout
    assert "Given up tasks: 1" in done.stdout
    return tmp_path


def test_messor_failed_lists_tasks_given_up_as_for_good(harvest: Path) -> None:
    done = run_messor("failed", "-m", "sqlite:///h.db", cwd=harvest)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "broken: ValueError: bad page (1 attempt)",
        "gone [for good]: messor.run.verdicts.FailForGood: 404 Not Found (1 attempt)",
    ]
    status = run_messor("status", "-m", "sqlite:///h.db", cwd=harvest)
    assert "Given up tasks: 1" in status.stdout


def test_retry_failed_leaves_tasks_given_up_and_retry_gave_up_resets_them(harvest: Path) -> None:
    memory = SQLiteMemory(harvest / "h.db")
    done = run_messor("retry", "--failed", "-m", "sqlite:///h.db", cwd=harvest)
    assert done.returncode == 0, done.stderr
    assert memory.get_statuses(["broken", "gone"]) == {"broken": "pending", "gone": GAVE_UP}
    done = run_messor("retry", "--gave-up", "-m", "sqlite:///h.db", cwd=harvest)
    assert done.returncode == 0, done.stderr
    assert "1 task is pending again" in done.stdout
    assert memory.get_task_status("gone") == "pending"


def test_retry_by_id_resets_a_task_given_up(harvest: Path) -> None:
    done = run_messor("retry", "gone", "-m", "sqlite:///h.db", cwd=harvest)
    assert done.returncode == 0, done.stderr
    assert SQLiteMemory(harvest / "h.db").get_task_status("gone") == "pending"
    rerun = run_messor("run", "pages:pages", "-m", "sqlite:///h.db", cwd=harvest)
    assert "1 failed for good" in rerun.stdout  # it ran again, and failed for good again
