"""A harvest paused by a server, going on in a thread, for what watches runs to show.

Three tasks, one at a time: ``a`` completes (reporting usage), ``b`` fails for
good (a 404), ``c`` is throttled for ten minutes (``429 quota``). Entered, the
run's heartbeat shows all of that; on exit the run is stopped (nobody waits ten
minutes) and ends with a last beat.
"""

from __future__ import annotations

import threading
import time

import messor
from messor import FailForGood, FunctionTask, LocalThreadedExecutor, Memory, Throttled
from messor.plugin import Harvest
from messor.run.heartbeat import read_beats

__all__ = ["PAUSE", "PausedRun"]

#: Seconds the server pauses the run for.
PAUSE = 600.0
WAIT = 60.0


def spends() -> str:
    messor.report_usage(tokens_in=1200, cost=0.5)
    return "ok"


def not_found() -> None:
    raise FailForGood("404 Not Found")


def throttled() -> None:
    messor.report_usage(tokens_in=10)
    raise Throttled(PAUSE, reason="429 quota")


class _Kept(LocalThreadedExecutor):
    """Keeps the harvest of its run, to stop it."""

    harvest: Harvest | None = None

    def new_harvest(self) -> Harvest:
        self.harvest = super().new_harvest()
        return self.harvest


class PausedRun:
    """``with PausedRun(memory) as run:`` the run is paused by the server, and its beat says so
    (``run.started`` and ``run.paused`` bracket when: the pause ends PAUSE s after)."""

    def __init__(self, memory: Memory, beat_interval: float = 1.0) -> None:
        memory.beat_interval = beat_interval
        self.memory = memory
        tasks = [FunctionTask("a", spends), FunctionTask("b", not_found)]
        tasks.append(FunctionTask("c", throttled))
        self.executor = _Kept(tasks, memory, max_concurrency=1)
        self.thread = threading.Thread(target=self.executor.run)
        self.started = self.paused = 0.0

    def __enter__(self) -> PausedRun:
        self.started = time.time()
        self.thread.start()
        deadline = time.monotonic() + WAIT
        beats = read_beats(self.memory)
        while not (beats and beats[0].get("throttled") and beats[0].get("gave_up")):
            if time.monotonic() > deadline:
                self.__exit__()
                raise AssertionError(f"the run never showed its pause: {beats}")
            time.sleep(0.01)
            beats = read_beats(self.memory)
        self.paused = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        harvest = self.executor.harvest
        if harvest is not None:
            harvest.stop()
            harvest.wake()
        self.thread.join(WAIT)
