"""Telling a server's "slow down" apart from a failure: 429, 503 and 529 with ``Retry-After``.

A task that hits a throttled API raises whatever its client raises: a
``requests.HTTPError``, an ``httpx.HTTPStatusError``, an aiohttp
``ClientResponseError``, an LLM SDK's ``RateLimitError``. :func:`throttle_of`
recognises them all by their shape, without importing any client: an
exception (or one in its ``__cause__``/``__context__`` chain) with a
``.response`` whose ``.status_code`` or ``.status`` is 429, 503 or 529, or
with a ``.status`` and ``.headers`` of its own (aiohttp). For other clients a
task raises :class:`Throttled` itself.

The run loop does not count a throttle as a failure: the attempt goes back to
the queue, and its key (or the whole run) pauses until the server's time.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from messor.errors import ConfigurationError, MessorError

__all__ = [
    "MAX_RETRY_AFTER",
    "THROTTLE_STATUSES",
    "Throttle",
    "Throttled",
    "parse_retry_after",
    "status_of",
    "throttle_of",
]

#: The HTTP statuses by which servers say "too many" (529: "overloaded", as some LLM APIs say).
THROTTLE_STATUSES = frozenset({429, 503, 529})
#: The longest ``Retry-After`` honoured, in seconds: a longer one is taken as an hour.
MAX_RETRY_AFTER = 3600.0
#: How far along ``__cause__``/``__context__`` an exception is searched for a response.
_CHAIN_DEPTH = 8


class Throttled(MessorError):
    """Raise it in a task when the service said "slow down" in a way Messor cannot read.

    ``retry_after``: seconds the service asked to wait (None: Messor backs off
    by itself, 1 s, 2 s, 4 s ... up to a minute). ``key``: what the service
    throttled (an API key, a host), when the run has keyed limits; by default
    the task's own key. ``reason``: shown while the run is paused.

    The attempt is not a failure and uses up no retry: it goes back to the
    queue, and nothing of its key starts before the time has passed.
    """

    def __init__(
        self, retry_after: float | None = None, *, key: str | None = None, reason: str = ""
    ) -> None:
        if retry_after is not None and (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, int | float)
            or not 0 <= retry_after < math.inf
        ):
            raise ConfigurationError(
                f"Throttled: retry_after must be a number of seconds >= 0 or None, "
                f"got {retry_after!r}"
            )
        if key is not None and not isinstance(key, str):
            raise ConfigurationError(f"Throttled: key must be a str or None, got {key!r}")
        wait = "" if retry_after is None else f"retry after {retry_after:g} s"
        super().__init__("; ".join(part for part in (reason, wait) if part) or "throttled")
        self.retry_after = None if retry_after is None else min(float(retry_after), MAX_RETRY_AFTER)
        self.key = key
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: pickled (to and from a Dask worker) by hand.
        return (_throttled, (self.retry_after, self.key, self.reason))


def _throttled(retry_after: float | None, key: str | None, reason: str) -> Throttled:
    return Throttled(retry_after, key=key, reason=reason)


@dataclass(frozen=True, slots=True)
class Throttle:
    """What a throttled attempt learned of the server; computed where the attempt ran."""

    #: Seconds the server asked to wait, from when the attempt ended (None: it did not say).
    retry_after: float | None
    #: The HTTP status (None: the task raised :class:`Throttled`).
    status: int | None = None
    #: The key the server throttled, when the task named it (``Throttled(key=...)``).
    key: str | None = None
    reason: str = ""

    @property
    def explicit(self) -> bool:
        """The task itself said so (:class:`Throttled`), rather than an HTTP status."""
        return self.status is None

    @property
    def pauses(self) -> bool:
        """Whether it pauses its key (the server named a time, or the task said so); a bare
        503 or 529 only slows a run that adapts (see :mod:`messor.run.pacing`)."""
        return self.status is None or self.retry_after is not None

    def honoured(self, adaptive: bool) -> bool:
        """Whether a run pauses for it: the task said so, or the server named a time; a bare
        503 or 529 only when the run adapts (else it is a failure, as it always was)."""
        return self.status is None or self.retry_after is not None or adaptive

    def describe(self) -> str:
        """``429``, ``503`` or the task's reason, for the progress bar and the run's state."""
        if self.status is not None:
            return str(self.status)
        return self.reason or "throttled"


def throttle_of(exc: BaseException) -> Throttle | None:
    """The throttle that ``exc`` (or an exception it was raised from) reports, if any.

    :class:`Throttled`, or an HTTP error whose status is 429, 503 or 529
    (``Retry-After`` read when present).
    """
    for link in _chain(exc):
        if isinstance(link, Throttled):
            return Throttle(link.retry_after, None, link.key, link.reason)
        found = _response_status(link)
        if found is not None:
            status, headers = found
            if status not in THROTTLE_STATUSES:
                return None
            return Throttle(parse_retry_after(_header(headers, "Retry-After")), status)
    return None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of the response an exception (or its chain) carries, if any."""
    for link in _chain(exc):
        found = _response_status(link)
        if found is not None:
            return found[0]
    return None


def parse_retry_after(value: object, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date.

    Clamped to [0, :data:`MAX_RETRY_AFTER`]; None when missing or unreadable.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT, whether or not it says so
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or during, a few links deep, each once."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and len(seen) < _CHAIN_DEPTH:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _response_status(exc: BaseException) -> tuple[int, object] | None:
    """``(status, headers)`` of an HTTP error, found by its shape.

    requests and httpx: ``exc.response.status_code`` and ``.headers``;
    aiohttp: ``exc.status`` and ``exc.headers`` on the error itself.
    """
    try:
        response = getattr(exc, "response", None)
        if response is not None:
            status = getattr(response, "status_code", None)
            if status is None:
                status = getattr(response, "status", None)
            if isinstance(status, int) and _is_status(status):
                return status, getattr(response, "headers", None)
        status = getattr(exc, "status", None)
        if isinstance(status, int) and _is_status(status) and hasattr(exc, "headers"):
            return status, exc.headers
    except Exception:  # a property of some client's exception that raises: not an HTTP error
        return None
    return None


def _is_status(value: int) -> bool:
    return not isinstance(value, bool) and 100 <= value <= 599


def _header(headers: object, name: str) -> object:
    """A header's value from any client's headers (case-insensitive mappings, or a dict)."""
    if headers is None:
        return None
    try:
        get = headers.get  # type: ignore[attr-defined]
        value = get(name)
        if value is None and isinstance(headers, Mapping):
            lowered = name.lower()
            value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
        return value
    except Exception:
        return None
