"""``SQLiteMemory``: the default memory, one table in a SQLite file.

One connection serves all threads behind a lock: SQLite serialises writers
anyway, and a ``":memory:"`` database exists only on the connection that made
it. Files use WAL with ``synchronous=NORMAL``: a commit survives the process
being killed at any instant (a power cut may lose the last commits, never the
file's consistency), and commits are cheap enough that the executor's batched
writes keep up with tens of thousands of tasks per second.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from messor.errors import (
    ConfigurationError,
    MemoryUnavailableError,
    MessorError,
    ResultTooLargeError,
    TaskNotFoundError,
)
from messor.memories.base import (
    STATUSES,
    EncodedUpdate,
    Memory,
    Row,
    UpdateRule,
    changes_to_apply,
)
from messor.memories.claims import FileClaim, LocalClaim, Release, RunOwner

__all__ = ["DEFAULT_FILE", "SQLiteMemory"]

logger = logging.getLogger("messor")

#: The file a harvest uses when nothing else is configured.
DEFAULT_FILE = "messor.db"

SCHEMA_VERSION = 4
#: Seconds a write waits for another connection's write lock before it fails.
BUSY_TIMEOUT = 30.0
# Host parameters per statement stay well under SQLite's limit (32766).
_IDS_PER_QUERY = 500
_ROWS_PER_PAGE = 1000

_CREATE_TABLE = """
CREATE TABLE messor_tasks (
    id       TEXT PRIMARY KEY NOT NULL,
    data     TEXT NOT NULL,
    status   TEXT NOT NULL,
    result   TEXT,
    error    TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated  REAL
)
"""
_CREATE_INDEX = "CREATE INDEX IF NOT EXISTS messor_tasks_by_status ON messor_tasks (status)"
#: v4: each run's latest heartbeat (see messor.run.heartbeat), one small row per run.
_CREATE_BEATS = (
    "CREATE TABLE IF NOT EXISTS messor_beats (run_id TEXT PRIMARY KEY NOT NULL, beat TEXT NOT NULL)"
)
#: The columns of schema version 1, which every later version kept.
_FIRST_COLUMNS = ("id", "data", "status", "result", "error")
#: The columns each later version added, in order, and what adds each.
_ADDED_COLUMNS = {
    "attempts": "ALTER TABLE messor_tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",  # v2
    "updated": "ALTER TABLE messor_tasks ADD COLUMN updated REAL",  # v3
}


class SQLiteMemory(Memory):
    """A memory in a SQLite file, or in RAM with ``":memory:"``.

    The file and its directory are created unless ``create`` is False, when a
    missing file is a :class:`~messor.errors.ConfigurationError` (for tools
    that inspect a harvest, where a new empty file would only hide a typo).
    A directory created is logged as a warning on the ``messor`` logger: a
    mistyped path shows at once, not as a harvest that went elsewhere.
    """

    keeps_times = True
    claims_runs = True
    #: SQLite's limit on one value (SQLITE_LIMIT_LENGTH, as Python's sqlite3 is built).
    max_result_bytes = 1_000_000_000

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._local_claim = LocalClaim()
        self._conn = self._connect(create)

    def _connect(self, create: bool) -> sqlite3.Connection:
        in_ram = self.path == ":memory:"
        if not (create or in_ram or Path(self.path).is_file()):
            raise ConfigurationError(
                f"There is no SQLite memory at {self.path}: no harvest has run with it"
            )
        try:
            if not in_ram:
                _make_directory(Path(self.path))
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"Cannot open the SQLite file {self.path} ({exc}); "
                "check that the path names a file in a directory you can write"
            ) from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path} has schema version {version}, and this Messor reads up to "
                    f"{SCHEMA_VERSION}: it was written by a newer Messor (upgrade messor) "
                    "or is another program's database (use another file)"
                )
            if not in_ram:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    # Some file systems (network shares) refuse WAL; the file
                    # still works, with slower commits.
                    logger.warning(
                        "%s: SQLite kept journal mode %r instead of WAL", self.path, mode
                    )
                conn.execute("PRAGMA synchronous=NORMAL")
            self._set_up_schema(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._file_error(exc, opening=True) or ConfigurationError(
                f"{self.path} cannot be used as a Messor SQLite memory ({exc}); "
                "point the memory at a new file or at a database Messor created"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_up_schema(self, conn: sqlite3.Connection) -> None:
        """Create the table, or bring an older one up to date, and stamp its version.

        The version is read from the table's columns, not from ``user_version``:
        ``sqlite3 .dump`` and many backup tools restore a file with
        ``user_version`` 0, whatever the schema of the table. IMMEDIATE, as in
        ``_transaction``: two processes opening an old file never both add a column.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(messor_tasks)")]
            if not columns:
                conn.execute(_CREATE_TABLE)
            else:
                self._check_columns(columns)
                for name, add_column in _ADDED_COLUMNS.items():
                    if name not in columns:
                        conn.execute(add_column)
            conn.execute(_CREATE_INDEX)
            conn.execute(_CREATE_BEATS)
            # Every column of this version is there now, whatever user_version said.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _check_columns(self, columns: list[str]) -> None:
        """Refuse a ``messor_tasks`` table that neither this Messor nor an older one wrote."""
        missing = [c for c in _FIRST_COLUMNS if c not in columns]
        known = {*_FIRST_COLUMNS, *_ADDED_COLUMNS}
        unknown = [c for c in columns if c not in known]
        if missing or unknown:
            what = f"lacks the columns {missing}" if missing else f"has the columns {unknown}"
            raise ConfigurationError(
                f"{self.path} has a table messor_tasks that {what}, which no Messor up to "
                f"schema version {SCHEMA_VERSION} writes: it was written by a newer Messor "
                "(upgrade messor) or is another program's database (use another file)"
            )

    def __repr__(self) -> str:
        return f"SQLiteMemory({self.path!r})"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one write transaction; roll back on any error, COMMIT's included.

        A failure of the file itself (locked, full, read-only) is a
        :class:`~messor.errors.MemoryUnavailableError` naming the file.
        """
        with self._lock:
            conn = self._conn
            try:
                # IMMEDIATE takes the write lock up front, so two processes
                # never deadlock upgrading a read transaction.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (disk full, I/O error).
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                error = self._file_error(exc, opening=False)
                if error is None:
                    raise
                raise error from exc

    def _file_error(self, exc: sqlite3.Error, *, opening: bool) -> MessorError | None:
        """What ``exc`` means if the file cannot be used (not the data): an error naming it.

        Mid-run it is always a :class:`~messor.errors.MemoryUnavailableError`:
        a ``ValueError`` would read as a result the memory refused.
        """
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        name = Path(self.path).name
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return MemoryUnavailableError(
                f"The SQLite file {self.path} is locked: another process (or another connection "
                f"to it) has held its write lock for more than {BUSY_TIMEOUT:g} s. Let it "
                "finish or stop it, then run again"
            )
        if code == sqlite3.SQLITE_FULL:
            return MemoryUnavailableError(
                f"The disk holding the SQLite file {self.path} is full ({exc}); "
                "free some space, then run again"
            )
        if code == sqlite3.SQLITE_IOERR:
            detail = getattr(exc, "sqlite_errorname", "")
            return MemoryUnavailableError(
                f"SQLite could not write the file {self.path} ({exc}, {detail}): "
                "is the disk full, over a quota or a file-size limit, or failing?"
            )
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            error = ConfigurationError if opening else MemoryUnavailableError
            return error(
                f"The SQLite file {self.path} cannot be written ({exc}): the file or its "
                f"directory is read-only (SQLite writes {name}-wal and {name}-shm beside "
                "it). Make both writable, or point the memory at another file"
            )
        return None

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- the primitives ---------------------------------------------------------

    def insert(self, tasks: Sequence[tuple[str, str]]) -> None:
        now = time.time()
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO messor_tasks (id, data, status, updated) "
                "VALUES (?, ?, 'pending', ?)",
                [(task_id, data, now) for task_id, data in tasks],
            )

    def update(
        self, changes: Sequence[EncodedUpdate], rule: UpdateRule = UpdateRule.OVERWRITE
    ) -> list[str]:
        now = time.time()
        # One IMMEDIATE transaction holds the file's write lock from the
        # look-up to the write: no other run records anything between.
        with self._transaction() as conn:
            chosen = changes_to_apply(
                changes, lambda ids: dict(_select_by_ids(conn, "id, status", ids)), rule
            )
            params = [
                (c.status, c.result_json, c.error, c.attempts, now, c.task_id) for c in chosen
            ]
            try:
                changed = conn.executemany(
                    "UPDATE messor_tasks SET status = ?, result = ?, error = ?, attempts = ?, "
                    "updated = ? WHERE id = ?",
                    params,
                ).rowcount
            except sqlite3.DataError as exc:
                # SQLite's own limit (about 1 GB per value), lowered with setlimit, say.
                which = f"of task {chosen[0].task_id!r} " if len(chosen) == 1 else ""
                raise ResultTooLargeError(
                    f"A result {which}is too large for SQLite ({exc}); "
                    "store large payloads elsewhere and return a reference to them"
                ) from exc
            if params and changed != len(params):
                known = {i for (i,) in _select_by_ids(conn, "id", (c.task_id for c in chosen))}
                raise TaskNotFoundError(next(c.task_id for c in chosen if c.task_id not in known))
        return [c.task_id for c in chosen]

    def lookup(self, task_ids: Sequence[str], *, results: bool = True) -> dict[str, Row]:
        with self._lock:
            if not results:
                return {i: Row(i, s) for i, s in _select_by_ids(self._conn, "id, status", task_ids)}
            found = _select_by_ids(
                self._conn, "id, status, result, error, attempts, updated", task_ids
            )
            return {values[0]: Row(*values) for values in found}

    def scan(self, status: str | None = None, *, data: bool = False) -> Iterator[Row]:
        # Page by rowid so that a long export never holds the lock for long.
        columns = "id, status, result, error, attempts, updated, " + ("data" if data else "NULL")
        where = "" if status is None else "AND status = ?"
        last_rowid = 0
        while True:
            params: list[Any] = [last_rowid] if status is None else [last_rowid, status]
            page = self._fetchall(
                f"SELECT {columns}, rowid FROM messor_tasks "
                f"WHERE rowid > ? {where} ORDER BY rowid LIMIT {_ROWS_PER_PAGE}",
                params,
            )
            for values in page:
                yield Row._make(values[:-1])  # all but the rowid
            if len(page) < _ROWS_PER_PAGE:
                return
            last_rowid = page[-1][-1]

    def delete(self, task_ids: Iterable[str] | None) -> None:
        with self._transaction() as conn:
            if task_ids is None:
                conn.execute("DELETE FROM messor_tasks")
                conn.execute("DELETE FROM messor_beats")  # the runs of the tasks forgotten
            else:
                conn.executemany("DELETE FROM messor_tasks WHERE id = ?", ((i,) for i in task_ids))

    # -- one query where the base class reads every row ------------------------------

    def count_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(self._fetchall("SELECT status, count(*) FROM messor_tasks GROUP BY status"))
        return counts

    def get_statuses(self, task_ids: Iterable[str]) -> dict[str, str]:
        with self._lock:
            return dict(_select_by_ids(self._conn, "id, status", task_ids))

    def count_since(self, since: float) -> dict[str, int]:
        # A scan (no index on the time: it would slow every write for a
        # query that only the command line makes); about 0.1 s per million rows.
        return dict(
            self._fetchall(
                "SELECT status, count(*) FROM messor_tasks WHERE updated >= ? GROUP BY status",
                (since,),
            )
        )

    def earliest_since(self, since: float) -> dict[str, float]:
        return dict(
            self._fetchall(
                "SELECT status, min(updated) FROM messor_tasks WHERE updated >= ? GROUP BY status",
                (since,),
            )
        )

    def claim_run(self, owner: RunOwner) -> Release:
        # A lock on a file beside the database: the kernel drops it with the
        # process, so a run restarted after a crash is never refused.
        if self.path == ":memory:":
            return self._local_claim.acquire(self, owner)
        # The real path: two names for one database (a symlink) share one claim.
        return FileClaim(f"{os.path.realpath(self.path)}-run").acquire(self, owner)

    # -- run heartbeats --------------------------------------------------------

    keeps_beats = True

    def write_beat(self, run_id: str, beat_json: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO messor_beats (run_id, beat) VALUES (?, ?)",
                (run_id, beat_json),
            )

    def read_beats(self) -> dict[str, str]:
        return dict(self._fetchall("SELECT run_id, beat FROM messor_beats"))

    def delete_beats(self, run_ids: Iterable[str]) -> None:
        with self._transaction() as conn:
            conn.executemany("DELETE FROM messor_beats WHERE run_id = ?", ((i,) for i in run_ids))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _make_directory(file: Path) -> None:
    """Create the directory ``file`` is to be in, if missing, and say so."""
    missing = [str(d) for d in reversed(file.parents) if not d.exists()]
    if missing:
        file.parent.mkdir(parents=True, exist_ok=True)
        noun = "directory" if len(missing) == 1 else "directories"
        logger.warning("Created the %s %s for the SQLite file %s", noun, ", ".join(missing), file)


def _select_by_ids(
    conn: sqlite3.Connection, columns: str, task_ids: Iterable[str]
) -> Iterator[Any]:
    """Yield ``columns`` of the known tasks among ``task_ids``, a few hundred ids per query."""
    ids = iter(task_ids)
    while chunk := list(islice(ids, _IDS_PER_QUERY)):
        marks = ",".join("?" * len(chunk))
        yield from conn.execute(f"SELECT {columns} FROM messor_tasks WHERE id IN ({marks})", chunk)
