"""The S3 memory's picture of its tasks: an index folded from log events.

Every change is an event in a log segment (see :mod:`messor_s3.memory`):

* ``["s", id, data]``: store a task (if it is not known yet);
* ``["u", id, status, result, blob, error, keep]``: set a task's state; the
  result is inline JSON text, or ``blob`` says where it lies;
* ``["d", id]``: forget a task.

Each event carries a stamp, ``(segment name, position)``, and a task keeps the
stamp of the event that last set it. An event older than that stamp changes
nothing, so the fold gives the same index whatever order segments are read in
(another writer's segment may become visible late). ``keep`` marks an
executor's outcome: a failure never replaces a completed result.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from messor.memory import COMPLETED, PENDING

__all__ = ["Blob", "Entry", "Index", "Stamp"]

#: ``(segment name, position in it)``: orders events across writers by time.
Stamp = tuple[str, int]
#: ``(blob name, offset, length)``: where a large result lies.
Blob = tuple[str, int, int]


@dataclass(slots=True)
class Entry:
    """One task: its data, status, result (inline or in a blob) and error."""

    data: str
    status: str
    result: str | None
    blob: Blob | None
    error: str | None
    stamp: Stamp


class Index:
    """Task id -> :class:`Entry`, kept by applying events."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def apply(self, events: Iterable[list[Any]], segment: str) -> None:
        """Apply the events of ``segment``, in order."""
        entries = self.entries
        for position, event in enumerate(events):
            stamp = (segment, position)
            kind, task_id = event[0], event[1]
            entry = entries.get(task_id)
            if kind == "s":
                if entry is None:
                    entries[task_id] = Entry(_shared(event[2]), PENDING, None, None, None, stamp)
            elif kind == "u":
                _, _, status, result, blob, error, keep = event
                status, result = sys.intern(status), _small(result)
                if entry is None:
                    # Another writer's store is not visible yet: keep the state.
                    entries[task_id] = Entry("{}", status, result, _blob(blob), error, stamp)
                elif stamp > entry.stamp and not (
                    keep and status != COMPLETED and entry.status == COMPLETED
                ):
                    entry.status, entry.result, entry.blob = status, result, _blob(blob)
                    entry.error, entry.stamp = error, stamp
            elif kind == "d":
                if entry is not None and stamp > entry.stamp:
                    del entries[task_id]
            else:
                raise ValueError(f"unknown event {kind!r} in segment {segment}")

    def rows(self) -> Iterator[list[Any]]:
        """The index as rows, for a snapshot."""
        for task_id, e in self.entries.items():
            yield [task_id, e.data, e.status, e.result, e.blob, e.error, *e.stamp]

    @classmethod
    def from_rows(cls, rows: Iterable[list[Any]]) -> Index:
        index = cls()
        segments: dict[str, str] = {}
        for task_id, data, status, result, blob, error, segment, position in rows:
            stamp = (segments.setdefault(segment, segment), position)
            index.entries[task_id] = Entry(
                _shared(data), sys.intern(status), _small(result), _blob(blob), error, stamp
            )
        return index


def _shared(text: str) -> str:
    """One shared object for the short texts most tasks repeat ({}, null, true, ...)."""
    return sys.intern(text) if len(text) <= 8 else text


def _small(text: str | None) -> str | None:
    return None if text is None else _shared(text)


def _blob(value: Any) -> Blob | None:
    return None if value is None else (str(value[0]), int(value[1]), int(value[2]))
