"""The seed's import path of the SQLite memory: ``from messor.sqlite_memory import SQLiteMemory``.

The memory lives in :mod:`messor.memories.sqlite`.
"""

from messor.memories.sqlite import DEFAULT_FILE, SQLiteMemory

__all__ = ["DEFAULT_FILE", "SQLiteMemory"]
