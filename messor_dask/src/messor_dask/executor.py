"""``DaskExecutor``: a harvest whose tasks run on a Dask cluster, recorded by the driver.

The run is Messor's own run loop (:class:`messor.run.harvest.Harvest`): resume,
retries, stop conditions, rate limit, progress and the batched writer all
work as with threads. Only where an attempt runs differs: each is submitted
to the cluster under a key of its own (task id and attempt number, so equal
arguments never merge into one computation), at most ``max_concurrency`` at
a time (Dask itself applies no backpressure), and its future is released as
soon as its outcome is recorded (a future still held makes Dask recompute a
finished task when the worker that holds its result dies).

The worker runs :func:`messor.run.attempt.perform`: the result is encoded as
JSON there, so what travels back is text, never an object to unpickle.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import queue
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client, Future
from distributed.client import FuturesCancelledError

from messor import Task
from messor.plugin import (
    Attempt,
    ConfigurationError,
    Executor,
    Harvest,
    Memory,
    MessorError,
    Outcome,
    RunReport,
    StopConditions,
    failure,
    perform,
    take_all,
)

__all__ = ["DaskExecutor", "SchedulerLostError"]

logger = logging.getLogger("messor")

#: How long the driver waits when nothing runs and the harvest names no time.
IDLE_POLL = 0.05
#: How often the driver checks that the scheduler is still there while it waits.
WATCH_EVERY = 1.0


class SchedulerLostError(MessorError, ConnectionError):
    """The Dask scheduler went away mid-run; everything recorded so far is intact."""


class DaskExecutor(Executor):
    """Runs tasks on a Dask cluster; see :class:`~messor.executors.base.Executor` for the options.

    Args:
        client: a connected ``distributed.Client``; it is left open.
        address: the scheduler's address (``"tcp://host:8786"``); the
            executor connects for the run and disconnects after.
        max_concurrency: attempts on the cluster at once (Dask itself sets no
            limit); by default twice the worker threads the cluster has when
            the run starts, so that no thread idles waiting for its next one.

    A worker that dies takes the attempts it was running with it: Dask runs
    them again elsewhere, until its ``allowed-failures`` limit marks one as
    killing workers; that attempt is then recorded as a failure
    (``KilledWorker``) and Messor's ``retry`` decides. Set the scheduler's
    ``distributed.scheduler.allowed-failures`` to 0 for Messor to decide
    every time. A scheduler that goes away ends the run with
    :class:`SchedulerLostError`; what was recorded stays, the rest is pending.
    """

    def __init__(
        self,
        tasks: Iterable[object],
        memory: Memory | str | None = None,
        max_concurrency: int | None = None,
        stop_all_when: StopConditions = None,
        retry: int = 1,
        *,
        client: Client | None = None,
        address: str | None = None,
        **options: Any,
    ) -> None:
        if (client is None) == (address is None):
            raise ConfigurationError(
                "DaskExecutor needs the cluster: client=distributed.Client(...) or "
                "address='tcp://scheduler:8786' (one of them)"
            )
        if address is not None and not isinstance(address, str):
            raise ConfigurationError(
                f"address must be a str like 'tcp://host:8786', got {address!r}"
            )
        super().__init__(tasks, memory, max_concurrency or 1, stop_all_when, retry, **options)
        self._concurrency_given = max_concurrency is not None
        self.client = client
        self.address = address

    def run(self) -> RunReport:
        client = self.client or _connect(str(self.address))
        try:
            if not self._concurrency_given:
                # Twice the threads: each has its next attempt at hand, instead
                # of idling for the round trip through the scheduler.
                self.max_concurrency = max(1, 2 * sum(client.nthreads().values()))
            harvest = self._harvest()
            with harvest:
                _Driver(harvest, client, self.max_concurrency).drive()
            return harvest.report
        except SchedulerLostError:
            if self.client is None:
                with _quiet("distributed.client", "distributed.comm"):
                    client.close()  # its reconnecting would log tracebacks of its own
            raise
        finally:
            if self.client is None and client.status != "closed":
                client.close()


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence these loggers for a moment."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)


def _connect(address: str) -> Client:
    try:
        # The connect timeout is Dask's own (distributed.comm.timeouts.connect).
        return Client(address, set_as_default=False)
    except OSError as exc:
        raise SchedulerLostError(
            f"Cannot reach the Dask scheduler at {address} ({exc}); start it "
            "(dask scheduler) or fix the address"
        ) from exc


def run_on_worker(task_id: str, task: Task) -> tuple[bool, str | None, str | None, Any, bool]:
    """What a Dask worker runs for one attempt: the outcome, its result as JSON text."""
    outcome = perform(Attempt(task_id, task))
    return outcome.ok, outcome.result_json, outcome.error, outcome.error_type, outcome.retryable


class _Driver:
    """Submits attempts, a window at a time, and hands their outcomes to the harvest."""

    def __init__(self, harvest: Harvest, client: Client, window: int) -> None:
        self.harvest = harvest
        self.client = client
        self.window = window
        self.run_id = uuid.uuid4().hex[:8]
        self.address = client.scheduler.address if client.scheduler is not None else "?"
        self.in_flight: dict[str, tuple[Attempt, Future[Any]]] = {}
        self.finished: queue.SimpleQueue[Future[Any] | None] = queue.SimpleQueue()
        self._gatherer = concurrent.futures.ThreadPoolExecutor(1, "messor-gather")
        harvest.wake = lambda: self.finished.put(None)

    def drive(self) -> None:
        try:
            self._loop()
        finally:
            try:
                # Abandoned or failed: what finished is recorded, the rest is cancelled.
                if self.client.status == "running":
                    self._settle(self._ready(0))
                if self.in_flight and self.client.status == "running":
                    self.client.cancel([future for _, future in self.in_flight.values()])
                self.in_flight.clear()
            finally:
                self._gatherer.shutdown(wait=False)

    def _loop(self) -> None:
        harvest = self.harvest
        while True:
            starting: list[Attempt] = []
            while len(self.in_flight) + len(starting) < self.window:
                attempt = harvest.next_attempt()
                if attempt is None:
                    break
                starting.append(attempt)
            if starting:
                self._submit(starting)
            if not self.in_flight and harvest.done:
                return
            wait = harvest.wait_hint(room=len(self.in_flight) < self.window)
            if wait is None:
                wait = IDLE_POLL if not self.in_flight else WATCH_EVERY
            ready = self._ready(min(wait, WATCH_EVERY))
            self._settle(ready)
            for attempt in harvest.expire():
                self._cancel(attempt)
            if not ready:
                self._check_scheduler()

    def _submit(self, attempts: list[Attempt]) -> None:
        """Send attempts to the cluster in one message, each under a key of its own."""
        keys = [self._key(attempt) for attempt in attempts]
        futures = self.client.map(
            run_on_worker,
            [attempt.task_id for attempt in attempts],
            [attempt.task for attempt in attempts],
            key=keys,
            pure=False,
            retries=0,
        )
        for key, attempt, future in zip(keys, attempts, futures, strict=True):
            self.in_flight[key] = (attempt, future)
            future.add_done_callback(self.finished.put)

    def _key(self, attempt: Attempt) -> str:
        """``messor-<run>-<hash of the task id>-<attempt>``: never shared by two attempts."""
        digest = hashlib.blake2b(attempt.task_id.encode("utf-8", "surrogatepass"), digest_size=8)
        return f"messor-{self.run_id}-{digest.hexdigest()}-{attempt.number}"

    def _ready(self, timeout: float) -> list[Future[Any]]:
        return [item for item in take_all(self.finished, timeout) if item is not None]

    def _settle(self, futures: list[Future[Any]]) -> None:
        """Record the outcomes of finished futures and release them."""
        settling = []
        for future in futures:
            entry = self.in_flight.pop(str(future.key), None)
            if entry is not None:  # else cancelled by us (a timeout): settled already
                settling.append((entry[0], future))
        finished = {
            str(future.key): future for _, future in settling if future.status == "finished"
        }
        # By key: a future that erred meanwhile is left out, and nothing shifts.
        results = self._gather(finished)
        for attempt, future in settling:
            result = results.get(str(future.key))
            if result is not None:
                ok, result_json, error, error_type, retryable = result
                outcome = Outcome(attempt, ok, result_json, error, error_type, retryable)
            else:
                outcome = self._failure(attempt, future)
            future.release()  # at once: a held result is recomputed if its worker dies
            self.harvest.on_outcome(outcome)

    def _gather(self, futures: dict[str, Future[Any]]) -> dict[str, Any]:
        """The results of finished futures, in one round trip (each lives on its worker).

        On a thread of its own: a gather that meets a dead scheduler waits for
        Dask's connect timeout (30 s by default); the run notices sooner.
        """
        if not futures:
            return {}
        pending = self._gatherer.submit(self.client.gather, futures, errors="skip")
        while True:
            try:
                results: dict[str, Any] = pending.result(timeout=WATCH_EVERY)
                return results
            except concurrent.futures.TimeoutError:
                self._check_scheduler(force=self.client.status != "running")
            except Exception:
                self._check_scheduler(force=True)
                raise

    def _failure(self, attempt: Attempt, future: Future[Any]) -> Outcome:
        """The outcome of an attempt that Dask could not run to its end."""
        if future.status in ("cancelled", "lost") or self.client.status != "running":
            self._check_scheduler(force=True)
            return failure(attempt, RuntimeError("Dask lost this attempt (cancelled)"))
        # KilledWorker (it was running on workers that died), or the task
        # could not be unpickled on the worker: a failure Messor's retries decide.
        return failure(attempt, _exception_of(future))

    def _cancel(self, attempt: Attempt) -> None:
        """An attempt past its timeout: recorded failed by the harvest; cancel it on the cluster."""
        for key, (candidate, future) in list(self.in_flight.items()):
            if candidate is attempt:
                del self.in_flight[key]
                self.client.cancel([future])
                return

    def _check_scheduler(self, *, force: bool = False) -> None:
        """Raise SchedulerLostError once the client has lost the scheduler.

        While it reconnects the run waits, unless a future was lost already.
        """
        status = self.client.status
        if status == "running" or (status == "connecting" and not force):
            return
        raise SchedulerLostError(
            f"The Dask scheduler at {self.address} went away "
            f"(client {self.client.status}); the run stopped. Everything recorded so far is "
            "intact; run again once the cluster is back to resume"
        )


def _exception_of(future: Future[Any]) -> BaseException:
    try:
        exc = future.exception(timeout=5)
    except (FuturesCancelledError, TimeoutError) as lost:
        return lost
    if isinstance(exc, BaseException):
        return exc
    return RuntimeError(f"Dask lost the result of this attempt (its future is {future.status})")
