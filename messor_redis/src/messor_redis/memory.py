"""``RedisMemory``: a Messor memory in one namespace of a Redis database.

It implements the five primitives of :class:`~messor.plugin.Memory`, which
derives every other method from them, and counts and looks statuses up
itself. Writes and scans go through the Lua scripts of
:mod:`messor_redis.scripts` (atomic per call, one round trip per batch or
page); look-ups read hashes, counts one set per status: nothing ever scans
the database. A connection lost mid-run is retried with backoff for
``retry_for`` seconds, then :class:`~messor.MemoryUnavailableError` ends the
run; every operation is idempotent, so a call retried after a lost reply
leaves the same state. While a run holds the namespace's claim, every write
of this memory is fenced by it: once the claim is lost, a write fails with
:class:`~messor.ClaimLostError` and changes nothing.
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

from messor.plugin import (
    STATUSES,
    ClaimLostError,
    ConfigurationError,
    EncodedUpdate,
    Memory,
    MemoryUnavailableError,
    Release,
    Row,
    RunOwner,
    TaskDataError,
    TaskNotFoundError,
    UpdateRule,
    claim_lost,
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
#: Task ids per read command, and tasks per page of a scan.
CHUNK = 1000
#: Task ids a call of a scan by status looks at, at most: a rare status costs a few
#: round trips per hundred thousand tasks, and each call blocks Redis only briefly.
SCAN_BUDGET = 20_000
#: Tasks per script call: a writer's whole batch, and a script blocks Redis only briefly.
ROWS_PER_CALL = 5000
#: Bytes of values per script call: far below Redis's 1 GB query buffer.
CALL_BYTES = 32 * 1024 * 1024
#: Redis refuses larger values (proto-max-bulk-len, unless the server says otherwise).
MAX_VALUE_BYTES = 512 * 1024 * 1024
#: Keys a search for the namespaces that hold tasks looks at, at most.
NAMESPACE_SCAN = 100_000


class RedisMemory(Memory):
    """A memory in namespace ``namespace`` of the database ``client`` talks to.

    ``client`` must decode responses (``decode_responses=True``); most users
    open one with ``messor.open_memory("redis://host:6379/0?namespace=name")``.
    ``claim_seconds``: how long a run's claim on the namespace outlives its
    last renewal: a run that dies elsewhere frees the namespace that much
    later, and a run paused that long loses its claim. ``max_result_bytes``:
    the largest value the server takes; ``open_memory`` reads it from the
    server (its proto-max-bulk-len).
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
        max_result_bytes: int = MAX_VALUE_BYTES,
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
        #: The largest value the server takes (its proto-max-bulk-len): results (which the
        #: base class checks), task data and error texts (checked here) alike.
        self.max_result_bytes: int | None = max_result_bytes
        self._prefix = f"messor:{{{namespace}}}:"
        self._display = display or _describe(client)
        self._insert = client.register_script(scripts.INSERT)
        self._update = client.register_script(scripts.UPDATE)
        self._scan = client.register_script(scripts.SCAN)
        self._delete = client.register_script(scripts.DELETE)
        self._delete_all = client.register_script(scripts.DELETE_ALL)
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

    # -- the primitives ---------------------------------------------------------

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        for task_id, data in tasks:
            self._check_size(task_id, data, "data")
        calls = [
            [value for row in chunk for value in row]
            for chunk in _chunks(tasks, lambda row: len(row[0]) + len(row[1]))
        ]
        if calls:
            self._run(self._insert, calls)

    def update(
        self, changes: Sequence[EncodedUpdate], rule: UpdateRule = UpdateRule.OVERWRITE
    ) -> list[str]:
        # One script judges each change on the status it finds and applies it
        # in the same step: a task another run completes meanwhile is judged
        # either before its completion or after.
        for change in changes:
            if change.error is not None:
                self._check_size(change.task_id, change.error, "error")
        rules = scripts.rule_args(rule)
        chunks = list(_chunks(changes, lambda c: len(c.result_json or "") + len(c.error or "")))
        calls = []
        for chunk in chunks:
            args = list(rules)
            for task_id, status, result, error, attempts in chunk:
                args += [task_id, status, result or "", "n" if error is None else "s" + error]
                args.append(str(attempts))
            calls.append(args)
        if len(calls) > 1 and rule.missing == "raise":
            # The calls of one MULTI apply whole, but each checks only its own
            # ids: check them all first, so that an unknown one changes nothing.
            known = self.get_statuses(change.task_id for change in changes)
            for change in changes:
                if change.task_id not in known:
                    raise TaskNotFoundError(change.task_id)
        changed = []
        replies = self._run(self._update, calls) if calls else []
        for chunk, reply in zip(chunks, replies, strict=True):
            if reply[0] == 0:
                raise TaskNotFoundError(reply[1])
            skipped = set(reply[1:])
            changed += [c.task_id for k, c in enumerate(chunk, 1) if k not in skipped]
        return changed

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        if not results:
            return {i: Row(i, status) for i, status in self.get_statuses(task_ids).items()}
        rows: dict[str, Row] = {}
        for start in range(0, len(task_ids), CHUNK):
            chunk = task_ids[start : start + CHUNK]

            def read(chunk: Sequence[str] = chunk) -> list[Any]:
                pipe = self.client.pipeline(transaction=True)
                for name in ("status", "result", "error", "attempts"):
                    pipe.hmget(self._key(name), chunk)
                return pipe.execute()

            columns = zip(chunk, *self._call(read), strict=True)
            for task_id, status, result, error, attempts in columns:
                if status is not None:
                    rows[task_id] = Row(task_id, status, result, error, int(attempts or 0))
        return rows

    def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
        """Every task (or those with ``status``), a page at a time (see ``scripts.SCAN``).

        Each page is read in one step, so every row is a state the task
        really had; like every Redis SCAN, a task changed while the scan
        runs may be yielded twice, or not in its latest state.
        """
        keys = [self._key("status")]
        wanted = [] if status is None else [status]
        width = 6 if data else 5
        cursor = "0"
        while True:
            args = [self._prefix, cursor, CHUNK, SCAN_BUDGET, "1" if data else "0", *wanted]
            cursor, *page = self._call(partial(self._scan, keys=keys, args=args))
            for start in range(0, len(page), width):
                task_id, now, result, error, attempts = page[start : start + 5]
                text = page[start + 5] if data else None
                yield Row(task_id, now, result, error, int(attempts or 0), None, text)
            if cursor == "0":
                return

    def delete(self, task_ids: Iterable[str] | None) -> None:
        if task_ids is None:
            self._run(self._delete_all, [[]])
            return
        calls = list(_chunks(list(task_ids), len))
        if calls:
            self._run(self._delete, calls)

    # -- faster than the base class's defaults ------------------------------------

    def count_by_status(self) -> dict[str, int]:
        # One SCARD per status, where the base class would scan every task (results too):
        # what every run, `messor status` and the dashboard call.

        def read() -> dict[str, int]:
            members: Any = self.client.smembers(self._key("statuses"))
            statuses: list[str] = sorted(members)
            pipe = self.client.pipeline(transaction=True)
            for status in statuses:
                pipe.scard(self._key("ids:" + status))
            return dict(zip(statuses, pipe.execute(), strict=True))

        counts = dict.fromkeys(STATUSES, 0)
        # A status no task has any more is not counted (its set is gone, its name stays).
        counts.update((status, n) for status, n in self._call(read).items() if n)
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        # What a run calls for every task it is given: without a Row per task
        # (the base class's, on lookup) it looks 100,000 tasks up about 12% faster.
        statuses: dict[str, str] = {}
        ids = iter(task_ids)
        while chunk := list(islice(ids, CHUNK)):
            found = self._call(partial(self.client.hmget, self._key("status"), chunk))
            statuses.update((i, s) for i, s in zip(chunk, found, strict=True) if s is not None)
        return statuses

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

    def _check_size(self, task_id: str, text: str, what: str) -> None:
        """Refuse task data or an error text the server would refuse (results: the base class)."""
        limit = self.max_result_bytes
        # JSON from encode_json is ASCII, its length its size; an error text may not be.
        size = len(text.encode()) if what == "error" else len(text)
        if limit is not None and size > limit:
            raise TaskDataError(
                f"The {what} of task {task_id!r} is {size} bytes, more than this Redis server "
                f"takes in one value ({limit} bytes, its proto-max-bulk-len); "
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
