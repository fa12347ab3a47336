"""Usage and cost: what tasks report is summed in the report, the progress bar and messor run's
summary, on threads and asyncio; a budget stops the run before a start past it, with everything
recorded."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import messor
from messor import (
    AsyncExecutor,
    FunctionTask,
    InProcessMemory,
    LocalThreadedExecutor,
    Result,
    SQLiteMemory,
    Usage,
    report_usage,
    stop_when_spent,
)
from messor.errors import ConfigurationError
from tests.console import messor as run_messor


def ask(n: int) -> Any:
    report_usage(tokens_in=100, tokens_out=10)
    report_usage(cost=0.25)
    return Result({"answer": n}, usage=Usage(tokens_out=5))


async def ask_async(n: int) -> Any:
    await asyncio.to_thread(report_usage, tokens_in=100)  # from a thread the task started
    report_usage(tokens_out=10, cost=0.25)
    return Result({"answer": n}, usage={"tokens_out": 5})


@pytest.mark.parametrize(
    ("executor", "function"),
    [(LocalThreadedExecutor, ask), (AsyncExecutor, ask_async)],
    ids=["threads", "asyncio"],
)
def test_usage_reported_by_tasks_is_summed_in_the_report(
    executor: type[messor.Executor], function: Any
) -> None:
    memory = InProcessMemory()
    tasks = [FunctionTask(f"q{n}", function, n) for n in range(8)]
    report = executor(tasks, memory, 4).run()
    assert report.completed == 8
    assert report.usage == {"tokens_in": 800, "tokens_out": 120, "cost": 2.0}
    assert memory.get_task_result("q3") == {"answer": 3}  # the value, not the Result


def test_failed_attempts_count_their_usage_too() -> None:
    def refused() -> None:
        report_usage(cost=0.5)
        raise ValueError("the answer was useless")

    report = LocalThreadedExecutor([FunctionTask("q", refused)], "memory://", retry=2).run()
    assert report.usage == {"cost": 1.5}


def test_report_usage_outside_a_task_does_nothing() -> None:
    report_usage(tokens_in=5)  # plain code calling a function written for tasks


@pytest.mark.parametrize("bad", [{"cost": -1}, {"tokens": "many"}, {"tokens": True}])
def test_usage_refuses_what_is_not_an_amount(bad: dict[str, Any]) -> None:
    with pytest.raises(messor.ConfigurationError, match="is not an amount"):
        Usage(**bad)


def test_the_progress_bar_shows_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    tasks = [FunctionTask(f"q{n}", ask, n) for n in range(3)]
    LocalThreadedExecutor(tasks, "memory://", 1, progress=True).run()
    bar = capsys.readouterr().err
    assert "tokens_in=300" in bar
    assert "cost=0.75" in bar


# -- budgets --------------------------------------------------------------------------------------


def costly(calls: list[str], name: str) -> str:
    calls.append(name)
    report_usage(cost=0.3)
    return name


def test_a_budget_stops_the_run_before_a_start_past_it_with_everything_recorded(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    memory = SQLiteMemory(tmp_path / "harvest.db")
    tasks = [FunctionTask(f"t{n}", costly, calls, f"t{n}") for n in range(10)]
    report = LocalThreadedExecutor(tasks, memory, 1, stop_all_when=stop_when_spent(cost=1.0)).run()
    # 0.3 a task: the fourth reaches 1.2, and nothing starts after it.
    assert calls == ["t0", "t1", "t2", "t3"]
    assert report.stopped
    assert report.stopped_because == "stop_all_when: spent cost 1.2 of a budget of 1"
    assert report.usage == {"cost": pytest.approx(1.2)}
    assert memory.count_by_status() == {"pending": 6, "completed": 4, "failed": 0}


def test_with_attempts_in_flight_a_budget_lets_only_those_finish() -> None:
    calls: list[str] = []
    release = threading.Event()

    def slow_costly(name: str) -> str:
        calls.append(name)
        if name != "t0":
            release.wait(30)
        report_usage(cost=1.0)
        if name == "t0":
            release.set()
        return name

    tasks = [FunctionTask(f"t{n}", slow_costly, f"t{n}") for n in range(20)]
    report = AsyncExecutor(tasks, InProcessMemory(), 3, budget={"cost": 1.0}).run()
    assert report.stopped
    assert len(calls) <= 3  # t0 and what ran beside it; none after t0 spent the budget
    assert report.completed == len(calls)


def test_messor_run_takes_a_budget_and_prints_the_usage(tmp_path: Path) -> None:
    (tmp_path / "llm.py").write_text(
        "import messor\n"
        "def ask(n):\n"
        "    messor.report_usage(tokens_in=10, cost=0.4)\n"
        "    return n\n"
        "questions = [messor.FunctionTask(f'q{n}', ask, n) for n in range(10)]\n"
    )
    done = run_messor(
        "run", "llm:questions", "-c", "1", "--budget", "cost=1", "--memory", "sqlite:///r.db",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Usage reported by the tasks: tokens_in 30, cost 1.2" in done.stdout
    assert "Stopped early: stop_all_when: spent cost 1.2 of a budget of 1" in done.stdout


@pytest.mark.parametrize(
    ("budget", "message"),
    [({"cost": 0}, "must be a number > 0"), ({}, "needs a total"), ("5", "must be a dict")],
)
def test_a_bad_budget_is_refused_naming_it(budget: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"budget.*{message}"):
        messor.RunOptions(budget=budget)


def test_stop_when_spent_refuses_no_total() -> None:
    with pytest.raises(messor.ConfigurationError, match="needs a total"):
        stop_when_spent()
