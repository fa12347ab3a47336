"""``RunOptions``: every option of a run, in one frozen, validated object.

An executor holds one (``executor.options``; its keyword arguments, such as
``retry=3``, build it) and hands it to the run loop (``Harvest(tasks, memory,
options)``). ``messor run`` builds its flags from the fields' metadata
(:meth:`RunOptions.add_arguments`) and its options from the flags given
(:meth:`RunOptions.from_arguments`). Each option is written here once: its
type, its default, its check, its flag and its help.
"""

from __future__ import annotations

import argparse
import builtins
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from messor.errors import ConfigurationError
from messor.run.controls import Backoff, RateLimiter
from messor.run.stops import stop_after_consecutive_failures, stop_on

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Flag",
    "RunOptions",
    "StopConditions",
    "exception_classes",
    "exception_types",
    "stop_conditions",
]

#: What ``stop_all_when`` may be given as: a function returning True to stop, or several.
StopConditions = Callable[[], bool] | Iterable[Callable[[], bool]] | None

#: Attempts at once, when neither the options nor the executor say otherwise.
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class Flag:
    """One command-line flag of a run option: what argparse needs, and how its value is read."""

    names: tuple[str, ...]
    help: str
    #: More arguments of ``parser.add_argument``: ``type``, ``metavar``, ``action``.
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Turns what argparse parsed into the option's value (None: as parsed).
    convert: Callable[[Any], Any] | None = None

    @property
    def dest(self) -> str:
        """The attribute of argparse's namespace that holds this flag's value."""
        return self.names[-1].lstrip("-").replace("-", "_")

    def read(self, arguments: argparse.Namespace) -> Any:
        """This flag's value in ``arguments``, converted (None: not given)."""
        value = getattr(arguments, self.dest, None)
        if value is None or self.convert is None:
            return value
        try:
            return self.convert(value)
        except ValueError as exc:  # a stop condition's own check, say
            raise ConfigurationError(f"{self.names[-1]}: {exc}") from None


def _flags(*flags: Flag) -> dict[str, tuple[Flag, ...]]:
    """Field metadata: the option's command-line flags."""
    return {"flags": flags}


def exception_types(names: str, option: str) -> tuple[type[BaseException], ...]:
    """Exception classes from ``"TimeoutError,requests.HTTPError"`` (``option`` names the flag)."""
    types: list[type[BaseException]] = []
    for name in filter(None, (part.strip() for part in names.split(","))):
        module_name, _, class_name = name.rpartition(".")
        try:
            found = getattr(
                importlib.import_module(module_name) if module_name else builtins, class_name
            )
        except (ImportError, AttributeError):
            found = None
        if not (isinstance(found, type) and issubclass(found, BaseException)):
            raise ConfigurationError(
                f"{option}: {name!r} is not an exception class; write a built-in one "
                "(TimeoutError) or module.Class (requests.HTTPError)"
            )
        types.append(found)
    if not types:
        raise ConfigurationError(f"{option} needs at least one exception class")
    return tuple(types)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a run goes: concurrency, retries, pacing, timeouts, stop conditions, progress.

    Every executor takes these as keyword arguments, or all at once as
    ``options=RunOptions(...)``. A bad value is a
    :class:`~messor.errors.ConfigurationError` naming the option, at once.
    """

    #: How many attempts run at once; None: the executor's default (threads and
    #: coroutines: 4; Dask: twice the cluster's threads).
    max_concurrency: int | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("-c", "--max-concurrency"),
                "tasks at once (default: the executor's; local and async: 4, "
                "dask: twice the cluster's threads)",
                {"type": int, "metavar": "N"},
            )
        ),
    )
    #: How many more attempts a failing task gets within one run.
    retry: int = field(
        default=1,
        metadata=_flags(
            Flag(("--retry",), "more attempts after a failure", {"type": int, "metavar": "N"})
        ),
    )
    #: Retry only failures of these exception types (None: all); one class is taken as a tuple.
    retry_on: tuple[type[BaseException], ...] | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("--retry-on",),
                "retry only these exception types, comma-separated "
                "(TimeoutError,requests.HTTPError)",
                {"metavar": "ERRORS"},
                lambda names: exception_types(names, "--retry-on"),
            )
        ),
    )
    #: Before the n-th retry, wait a random time up to ``backoff * 2**(n-1)``
    #: seconds, at most ``backoff_max`` (0: no wait).
    backoff: float = field(
        default=0.0,
        metadata=_flags(
            Flag(
                ("--backoff",),
                "wait up to SECONDS * 2**(n-1) before the n-th retry",
                {"type": float, "metavar": "SECONDS"},
            )
        ),
    )
    backoff_max: float = field(
        default=60.0,
        metadata=_flags(
            Flag(("--backoff-max",), "longest wait", {"type": float, "metavar": "SECONDS"})
        ),
    )
    #: At most this many starts, shared by every worker: ``"10/s"``, ``"600/m"``,
    #: ``"1000/h"`` or a number per second.
    rate_limit: str | float | None = field(
        default=None,
        metadata=_flags(
            Flag(("--rate-limit",), "at most RATE starts: 10/s, 600/m, 1000/h", {"metavar": "RATE"})
        ),
    )
    #: How many starts may follow each other at once after a pause (1: evenly spaced).
    rate_burst: int = field(
        default=1,
        metadata=_flags(
            Flag(("--rate-burst",), "starts at once after a pause", {"type": int, "metavar": "N"})
        ),
    )
    #: Seconds after which a running attempt is recorded failed with a
    #: TimeoutError and its slot given to the next one.
    timeout: float | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("--timeout",),
                "a task running longer fails",
                {"type": float, "metavar": "SECONDS"},
            )
        ),
    )
    #: Functions (such as :func:`messor.stop_on`) checked before each start and
    #: after each outcome; once one returns True no new attempt starts, running
    #: ones finish and are recorded, the rest stay pending. One function, or a
    #: list, is taken as a tuple.
    stop_all_when: tuple[Callable[[], bool], ...] = field(
        default=(),
        metadata=_flags(
            Flag(
                ("--stop-after-failures",),
                "stop starting tasks after N failed attempts in a row",
                {"type": int, "metavar": "N"},
                stop_after_consecutive_failures,
            ),
            Flag(
                ("--stop-on",),
                "stop starting tasks after one of these exceptions",
                {"metavar": "ERRORS"},
                lambda names: stop_on(*exception_types(names, "--stop-on")),
            ),
        ),
    )
    #: Show a progress bar (None: only when stderr is a terminal).
    progress: bool | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("--progress",),
                "show a progress bar (default: when stderr is a terminal)",
                {"action": argparse.BooleanOptionalAction},
            )
        ),
    )

    def __post_init__(self) -> None:
        if self.max_concurrency is not None:
            _check_count("max_concurrency", self.max_concurrency, minimum=1)
        _check_count("retry", self.retry, minimum=0)
        _check_count("rate_burst", self.rate_burst, minimum=1)
        if self.rate_limit is not None:
            RateLimiter(self.rate_limit, self.rate_burst)  # checks the rate now, not at a start
        Backoff(self.backoff, self.backoff_max)
        timeout = self.timeout
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ConfigurationError(f"progress must be True, False or None, got {self.progress!r}")
        # Frozen: the normalised forms are set as the dataclass itself sets fields.
        object.__setattr__(self, "retry_on", exception_classes(self.retry_on))
        object.__setattr__(self, "stop_all_when", stop_conditions(self.stop_all_when))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add a flag for each option to ``parser`` (``messor run`` is built this way)."""
        for option in fields(cls):
            for flag in option.metadata.get("flags", ()):
                default = option.default
                shown = f" ({default:g})" if isinstance(default, int | float) else ""
                parser.add_argument(
                    *flag.names,
                    dest=flag.dest,
                    default=None,  # not given: the option keeps its default
                    help=flag.help + shown,
                    **flag.kwargs,
                )

    @classmethod
    def from_arguments(cls, arguments: argparse.Namespace) -> RunOptions:
        """The options the flags of :meth:`add_arguments` give, parsed by argparse.

        An option with several flags (``stop_all_when``: ``--stop-after-failures``
        and ``--stop-on``) takes the values of all those given.
        """
        given: dict[str, Any] = {}
        for option in fields(cls):
            flags = option.metadata.get("flags", ())
            values = [flag.read(arguments) for flag in flags]
            values = [value for value in values if value is not None]
            if values:
                given[option.name] = tuple(values) if len(flags) > 1 else values[0]
        return cls(**given)


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")


def stop_conditions(stop_all_when: object) -> tuple[Callable[[], bool], ...]:
    """``stop_all_when`` as a tuple: one function, a list or a tuple of them, or None."""
    if stop_all_when is None:
        return ()
    if callable(stop_all_when):
        return (stop_all_when,)
    if isinstance(stop_all_when, list | tuple) and all(callable(c) for c in stop_all_when):
        return tuple(stop_all_when)
    raise ConfigurationError(
        "stop_all_when must be a function returning True to stop, or a list of them "
        f"(such as messor.stop_on(SomeError)), got {stop_all_when!r}"
    )


def exception_classes(retry_on: object) -> tuple[type[BaseException], ...] | None:
    """``retry_on`` as a tuple of exception classes (or None): one class, or a tuple."""
    if retry_on is None:
        return None
    types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise ConfigurationError(
            f"retry_on must be an exception class or a tuple of them, got {retry_on!r}"
        )
    return types
