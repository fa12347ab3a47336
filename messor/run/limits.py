"""Keyed limits: so many starts, so many running, so many tokens, per host, API key or model.

    LocalThreadedExecutor(tasks, limits=[
        messor.Limit(rate="5/s", concurrency=2, key=messor.by_host),
        messor.Limit(tokens="90000/m", key=lambda task: task.model),
    ])

Each :class:`Limit` keeps one account (a :class:`LimitGate`) per key its key
function gives; a task starts only when every limit's account for its key
allows it. The run loop (:mod:`messor.run.pacing`) holds a task whose key is
blocked aside, so that it never blocks the tasks of other keys. Everything is
counted by the run loop itself, on the driver: exact within a run, and one
budget for every worker of a Dask cluster.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from messor.errors import ConfigurationError
from messor.run.attempt import Attempt
from messor.run.controls import parse_amount, parse_rate
from messor.tasks import FunctionTask

__all__ = ["Gate", "Limit", "LimitGate", "by_host"]

KeyFunction = Callable[[Any], str]
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class Limit:
    """Limits on the tasks that share a key: all optional, and they combine.

    Args:
        rate: starts per second (a number), or ``"10/s"``, ``"600/m"``,
            ``"1000/h"``, ``"10000/d"``; starts are evenly spaced.
        concurrency: at most this many running at once.
        tokens: tokens per unit (``"90000/m"``), debited with the tokens each
            task reports (``tokens``, else ``tokens_in + tokens_out``: see
            :func:`messor.report_usage`) when it ends. Until the first task of
            a key has reported, one runs at a time; then each start reserves
            the average so far, and a key whose balance would go below zero
            waits until it refills.
        key: a function ``task -> str`` (such as :func:`by_host`); None: one
            key for the whole run. A Limit with a key and nothing else only
            names the key: a server's throttle (429) then pauses that key alone,
            and adaptive concurrency is learned per key.
    """

    def __init__(
        self,
        rate: str | float | None = None,
        concurrency: int | None = None,
        tokens: str | float | None = None,
        *,
        key: KeyFunction | None = None,
    ) -> None:
        self.rate = None if rate is None else parse_rate(rate, "Limit rate")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ConfigurationError(
                f"Limit concurrency must be an int >= 1 or None, got {concurrency!r}"
            )
        self.concurrency = concurrency
        self.tokens: tuple[float, float] | None = None  # (per second, the bucket's depth)
        if tokens is not None:
            per_second, unit = parse_amount(tokens, "Limit tokens")
            self.tokens = (per_second, per_second * unit)
        if key is not None and not callable(key):
            raise ConfigurationError(
                f"Limit key must be a function task -> str (such as messor.by_host), got {key!r}"
            )
        self.key = key
        self._given = (rate, concurrency, tokens, key)

    def key_of(self, task: object) -> str:
        """The key ``task`` is counted under ("" without a key function)."""
        if self.key is None:
            return ""
        key = self.key(task)
        if not isinstance(key, str):
            raise ConfigurationError(
                f"The key function {_name(self.key)} of {self!r} returned "
                f"{type(key).__name__} {key!r} for a task; keys must be str"
            )
        return key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limit) and other._given == self._given

    def __hash__(self) -> int:
        return hash(self._given)

    def __repr__(self) -> str:
        rate, concurrency, tokens, key = self._given
        parts = [f"rate={rate!r}"] if rate is not None else []
        parts += [f"concurrency={concurrency!r}"] if concurrency is not None else []
        parts += [f"tokens={tokens!r}"] if tokens is not None else []
        parts += [f"key={_name(key)}"] if key is not None else []
        return f"Limit({', '.join(parts)})"


def by_host(task: object) -> str:
    """The host of a task's URL, lower-cased, with its port unless it is the scheme's default.

    The URL is the task's ``url`` attribute, what its ``get_url()`` returns,
    or the first argument of a :class:`~messor.FunctionTask` that is a URL.
    """
    url: object = getattr(task, "url", None)
    if url is None and callable(getattr(task, "get_url", None)):
        url = task.get_url()  # type: ignore[attr-defined]
    if url is None and isinstance(task, FunctionTask):
        url = next((a for a in task.args if isinstance(a, str) and "://" in a), None)
    host = _host(url) if isinstance(url, str) else None
    if host is None:
        raise ConfigurationError(
            f"by_host found no URL in the task {task!r}: give it a url attribute, a get_url() "
            "method, or a URL (https://...) as its first argument"
        )
    return host


def _host(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        return f"{host}:{port}"
    return host


def _name(function: object) -> str:
    return str(getattr(function, "__qualname__", None) or repr(function))


class Gate:
    """What can hold tasks back: a key's limit account, or a key's pacing (see pacing.py).

    ``parked``: the attempts waiting for it, in order. ``wake_at``: when the
    pacer looks at them again (inf: when an attempt counted here ends).
    """

    __slots__ = ("parked", "wake_at")

    def __init__(self) -> None:
        self.parked: deque[Attempt] = deque()
        self.wake_at = math.inf

    def wait(self, now: float) -> float:
        """Seconds until one more may start here (0: now; inf: when one running ends)."""
        raise NotImplementedError

    def start(self, now: float) -> None:
        """One more started (after every gate of it said 0)."""

    def end(self, tokens: float | None, now: float) -> None:
        """One counted here ended (``tokens``: what it reported, if anything)."""

    def unstart(self) -> None:
        """One counted here never ran after all (taken back before it started)."""
        self.end(None, -math.inf)


class LimitGate(Gate):
    """One :class:`Limit`'s account for one key: running count, start times, tokens."""

    __slots__ = (
        "_balance",
        "_limit",
        "_next_start",
        "_reported",
        "_tasks_reported",
        "_updated",
        "running",
    )

    def __init__(self, limit: Limit) -> None:
        super().__init__()
        self._limit = limit
        self.running = 0
        self._next_start = -math.inf  # the rate's next free start (starts evenly spaced)
        tokens = limit.tokens
        self._balance = tokens[1] if tokens is not None else 0.0  # a full bucket to begin
        self._updated = -math.inf
        self._reported = 0.0  # tokens reported so far, and by how many tasks
        self._tasks_reported = 0

    def wait(self, now: float) -> float:
        limit = self._limit
        if limit.concurrency is not None and self.running >= limit.concurrency:
            return math.inf
        wait = 0.0
        if limit.rate is not None:
            wait = max(wait, self._next_start - now)
        if limit.tokens is not None:
            wait = max(wait, self._token_wait(now))
        return wait

    def _token_wait(self, now: float) -> float:
        per_second, depth = self._limit.tokens  # type: ignore[misc]
        self._refill(now)
        if self._tasks_reported == 0:
            # Nothing known of what a task costs: one at a time until one tells.
            return math.inf if self.running else (0.0 if self._balance > 0 else -self._balance)
        average = self._reported / self._tasks_reported
        # The running ones will spend about the average each: keep room for them too.
        need = (self.running + 1) * average
        if self._balance >= need:
            return 0.0
        if self.running and need > depth:
            return math.inf  # the bucket cannot hold that much: wait for one to end
        return (min(need, depth) - self._balance) / per_second

    def _refill(self, now: float) -> None:
        per_second, depth = self._limit.tokens  # type: ignore[misc]
        if self._updated > -math.inf:
            self._balance = min(depth, self._balance + (now - self._updated) * per_second)
        self._updated = now

    def start(self, now: float) -> None:
        self.running += 1
        rate = self._limit.rate
        if rate is not None:
            # A start less than one interval late keeps the schedule (as RateLimiter).
            base = self._next_start if now - self._next_start < 1.0 / rate else now
            self._next_start = base + 1.0 / rate

    def end(self, tokens: float | None, now: float) -> None:
        self.running -= 1
        if self._limit.tokens is not None and tokens is not None:
            # An attempt that reported nothing (refused, timed out) spent nothing we
            # know of, and says nothing of what a task costs: the average, and the
            # rule that one runs at a time until a task has reported, stand.
            self._refill(now)
            self._balance -= tokens
            self._reported += tokens
            self._tasks_reported += 1

    def unstart(self) -> None:
        self.running -= 1
