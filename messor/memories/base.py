"""The ``Memory`` interface: where a harvest records every task's outcome.

A third-party memory implements the seed's methods (the abstract ones below).
Everything else the core needs has a correct default here, built on those
methods, so such a memory works unchanged; a fast backend overrides the
defaults with one query where the default makes many.

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

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, NamedTuple

from messor.errors import TaskDataError
from messor.memories.claims import Release, RunOwner, release_nothing

__all__ = [
    "COMPLETED",
    "FAILED",
    "GAVE_UP",
    "PENDING",
    "STATUSES",
    "EncodedUpdate",
    "Memory",
    "StatusUpdate",
    "TaskRecord",
    "check_task_id",
    "decode_json",
    "encode_json",
    "encode_tasks",
    "encode_update",
]

PENDING = "pending"
COMPLETED = "completed"
FAILED = "failed"
#: Failed for good (``messor.FailForGood``, ``give_up_on``): no run runs it again.
GAVE_UP = "gave_up"
#: The statuses every memory knows; a backend may add its own (e.g. for leases).
STATUSES = (PENDING, COMPLETED, FAILED)

#: ``(task_id, status, result, error)``, the row of ``update_task_statuses``.
StatusUpdate = tuple[str, str, Any, "str | None"]

# The defaults of record_outcomes and reset_tasks each look statuses up, then
# write: this lock keeps the two steps of one from interleaving with the other's
# in this process. One lock for all memories: a memory written against the
# seed never calls Memory.__init__, so an instance has nowhere to keep its own.
_LOOK_UP_THEN_WRITE = threading.Lock()


class EncodedUpdate(NamedTuple):
    """A row of :meth:`Memory.record_outcomes`: a status update whose result is JSON text.

    ``result_json`` is what :func:`encode_json` made of the result, or None
    when there is no result (a failure).
    """

    task_id: str
    status: str
    result_json: str | None
    error: str | None
    #: Attempts the run that recorded this made (0: not known, or reset by hand).
    attempts: int = 0


class TaskRecord(NamedTuple):
    """Everything a memory knows of one task."""

    task_id: str
    status: str
    result: Any
    error: str | None
    #: Attempts the run that recorded the task's state made (0: not known).
    attempts: int = 0
    #: When that state was recorded (seconds since the epoch); None if the memory keeps no times.
    updated_at: float | None = None


def encode_json(value: Any, *, task_id: str, what: str = "result") -> str:
    """Return ``value`` as JSON text, or raise ``TaskDataError`` naming the task.

    NaN and infinities are refused (they are not JSON and would not compare
    equal after a round trip), and so are dict keys that are not str (JSON
    would turn them into strings); non-ASCII text is escaped so that any
    Python string, lone surrogates included, comes back exactly.
    """
    # The most common values by far (a task's data, a no-op's result), spared
    # a trip through the encoder on every task.
    if value is None:
        return "null"
    if type(value) is dict and not value:
        return "{}"
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _not_json(what, task_id, str(exc)) from exc
    # json.dumps writes a key 1, 1.5, True or None as "1", "1.5", "true", "null":
    # it would read back as another key, or collide with a str key and be lost.
    # Such keys leave a trace in the text (a quick search), a str key "1" too:
    # only then is the value walked to tell them apart.
    if _KEY_LIKE_A_SCALAR.search(text):
        for key in _keys_not_str(value):
            [as_text] = json.loads(json.dumps({key: 0}))
            raise _not_json(
                what,
                task_id,
                f"the dict key {key!r} is not a str: it would read back as {as_text!r}",
            )
    return text


#: A dict key in encoded JSON whose text an int, float, bool or None key also gives.
_KEY_LIKE_A_SCALAR = re.compile(r'"(?:-?[0-9][0-9.eE+-]*|true|false|null)":')


def _keys_not_str(value: Any) -> Iterator[object]:
    """The dict keys anywhere in ``value`` that are not str (without recursion: any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from (key for key in item if not isinstance(key, str))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _not_json(what: str, task_id: str, reason: str) -> TaskDataError:
    return TaskDataError(
        f"The {what} of task {task_id!r} cannot be stored as JSON ({reason}); "
        "use JSON types (dict with str keys, list, str, int, float, bool, None) "
        "or convert the value before returning it"
    )


def decode_json(text: str) -> Any:
    """Return the value that :func:`encode_json` stored as ``text``."""
    return json.loads(text)


def check_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is a ``str`` that every store can hold; else raise ``TypeError``."""
    if not isinstance(task_id, str):
        raise TaskDataError(
            f"Task ids must be str, got {type(task_id).__name__} {task_id!r}; "
            "return a string from get_id()"
        )
    try:
        task_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TaskDataError(
            f"Task id {task_id!r} is not valid Unicode text ({exc.reason}: a lone surrogate, "
            "often from decoding bytes with errors='surrogateescape'); decode it properly first"
        ) from None
    return task_id


def encode_tasks(tasks: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """Check ``store_tasks`` pairs; return them with the data as JSON text."""
    return [
        (check_task_id(task_id), encode_json(data, task_id=task_id, what="data"))
        for task_id, data in tasks
    ]


def encode_update(update: StatusUpdate) -> EncodedUpdate:
    """Check one ``update_task_statuses`` row; return it with the result as JSON text.

    A completed task's result is stored even when it is ``None`` (so that
    ``dump_all`` lists it); other statuses store one only if given.
    """
    task_id, status, result, error = update
    check_task_id(task_id)
    if not isinstance(status, str):
        raise TaskDataError(f"The status of task {task_id!r} must be a str, got {status!r}")
    if error is not None and not isinstance(error, str):
        raise TaskDataError(f"The error of task {task_id!r} must be a str or None, got {error!r}")
    text = None if result is None and status != COMPLETED else encode_json(result, task_id=task_id)
    return EncodedUpdate(task_id, status, text, error)


class Memory(ABC):
    """Where a harvest records each task's status, result and error."""

    #: Seconds the executor's writer may wait to gather more outcomes into one
    #: ``record_outcomes`` call. 0 writes as soon as anything is there (group
    #: commit still batches whatever arrives meanwhile); a remote store that
    #: bills per request sets more, at the price of that much finished work
    #: being redone if the process dies.
    batch_delay: float = 0.0

    # -- the seed's methods: what every memory implements -------------------

    @abstractmethod
    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Register ``(task_id, data)`` pairs as pending; known ids are left as they are."""

    @abstractmethod
    def update_task_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        """Set ``(task_id, status, result, error)`` for known tasks.

        Raises ``KeyError`` (:class:`TaskNotFoundError`) and changes nothing
        if any id is unknown.
        """

    @abstractmethod
    def get_task_status(self, task_id: str) -> str:
        """Return the status of one task; ``KeyError`` "Task with ID <id> not found"."""

    @abstractmethod
    def get_pending_tasks(self) -> list[str]:
        """Return the ids of pending tasks."""

    @abstractmethod
    def get_completed_tasks(self) -> list[str]:
        """Return the ids of completed tasks."""

    @abstractmethod
    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        """Return ``(task_id, error)`` for every failed task."""

    @abstractmethod
    def get_task_result(self, task_id: str) -> Any:
        """Return the stored result of a task (``None`` if it has none); ``KeyError`` if unknown."""

    @abstractmethod
    def clear(self) -> None:
        """Forget every task of this memory."""

    @abstractmethod
    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        """Forget the given tasks; unknown ids are ignored."""

    @abstractmethod
    def dump_all(self) -> dict[str, dict[str, Any]]:
        """Return everything, as the seed did.

        ``{"task_definitions": {id: data}, "task_statuses": {id: status},
        "task_results": {id: result}, "task_errors": {id: error}}``; results
        and errors only for tasks that have one.
        """

    # -- what the core needs beyond the seed: correct, override for speed ---

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        """Record finished attempts: the executor's write path.

        Like ``update_task_statuses``, with two differences: results arrive as
        JSON text, encoded once when the task returned (a fast backend stores
        the text as it is), and a failure never replaces a completed result
        (another run on the same store may have completed the task meanwhile).
        Raises ``KeyError`` and records nothing if a task is unknown.
        """
        failures = [row.task_id for row in outcomes if row.status != COMPLETED]
        with _LOOK_UP_THEN_WRITE:
            statuses = self.get_statuses(failures) if failures else {}
            self.update_task_statuses(
                [
                    (row.task_id, row.status, _decoded(row.result_json), row.error)
                    for row in outcomes
                    if row.status == COMPLETED or statuses.get(row.task_id) != COMPLETED
                ]
            )

    def reset_tasks(self, task_ids: Iterable[str], *, only_from: Collection[str]) -> list[str]:
        """Set the given tasks back to pending (result and error dropped, attempts 0), each only
        if its status at that moment is one of ``only_from`` (e.g. {"failed"}; with --force also
        "completed"). A task a running harvest completes meanwhile keeps its result. Unknown ids
        are ignored. Returns the ids that were reset, in the given order.

        What ``messor retry`` calls, possibly while a harvest runs on the same
        store: the check and the reset must be one step in the store. The
        default cannot make them one: it looks the statuses up
        (``get_statuses``), then writes (``update_task_statuses``). In this
        process it takes turns with the default ``record_outcomes`` (one
        lock), so a harvest run here through the defaults loses nothing to it.
        Any other write between the two steps (another process, an overridden
        ``record_outcomes``, a direct ``update_task_statuses``) is overwritten,
        a completed result with it; a task forgotten between them makes the
        write raise ``KeyError``. A memory that several processes share must
        override this with a conditional write (one transaction, a
        compare-and-set, a script run by the server).
        """
        ids = list(dict.fromkeys(task_ids))
        allowed = set(only_from)
        with _LOOK_UP_THEN_WRITE:
            statuses = self.get_statuses(ids)
            chosen = [i for i in ids if statuses.get(i) in allowed]
            if chosen:
                self.update_task_statuses([(i, PENDING, None, None) for i in chosen])
        return chosen

    def count_by_status(self) -> dict[str, int]:
        """Return the number of tasks per status (the three standard ones always present)."""
        return {
            PENDING: len(self.get_pending_tasks()),
            COMPLETED: len(self.get_completed_tasks()),
            FAILED: len(self.get_failed_tasks()),
        }

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        """Return ``{task_id: status}`` for the given ids that are known (a batch look-up)."""
        statuses: dict[str, str] = {}
        for task_id in task_ids:
            try:
                statuses[task_id] = self.get_task_status(task_id)
            except KeyError:
                continue
        return statuses

    def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
        """Yield every task (or those with ``status``) with its result and error."""
        dump = self.dump_all()
        results = dump["task_results"]
        errors = dump["task_errors"]
        for task_id, task_status in dump["task_statuses"].items():
            if status is None or task_status == status:
                yield TaskRecord(task_id, task_status, results.get(task_id), errors.get(task_id))

    def count_since(self, since: float) -> dict[str, int] | None:
        """Tasks per status whose state was recorded at ``since`` (epoch seconds) or later.

        What ``messor status`` shows as the recent rate of a running harvest.
        None (the default) means this memory keeps no times; a memory that
        keeps them also returns them as :attr:`TaskRecord.updated_at`.
        """
        return None

    def earliest_since(self, since: float) -> dict[str, float] | None:
        """Per status, when the earliest task state recorded at ``since`` or later was recorded.

        With :meth:`count_since`, what ``messor status`` turns into a rate:
        a run younger than the window it looks at is measured over the time
        it actually ran. None when this memory keeps no times (as
        :meth:`count_since`). The default reads every record; a memory that
        keeps times answers with one query instead.
        """
        if self.count_since(since) is None:
            return None
        earliest: dict[str, float] = {}
        for record in self.iter_records():
            updated, known = record.updated_at, earliest.get(record.status)
            if updated is not None and updated >= since and (known is None or updated < known):
                earliest[record.status] = updated
        return earliest

    def claim_run(self, owner: RunOwner) -> Release:
        """Claim this memory for one run; return what ends the claim.

        A run claims its memory before it starts, so that a second run on the
        same store is refused (:class:`~messor.errors.RunInProgressError`,
        naming ``owner`` of the first) instead of running the same tasks
        twice. The claim must end when its holder dies, however it dies.
        The default claims nothing: runs on a memory that does not override
        this are not kept apart.
        """
        return release_nothing

    def flush(self) -> None:  # noqa: B027 (a no-op unless the memory keeps something to tidy)
        """Called at the end of every run, after its last outcome: tidy up (compact, say)."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the memory holds resources)
        """Release connections or files; the memory is not used afterwards."""

    def __enter__(self) -> Memory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _decoded(text: str | None) -> Any:
    return None if text is None else decode_json(text)
