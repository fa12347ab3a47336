"""messor-redis: a Redis memory for Messor (``pip install 'messor[redis]'``).

import messor
memory = messor.open_memory("redis://localhost:6379/0?namespace=catalogue")
"""

from __future__ import annotations

from messor_redis.memory import RedisMemory

__all__ = ["RedisMemory"]
