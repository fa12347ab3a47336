"""Records and round trips: every JSON value and every task id comes back exactly, in any number."""

from __future__ import annotations

from typing import Any

import pytest

from messor.memories.base import COMPLETED, FAILED, PENDING, Memory, TaskRecord
from messor.testing.common import JSON_VALUES, ODD_TASK_IDS, ContractPart, short_repr

__all__ = ["RecordsContract"]


class RecordsContract(ContractPart):
    """Values, ids and many tasks, read back by get_task_result, get_statuses, iter_records."""

    @pytest.mark.parametrize("value", JSON_VALUES, ids=short_repr)
    def test_results_round_trip_exactly(self, memory: Memory, value: Any) -> None:
        memory.store_tasks([("t", {"input": value})])
        memory.update_task_statuses([("t", COMPLETED, value, None)])
        got = memory.get_task_result("t")
        assert got == value
        assert type(got) is type(value)
        assert memory.dump_all()["task_definitions"]["t"] == {"input": value}

    def test_nan_is_refused_rather_than_stored_inexactly(self, memory: Memory) -> None:
        memory.store_tasks([("t", {})])
        with pytest.raises(TypeError, match="'t'"):
            memory.update_task_statuses([("t", COMPLETED, float("nan"), None)])

    @pytest.mark.parametrize("task_id", ODD_TASK_IDS, ids=short_repr)
    def test_odd_task_ids_are_stored_and_found_exactly(self, memory: Memory, task_id: str) -> None:
        memory.store_tasks([(task_id, {}), ("plain", {})])
        memory.update_task_statuses([(task_id, COMPLETED, task_id, None)])
        assert memory.get_task_status(task_id) == COMPLETED
        assert memory.get_task_result(task_id) == task_id
        assert memory.get_completed_tasks() == [task_id]
        assert memory.get_statuses([task_id, "plain"]) == {task_id: COMPLETED, "plain": PENDING}
        memory.clear_tasks([task_id])
        assert memory.get_pending_tasks() == ["plain"]

    def test_get_statuses_answers_for_known_ids_only(self, memory: Memory) -> None:
        ids = [f"task-{i}" for i in range(1200)]
        memory.store_tasks([(i, {}) for i in ids])
        memory.update_task_statuses([(i, COMPLETED, None, None) for i in ids[::3]])
        statuses = memory.get_statuses([*ids, "unknown"])
        assert len(statuses) == 1200
        assert {i for i, s in statuses.items() if s == COMPLETED} == set(ids[::3])
        assert memory.get_statuses([]) == {}

    def test_iter_records_yields_every_task_with_its_outcome(self, memory: Memory) -> None:
        ids = [f"task-{i:04}" for i in range(2500)]
        memory.store_tasks([(i, {}) for i in ids])
        memory.update_task_statuses([(i, COMPLETED, {"i": i}, None) for i in ids[:2000]])
        memory.update_task_statuses([(ids[2001], FAILED, None, "boom")])
        # When each state was recorded is the memory's own business here.
        records = [r._replace(updated_at=None) for r in memory.iter_records()]
        assert sorted(r.task_id for r in records) == ids
        assert TaskRecord(ids[5], COMPLETED, {"i": ids[5]}, None) in records
        failed = [r._replace(updated_at=None) for r in memory.iter_records(FAILED)]
        assert failed == [TaskRecord(ids[2001], FAILED, None, "boom")]
        assert len(list(memory.iter_records(PENDING))) == 499
