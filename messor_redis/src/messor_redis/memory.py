"""``RedisMemory``: a Messor memory in one namespace of a Redis database.

Writes go through the Lua scripts of :mod:`messor_redis.scripts` (atomic per
call, one round trip per batch); reads use hashes and one set per status, so
listing and counting never scan the database. A connection lost mid-run is
retried with backoff for ``retry_for`` seconds, then
:class:`~messor.MemoryUnavailableError` ends the run; every operation is
idempotent, so a call retried after a lost reply leaves the same state.
While a run holds the namespace's claim, every write of this memory is fenced
by it: once the claim is lost, a write fails with
:class:`~messor.ClaimLostError` and changes nothing.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import Any, TypeVar

import redis

from messor.plugin import (
    COMPLETED,
    FAILED,
    PENDING,
    ClaimLostError,
    ConfigurationError,
    EncodedUpdate,
    Memory,
    MemoryUnavailableError,
    Release,
    RunOwner,
    StatusUpdate,
    TaskDataError,
    TaskNotFoundError,
    TaskRecord,
    claim_lost,
    decode_json,
    encode_tasks,
    encode_update,
)
from messor_redis import scripts
from messor_redis.claim import CLAIM_SECONDS, LONGER, claim_namespace

__all__ = ["RedisMemory"]

logger = logging.getLogger("messor")

T = TypeVar("T")

# Errors of a node that stopped being the primary (a failover): the write was
# refused whole, and reconnecting finds the new primary.
_FAILOVER = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
)

DEFAULT_NAMESPACE = "default"
#: Task ids per read command.
CHUNK = 1000
#: Tasks per script call: a writer's whole batch, and a script blocks Redis only briefly.
ROWS_PER_CALL = 5000
#: Bytes of values per script call: far below Redis's 1 GB query buffer.
CALL_BYTES = 32 * 1024 * 1024
#: Redis refuses larger values (proto-max-bulk-len).
MAX_VALUE_BYTES = 512 * 1024 * 1024
#: Keys a search for the namespaces that hold tasks looks at, at most.
NAMESPACE_SCAN = 100_000


class RedisMemory(Memory):
    """A memory in namespace ``namespace`` of the database ``client`` talks to.

    ``client`` must decode responses (``decode_responses=True``); most users
    open one with ``messor.open_memory("redis://host:6379/0?namespace=name")``.
    ``claim_seconds``: how long a run's claim on the namespace outlives its
    last renewal: a run that dies elsewhere frees the namespace that much
    later, and a run paused that long loses its claim.
    """

    claims_runs = True

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        retry_for: float = 30.0,
        claim_seconds: float = CLAIM_SECONDS,
        display: str | None = None,
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> None:
        check_namespace(namespace)
        if not (isinstance(retry_for, int | float) and 0 <= retry_for < float("inf")):
            raise ConfigurationError(
                f"retry_for must be a number of seconds >= 0, got {retry_for!r}"
            )
        if not (isinstance(claim_seconds, int | float) and 0.1 <= claim_seconds < float("inf")):
            raise ConfigurationError(
                f"claim_seconds must be a number of seconds >= 0.1, got {claim_seconds!r}"
            )
        if not client.get_encoder().decode_responses:
            raise ConfigurationError("RedisMemory needs a client made with decode_responses=True")
        self.client = client
        self.namespace = namespace
        self.retry_for = float(retry_for)
        self.claim_seconds = float(claim_seconds)
        #: The largest value the server takes (its proto-max-bulk-len).
        self.max_value_bytes = max_value_bytes
        self._prefix = f"messor:{{{namespace}}}:"
        self._display = display or _describe(client)
        self._store = client.register_script(scripts.STORE_TASKS)
        self._update_script = client.register_script(scripts.UPDATE_STATUSES)
        self._clear_tasks = client.register_script(scripts.CLEAR_TASKS)
        self._clear = client.register_script(scripts.CLEAR)
        self._reset = client.register_script(scripts.RESET_TASKS)
        self._write_beat = client.register_script(scripts.WRITE_BEAT)
        self._delete_beats = client.register_script(scripts.DELETE_BEATS)
        #: The claim of the run of this memory that writes now ("": no run, no fence).
        self._fence = ""

    def __repr__(self) -> str:
        return f"RedisMemory({self._display!r}, namespace={self.namespace!r})"

    @property
    def location(self) -> str:
        """Where the server is: the URL without its password, for messages."""
        return self._display

    def claim_run(self, owner: RunOwner) -> Release:
        # messor:{ns}:run is not among the keys clear() removes: clearing
        # the namespace during a run leaves the run's claim in place.
        release = claim_namespace(
            self, self._key("run"), owner, self._call, seconds=self.claim_seconds
        )
        fence = self._fence = owner.to_json()

        def release_and_unfence() -> None:
            release()
            if self._fence == fence:
                self._fence = ""

        return release_and_unfence

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _run(self, script: Any, calls: list[list[str]]) -> list[Any]:
        """Run ``script`` once per argument list: one call, or several in one MULTI/EXEC.

        Either way the whole batch applies or none of it does, also when the
        connection is lost between two calls.
        """
        keys = [self._key("status")]
        fence = self._fence
        try:
            if len(calls) == 1:
                return [
                    self._call(lambda: script(keys=keys, args=[self._prefix, fence, *calls[0]]))
                ]

            def in_one_transaction() -> list[Any]:
                pipe = self.client.pipeline(transaction=True)
                for args in calls:
                    script(keys=keys, args=[self._prefix, fence, *args], client=pipe)
                replies: list[Any] = pipe.execute()
                return replies

            result: list[Any] = self._call(in_one_transaction)
            return result
        except redis.ResponseError as exc:
            # In a transaction, redis-py puts the failed command before the script's error.
            if not str(exc).rpartition("caused error: ")[2].startswith(scripts.CLAIM_LOST):
                raise
            raise self._claim_lost() from None

    def _claim_lost(self) -> ClaimLostError:
        try:
            holder = RunOwner.from_json(self.client.get(self._key("run")))
        except redis.RedisError:
            holder = None
        return claim_lost(self, self.claim_seconds, holder, longer=LONGER)

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
            except (redis.ConnectionError, redis.TimeoutError, *_FAILOVER) as exc:
                if isinstance(exc, _FAILOVER):
                    # Our connections point at a node that is no primary any
                    # more: reconnect. The write was refused whole, so retry it.
                    self.client.connection_pool.disconnect()
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
            self._check_size(task_id, data, "data")
        calls = [
            [value for row in chunk for value in row]
            for chunk in _chunks(rows, lambda row: len(row[0]) + len(row[1]))
        ]
        if calls:
            self._run(self._store, calls)

    def update_task_statuses(self, statuses: Sequence[StatusUpdate]) -> None:
        self._update([encode_update(update) for update in statuses], keep_completed=False)

    def record_outcomes(self, outcomes: Sequence[EncodedUpdate]) -> None:
        self._update(outcomes, keep_completed=True)

    def _update(self, rows: Sequence[EncodedUpdate], *, keep_completed: bool) -> None:
        for row in rows:
            self._check_size(row.task_id, row.result_json or "", "result")
            self._check_size(row.task_id, row.error or "", "error")
        calls = []
        for chunk in _chunks(rows, lambda row: len(row.result_json or "") + len(row.error or "")):
            args = ["1" if keep_completed else "0"]
            for row in chunk:
                error = "n" if row.error is None else "s" + row.error
                args += [row.task_id, row.status, row.result_json or "", error, str(row.attempts)]
            calls.append(args)
        if len(calls) > 1:
            # The calls of one MULTI apply whole, but each checks only its own
            # ids: check them all first, so that an unknown one changes nothing.
            known = self.get_statuses(row.task_id for row in rows)
            for row in rows:
                if row.task_id not in known:
                    raise TaskNotFoundError(row.task_id)
        for reply in self._run(self._update_script, calls) if calls else []:
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
        return [(r.task_id, r.error) for r in self._records(self._ids(FAILED), FAILED)]

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
        self._run(self._clear, [[]])

    def clear_tasks(self, task_ids: Iterable[str]) -> None:
        ids = iter(task_ids)
        while chunk := list(islice(ids, CHUNK)):
            self._run(self._clear_tasks, [chunk])

    def reset_tasks(self, task_ids: Iterable[str], *, only_from: Collection[str]) -> list[str]:
        # One script checks each status and resets in the same step: a task a
        # run completes meanwhile is either completed before it (and kept) or after.
        ids = list(dict.fromkeys(task_ids))
        statuses = sorted(set(only_from))
        calls = [[str(len(statuses)), *statuses, *chunk] for chunk in _chunks(ids, len)]
        replies = self._run(self._reset, calls) if ids and statuses else []
        return [task_id for reply in replies for task_id in reply]

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
        # A status no task has any more is not counted (its set is gone, its name stays).
        counts.update((status, n) for status, n in self._call(read).items() if n)
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        statuses: dict[str, str] = {}
        ids = iter(task_ids)
        while chunk := list(islice(ids, CHUNK)):
            found = self._call(partial(self.client.hmget, self._key("status"), chunk))
            statuses.update((i, s) for i, s in zip(chunk, found, strict=True) if s is not None)
        return statuses

    def iter_records(self, status: str | None = None) -> Iterator[TaskRecord]:
        """Every task (or those with ``status``), a page at a time.

        Each page is read in one transaction, so every record is a state the
        task really had; like every Redis SCAN, a task changed while the
        iteration runs may be yielded twice, or not in its latest state.
        """
        cursor = 0
        while True:
            if status is None:
                key = self._key("status")
                cursor, page = self._call(partial(self.client.hscan, key, cursor, count=CHUNK))
                ids = list(page)
            else:
                key = self._key("ids:" + status)
                cursor, ids = self._call(partial(self.client.sscan, key, cursor, count=CHUNK))
            yield from self._records(ids, status)
            if cursor == 0:
                return

    def close(self) -> None:
        self.client.close()

    def namespaces_with_tasks(self) -> list[str]:
        """The namespaces of this database that hold tasks, this one too if it does.

        One bounded SCAN (at most :data:`NAMESPACE_SCAN` keys looked at): what
        the command line suggests for a mistyped namespace, not a census.
        """
        head, tail = "messor:{", "}:status"  # the status hash of each namespace (see _key)
        found: set[str] = set()
        cursor, looked = 0, 0
        while True:
            cursor, keys = self._call(
                partial(self.client.scan, cursor, match=f"{head}*{tail}", count=CHUNK)
            )
            found.update(key[len(head) : -len(tail)] for key in keys)
            looked += CHUNK
            if cursor == 0 or looked >= NAMESPACE_SCAN:
                return sorted(found)

    # -- run heartbeats --------------------------------------------------------

    keeps_beats = True

    def write_beat(self, run_id: str, beat_json: str) -> None:
        self._run(self._write_beat, [[run_id, beat_json]])

    def read_beats(self) -> dict[str, str]:
        beats: dict[str, str] = self._call(lambda: self.client.hgetall(self._key("beats")))
        return beats

    def delete_beats(self, run_ids: Iterable[str]) -> None:
        ids = list(run_ids)
        for start in range(0, len(ids), CHUNK):
            self._run(self._delete_beats, [ids[start : start + CHUNK]])

    # -- helpers --------------------------------------------------------------

    def _ids(self, status: str) -> list[str]:
        return list(self._call(lambda: self.client.smembers(self._key("ids:" + status))))

    def _records(self, ids: list[str], status: str | None) -> Iterator[TaskRecord]:
        """The records of ``ids`` that still exist (and still have ``status``, if given)."""
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]

            def read(chunk: list[str] = chunk) -> list[Any]:
                pipe = self.client.pipeline(transaction=True)
                for name in ("status", "result", "error", "attempts"):
                    pipe.hmget(self._key(name), chunk)
                return pipe.execute()

            columns = zip(chunk, *self._call(read), strict=True)
            for task_id, now, result, error, attempts in columns:
                if now is not None and (status is None or now == status):
                    value = None if result is None else decode_json(result)
                    yield TaskRecord(task_id, now, value, error, int(attempts or 0))

    def _check_size(self, task_id: str, text: str, what: str) -> None:
        # JSON from encode_json is ASCII, its length its size; an error text may not be.
        size = len(text.encode()) if what == "error" else len(text)
        if size > self.max_value_bytes:
            raise TaskDataError(
                f"The {what} of task {task_id!r} is {size} bytes, more than this Redis server "
                f"takes in one value ({self.max_value_bytes} bytes, its proto-max-bulk-len); "
                "store large payloads elsewhere and return a reference"
            )


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it can name a key prefix, else raise ConfigurationError."""
    if not isinstance(namespace, str) or not namespace or set(namespace) & set("{}"):
        raise ConfigurationError(
            f"A Redis namespace is a non-empty string without braces, got {namespace!r}"
        )
    return namespace


def _chunks(rows: Sequence[T], size: Callable[[T], int]) -> Iterator[list[T]]:
    """``rows`` in runs of at most ``ROWS_PER_CALL`` rows and about ``CALL_BYTES`` of values."""
    chunk: list[T] = []
    total = 0
    for row in rows:
        if chunk and (len(chunk) >= ROWS_PER_CALL or total + size(row) > CALL_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(row)
        total += size(row)
    if chunk:
        yield chunk


def _describe(client: redis.Redis) -> str:
    """Where ``client`` connects, without credentials."""
    options = client.connection_pool.connection_kwargs
    if options.get("path"):
        return f"unix://{options['path']}?db={options.get('db', 0)}"
    host, port = options.get("host", "localhost"), options.get("port", 6379)
    return f"redis://{host}:{port}/{options.get('db', 0)}"
