"""``AsyncExecutor``: a harvest of coroutine tasks, thousands in flight on one event loop.

The run is Messor's own run loop, driven from a thread of its own exactly as
the threaded executor drives it; only where an attempt runs differs: each is
a coroutine scheduled on the event loop. Everything that touches the memory
(registering, resuming, recording through the batched writer) happens on the
driver's thread, so the event loop never waits for the store.

``run()`` drives from the calling thread (Ctrl-C and SIGTERM work as with
threads) and runs a new event loop on a thread beside it. ``await
run_async()`` uses the running loop and drives from a worker thread;
cancelling it stops the run as a first Ctrl-C does, a second cancellation
abandons the running attempts.

A task whose call is a plain function would hold the event loop for as long
as it runs, and every other task with it: such calls run on threads of
their own (:class:`_Threads`), and only what they return, if awaitable, is
awaited on the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from messor.errors import ConfigurationError
from messor.executors.base import Executor, drive, take_all
from messor.run.attempt import Attempt, Outcome, failure, returned
from messor.run.harvest import Harvest, RunReport
from messor.run.usage import UsageSink, collecting, stop_collecting
from messor.run.verdicts import NO_RULES, Rules
from messor.tasks import FunctionTask, Task

__all__ = ["AsyncExecutor"]

logger = logging.getLogger("messor")


class AsyncExecutor(Executor):
    """Runs coroutine tasks, up to ``max_concurrency`` at once on one event loop.

    With ``max_concurrency="auto"`` the run finds how many the server takes,
    up to :attr:`adaptive_ceiling` (1000) unless given one.

    A task is any object with ``get_id()`` whose ``__call__()`` returns an
    awaitable (``async def __call__``, or a :class:`~messor.FunctionTask` of an
    ``async def`` function): those are called and awaited on the event loop.
    A task whose call is a plain function (a ``FunctionTask`` of a ``def``, a
    plain ``def __call__``) runs on a thread of its own instead, up to
    ``max_concurrency`` at once, so that a blocking call never stalls the
    loop; if it returns an awaitable, that is awaited on the loop (a function
    that needs the running loop when called must be ``async def``). Options and
    semantics are those of :class:`~messor.executors.base.Executor`: resume, retries
    with backoff, ``retry_on``, stop conditions, rate limit, progress, summary
    and report.

    ``timeout`` cancels the attempt's coroutine (unlike a thread, a coroutine
    can be stopped): it is recorded failed with a TimeoutError. A plain call
    past its timeout runs on in its thread, and what it returns is ignored.
    On the first Ctrl-C, or when ``run_async()`` is cancelled, no new attempt
    starts, the running ones finish and are recorded, and the summary is
    printed; a second one cancels them, and they stay pending.
    """

    adaptive_ceiling = 1000

    def run(self) -> RunReport:
        """Run from synchronous code, on a new event loop; see ``run_async`` for a running loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop runs in this thread: as it should be
        else:
            raise ConfigurationError(
                "AsyncExecutor.run() was called inside a running event loop (a notebook, "
                "an async function): use `await executor.run_async()` there"
            )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="messor-event-loop", daemon=True)
        thread.start()
        try:
            return self._drive(loop, _Coroutines(loop, self.max_concurrency))
        finally:
            # As asyncio.run() ends: what is left on the loop (cancelled
            # attempts, a task's own background tasks) is cancelled and
            # given a moment to unwind; the report stands whatever happens.
            try:
                asyncio.run_coroutine_threadsafe(_wind_down(), loop).result(timeout=10)
            except BaseException as exc:
                logger.warning("The event loop did not wind down cleanly: %s", exc)
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    async def run_async(self) -> RunReport:
        """Run inside a running event loop: ``report = await executor.run_async()``."""
        loop = asyncio.get_running_loop()
        workers = _Coroutines(loop, self.max_concurrency)
        driving = loop.run_in_executor(None, self._drive_abandonable, loop, workers)
        try:
            return await asyncio.shield(driving)
        except asyncio.CancelledError:
            # As a first Ctrl-C: start nothing more, let the running finish.
            workers.request(stop=True)
            try:
                await asyncio.shield(driving)
            except asyncio.CancelledError:
                workers.request(abandon=True)  # as a second one
                await asyncio.shield(driving)
            raise

    def _drive_abandonable(
        self, loop: asyncio.AbstractEventLoop, workers: _Coroutines
    ) -> RunReport:
        """``_drive`` for ``run_async``: an abandoned run returns its report.

        A KeyboardInterrupt must not reach the caller's event loop, which
        would end at once; ``run_async`` raises CancelledError instead.
        """
        try:
            return self._drive(loop, workers)
        except KeyboardInterrupt:
            return self.report

    def _drive(self, loop: asyncio.AbstractEventLoop, workers: _Coroutines) -> RunReport:
        harvest = self.new_harvest()
        harvest.wake = workers.wake
        workers.harvest = harvest
        workers.rules = harvest.rules
        with harvest:
            try:
                drive(harvest, workers)
            finally:
                # Abandoned or not: what finished is recorded, the rest is cancelled.
                try:
                    for outcome in workers.outcomes(0):
                        harvest.on_outcome(outcome)
                finally:
                    workers.cancel_all()
                    workers.threads.close()
        return harvest.report


class _Coroutines:
    """The attempts running as coroutines on ``loop``; their outcomes come back on a queue.

    Attempts handed out by the driver are started on the loop in batches, one
    cross-thread call per batch, not per attempt; ``_tasks`` belongs to the
    loop's thread alone.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.window = size
        self.in_flight = 0
        self.harvest: Harvest | None = None
        self.rules = NO_RULES
        self.threads = _Threads(loop)
        self._starting: list[Attempt] = []
        self._outbox: queue.SimpleQueue[Outcome | Callable[[], bool] | None] = queue.SimpleQueue()
        self._tasks: dict[int, asyncio.Task[Outcome]] = {}

    def submit(self, attempt: Attempt) -> None:
        self.in_flight += 1
        self._starting.append(attempt)

    def outcomes(self, timeout: float | None) -> list[Outcome]:
        if self._starting:
            batch, self._starting = self._starting, []
            self.loop.call_soon_threadsafe(self._start, batch)
        found: list[Outcome] = []
        abandon = False
        for item in take_all(self._outbox, timeout):
            if isinstance(item, Outcome):
                found.append(item)
            elif item is not None:
                abandon = item() or abandon  # a request from run_async
        if abandon and self.harvest is not None:
            # As a second Ctrl-C, but what already came back is recorded first.
            for outcome in found:
                self.harvest.on_outcome(outcome)
            raise KeyboardInterrupt
        return found

    def wake(self) -> None:
        self._outbox.put(None)

    def recall(self) -> list[Attempt]:
        """The attempts not sent to the loop yet."""
        recalled, self._starting = self._starting, []
        self.in_flight -= len(recalled)
        return recalled

    def gave_up(self, attempt: Attempt) -> None:
        """Past its timeout: its coroutine is cancelled, its slot free at once."""
        self.in_flight -= 1
        self.loop.call_soon_threadsafe(self._cancel, [id(attempt)])

    def came_back(self, outcome: Outcome) -> None:
        """It finished just as it timed out: recorded as timed out already."""

    def cancel_all(self) -> None:
        """Cancel what still runs (the run was abandoned): those tasks stay pending."""
        self._starting.clear()
        done = threading.Event()

        def cancel_everything() -> None:
            self._cancel(list(self._tasks))
            done.set()

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(cancel_everything)
            done.wait(5)

    def request(self, *, stop: bool = False, abandon: bool = False) -> None:
        """From ``run_async``'s thread: stop the run (as Ctrl-C does), or abandon it."""

        def act() -> bool:
            """Run on the driver's thread; True: abandon the run."""
            if stop and self.harvest is not None:
                self.harvest.interrupt("cancellation")
            return abandon

        self._outbox.put(act)

    # -- on the loop's thread ---------------------------------------------------

    def _start(self, attempts: list[Attempt]) -> None:
        for attempt in attempts:
            task = self.loop.create_task(_perform(attempt, self.threads, self.rules))
            self._tasks[id(attempt)] = task
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Outcome]) -> None:
        if not task.cancelled():
            outcome = task.result()
            self._tasks.pop(id(outcome.attempt), None)
            self._outbox.put(outcome)

    def _cancel(self, keys: list[int]) -> None:
        for key in keys:
            task = self._tasks.pop(key, None)
            if task is not None:
                task.cancel()


async def _wind_down() -> None:
    """Cancel every other task on this loop, let them unwind, close async generators."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


class _Threads:
    """Daemon threads for the calls that block, started as needed and reused once free.

    Not the loop's ThreadPoolExecutor: it has a handful of threads, and joins
    them when the interpreter exits, so that a call abandoned by a second
    Ctrl-C (or past its timeout) would keep the process alive until it returns.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._inbox: queue.SimpleQueue[tuple[Attempt, Rules, UsageSink, asyncio.Future[Any]] | None]
        self._inbox = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def call(self, attempt: Attempt, rules: Rules, sink: UsageSink) -> asyncio.Future[Any]:
        """Run ``attempt`` on a free thread (called on the loop): its Outcome, or its awaitable.

        What it reports spending goes to ``sink``, the attempt's on the loop.
        """
        future = self._loop.create_future()
        with self._lock:
            free = self._idle > 0
            self._idle -= free
            self._started += not free
        if not free:
            name = f"messor-blocking-{self._started}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        self._inbox.put((attempt, rules, sink, future))
        return future

    def close(self) -> None:
        """Let every thread end once its call returns."""
        for _ in range(self._started):
            self._inbox.put(None)

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            attempt, rules, sink, future = item
            token = collecting(sink)
            try:
                done = _call_blocking(attempt, rules)
            finally:
                stop_collecting(token)
            try:
                self._loop.call_soon_threadsafe(_settle, future, done)
            except RuntimeError:  # the loop is closed: the run ended without this call
                _discard(done)
            with self._lock:
                self._idle += 1


def _call_blocking(attempt: Attempt, rules: Rules) -> Any:
    """On a thread: the attempt's Outcome (its result encoded here), or the awaitable it gave."""
    try:
        result = attempt.task()
    except BaseException as exc:
        return failure(attempt, exc, rules=rules)
    return result if inspect.isawaitable(result) else returned(attempt, result)


def _settle(future: asyncio.Future[Any], done: Any) -> None:
    if future.done():  # cancelled: the attempt timed out, or the run was abandoned
        _discard(done)
    else:
        future.set_result(done)


def _discard(done: Any) -> None:
    if inspect.iscoroutine(done):
        done.close()  # never to be awaited: closed, it warns of nothing


def _blocks(task: Task) -> bool:
    """Whether calling ``task`` does the work there and then (a plain function), not a coroutine."""
    call = task.function if isinstance(task, FunctionTask) else task
    # A function or a bound method says so itself; an object, by its class's __call__.
    return not (
        inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)
    )


async def _perform(attempt: Attempt, threads: _Threads, rules: Rules) -> Outcome:
    """Run one attempt (a coroutine on the loop, a plain call on a thread); encode its result.

    Its usage is gathered in a sink of its own: this coroutine is an asyncio
    task, whose context (and the threads and tasks it starts) sees it.
    """
    sink = UsageSink()
    collecting(sink)
    outcome = await _outcome(attempt, threads, rules, sink)
    if sink.total is not None:
        outcome.usage = sink.total if outcome.usage is None else sink.total + outcome.usage
    return outcome


async def _outcome(attempt: Attempt, threads: _Threads, rules: Rules, sink: UsageSink) -> Outcome:
    try:
        if _blocks(attempt.task):
            done = await threads.call(attempt, rules, sink)
            if isinstance(done, Outcome):
                return done
            result: Any = await done
        else:
            result = attempt.task()
            if inspect.isawaitable(result):
                result = await result
    except asyncio.CancelledError as exc:
        this = asyncio.current_task()
        if this is not None and this.cancelling():
            raise  # cancelled by the run (timed out, abandoned): settled already
        return failure(attempt, exc, rules=rules)  # the task raised it itself: a failure like any
    except BaseException as exc:  # a task's SystemExit fails that task, not the loop
        return failure(attempt, exc, rules=rules)
    return returned(attempt, result)
