"""Messor: run many I/O-heavy tasks concurrently, record every outcome, resume where you stopped.

    from messor import LocalThreadedExecutor

    LocalThreadedExecutor(tasks, memory="sqlite:///harvest.db", max_concurrency=8).run()

Importing messor loads no plugin; the first memory chosen by name or URL does.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from messor.async_executor import AsyncExecutor
from messor.errors import (
    ClaimLostError,
    ConfigurationError,
    DuplicateTaskError,
    InvalidTaskError,
    MemoryUnavailableError,
    MessorError,
    RecordingError,
    RunInProgressError,
    TaskDataError,
    TaskNotFoundError,
    TaskTimeoutError,
    UnknownBackendError,
)
from messor.executor import Executor
from messor.hookspecs import hookimpl
from messor.inprocess_memory import InProcessMemory
from messor.local_threaded_executor import LocalThreadedExecutor
from messor.memory import Memory, TaskRecord
from messor.runloop import RunReport
from messor.selection import open_memory
from messor.sqlite_memory import SQLiteMemory
from messor.stops import stop_after_consecutive_failures, stop_on
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
    "InvalidTaskError",
    "LocalThreadedExecutor",
    "Memory",
    "MemoryURL",
    "MemoryUnavailableError",
    "MessorError",
    "RecordingError",
    "RunInProgressError",
    "RunReport",
    "SQLiteMemory",
    "Task",
    "TaskDataError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskTimeoutError",
    "UnknownBackendError",
    "__version__",
    "hookimpl",
    "open_memory",
    "stop_after_consecutive_failures",
    "stop_on",
    "task",
]
