"""Stop conditions for the common cases, composable with your own ``stop_all_when``.

    LocalThreadedExecutor(
        tasks,
        stop_all_when=[stop_after_consecutive_failures(10), stop_on(BannedError), quota_used_up,
                       stop_when_spent(cost=5.0)],
    )

A run stops when any condition of the list returns True; the helpers learn of
every finished attempt through ``observe``. Once stopped, no task starts, the
running ones finish and are recorded, the others stay pending.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from messor.errors import ConfigurationError

__all__ = [
    "AttemptOutcome",
    "ConsecutiveFailures",
    "SpendingLimit",
    "StopCondition",
    "StopOnException",
    "stop_after_consecutive_failures",
    "stop_on",
    "stop_when_spent",
]


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What a stop condition learns of each finished attempt."""

    task_id: str
    ok: bool
    error: str | None = None
    error_type: type[BaseException] | None = None
    #: What the attempt reported spending (:func:`messor.report_usage`), if anything.
    usage: Mapping[str, float] | None = None
    #: The server throttled it (429): neither a success nor a failure; it goes again.
    throttled: bool = False


class StopCondition:
    """A stop condition that watches outcomes: ``observe`` each one, then say whether to stop."""

    #: Why it asked to stop, for the run's report and log.
    reason = ""

    def observe(self, outcome: AttemptOutcome) -> None:
        """Learn of one finished attempt (called before ``__call__``)."""

    def reset(self) -> None:
        """Forget what was observed: called when a run starts (an executor may run twice)."""

    def __call__(self) -> bool:
        raise NotImplementedError


class ConsecutiveFailures(StopCondition):
    """Stop once ``count`` attempts in a row failed: the service is down, or has banned us."""

    def __init__(self, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(
                f"stop_after_consecutive_failures needs an int >= 1, got {count!r}"
            )
        self.count = count
        self._streak = 0

    def reset(self) -> None:
        self._streak, self.reason = 0, ""

    def observe(self, outcome: AttemptOutcome) -> None:
        if outcome.throttled:
            return  # the server asked to wait: the run waits, that is no failure
        self._streak = 0 if outcome.ok else self._streak + 1
        if self._streak >= self.count:
            self.reason = f"{self._streak} attempts failed in a row (the last: {outcome.error})"

    def __call__(self) -> bool:
        return self._streak >= self.count


class StopOnException(StopCondition):
    """Stop as soon as a task raises one of ``exception_types`` (an API's ban, say)."""

    def __init__(self, *exception_types: type[BaseException]) -> None:
        if not exception_types or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in exception_types
        ):
            raise ConfigurationError(f"stop_on needs exception classes, got {exception_types!r}")
        self.exception_types = exception_types
        self._hit = False

    def reset(self) -> None:
        self._hit, self.reason = False, ""

    def observe(self, outcome: AttemptOutcome) -> None:
        if outcome.throttled:
            return  # handled by waiting, not a failure (see messor.Throttled)
        if outcome.error_type is not None and issubclass(outcome.error_type, self.exception_types):
            self._hit = True
            self.reason = f"task {outcome.task_id!r} raised {outcome.error}"

    def __call__(self) -> bool:
        return self._hit


class SpendingLimit(StopCondition):
    """Stop once the usage the tasks reported reaches a total: a budget of money or tokens.

    Checked before each start: no task starts once a total is reached. The
    attempts running then finish and are recorded (what they spend is what
    the run could not know before they ended).
    """

    def __init__(self, cost: float | None = None, **totals: float) -> None:
        if cost is not None:
            totals["cost"] = cost
        if not totals:
            raise ConfigurationError(
                "stop_when_spent needs a total, such as stop_when_spent(cost=5.0)"
            )
        for name, value in totals.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(
                    f"stop_when_spent: {name} must be a number > 0, got {value!r}"
                )
            if math.isinf(value):
                raise ConfigurationError(f"stop_when_spent: {name} must be finite, got {value!r}")
        self.totals = dict(totals)
        self.spent: dict[str, float] = dict.fromkeys(totals, 0.0)

    def reset(self) -> None:
        self.spent = dict.fromkeys(self.totals, 0.0)
        self.reason = ""

    def observe(self, outcome: AttemptOutcome) -> None:
        if outcome.usage:
            for name in self.totals:
                self.spent[name] += outcome.usage.get(name, 0.0)

    def __call__(self) -> bool:
        for name, total in self.totals.items():
            if self.spent[name] >= total:
                self.reason = f"spent {name} {self.spent[name]:g} of a budget of {total:g}"
                return True
        return False


def stop_when_spent(cost: float | None = None, **totals: float) -> SpendingLimit:
    """A stop condition: the tasks reported spending ``cost`` (or another total) or more."""
    return SpendingLimit(cost, **totals)


def stop_after_consecutive_failures(count: int) -> ConsecutiveFailures:
    """A stop condition: ``count`` failed attempts in a row."""
    return ConsecutiveFailures(count)


def stop_on(*exception_types: type[BaseException]) -> StopOnException:
    """A stop condition: any task raising one of ``exception_types``."""
    return StopOnException(*exception_types)
