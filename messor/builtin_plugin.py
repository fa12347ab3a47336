"""The core's own plugin, named by its ``builtin`` entry point: its memories and its executors.

Built-ins travel the path of third-party plugins, so that ``messor backends``
lists them alike and no plugin can take their names. Each hook lives beside
what it offers (:mod:`messor.memories.builtin`, :mod:`messor.executors.builtin`);
this module only gathers the two, so that the core stays one plugin.
"""

from __future__ import annotations

from messor.executors.builtin import register_executors
from messor.memories.builtin import register_memories

__all__ = ["register_executors", "register_memories"]
