"""Large results: stored whole up to the limit the memory declares, refused beyond it.

A memory declares ``max_result_bytes``, the largest result (as JSON text) it
stores; the base class refuses a larger one with
:class:`~messor.errors.ResultTooLargeError` before it reaches the store. Its
real limit is far too large to test (SQLite's is 1 GB), so these tests lower
it on the memory under test: a memory that overrides ``record_outcomes`` or
``update_task_statuses`` must honour the attribute as the base class does.
"""

from __future__ import annotations

import pytest

from messor.errors import ResultTooLargeError
from messor.executors.threads import LocalThreadedExecutor
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate, Memory, encode_json
from messor.tasks import FunctionTask
from messor.testing.common import ContractPart

__all__ = ["LimitsContract"]

#: The limit these tests give the memory: small enough to exceed cheaply.
SMALL_LIMIT = 1000


def _text(length: int) -> str:
    """A result whose JSON text is ``length`` bytes."""
    return "x" * (length - 2)


class LimitsContract(ContractPart):
    """Results of several megabytes, and the declared limit ``max_result_bytes``."""

    @pytest.fixture
    def limited(self, memory: Memory) -> Memory:
        """The memory, its limit lowered to :data:`SMALL_LIMIT` bytes."""
        if memory.max_result_bytes is None:
            pytest.skip(f"{type(memory).__name__} declares no limit (max_result_bytes is None)")
        memory.max_result_bytes = SMALL_LIMIT
        return memory

    def test_a_result_of_several_megabytes_is_stored_whole(self, memory: Memory) -> None:
        big = {"page": "x" * 5_000_000, "more": ["y" * 1000] * 1000}
        memory.store_tasks([("big", {})])
        memory.record_outcomes(
            [EncodedUpdate("big", COMPLETED, encode_json(big, task_id="big"), None)]
        )
        assert memory.get_task_result("big") == big

    def test_a_result_at_the_limit_is_stored(self, limited: Memory) -> None:
        limited.store_tasks([("a", {})])
        limited.update_task_statuses([("a", COMPLETED, _text(SMALL_LIMIT), None)])
        assert limited.get_task_result("a") == _text(SMALL_LIMIT)

    def test_a_result_over_the_limit_is_refused_naming_it_and_nothing_of_the_call_recorded(
        self, limited: Memory
    ) -> None:
        limited.store_tasks([("small", {}), ("big", {})])
        over = f'"{_text(SMALL_LIMIT + 1)}"'
        with pytest.raises(ResultTooLargeError, match="'big'"):
            limited.record_outcomes(
                [
                    EncodedUpdate("small", COMPLETED, "1", None),
                    EncodedUpdate("big", COMPLETED, over, None),
                ]
            )
        with pytest.raises(ResultTooLargeError, match="'big'"):
            limited.update_task_statuses([("big", COMPLETED, _text(SMALL_LIMIT + 1), None)])
        assert limited.get_statuses(["small", "big"]) == {"small": PENDING, "big": PENDING}

    def test_a_harvest_fails_only_the_task_whose_result_is_over_the_limit(
        self, limited: Memory
    ) -> None:
        tasks = [FunctionTask(f"t{n}", _text, SMALL_LIMIT + 1 if n == 2 else 10) for n in range(5)]
        report = LocalThreadedExecutor(tasks, memory=limited).run()
        [(task_id, error)] = limited.get_failed_tasks()
        assert task_id == "t2"
        assert "bytes" in (error or "")
        assert (report.completed, report.failed) == (4, 1)
        assert report.refused_results[0][0] == "t2"
        assert limited.count_by_status() == {PENDING: 0, COMPLETED: 4, FAILED: 1}
