"""Pacing a run: a rate limit shared by every worker, and backoff between retries.

Both only say *when* something may start; the run loop asks them before each
start and sleeps no longer than they say (see ``Harvest.wait_hint``).
"""

from __future__ import annotations

import random
import re
import time

from messor.errors import ConfigurationError

__all__ = ["Backoff", "RateLimiter", "parse_amount", "parse_rate"]

_UNITS = dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0)
_UNITS |= dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0)
_UNITS |= dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0)
_UNITS |= dict.fromkeys(("d", "day", "days"), 86400.0)
_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*([a-z]+))?\s*")


def parse_rate(rate: str | float, option: str = "rate_limit") -> float:
    """Tasks per second from ``"10/s"``, ``"600/m"``, ``"1000/h"``, ``"10000/d"`` or a number
    (per second); ``option`` names what is checked in the error."""
    return parse_amount(rate, option)[0]


def parse_amount(rate: str | float, option: str) -> tuple[float, float]:
    """``(per second, the unit in seconds)`` from a rate as :func:`parse_rate` reads it."""
    if isinstance(rate, bool) or not isinstance(rate, int | float | str):
        raise ConfigurationError(
            f"{option} is a number per second or a string like '10/s', got {rate!r}"
        )
    unit_seconds = 1.0
    if isinstance(rate, str):
        match = _RATE.fullmatch(rate.lower())
        unit = match and (match[2] or "s")
        if match is None or unit not in _UNITS:
            raise ConfigurationError(
                f"{option} {rate!r} is not a rate: write '10/s', '600/m', '1000/h', '10000/d' "
                "or a number"
            )
        unit_seconds = _UNITS[str(unit)]
        per_second = float(match[1]) / unit_seconds
    else:
        per_second = float(rate)
    if not 0 < per_second < float("inf"):
        raise ConfigurationError(f"{option} must be more than 0 per second, got {rate!r}")
    return per_second, unit_seconds


class RateLimiter:
    """A token bucket (as GCRA): ``rate`` starts per second, at most ``burst`` at once.

    With ``burst=1`` starts are evenly spaced; a larger burst lets a run catch
    up after a pause, never by more than ``burst`` starts.
    """

    def __init__(self, rate: str | float, burst: int = 1) -> None:
        self.rate = parse_rate(rate)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"rate_burst must be an int >= 1, got {burst!r}")
        self._interval = 1.0 / self.rate
        self._tolerance = (burst - 1) * self._interval
        self._theoretical = 0.0  # when the next start would be due at the exact rate

    def try_acquire(self, now: float | None = None) -> float:
        """Take a token and return 0, or return how many seconds until one is free."""
        now = time.monotonic() if now is None else now
        wait = self.wait(now)
        if wait > 0:
            return wait
        # A start less than one interval late (the run woke a little after
        # the token was due) keeps the schedule, so that small delays do not
        # add up to a slower rate; after a longer pause it starts afresh.
        late = now - self._theoretical
        base = self._theoretical if late < self._interval else now
        self._theoretical = base + self._interval
        return 0.0

    def wait(self, now: float) -> float:
        """Seconds until a token is free (0: now), taking none."""
        return max(0.0, self._theoretical - self._tolerance - now)


class Backoff:
    """Exponential backoff with full jitter: a random delay up to ``base * 2**(n-1)``, capped."""

    def __init__(self, base: float = 0.0, cap: float = 60.0) -> None:
        for name, value in (("backoff", base), ("backoff_max", cap)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value < float("inf")
            ):
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
        self.base = float(base)
        self.cap = float(cap)

    def delay(self, failures: int) -> float:
        """Seconds to wait before the attempt that follows the ``failures``-th failure."""
        if self.base == 0:
            return 0.0
        # The exponent stops growing long before the cap matters (2**64 overflows nothing).
        return random.uniform(0, min(self.cap, self.base * 2.0 ** min(failures - 1, 64)))
