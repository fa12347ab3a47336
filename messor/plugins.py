"""Loading memory plugins from the ``messor`` entry-point group, lazily and guarded.

Importing ``messor`` loads no plugin; the first selection of a memory does
(:func:`get_catalog`). Each plugin is imported, registered and asked for its
memories on its own: one that fails to import, breaks the hook contract or
raises while registering is recorded as a :class:`PluginFailure`, named with
its error wherever it could matter, and the others keep working.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from messor import hookspecs
from messor.errors import ConfigurationError, UnknownBackendError
from messor.hookspecs import MemoryFactory

__all__ = ["Backend", "Catalog", "PluginFailure", "get_catalog", "load_catalog"]

logger = logging.getLogger("messor.plugins")

GROUP = "messor"
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
BUILTIN_MODULE = "messor.memories.builtin"
#: Backends that Messor's own extras provide, by name or URL scheme -> extra.
KNOWN_EXTRAS = {"redis": "redis", "rediss": "redis", "unix": "redis", "s3": "s3"}


@dataclass(frozen=True)
class Backend:
    """A memory offered by a plugin."""

    name: str
    factory: MemoryFactory = field(repr=False)
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
class Catalog:
    """The installed memories, by name and by URL scheme, and the plugins that failed."""

    backends: dict[str, Backend] = field(default_factory=dict)
    schemes: dict[str, Backend] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    #: Names and schemes two plugins both offer: choosing them is refused, with this reason.
    clashes: dict[str, str] = field(default_factory=dict)

    def find(self, key: str, *, source: str = "") -> Backend:
        """Return the backend named ``key`` or serving URL scheme ``key``.

        Raises :class:`UnknownBackendError` listing what is installed, a close
        match, the extra to install for Messor's own backends, and any plugin
        that failed to load.
        """
        clash = self.clashes.get(key) or self.clashes.get(key.lower())
        if clash is not None:
            raise ConfigurationError(f"Cannot choose the memory {key!r}: {clash}")
        backend = self.backends.get(key) or self.schemes.get(key.lower())
        if backend is not None:
            return backend
        raise UnknownBackendError(self._explain_unknown(key, source))

    def _explain_unknown(self, key: str, source: str) -> str:
        origin = f" (from {source})" if source else ""
        lines = [f"No memory backend named {key!r}{origin}."]
        extra = KNOWN_EXTRAS.get(key.lower())
        if extra:
            lines.append(
                f"The {key!r} memory is not installed: install it with "
                f"pip install 'messor[{extra}]'"
            )
        else:
            candidates = [*self.backends, *self.schemes, *KNOWN_EXTRAS]
            close = difflib.get_close_matches(key.lower(), candidates, n=1)
            if close:
                lines.append(f"Did you mean {close[0]!r}?")
        installed = ", ".join(
            f"{b.name} ({', '.join(s + '://' for s in b.schemes)})" for b in self.backends.values()
        )
        lines.append(f"Installed backends: {installed or 'none'}.")
        lines.extend(f"Could not load {failure}" for failure in self.failures)
        return "\n".join(lines)


class _Registrar:
    """The ``register`` callable handed to one plugin's ``register_memories``."""

    def __init__(self, plugin: str, dist: importlib.metadata.Distribution | None) -> None:
        self._plugin = plugin
        self._dist = dist
        self.offered: list[Backend] = []

    def __call__(
        self,
        name: str,
        factory: MemoryFactory,
        *,
        schemes: Iterable[str] = (),
        description: str = "",
    ) -> None:
        for word in (name, *schemes):
            if not isinstance(word, str) or not _SCHEME.fullmatch(word):
                raise ValueError(
                    f"memory names and schemes must work as URL schemes (a lowercase letter, "
                    f"then letters, digits, '+', '-' or '.'), got {word!r}"
                )
        if not callable(factory):
            raise TypeError(f"the factory of memory {name!r} is not callable: {factory!r}")
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
    """Import every plugin of the ``messor`` entry-point group and collect its memories."""
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=GROUP)
    # The core's own memories come first, so a plugin cannot shadow them silently.
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
        # entry point, but the built-in memories must still be there.
        from messor.memories import builtin

        sources.insert(0, ("builtin", BUILTIN_MODULE, None, builtin))
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
    """Register one loaded plugin and ask it for its memories; record any failure."""
    registrar = _Registrar(name, dist)
    try:
        manager.register(plugin, name=f"{name}={target}")
        for impl in manager.hook.register_memories.get_hookimpls():
            if impl.plugin is plugin:
                impl.function(register=registrar)
        unknown = _unknown_hooks(manager, plugin)
        if unknown and not registrar.offered:
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
    for backend in registrar.offered:
        clash = catalog.backends.get(backend.name) or next(
            (catalog.schemes[s] for s in backend.schemes if s in catalog.schemes), None
        )
        if clash is not None:
            message = (
                f"memory {backend.name!r} (schemes {', '.join(backend.schemes)}) of "
                f"{_origin(backend)} clashes with memory {clash.name!r} of {_origin(clash)}"
            )
            if clash.plugin != "builtin":
                # Which one a user gets must not depend on install order:
                # selecting either name is refused until one is uninstalled.
                for taken in {backend.name, *backend.schemes} & {clash.name, *clash.schemes}:
                    catalog.clashes[taken] = f"{message}; uninstall one of the two"
            _fail(catalog, name, target, dist, ValueError(f"{message}; it was not registered"))
            continue
        catalog.backends[backend.name] = backend
        catalog.schemes.update(dict.fromkeys(backend.schemes, backend))


def _origin(backend: Backend) -> str:
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
