"""The core's own plugin: the ``sqlite`` and in-process (``memory``) memories.

It is registered through the ``messor`` entry-point group like any third-party
plugin, and imports each memory only when it is opened.
"""

from __future__ import annotations

from messor.errors import ConfigurationError
from messor.hookspecs import Register, hookimpl
from messor.memory import Memory
from messor.url import MemoryURL


def open_sqlite(url: MemoryURL | None, *, path: str | None = None) -> Memory:
    """Open ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``.

    By bare name (``open_memory("sqlite", path="harvest.db")``) the file is
    ``path``, by default ``./messor.db``.
    """
    from messor.sqlite_memory import DEFAULT_FILE, SQLiteMemory

    if url is None:
        return SQLiteMemory(path or DEFAULT_FILE)
    if path is not None:
        raise ConfigurationError(f"Give the SQLite file in the URL {url} or as path=, not both")
    if url.host or url.port or url.username:
        raise ConfigurationError(
            f"{url} names a host; SQLite URLs have none: write sqlite:///relative.db, "
            "sqlite:////absolute/path.db or sqlite:///:memory:"
        )
    _refuse_query(url)
    # SQLAlchemy's forms: one slash after "//" starts a relative path, two an absolute one.
    file = url.path[1:] if url.path.startswith("/") else url.path
    return SQLiteMemory(file or ":memory:")


def open_in_process(url: MemoryURL | None) -> Memory:
    """``memory://``: a new, empty memory that lives as long as the process."""
    from messor.inprocess_memory import InProcessMemory

    if url is not None:
        if url.host or url.path.strip("/"):
            raise ConfigurationError(f"{url} has a location; the in-process memory takes none")
        _refuse_query(url)
    return InProcessMemory()


def _refuse_query(url: MemoryURL) -> None:
    if url.query:
        names = ", ".join(sorted(url.query))
        raise ConfigurationError(f"{url.scheme}:// memories take no URL options (got {names})")


@hookimpl
def register_memories(register: Register) -> None:
    """Offer the built-in memories."""
    register("sqlite", open_sqlite, description="a SQLite file (the default)")
    register("memory", open_in_process, description="in-process, gone when the process ends")
