"""The run's progress bar (on a terminal only): tasks done, failures, retries, the server's pace.

The postfix reads ``failed=2, retries=5, throttled=118, paused=12s (429 example.org),
conc=23, tokens_in=8.12e+04, cost=0.31``: what is not there (no throttle yet, no
usage reported) is left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from tqdm import tqdm

from messor.run.pacing import PacingState

__all__ = ["Progress", "postfix"]


class Progress:
    """The bar of one run, and what its postfix counts: failures and the usage reported."""

    def __init__(self) -> None:
        self.bar: tqdm[Any] | None = None
        #: Failures handed to the writer; what the tasks reported spending, summed.
        self.failures = 0
        self.usage: dict[str, float] = {}

    def open(self, progress: bool | None, total: int | None, initial: int) -> None:
        """Show the bar (unless ``progress`` is False, or None off a terminal)."""
        bar = tqdm(
            total=total,
            initial=initial,
            unit="task",
            desc="messor",
            disable=None if progress is None else not progress,
            dynamic_ncols=True,
        )
        self.bar = None if bar.disable else bar

    def advance(self, count: int = 1) -> None:
        if self.bar is not None and count:
            self.bar.update(count)

    def add_usage(self, usage: Mapping[str, float]) -> None:
        totals = self.usage
        for name, amount in usage.items():
            totals[name] = totals.get(name, 0) + amount

    def show(self, retries: int, pacing: Callable[[], PacingState | None]) -> None:
        """Redraw the postfix (only when shown: ``pacing`` is asked only then)."""
        if self.bar is not None:
            shown = postfix(self.failures, retries, pacing(), self.usage)
            self.bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def postfix(
    failed: int, retries: int, pacing: PacingState | None, usage: Mapping[str, float]
) -> dict[str, object]:
    """What the bar shows after the count."""
    shown: dict[str, object] = {"failed": failed, "retries": retries}
    if pacing is not None:
        if pacing.throttled:
            shown["throttled"] = pacing.throttled
        left = None if pacing.paused_until is None else pacing.paused_until - time.time()
        if left is not None and left > 0:
            reason = f" ({pacing.pause_reason})" if pacing.pause_reason else ""
            shown["paused"] = f"{left:.0f}s{reason}"
        if pacing.concurrency is not None:
            shown["conc"] = pacing.concurrency
    shown.update((name, f"{amount:.4g}") for name, amount in usage.items())
    return shown
