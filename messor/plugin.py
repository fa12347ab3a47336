"""Everything a plugin author imports, in one module (a minimal version: see the report).

An executor plugin needs: the :class:`Executor` base class, the :class:`Workers`
interface that :func:`drive` drives, the run loop :class:`Harvest`, one try at
a task (:class:`Attempt`) and how it ended (:class:`Outcome`, built by
:func:`perform` or :func:`failure`), the options (:class:`RunOptions`) and the
hook's types. docs/executors.md walks through them.
"""

from __future__ import annotations

from messor.errors import ConfigurationError, MessorError
from messor.executors.base import Executor, Workers, drive, take_all
from messor.hookspecs import ExecutorFactory, RegisterExecutor, hookimpl
from messor.memories.base import Memory
from messor.options import RunOptions, StopConditions
from messor.run.attempt import Attempt, Outcome, failure, perform
from messor.run.harvest import Harvest, RunReport
from messor.tasks import Task
from messor.url import MemoryURL

__all__ = [
    "Attempt",
    "ConfigurationError",
    "Executor",
    "ExecutorFactory",
    "Harvest",
    "Memory",
    "MemoryURL",
    "MessorError",
    "Outcome",
    "RegisterExecutor",
    "RunOptions",
    "RunReport",
    "StopConditions",
    "Task",
    "Workers",
    "drive",
    "failure",
    "hookimpl",
    "perform",
    "take_all",
]
