"""When each state was recorded: for a memory that declares ``keeps_times``.

``messor status`` turns these times into the recent rate of a running harvest.
"""

from __future__ import annotations

import time

import pytest

from messor.memories.base import COMPLETED, FAILED, EncodedUpdate, Memory
from messor.testing.common import ContractPart

__all__ = ["TimesContract"]


class TimesContract(ContractPart):
    """``count_since``, ``earliest_since`` and ``TaskRecord.updated_at``."""

    def test_keeps_times_says_whether_the_memory_answers_with_times(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        memory.record_outcomes([EncodedUpdate("a", COMPLETED, "1", None)])
        [record] = memory.iter_records()
        if memory.keeps_times:
            assert memory.count_since(0) == {COMPLETED: 1}
            assert record.updated_at is not None
        else:
            # A memory that keeps no times says so, and gives none.
            assert (memory.count_since(0), memory.earliest_since(0)) == (None, None)
            assert record.updated_at is None

    def test_times_of_changes_when_the_memory_keeps_them(self, memory: Memory) -> None:
        if not memory.keeps_times:
            pytest.skip(f"{type(memory).__name__} keeps no times (keeps_times is False)")
        before = time.time()
        memory.store_tasks([("old", {}), ("a", {}), ("b", {})])
        memory.record_outcomes([EncodedUpdate("old", COMPLETED, "1", None)])
        time.sleep(0.01)
        middle = time.time()
        memory.record_outcomes(
            [EncodedUpdate("a", COMPLETED, "2", None), EncodedUpdate("b", FAILED, None, "e")]
        )
        after = time.time()
        assert memory.count_since(middle) == {COMPLETED: 1, FAILED: 1}
        assert memory.count_since(before) == {COMPLETED: 2, FAILED: 1}
        assert sum(memory.count_since(after + 1).values()) == 0  # type: ignore[union-attr]
        times = {r.task_id: r.updated_at for r in memory.iter_records()}
        assert before <= times["old"] <= middle <= times["a"] <= after  # type: ignore[operator]
        assert memory.earliest_since(middle) == {COMPLETED: times["a"], FAILED: times["b"]}
        assert memory.earliest_since(after + 1) == {}
