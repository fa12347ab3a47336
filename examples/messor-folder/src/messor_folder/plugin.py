"""The ``messor`` entry point of messor-folder: offers the ``folder`` memory, imports nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from messor.plugin import ConfigurationError, MemoryURL, Register, hookimpl

if TYPE_CHECKING:
    from messor_folder.memory import FolderMemory


def open_folder(
    url: MemoryURL | None, *, path: str | None = None, create: bool = True
) -> FolderMemory:
    """``folder:///relative/dir``, ``folder:////absolute/dir``, or by name: ``path``."""
    from messor_folder.memory import FolderMemory  # only when opened: listing stays cheap

    if url is None:
        return FolderMemory(path or "messor-tasks", create=create)
    if path is not None:
        raise ConfigurationError(f"Give the directory in the URL {url} or as path=, not both")
    if url.host or url.port or url.username or url.query:
        raise ConfigurationError(
            f"{url}: folder URLs take no host and no options; write folder:///relative/dir "
            "or folder:////absolute/dir"
        )
    # As for sqlite:// URLs: one slash after "//" starts a relative path, two an absolute one.
    directory = url.path.removeprefix("/")
    if not directory:
        raise ConfigurationError(f"{url} names no directory: write folder:///harvest, say")
    return FolderMemory(directory, create=create)


@hookimpl
def register_memories(register: Register) -> None:
    register("folder", open_folder, description="a directory, one file per task")
