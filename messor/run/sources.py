"""Where a run's tasks come from: a list registered up front, or a generator read on a thread.

A list is registered whole before anything starts (a chunk per round trip),
so that the memory knows the run's total at once: ``messor status`` from
another terminal tells how much is left, even after a Ctrl-C.

A generator may be slow (paging through an API) or block (a crawl frontier fed
by the tasks' own results). Read on the run loop's thread, it would hold up
everything else: recording outcomes, checking the stop condition, reacting to
Ctrl-C. Here a daemon thread reads ahead, at most ``max_ahead`` tasks, and the
run loop takes whatever has arrived without waiting.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import tempfile
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass

from messor.errors import DuplicateTaskError
from messor.memories.base import COMPLETED, GAVE_UP, Memory
from messor.run.attempt import Attempt
from messor.tasks import Task, as_task, task_data, task_id_of

__all__ = ["REGISTRATION_CHUNK", "StreamReader", "TaskSource", "duplicate_task"]

#: Tasks registered per round trip to the memory (one look-up, one store).
REGISTRATION_CHUNK = 1000
#: A waiting run is woken when this many tasks were read, or after WAKE_AFTER seconds.
WAKE_BATCH = 256
WAKE_AFTER = 0.005
#: Ids of a generator kept in a set; past that, batches of as many go to a temporary file.
SEEN_IN_MEMORY = 50_000
BATCH = 1000
#: Longest a run spends taking chunks of already-completed tasks in one go (seconds).
PEEK_BUDGET = 0.02


@dataclass(frozen=True, slots=True)
class _End:
    """Put after the last task; ``error`` is what ended the reading early, if anything."""

    error: BaseException | None = None


def duplicate_task(task_id: str) -> DuplicateTaskError:
    return DuplicateTaskError(
        f"Two tasks of this run have the id {task_id!r}; the second would overwrite the "
        "first one's record. Give every task a unique get_id()."
    )


class SeenIds:
    """The ids a generator gave so far, to refuse a duplicate: a few bytes each, however many.

    The first :data:`SEEN_IN_MEMORY` ids are a set of strings. Past that, each
    new id goes to a temporary SQLite file (in batches) and its 64-bit hash
    into an open-addressing table of 16 bytes an id: an id whose hash is not
    there is new; only one whose hash is (a duplicate, or a rare collision of
    hashes) is looked up in the file. A run of millions of generated tasks
    keeps its memory flat. Used by one thread.
    """

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._batch: list[str] = []
        self._slots = array("q", bytes(8 * 1024))
        self._filled = 0
        self._file: sqlite3.Connection | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def check_and_add(self, task_id: str) -> bool:
        """Add ``task_id``; True if it was there already."""
        if self._file is None:
            if task_id in self._ids:
                return True
            self._ids.add(task_id)
            if len(self._ids) >= SEEN_IN_MEMORY:
                self._spill()
            return False
        if self._put(hash(task_id) or 1) and self._in_file(task_id):
            return True
        self._batch.append(task_id)
        if len(self._batch) >= BATCH:
            self._write()
        return False

    def _put(self, digest: int) -> bool:
        """Put a hash in the table; True if it was there already."""
        slots, mask = self._slots, len(self._slots) - 1
        at = digest & mask
        while (found := slots[at]) != 0:
            if found == digest:
                return True
            at = (at + 1) & mask
        slots[at] = digest
        self._filled += 1
        if self._filled * 2 > len(slots):
            self._grow()
        return False

    def _grow(self) -> None:
        old, self._slots, self._filled = self._slots, array("q", bytes(16 * len(self._slots))), 0
        for digest in old:
            if digest:
                self._put(digest)

    def _in_file(self, task_id: str) -> bool:
        if task_id in self._batch:
            return True
        assert self._file is not None
        found = self._file.execute("SELECT 1 FROM seen WHERE id = ?", (task_id,)).fetchone()
        return found is not None

    def _spill(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="messor-seen-")
        path = os.path.join(self._directory.name, "seen.db")
        self._file = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._file.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID;"
        )
        self._batch = list(self._ids)
        for task_id in self._batch:
            self._put(hash(task_id) or 1)
        self._ids = set()
        self._write()

    def _write(self) -> None:
        assert self._file is not None
        self._file.execute("BEGIN")
        self._file.executemany("INSERT INTO seen VALUES (?)", ((i,) for i in self._batch))
        self._file.execute("COMMIT")
        self._batch = []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


class StreamReader:
    """Turns the items of an iterator into ``(task_id, task)`` pairs, on a thread of its own."""

    def __init__(
        self, items: Iterator[object], *, max_ahead: int, wake: Callable[[], None]
    ) -> None:
        self._items = items
        self._max_ahead = max_ahead
        self._wake = wake
        self._hungry_since: float | None = None  # the run found too little to take, and waits
        self._queue: queue.SimpleQueue[tuple[str, Task] | _End] = queue.SimpleQueue()
        self._room = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="messor-reader", daemon=True)
        #: Set by :meth:`take` once the last task was taken.
        self.ended = False
        #: What ended the reading early: a duplicate id, a bad task, the generator raising.
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    @property
    def has_tasks(self) -> bool:
        return self._queue.qsize() > 0

    def close(self) -> None:
        """Stop reading; the generator is closed (its ``finally`` runs) on the reader's thread.

        A generator blocked in its own code stays so: the reader is a daemon thread.
        """
        self._closed = True
        self._room.set()

    def take(self, limit: int) -> list[tuple[str, Task]]:
        """The pairs read so far, at most ``limit``, without waiting."""
        pairs: list[tuple[str, Task]] = []
        while len(pairs) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _End):
                self.ended = True
                self.error = item.error
                break
            pairs.append(item)
        # Took what there was: wake the run when a batch is ready, or soon.
        self._hungry_since = time.monotonic() if len(pairs) < limit and not self.ended else None
        self._room.set()
        return pairs

    def _read(self) -> None:
        seen = SeenIds()
        try:
            while not self._closed:
                try:
                    item = next(self._items)
                except StopIteration:
                    break
                task = as_task(item)
                task_id = task_id_of(task)
                if seen.check_and_add(task_id):
                    raise duplicate_task(task_id)
                self._queue.put((task_id, task))
                hungry_since = self._hungry_since
                if hungry_since is not None and (
                    self._queue.qsize() >= WAKE_BATCH
                    or time.monotonic() - hungry_since > WAKE_AFTER
                ):
                    self._hungry_since = None
                    self._wake()
                while self._queue.qsize() >= self._max_ahead and not self._closed:
                    self._room.wait(0.1)
                    self._room.clear()
        except BaseException as exc:
            self._queue.put(_End(exc))
            self._wake()
            return
        finally:
            seen.close()
            close = getattr(self._items, "close", None)
            if self._closed and close is not None:
                close()  # a generator's finally (closing files, sessions) runs now
        self._queue.put(_End())
        self._wake()


class TaskSource:
    """The tasks of one run, registered in the memory: a list up front, a generator as it is read.

    A list's ids are all checked, then all registered, when the source opens
    (a duplicate is refused before anything is written). A generator is read
    by a :class:`StreamReader` and registered a chunk at a time. Either way,
    ids the memory already has as completed (or given up for good) are
    skipped, decided with one look-up per chunk.
    """

    def __init__(
        self,
        tasks: Iterable[object],
        memory: Memory,
        on_skipped: Callable[[int], None],
        wake: Callable[[], None],
        stopped: Callable[[], bool],
    ) -> None:
        self._tasks = tasks
        self._memory = memory
        self._on_skipped = on_skipped
        self._wake = wake
        self._stopped = stopped
        self._listed: tuple[list[str], list[Task]] | None = None  # a list's ids and tasks
        #: Per registered task of a list: 1 if it still has to run (not completed before).
        self._to_run = bytearray()
        self._handed = 0  # how many of those were looked at for attempts
        self._reader: StreamReader | None = None
        self._runnable: deque[Attempt] = deque()
        self._ended = False  # nothing more will arrive in _runnable
        #: What ended a generator early (a duplicate id, a bad task, the generator raising).
        self.error: BaseException | None = None

    def open(self) -> int | None:
        """Check and register a list (returns its length), or start reading a generator (None).

        A list's ids are all checked first, so that a duplicate is refused
        before anything is written; then it is registered a chunk at a time.
        A stop meanwhile (Ctrl-C: registering a long list on a slow store
        takes a while) ends the registering there; the next run does the rest.
        """
        if isinstance(self._tasks, Sized):
            tasks = [as_task(item) for item in self._tasks]
            ids = [task_id_of(task) for task in tasks]
            _refuse_duplicates(ids)
            self._listed = (ids, tasks)
            for start in range(0, len(ids), REGISTRATION_CHUNK):
                if self._stopped():
                    break
                end = start + REGISTRATION_CHUNK
                self._to_run += bytes(self._register(ids[start:end], tasks[start:end]))
            self._ended = self._to_run.find(1) < 0
            return len(ids)
        self._reader = StreamReader(
            iter(self._tasks), max_ahead=REGISTRATION_CHUNK, wake=self._wake
        )
        self._reader.start()
        return None

    @property
    def exhausted(self) -> bool:
        """Every task has been handed out (or the source failed after handing out the rest)."""
        return self._ended and not self._runnable

    @property
    def streaming(self) -> bool:
        """More tasks may arrive at any moment (a generator still being read)."""
        return self._reader is not None and not self._ended

    @property
    def ready(self) -> bool:
        """Tasks are waiting to be taken right now (ask again without waiting)."""
        if self._runnable:
            return True
        if self._listed is not None:
            return not self._ended  # chunks of the list not registered yet
        return self._reader is not None and self._reader.has_tasks

    def peek(self) -> Attempt | None:
        """The next attempt to start, left in place; None if none is there right now."""
        # Chunks whose tasks were all completed before (a resume) give nothing
        # to start: keep taking while the reader has more, rather than sleep
        # between chunks (each wake-up waits for the reader to let go of the
        # GIL), but only briefly, so that outcomes and stops are not held up.
        budget = time.monotonic() + PEEK_BUDGET
        while (
            not self._runnable and not self._ended and self._refill() and time.monotonic() < budget
        ):
            pass
        return self._runnable[0] if self._runnable else None

    def take(self) -> Attempt:
        """Hand out the attempt :meth:`peek` returned."""
        return self._runnable.popleft()

    def close(self) -> None:
        """Stop reading a generator (a list has nothing to stop: it was registered up front)."""
        if self._reader is not None:
            self._reader.close()

    def _refill(self) -> int:
        """Move the next tasks into ``_runnable``; how many the source gave (0: none now)."""
        if self._listed is not None:
            # Attempts a chunk at a time, not all at once: a long list stays
            # one object per task, and a resume skips completed ones in C.
            ids, tasks = self._listed
            start = self._to_run.find(1, self._handed)
            if start < 0:
                self._ended = True
                return 0
            end = min(start + REGISTRATION_CHUNK, len(self._to_run))
            self._runnable.extend(
                Attempt(ids[i], tasks[i]) for i in range(start, end) if self._to_run[i]
            )
            self._handed = end
            self._ended = self._to_run.find(1, end) < 0
            return end - start
        assert self._reader is not None
        pairs = self._reader.take(REGISTRATION_CHUNK)
        if pairs:
            ids = [task_id for task_id, _ in pairs]
            tasks = [task for _, task in pairs]
            runnable = self._register(ids, tasks)
            self._runnable.extend(
                Attempt(i, t) for i, t, run in zip(ids, tasks, runnable, strict=True) if run
            )
        if self._reader.ended and not self._runnable:
            # Every task read before a bad one has been handed out: now the
            # run stops, with that error.
            self._ended = True
            self.error = self._reader.error
        return len(pairs)

    def _register(self, ids: list[str], tasks: list[Task]) -> list[bool]:
        """Store the unknown tasks among ``ids``; return, per id, whether it still has to run."""
        statuses = self._memory.get_statuses(ids)
        new = [
            (task_id, task_data(task))
            for task_id, task in zip(ids, tasks, strict=True)
            if task_id not in statuses
        ]
        if new:
            self._memory.store_tasks(new)
        runnable = [statuses.get(task_id) not in _DONE for task_id in ids]
        self._on_skipped(runnable.count(False))
        return runnable


#: The statuses of tasks a run does not run again.
_DONE = frozenset((COMPLETED, GAVE_UP))


def _refuse_duplicates(ids: list[str]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for task_id in ids:
        if task_id in seen:
            raise duplicate_task(task_id)
        seen.add(task_id)
