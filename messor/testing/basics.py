"""The seed's ten methods: what a memory written in the seed's day was asked to do."""

from __future__ import annotations

import pytest

from messor.memories.base import COMPLETED, FAILED, PENDING, Memory
from messor.testing.common import ContractPart

__all__ = ["BasicsContract"]


class BasicsContract(ContractPart):
    """store_tasks, update_task_statuses, the look-ups, clear and dump_all, one behaviour each."""

    # -- store_tasks ---------------------------------------------------------------------------

    def test_a_new_memory_is_empty(self, memory: Memory) -> None:
        assert memory.get_pending_tasks() == []
        assert memory.get_completed_tasks() == []
        assert memory.get_failed_tasks() == []
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 0, FAILED: 0}

    def test_stored_tasks_are_pending(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {"url": "https://b"})])
        assert sorted(memory.get_pending_tasks()) == ["a", "b"]
        assert memory.get_task_status("a") == PENDING
        assert memory.dump_all()["task_definitions"] == {"a": {}, "b": {"url": "https://b"}}

    def test_store_tasks_never_overwrites_a_known_task(self, memory: Memory) -> None:
        memory.store_tasks([("a", {"v": 1})])
        memory.update_task_statuses([("a", COMPLETED, {"r": 1}, None)])
        memory.store_tasks([("a", {"v": 2}), ("b", {})])
        assert memory.get_task_status("a") == COMPLETED
        assert memory.get_task_result("a") == {"r": 1}
        assert memory.dump_all()["task_definitions"]["a"] == {"v": 1}
        assert memory.get_task_status("b") == PENDING

    def test_store_tasks_refuses_data_that_is_not_json_and_stores_nothing(
        self, memory: Memory
    ) -> None:
        with pytest.raises(TypeError, match="bad-task"):
            memory.store_tasks([("good-task", {}), ("bad-task", {"when": object()})])
        assert memory.get_pending_tasks() == []

    def test_store_tasks_refuses_ids_that_are_not_str(self, memory: Memory) -> None:
        with pytest.raises(TypeError, match="str"):
            memory.store_tasks([(42, {})])  # type: ignore[list-item]

    # -- update_task_statuses ------------------------------------------------------------------

    def test_update_moves_tasks_between_statuses(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {}), ("c", {})])
        memory.update_task_statuses(
            [("a", COMPLETED, "result-a", None), ("b", FAILED, None, "ValueError: boom")]
        )
        assert memory.get_pending_tasks() == ["c"]
        assert memory.get_completed_tasks() == ["a"]
        assert memory.get_failed_tasks() == [("b", "ValueError: boom")]
        assert memory.get_task_result("a") == "result-a"
        assert memory.count_by_status() == {PENDING: 1, COMPLETED: 1, FAILED: 1}

    def test_update_of_an_unknown_id_raises_keyerror_and_changes_nothing(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("a", {})])
        with pytest.raises(KeyError, match="ghost"):
            memory.update_task_statuses([("a", COMPLETED, 1, None), ("ghost", COMPLETED, 2, None)])
        assert memory.get_task_status("a") == PENDING
        assert memory.get_task_result("a") is None

    def test_update_refuses_a_result_that_is_not_json_and_changes_nothing(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("a", {}), ("b", {})])
        with pytest.raises(TypeError, match="'b'"):
            memory.update_task_statuses([("a", COMPLETED, 1, None), ("b", COMPLETED, {1, 2}, None)])
        assert sorted(memory.get_pending_tasks()) == ["a", "b"]

    def test_a_later_success_replaces_the_error(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        memory.update_task_statuses([("a", FAILED, None, "TimeoutError: slow")])
        memory.update_task_statuses([("a", COMPLETED, "ok", None)])
        assert memory.get_failed_tasks() == []
        assert memory.get_task_result("a") == "ok"
        assert "a" not in memory.dump_all()["task_errors"]

    def test_rows_of_one_call_apply_in_order(self, memory: Memory) -> None:
        memory.store_tasks([("a", {"first": True}), ("a", {"first": False})])
        memory.update_task_statuses(
            [("a", FAILED, None, "boom"), ("a", COMPLETED, "fixed", None), ("a", "leased", 1, None)]
        )
        memory.update_task_statuses([("a", COMPLETED, "done", None)])
        assert memory.dump_all()["task_definitions"] == {"a": {"first": True}}
        assert memory.get_completed_tasks() == ["a"]
        assert memory.get_failed_tasks() == []
        assert memory.get_pending_tasks() == []
        assert memory.count_by_status()[COMPLETED] == 1
        assert memory.get_task_result("a") == "done"

    def test_failed_then_pending_again(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        memory.update_task_statuses([("a", FAILED, None, "boom")])
        memory.update_task_statuses([("a", PENDING, None, None)])
        assert memory.get_pending_tasks() == ["a"]
        assert memory.get_failed_tasks() == []

    # -- reading -------------------------------------------------------------------------------

    def test_unknown_task_status_raises_keyerror_naming_it(self, memory: Memory) -> None:
        with pytest.raises(KeyError, match="Task with ID 'nope' not found"):
            memory.get_task_status("nope")

    def test_unknown_task_result_raises_keyerror(self, memory: Memory) -> None:
        with pytest.raises(KeyError, match="nope"):
            memory.get_task_result("nope")

    def test_a_pending_task_has_no_result(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        assert memory.get_task_result("a") is None

    def test_dump_all_has_the_seed_shape(self, memory: Memory) -> None:
        memory.store_tasks([("a", {"x": 1}), ("b", {}), ("c", {})])
        memory.update_task_statuses([("a", COMPLETED, [1], None), ("b", FAILED, None, "boom")])
        assert memory.dump_all() == {
            "task_definitions": {"a": {"x": 1}, "b": {}, "c": {}},
            "task_statuses": {"a": COMPLETED, "b": FAILED, "c": PENDING},
            "task_results": {"a": [1]},
            "task_errors": {"b": "boom"},
        }

    # -- clearing ------------------------------------------------------------------------------

    def test_clear_forgets_everything(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {})])
        memory.update_task_statuses([("a", COMPLETED, 1, None)])
        memory.clear()
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 0, FAILED: 0}
        with pytest.raises(KeyError):
            memory.get_task_status("a")

    def test_clear_tasks_forgets_only_those(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {}), ("c", {})])
        memory.clear_tasks(["a", "c", "never-stored"])
        assert memory.get_pending_tasks() == ["b"]
