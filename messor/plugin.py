"""Everything a Messor plugin imports: ``from messor.plugin import ...``.

The names here are the plugin API: they keep their meaning across releases
of one minor series (a plugin pins ``messor>=0.1,<0.2``), while the modules
they live in may move. A plugin imports from :mod:`messor` (the user's API)
and from this module, never from ``messor.memories``, ``messor.run`` or
another inner module; the contract tests are in :mod:`messor.testing`, for a
plugin's own test suite.

Every plugin (a module named in the ``messor`` entry-point group):
    :data:`hookimpl` marks its hook functions; :class:`Register` is the type of
    the ``register`` argument of ``register_memories``; :data:`MemoryFactory`
    the type of the factory it registers; :class:`MemoryURL` the parsed URL a
    factory receives. The errors (:class:`MessorError` and those derived from
    it) say what went wrong in the user's terms: raise
    :class:`ConfigurationError` for a bad URL or option,
    :class:`MemoryUnavailableError` for a store out of reach.

A memory (a :class:`Memory` subclass implementing its five primitives):
    the statuses (:class:`TaskStatus`, and :data:`PENDING`, :data:`COMPLETED`,
    :data:`FAILED`, :data:`STATUSES` as plain strings), the rows it receives
    and returns (:class:`EncodedUpdate`, :class:`Row`; :class:`TaskRecord`
    and :data:`StatusUpdate` are the decoded forms users see), the rule of an
    ``update`` (:class:`UpdateRule`, its :data:`Missing`) and
    :func:`changes_to_apply` (that rule judged in one place), the
    codec that turns values into the JSON text it stores (:func:`encode_json`,
    :func:`decode_json`, :func:`check_task_id`, :func:`encode_tasks`,
    :func:`encode_update`: the base class calls them, a backend rarely needs
    to), and :class:`ResultTooLargeError` for a value beyond the store's limit.

A memory that keeps runs apart (``claim_run``):
    :class:`RunOwner` (who holds a claim), :data:`Release` (what ends it),
    :class:`ClaimWatch` (how a lapsing claim tells its run it is in doubt or
    lost), :class:`FileClaim` (an OS lock on a file beside the store),
    :class:`LocalClaim` (a store inside this process), :func:`mark_held`,
    :func:`refuse` and :func:`claim_lost` (the errors of a refused run and of
    a lost claim), :func:`release_nothing` (for a store that claims nothing).

An executor (where attempts run: a cluster, a pool of processes):
    :class:`Executor` (the options, the memory, ``status_summary``),
    :class:`Harvest` (the run loop: what to start next, what to record) and
    its :class:`RunReport`, :class:`Workers` and :func:`drive` (the loop that
    feeds workers from a harvest), :class:`Attempt` and :class:`Outcome` (one
    try at a task and how it ended), :func:`perform` (runs an attempt
    anywhere, never raises, judging its exception by the run's :class:`Rules`:
    ``harvest.rules``), :func:`failure` and :func:`describe_error` (an
    outcome from an exception), :class:`Throttle` and :class:`Usage` (what an
    outcome carries of a server's throttle and of what the task spent),
    :func:`take_all` (drain a queue of outcomes),
    :class:`RunOptions` (every option of a run, checked once),
    :data:`StopConditions` (the type of ``stop_all_when``), :class:`Task`
    (what a task is); :class:`RegisterExecutor` and :data:`ExecutorFactory`
    type the ``register_executors`` hook (docs/executors.md).
"""

from __future__ import annotations

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
from messor.executors.base import Executor, Workers, drive, take_all
from messor.hookspecs import (
    ExecutorFactory,
    MemoryFactory,
    Register,
    RegisterExecutor,
    hookimpl,
)
from messor.memories.base import (
    COMPLETED,
    FAILED,
    GAVE_UP,
    PENDING,
    STATUSES,
    EncodedUpdate,
    Memory,
    Missing,
    Row,
    StatusUpdate,
    TaskRecord,
    TaskStatus,
    UpdateRule,
    changes_to_apply,
    check_task_id,
    decode_json,
    encode_json,
    encode_tasks,
    encode_update,
)
from messor.memories.claims import (
    ClaimWatch,
    FileClaim,
    LocalClaim,
    Release,
    RunOwner,
    claim_lost,
    mark_held,
    refuse,
    release_nothing,
)
from messor.options import RunOptions, StopConditions
from messor.run.attempt import Attempt, Outcome, describe_error, failure, perform
from messor.run.harvest import Harvest, RunReport
from messor.run.throttling import Throttle
from messor.run.usage import Usage
from messor.run.verdicts import Rules
from messor.tasks import Task
from messor.url import MemoryURL

__all__ = [
    "COMPLETED",
    "FAILED",
    "GAVE_UP",
    "PENDING",
    "STATUSES",
    "Attempt",
    "ClaimLostError",
    "ClaimWatch",
    "ConfigurationError",
    "DuplicateTaskError",
    "EncodedUpdate",
    "Executor",
    "ExecutorFactory",
    "FileClaim",
    "Harvest",
    "IncompleteMemoryError",
    "InvalidTaskError",
    "LocalClaim",
    "Memory",
    "MemoryFactory",
    "MemoryURL",
    "MemoryUnavailableError",
    "MessorError",
    "Missing",
    "Outcome",
    "RecordingError",
    "Register",
    "RegisterExecutor",
    "Release",
    "ResultTooLargeError",
    "Row",
    "Rules",
    "RunInProgressError",
    "RunOptions",
    "RunOwner",
    "RunReport",
    "StatusUpdate",
    "StopConditions",
    "Task",
    "TaskDataError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeoutError",
    "Throttle",
    "UnknownBackendError",
    "UpdateRule",
    "Usage",
    "Workers",
    "changes_to_apply",
    "check_task_id",
    "claim_lost",
    "decode_json",
    "describe_error",
    "drive",
    "encode_json",
    "encode_tasks",
    "encode_update",
    "failure",
    "hookimpl",
    "mark_held",
    "perform",
    "refuse",
    "release_nothing",
    "take_all",
]
