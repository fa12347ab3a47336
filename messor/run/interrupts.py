"""Graceful Ctrl-C and SIGTERM: the first stops starting tasks, the second abandons them.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be,
which can be in the middle of the run loop's bookkeeping, and SIGTERM (what
``kill``, systemd and Kubernetes send) ends the process at once. While a run
lasts, Messor handles both itself:

* while tasks run, the first signal only asks the run to stop: running tasks
  finish and are recorded, the summary is printed, then ``run()`` raises
  ``KeyboardInterrupt`` (Ctrl-C) or returns (SIGTERM); the second signal
  abandons the running tasks, which stay pending;
* while finished outcomes are written at the end, a signal only says what is
  being saved; a second one abandons the writing (those tasks run again next
  time).

A handler is only set from the main thread, and never over a signal that is
ignored or handled outside Python.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["InterruptGuard"]

logger = logging.getLogger("messor")

_NAMES: dict[int, str] = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class InterruptGuard:
    """Handles SIGINT and SIGTERM for the length of a run."""

    def __init__(self, stop: Callable[[str], None], backlog: Callable[[], int]) -> None:
        self._stop = stop
        self._backlog = backlog
        self._previous: dict[int, Any] = {}
        self._flushing = False
        self._presses = 0
        #: The first signal of the run (None: there was none).
        self.first_signal: int | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _NAMES:
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):
                continue
            if signum == signal.SIGTERM and previous is not signal.SIG_DFL:
                continue  # the program handles SIGTERM itself: leave it so
            self._previous[signum] = previous
            signal.signal(signum, self._on_signal)

    def flushing(self) -> None:
        """The run is writing its last outcomes: from now on, the second signal abandons them."""
        self._flushing = True
        self._presses = 0

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.first_signal is None:
            self.first_signal = signum
        self._presses += 1
        name = _NAMES[signum]
        if self._presses > 1:
            raise KeyboardInterrupt
        if self._flushing:
            logger.warning(
                "%s: recording %d finished tasks before stopping; send it again to abandon "
                "them (they will run again next time)",
                name,
                self._backlog(),
            )
            return
        self._stop(name)
        logger.warning(
            "%s: no new tasks start; waiting for the running ones to finish and be recorded "
            "(send it again to abandon them; they stay pending)",
            name,
        )
