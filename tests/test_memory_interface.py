"""The ``Memory`` base class: which methods a memory implements, and what statuses it stores."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pytest

from messor import IncompleteMemoryError, Memory, TaskStatus
from messor.memories.base import COMPLETED, FAILED, GAVE_UP, PENDING, STATUSES, Row
from tests.conftest import MEMORY_KINDS
from tests.primitive_memory import PrimitivesOnlyMemory
from tests.seed_memory import SeedOnlyMemory


class HalfOfEach(Memory):
    """Two primitives and two of the seed's methods: neither set is complete."""

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        pass

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        return {}

    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        pass

    def get_task_status(self, task_id: str) -> str:
        return PENDING


def test_a_memory_that_completes_neither_set_of_methods_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(IncompleteMemoryError) as refused:
        HalfOfEach()
    message = str(refused.value)
    assert "HalfOfEach" in message
    assert "missing: update, scan, delete" in message
    assert "missing: update_task_statuses, get_pending_tasks" in message
    assert "store_tasks" not in message
    assert isinstance(refused.value, TypeError)  # as an abstract method left out always was


def test_an_incomplete_class_may_be_defined_and_completed_by_a_subclass() -> None:
    class Completed(HalfOfEach):
        def update(self, changes: Any, rule: Any = None) -> list[str]:
            return []

        def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
            yield from ()

        def delete(self, task_ids: Iterable[str] | None) -> None:
            pass

    assert Completed().get_pending_tasks() == []


def test_the_base_class_alone_is_no_memory() -> None:
    with pytest.raises(IncompleteMemoryError, match="Memory cannot be used as a memory"):
        Memory()


@pytest.mark.parametrize("memory_class", [SeedOnlyMemory, PrimitivesOnlyMemory])
def test_either_complete_set_of_methods_makes_a_memory(memory_class: type[Memory]) -> None:
    memory = memory_class()
    memory.store_tasks([("a", {})])
    memory.record_outcomes([])
    assert memory.count_by_status() == {PENDING: 1, COMPLETED: 0, FAILED: 0}


def test_the_status_constants_are_the_plain_strings_of_task_status() -> None:
    assert [type(status) for status in (PENDING, COMPLETED, FAILED, GAVE_UP)] == [str] * 4
    assert tuple(TaskStatus) == ("pending", "completed", "failed", "gave_up")
    # The statuses every count lists even at 0: gave_up only once a task has it.
    assert STATUSES == ("pending", "completed", "failed")
    assert TaskStatus(FAILED) is TaskStatus.FAILED
    assert f"{TaskStatus.COMPLETED}" == "completed"


# A memory written against the seed stores the statuses it is given: its own business.
@pytest.mark.parametrize(
    "any_memory", [kind for kind in MEMORY_KINDS if kind != "seed-only"], indirect=True
)
def test_a_status_given_as_task_status_is_stored_as_its_plain_string(any_memory: Memory) -> None:
    memory = any_memory
    memory.store_tasks([("a", {}), ("b", {})])
    memory.update_task_statuses(
        [("a", TaskStatus.COMPLETED, 1, None), ("b", TaskStatus.FAILED, None, "E")]
    )
    assert memory.reset_tasks(["a", "b"], only_from={TaskStatus.FAILED}) == ["b"]
    assert {type(status) for status in memory.get_statuses(["a", "b"]).values()} == {str}
    assert type(memory.get_task_status("a")) is str
    assert memory.get_statuses(["a", "b"]) == {"a": "completed", "b": "pending"}
