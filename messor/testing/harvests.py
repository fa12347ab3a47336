"""Harvests run by the executor on the memory: what a user sees."""

from __future__ import annotations

from messor.executors.threads import LocalThreadedExecutor
from messor.memories.base import COMPLETED, FAILED, PENDING, Memory
from messor.tasks import FunctionTask
from messor.testing.common import ContractPart

__all__ = ["HarvestsContract"]


def _square(number: int) -> dict[str, int]:
    return {"n": number, "square": number * number}


def _fail(message: str) -> None:
    raise ValueError(message)


class HarvestsContract(ContractPart):
    """Whole runs, their failures and their resume."""

    def test_a_harvest_records_every_result(self, memory: Memory) -> None:
        tasks = [FunctionTask(f"sq-{n}", _square, n) for n in range(50)]
        report = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8).run()
        assert report.completed == 50
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 50, FAILED: 0}
        assert memory.get_task_result("sq-7") == {"n": 7, "square": 49}

    def test_a_harvest_recordsfailures_and_resumes(self, memory: Memory) -> None:
        tasks = [FunctionTask(f"sq-{n}", _square, n) for n in range(10)]
        tasks.append(FunctionTask("broken", _fail, "no such page"))
        LocalThreadedExecutor(tasks, memory=memory, retry=0).run()
        assert memory.get_failed_tasks() == [("broken", "ValueError: no such page")]
        tasks[-1] = FunctionTask("broken", _square, 99)
        report = LocalThreadedExecutor(tasks, memory=memory).run()
        assert (report.completed, report.skipped) == (1, 10)
        assert memory.get_task_result("broken") == {"n": 99, "square": 9801}
        assert memory.get_failed_tasks() == []
