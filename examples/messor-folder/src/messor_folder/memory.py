"""``FolderMemory``: a Messor memory in a directory, one small file per task.

A task's file, named after a hash of its id, holds three lines: its id,
status, error, attempts and time; its data; its result (JSON text as the
core encoded it; an empty line: no result)::

    ["page-1", "completed", null, 1, 1714000000.0]
    {"url":"https://example.org/1"}
    [1,2]

Files are replaced whole (written beside, then renamed), so a killed process
never leaves a torn task; a call cut short may have applied some tasks. Each
write holds a lock on ``messor.lock`` from its look-up to its last rename,
against other threads and processes of this machine. POSIX only (fcntl).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from messor.plugin import (
    PENDING,
    ConfigurationError,
    EncodedUpdate,
    FileClaim,
    Memory,
    Release,
    Row,
    RunOwner,
    TaskNotFoundError,
    UpdateRule,
    changes_to_apply,
)


class FolderMemory(Memory):
    """A memory in the directory ``path``, made unless ``create`` is False."""

    keeps_times = True  # each file says when its state was recorded
    claims_runs = True  # a second run on the directory is refused (claim_run)

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        lock = self.path / "messor.lock"  # every write locks it; only a memory has one
        if not create and not lock.is_file():
            raise ConfigurationError(f"There is no folder memory at {self.path}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(lock, "a")  # noqa: SIM115 (held until close)
        except OSError as exc:
            raise ConfigurationError(f"Cannot use {self.path} as a memory: {exc}") from exc
        self._lock = threading.Lock()  # flock keeps processes apart, not threads

    def __repr__(self) -> str:
        return f"FolderMemory({str(self.path)!r})"

    # -- the five primitives ----------------------------------------------------

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        now = time.time()
        with self._locked():
            for task_id, data in tasks:
                if not self._file(task_id).exists():  # a known task stays as it is
                    self._write(Row(task_id, PENDING, updated_at=now, data_json=data))

    def update(
        self, changes: Sequence[EncodedUpdate], rule: UpdateRule = UpdateRule.OVERWRITE
    ) -> list[str]:
        now = time.time()
        with self._locked():  # the look-up and the writes are one step
            rows = self.lookup(list(dict.fromkeys(change.task_id for change in changes)))
            chosen = changes_to_apply(
                changes, lambda ids: {i: rows[i].status for i in ids if i in rows}, rule
            )
            for task_id, status, result, error, attempts in chosen:
                if task_id not in rows:  # checked before anything is written
                    raise TaskNotFoundError(task_id)
                data = rows[task_id].data_json
                rows[task_id] = Row(task_id, status, result, error, attempts, now, data)
            for task_id in dict.fromkeys(change.task_id for change in chosen):
                self._write(rows[task_id])
        return [change.task_id for change in chosen]

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        found = {task_id: self._read(self._file(task_id)) for task_id in task_ids}
        return {task_id: row for task_id, row in found.items() if row is not None}

    def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
        # Sorted names: a stable order. No lock: each file is read as it is reached.
        for file in sorted(self.path.glob("*.task")):
            row = self._read(file)
            if row is not None and (status is None or row.status == status):
                yield row

    def delete(self, task_ids: Iterable[str] | None) -> None:
        with self._locked():
            files = self.path.glob("*.task") if task_ids is None else map(self._file, task_ids)
            for file in files:
                file.unlink(missing_ok=True)

    def claim_run(self, owner: RunOwner) -> Release:
        return FileClaim(self.path / "messor.run").acquire(self, owner)

    def close(self) -> None:
        self._lock_file.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _file(self, task_id: str) -> Path:
        return self.path / f"{hashlib.sha256(task_id.encode()).hexdigest()}.task"

    def _read(self, file: Path) -> Row | None:
        try:
            state, data, result = file.read_text(encoding="utf-8").split("\n", 2)
        except FileNotFoundError:  # deleted meanwhile
            return None
        task_id, status, error, attempts, updated = json.loads(state)
        return Row(task_id, status, result or None, error, attempts, updated, data)

    def _write(self, row: Row) -> None:
        file = self._file(row.task_id)
        state = json.dumps([row.task_id, row.status, row.error, row.attempts, row.updated_at])
        temp = file.with_suffix(".tmp")
        temp.write_text(f"{state}\n{row.data_json}\n{row.result_json or ''}", encoding="utf-8")
        os.replace(temp, file)  # a reader sees the old file or the new one, never half
