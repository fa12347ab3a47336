"""The hooks a Messor plugin implements.

A plugin is a module named in the ``messor`` entry-point group, with functions
marked ``@messor.hookimpl``::

    # pyproject.toml
    [project.entry-points.messor]
    jsonl = "messor_jsonl.plugin"

    # messor_jsonl/plugin.py
    import messor

    def open_jsonl(url, **options):
        from messor_jsonl.memory import JSONLMemory   # imported only when used
        return JSONLMemory(url.path if url else options.pop("path"), **options)

    @messor.hookimpl
    def register_memories(register):
        register("jsonl", open_jsonl, schemes=["jsonl"])

Hook arguments are only ever added, never renamed, so a plugin written today
keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from messor.memories.base import Memory

__all__ = ["MemoryFactory", "Register", "hookimpl", "hookspec", "register_memories"]

hookspec = pluggy.HookspecMarker("messor")
hookimpl = pluggy.HookimplMarker("messor")

#: Builds a memory from a parsed URL (``None`` when chosen by bare name) and options.
MemoryFactory = Callable[..., "Memory"]


class Register(Protocol):
    """The ``register`` argument of :func:`register_memories`."""

    def __call__(
        self,
        name: str,
        factory: MemoryFactory,
        *,
        schemes: Iterable[str] = (),
        description: str = "",
    ) -> None:
        """Offer a memory called ``name``.

        ``factory(url, **options)`` builds it: ``url`` is a
        :class:`~messor.url.MemoryURL` when the user gave one (its scheme is
        ``name`` or one of ``schemes``), ``None`` when they gave the bare name;
        ``options`` are the keyword arguments of ``messor.open_memory``. Import
        the client library inside the factory, not at module level, so that
        listing backends stays cheap and a missing library only matters to
        those who use it.

        A factory may take a keyword ``create`` (default True). The command
        line passes ``create=False`` when it inspects a harvest (``messor
        status``, ``failed``, ``results``, ``retry``): then a memory that holds
        nothing should be a ConfigurationError saying where it looked (and,
        where cheap, where harvests are), not an empty memory, which would
        hide a mistyped file, namespace or prefix.
        """


@hookspec
def register_memories(register: Register) -> None:
    """Call ``register(name, factory, schemes=..., description=...)`` for each memory offered."""
