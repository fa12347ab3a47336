"""``InProcessMemory`` (``memory://``): a memory that lives as long as the process.

For tests, notebooks and throw-away runs. Values are kept as JSON text, like
every other memory, so that a result reads back as a copy with exactly the
round-trip semantics of a persistent store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from messor.errors import TaskNotFoundError
from messor.memories.base import (
    COMPLETED,
    FAILED,
    PENDING,
    EncodedUpdate,
    Memory,
    StatusUpdate,
    TaskRecord,
    decode_json,
    encode_tasks,
    encode_update,
)
from messor.memories.claims import LocalClaim, Release, RunOwner

__all__ = ["InProcessMemory"]


@dataclass(slots=True)
class _Entry:
    data: str
    status: str = PENDING
    result: str | None = None
    error: str | None = None
    attempts: int = 0
    updated: float = 0.0


class InProcessMemory(Memory):
    """A memory in a dict, safe from many threads; gone when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._claim = LocalClaim()
        self._beats: dict[str, str] = {}

    def __repr__(self) -> str:
        return "InProcessMemory()"

    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        rows = encode_tasks(tasks)
        now = time.time()
        with self._lock:
            for task_id, data in rows:
                self._entries.setdefault(task_id, _Entry(data, updated=now))

    def update_task_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        self._update([encode_update(update) for update in statuses], keep_completed=False)

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        self._update(outcomes, keep_completed=True)

    def _update(self, rows: Sequence[EncodedUpdate], *, keep_completed: bool) -> None:
        now = time.time()
        with self._lock:
            for row in rows:
                if row.task_id not in self._entries:
                    raise TaskNotFoundError(row.task_id)
            for task_id, status, result, error, attempts in rows:
                entry = self._entries[task_id]
                if keep_completed and entry.status == COMPLETED and status != COMPLETED:
                    continue
                entry.status, entry.result, entry.error = status, result, error
                entry.attempts, entry.updated = attempts, now

    def get_task_status(self, task_id: str) -> str:
        return self._entry(task_id).status

    def get_pending_tasks(self) -> list[str]:
        return [task_id for task_id, _ in self._with_status(PENDING)]

    def get_completed_tasks(self) -> list[str]:
        return [task_id for task_id, _ in self._with_status(COMPLETED)]

    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        return [(task_id, entry.error) for task_id, entry in self._with_status(FAILED)]

    def get_task_result(self, task_id: str) -> Any:
        text = self._entry(task_id).result
        return None if text is None else decode_json(text)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._beats.clear()

    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            for task_id in task_ids:
                self._entries.pop(task_id, None)

    def dump_all(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            entries = [(task_id, _copy(entry)) for task_id, entry in self._entries.items()]
        return {
            "task_definitions": {task_id: decode_json(e.data) for task_id, e in entries},
            "task_statuses": {task_id: e.status for task_id, e in entries},
            "task_results": {
                task_id: decode_json(e.result) for task_id, e in entries if e.result is not None
            },
            "task_errors": {task_id: e.error for task_id, e in entries if e.error is not None},
        }

    def count_by_status(self) -> dict[str, int]:
        counts = {PENDING: 0, COMPLETED: 0, FAILED: 0}
        with self._lock:
            for entry in self._entries.values():
                counts[entry.status] = counts.get(entry.status, 0) + 1
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        with self._lock:
            entries = self._entries
            return {i: entries[i].status for i in task_ids if i in entries}

    def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
        for task_id, entry in self._with_status(status):
            result = None if entry.result is None else decode_json(entry.result)
            yield TaskRecord(
                task_id, entry.status, result, entry.error, entry.attempts, entry.updated
            )

    def reset_tasks(self, task_ids: Iterable[str], *, only_from: Collection[str]) -> list[str]:
        allowed = set(only_from)
        now = time.time()
        chosen = []
        with self._lock:
            for task_id in dict.fromkeys(task_ids):
                entry = self._entries.get(task_id)
                if entry is not None and entry.status in allowed:
                    self._entries[task_id] = _Entry(entry.data, updated=now)
                    chosen.append(task_id)
        return chosen

    def claim_run(self, owner: RunOwner) -> Release:
        return self._claim.acquire(self, owner)

    def count_since(self, since: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for entry in self._entries.values():
                if entry.updated >= since:
                    counts[entry.status] = counts.get(entry.status, 0) + 1
        return counts

    def earliest_since(self, since: float) -> dict[str, float]:
        earliest: dict[str, float] = {}
        with self._lock:
            for entry in self._entries.values():
                known = earliest.get(entry.status)
                if entry.updated >= since and (known is None or entry.updated < known):
                    earliest[entry.status] = entry.updated
        return earliest

    # -- run heartbeats --------------------------------------------------------

    keeps_beats = True

    def write_beat(self, run_id: str, beat_json: str) -> None:
        with self._lock:
            self._beats[run_id] = beat_json

    def read_beats(self) -> dict[str, str]:
        with self._lock:
            return dict(self._beats)

    def delete_beats(self, run_ids: Iterable[str]) -> None:
        with self._lock:
            for run_id in run_ids:
                self._beats.pop(run_id, None)

    def _entry(self, task_id: str) -> _Entry:
        with self._lock:
            try:
                return _copy(self._entries[task_id])
            except KeyError:
                raise TaskNotFoundError(task_id) from None

    def _with_status(self, status: str | None) -> list[tuple[str, _Entry]]:
        """A snapshot of the entries with ``status`` (all if None), in insertion order."""
        with self._lock:
            return [
                (task_id, _copy(entry))
                for task_id, entry in self._entries.items()
                if status is None or entry.status == status
            ]


def _copy(entry: _Entry) -> _Entry:
    return _Entry(
        entry.data, entry.status, entry.result, entry.error, entry.attempts, entry.updated
    )
