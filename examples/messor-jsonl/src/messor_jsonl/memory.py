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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from messor.plugin import (
    PENDING,
    ConfigurationError,
    EncodedUpdate,
    Memory,
    Row,
    TaskNotFoundError,
    UpdateRule,
    changes_to_apply,
    check_task_id,
    encode_json,
)

__all__ = ["JSONLMemory"]

logger = logging.getLogger("messor")

#: The fields of a "set" line, and their types.
_SET_FIELDS = {"status": str, "error": str | None, "attempts": int}


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
        # Each task's row, replaced and never changed, so a snapshot needs no copy.
        self._rows: dict[str, Row] = {}
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

    # -- the primitives: each change is a line, each call one write -----------------

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            new: dict[str, Row] = {}
            for task_id, data in tasks:
                if task_id not in self._rows and task_id not in new:
                    new[task_id] = Row(task_id, PENDING, data_json=data)
            if new:
                self._append([_line("add", i, data=row.data_json) for i, row in new.items()])
                self._rows.update(new)

    def update(
        self, changes: Sequence[EncodedUpdate], rule: UpdateRule = UpdateRule.OVERWRITE
    ) -> list[str]:
        # Under the lock, as every write: the check and the write are one step.
        with self._lock:
            rows = self._rows
            chosen = changes_to_apply(
                changes, lambda ids: {i: rows[i].status for i in ids if i in rows}, rule
            )
            changed: dict[str, Row] = {}
            lines = []
            for task_id, status, result, error, attempts in chosen:
                if task_id not in rows:
                    raise TaskNotFoundError(task_id)
                changed[task_id] = rows[task_id]._replace(
                    status=status, result_json=result, error=error, attempts=attempts
                )
                values = {"status": status, "error": error, "attempts": attempts}
                lines.append(_line("set", task_id, values, result=result))
            if lines:
                self._append(lines)
                rows.update(changed)
        return [c.task_id for c in chosen]

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        with self._lock:
            return {i: self._rows[i] for i in task_ids if i in self._rows}

    def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
        # A snapshot, in the order the tasks were added: no lock held while the caller reads.
        with self._lock:
            rows = [row for row in self._rows.values() if status is None or row.status == status]
        yield from rows

    def delete(self, task_ids: Iterable[str] | None) -> None:
        with self._lock:
            if task_ids is None:
                os.ftruncate(self._fd, 0)
                self._rows.clear()
                return
            known = [i for i in dict.fromkeys(task_ids) if i in self._rows]
            if known:
                self._append([_line("forget", task_id) for task_id in known])
                for task_id in known:
                    del self._rows[task_id]

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

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
            self._rows.setdefault(task_id, Row(task_id, PENDING, data_json=data))
        elif op == "set":
            for key, kind in _SET_FIELDS.items():
                if not isinstance(change[key], kind):
                    raise TypeError(f"{key} is {change[key]!r}")
            result = encode_json(change["result"], task_id=task_id) if "result" in change else None
            self._rows[task_id] = self._rows[task_id]._replace(
                status=change["status"],
                result_json=result,
                error=change["error"],
                attempts=change["attempts"],
            )
        elif op == "forget":
            self._rows.pop(task_id, None)
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


def _line(
    op: str, task_id: str, values: Mapping[str, Any] | None = None, **texts: str | None
) -> bytes:
    """One change as a line: ``values`` as JSON, then ``texts``, already JSON (None: left out)."""
    # ASCII-only JSON (json.dumps's default): any str, lone surrogates included, comes back.
    head = json.dumps({"op": op, "id": task_id, **(values or {})}, separators=(",", ":"))
    tail = "".join(f',"{key}":{text}' for key, text in texts.items() if text is not None)
    return f"{head[:-1]}{tail}}}\n".encode()
