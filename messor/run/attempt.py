"""One try at one task, and how it ended: what executors hand back to the run loop.

:func:`perform` runs anywhere (a thread, a Dask worker): it never raises, and
it encodes the result at once, so that what is recorded is the value the task
returned at that instant. It also judges there what an exception means
(:class:`~messor.run.verdicts.Rules`: retry, give up for good, a server's
throttle) and gathers the usage the task reported: all of it travels back
in the :class:`Outcome`, as plain data.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from messor.errors import TaskDataError
from messor.memories.base import encode_json
from messor.run.throttling import Throttle
from messor.run.usage import Result, Usage, UsageSink, collecting, stop_collecting
from messor.run.verdicts import NO_RULES, Rules
from messor.tasks import Task

if TYPE_CHECKING:
    from messor.run.limits import Gate

__all__ = ["Attempt", "Outcome", "describe_error", "failure", "perform", "returned"]


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
    #: Times its task was throttled in this run (carried over to its retries).
    throttled: int = 0
    #: This try of this number started before and goes again (throttled): not a new retry.
    again: bool = False
    #: When the run handed it out (monotonic clock), when pacing needs to know.
    started: float = 0.0
    #: What the run's pacing counts it in while it runs (see messor.run.pacing).
    holds: tuple[Gate, ...] = ()


@dataclass(slots=True)
class Outcome:
    """How an attempt ended: its result as JSON text, or the error text of what it raised."""

    attempt: Attempt
    ok: bool
    result_json: str | None = None
    error: str | None = None
    error_type: type[BaseException] | None = None
    retryable: bool = True
    #: The task failed for good (``FailForGood``, ``give_up_on``): never run again.
    gave_up: bool = False
    #: The server said "slow down" (429, 503, 529, ``Throttled``).
    throttle: Throttle | None = None
    #: What the attempt reported spending (``report_usage``, ``Result(usage=...)``).
    usage: Usage | None = None


#: Longest error text recorded: the first and last characters of a longer one
#: are kept. An error is stored with every failed task and shown in listings;
#: a whole HTML page in an exception's message would bloat both.
MAX_ERROR_CHARS = 5000
_ERROR_TAIL = 1000


def describe_error(exc: BaseException) -> str:
    """``"module.Type: message"`` (builtins without module), even if ``str(exc)`` raises.

    At most about :data:`MAX_ERROR_CHARS` characters; lone surrogates are escaped.
    """
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    try:
        message = str(exc)
    except BaseException:  # even a SystemExit from __str__ must not kill the worker thread
        message = "<the exception's message could not be read>"
    text = f"{name}: {message}" if message else name
    if not text.isascii():
        # Lone surrogates (from surrogateescape-decoded bytes) cannot be stored.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_ERROR_CHARS:
        cut = len(text) - MAX_ERROR_CHARS
        head = text[: MAX_ERROR_CHARS - _ERROR_TAIL]
        text = f"{head} [... {cut} characters cut ...] {text[-_ERROR_TAIL:]}"
    return text


def failure(
    attempt: Attempt, exc: BaseException, *, retryable: bool = True, rules: Rules = NO_RULES
) -> Outcome:
    """The outcome of an attempt that raised ``exc``, judged by ``rules``."""
    verdict = rules.judge(exc)
    error = describe_error(exc)
    if verdict.note:
        error = f"{error} ({verdict.note})"
    return Outcome(
        attempt,
        ok=False,
        error=error,
        error_type=type(exc),
        retryable=retryable and verdict.retryable,
        gave_up=verdict.gave_up,
        throttle=verdict.throttle,
    )


def perform(attempt: Attempt, rules: Rules = NO_RULES) -> Outcome:
    """Run one attempt and encode its result, catching whatever either raises.

    The result is encoded here, once, as the task returns it: what is
    recorded is the value at that instant, even if the task's code changes
    the object later. An exception is judged by ``rules`` here too.
    """
    sink = UsageSink()
    token = collecting(sink)
    try:
        result = attempt.task()
    except BaseException as exc:
        # BaseException too: a task's SystemExit must fail that task, not
        # kill the worker that ran it and leave the run waiting for it.
        outcome = failure(attempt, exc, rules=rules)
    else:
        outcome = returned(attempt, result)
    finally:
        stop_collecting(token)
    if sink.total is not None:
        outcome.usage = sink.total if outcome.usage is None else sink.total + outcome.usage
    return outcome


def returned(attempt: Attempt, result: Any) -> Outcome:
    """The outcome of an attempt that returned ``result``: encoded now, or a failure.

    A :class:`~messor.run.usage.Result` gives its value to record and its usage.
    """
    usage = None
    if isinstance(result, Result):
        result, usage = result.value, result.usage
    try:
        text = encode_json(result, task_id=attempt.task_id)
    except BaseException as exc:  # not JSON, or a value whose own methods raise while encoded
        outcome = failure(attempt, _unstorable(result, attempt.task_id, exc), retryable=False)
    else:
        outcome = Outcome(attempt, ok=True, result_json=text)
    outcome.usage = usage
    return outcome


def _unstorable(result: Any, task_id: str, exc: BaseException) -> TaskDataError:
    """Why a result cannot be recorded, said of the result: never taken for the task's own error."""
    if inspect.iscoroutine(result):
        result.close()  # it will never be awaited: closed, it warns of nothing
        return TaskDataError(
            f"Task {task_id!r} returned a coroutine: its function is async def, and this "
            "executor calls tasks without awaiting them; run it with messor.AsyncExecutor, "
            "or make it a plain function (asyncio.run() inside it runs async code)"
        )
    if inspect.isgenerator(result) or inspect.isasyncgen(result):
        return TaskDataError(
            f"Task {task_id!r} returned a generator, which has computed nothing yet; "
            "return a list of its items instead (list(...))"
        )
    if isinstance(exc, TaskDataError):
        return exc
    return TaskDataError(
        f"The result of task {task_id!r} could not be encoded as JSON: encoding it raised "
        f"{describe_error(exc)}"
    )
