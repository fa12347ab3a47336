"""messor-dask's entry point: offers the ``dask`` executor (``dask://HOST:PORT``, the scheduler).

Importing this module imports no Dask: the executor is imported when chosen.
"""

from __future__ import annotations

from collections.abc import Iterable

from messor.plugin import (
    ConfigurationError,
    Executor,
    Memory,
    MemoryURL,
    RegisterExecutor,
    RunOptions,
    hookimpl,
)

#: The port of a Dask scheduler, unless the URL names another.
DEFAULT_PORT = 8786


def open_dask(
    url: MemoryURL | None,
    *,
    tasks: Iterable[object],
    memory: Memory | str | None,
    options: RunOptions,
) -> Executor:
    """``dask://HOST[:PORT]``: a :class:`~messor_dask.DaskExecutor` on that scheduler."""
    if url is None or not url.host:
        raise ConfigurationError(
            "The dask executor needs its scheduler's address: write dask://HOST:PORT "
            f"(the port is {DEFAULT_PORT} unless given)"
        )
    if url.username or url.password is not None or url.path.strip("/") or url.query:
        raise ConfigurationError(
            f"{url}: a dask:// URL holds only the scheduler's host and port (dask://HOST:PORT)"
        )
    from messor_dask.executor import DaskExecutor

    host = f"[{url.host}]" if ":" in url.host else url.host  # an IPv6 address
    address = f"tcp://{host}:{url.port or DEFAULT_PORT}"
    return DaskExecutor(tasks, memory, address=address, options=options)


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer the Dask executor."""
    register("dask", open_dask, description="a Dask cluster: dask://HOST:PORT, its scheduler")
