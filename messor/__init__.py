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
from messor.memories.base import GAVE_UP, Memory, Row, TaskRecord, TaskStatus
from messor.memories.inprocess import InProcessMemory
from messor.memories.sqlite import SQLiteMemory
from messor.options import RunOptions
from messor.run.harvest import RunReport
from messor.run.knobs import Adaptive
from messor.run.limits import Limit, by_host
from messor.run.stops import stop_after_consecutive_failures, stop_on, stop_when_spent
from messor.run.throttling import Throttled, throttle_of
from messor.run.usage import Result, Usage, report_usage
from messor.run.verdicts import FailForGood, http_status
from messor.selection import open_executor, open_memory
from messor.tasks import FunctionTask, Task, task
from messor.url import MemoryURL

try:
    __version__ = version("messor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

logging.getLogger("messor").addHandler(logging.NullHandler())

__all__ = [
    "GAVE_UP",
    "Adaptive",
    "AsyncExecutor",
    "ClaimLostError",
    "ConfigurationError",
    "DuplicateTaskError",
    "Executor",
    "FailForGood",
    "FunctionTask",
    "InProcessMemory",
    "IncompleteMemoryError",
    "InvalidTaskError",
    "Limit",
    "LocalThreadedExecutor",
    "Memory",
    "MemoryURL",
    "MemoryUnavailableError",
    "MessorError",
    "RecordingError",
    "Result",
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
    "Throttled",
    "UnknownBackendError",
    "Usage",
    "__version__",
    "by_host",
    "hookimpl",
    "http_status",
    "open_executor",
    "open_memory",
    "report_usage",
    "stop_after_consecutive_failures",
    "stop_on",
    "stop_when_spent",
    "task",
    "throttle_of",
]
