"""``DaskExecutor``: a harvest whose tasks run on a Dask cluster, recorded by the driver.

The run is Messor's own run loop (:class:`messor.plugin.Harvest`, driven by
:func:`messor.plugin.drive`): resume, retries, stop conditions, rate limit,
timeouts, progress and the batched writer all work as with threads. Only
where an attempt runs differs: on the cluster, through
:class:`~messor_dask.workers.DaskWorkers`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client

from messor.plugin import (
    ConfigurationError,
    Executor,
    Memory,
    RunOptions,
    RunReport,
    StopConditions,
    drive,
)
from messor_dask.workers import DaskWorkers, SchedulerLostError

__all__ = ["DaskExecutor"]


class DaskExecutor(Executor):
    """Runs tasks on a Dask cluster; see :class:`messor.Executor` for the options.

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
    :class:`~messor_dask.workers.SchedulerLostError`; what was recorded
    stays, the rest is pending.
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
        options: RunOptions | None = None,
        **keywords: Any,
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
        super().__init__(
            tasks, memory, max_concurrency, stop_all_when, retry, options=options, **keywords
        )
        #: No number given: each run takes twice the threads the cluster has then.
        self._per_run = max_concurrency is None and (
            options is None or options.max_concurrency is None
        )
        self.client = client
        self.address = address

    @property
    def where(self) -> str:
        address = self.address
        if address is None and self.client is not None and self.client.scheduler is not None:
            address = self.client.scheduler.address
        return f"on the Dask cluster at {address}"

    def run(self) -> RunReport:
        client = self.client or _connect(str(self.address))
        try:
            if self._per_run:
                # Twice the threads: each has its next attempt at hand, instead
                # of idling for the round trip through the scheduler.
                self.max_concurrency = max(1, 2 * sum(client.nthreads().values()))
            harvest = self.new_harvest()
            workers = DaskWorkers(client, self.max_concurrency, harvest.rules)
            harvest.wake = workers.wake
            with harvest:
                try:
                    drive(harvest, workers)
                finally:
                    # Abandoned or failed: what finished is recorded, the rest is cancelled.
                    for outcome in workers.close():
                        harvest.on_outcome(outcome)
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
