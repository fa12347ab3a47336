"""``JSONLMemory``: a Messor memory in a JSON-lines file, an append-only log of changes.

One JSON object per line and change::

    {"op":"add","id":"page-1","data":{"url":"https://example.org/1"}}
    {"op":"set","id":"page-1","status":"completed","error":null,"attempts":1,"result":[1,2]}
    {"op":"forget","id":"page-1"}

Opening the file replays it into a dict, which every read then uses. A crash
mid-write leaves a torn last line, which the next open drops (the lines before
it, of the same call, stay: at worst a few tasks run again); a complete line
that cannot be read is an error naming the file and line. One process at a
time; the file is never compacted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from messor.plugin import (
    COMPLETED,
    FAILED,
    PENDING,
    ConfigurationError,
    EncodedUpdate,
    Memory,
    StatusUpdate,
    TaskNotFoundError,
    TaskRecord,
    check_task_id,
    decode_json,
    encode_json,
    encode_tasks,
    encode_update,
)

__all__ = ["JSONLMemory"]

logger = logging.getLogger("messor")

#: The fields of a "set" line, and their types.
_SET_FIELDS = {"status": str, "error": str | None, "attempts": int}


class _Entry(NamedTuple):
    """One task; replaced, never changed, so a snapshot needs no copy."""

    data: str
    status: str = PENDING
    result: str | None = None
    error: str | None = None
    attempts: int = 0


class JSONLMemory(Memory):
    """A memory in the JSON-lines file ``path``, safe from many threads of one process.

    Lines reach the operating system at once, so a killed process loses
    nothing recorded. They reach the disk when the operating system writes
    them out: with ``fsync=True`` every call waits for that too (``os.fsync``),
    so a power cut loses nothing either, at the price of much slower writes.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = os.fspath(path)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot open the JSON-lines file {self.path} ({exc}); "
                "check that the path names a file in a directory you can write"
            ) from exc
        try:
            self._replay()
        except BaseException:
            os.close(self._fd)
            raise

    def __repr__(self) -> str:
        return f"JSONLMemory({self.path!r})"

    # -- the file ---------------------------------------------------------------

    def _replay(self) -> None:
        with open(self.path, "rb") as file:
            content = file.read()
        *lines, tail = content.split(b"\n")
        for number, line in enumerate(lines, start=1):
            try:
                self._apply_line(line)
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigurationError(
                    f"{self.path}, line {number}, is not a change this memory wrote "
                    f"({type(exc).__name__}: {exc}); repair or delete the line, or use another file"
                ) from None
        try:
            self._apply_line(tail)
        except (ValueError, TypeError, KeyError):
            logger.warning("%s: dropping a torn last line (an interrupted write)", self.path)
            os.ftruncate(self._fd, len(content) - len(tail))
        else:
            if tail.strip():  # a whole change whose newline was lost: end its line
                self._append([b"\n"])

    def _apply_line(self, line: bytes) -> None:
        """Apply one change read from the file (ValueError, TypeError or KeyError if bad)."""
        if not line.strip():
            return
        change = json.loads(line)
        op, task_id = change["op"], check_task_id(change["id"])
        if op == "add":
            data = encode_json(change["data"], task_id=task_id, what="data")
            self._entries.setdefault(task_id, _Entry(data))
        elif op == "set":
            for key, kind in _SET_FIELDS.items():
                if not isinstance(change[key], kind):
                    raise TypeError(f"{key} is {change[key]!r}")
            result = encode_json(change["result"], task_id=task_id) if "result" in change else None
            data = self._entries[task_id].data
            self._entries[task_id] = _Entry(
                data, change["status"], result, change["error"], change["attempts"]
            )
        elif op == "forget":
            self._entries.pop(task_id, None)
        else:
            raise ValueError(f"unknown op {op!r}")

    def _append(self, lines: Sequence[bytes]) -> None:
        """Write ``lines`` in one call; on failure, cut the file back to where it was."""
        data = memoryview(b"".join(lines))
        start = os.fstat(self._fd).st_size
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            if self._fsync:
                os.fsync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, start)
            raise

    # -- the seed's methods ---------------------------------------------------------

    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        rows = encode_tasks(tasks)
        with self._lock:
            new: dict[str, _Entry] = {}
            for task_id, data in rows:
                if task_id not in self._entries and task_id not in new:
                    new[task_id] = _Entry(data)
            lines = [_line("add", task_id, data=entry.data) for task_id, entry in new.items()]
            if lines:
                self._append(lines)
                self._entries.update(new)

    def update_task_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        self._update([encode_update(update) for update in statuses], keep_completed=False)

    def get_task_status(self, task_id: str) -> str:
        return self._entry(task_id).status

    def get_pending_tasks(self) -> list[str]:
        return [task_id for task_id, _ in self._with_status(PENDING)]

    def get_completed_tasks(self) -> list[str]:
        return [task_id for task_id, _ in self._with_status(COMPLETED)]

    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        return [(task_id, entry.error) for task_id, entry in self._with_status(FAILED)]

    def get_task_result(self, task_id: str) -> Any:
        return _decoded(self._entry(task_id).result)

    def clear(self) -> None:
        with self._lock:
            os.ftruncate(self._fd, 0)
            self._entries.clear()

    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            known = [i for i in dict.fromkeys(task_ids) if i in self._entries]
            if known:
                self._append([_line("forget", task_id) for task_id in known])
                for task_id in known:
                    del self._entries[task_id]

    def dump_all(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            entries = list(self._entries.items())
        return {
            "task_definitions": {i: decode_json(e.data) for i, e in entries},
            "task_statuses": {i: e.status for i, e in entries},
            "task_results": {i: decode_json(e.result) for i, e in entries if e.result is not None},
            "task_errors": {i: e.error for i, e in entries if e.error is not None},
        }

    # -- faster than the base class's defaults ------------------------------------

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        self._update(outcomes, keep_completed=True)

    def count_by_status(self) -> dict[str, int]:
        counts = {PENDING: 0, COMPLETED: 0, FAILED: 0}
        with self._lock:
            for entry in self._entries.values():
                counts[entry.status] = counts.get(entry.status, 0) + 1
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        with self._lock:
            return {i: self._entries[i].status for i in task_ids if i in self._entries}

    def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
        for task_id, e in self._with_status(status):
            yield TaskRecord(task_id, e.status, _decoded(e.result), e.error, e.attempts)

    def reset_tasks(self, task_ids: Iterable[str], *, only_from: Collection[str]) -> list[str]:
        allowed = set(only_from)
        reset = {"status": PENDING, "error": None, "attempts": 0}
        # Under the lock, as every write: the check and the reset are one step.
        with self._lock:
            chosen = [
                task_id
                for task_id in dict.fromkeys(task_ids)
                if task_id in self._entries and self._entries[task_id].status in allowed
            ]
            if chosen:
                self._append([_line("set", task_id, reset) for task_id in chosen])
                for task_id in chosen:
                    self._entries[task_id] = _Entry(self._entries[task_id].data)
        return chosen

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # -- helpers ------------------------------------------------------------------

    def _update(self, rows: Sequence[EncodedUpdate], *, keep_completed: bool) -> None:
        """Apply rows in order, all or none; with ``keep_completed``, never over a success."""
        with self._lock:
            changed: dict[str, _Entry] = {}
            lines = []
            for task_id, status, result, error, attempts in rows:
                entry = changed.get(task_id) or self._entries.get(task_id)
                if entry is None:
                    raise TaskNotFoundError(task_id)
                if keep_completed and entry.status == COMPLETED and status != COMPLETED:
                    continue
                changed[task_id] = entry._replace(
                    status=status, result=result, error=error, attempts=attempts
                )
                values = {"status": status, "error": error, "attempts": attempts}
                lines.append(_line("set", task_id, values, result=result))
            if lines:
                self._append(lines)
                self._entries.update(changed)

    def _entry(self, task_id: str) -> _Entry:
        with self._lock:
            try:
                return self._entries[task_id]
            except KeyError:
                raise TaskNotFoundError(task_id) from None

    def _with_status(self, status: str | None) -> list[tuple[str, _Entry]]:
        """A snapshot of the tasks with ``status`` (all if None), in the order they were added."""
        with self._lock:
            return [
                (task_id, entry)
                for task_id, entry in self._entries.items()
                if status is None or entry.status == status
            ]


def _line(
    op: str, task_id: str, values: Mapping[str, Any] | None = None, **texts: str | None
) -> bytes:
    """One change as a line: ``values`` as JSON, then ``texts``, already JSON (None: left out)."""
    # ASCII-only JSON (json.dumps's default): any str, lone surrogates included, comes back.
    head = json.dumps({"op": op, "id": task_id, **(values or {})}, separators=(",", ":"))
    tail = "".join(f',"{key}":{text}' for key, text in texts.items() if text is not None)
    return f"{head[:-1]}{tail}}}\n".encode()


def _decoded(text: str | None) -> Any:
    return None if text is None else decode_json(text)
