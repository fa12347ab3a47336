"""One try at one task, and how it ended: what executors hand back to the run loop.

:func:`perform` runs anywhere (a thread, a Dask worker): it never raises, and
it encodes the result at once, so that what is recorded is the value the task
returned at that instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from messor.memory import encode_json
from messor.tasks import Task

__all__ = ["Attempt", "Outcome", "describe_error", "failure", "perform"]


@dataclass(slots=True, eq=False)
class Attempt:
    """One try at running one task; ``number`` counts from 1 within a run."""

    task_id: str
    task: Task
    number: int = 1
    #: The error of the previous attempt, kept while a retry waits.
    last_error: str | None = None
    #: When the attempt times out (monotonic clock), if the run has a timeout.
    deadline: float | None = None
    #: Its outcome was recorded, or it was given up (timed out, abandoned).
    settled: bool = False


@dataclass(slots=True)
class Outcome:
    """How an attempt ended: its result as JSON text, or the error text of what it raised."""

    attempt: Attempt
    ok: bool
    result_json: str | None = None
    error: str | None = None
    error_type: type[BaseException] | None = None
    retryable: bool = True


def describe_error(exc: BaseException) -> str:
    """``"module.Type: message"`` (builtins without module), even if ``str(exc)`` raises."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    try:
        # Lone surrogates (from surrogateescape-decoded bytes) cannot be stored.
        message = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")
    except Exception:
        message = "<the exception's message could not be read>"
    return f"{name}: {message}" if message else name


def failure(attempt: Attempt, exc: BaseException, *, retryable: bool = True) -> Outcome:
    """The outcome of an attempt that raised ``exc``."""
    return Outcome(
        attempt, ok=False, error=describe_error(exc), error_type=type(exc), retryable=retryable
    )


def perform(attempt: Attempt) -> Outcome:
    """Run one attempt and encode its result, catching whatever either raises.

    The result is encoded here, once, as the task returns it: what is
    recorded is the value at that instant, even if the task's code changes
    the object later.
    """
    try:
        result = attempt.task()
    except BaseException as exc:
        # BaseException too: a task's SystemExit must fail that task, not
        # kill the worker that ran it and leave the run waiting for it.
        return failure(attempt, exc)
    try:
        text = encode_json(result, task_id=attempt.task_id)
    except Exception as exc:  # not JSON, or a value whose own methods raise while encoded
        return failure(attempt, exc, retryable=False)
    return Outcome(attempt, ok=True, result_json=text)
