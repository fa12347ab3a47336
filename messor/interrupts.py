"""Graceful Ctrl-C: the first one stops starting tasks, the second one abandons them.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be,
which can be in the middle of the run loop's bookkeeping. While a run lasts,
Messor handles SIGINT itself:

* while tasks run, the first Ctrl-C only asks the run to stop: running tasks
  finish and are recorded, then ``run()`` raises ``KeyboardInterrupt``; the
  second raises at once, and the tasks still running stay pending;
* while finished outcomes are written at the end, a Ctrl-C only says what is
  being saved; a second one abandons the writing (those tasks run again next
  time).
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


class InterruptGuard:
    """Handles SIGINT for the length of a run (main thread only; elsewhere it does nothing)."""

    def __init__(self, stop: Callable[[], None], backlog: Callable[[], int]) -> None:
        self._stop = stop
        self._backlog = backlog
        self._previous: Any = None
        self._installed = False
        self._flushing = False
        self._presses = 0
        #: How many Ctrl-C the run received.
        self.received = 0

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous in (signal.SIG_IGN, None):
            # Ignored on purpose (a background job), or set outside Python:
            # leave it alone.
            return
        self._previous = previous
        signal.signal(signal.SIGINT, self._on_sigint)
        self._installed = True

    def flushing(self) -> None:
        """The run is writing its last outcomes: from now on, the second Ctrl-C abandons them."""
        self._flushing = True
        self._presses = 0

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        self._presses += 1
        if self._presses > 1:
            raise KeyboardInterrupt
        if self._flushing:
            logger.warning(
                "Recording %d finished tasks before stopping; press Ctrl-C again to abandon "
                "them (they will run again next time)",
                self._backlog(),
            )
            return
        self._stop()
        logger.warning(
            "Interrupted: no new tasks start; waiting for the running ones to finish and be "
            "recorded (press Ctrl-C again to abandon them; they stay pending)"
        )
