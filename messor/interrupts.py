"""Graceful Ctrl-C: the first one stops starting tasks, the second one abandons the run.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be,
which can be in the middle of the run loop's bookkeeping. While a run lasts,
Messor handles SIGINT itself: the first Ctrl-C only asks the harvest to stop
(running tasks finish and are recorded, then ``run()`` raises
``KeyboardInterrupt``); the second raises ``KeyboardInterrupt`` at once, and
the tasks still running stay pending.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

__all__ = ["Interrupts", "graceful_interrupts"]

logger = logging.getLogger("messor")


@dataclass
class Interrupts:
    """How many Ctrl-C the run received."""

    received: int = 0


@contextmanager
def graceful_interrupts(stop: Callable[[], None]) -> Iterator[Interrupts]:
    """Within the block, the first SIGINT calls ``stop()``; the second raises KeyboardInterrupt.

    Signal handlers can only be set from the main thread; elsewhere (a run
    started from a worker thread) SIGINT keeps its usual behaviour.
    """
    interrupts = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupts.received += 1
        if interrupts.received > 1:
            raise KeyboardInterrupt
        logger.warning(
            "Interrupted: no new tasks start; waiting for the running ones to finish "
            "and be recorded (press Ctrl-C again to abandon them; they stay pending)"
        )
        stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, previous)
