"""messor-redis: a Redis memory for Messor (``pip install 'messor[redis]'``).

import messor
memory = messor.open_memory("redis://localhost:6379/0?namespace=catalogue")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from messor_redis.memory import RedisMemory

__all__ = ["RedisMemory"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `messor backends` loads this package's plugin
    # module, and listing must not import the client library.
    if name == "RedisMemory":
        from messor_redis.memory import RedisMemory

        return RedisMemory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
