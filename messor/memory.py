"""The seed's import path of the memory interface: ``from messor.memory import Memory``.

Kept so that code and plugins written against the seed keep working; the
interface lives in :mod:`messor.memories.base`, and a plugin author's
imports in :mod:`messor.plugin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from messor.memories.base import (
    COMPLETED,
    FAILED,
    PENDING,
    STATUSES,
    EncodedUpdate,
    Memory,
    Row,
    StatusUpdate,
    TaskRecord,
    TaskStatus,
    check_task_id,
    decode_json,
    encode_json,
    encode_tasks,
    encode_update,
)

if TYPE_CHECKING:
    from messor.memories.sqlite import SQLiteMemory

__all__ = [
    "COMPLETED",
    "FAILED",
    "PENDING",
    "STATUSES",
    "EncodedUpdate",
    "Memory",
    "Row",
    "SQLiteMemory",
    "StatusUpdate",
    "TaskRecord",
    "TaskStatus",
    "check_task_id",
    "decode_json",
    "encode_json",
    "encode_tasks",
    "encode_update",
]


def __getattr__(name: str) -> Any:
    # The seed imported SQLiteMemory from here; imported on demand so that
    # importing the interface loads no backend.
    if name == "SQLiteMemory":
        from messor.memories.sqlite import SQLiteMemory

        return SQLiteMemory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
