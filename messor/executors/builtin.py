"""The core's executors, offered through its plugin: ``local`` (threads) and ``async`` (coroutines).

``messor run --executor async`` and ``messor.open_executor("local", tasks)``
find them as they find a plugin's executor; each is imported only when chosen.
"""

from __future__ import annotations

from collections.abc import Iterable

from messor.errors import ConfigurationError
from messor.executors.base import Executor
from messor.hookspecs import RegisterExecutor, hookimpl
from messor.memories.base import Memory
from messor.options import RunOptions
from messor.url import MemoryURL


def open_threads(
    url: MemoryURL | None,
    *,
    tasks: Iterable[object],
    memory: Memory | str | None,
    options: RunOptions,
) -> Executor:
    """``local``: :class:`~messor.LocalThreadedExecutor`, threads in this process."""
    from messor.executors.threads import LocalThreadedExecutor

    _refuse_location(url)
    return LocalThreadedExecutor(tasks, memory, options=options)


def open_coroutines(
    url: MemoryURL | None,
    *,
    tasks: Iterable[object],
    memory: Memory | str | None,
    options: RunOptions,
) -> Executor:
    """``async``: :class:`~messor.AsyncExecutor`, coroutines on one event loop."""
    from messor.executors.coroutines import AsyncExecutor

    _refuse_location(url)
    return AsyncExecutor(tasks, memory, options=options)


def _refuse_location(url: MemoryURL | None) -> None:
    if url is not None and (url.host or url.path.strip("/") or url.query):
        raise ConfigurationError(
            f"{url} says where to run, but the {url.scheme} executor runs in this process: "
            f"write {url.scheme}"
        )


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the built-in executors."""
    register("local", open_threads, description="threads in this process (the default)")
    register("async", open_coroutines, description="coroutines on one event loop in this process")
