"""What is specific to ``messor.SQLiteMemory``: the file, its format, its connections."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

import messor
import messor.memory
import messor.sqlite_memory
from messor import ConfigurationError, ResultTooLargeError, SQLiteMemory
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate
from messor.memories.sqlite import SCHEMA_VERSION


def _query_one(path: Path, sql: str) -> object:
    """Run one statement on a connection of our own, as another program would."""
    with closing(sqlite3.connect(path)) as conn:
        row = conn.execute(sql).fetchone()
    return row[0]


# -- the file ------------------------------------------------------------------------


def test_everything_recorded_survives_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "harvest.db"
    first = SQLiteMemory(path)
    first.store_tasks([("done", {"url": "https://a"}), ("broken", {"n": 2}), ("todo", {})])
    first.update_task_statuses(
        [("done", COMPLETED, {"title": "A"}, None), ("broken", FAILED, None, "ValueError: 404")]
    )
    first.close()

    reopened = SQLiteMemory(path)
    try:
        assert reopened.dump_all() == {
            "task_definitions": {"done": {"url": "https://a"}, "broken": {"n": 2}, "todo": {}},
            "task_statuses": {"done": COMPLETED, "broken": FAILED, "todo": PENDING},
            "task_results": {"done": {"title": "A"}},
            "task_errors": {"broken": "ValueError: 404"},
        }
        assert reopened.get_task_result("done") == {"title": "A"}
        assert reopened.get_failed_tasks() == [("broken", "ValueError: 404")]
        assert reopened.get_pending_tasks() == ["todo"]
    finally:
        reopened.close()


def test_the_file_uses_wal_journal_mode(tmp_path: Path) -> None:
    path = tmp_path / "harvest.db"
    SQLiteMemory(path).close()
    assert _query_one(path, "PRAGMA journal_mode") == "wal"


def test_missing_parent_directories_of_the_file_are_created(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "2024" / "june" / "harvest.db"
    memory = SQLiteMemory(path)
    try:
        memory.store_tasks([("a", {})])
        assert path.is_file()
        assert memory.get_pending_tasks() == ["a"]
    finally:
        memory.close()


def test_a_file_that_is_not_a_sqlite_database_is_refused_naming_its_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 50)
    with pytest.raises(ConfigurationError, match=re.escape(str(path))):
        SQLiteMemory(path)


def test_a_path_sqlite_cannot_open_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "harvest.db"
    path.mkdir()
    with pytest.raises(ConfigurationError, match=re.escape(str(path))):
        SQLiteMemory(path)


def test_a_database_from_a_newer_messor_is_refused_naming_its_path(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigurationError, match=re.escape(str(path))):
        SQLiteMemory(path)


@pytest.mark.parametrize(
    ("version", "columns"),
    [
        (
            1,
            "id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, status TEXT NOT NULL, "
            "result TEXT, error TEXT",
        ),
        (
            2,
            "id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, status TEXT NOT NULL, "
            "result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0",
        ),
    ],
)
def test_a_file_of_an_older_messor_is_upgraded_keeping_every_record(
    tmp_path: Path, version: int, columns: str
) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE messor_tasks ({columns})")
        conn.execute("""INSERT INTO messor_tasks (id, data, status, result, error) VALUES
            ('done', '{}', 'completed', '[1,2]', NULL), ('bad', '{}', 'failed', NULL, 'E: x')""")
        conn.execute(f"PRAGMA user_version = {version}")
    memory = SQLiteMemory(path)
    assert memory.get_task_result("done") == [1, 2]
    assert memory.get_failed_tasks() == [("bad", "E: x")]
    assert {r.updated_at for r in memory.iter_records()} == {None}  # not known for old rows
    memory.update_task_statuses([("bad", COMPLETED, 3, None)])
    assert memory.count_since(0) == {COMPLETED: 1}
    memory.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


#: The table (and index) each older Messor created, by schema version.
OLD_SCHEMAS = {
    1: "CREATE TABLE messor_tasks (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, "
    "status TEXT NOT NULL, result TEXT, error TEXT)",
    2: "CREATE TABLE messor_tasks (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, "
    "status TEXT NOT NULL, result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0)",
}


def _dumped_and_reloaded(path: Path) -> Path:
    """The file as ``sqlite3 old.db .dump | sqlite3 new.db`` restores it: user_version 0."""
    copy = path.with_name(f"restored-{path.name}")
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(copy)) as target:
        target.executescript("\n".join(source.iterdump()))
    assert _query_one(copy, "PRAGMA user_version") == 0
    return copy


@pytest.mark.parametrize("version", sorted(OLD_SCHEMAS))
def test_a_restored_dump_of_an_older_file_is_upgraded_by_its_columns_keeping_every_record(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(OLD_SCHEMAS[version])
        conn.execute("CREATE INDEX messor_tasks_by_status ON messor_tasks (status)")
        conn.execute("""INSERT INTO messor_tasks (id, data, status, result, error) VALUES
            ('done', '{"url":"u"}', 'completed', '[1,2]', NULL),
            ('bad', '{}', 'failed', NULL, 'E: x'), ('todo', '{}', 'pending', NULL, NULL)""")
        conn.execute(f"PRAGMA user_version = {version}")
    restored = _dumped_and_reloaded(path)
    memory = SQLiteMemory(restored)
    assert memory.dump_all() == {
        "task_definitions": {"done": {"url": "u"}, "bad": {}, "todo": {}},
        "task_statuses": {"done": COMPLETED, "bad": FAILED, "todo": PENDING},
        "task_results": {"done": [1, 2]},
        "task_errors": {"bad": "E: x"},
    }
    memory.record_outcomes([EncodedUpdate("todo", COMPLETED, '"new"', None, 2)])
    assert memory.count_since(0) == {COMPLETED: 1}
    assert [r.attempts for r in memory.iter_records(COMPLETED)] == [0, 2]
    memory.close()
    with closing(sqlite3.connect(restored)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(messor_tasks)")]
        assert columns == ["id", "data", "status", "result", "error", "attempts", "updated"]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with SQLiteMemory(restored) as reopened:
        assert reopened.get_task_result("todo") == "new"


def test_a_file_stamped_current_without_the_columns_is_repaired(tmp_path: Path) -> None:
    # What Messor 0.1 left of a restored dump: stamped the current version, never upgraded.
    path = tmp_path / "stamped.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(OLD_SCHEMAS[1])
        conn.execute("INSERT INTO messor_tasks VALUES ('bad', '{}', 'failed', NULL, 'E: x')")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    with SQLiteMemory(path) as memory:
        assert memory.get_failed_tasks() == [("bad", "E: x")]
        memory.record_outcomes([EncodedUpdate("bad", COMPLETED, "3", None, 2)])
        assert memory.count_since(0) == {COMPLETED: 1}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("id TEXT PRIMARY KEY, name TEXT, status TEXT", "lacks the columns ['data', 'result',"),
        (
            "id TEXT PRIMARY KEY, data TEXT, status TEXT, result TEXT, error TEXT, "
            "attempts INTEGER, updated REAL, owner TEXT",
            "has the columns ['owner']",
        ),
    ],
    ids=["another-program", "newer-messor"],
)
def test_a_table_of_unknown_columns_is_refused_naming_the_file_and_left_alone(
    tmp_path: Path, columns: str, message: str
) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE messor_tasks ({columns})")
    with pytest.raises(ConfigurationError, match=re.escape(message)) as refused:
        SQLiteMemory(path)
    assert str(path) in str(refused.value)
    assert _query_one(path, "PRAGMA user_version") == 0


# -- connections -------------------------------------------------------------------------


def test_an_in_ram_memory_is_one_database_for_all_threads() -> None:
    memory = SQLiteMemory(":memory:")
    threads_count, tasks_per_thread = 16, 50
    everyone_stored = threading.Barrier(threads_count, timeout=30)
    seen_by_thread: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            memory.store_tasks([(f"t{n}-{i}", {"thread": n}) for i in range(tasks_per_thread)])
            everyone_stored.wait()
            seen_by_thread[n] = len(memory.get_pending_tasks())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        everything = threads_count * tasks_per_thread
        assert seen_by_thread == dict.fromkeys(range(threads_count), everything)
        assert memory.count_by_status()[PENDING] == everything
        assert memory.get_task_status("t15-49") == PENDING
    finally:
        memory.close()


def test_two_memories_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    writer, reader = SQLiteMemory(path), SQLiteMemory(path)
    try:
        writer.store_tasks([("a", {}), ("b", {})])
        assert sorted(reader.get_pending_tasks()) == ["a", "b"]
        reader.update_task_statuses([("a", COMPLETED, "from reader", None)])
        assert writer.get_task_status("a") == COMPLETED
        assert writer.get_task_result("a") == "from reader"
    finally:
        writer.close()
        reader.close()


# -- the seed's API ----------------------------------------------------------------------


def test_every_import_path_of_the_seed_gives_the_same_class() -> None:
    from messor.memory import SQLiteMemory as from_memory_module
    from messor.sqlite_memory import SQLiteMemory as from_own_module

    assert from_own_module is from_memory_module
    assert from_own_module is messor.SQLiteMemory
    assert messor.memory.SQLiteMemory is messor.sqlite_memory.SQLiteMemory


def test_the_path_can_be_given_by_keyword() -> None:
    memory = SQLiteMemory(path="x.db")
    try:
        memory.store_tasks([("a", {})])
        assert memory.path == "x.db"
        assert Path("x.db").is_file()
    finally:
        memory.close()


def test_repr_shows_the_path(tmp_path: Path) -> None:
    path = tmp_path / "harvest.db"
    memory = SQLiteMemory(path)
    try:
        assert repr(memory) == f"SQLiteMemory({str(path)!r})"
    finally:
        memory.close()


# -- large batches -------------------------------------------------------------------------


def test_an_update_of_5000_rows_becomes_visible_to_other_connections_all_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "harvest.db"
    ids = [f"page-{i:05}" for i in range(5000)]
    memory, observer = SQLiteMemory(path), SQLiteMemory(path)
    memory.store_tasks([(i, {}) for i in ids])
    observed: list[int] = []
    watching = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            observed.append(observer.count_by_status()[COMPLETED])
            watching.set()
            if observed[-1] == len(ids):
                return

    watcher = threading.Thread(target=watch)
    try:
        watcher.start()
        assert watching.wait(timeout=30)
        memory.update_task_statuses([(i, COMPLETED, {"page": i}, None) for i in ids])
        watcher.join()
        assert set(observed) == {0, len(ids)}
        assert memory.dump_all()["task_results"] == {i: {"page": i} for i in ids}
    finally:
        watcher.join()
        memory.close()
        observer.close()


def test_a_batch_whose_last_id_is_unknown_changes_none_of_the_others(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "harvest.db")
    try:
        ids = [f"page-{i:05}" for i in range(4999)]
        memory.store_tasks([(i, {}) for i in ids])
        batch = [(i, COMPLETED, {"page": i}, None) for i in ids]
        with pytest.raises(KeyError, match="never-stored"):
            memory.update_task_statuses([*batch, ("never-stored", COMPLETED, 1, None)])
        dump = memory.dump_all()
        assert dump["task_statuses"] == dict.fromkeys(ids, PENDING)
        assert dump["task_results"] == {}
    finally:
        memory.close()


def test_count_by_status_counts_thousands_of_rows_exactly(tmp_path: Path) -> None:
    memory = SQLiteMemory(tmp_path / "harvest.db")
    try:
        ids = [f"page-{i:05}" for i in range(3000)]
        memory.store_tasks([(i, {}) for i in ids])
        memory.update_task_statuses(
            [(i, COMPLETED, i, None) for i in ids[:1234]]
            + [(i, FAILED, None, "TimeoutError") for i in ids[1234:2001]]
        )
        assert memory.count_by_status() == {PENDING: 999, COMPLETED: 1234, FAILED: 767}
    finally:
        memory.close()


def test_a_result_over_sqlites_limit_is_refused_as_too_large_naming_the_task() -> None:
    with SQLiteMemory(":memory:") as memory:
        memory._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000)  # stands in for SQLite's 1 GB
        memory.store_tasks([("small", {}), ("big", {})])
        with pytest.raises(ResultTooLargeError, match="'big' is too large for SQLite"):
            memory.record_outcomes(
                [EncodedUpdate("big", COMPLETED, '"' + "x" * 20_000 + '"', None)]
            )
        memory.record_outcomes([EncodedUpdate("small", COMPLETED, '"x"', None)])
        assert memory.get_statuses(["small", "big"]) == {"small": COMPLETED, "big": PENDING}


def test_the_file_declares_what_it_keeps_and_its_limit() -> None:
    assert (SQLiteMemory.keeps_times, SQLiteMemory.claims_runs) == (True, True)
    assert SQLiteMemory.max_result_bytes == sqlite3.connect(":memory:").getlimit(
        sqlite3.SQLITE_LIMIT_LENGTH
    )
