"""``S3Memory``: a Messor memory under one S3 prefix, cheap in requests.

Layout under ``s3://bucket/prefix/``:

* ``log/<time>-<writer>-<seq>.json.gz``: one immutable segment of events per
  call that changes anything (a batch of outcomes is one PUT). Writers never
  overwrite each other's objects, and a PUT is atomic: a crash leaves no
  half-written state.
* ``blobs/<uuid>``: results larger than ``INLINE_BYTES``, packed per batch,
  read back with one ranged GET each.
* ``log/~snapshot-<time>-<writer>.json.gz`` and ``HEAD``: compaction folds
  the segments into a snapshot of the whole index and points ``HEAD`` at it
  with a conditional write (If-Match), then deletes the segments it covers. A
  resume reads one listing, HEAD, the snapshot and the few segments since.
  Snapshots sort after segments in the same listing, so the one LIST a
  refresh makes also shows a new snapshot: another writer compacted, maybe
  deleting segments this memory never saw, and the index is read afresh.

The index lives in RAM once read: answers come from it, refreshed by one
listing at most every ``refresh_interval`` seconds (this memory's own writes
show at once; another writer's within that interval).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from messor import Memory, TaskNotFoundError
from messor.errors import MemoryUnavailableError, TaskDataError
from messor.memory import (
    COMPLETED,
    FAILED,
    PENDING,
    EncodedUpdate,
    StatusUpdate,
    TaskRecord,
    decode_json,
    encode_tasks,
    encode_update,
)
from messor_s3.bucket import Bucket, ConditionFailed, decode, encode
from messor_s3.index import Blob, Entry, Index

__all__ = ["S3Memory"]

#: Results up to this size live in the index itself; larger ones in blobs.
INLINE_BYTES = 256
#: A blob object gathers large results up to about this size.
BLOB_BYTES = 64 * 1024 * 1024
#: S3's limit for one PUT.
MAX_RESULT_BYTES = 5 * 1024**3
#: Segments written since the last snapshot before this memory compacts.
COMPACT_AFTER = 64
#: Snapshot names start so, after every segment name ("~" sorts after digits).
SNAPSHOT = "log/~snapshot-"


class S3Memory(Memory):
    """A memory under ``s3://bucket/prefix``; see the module docstring for its layout."""

    def __init__(
        self,
        bucket: Bucket,
        *,
        refresh_interval: float = 1.0,
        batch_delay: float = 0.5,
    ) -> None:
        self.store = bucket
        self.refresh_interval = refresh_interval
        self.batch_delay = batch_delay
        self._lock = threading.RLock()
        self._writer = uuid.uuid4().hex[:12]
        self._sequence = 0
        self._index = Index()
        self._applied: set[str] = set()  # segments folded into the index
        self._head: str | None = None  # ETag of HEAD when the index was loaded
        self._snapshot: str | None = None
        self._known_snapshots: set[str] = set()  # listed ones that need no reload
        self._loaded = False
        self._last_refresh = 0.0
        self._uncovered = 0  # segments written or read since the snapshot

    def __repr__(self) -> str:
        return f"S3Memory({self.store.location!r})"

    # -- reading the log ------------------------------------------------------

    def load(self) -> None:
        """Read the index afresh: HEAD, its snapshot, then the segments since."""
        with self._lock:
            while not self._load_once():
                pass  # compacted by another writer meanwhile: read the new snapshot

    def _load_once(self) -> bool:
        # List first, then read HEAD: a snapshot in the listing that HEAD does
        # not name yet cannot have had its segments deleted before the listing.
        listed = list(self.store.names("log"))
        self._index, self._applied, self._snapshot, self._head = Index(), set(), None, None
        found = self.store.get("HEAD")
        if found is not None:
            self._snapshot, self._head = json.loads(found[0])["snapshot"], found[1]
            snapshot = self.store.get(self._snapshot)
            if snapshot is None:
                return False
            document = decode(snapshot[0])
            self._index = Index.from_rows(document["tasks"])
            self._applied = set(document["segments"])
        self._known_snapshots = {n for n in listed if n.startswith(SNAPSHOT)}
        self._loaded, self._uncovered = True, 0
        return self._apply_listed(listed)

    def refresh(self, *, force: bool = False) -> None:
        """Fold in other writers' segments (at most every ``refresh_interval`` unless forced)."""
        with self._lock:
            stale = force or time.monotonic() - self._last_refresh >= self.refresh_interval
            if self._loaded and stale:
                self._read_new_segments()
            if not self._loaded:
                self.load()

    def _read_new_segments(self) -> list[str] | None:
        """Fold in the segments not read yet; return the listed names (None: load afresh)."""
        listed = list(self.store.names("log"))
        if any(n.startswith(SNAPSHOT) and n not in self._known_snapshots for n in listed):
            self._loaded = False  # another writer compacted
            return None
        return listed if self._apply_listed(listed) else None

    def _apply_listed(self, listed: list[str]) -> bool:
        """Fold in the listed segments not read yet; False if one vanished (load afresh)."""
        self._last_refresh = time.monotonic()
        for name in listed:
            if name in self._applied or name.startswith(SNAPSHOT):
                continue
            found = self.store.get(name)
            if found is None:  # deleted by a compaction, which covers it
                self._loaded = False
                return False
            self._index.apply(decode(found[0])["events"], name)
            self._applied.add(name)
            self._uncovered += 1
        return True

    # -- writing the log ------------------------------------------------------

    def _write(self, events: list[list[Any]]) -> None:
        """Append one segment of ``events`` and fold it in; compact now and then."""
        self._sequence += 1
        name = f"log/{time.time_ns():020d}-{self._writer}-{self._sequence:08d}.json.gz"
        self.store.put(name, encode({"events": events}), if_absent=True)
        self._index.apply(events, name)
        self._applied.add(name)
        self._uncovered += 1
        if self._uncovered >= COMPACT_AFTER:
            self._compact()

    def _update_events(self, rows: Sequence[EncodedUpdate], keep: bool) -> list[list[Any]]:
        """Events for ``rows``; large results go to blobs first, so no event points nowhere."""
        large = {
            position: row.result_json
            for position, row in enumerate(rows)
            if row.result_json is not None and len(row.result_json) > INLINE_BYTES
        }
        blobs = self._write_blobs(large)
        return [
            [
                "u",
                row.task_id,
                row.status,
                None if position in blobs else row.result_json,
                blobs.get(position),
                row.error,
                1 if keep else 0,
            ]
            for position, row in enumerate(rows)
        ]

    def _write_blobs(self, texts: dict[int, str]) -> dict[int, Blob]:
        """Pack results into blob objects of about ``BLOB_BYTES``; return where each lies."""
        placed: dict[int, Blob] = {}
        pending: list[tuple[int, bytes]] = []
        size = 0

        def put() -> None:
            name = f"blobs/{uuid.uuid4().hex}"
            offset = 0
            for position, body in pending:
                placed[position] = (name, offset, len(body))
                offset += len(body)
            self.store.put(name, b"".join(body for _, body in pending))
            pending.clear()

        for position, text in texts.items():
            body = text.encode()  # encode_json's output is ASCII
            if pending and size + len(body) > BLOB_BYTES:
                put()
                size = 0
            pending.append((position, body))
            size += len(body)
        if pending:
            put()
        return placed

    def _compact(self) -> None:
        """Fold everything into a new snapshot, point HEAD at it, delete what it covers.

        HEAD only moves by a conditional write from the ETag this memory read:
        if another writer compacted meanwhile, this snapshot is dropped (the
        other one is as good) and the index is read afresh next time.
        """
        listed = self._read_new_segments()
        if listed is None:
            return  # compacted by another writer meanwhile
        covered = sorted(self._applied & set(listed))
        name = f"{SNAPSHOT}{time.time_ns():020d}-{self._writer}.json.gz"
        self._known_snapshots.add(name)
        self.store.put(name, encode({"segments": covered, "tasks": list(self._index.rows())}))
        head = json.dumps({"snapshot": name}).encode()
        try:
            if self._head is None:
                etag = self.store.put("HEAD", head, if_absent=True)
            else:
                etag = self.store.put("HEAD", head, if_match=self._head)
        except ConditionFailed:
            self.store.delete([name])
            self._loaded = False
            return
        old = [self._snapshot] if self._snapshot else []
        self._head, self._snapshot, self._uncovered = etag, name, 0
        self.store.delete(old + covered)

    # -- the seed's methods ---------------------------------------------------

    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        rows = encode_tasks(tasks)
        with self._lock:
            self.refresh()
            entries = self._index.entries
            new: dict[str, str] = {}
            for task_id, data in rows:
                if task_id not in entries:
                    new.setdefault(task_id, data)
            if new:
                self._write([["s", task_id, data] for task_id, data in new.items()])

    def update_task_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        self._update([encode_update(update) for update in statuses], keep=False)

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        self._update(outcomes, keep=True)

    def _update(self, rows: Sequence[EncodedUpdate], *, keep: bool) -> None:
        for row in rows:
            if row.result_json is not None and len(row.result_json) > MAX_RESULT_BYTES:
                raise TaskDataError(
                    f"The result of task {row.task_id!r} is {len(row.result_json)} bytes, more "
                    "than one S3 object holds (5 GB); store it elsewhere and return a reference"
                )
        with self._lock:
            self.refresh()
            unknown = [row.task_id for row in rows if row.task_id not in self._index.entries]
            if unknown:
                self.refresh(force=True)  # stored by another writer a moment ago?
                for task_id in unknown:
                    if task_id not in self._index.entries:
                        raise TaskNotFoundError(task_id)
            if rows:
                self._write(self._update_events(rows, keep))

    def get_task_status(self, task_id: str) -> str:
        return self._entry(task_id).status

    def get_pending_tasks(self) -> list[str]:
        return [task_id for task_id, _ in self._with_status(PENDING)]

    def get_completed_tasks(self) -> list[str]:
        return [task_id for task_id, _ in self._with_status(COMPLETED)]

    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        return [(task_id, entry.error) for task_id, entry in self._with_status(FAILED)]

    def get_task_result(self, task_id: str) -> Any:
        return self._result(self._entry(task_id))

    def clear(self) -> None:
        with self._lock:
            names = [n for folder in ("log", "blobs") for n in self.store.names(folder)]
            self.store.delete([*names, "HEAD"])
            self._index, self._applied, self._head, self._snapshot = Index(), set(), None, None
            self._known_snapshots = set()
            self._uncovered = 0
            self._loaded = True
            self._last_refresh = time.monotonic()

    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            self.refresh()
            known = [i for i in dict.fromkeys(task_ids) if i in self._index.entries]
            if known:
                self._write([["d", task_id] for task_id in known])

    def dump_all(self) -> dict[str, dict[str, Any]]:
        entries = self._with_status(None)
        return {
            "task_definitions": {i: decode_json(e.data) for i, e in entries},
            "task_statuses": {i: e.status for i, e in entries},
            "task_results": {
                i: self._result(e) for i, e in entries if e.result is not None or e.blob
            },
            "task_errors": {i: e.error for i, e in entries if e.error is not None},
        }

    # -- from the index ---------------------------------------------------------

    def count_by_status(self) -> dict[str, int]:
        counts = {PENDING: 0, COMPLETED: 0, FAILED: 0}
        with self._lock:
            self.refresh()
            counts.update(Counter(entry.status for entry in self._index.entries.values()))
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        with self._lock:
            self.refresh()
            entries = self._index.entries
            return {i: entries[i].status for i in task_ids if i in entries}

    def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
        for task_id, entry in self._with_status(status):
            yield TaskRecord(task_id, entry.status, self._result(entry), entry.error)

    def flush(self) -> None:
        """Compact after a run, so that the next one resumes from a handful of requests."""
        with self._lock:
            if self._loaded and self._uncovered:
                self._compact()

    # -- helpers --------------------------------------------------------------

    def _entry(self, task_id: str) -> Entry:
        with self._lock:
            self.refresh()
            entry = self._index.entries.get(task_id)
            if entry is None:
                raise TaskNotFoundError(task_id)
            return _copy(entry)

    def _with_status(self, status: str | None) -> list[tuple[str, Entry]]:
        with self._lock:
            self.refresh()
            return [
                (task_id, _copy(entry))
                for task_id, entry in self._index.entries.items()
                if status is None or entry.status == status
            ]

    def _result(self, entry: Entry) -> Any:
        if entry.blob is not None:
            name, offset, length = entry.blob
            found = self.store.get(name, (offset, offset + length - 1))
            if found is None:
                raise MemoryUnavailableError(
                    f"{self.store.location}: the object {name} holding a result is missing"
                )
            return decode_json(found[0].decode())
        return None if entry.result is None else decode_json(entry.result)


def _copy(entry: Entry) -> Entry:
    return Entry(entry.data, entry.status, entry.result, entry.blob, entry.error, entry.stamp)
