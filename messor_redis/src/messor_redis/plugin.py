"""The ``messor`` entry point of messor-redis: registers the ``redis`` memory.

Importing this module imports neither redis-py nor the memory: listing the
installed backends stays cheap, and a broken redis install only matters to
those who open a Redis memory.
"""

from __future__ import annotations

import difflib
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from messor.plugin import (
    ConfigurationError,
    Memory,
    MemoryUnavailableError,
    MemoryURL,
    Register,
    hookimpl,
)

if TYPE_CHECKING:
    import redis

    from messor_redis.memory import RedisMemory

#: Namespaces an error names when the one asked for holds nothing.
SHOWN = 5
#: URL query keys that are Messor's, not redis-py's.
MESSOR_OPTIONS = ("namespace", "retry_for", "claim_seconds")
#: Client settings unless the URL or the caller sets them: a network that
#: silently drops packets must end in a timeout, never in a hang.
CLIENT_DEFAULTS = {
    "socket_timeout": 10.0,
    "socket_connect_timeout": 10.0,
    "health_check_interval": 30,
}
#: Only TCP connections have keepalive probes (unix sockets do not take the option).
TCP_DEFAULTS = {"socket_keepalive": True}


def open_redis(url: MemoryURL | None, *, create: bool = True, **options: Any) -> Memory:
    """Open ``redis://``, ``rediss://`` or ``unix://`` URLs, or by bare name (keywords only).

    Messor's options (``namespace``, ``retry_for``, ``claim_seconds``) come from
    the URL query or keyword arguments; every other keyword goes to redis-py.
    With ``create=False`` (the command line inspecting a harvest) a namespace
    that holds no task is a ConfigurationError naming the namespaces that do:
    a mistyped one would otherwise show as an empty harvest.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from messor_redis.claim import CLAIM_SECONDS
    from messor_redis.memory import (
        DEFAULT_NAMESPACE,
        MAX_VALUE_BYTES,
        RedisMemory,
        check_namespace,
    )

    ours = _messor_options(url, options)
    namespace = check_namespace(ours.get("namespace", DEFAULT_NAMESPACE))
    retry_for = _seconds(ours, "retry_for", 30.0)
    claim_seconds = _seconds(ours, "claim_seconds", CLAIM_SECONDS)
    tcp = url is None or url.scheme != "unix"
    settings = {
        **CLIENT_DEFAULTS,
        **(TCP_DEFAULTS if tcp else {}),
        **options,
        "decode_responses": True,
        # Retries are RedisMemory's, bounded in time; the client's own would stack on them.
        "retry": Retry(NoBackoff(), 0),
    }
    try:
        if url is None:
            client = redis.Redis(**settings)
        else:
            client = redis.Redis.from_url(_without_query_keys(url.unredacted()), **settings)
    except TypeError as exc:
        raise ConfigurationError(f"redis-py does not take these options: {exc}") from None
    try:
        memory = RedisMemory(
            client,
            namespace,
            retry_for=retry_for,
            claim_seconds=claim_seconds,
            display=str(url) if url is not None else None,
        )
        _check_connection(client, memory, retry_for)
        memory.max_result_bytes = _max_value_bytes(client, MAX_VALUE_BYTES)
        if not create:
            _refuse_empty(memory)
    except BaseException:
        client.close()
        raise
    return memory


def _seconds(ours: dict[str, Any], key: str, default: float) -> float:
    try:
        return float(ours.get(key, default))
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number of seconds, got {ours[key]!r}") from None


def _messor_options(url: MemoryURL | None, options: dict[str, Any]) -> dict[str, Any]:
    """Take Messor's own options out of the URL query and ``options`` (not both, not twice)."""
    given: dict[str, list[str]] = {}
    if url is not None:
        _, _, query = url.unredacted().partition("?")
        for item in filter(None, query.split("&")):
            key, _, value = item.partition("=")
            given.setdefault(unquote_plus(key), []).append(unquote_plus(value))
    ours: dict[str, Any] = {}
    for key in MESSOR_OPTIONS:
        values = given.get(key, [])
        if len(values) > 1:
            raise ConfigurationError(f"{key} is given {len(values)} times in the URL {url}")
        if values and key in options:
            raise ConfigurationError(f"Give {key} in the URL {url} or as {key}=, not both")
        if values:
            ours[key] = values[0]
        elif key in options:
            ours[key] = options.pop(key)
    return ours


def _without_query_keys(text: str) -> str:
    """``text`` without Messor's query options: redis-py fails late on keys it does not know."""
    base, question, query = text.partition("?")
    if not question:
        return text
    kept = [
        item
        for item in query.split("&")
        if unquote_plus(item.partition("=")[0]) not in MESSOR_OPTIONS
    ]
    return f"{base}?{'&'.join(kept)}" if kept else base


def _check_connection(client: redis.Redis, memory: RedisMemory, retry_for: float) -> None:
    """PING: fail at once if nobody answers; wait up to ``retry_for`` for a server still loading."""
    import redis

    deadline = time.monotonic() + retry_for
    while True:
        try:
            client.ping()
            return
        except redis.BusyLoadingError:
            if time.monotonic() > deadline:
                raise MemoryUnavailableError(
                    f"Redis at {memory.location} is still loading its data after {retry_for:g} s"
                ) from None
            time.sleep(0.2)
        except redis.AuthenticationError as exc:
            raise MemoryUnavailableError(
                f"Redis at {memory.location} refused the credentials: {exc}"
            ) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            reason = str(exc).rstrip(".")
            raise MemoryUnavailableError(
                f"Cannot connect to Redis at {memory.location}: {reason}. "
                "Is the server running, and are host, port and password right?"
            ) from None
        except TypeError as exc:  # an unknown option, which redis-py uses only now
            raise ConfigurationError(f"redis-py does not take these options: {exc}") from None


def _refuse_empty(memory: RedisMemory) -> None:
    """Raise ConfigurationError if ``memory``'s namespace holds no task, naming those that do."""
    if any(memory.count_by_status().values()):
        return
    message = (
        f"There is no harvest in namespace {memory.namespace!r} of Redis at {memory.location}: "
        "nothing is recorded there (nothing ever was, or it was cleared)"
    )
    others = memory.namespaces_with_tasks()
    if not others:
        raise ConfigurationError(
            f"{message}, nor in any other namespace of this database: is the database right?"
        )
    # The closest first; a shared database may hold many.
    shown = difflib.get_close_matches(memory.namespace, others, n=SHOWN, cutoff=0)
    more = ", ..." if len(others) > len(shown) else ""
    message += f". Namespaces holding one: {', '.join(shown)}{more}"
    close = difflib.get_close_matches(memory.namespace, others, n=1)
    if close:
        message += f"; did you mean namespace {close[0]!r} (?namespace={close[0]})?"
    raise ConfigurationError(message)


def _max_value_bytes(client: redis.Redis, default: int) -> int:
    """The server's proto-max-bulk-len, where CONFIG may be read (managed services forbid it)."""
    import redis

    try:
        reply: Any = client.config_get("proto-max-bulk-len")
        return min(default, int(reply["proto-max-bulk-len"]))
    except (redis.ResponseError, KeyError, ValueError):
        return default


@hookimpl
def register_memories(register: Register) -> None:
    """Offer the Redis memory, for redis://, rediss:// and unix:// URLs."""
    register(
        "redis",
        open_redis,
        schemes=["rediss", "unix"],
        description="a Redis database (messor-redis)",
    )
