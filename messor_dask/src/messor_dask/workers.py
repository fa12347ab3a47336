"""``DaskWorkers``: where a Dask harvest's attempts run, as :func:`messor.plugin.drive` sees it.

Attempts handed out by the run loop go to the cluster in batches (one message
per batch), each under a key of its own (task id and attempt number, so equal
arguments never merge into one computation); at most ``window`` are out at a
time, since Dask itself applies no backpressure. Each future is released as
soon as its outcome is handed back (a future still held makes Dask recompute a
finished task when the worker that holds its result dies).

The worker runs :func:`messor.plugin.perform`: the result is encoded as JSON
there, so what travels back is text, never an object to unpickle; the run's
:class:`messor.plugin.Rules` (``retry_on``, ``give_up_on``) judge an exception
there too, and the verdict, a server's throttle and the usage the task
reported travel back as plain data.

When a server asks the run to pause, the attempts sent to the cluster that no
worker has started yet are cancelled and given back (:meth:`DaskWorkers.recall`):
nothing new starts inside the server's window.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import queue
import uuid
from typing import Any

from distributed import Client, Future
from distributed.client import FuturesCancelledError

from messor.plugin import (
    Attempt,
    MessorError,
    Outcome,
    Rules,
    Task,
    failure,
    perform,
    take_all,
)

__all__ = ["WATCH_EVERY", "DaskWorkers", "SchedulerLostError", "run_on_worker"]

#: How often the driver checks that the scheduler is still there while it waits.
WATCH_EVERY = 1.0


class SchedulerLostError(MessorError, ConnectionError):
    """The Dask scheduler went away mid-run; everything recorded so far is intact."""


def run_on_worker(task_id: str, task: Task, rules: Rules) -> tuple[Any, ...]:
    """What a Dask worker runs for one attempt: the outcome, its result as JSON text."""
    o = perform(Attempt(task_id, task), rules)
    return o.ok, o.result_json, o.error, o.error_type, o.retryable, o.gave_up, o.throttle, o.usage


def _executing(dask_worker: Any) -> list[str]:
    """Run on each worker (``client.run``): the keys of the tasks it is running now."""
    state = dask_worker.state
    return [str(ts.key) for ts in (*state.executing, *state.long_running)]


class DaskWorkers:
    """Attempts on a Dask cluster, up to ``window`` at once (a :class:`messor.plugin.Workers`)."""

    def __init__(self, client: Client, window: int, rules: Rules) -> None:
        self.client = client
        self.window = window
        self.rules = rules
        self.in_flight = 0
        self.run_id = uuid.uuid4().hex[:8]
        self.address = client.scheduler.address if client.scheduler is not None else "?"
        self._starting: list[Attempt] = []  # handed out, sent with the next batch
        self._futures: dict[str, tuple[Attempt, Future[Any]]] = {}  # on the cluster, by key
        self._finished: queue.SimpleQueue[Future[Any] | None] = queue.SimpleQueue()
        #: Outcomes settled but not handed back yet (the scheduler went away meanwhile).
        self._settled: list[Outcome] = []
        self._gatherer = concurrent.futures.ThreadPoolExecutor(1, "messor-gather")

    def submit(self, attempt: Attempt) -> None:
        self.in_flight += 1
        self._starting.append(attempt)

    def outcomes(self, timeout: float | None) -> list[Outcome]:
        """Send the attempts handed out, then wait for outcomes, checking on the scheduler."""
        self._send()
        wait = WATCH_EVERY if timeout is None else min(timeout, WATCH_EVERY)
        ready = self._ready(wait)
        if not ready:
            self._check_scheduler()
        self._settle(ready)
        return self._take_settled()

    def wake(self) -> None:
        """End a wait in :meth:`outcomes` now (callable from any thread)."""
        self._finished.put(None)

    def recall(self) -> list[Attempt]:
        """The attempts not sent to the cluster yet, and those sent that no worker has started.

        Those are cancelled on the cluster. Which ones run is asked of the
        workers themselves (one round trip); one that starts in the meantime
        runs, and its outcome is ignored: the attempt runs again later.
        """
        recalled, self._starting = self._starting, []
        waiting = {k: entry for k, entry in self._futures.items() if entry[1].status == "pending"}
        if waiting and self.client.status == "running":
            try:
                running = self.client.run(_executing)
            except Exception:  # the cluster will not say: leave what was sent alone
                running = None
            if running is not None:
                started = {key for keys in running.values() for key in keys}
                cancelled = [entry for k, entry in waiting.items() if k not in started]
                for key in (k for k in waiting if k not in started):
                    del self._futures[key]
                if cancelled:
                    self.client.cancel([future for _, future in cancelled])
                    recalled.extend(attempt for attempt, _ in cancelled)
        self.in_flight -= len(recalled)
        return recalled

    def gave_up(self, attempt: Attempt) -> None:
        """An attempt past its timeout, recorded failed by the harvest: cancel it on the cluster."""
        self.in_flight -= 1
        for key, (candidate, future) in list(self._futures.items()):
            if candidate is attempt:
                del self._futures[key]
                self.client.cancel([future])
                return

    def came_back(self, outcome: Outcome) -> None:
        """Never called: an attempt given up is forgotten, its future's end ignored."""

    def close(self) -> list[Outcome]:
        """End the run here: the outcomes that came in (to record); the rest is cancelled."""
        try:
            if self.client.status == "running":
                self._settle(self._ready(0))
            if self._futures and self.client.status == "running":
                self.client.cancel([future for _, future in self._futures.values()])
            self._futures.clear()
        finally:
            self._gatherer.shutdown(wait=False)
        return self._take_settled()

    def _send(self) -> None:
        """Send the attempts handed out in one message, each under a key of its own."""
        if not self._starting:
            return
        attempts, self._starting = self._starting, []
        keys = [self._key(attempt) for attempt in attempts]
        futures = self.client.map(
            run_on_worker,
            [attempt.task_id for attempt in attempts],
            [attempt.task for attempt in attempts],
            rules=self.rules,
            key=keys,
            pure=False,
            retries=0,
        )
        for key, attempt, future in zip(keys, attempts, futures, strict=True):
            self._futures[key] = (attempt, future)
            future.add_done_callback(self._finished.put)

    def _key(self, attempt: Attempt) -> str:
        """``messor-<run>-<hash of the task id>-<attempt>``: never shared by two attempts."""
        digest = hashlib.blake2b(attempt.task_id.encode("utf-8", "surrogatepass"), digest_size=8)
        return f"messor-{self.run_id}-{digest.hexdigest()}-{attempt.number}"

    def _ready(self, timeout: float) -> list[Future[Any]]:
        return [item for item in take_all(self._finished, timeout) if item is not None]

    def _take_settled(self) -> list[Outcome]:
        settled, self._settled = self._settled, []
        return settled

    def _settle(self, futures: list[Future[Any]]) -> None:
        """The outcomes of finished futures, kept for the harvest; the futures are released.

        Each is kept as soon as it is known: if the scheduler turns out to be
        gone halfway, those before are still handed back (by :meth:`close`).
        """
        settling = []
        for future in futures:
            entry = self._futures.pop(str(future.key), None)
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
                outcome = Outcome(attempt, *result)
            else:
                outcome = self._failure(attempt, future)
            future.release()  # at once: a held result is recomputed if its worker dies
            self._settled.append(outcome)

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
            lost = RuntimeError("Dask lost this attempt (cancelled)")
            return failure(attempt, lost, rules=self.rules)
        # KilledWorker (it was running on workers that died), or the task
        # could not be unpickled on the worker: a failure Messor's retries decide.
        return failure(attempt, _exception_of(future), rules=self.rules)

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
