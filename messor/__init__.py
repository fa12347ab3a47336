"""Messor: run many I/O-heavy tasks concurrently, record every outcome, resume where you stopped.

    from messor import LocalThreadedExecutor

    LocalThreadedExecutor(tasks, memory="sqlite:///harvest.db", max_concurrency=8).run()

Importing messor loads no plugin; the first memory (or executor) chosen by name or URL does.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from messor.errors import (
    ClaimLostError,
    ConfigurationError,
    DuplicateTaskError,
    IncompleteMemoryError,
    InvalidTaskError,
    MemoryUnavailableError,
    MessorError,
    RecordingError,
    ResultTooLargeError,
    RunInProgressError,
    TaskDataError,
    TaskNotFoundError,
    TaskTimeoutError,
    UnknownBackendError,
)
from messor.executors.base import Executor
from messor.executors.coroutines import AsyncExecutor
from messor.executors.threads import LocalThreadedExecutor
from messor.hookspecs import hookimpl
from messor.memories.base import Memory, Row, TaskRecord, TaskStatus
from messor.memories.inprocess import InProcessMemory
from messor.memories.sqlite import SQLiteMemory
from messor.options import RunOptions
from messor.run.harvest import RunReport
from messor.run.stops import stop_after_consecutive_failures, stop_on
from messor.selection import open_executor, open_memory
from messor.tasks import FunctionTask, Task, task
from messor.url import MemoryURL

try:
    __version__ = version("messor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

logging.getLogger("messor").addHandler(logging.NullHandler())

__all__ = [
    "AsyncExecutor",
    "ClaimLostError",
    "ConfigurationError",
    "DuplicateTaskError",
    "Executor",
    "FunctionTask",
    "InProcessMemory",
    "IncompleteMemoryError",
    "InvalidTaskError",
    "LocalThreadedExecutor",
    "Memory",
    "MemoryURL",
    "MemoryUnavailableError",
    "MessorError",
    "RecordingError",
    "ResultTooLargeError",
    "Row",
    "RunInProgressError",
    "RunOptions",
    "RunReport",
    "SQLiteMemory",
    "Task",
    "TaskDataError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeoutError",
    "UnknownBackendError",
    "__version__",
    "hookimpl",
    "open_executor",
    "open_memory",
    "stop_after_consecutive_failures",
    "stop_on",
    "task",
]
