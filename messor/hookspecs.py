"""The hooks a Messor plugin implements: ``register_memories`` and ``register_executors``.

A plugin is a module named in the ``messor`` entry-point group, with functions
marked ``@messor.hookimpl`` (one plugin may implement both hooks)::

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

An executor plugin is written the same way (docs/executors.md)::

    def open_cluster(url, *, tasks, memory, options):
        from messor_cluster.executor import ClusterExecutor
        return ClusterExecutor(tasks, memory, address=url.host, options=options)

    @messor.hookimpl
    def register_executors(register):
        register("cluster", open_cluster, description="a cluster (cluster://HOST)")

Hook arguments are only ever added, never renamed, so a plugin written today
keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from messor.executors.base import Executor
    from messor.memories.base import Memory
    from messor.options import RunOptions
    from messor.url import MemoryURL

__all__ = [
    "ExecutorFactory",
    "MemoryFactory",
    "Register",
    "RegisterExecutor",
    "hookimpl",
    "hookspec",
    "register_executors",
    "register_memories",
]

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


class ExecutorFactory(Protocol):
    """Builds an executor: ``factory(url, tasks=..., memory=..., options=...)``."""

    def __call__(
        self,
        url: MemoryURL | None,
        /,
        *,
        tasks: Iterable[object],
        memory: Memory | str | None,
        options: RunOptions,
    ) -> Executor:
        """``url``: the parsed spec (``dask://host:8786``), ``None`` when chosen by bare name."""


class RegisterExecutor(Protocol):
    """The ``register`` argument of :func:`register_executors`."""

    def __call__(
        self,
        name: str,
        factory: ExecutorFactory,
        *,
        schemes: Iterable[str] = (),
        description: str = "",
    ) -> None:
        """Offer an executor called ``name``.

        ``factory(url, tasks=tasks, memory=memory, options=options)`` builds
        it, for ``messor.open_executor(spec, tasks, memory, options)`` and
        ``messor run --executor SPEC``: ``url`` is a
        :class:`~messor.url.MemoryURL` (its repr hides secrets) when the spec
        is a URL (its scheme is ``name`` or one of ``schemes``), ``None`` when
        it is the bare name; ``tasks`` and ``memory`` are what the executor
        runs and records into (a memory, a spec for ``open_memory``, or None);
        ``options`` is a :class:`~messor.options.RunOptions` (its
        ``max_concurrency`` may be None: the executor's default). Refuse a URL
        part you do not use with a ConfigurationError. As for memories, import
        the executor and its client library inside the factory: listing what is
        installed stays cheap.
        """


@hookspec
def register_executors(register: RegisterExecutor) -> None:
    """Call ``register(name, factory, schemes=..., description=...)`` for each executor offered."""
