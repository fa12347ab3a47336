"""``RecordWriter``: one thread that records outcomes in the memory, in batches.

Workers never wait for the memory: they hand outcomes to a queue, and this
thread writes whatever has accumulated in one ``update_task_statuses`` call
(group commit). While one batch is being written the next one gathers, so
batches grow exactly as large as the memory's latency requires, and a slow
trickle of tasks is still recorded at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Final

from messor.memory import FAILED, Memory, StatusUpdate

__all__ = ["RecordWriter"]

logger = logging.getLogger("messor")

_STOP: Final = object()
#: Upper bound of one batch, so that a single transaction stays short.
MAX_BATCH = 2000


class RecordWriter:
    """Writes ``(task_id, status, result, error)`` rows to a memory from its own thread."""

    def __init__(self, memory: Memory, *, max_batch: int = MAX_BATCH) -> None:
        self._memory = memory
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="messor-writer", daemon=True)
        #: The first error the memory raised; once set, nothing more is written.
        self.error: Exception | None = None
        #: ``(task_id, reason)`` of results the memory refused; those tasks were recorded failed.
        self.refused: list[tuple[str, str]] = []
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, row: StatusUpdate) -> None:
        """Queue one row; it is written soon, in a batch with its neighbours."""
        self._queue.put(row)

    def close(self) -> None:
        """Write everything queued so far, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        done = False
        while not done:
            batch: list[StatusUpdate] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    done = True
                    break
                batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch and self.error is None:
                self._write(batch)

    def _write(self, batch: list[StatusUpdate]) -> None:
        try:
            self._memory.update_task_statuses(batch)
        except (TypeError, ValueError):
            # One row the memory cannot store spoils the whole call, which
            # changed nothing: find it, and record that task as failed.
            for row in batch:
                self._write_alone(row)
        except Exception as exc:
            logger.error("Could not record %d outcomes in %r: %s", len(batch), self._memory, exc)
            self.error = exc
        else:
            self.written += len(batch)

    def _write_alone(self, row: StatusUpdate) -> None:
        try:
            self._memory.update_task_statuses([row])
        except (TypeError, ValueError) as refused:
            reason = f"the memory could not store the result: {refused}"
            self.refused.append((row[0], reason))
            try:
                self._memory.update_task_statuses([(row[0], FAILED, None, reason)])
            except Exception as exc:
                self.error = exc
                return
        except Exception as exc:
            self.error = exc
            return
        self.written += 1
