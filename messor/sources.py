"""``StreamReader``: reads a task generator on its own thread.

A generator may be slow (paging through an API) or block (a crawl frontier fed
by the tasks' own results). Read on the run loop's thread, it would hold up
everything else: recording outcomes, checking the stop condition, reacting to
Ctrl-C. Here a daemon thread reads ahead, at most ``max_ahead`` tasks, and the
run loop takes whatever has arrived without waiting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from messor.errors import DuplicateTaskError
from messor.tasks import Task, as_task, task_id_of

__all__ = ["StreamReader", "duplicate_task"]


@dataclass(frozen=True, slots=True)
class _End:
    """Put after the last task; ``error`` is what ended the reading early, if anything."""

    error: BaseException | None = None


def duplicate_task(task_id: str) -> DuplicateTaskError:
    return DuplicateTaskError(
        f"Two tasks of this run have the id {task_id!r}; the second would overwrite the "
        "first one's record. Give every task a unique get_id()."
    )


class StreamReader:
    """Turns the items of an iterator into ``(task_id, task)`` pairs, on a thread of its own."""

    def __init__(self, items: Iterator[object], *, max_ahead: int) -> None:
        self._items = items
        self._max_ahead = max_ahead
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

    def close(self) -> None:
        """Stop reading ahead (a generator blocked in its own code stays so: it is a daemon)."""
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
        self._room.set()
        return pairs

    def _read(self) -> None:
        seen: set[str] = set()
        try:
            for item in self._items:
                if self._closed:
                    return
                task = as_task(item)
                task_id = task_id_of(task)
                if task_id in seen:
                    raise duplicate_task(task_id)
                seen.add(task_id)
                self._queue.put((task_id, task))
                while self._queue.qsize() >= self._max_ahead and not self._closed:
                    self._room.wait(0.1)
                    self._room.clear()
        except BaseException as exc:
            self._queue.put(_End(exc))
            return
        self._queue.put(_End())
