"""The run's progress bar (on a terminal only): tasks done, failures, retries, the server's pace.

The postfix reads ``failed=2, retries=5, throttled=118, paused=12s (429 example.org),
conc=23, tokens_in=8.12e+04, cost=0.31``: what is not there (no throttle yet, no
usage reported) is left out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

from messor.run.pacing import PacingState

__all__ = ["new_bar", "postfix"]


def new_bar(progress: bool | None, total: int | None, initial: int) -> tqdm[Any] | None:
    """A bar counting tasks (None when not shown: ``progress`` False, or None off a terminal)."""
    bar = tqdm(
        total=total,
        initial=initial,
        unit="task",
        desc="messor",
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
    )
    return None if bar.disable else bar


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
