"""``LocalThreadedExecutor``: runs a harvest's tasks on a pool of threads.

The calling thread drives the shared run loop; worker threads take attempts
from one queue and put outcomes on another. No ``Future`` per task: two queue
operations each way is all a task costs here. A few attempts wait in the
queue beyond those running, so that a worker finishing one starts the next at
once instead of waiting for the driver; still only ``max_concurrency`` run at
once (one per worker thread), and on Ctrl-C, or when a server asks the run
to pause, the waiting ones are taken back. With a rate limit, a timeout,
stop conditions, keyed limits or adaptive concurrency nothing waits: a start
must happen when the run decides it.
"""

from __future__ import annotations

import queue
import threading

from messor.executors.base import Executor, drive, take_all
from messor.run.attempt import Attempt, Outcome, perform
from messor.run.harvest import RunReport
from messor.run.verdicts import Rules

__all__ = ["LocalThreadedExecutor"]

#: Attempts queued beyond the running ones, when nothing paces the starts.
PREFETCH = 64


class LocalThreadedExecutor(Executor):
    """Runs tasks on up to ``max_concurrency`` threads; see :class:`~messor.Executor`.

    Ctrl-C or SIGTERM stops starting tasks and waits for the running ones,
    which are recorded; a second one abandons them (they stay pending). Then
    everything finished is written to the memory, the summary is printed, and
    ``run()`` raises KeyboardInterrupt (for Ctrl-C) or returns (for SIGTERM).

    A task past its ``timeout`` is recorded failed and its slot goes to the
    next task on a new thread; Python cannot kill a thread, so the old one
    runs the call to its end, and its result is ignored.
    """

    def run(self) -> RunReport:
        harvest = self.new_harvest()
        # Attempts may wait for a thread only when nothing decides when they start.
        options = self.options
        exact = options.rate_limit is not None or options.timeout is not None
        exact = exact or bool(options.stop_all_when or options.budget)
        exact = exact or bool(options.limits) or options.adaptive is not None
        workers = _Workers(self.max_concurrency, harvest.rules, queued=0 if exact else PREFETCH)
        harvest.wake = workers.wake
        with harvest:
            try:
                drive(harvest, workers)
            finally:
                # Abandoned or not: what finished is recorded, what waits never starts.
                workers.shutdown()
                for outcome in workers.outcomes(0):
                    harvest.on_outcome(outcome)
        return harvest.report


class _Workers:
    """Threads started as needed, fed through a queue; ``stuck`` ones run abandoned calls.

    A thread whose attempt a server throttled (429 with Retry-After) sets
    ``hold`` before it hands the outcome back: until the driver has taken
    back what waits in the queue (:meth:`recall`, which clears it), the
    threads start nothing more from the queue and keep it for the driver.
    """

    def __init__(self, size: int, rules: Rules, queued: int) -> None:
        self.size = size
        self.rules = rules
        self.hold = False
        self._held: list[Attempt] = []
        self._lock = threading.Lock()
        #: Attempts handed out at most: running ones plus those waiting for a thread.
        self.window = size + queued
        self.in_flight = 0
        self.stuck = 0
        self._inbox: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, attempt: Attempt) -> None:
        self.in_flight += 1
        if len(self._threads) < self.size + self.stuck and self.in_flight + self.stuck > len(
            self._threads
        ):
            # Daemon threads: a task abandoned by a second Ctrl-C, or past its
            # timeout, must not keep the interpreter from exiting.
            thread = threading.Thread(
                target=self._work,
                name=f"messor-worker-{len(self._threads)}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        self._inbox.put(attempt)

    def outcomes(self, timeout: float | None) -> list[Outcome]:
        """The finished attempts: waits up to ``timeout`` seconds for one (or a wake-up)."""
        return [item for item in take_all(self._outbox, timeout) if item is not None]

    def wake(self) -> None:
        """End a wait in :meth:`next_outcome` now (callable from any thread)."""
        self._outbox.put(None)

    def gave_up(self, attempt: Attempt) -> None:
        """An attempt past its timeout: its thread runs on, abandoned; a new one takes the slot."""
        self.in_flight -= 1
        self.stuck += 1

    def came_back(self, outcome: Outcome) -> None:
        """A call given up on returned at last: its thread is free again."""
        self.stuck -= 1

    def recall(self) -> list[Attempt]:
        """Take back the attempts no thread has started yet."""
        with self._lock:
            recalled, self._held, self.hold = self._held, [], False
        ends = 0
        try:
            while True:
                attempt = self._inbox.get_nowait()
                if attempt is not None:
                    recalled.append(attempt)
                else:
                    ends += 1
        except queue.Empty:
            pass
        for _ in range(ends):
            self._inbox.put(None)  # a thread's end, asked for by shutdown()
        self.in_flight -= len(recalled)
        return recalled

    def shutdown(self) -> None:
        """Let every thread end once its call returns; attempts not started yet never start."""
        self.recall()
        for _ in self._threads:
            self._inbox.put(None)

    def _work(self) -> None:
        """A worker thread: start what the queue gives, unless a server asked to hold."""
        while (attempt := self._inbox.get()) is not None:
            if self.hold:
                with self._lock:
                    if self.hold:
                        self._held.append(attempt)
                        continue
            outcome = perform(attempt, self.rules)
            if outcome.throttle is not None and outcome.throttle.pauses:
                self.hold = True  # until the run, which pauses for it, takes back the queue
            self._outbox.put(outcome)
