"""What tasks spend: tokens, requests, money; reported by tasks, summed by the run.

A task reports usage in one of two ways::

    messor.report_usage(tokens_in=812, tokens_out=95, cost=0.0031)   # anywhere inside the task
    return messor.Result(answer, usage=messor.Usage(tokens_in=812, tokens_out=95))

:func:`report_usage` finds the attempt through a context variable that
:func:`~messor.run.attempt.perform` sets: it works in a task on threads,
coroutines (and the asyncio tasks they create, which copy the context) and
Dask workers, and travels back in the attempt's outcome. A thread the task
starts itself does not inherit the context (Python's rule): report from the
task, or run the thread's work through ``contextvars.copy_context().run``
(``asyncio.to_thread`` does that). The run sums every outcome's usage (failed and throttled
attempts too: a refused call may still cost): ``RunReport.usage``, the
progress bar, ``messor run``'s summary, and :func:`messor.stop_when_spent`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from messor.errors import ConfigurationError

__all__ = ["Result", "Usage", "UsageSink", "collecting", "report_usage", "tokens_of"]


class Usage(Mapping[str, float]):
    """Named amounts one attempt spent: ``Usage(tokens_in=812, tokens_out=95, cost=0.0031)``.

    Any names (identifiers) and numbers >= 0; ``cost`` is one of them, in the
    currency you choose. Usages add up: ``a + b``.
    """

    __slots__ = ("_counters",)

    def __init__(self, **counters: float) -> None:
        for name, value in counters.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value < math.inf
            ):
                raise ConfigurationError(
                    f"Usage: {name}={value!r} is not an amount; give numbers >= 0, "
                    "such as Usage(tokens_in=812, cost=0.0031)"
                )
        self._counters: dict[str, float] = dict(counters)

    @property
    def cost(self) -> float:
        return self._counters.get("cost", 0.0)

    def __getitem__(self, name: str) -> float:
        return self._counters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counters)

    def __len__(self) -> int:
        return len(self._counters)

    def __add__(self, other: Mapping[str, float]) -> Usage:
        total = dict(self._counters)
        for name, value in other.items():
            total[name] = total.get(name, 0) + value
        return Usage(**total)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_usage, (self._counters,))

    def __repr__(self) -> str:
        return f"Usage({', '.join(f'{k}={v!r}' for k, v in self._counters.items())})"


def _usage(counters: dict[str, float]) -> Usage:
    return Usage(**counters)


def tokens_of(usage: Mapping[str, float]) -> float:
    """The tokens a task spent, as a ``tokens`` limit debits them: ``tokens`` if it reported
    that, else ``tokens_in + tokens_out``."""
    if "tokens" in usage:
        return usage["tokens"]
    return usage.get("tokens_in", 0.0) + usage.get("tokens_out", 0.0)


class Result:
    """A task's return value with what it spent: ``return messor.Result(value, usage=Usage(...))``.

    The value is recorded as the task's result; the usage is summed by the run.
    """

    __slots__ = ("usage", "value")

    def __init__(self, value: Any, *, usage: Usage | Mapping[str, float] | None = None) -> None:
        self.value = value
        self.usage = usage if usage is None or isinstance(usage, Usage) else Usage(**dict(usage))

    def __repr__(self) -> str:
        return f"Result({self.value!r}, usage={self.usage!r})"


class UsageSink:
    """Where the usage one attempt reports is gathered (shared by the threads it starts)."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total: Usage | None = None

    def add(self, usage: Mapping[str, float]) -> None:
        self.total = Usage(**dict(usage)) if self.total is None else self.total + usage


_SINK: ContextVar[UsageSink | None] = ContextVar("messor_usage", default=None)


def report_usage(usage: Usage | Mapping[str, float] | None = None, /, **counters: float) -> None:
    """Add to what the running attempt spent: ``report_usage(tokens_in=812, cost=0.0031)``.

    Call it from inside a task, as often as you like (amounts add up). Outside
    a task run by Messor it does nothing, so the same code runs anywhere; that
    includes a thread the task started without copying its context (see the
    module).
    """
    total = Usage(**counters)
    if usage is not None:
        total = total + usage
    sink = _SINK.get()
    if sink is not None:
        sink.add(total)


def collecting(sink: UsageSink) -> Any:
    """Make ``sink`` the current attempt's (returns the token for :func:`stop_collecting`)."""
    return _SINK.set(sink)


def stop_collecting(token: Any) -> None:
    _SINK.reset(token)
