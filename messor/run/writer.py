"""``RecordWriter``: one thread that records outcomes in the memory, in batches.

Workers never wait for the memory: outcomes go to a queue, and this thread
writes whatever has accumulated in one ``record_outcomes`` call (group
commit). While one batch is being written the next one gathers, so batches
grow exactly as large as the memory's latency requires, and a slow trickle of
tasks is still recorded at once (or after the memory's ``batch_delay``, for
stores that bill per request). When the memory falls far behind, ``put``
waits: finished results never pile up in RAM beyond ``max_backlog``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Final

from messor.errors import RecordingError, TaskDataError
from messor.memories.base import FAILED, EncodedUpdate, Memory
from messor.run.attempt import describe_error

__all__ = ["RecordWriter"]

logger = logging.getLogger("messor")

_STOP: Final = object()
#: Upper bound of one batch, so that a single transaction stays short.
MAX_BATCH = 2000
#: Outcomes finished but not yet written before ``put`` makes the run wait.
MAX_BACKLOG = 10 * MAX_BATCH


class RecordWriter:
    """Writes :class:`~messor.memories.base.EncodedUpdate` rows to a memory from its own thread."""

    def __init__(
        self, memory: Memory, *, max_batch: int = MAX_BATCH, max_backlog: int = MAX_BACKLOG
    ) -> None:
        self._memory = memory
        self._delay = memory.batch_delay
        self._max_batch = max_batch
        self._max_backlog = max_backlog
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._room = threading.Event()
        self._thread = threading.Thread(target=self._run, name="messor-writer", daemon=True)
        #: The first error the memory raised; once set, nothing more is written.
        self.error: BaseException | None = None
        #: ``(task_id, reason)`` of results the memory refused; those tasks were recorded failed.
        self.refused: list[tuple[str, str]] = []
        #: Rows the memory confirmed, by status: what a run may report as done.
        self.stored: Counter[str] = Counter()

    def start(self) -> None:
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Outcomes queued and not written yet."""
        return self._queue.qsize()

    def put(self, row: EncodedUpdate) -> None:
        """Queue one row; it is written soon, in a batch with its neighbours."""
        self._queue.put(row)
        # The memory is slower than the tasks: hold the run back rather than
        # keep ever more finished results only in RAM.
        while self._queue.qsize() > self._max_backlog and self._thread.is_alive():
            self._room.wait(0.1)
            self._room.clear()

    def abandon(self) -> None:
        """Write nothing more: rows still queued stay unrecorded (their tasks run again)."""
        self.error = self.error or RuntimeError("abandoned")

    def close(self) -> None:
        """Write everything queued so far, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        elif self.error is None and self._queue.qsize():
            self.error = RuntimeError("the writer thread stopped before writing everything")

    def failure(self) -> RecordingError:
        """The error a run ends with once :attr:`error` is set: what happened, what to do."""
        error = self.error
        assert error is not None, "the writer has not failed"
        if isinstance(error, RecordingError):
            return error  # says it all already (the run's claim was lost, say)
        if isinstance(error, KeyError):
            # Every row written is of a task this run found or registered in
            # the memory: an unknown one means the store lost it.
            task_id = getattr(error, "task_id", error.args[0] if error.args else "?")
            return RecordingError(
                f"The run stopped: {self._memory!r} no longer knows task {task_id!r}, which "
                "this run found or registered there. The store lost data (a Redis server restarted "
                "without persistence, say) or another process deleted tasks from it: results "
                "recorded before may be gone too. Check the store, then run again: every task "
                "it does not hold as completed runs again."
            )
        return RecordingError(
            f"The run stopped because outcomes could not be recorded in {self._memory!r}: "
            f"{describe_error(error)}. Everything recorded before is intact; "
            "fix the memory and run again to resume."
        )

    def _run(self) -> None:
        try:
            done = False
            while not done:
                batch: list[EncodedUpdate] = []
                item = self._queue.get()
                deadline = time.monotonic() + self._delay
                while True:
                    if item is _STOP:
                        done = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        wait = deadline - time.monotonic()
                        item = (
                            self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        break
                if batch and self.error is None:
                    self._write(batch)
                self._room.set()
        except BaseException as exc:  # never die silently: the run must learn of it
            self.error = self.error or exc

    def _write(self, batch: list[EncodedUpdate]) -> None:
        try:
            self._memory.record_outcomes(batch)
            self.stored.update(row.status for row in batch)
        except TaskDataError:
            # One row the memory cannot store spoils the whole call, which
            # changed nothing: write the rows one by one to find it. Only the
            # memory's declared refusal: any other error is a failing store
            # (or a bug), and must stop the run, never fail a task.
            for row in batch:
                if self.error is not None:
                    return
                self._write_alone(row)
        except Exception as exc:
            self._give_up(exc, len(batch))

    def _write_alone(self, row: EncodedUpdate) -> None:
        try:
            self._memory.record_outcomes([row])
            self.stored[row.status] += 1
            return
        except TaskDataError as refused:
            reason = f"the memory could not store the result: {refused}"
        except Exception as exc:
            self._give_up(exc, 1)
            return
        try:
            self._memory.record_outcomes([EncodedUpdate(row.task_id, FAILED, None, reason)])
        except Exception as exc:
            self._give_up(exc, 1)
            return
        self.refused.append((row.task_id, reason))
        self.stored[FAILED] += 1

    def _give_up(self, exc: Exception, count: int) -> None:
        logger.error("Could not record %d outcomes in %r: %s", count, self._memory, exc)
        self.error = exc
