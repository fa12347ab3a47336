"""Errors raised by Messor.

Every error derives from :class:`MessorError` and also from the built-in it
resembles, so ``except KeyError`` written against the seed keeps working and
``except MessorError`` catches everything Messor raises on purpose.
"""

from __future__ import annotations


class MessorError(Exception):
    """Base class of every error Messor raises on purpose."""


class TaskNotFoundError(MessorError, KeyError):
    """A task id that the memory does not know."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task with ID {task_id!r} not found")
        self.task_id = task_id

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; ours is a sentence.
        return str(self.args[0])


class TaskDataError(MessorError, TypeError):
    """Task data or a result that the memory cannot store (not JSON)."""


class InvalidTaskError(MessorError, TypeError):
    """An object handed to an executor that is not a usable task."""


class DuplicateTaskError(MessorError, ValueError):
    """Two tasks of one run share an id: the second would overwrite the first."""


class ConfigurationError(MessorError, ValueError):
    """A memory spec, URL, option or configuration file that cannot be used."""


class UnknownBackendError(MessorError, LookupError):
    """No installed plugin provides the memory that was asked for."""


class MemoryUnavailableError(MessorError, ConnectionError):
    """A memory's store cannot be reached or written (connection lost for too long, file locked)."""


class TaskTimeoutError(MessorError, TimeoutError):
    """A task ran longer than the executor's ``timeout``: recorded failed, retried like any."""


class RunInProgressError(MessorError, RuntimeError):
    """Another run holds the memory: two would run the same tasks twice."""


class RecordingError(MessorError, RuntimeError):
    """Outcomes could not be recorded; the run stopped to avoid losing more."""


class ClaimLostError(RecordingError):
    """This run's claim on its memory lapsed (a pause longer than the lapse) and may be another's.

    The run stopped, and the memory refuses its writes: two runs would
    otherwise run the same tasks and overwrite each other's results.
    """


class ResultTooLargeError(TaskDataError):
    """A result larger than the memory stores in one value: that task fails, the run goes on."""


class IncompleteMemoryError(MessorError, TypeError):
    """A ``Memory`` subclass that implements neither the primitives nor the seed's methods."""
