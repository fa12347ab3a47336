"""The ``messor`` entry point of messor-jsonl: registers the ``jsonl`` memory.

This module only registers. The memory itself is imported when one is
opened, so listing the installed backends stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import messor
from messor.plugin import ConfigurationError, Register

if TYPE_CHECKING:
    from messor_jsonl.memory import JSONLMemory

#: The file opened by bare name (``open_memory("jsonl")``) without ``path=``.
DEFAULT_FILE = "messor.jsonl"


def open_jsonl(url: messor.MemoryURL | None, *, path: str | None = None) -> JSONLMemory:
    """Open ``jsonl:///relative/file.jsonl`` or ``jsonl:////absolute/file.jsonl``.

    By bare name (``open_memory("jsonl", path="harvest.jsonl")``) the file is
    ``path``, by default ``./messor.jsonl``.
    """
    from messor_jsonl.memory import JSONLMemory

    if url is None:
        return JSONLMemory(path or DEFAULT_FILE)
    if path is not None:
        raise ConfigurationError(f"Give the JSON-lines file in the URL {url} or as path=, not both")
    if url.host or url.port or url.username:
        raise ConfigurationError(
            f"{url} names a host; jsonl URLs have none: write jsonl:///relative/file.jsonl "
            "or jsonl:////absolute/file.jsonl"
        )
    if url.query:
        raise ConfigurationError(
            f"jsonl:// memories take no URL options (got {', '.join(sorted(url.query))}); "
            "remove them"
        )
    # As for sqlite:// URLs: one slash after "//" starts a relative path, two an absolute one.
    file = url.path.removeprefix("/")
    if not file:
        raise ConfigurationError(
            f"{url} names no file: write jsonl:///harvest.jsonl (relative) "
            "or jsonl:////var/data/harvest.jsonl (absolute)"
        )
    return JSONLMemory(file)


@messor.hookimpl
def register_memories(register: Register) -> None:
    """Offer the JSON-lines memory, for jsonl:// URLs."""
    register("jsonl", open_jsonl, description="a JSON-lines file (messor-jsonl)")
