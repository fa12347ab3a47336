"""``RedisMemory``: a Messor memory in one namespace of a Redis database.

Writes go through the Lua scripts of :mod:`messor_redis.scripts` (atomic per
call, one round trip per batch); reads use hashes and one set per status, so
listing and counting never scan the database. A connection lost mid-run is
retried with backoff for ``retry_for`` seconds, then
:class:`~messor.MemoryUnavailableError` ends the run; every operation is
idempotent, so a call retried after a lost reply leaves the same state.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import Any, TypeVar

import redis

from messor import Memory, MemoryUnavailableError, TaskNotFoundError
from messor.errors import ConfigurationError, TaskDataError
from messor.memory import (
    COMPLETED,
    FAILED,
    PENDING,
    EncodedUpdate,
    StatusUpdate,
    TaskRecord,
    decode_json,
    encode_tasks,
    encode_update,
)
from messor_redis import scripts

__all__ = ["RedisMemory"]

logger = logging.getLogger("messor")

T = TypeVar("T")

DEFAULT_NAMESPACE = "default"
#: Task ids per command or script call.
CHUNK = 1000
#: Bytes of values per script call: far below Redis's 1 GB query buffer.
CALL_BYTES = 32 * 1024 * 1024
#: Redis refuses larger values (proto-max-bulk-len).
MAX_VALUE_BYTES = 512 * 1024 * 1024


class RedisMemory(Memory):
    """A memory in namespace ``namespace`` of the database ``client`` talks to.

    ``client`` must decode responses (``decode_responses=True``); most users
    open one with ``messor.open_memory("redis://host:6379/0?namespace=name")``.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        retry_for: float = 30.0,
        display: str | None = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace or set(namespace) & set("{}"):
            raise ConfigurationError(
                f"A Redis namespace is a non-empty string without braces, got {namespace!r}"
            )
        if not client.get_encoder().decode_responses:
            raise ConfigurationError("RedisMemory needs a client made with decode_responses=True")
        self.client = client
        self.namespace = namespace
        self.retry_for = retry_for
        self._prefix = f"messor:{{{namespace}}}:"
        self._display = display or _describe(client)
        self._store = client.register_script(scripts.STORE_TASKS)
        self._update_script = client.register_script(scripts.UPDATE_STATUSES)
        self._clear_tasks = client.register_script(scripts.CLEAR_TASKS)
        self._clear = client.register_script(scripts.CLEAR)

    def __repr__(self) -> str:
        return f"RedisMemory({self._display!r}, namespace={self.namespace!r})"

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _run(self, script: Any, args: list[str]) -> Any:
        return self._call(lambda: script(keys=[self._key("status")], args=[self._prefix, *args]))

    def _call(self, operation: Callable[[], Any]) -> Any:
        """Run ``operation``, retrying a lost connection with backoff for ``retry_for`` seconds.

        Replies are Any: redis-py's types cannot tell that this client decodes to str.
        """
        deadline: float | None = None
        delay = 0.05
        while True:
            try:
                return operation()
            except redis.AuthenticationError as exc:
                raise MemoryUnavailableError(
                    f"Redis at {self._display} refused the credentials: {exc}"
                ) from None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.retry_for
                    logger.warning(
                        "Redis at %s: %s; retrying for %gs", self._display, exc, self.retry_for
                    )
                if now >= deadline:
                    raise MemoryUnavailableError(
                        f"Redis at {self._display} could not be reached for {self.retry_for:g} s "
                        f"({exc}); everything recorded before is intact"
                    ) from None
                time.sleep(min(delay * random.uniform(0.5, 1.5), deadline - now))
                delay = min(delay * 2, 2.0)

    # -- the seed's methods ---------------------------------------------------

    def store_tasks(self, tasks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        rows = encode_tasks(tasks)
        for task_id, data in rows:
            _check_size(task_id, data, "data")
        for chunk in _chunks(rows, lambda row: len(row[0]) + len(row[1])):
            self._run(self._store, [value for row in chunk for value in row])

    def update_task_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        self._update([encode_update(update) for update in statuses], keep_completed=False)

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        self._update(outcomes, keep_completed=True)

    def _update(self, rows: Sequence[EncodedUpdate], *, keep_completed: bool) -> None:
        for row in rows:
            _check_size(row.task_id, row.result_json or "", "result")
        chunks = list(_chunks(rows, lambda row: len(row.result_json or "") + len(row.error or "")))
        if len(chunks) > 1:
            # Each call is atomic on its own: check every id first, so that an
            # unknown one still changes nothing.
            known = self.get_statuses(row.task_id for row in rows)
            for row in rows:
                if row.task_id not in known:
                    raise TaskNotFoundError(row.task_id)
        for chunk in chunks:
            args = ["1" if keep_completed else "0"]
            for row in chunk:
                error = "n" if row.error is None else "s" + row.error
                args += [row.task_id, row.status, row.result_json or "", error]
            reply = self._run(self._update_script, args)
            if reply[0] == 0:
                raise TaskNotFoundError(reply[1])

    def get_task_status(self, task_id: str) -> str:
        status: str | None = self._call(lambda: self.client.hget(self._key("status"), task_id))
        if status is None:
            raise TaskNotFoundError(task_id)
        return status

    def get_pending_tasks(self) -> list[str]:
        return self._ids(PENDING)

    def get_completed_tasks(self) -> list[str]:
        return self._ids(COMPLETED)

    def get_failed_tasks(self) -> list[tuple[str, str | None]]:
        ids = self._ids(FAILED)
        errors = self._hmget("error", ids)
        return list(zip(ids, errors, strict=True))

    def get_task_result(self, task_id: str) -> Any:
        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.hexists(self._key("status"), task_id)
            pipe.hget(self._key("result"), task_id)
            return pipe.execute()

        known, text = self._call(read)
        if not known:
            raise TaskNotFoundError(task_id)
        return None if text is None else decode_json(text)

    def clear(self) -> None:
        self._run(self._clear, [])

    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        ids = iter(task_ids)
        while chunk := list(islice(ids, CHUNK)):
            self._run(self._clear_tasks, chunk)

    def dump_all(self) -> dict[str, dict[str, Any]]:
        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            for name in ("data", "status", "result", "error"):
                pipe.hgetall(self._key(name))
            return pipe.execute()

        data, status, result, error = self._call(read)
        return {
            "task_definitions": {i: decode_json(text) for i, text in data.items()},
            "task_statuses": status,
            "task_results": {i: decode_json(text) for i, text in result.items()},
            "task_errors": error,
        }

    # -- fast versions of the base class's defaults ----------------------------

    def count_by_status(self) -> dict[str, int]:
        def read() -> dict[str, int]:
            members: Any = self.client.smembers(self._key("statuses"))
            statuses: list[str] = sorted(members)
            pipe = self.client.pipeline(transaction=True)
            for status in statuses:
                pipe.scard(self._key("ids:" + status))
            return dict(zip(statuses, pipe.execute(), strict=True))

        counts = {PENDING: 0, COMPLETED: 0, FAILED: 0}
        counts.update(self._call(read))
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        statuses: dict[str, str] = {}
        ids = iter(task_ids)
        while chunk := list(islice(ids, CHUNK)):
            found = self._hmget("status", chunk)
            statuses.update((i, s) for i, s in zip(chunk, found, strict=True) if s is not None)
        return statuses

    def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
        """Every task (or those with ``status``), page by page.

        Like every Redis SCAN, a task changed while the iteration runs may be
        yielded twice or in its old state; a finished harvest reads exactly.
        """
        cursor = 0
        while True:
            if status is None:
                key = self._key("status")
                cursor, page = self._call(partial(self.client.hscan, key, cursor, count=CHUNK))
                items = list(page.items())
            else:
                key = self._key("ids:" + status)
                cursor, members = self._call(partial(self.client.sscan, key, cursor, count=CHUNK))
                items = [(task_id, status) for task_id in members]
            ids = [task_id for task_id, _ in items]
            results = self._hmget("result", ids)
            errors = self._hmget("error", ids)
            for (task_id, task_status), result, error in zip(items, results, errors, strict=True):
                value = None if result is None else decode_json(result)
                yield TaskRecord(task_id, task_status, value, error)
            if cursor == 0:
                return

    def close(self) -> None:
        self.client.close()

    # -- helpers --------------------------------------------------------------

    def _ids(self, status: str) -> list[str]:
        return list(self._call(lambda: self.client.smembers(self._key("ids:" + status))))

    def _hmget(self, name: str, ids: list[str]) -> list[Any]:
        if not ids:
            return []
        values: list[Any] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            values += self._call(partial(self.client.hmget, self._key(name), chunk))
        return values


def _chunks(rows: Sequence[T], size: Callable[[T], int]) -> Iterator[list[T]]:
    """``rows`` in runs of at most ``CHUNK`` rows and about ``CALL_BYTES`` of values."""
    chunk: list[T] = []
    total = 0
    for row in rows:
        if chunk and (len(chunk) >= CHUNK or total + size(row) > CALL_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(row)
        total += size(row)
    if chunk:
        yield chunk


def _check_size(task_id: str, text: str, what: str) -> None:
    # JSON from encode_json is ASCII: its length is its size in bytes.
    if len(text) > MAX_VALUE_BYTES:
        raise TaskDataError(
            f"The {what} of task {task_id!r} is {len(text)} bytes, more than Redis stores in "
            "one value (512 MB); store large payloads elsewhere and return a reference"
        )


def _describe(client: redis.Redis) -> str:
    """Where ``client`` connects, without credentials."""
    options = client.connection_pool.connection_kwargs
    if options.get("path"):
        return f"unix://{options['path']}?db={options.get('db', 0)}"
    host, port = options.get("host", "localhost"), options.get("port", 6379)
    return f"redis://{host}:{port}/{options.get('db', 0)}"
