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
import dataclasses
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from messor.errors import ConfigurationError
from messor.run.controls import Backoff, RateLimiter
from messor.run.knobs import Adaptive
from messor.run.limits import Limit, by_host
from messor.run.stops import SpendingLimit, stop_after_consecutive_failures, stop_on
from messor.run.verdicts import ExceptionRule, exception_rule, status_codes

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_THROTTLES",
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
#: Throttles of one task in one run before one counts as a failed attempt.
DEFAULT_MAX_THROTTLES = 20


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


def _count_or_auto(text: str) -> int | str:
    """``-c``'s value: a number of tasks, or ``auto``."""
    if text == "auto" or text.isdigit():
        return text if text == "auto" else int(text)
    raise argparse.ArgumentTypeError(f"expected a number of tasks or auto, got {text!r}")


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
    #: coroutines: 4; Dask: twice the cluster's threads). ``"auto"`` or an
    #: :class:`~messor.Adaptive`: found as the run goes (see ``adaptive``); once
    #: checked, always a number (the ceiling) or None.
    max_concurrency: int | Adaptive | str | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("-c", "--max-concurrency"),
                "tasks at once, or auto: found by watching the server's answers (default: the "
                "executor's; local and async: 4, dask: twice the cluster's threads)",
                {"type": _count_or_auto, "metavar": "N"},
            )
        ),
    )
    #: Adaptive concurrency: an :class:`~messor.Adaptive`, or True for ``Adaptive()``;
    #: ``max_concurrency`` is then its ceiling (None: 64 for threads, 1000 for
    #: coroutines). Once checked, an Adaptive or None. See docs/pacing.md.
    adaptive: Adaptive | bool | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("--adaptive",),
                "find how many tasks at once the server takes, up to -c N (as -c auto)",
                {"action": "store_true"},
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
    #: Retry only failures of these exception types, or those a function
    #: ``exc -> bool`` accepts, such as ``messor.http_status(500, 503)`` (None: all);
    #: one class is taken as a tuple. Judged where the attempt ran.
    retry_on: ExceptionRule | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("--retry-on",),
                "retry only these exception types, comma-separated "
                "(TimeoutError,requests.HTTPError)",
                {"metavar": "ERRORS"},
                lambda names: exception_types(names, "--retry-on"),
            ),
            Flag(
                ("--retry-on-status",),
                "retry only HTTP errors with these statuses (500,502,503,504)",
                {"metavar": "CODES"},
                lambda codes: status_codes(codes, "--retry-on-status"),
            ),
        ),
    )
    #: Fail for good, never to run again (status ``gave_up``), on these
    #: exception types or those a function accepts (``messor.http_status(404, 410)``);
    #: a task may also raise :class:`messor.FailForGood`.
    give_up_on: ExceptionRule | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("--give-up-on",),
                "fail for good (never run again) on these exception types",
                {"metavar": "ERRORS"},
                lambda names: exception_types(names, "--give-up-on"),
            ),
            Flag(
                ("--give-up-on-status",),
                "fail for good on HTTP errors with these statuses (404,410)",
                {"metavar": "CODES"},
                lambda codes: status_codes(codes, "--give-up-on-status"),
            ),
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
    #: Limits per key (host, API key, model) or for the whole run: rate,
    #: concurrency, tokens; a task starts when every one allows it. One
    #: :class:`~messor.Limit` or several.
    limits: tuple[Limit, ...] = field(
        default=(),
        metadata=_flags(
            Flag(
                ("--limit",),
                "a limit, repeatable: rate=5/s,concurrency=2,tokens=90000/m,key=host "
                "(key=host: per host of the task's URL; no key: for the whole run)",
                {"metavar": "SPEC", "action": "append"},
                lambda specs: tuple(_limit_from_text(spec) for spec in specs),
            ),
            Flag(
                ("--tokens",),
                "at most RATE tokens the tasks report (90000/m), for the whole run",
                {"metavar": "RATE"},
                lambda rate: Limit(tokens=rate),
            ),
        ),
    )
    #: A task throttled this many times in one run (429s without end) counts as
    #: a failed attempt, and the retry rules apply.
    max_throttles: int = field(
        default=DEFAULT_MAX_THROTTLES,
        metadata=_flags(
            Flag(
                ("--max-throttles",),
                "throttles of one task before one counts as a failure",
                {"type": int, "metavar": "N"},
            )
        ),
    )
    #: Stop starting tasks once the usage they reported reaches these totals:
    #: ``{"cost": 5.0}``, ``{"tokens_out": 1e6}`` (see :func:`messor.stop_when_spent`).
    budget: Mapping[str, float] | None = field(
        default=None,
        metadata=_flags(
            Flag(
                ("--budget",),
                "stop starting tasks once they reported spending this much: cost=5,tokens_out=1e6",
                {"metavar": "TOTALS"},
                lambda text: _budget_from_text(text),
            )
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
        self._settle_concurrency()
        if self.max_concurrency is not None:
            _check_count("max_concurrency", self.max_concurrency, minimum=1)
        _check_count("retry", self.retry, minimum=0)
        _check_count("max_throttles", self.max_throttles, minimum=1)
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
        object.__setattr__(self, "retry_on", exception_rule(self.retry_on, "retry_on"))
        object.__setattr__(self, "give_up_on", exception_rule(self.give_up_on, "give_up_on"))
        object.__setattr__(self, "stop_all_when", stop_conditions(self.stop_all_when))
        object.__setattr__(self, "limits", _limits(self.limits))
        if self.budget is not None:
            if not isinstance(self.budget, Mapping):
                raise ConfigurationError(
                    f"budget must be a dict of totals such as {{'cost': 5.0}}, got {self.budget!r}"
                )
            try:
                SpendingLimit(**self.budget)  # checks the totals now, not at a start
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"budget: {exc}") from None
            object.__setattr__(self, "budget", dict(self.budget))

    def _settle_concurrency(self) -> None:
        """``"auto"``, an Adaptive or ``adaptive=True``: ``adaptive`` an Adaptive, and
        ``max_concurrency`` its ceiling (or None, for the executor to choose)."""
        concurrency: Any = self.max_concurrency
        adaptive: Any = self.adaptive
        if concurrency == "auto":
            concurrency, adaptive = None, adaptive or True
        elif isinstance(concurrency, Adaptive):
            concurrency, adaptive = concurrency.ceiling, concurrency
        elif isinstance(concurrency, str):
            raise ConfigurationError(
                f"max_concurrency must be an int >= 1, 'auto' or a messor.Adaptive, "
                f"got {concurrency!r}"
            )
        if adaptive is True:
            adaptive = Adaptive()
        elif adaptive is False:
            adaptive = None
        elif adaptive is not None and not isinstance(adaptive, Adaptive):
            raise ConfigurationError(
                f"adaptive must be True, False, None or a messor.Adaptive, got {adaptive!r}"
            )
        if isinstance(adaptive, Adaptive):
            if isinstance(concurrency, int) and not isinstance(concurrency, bool):
                # A number of attempts given beside it is the ceiling.
                _check_count("max_concurrency", concurrency, minimum=1)
                start = None if adaptive.start is None else min(adaptive.start, concurrency)
                adaptive = dataclasses.replace(adaptive, start=start, ceiling=concurrency)
            concurrency = adaptive.ceiling
        object.__setattr__(self, "max_concurrency", concurrency)
        object.__setattr__(self, "adaptive", adaptive)

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


def _limits(value: object) -> tuple[Limit, ...]:
    """``limits`` as a flat tuple: one Limit, or lists and tuples of them (the flags give both)."""
    found: list[Limit] = []
    items = [value]
    while items:
        item = items.pop(0)
        if isinstance(item, Limit):
            found.append(item)
        elif isinstance(item, list | tuple):
            items[:0] = item
        else:
            raise ConfigurationError(
                f"limits must be a messor.Limit or a list of them, got {value!r}"
            )
    return tuple(found)


def _limit_from_text(spec: str) -> Limit:
    """A Limit from ``rate=5/s,concurrency=2,tokens=90000/m,key=host`` (``--limit``)."""
    given: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if name not in ("rate", "concurrency", "tokens", "key") or not value or name in given:
            raise ConfigurationError(
                f"--limit {spec!r}: write rate=5/s,concurrency=2,tokens=90000/m,key=host "
                "(each at most once)"
            )
        given[name] = value
    if "concurrency" in given:
        if not given["concurrency"].isdigit():
            raise ConfigurationError(f"--limit {spec!r}: concurrency must be a whole number")
        given["concurrency"] = int(given["concurrency"])
    if "key" in given:
        if given["key"] != "host":
            raise ConfigurationError(
                f"--limit {spec!r}: the command line knows key=host (the host of each task's "
                "URL); for another key, give limits=[messor.Limit(..., key=function)] in Python"
            )
        given["key"] = by_host
    return Limit(**given)


def _budget_from_text(text: str) -> dict[str, float]:
    """``{"cost": 5.0}`` from ``cost=5`` (``--budget``)."""
    budget: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            budget[name.strip()] = float(value)
        except ValueError:
            raise ConfigurationError(
                f"--budget {text!r}: write totals as name=number, such as cost=5,tokens_out=1e6"
            ) from None
    return budget


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


def exception_classes(retry_on: object) -> ExceptionRule | None:
    """``retry_on`` checked: a tuple of exception classes (one class is taken as a tuple), a
    predicate ``exc -> bool``, or None."""
    return exception_rule(retry_on, "retry_on")
