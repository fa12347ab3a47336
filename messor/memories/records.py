"""What a memory holds: task statuses and the rows that carry a task's state.

The codec (:mod:`~messor.memories.codec`) makes these rows and the ``Memory``
interface (:mod:`~messor.memories.base`) trades in them; both re-export them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, NamedTuple

__all__ = [
    "COMPLETED",
    "FAILED",
    "GAVE_UP",
    "PENDING",
    "STATUSES",
    "EncodedUpdate",
    "Row",
    "StatusUpdate",
    "TaskRecord",
    "TaskStatus",
]


class TaskStatus(StrEnum):
    """The statuses every memory knows; a backend may add its own (e.g. for leases).

    Members are str, equal to the plain strings that memories store and compare.
    """

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    #: Failed for good (``messor.FailForGood``, ``give_up_on``): no run runs it again,
    #: until ``messor retry --gave-up`` makes it pending.
    GAVE_UP = "gave_up"


# The statuses' plain strings, equal to the members: what the core hands a memory,
# so that no store meets a str subclass (S3's index interns them, say).
PENDING: Final = TaskStatus.PENDING.value
COMPLETED: Final = TaskStatus.COMPLETED.value
FAILED: Final = TaskStatus.FAILED.value
GAVE_UP: Final = TaskStatus.GAVE_UP.value
#: The statuses every count lists, at 0 when no task has them (``gave_up``
#: appears once a task has it: counts read as they did before it existed).
STATUSES: Final = (PENDING, COMPLETED, FAILED)

#: ``(task_id, status, result, error)``, the row of ``update_task_statuses``.
StatusUpdate = tuple[str, str, Any, "str | None"]


class EncodedUpdate(NamedTuple):
    """A change of one task's state, its result already JSON text: what ``Memory.update`` applies.

    ``result_json`` is what :func:`~messor.memories.codec.encode_json` made of
    the result, or None when there is no result (a failure).
    """

    task_id: str
    status: str
    result_json: str | None
    error: str | None
    #: Attempts the run that recorded this made (0: not known, or reset by hand).
    attempts: int = 0


class Row(NamedTuple):
    """One stored task, encoded: what ``Memory.lookup`` and ``Memory.scan`` return."""

    task_id: str
    status: str
    result_json: str | None = None
    error: str | None = None
    attempts: int = 0
    #: When the state was recorded (seconds since the epoch); None if the memory keeps no times.
    updated_at: float | None = None
    #: The task's data as JSON text; filled only by ``scan(data=True)``.
    data_json: str | None = None


class TaskRecord(NamedTuple):
    """Everything a memory knows of one task, decoded."""

    task_id: str
    status: str
    result: Any
    error: str | None
    #: Attempts the run that recorded the task's state made (0: not known).
    attempts: int = 0
    #: When that state was recorded (seconds since the epoch); None if the memory keeps no times.
    updated_at: float | None = None
