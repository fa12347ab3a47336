"""A memory written as a new third party would: the five primitives and nothing else.

It proves that every other method of ``messor.Memory``, the seed's included,
is derived correctly from the primitives: the whole contract suite and the
executor tests run against it. It declares no capability.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from messor.errors import TaskNotFoundError
from messor.memories.base import EncodedUpdate, Memory, Row, UpdateRule, changes_to_apply


class PrimitivesOnlyMemory(Memory):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Row] = {}

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for task_id, data in tasks:
                self._rows.setdefault(task_id, Row(task_id, "pending", data_json=data))

    def update(
        self, changes: Sequence[EncodedUpdate], rule: UpdateRule = UpdateRule.OVERWRITE
    ) -> list[str]:
        with self._lock:
            rows = self._rows
            chosen = changes_to_apply(
                changes, lambda ids: {i: rows[i].status for i in ids if i in rows}, rule
            )
            for change in chosen:
                if change.task_id not in rows:
                    raise TaskNotFoundError(change.task_id)
            for task_id, status, result, error, attempts in chosen:
                data = rows[task_id].data_json
                rows[task_id] = Row(task_id, status, result, error, attempts, data_json=data)
        return [change.task_id for change in chosen]

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        with self._lock:
            return {i: self._rows[i] for i in task_ids if i in self._rows}

    def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
        with self._lock:
            rows = [r for r in self._rows.values() if status is None or r.status == status]
        yield from rows

    def delete(self, task_ids: Iterable[str] | None) -> None:
        with self._lock:
            for task_id in list(self._rows) if task_ids is None else task_ids:
                self._rows.pop(task_id, None)
