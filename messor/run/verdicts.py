"""What an attempt's exception means for its task: retry it, give up for good, or slow down.

Judged where the attempt ran (a thread, the event loop, a Dask worker), by
:class:`Rules` built from the run options ``retry_on`` and ``give_up_on``:
each is exception types or a predicate ``exc -> bool`` (such as
:func:`http_status`), and the verdict travels back in the attempt's
:class:`~messor.run.attempt.Outcome`, so that a predicate can look at the
exception itself (its response, its status) and nothing unpicklable travels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from messor.errors import ConfigurationError, MessorError
from messor.run.throttling import Throttle, status_of, throttle_of

__all__ = [
    "ExceptionRule",
    "FailForGood",
    "HttpStatus",
    "Rules",
    "Verdict",
    "exception_rule",
    "http_status",
    "status_codes",
]

#: What ``retry_on`` and ``give_up_on`` hold once checked: exception types, or a predicate.
ExceptionRule: TypeAlias = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class FailForGood(MessorError):
    """Raise it in a task that must not run again: recorded ``gave_up``, never retried.

    ``raise messor.FailForGood("404 Not Found")``: the next run skips the task
    (``messor failed`` lists it, "for good"; ``messor retry --gave-up`` or
    ``messor retry ID`` makes it pending again).
    """


class HttpStatus:
    """A predicate over exceptions: the HTTP response it carries has one of ``codes``.

    Works for requests, httpx and aiohttp errors (and any exception with a
    ``.response`` that has ``.status_code`` or ``.status``), without importing them.
    """

    def __init__(self, *codes: int) -> None:
        if not codes or not all(
            isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes
        ):
            raise ConfigurationError(
                f"http_status needs HTTP status codes (ints from 100 to 599), got {codes!r}"
            )
        self.codes = frozenset(codes)

    def __call__(self, exc: BaseException) -> bool:
        return status_of(exc) in self.codes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HttpStatus) and other.codes == self.codes

    def __hash__(self) -> int:
        return hash(self.codes)

    def __repr__(self) -> str:
        return f"http_status({', '.join(map(str, sorted(self.codes)))})"


def http_status(*codes: int) -> HttpStatus:
    """``retry_on=messor.http_status(500, 502, 503, 504)``: match HTTP errors by status."""
    return HttpStatus(*codes)


class AnyOf:
    """Several rules at once (``--retry-on`` and ``--retry-on-status`` together): any matches."""

    def __init__(self, *rules: ExceptionRule) -> None:
        self.rules = rules

    def __call__(self, exc: BaseException) -> bool:
        return any(_matches(rule, exc) for rule in self.rules)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnyOf) and other.rules == self.rules

    def __hash__(self) -> int:
        return hash(self.rules)

    def __repr__(self) -> str:
        return " or ".join(map(repr, self.rules))


def exception_rule(value: object, option: str) -> ExceptionRule | None:
    """``value`` as a rule: None, an exception class, a predicate, or a tuple of those.

    Only classes stay a tuple of classes (as ``retry_on`` always was); a
    mixture becomes one predicate that any of them satisfies.
    """
    if value is None:
        return None
    items = value if isinstance(value, tuple) else (value,)
    flat: list[object] = []
    for item in items:
        flat.extend(item if isinstance(item, tuple) else (item,))
    if flat and all(isinstance(t, type) and issubclass(t, BaseException) for t in flat):
        return tuple(flat)  # type: ignore[arg-type]
    rules: list[ExceptionRule] = []
    for item in flat:
        if isinstance(item, type) and issubclass(item, BaseException):
            rules.append((item,))
        elif callable(item) and not isinstance(item, type):
            rules.append(item)
        else:
            rules = []
            break
    if not rules:
        raise ConfigurationError(
            f"{option} must be an exception class, a tuple of them, or a function "
            f"exc -> bool (such as messor.http_status(404)), got {value!r}"
        )
    return rules[0] if len(rules) == 1 else AnyOf(*rules)


def status_codes(text: str, option: str) -> HttpStatus:
    """``http_status(...)`` from ``"404,410"`` (``option`` names the flag)."""
    try:
        codes = [int(part) for part in text.split(",") if part.strip()]
        return HttpStatus(*codes)
    except (ValueError, ConfigurationError):
        raise ConfigurationError(
            f"{option} takes HTTP status codes separated by commas (404,410), got {text!r}"
        ) from None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an exception means for its task."""

    retryable: bool = True
    gave_up: bool = False
    throttle: Throttle | None = None
    #: Said of the judging itself (a predicate that raised), added to the recorded error.
    note: str = ""


@dataclass(frozen=True)
class Rules:
    """``retry_on`` and ``give_up_on`` of a run, applied where the attempt ran."""

    retry_on: ExceptionRule | None = None
    give_up_on: ExceptionRule | None = None

    def judge(self, exc: BaseException) -> Verdict:
        """Given up (:class:`FailForGood`, ``give_up_on``), a throttle, or retryable or not.

        A rule that raises counts as not matching, and says so in the recorded error.
        """
        notes: list[str] = []
        gave_up = isinstance(exc, FailForGood)
        if not gave_up and self.give_up_on is not None:
            gave_up = _judged(self.give_up_on, exc, "give_up_on", notes)
        if gave_up:
            return Verdict(retryable=False, gave_up=True)
        throttle = throttle_of(exc)
        retryable = self.retry_on is None or _judged(self.retry_on, exc, "retry_on", notes)
        return Verdict(retryable, False, throttle, "; ".join(notes))


#: The rules of a run with neither ``retry_on`` nor ``give_up_on``.
NO_RULES = Rules()


def _matches(rule: ExceptionRule, exc: BaseException) -> bool:
    if isinstance(rule, tuple):
        return isinstance(exc, rule)
    return bool(rule(exc))


def _judged(rule: ExceptionRule, exc: BaseException, option: str, notes: list[str]) -> bool:
    try:
        return _matches(rule, exc)
    except Exception as problem:
        notes.append(f"{option} raised {type(problem).__name__}: {problem}")
        return False
