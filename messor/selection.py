"""Choosing a memory (``open_memory(spec)``) and an executor (``open_executor(spec, tasks)``),
and where their specs come from when none is given.

A spec is a URL (``sqlite:///harvest.db``, ``memory://``, ``redis://host/0``),
a bare backend name (``"sqlite"``, with options as keyword arguments) or a
path to a SQLite file (``"harvest.db"``, ``"data/run.sqlite"``); a spec that
looks like a URL with its ``://`` mistyped (``redis//host``, ``s3:/bucket``) is
refused, naming the URL it likely meant. Without one, the first of these wins:

1. the environment variable ``MESSOR_MEMORY``;
2. ``memory = "..."`` in ``./messor.toml``;
3. ``memory = "..."`` under ``[tool.messor]`` in ``./pyproject.toml``;
4. the SQLite file ``./messor.db``.

An executor's spec is a name (``local``, ``async``) or a URL (``dask://host:8786``);
without one, ``executor = "..."`` in ``./messor.toml`` (or ``[tool.messor]``
of ``./pyproject.toml``), else ``local``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from messor.errors import ConfigurationError
from messor.memories.base import Memory
from messor.memories.sqlite import DEFAULT_FILE
from messor.options import RunOptions
from messor.plugins import KNOWN_EXTRAS, Backend, get_catalog
from messor.url import MemoryURL, redact_url

if TYPE_CHECKING:
    from messor.executors.base import Executor

__all__ = [
    "ENV_VAR",
    "MemoryChoice",
    "choose_memory",
    "configured",
    "open_executor",
    "open_memory",
    "resolve_spec",
]

logger = logging.getLogger("messor")

ENV_VAR = "MESSOR_MEMORY"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
# A URL whose "://" lost its colon or its slashes: "redis//host", "s3:/bucket",
# "redis:pw@host/0". Two letters at least, so that a Windows drive
# ("C:\\data.db") is a path. (Specs holding "://" never get here.)
_BROKEN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+)(?P<sep>:|//)(?P<rest>.*)", re.DOTALL)
# Schemes whose URL holds a path after "://" rather than a host: sqlite:///harvest.db.
_PATH_SCHEMES = ("sqlite", "unix")


def resolve_spec(spec: str | None = None) -> tuple[str, str]:
    """Return ``(spec, where it came from)``, following the order in this module's docstring."""
    if spec is not None:
        return spec, "argument"
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return from_env, f"environment variable {ENV_VAR}"
    found = configured("memory", 'such as "sqlite:///harvest.db"')
    return found or (f"sqlite:///{DEFAULT_FILE}", "default")


def configured(key: str, example: str) -> tuple[str, str] | None:
    """``(value, where)`` of ``key`` in ``./messor.toml``, else ``[tool.messor]`` of
    ``./pyproject.toml``; None if neither sets it. ``example`` goes into errors."""
    for file, table in (("messor.toml", ()), ("pyproject.toml", ("tool", "messor"))):
        found = _from_toml(Path(file), table, key, example)
        if found is not None:
            return found
    return None


def _from_toml(
    path: Path, table: tuple[str, ...], name: str, example: str
) -> tuple[str, str] | None:
    if not path.is_file():
        return None
    where = f"{path}" + (f" [{'.'.join(table)}]" if table else "")
    try:
        config: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path.resolve()} is not valid TOML: {exc}") from exc
    for key in table:
        config = config.get(key, {}) if isinstance(config, dict) else {}
    value = config.get(name) if isinstance(config, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{name} in {where} must be a non-empty string {example}, got {value!r}"
        )
    return value.strip(), where


@dataclass(frozen=True)
class MemoryChoice:
    """Which memory a spec names, before it is opened (what the command line shows)."""

    backend: Backend[Memory]
    url: MemoryURL | None
    options: dict[str, Any] = field(repr=False)
    #: Where the spec came from: "argument", "environment variable MESSOR_MEMORY", ...
    source: str
    #: The spec as it may be shown: a URL with its secrets hidden, or a name or path.
    shown: str

    def open(self) -> Memory:
        """Build the memory; options the backend does not take are a ConfigurationError."""
        try:
            inspect.signature(self.backend.factory).bind(self.url, **self.options)
        except TypeError as exc:
            raise ConfigurationError(
                f"The {self.backend.name!r} memory does not take these options ({exc}); "
                f"given: {', '.join(sorted(self.options)) or 'none'}"
            ) from None
        memory = self.backend.factory(self.url, **self.options)
        logger.debug("Opened %r for %s (from %s)", memory, self.shown, self.source)
        return memory


def choose_memory(spec: str | None = None, **options: Any) -> MemoryChoice:
    """Find the backend for ``spec`` (or the configured one), as :func:`open_memory` does."""
    if isinstance(spec, Memory):
        raise ConfigurationError(f"{spec!r} is already a memory: use it directly")
    if spec is not None and not isinstance(spec, str):
        raise ConfigurationError(
            f"A memory spec is a URL, a backend name or a SQLite file path (str), "
            f"got {type(spec).__name__}"
        )
    text, source = resolve_spec(spec)
    url: MemoryURL | None = None
    if "://" in text:
        url = MemoryURL(text)
        key = url.scheme
    elif mistyped := _mistyped_url(text, source):
        # Not a file to create (which would put a password in a file name).
        raise mistyped
    elif _looks_like_sqlite_file(text):
        if "path" in options:
            raise ConfigurationError(
                f"{text!r} is already a path; give the SQLite file once, not also as path="
            )
        key, options = "sqlite", {**options, "path": text}
    else:
        key = text
    backend = get_catalog().memories.find(key, source=source)
    return MemoryChoice(backend, url, options, source, str(url) if url is not None else text)


def open_memory(spec: str | None = None, **options: Any) -> Memory:
    """Open the memory that ``spec`` names (or the configured one); ``options`` go to its factory.

    Raises :class:`~messor.errors.UnknownBackendError` for a backend that is
    not installed, :class:`~messor.errors.ConfigurationError` for a spec or
    option it cannot use.
    """
    return choose_memory(spec, **options).open()


def open_executor(
    spec: str | None,
    tasks: Iterable[object],
    memory: Memory | str | None = None,
    options: RunOptions | None = None,
) -> Executor:
    """Build the executor that ``spec`` names (or the configured one, else ``local``).

    ``spec`` is an executor's name (``"local"``, ``"async"``) or a URL whose
    scheme names it (``"dask://scheduler:8786"``); ``tasks``, ``memory`` and
    ``options`` go to it as to any executor. Raises
    :class:`~messor.errors.UnknownBackendError` for an executor that is not
    installed (saying which extra installs it), and
    :class:`~messor.errors.ConfigurationError` for a spec it cannot use.
    """
    if spec is not None and not isinstance(spec, str):
        raise ConfigurationError(
            f"An executor spec is a name or a URL (str), got {type(spec).__name__}"
        )
    if spec is None:
        example = 'such as "local" or "dask://scheduler:8786"'
        text, source = configured("executor", example) or ("local", "default")
    else:
        text, source = spec, "argument"
    url = MemoryURL(text) if "://" in text else None
    key = url.scheme if url is not None else text
    shown = str(url) if url is not None else text
    backend = get_catalog().executors.find(key, source=source, shown=shown)
    executor = backend.factory(
        url, tasks=tasks, memory=memory, options=RunOptions() if options is None else options
    )
    logger.debug("Built %s for %s (from %s)", type(executor).__name__, shown, source)
    return executor


def _mistyped_url(text: str, source: str) -> ConfigurationError | None:
    """The error for a spec that is a URL with a character of its "://" missing
    (``redis//host:6379/0``, ``s3:/bucket``, ``sqlite//x.db``), or None for anything else."""
    match = _BROKEN_URL.fullmatch(text)
    if match is None:
        return None
    typed, rest = match["scheme"], match["rest"]
    catalog = get_catalog()
    known = sorted({*catalog.memories.backends, *catalog.memories.schemes, *KNOWN_EXTRAS})
    close = difflib.get_close_matches(typed.lower(), known, n=1)
    scheme = typed.lower() if typed.lower() in known else (close[0] if close else typed)
    if match["sep"] == ":":  # the slashes are missing, perhaps one of them
        rest = rest.lstrip("/")
    if scheme in _PATH_SCHEMES and not rest.startswith("/"):
        rest = "/" + rest
    # The spec may hold a password: only the suggestion is shown, with its secrets hidden.
    suggestion = redact_url(f"{scheme}://{rest}")
    origin = f" (from {source})"
    if scheme != typed.lower() or typed.lower() in known:
        return ConfigurationError(
            f"The memory spec{origin} looks like a URL with its '://' mistyped; "
            f"did you mean {suggestion!r}?"
        )
    if match["sep"] == ":":
        return ConfigurationError(
            f"The memory spec {typed}:...{origin} looks like a URL without '//': "
            f"write {typed}://..."
        )
    return ConfigurationError(
        f"The memory spec {typed}//...{origin} looks like a URL missing the ':' of '://', "
        f"but no memory is called {typed!r} "
        f"(installed: {', '.join(sorted(catalog.memories.backends))}). "
        "For a SQLite file in a directory, write the path with single slashes"
    )


def _looks_like_sqlite_file(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(_SQLITE_SUFFIXES)
