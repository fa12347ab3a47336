"""The ``Memory`` interface: where a harvest records every task's outcome.

A memory implements five primitives over encoded rows: :meth:`~Memory.insert`,
:meth:`~Memory.update`, :meth:`~Memory.lookup`, :meth:`~Memory.scan` and
:meth:`~Memory.delete`. This class derives every other method from them, the
seed's included, and encodes and checks what callers hand a memory once,
here: a backend only ever sees task ids that are valid str and values that are
JSON text. A fast backend may still override any derived method.

A memory written against the seed implements the seed's ten methods instead
(``store_tasks`` ... ``dump_all``): the primitives then default to those, so
it keeps working unchanged. A class that completes neither set cannot be
instantiated (:class:`~messor.errors.IncompleteMemoryError` names what is missing).

Contract, for every implementation:

* ``store_tasks`` is idempotent: a task already known keeps its status,
  result and error.
* Results, task data and errors are stored as JSON (``encode_json``): every
  JSON value round-trips exactly; anything else is refused with
  :class:`~messor.errors.TaskDataError` (a ``TypeError``) naming the task,
  before anything of that call is written.
* A call either applies completely or not at all.
* Methods may be called from many threads at once.
"""

from __future__ import annotations

import threading
from abc import ABC
from collections.abc import Collection, Iterable, Iterator, Sequence
from itertools import islice
from types import TracebackType
from typing import Any, Self

from messor.errors import IncompleteMemoryError, ResultTooLargeError, TaskNotFoundError
from messor.memories.claims import Release, RunOwner, release_nothing
from messor.memories.codec import (
    check_task_id,
    decode_json,
    decode_result,
    encode_json,
    encode_tasks,
    encode_update,
)
from messor.memories.records import (
    COMPLETED,
    FAILED,
    GAVE_UP,
    PENDING,
    STATUSES,
    EncodedUpdate,
    Row,
    StatusUpdate,
    TaskRecord,
    TaskStatus,
)
from messor.memories.rules import Missing, UpdateRule, changes_to_apply

__all__ = [
    "COMPLETED",
    "FAILED",
    "GAVE_UP",
    "PENDING",
    "STATUSES",
    "EncodedUpdate",
    "Memory",
    "Missing",
    "Row",
    "StatusUpdate",
    "TaskRecord",
    "TaskStatus",
    "UpdateRule",
    "changes_to_apply",
    "check_task_id",
    "decode_json",
    "decode_result",
    "encode_json",
    "encode_tasks",
    "encode_update",
]

#: What a memory implements: a new memory all of these ...
PRIMITIVES = ("insert", "update", "lookup", "scan", "delete")
#: ... or, written against the seed, all of these.
SEED_METHODS = (
    "store_tasks",
    "update_task_statuses",
    "get_task_status",
    "get_pending_tasks",
    "get_completed_tasks",
    "get_failed_tasks",
    "get_task_result",
    "clear",
    "clear_tasks",
    "dump_all",
)

#: Ids per ``lookup`` that ``get_statuses`` makes: a long list never becomes one huge call.
_IDS_PER_LOOKUP = 1000

# The default of update() on the seed's methods looks statuses up, then
# writes: this lock keeps the two steps of one call from interleaving with
# another's in this process. One lock for all memories: a memory written
# against the seed never calls Memory.__init__, so an instance has nowhere to
# keep its own.
_LOOK_UP_THEN_WRITE = threading.Lock()


class Memory(ABC):  # noqa: B024 (ABCMeta still enforces a subclass's own abstract methods)
    """Where a harvest records each task's status, result and error."""

    #: Seconds the executor's writer may wait to gather more outcomes into one
    #: ``record_outcomes`` call. 0 writes as soon as anything is there (group
    #: commit still batches whatever arrives meanwhile); a remote store that
    #: bills per request sets more, at the price of that much finished work
    #: being redone if the process dies.
    batch_delay: float = 0.0

    # -- capabilities: what the memory declares, and the contract kit checks ----

    #: Records when each state was recorded (``Row.updated_at``), so that
    #: ``count_since`` and ``earliest_since`` answer instead of returning None.
    keeps_times: bool = False
    #: ``claim_run`` keeps a second run off this memory while one runs.
    claims_runs: bool = False
    #: Several runs may write to one store at once and lose nothing (no claim needed).
    multi_writer: bool = False
    #: The largest result, as JSON text (bytes), that the memory stores; None: no limit.
    #: A larger one is refused with :class:`~messor.errors.ResultTooLargeError`.
    max_result_bytes: int | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        primitives = _inherited(cls, PRIMITIVES)
        seed = _inherited(cls, SEED_METHODS)
        if primitives and seed:
            raise IncompleteMemoryError(
                f"{cls.__qualname__} cannot be used as a memory: implement the five primitives "
                f"(missing: {', '.join(primitives)}) or, as a memory written for the seed, its "
                f"ten methods (missing: {', '.join(seed)})"
            )
        return super().__new__(cls)

    # -- the primitives: what a memory implements ---------------------------------
    # Each defaults to the seed's methods, for memories written against the seed.

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        """Register ``(task_id, data_json)`` pairs as pending; a known id is left as it is.

        Within one call the first pair of an id wins.
        """
        self.store_tasks([(task_id, decode_json(data)) for task_id, data in tasks])

    def update(
        self, changes: Sequence[EncodedUpdate], rule: UpdateRule = UpdateRule.OVERWRITE
    ) -> list[str]:
        """Apply ``changes`` in order, in one atomic step; return the ids changed, in order.

        A change sets the task's status, result, error and attempts (and
        time), never its data. ``rule`` (:class:`UpdateRule`) says which
        changes are skipped, each judged against the state earlier changes of
        the call left, and what an unknown id does (by default,
        :class:`~messor.errors.TaskNotFoundError` and nothing applied);
        :func:`changes_to_apply` does the judging.

        The default, on the seed's methods, cannot make this one step in the
        store: it looks statuses up (``get_statuses``), then writes
        (``update_task_statuses``); attempts are not kept. In this process
        its calls take turns, so a harvest recording through it loses nothing
        to a reset through it. Any other write between the two steps (another
        process, an overridden ``record_outcomes``) may be overwritten; a task
        forgotten between them makes the write raise ``KeyError``.
        """
        with _LOOK_UP_THEN_WRITE:
            chosen = changes_to_apply(changes, self.get_statuses, rule)
            if chosen:
                self.update_task_statuses(
                    [(c.task_id, c.status, decode_result(c.result_json), c.error) for c in chosen]
                )
        return [c.task_id for c in chosen]

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        """The known tasks among ``task_ids``, by id.

        With ``results=False`` a memory may leave ``result_json`` (and
        ``error``) None: the cheap look-up of statuses.
        """
        if results:
            dump = self.dump_all()
            return {i: _row(dump, i) for i in task_ids if i in dump["task_statuses"]}
        rows = {}
        for task_id in task_ids:
            try:
                rows[task_id] = Row(task_id, self.get_task_status(task_id))
            except KeyError:
                continue
        return rows

    def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
        """Yield every task (or those with ``status``) in a stable order; ``data_json`` if ``data``.

        Must not hold a lock across its yields: read a page at a time.
        """
        dump = self.dump_all()
        for task_id, task_status in dump["task_statuses"].items():
            if status is None or task_status == status:
                yield _row(dump, task_id, data=data)

    def delete(self, task_ids: Iterable[str] | None) -> None:
        """Forget the given tasks (unknown ids ignored), or every task when None."""
        if task_ids is None:
            self.clear()
        else:
            self.clear_tasks(task_ids)

    # -- the seed's methods ---------------------------------------------------------

    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Register ``(task_id, data)`` pairs as pending; known ids are left as they are."""
        self.insert(encode_tasks(tasks))

    def update_task_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        """Set ``(task_id, status, result, error)`` for known tasks, in order.

        Raises ``KeyError`` (:class:`TaskNotFoundError`) and changes nothing
        if any id is unknown.
        """
        self.update(self._within_limit([encode_update(update) for update in statuses]))

    def get_task_status(self, task_id: str) -> str:
        """Return the status of one task; ``KeyError`` "Task with ID <id> not found"."""
        return self._row(task_id, results=False).status

    def get_pending_tasks(self) -> list[str]:
        """Return the ids of pending tasks."""
        return [row.task_id for row in self.scan(PENDING)]

    def get_completed_tasks(self) -> list[str]:
        """Return the ids of completed tasks."""
        return [row.task_id for row in self.scan(COMPLETED)]

    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        """Return ``(task_id, error)`` for every failed task."""
        return [(row.task_id, row.error) for row in self.scan(FAILED)]

    def get_task_result(self, task_id: str) -> Any:
        """Return the stored result of a task (``None`` if it has none); ``KeyError`` if unknown."""
        return decode_result(self._row(task_id, results=True).result_json)

    def clear(self) -> None:
        """Forget every task of this memory."""
        self.delete(None)

    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        """Forget the given tasks; unknown ids are ignored."""
        self.delete(list(task_ids))

    def dump_all(self) -> dict[str, dict[str, Any]]:
        """Return everything, as the seed did.

        ``{"task_definitions": {id: data}, "task_statuses": {id: status},
        "task_results": {id: result}, "task_errors": {id: error}}``; results
        and errors only for tasks that have one.
        """
        dump: dict[str, dict[str, Any]] = {
            "task_definitions": {},
            "task_statuses": {},
            "task_results": {},
            "task_errors": {},
        }
        for row in self.scan(data=True):
            dump["task_definitions"][row.task_id] = decode_result(row.data_json)
            dump["task_statuses"][row.task_id] = row.status
            if row.result_json is not None:
                dump["task_results"][row.task_id] = decode_json(row.result_json)
            if row.error is not None:
                dump["task_errors"][row.task_id] = row.error
        return dump

    # -- what the core needs beyond the seed ---------------------------------------

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        """Record finished attempts: the executor's write path.

        Like ``update_task_statuses``, with two differences: results arrive as
        JSON text, encoded once when the task returned, and a failure never
        replaces a completed result (another run on the same store may have
        completed the task meanwhile). Raises ``KeyError`` and records
        nothing if a task is unknown.
        """
        self.update(self._within_limit(outcomes), UpdateRule.RECORD)

    def reset_tasks(self, task_ids: Iterable[str], *, only_from: Collection[str]) -> list[str]:
        """Set the given tasks back to pending (result and error dropped, attempts 0), each only
        if its status at that moment is one of ``only_from`` (e.g. {"failed"}; with --force also
        "completed"). A task a running harvest completes meanwhile keeps its result. Unknown ids
        are ignored. Returns the ids that were reset, in the given order.

        What ``messor retry`` calls, possibly while a harvest runs on the same
        store: the check and the reset are one :meth:`update`, which must be
        one step in the store (see its default's limits).
        """
        pending = [EncodedUpdate(i, PENDING, None, None) for i in dict.fromkeys(task_ids)]
        return self.update(pending, UpdateRule.reset_from(only_from))

    def count_by_status(self) -> dict[str, int]:
        """Return the number of tasks per status (the standard ones always present)."""
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.scan():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        """Return ``{task_id: status}`` for the given ids that are known (a batch look-up)."""
        statuses: dict[str, str] = {}
        ids = iter(task_ids)
        while chunk := list(islice(ids, _IDS_PER_LOOKUP)):
            statuses.update((i, row.status) for i, row in self.lookup(chunk, results=False).items())
        return statuses

    def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
        """Yield every task (or those with ``status``) with its result and error."""
        for task_id, task_status, result, error, attempts, updated, _ in self.scan(status):
            yield TaskRecord(task_id, task_status, decode_result(result), error, attempts, updated)

    def count_since(self, since: float) -> dict[str, int] | None:
        """Tasks per status whose state was recorded at ``since`` (epoch seconds) or later.

        What ``messor status`` shows as the recent rate of a running harvest.
        None when this memory keeps no times (:attr:`keeps_times`).
        """
        if not self.keeps_times:
            return None
        counts: dict[str, int] = {}
        for status, _ in self._times_since(since):
            counts[status] = counts.get(status, 0) + 1
        return counts

    def earliest_since(self, since: float) -> dict[str, float] | None:
        """Per status, when the earliest task state recorded at ``since`` or later was recorded.

        With :meth:`count_since`, what ``messor status`` turns into a rate:
        a run younger than the window it looks at is measured over the time
        it actually ran. None when this memory keeps no times.
        """
        if not self.keeps_times:
            return None
        earliest: dict[str, float] = {}
        for status, updated in self._times_since(since):
            earliest[status] = min(updated, earliest.get(status, updated))
        return earliest

    def claim_run(self, owner: RunOwner) -> Release:
        """Claim this memory for one run; return what ends the claim.

        A run claims its memory before it starts, so that a second run on the
        same store is refused (:class:`~messor.errors.RunInProgressError`,
        naming ``owner`` of the first) instead of running the same tasks
        twice. The claim must end when its holder dies, however it dies.
        The default claims nothing: runs on a memory that does not override
        this (and declare :attr:`claims_runs`) are not kept apart.
        """
        return release_nothing

    def flush(self) -> None:  # noqa: B027 (a no-op unless the memory keeps something to tidy)
        """Called at the end of every run, after its last outcome: tidy up (compact, say)."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the memory holds resources)
        """Release connections or files; the memory is not used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- run heartbeats (see messor.run.heartbeat): a memory that keeps none ignores them --

    #: Whether :meth:`write_beat` keeps what it is given (False: runs on this
    #: memory are not visible to ``messor status`` and the dashboard as runs).
    keeps_beats: bool = False
    #: Seconds between two beats of a run; a store that bills per request sets more.
    beat_interval: float = 5.0

    def write_beat(self, run_id: str, beat_json: str) -> None:  # noqa: B027 (keeps none)
        """Keep ``beat_json``, the latest heartbeat of run ``run_id``, replacing its previous one.

        Called from the run's heartbeat thread every :attr:`beat_interval`
        seconds and once when the run ends; a failure only warns. A memory
        that claims runs writes it under the claim, like its other writes.
        """

    def read_beats(self) -> dict[str, str]:
        """The latest heartbeat of each run kept: ``{run_id: beat_json}``. ``clear()`` forgets
        them with the tasks."""
        return {}

    def delete_beats(self, run_ids: Iterable[str]) -> None:  # noqa: B027 (keeps none)
        """Forget the heartbeats of these runs (the core prunes old finished ones)."""

    # -- helpers ----------------------------------------------------------------------

    def _row(self, task_id: str, *, results: bool) -> Row:
        row = self.lookup([task_id], results=results).get(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        return row

    def _within_limit(self, rows: Sequence[EncodedUpdate]) -> Sequence[EncodedUpdate]:
        """``rows``, if no result is larger than :attr:`max_result_bytes`; else refuse them all."""
        limit = self.max_result_bytes
        if limit is not None:
            for row in rows:
                if row.result_json is not None and len(row.result_json) > limit:
                    raise ResultTooLargeError(
                        f"The result of task {row.task_id!r} is {len(row.result_json)} bytes "
                        f"of JSON, more than {self!r} stores in one value ({limit} bytes); "
                        "store large payloads elsewhere and return a reference to them"
                    )
        return rows

    def _times_since(self, since: float) -> Iterator[tuple[str, float]]:
        """``(status, updated_at)`` of every task whose state was recorded at ``since`` or later."""
        for row in self.scan():
            if row.updated_at is not None and row.updated_at >= since:
                yield row.status, row.updated_at


def _inherited(cls: type, names: Sequence[str]) -> list[str]:
    """Those of ``names`` that ``cls`` takes from :class:`Memory` as they are."""
    return [name for name in names if getattr(cls, name) is getattr(Memory, name)]


def _row(dump: dict[str, dict[str, Any]], task_id: str, *, data: bool = False) -> Row:
    """The row of one task in what ``dump_all`` returned, its values encoded again."""
    results = dump["task_results"]
    result = encode_json(results[task_id], task_id=task_id) if task_id in results else None
    definition = (
        encode_json(dump["task_definitions"][task_id], task_id=task_id, what="data")
        if data
        else None
    )
    return Row(
        task_id,
        dump["task_statuses"][task_id],
        result,
        dump["task_errors"].get(task_id),
        data_json=definition,
    )
