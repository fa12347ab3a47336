"""A memory written as a third party would write one against the seed: only the seed's methods.

It proves that the defaults of ``messor.Memory`` (counts, batch look-ups,
iteration) are correct on their own: the whole contract suite and the
executor tests run against it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from messor import Memory


def _json(value: Any, task_id: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"task {task_id!r}: not JSON: {exc}") from exc


class SeedOnlyMemory(Memory):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}

    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        rows = []
        for task_id, data in tasks:
            if not isinstance(task_id, str):
                raise TypeError(f"task id {task_id!r} is not a str")
            rows.append((task_id, _json(data, task_id)))
        with self._lock:
            for task_id, text in rows:
                self._rows.setdefault(
                    task_id, {"data": text, "status": "pending", "result": None, "error": None}
                )

    def update_task_statuses(self, statuses: Sequence[tuple[str, str, Any, str | None]]) -> None:
        rows = [
            (task_id, status, None if result is None else _json(result, task_id), error)
            for task_id, status, result, error in statuses
        ]
        with self._lock:
            for task_id, *_ in rows:
                if task_id not in self._rows:
                    raise KeyError(f"Task with ID {task_id!r} not found")
            for task_id, status, result, error in rows:
                self._rows[task_id].update(status=status, result=result, error=error)

    def get_task_status(self, task_id: str) -> str:
        with self._lock:
            if task_id not in self._rows:
                raise KeyError(f"Task with ID {task_id!r} not found")
            status: str = self._rows[task_id]["status"]
            return status

    def _ids(self, status: str) -> list[str]:
        with self._lock:
            return [i for i, row in self._rows.items() if row["status"] == status]

    def get_pending_tasks(self) -> list[str]:
        return self._ids("pending")

    def get_completed_tasks(self) -> list[str]:
        return self._ids("completed")

    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return [(i, r["error"]) for i, r in self._rows.items() if r["status"] == "failed"]

    def get_task_result(self, task_id: str) -> Any:
        with self._lock:
            if task_id not in self._rows:
                raise KeyError(f"Task with ID {task_id!r} not found")
            text = self._rows[task_id]["result"]
        return None if text is None else json.loads(text)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            for task_id in task_ids:
                self._rows.pop(task_id, None)

    def dump_all(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = {i: dict(r) for i, r in self._rows.items()}
        return {
            "task_definitions": {i: json.loads(r["data"]) for i, r in rows.items()},
            "task_statuses": {i: r["status"] for i, r in rows.items()},
            "task_results": {
                i: json.loads(r["result"]) for i, r in rows.items() if r["result"] is not None
            },
            "task_errors": {i: r["error"] for i, r in rows.items() if r["error"] is not None},
        }
