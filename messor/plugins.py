"""Loading plugins from the ``messor`` entry-point group, lazily and guarded: memories, executors.

Importing ``messor`` loads no plugin; the first selection of a memory or an
executor does (:func:`get_catalog`). Each plugin is imported, registered and
asked for what it offers on its own: one that fails to import, breaks the hook
contract or raises while registering is recorded as a :class:`PluginFailure`,
named with its error wherever it could matter, and the others keep working.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from messor import hookspecs
from messor.errors import ConfigurationError, UnknownBackendError

if TYPE_CHECKING:
    from messor.executors.base import Executor
    from messor.memories.base import Memory

__all__ = [
    "EXECUTORS",
    "MEMORIES",
    "Backend",
    "Catalog",
    "Kind",
    "PluginFailure",
    "Registry",
    "get_catalog",
    "load_catalog",
]

logger = logging.getLogger("messor.plugins")

GROUP = "messor"
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
#: The core's own plugin: its memories and its executors.
BUILTIN_MODULE = "messor.builtin_plugin"
#: Memories that Messor's own extras provide, by name or URL scheme -> extra.
KNOWN_EXTRAS = {"redis": "redis", "rediss": "redis", "unix": "redis", "s3": "s3"}

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """What a registry holds (memories, executors): the hook that offers them, the words
    its messages use."""

    #: The hook of :mod:`messor.hookspecs` through which plugins offer them.
    hook: str
    #: "memory": "the memory 'x' clashes with ...".
    noun: str
    #: How the installed ones are listed: "Installed backends: ...".
    plural: str
    #: The first line of the error for a name nobody offers; formatted with the
    #: name or scheme (``key``), the spec as given (``shown``) and `` (from ...)``.
    unknown: str
    #: Names and URL schemes of the ones Messor's extras provide -> the extra.
    extras: Mapping[str, str]


MEMORIES = Kind(
    "register_memories",
    "memory",
    "backends",
    "No memory backend named {key!r}{origin}.",
    KNOWN_EXTRAS,
)
EXECUTORS = Kind(
    "register_executors",
    "executor",
    "executors",
    "executor {shown!r}{origin} is not one Messor knows.",
    {"dask": "dask"},
)


@dataclass(frozen=True)
class Backend(Generic[T]):
    """A memory (or an executor) offered by a plugin."""

    name: str
    factory: Callable[..., T] = field(repr=False)
    schemes: tuple[str, ...]
    description: str
    plugin: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    plugin: str
    target: str
    distribution: str | None
    version: str | None
    error: str

    def __str__(self) -> str:
        origin = f" from {self.distribution} {self.version}" if self.distribution else ""
        return f"plugin {self.plugin!r} ({self.target}{origin}): {self.error}"


@dataclass
class Registry(Generic[T]):
    """The installed memories (or executors), by name and by URL scheme."""

    kind: Kind
    #: The plugins that failed to load (the catalog's list): named when a name is unknown.
    failures: list[PluginFailure] = field(default_factory=list)
    backends: dict[str, Backend[T]] = field(default_factory=dict)
    schemes: dict[str, Backend[T]] = field(default_factory=dict)
    #: Names and schemes two plugins both offer: choosing them is refused, with this reason.
    clashes: dict[str, str] = field(default_factory=dict)

    def find(self, key: str, *, source: str = "", shown: str | None = None) -> Backend[T]:
        """Return the one named ``key`` or serving URL scheme ``key``.

        Raises :class:`UnknownBackendError` listing what is installed, a close
        match, the extra to install for Messor's own, and any plugin that
        failed to load. ``source`` says where ``key`` came from (a file, an
        environment variable), ``shown`` the spec as the user wrote it.
        """
        clash = self.clashes.get(key) or self.clashes.get(key.lower())
        if clash is not None:
            raise ConfigurationError(f"Cannot choose the {self.kind.noun} {key!r}: {clash}")
        backend = self.backends.get(key) or self.schemes.get(key.lower())
        if backend is not None:
            return backend
        shown = key if shown is None else shown
        raise UnknownBackendError(self._explain_unknown(key, source, shown))

    def add(self, backend: Backend[T]) -> str | None:
        """Register ``backend``; or, if it clashes with one registered, say why it was not."""
        clash = self.backends.get(backend.name) or next(
            (self.schemes[s] for s in backend.schemes if s in self.schemes), None
        )
        if clash is None:
            self.backends[backend.name] = backend
            self.schemes.update(dict.fromkeys(backend.schemes, backend))
            return None
        noun = self.kind.noun
        message = (
            f"{noun} {backend.name!r} (schemes {', '.join(backend.schemes)}) of "
            f"{_origin(backend)} clashes with {noun} {clash.name!r} of {_origin(clash)}"
        )
        if clash.plugin != "builtin":
            # Which one a user gets must not depend on install order:
            # selecting either name is refused until one is uninstalled.
            for taken in {backend.name, *backend.schemes} & {clash.name, *clash.schemes}:
                self.clashes[taken] = f"{message}; uninstall one of the two"
        return f"{message}; it was not registered"

    def _explain_unknown(self, key: str, source: str, shown: str) -> str:
        origin = f" (from {source})" if source else ""
        lines = [self.kind.unknown.format(key=key, shown=shown, origin=origin)]
        extra = self.kind.extras.get(key.lower())
        if extra:
            lines.append(
                f"The {key!r} {self.kind.noun} is not installed: install it with "
                f"pip install 'messor[{extra}]'"
            )
        else:
            candidates = [*self.backends, *self.schemes, *self.kind.extras]
            close = difflib.get_close_matches(key.lower(), candidates, n=1)
            if close:
                lines.append(f"Did you mean {close[0]!r}?")
        installed = ", ".join(
            f"{b.name} ({', '.join(s + '://' for s in b.schemes)})" for b in self.backends.values()
        )
        lines.append(f"Installed {self.kind.plural}: {installed or 'none'}.")
        lines.extend(f"Could not load {failure}" for failure in self.failures)
        return "\n".join(lines)


@dataclass
class Catalog:
    """The installed memories and executors, and the plugins that failed to load.

    ``backends`` and ``find`` are those of the memories, as before executors
    were plugins too.
    """

    failures: list[PluginFailure] = field(default_factory=list)
    memories: Registry[Memory] = field(init=False)
    executors: Registry[Executor] = field(init=False)

    def __post_init__(self) -> None:
        self.memories = Registry(MEMORIES, self.failures)
        self.executors = Registry(EXECUTORS, self.failures)

    @property
    def backends(self) -> dict[str, Backend[Memory]]:
        """The installed memories, by name."""
        return self.memories.backends

    def find(self, key: str, *, source: str = "") -> Backend[Memory]:
        """The memory named ``key`` or serving URL scheme ``key`` (see :meth:`Registry.find`)."""
        return self.memories.find(key, source=source)


class _Registrar(Generic[T]):
    """The ``register`` callable handed to one plugin's ``register_memories`` (or
    ``register_executors``): it collects what the plugin offers."""

    def __init__(
        self, kind: Kind, plugin: str, dist: importlib.metadata.Distribution | None
    ) -> None:
        self._kind = kind
        self._plugin = plugin
        self._dist = dist
        self.offered: list[Backend[T]] = []

    def __call__(
        self,
        name: str,
        factory: Callable[..., T],
        *,
        schemes: Iterable[str] = (),
        description: str = "",
    ) -> None:
        noun = self._kind.noun
        for word in (name, *schemes):
            if not isinstance(word, str) or not _SCHEME.fullmatch(word):
                raise ValueError(
                    f"{noun} names and schemes must work as URL schemes (a lowercase letter, "
                    f"then letters, digits, '+', '-' or '.'), got {word!r}"
                )
        if not callable(factory):
            raise TypeError(f"the factory of {noun} {name!r} is not callable: {factory!r}")
        all_schemes = tuple(dict.fromkeys((name, *schemes)))
        self.offered.append(
            Backend(
                name=name,
                factory=factory,
                schemes=all_schemes,
                description=description,
                plugin=self._plugin,
                distribution=self._dist.name if self._dist else None,
                version=self._dist.version if self._dist else None,
            )
        )


def load_catalog(entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> Catalog:
    """Import every plugin of the ``messor`` entry-point group; collect what each offers."""
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=GROUP)
    # The core's own plugin comes first, so that no plugin can shadow its names silently.
    ordered = sorted(entry_points, key=lambda ep: (ep.value != BUILTIN_MODULE, ep.name))
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    catalog = Catalog()
    sources: list[tuple[str, str, importlib.metadata.Distribution | None, object]] = []
    for ep in ordered:
        try:
            sources.append((ep.name, ep.value, ep.dist, ep.load()))
        except Exception as exc:
            _fail(catalog, ep.name, ep.value, ep.dist, exc)
    if not any(target == BUILTIN_MODULE for _, target, _, _ in sources):
        # Running from a source tree that was never installed: there is no
        # entry point, but the built-in memories and executors must still be there.
        from messor import builtin_plugin

        sources.insert(0, ("builtin", BUILTIN_MODULE, None, builtin_plugin))
    for name, target, dist, plugin in sources:
        _add_plugin(catalog, manager, name, target, dist, plugin)
    return catalog


def _add_plugin(
    catalog: Catalog,
    manager: pluggy.PluginManager,
    name: str,
    target: str,
    dist: importlib.metadata.Distribution | None,
    plugin: object,
) -> None:
    """Register one loaded plugin and ask it for its memories and executors; record any failure."""
    registrars: list[tuple[Registry[Any], _Registrar[Any]]] = [
        (registry, _Registrar(registry.kind, name, dist))
        for registry in (catalog.memories, catalog.executors)
    ]
    try:
        manager.register(plugin, name=f"{name}={target}")
        for registry, registrar in registrars:
            for impl in getattr(manager.hook, registry.kind.hook).get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(register=registrar)
        unknown = _unknown_hooks(manager, plugin)
        if unknown and not any(registrar.offered for _, registrar in registrars):
            raise LookupError(
                f"it implements no hook this Messor knows ({', '.join(unknown)}); "
                f"the hooks are: {', '.join(_hooks(manager))}"
            )
    except Exception as exc:
        if manager.is_registered(plugin):
            manager.unregister(plugin)
        _fail(catalog, name, target, dist, exc)
        return
    if unknown:
        # Hooks of a newer Messor, say: what this one knows still works.
        logger.info("Plugin %r: ignoring hooks this Messor does not know: %s", name, unknown)
    for registry, registrar in registrars:
        for backend in registrar.offered:
            refused = registry.add(backend)
            if refused is not None:
                _fail(catalog, name, target, dist, ValueError(refused))


def _origin(backend: Backend[Any]) -> str:
    """Where a backend comes from, for messages: its distribution, or its plugin."""
    if backend.distribution:
        return f"{backend.distribution} {backend.version} (plugin {backend.plugin!r})"
    return f"plugin {backend.plugin!r}"


def _hooks(manager: pluggy.PluginManager) -> list[str]:
    """The hooks of :mod:`messor.hookspecs`."""
    return [name for name in dir(hookspecs) if manager.parse_hookspec_opts(hookspecs, name)]


def _unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """Names the plugin marks as hook implementations that match no hook of this Messor."""
    known = _hooks(manager)
    return [
        attribute
        for attribute in dir(plugin)
        if attribute not in known and manager.parse_hookimpl_opts(plugin, attribute) is not None
    ]


def _fail(
    catalog: Catalog,
    name: str,
    target: str,
    dist: importlib.metadata.Distribution | None,
    exc: Exception,
) -> None:
    failure = PluginFailure(
        plugin=name,
        target=target,
        distribution=dist.name if dist else None,
        version=dist.version if dist else None,
        error=f"{type(exc).__name__}: {exc}",
    )
    logger.warning("Could not load %s", failure)
    catalog.failures.append(failure)


_lock = threading.Lock()
_catalog: Catalog | None = None


def get_catalog(*, refresh: bool = False) -> Catalog:
    """The catalog of installed memories, loaded on first use (``refresh`` reloads it)."""
    global _catalog
    with _lock:
        if _catalog is None or refresh:
            _catalog = load_catalog()
        return _catalog
