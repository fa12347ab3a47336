"""The ``messor`` entry point of messor-redis: registers the ``redis`` memory.

Importing this module imports neither redis-py nor the memory: listing the
installed backends stays cheap, and a broken redis install only matters to
those who open a Redis memory.
"""

from __future__ import annotations

from typing import Any

from messor import Memory, MemoryURL, hookimpl
from messor.errors import ConfigurationError, MemoryUnavailableError
from messor.hookspecs import Register

#: URL query keys that are Messor's, not redis-py's.
MESSOR_OPTIONS = ("namespace", "retry_for")


def open_redis(url: MemoryURL | None, **options: Any) -> Memory:
    """Open ``redis://``, ``rediss://`` or ``unix://`` URLs (bare name: localhost:6379/0).

    Messor's options (``namespace``, ``retry_for``) come from the URL query or
    keyword arguments; every other keyword goes to ``redis.Redis.from_url``.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from messor_redis.memory import DEFAULT_NAMESPACE, RedisMemory

    text = url.unredacted() if url is not None else "redis://localhost:6379/0"
    shown = str(url) if url is not None else text
    ours: dict[str, Any] = {}
    for key in MESSOR_OPTIONS:
        if url is not None and key in url.query:
            if key in options:
                raise ConfigurationError(f"Give {key} in the URL {shown} or as {key}=, not both")
            ours[key] = url.query[key]
        elif key in options:
            ours[key] = options.pop(key)
    try:
        retry_for = float(ours.get("retry_for", 30.0))
    except ValueError:
        raise ConfigurationError(
            f"retry_for must be a number of seconds, got {ours['retry_for']!r}"
        ) from None
    # Retries are RedisMemory's, bounded in time; the client's own would stack on them.
    client = redis.Redis.from_url(
        _without_query_keys(text, MESSOR_OPTIONS),
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
        **options,
    )
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        client.close()
        raise MemoryUnavailableError(f"Redis at {shown} refused the credentials: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        client.close()
        raise MemoryUnavailableError(
            f"Cannot connect to Redis at {_where(url)} ({shown}): {exc}. "
            "Is the server running, and are host, port and password right?"
        ) from None
    return RedisMemory(
        client,
        ours.get("namespace", DEFAULT_NAMESPACE),
        retry_for=retry_for,
        display=shown,
    )


def _where(url: MemoryURL | None) -> str:
    if url is None:
        return "localhost:6379"
    if url.scheme == "unix":
        return url.path
    return f"{url.host or 'localhost'}:{url.port or 6379}"


def _without_query_keys(text: str, keys: tuple[str, ...]) -> str:
    """``text`` without the query items named ``keys`` (redis-py fails late on unknown ones)."""
    base, question, query = text.partition("?")
    if not question:
        return text
    kept = [item for item in query.split("&") if item.partition("=")[0] not in keys]
    return f"{base}?{'&'.join(kept)}" if kept else base


@hookimpl
def register_memories(register: Register) -> None:
    """Offer the Redis memory, for redis://, rediss:// and unix:// URLs."""
    register(
        "redis",
        open_redis,
        schemes=["rediss", "unix"],
        description="a Redis database (messor-redis)",
    )
