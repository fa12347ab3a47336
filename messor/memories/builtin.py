"""The core's memories, offered through its plugin (:mod:`messor.builtin_plugin`):
``sqlite`` and in-process (``memory``).

They travel the ``messor`` entry-point group like any third-party plugin's,
and each is imported only when it is opened.
"""

from __future__ import annotations

from messor.errors import ConfigurationError
from messor.hookspecs import Register, hookimpl
from messor.memories.base import Memory
from messor.url import MemoryURL


def open_sqlite(url: MemoryURL | None, *, path: str | None = None, create: bool = True) -> Memory:
    """Open ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``.

    By bare name (``open_memory("sqlite", path="harvest.db")``) the file is
    ``path``, by default ``./messor.db``. With ``create=False`` a missing file
    is an error rather than a new, empty memory.
    """
    from messor.memories.sqlite import DEFAULT_FILE, SQLiteMemory

    if url is None:
        return SQLiteMemory(path or DEFAULT_FILE, create=create)
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
    if not file:
        # SQLAlchemy reads this as a database in RAM; a forgotten file name
        # would then lose every result when the process ends.
        raise ConfigurationError(
            f"{url} names no file: write sqlite:///harvest.db (relative), "
            "sqlite:////var/data/harvest.db (absolute) or sqlite:///:memory: (in RAM)"
        )
    return SQLiteMemory(file, create=create)


def open_in_process(url: MemoryURL | None) -> Memory:
    """``memory://``: a new, empty memory that lives as long as the process."""
    from messor.memories.inprocess import InProcessMemory

    if url is not None:
        if url.host or url.path.strip("/"):
            raise ConfigurationError(
                f"{url} has a location; the in-process memory takes none: write memory://"
            )
        _refuse_query(url)
    return InProcessMemory()


def _refuse_query(url: MemoryURL) -> None:
    if url.query:
        names = ", ".join(sorted(url.query))
        raise ConfigurationError(
            f"{url.scheme}:// memories take no URL options (got {names}); remove them"
        )


@hookimpl
def register_memories(register: Register) -> None:
    """Offer the built-in memories."""
    register("sqlite", open_sqlite, description="a SQLite file (the default)")
    register("memory", open_in_process, description="in-process, gone when the process ends")
