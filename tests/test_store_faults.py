"""Nothing lost when the store fails mid-run: each fault ends in recovery or a clear error.

Redis killed and restarted (with and without its data), connections dropped;
S3 answering 500, 503 SlowDown and timing out; a SQLite file locked by another
process, on a full disk, read-only. After each, a fresh memory on the same
store must hold every task the run reported completed, with its result, no
status but pending, completed and failed, and a second run must finish the rest.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.retries import standard

import messor
from messor import (
    ConfigurationError,
    FunctionTask,
    LocalThreadedExecutor,
    Memory,
    MemoryUnavailableError,
    RecordingError,
    SQLiteMemory,
)
from messor.memories import sqlite as sqlite_module
from messor.memories.base import COMPLETED, FAILED, PENDING
from messor.run.harvest import RunReport
from messor_s3 import memory as s3_module
from tests import disk_full_child
from tests.redis_server import RedisServer, real_redis, start_redis_server
from tests.s3_server import REGION
from tests.tcp_proxy import TcpProxy
from tests.test_redis_memory import assert_consistent
from tests.test_s3_memory import _Raw

CHILD = Path(disk_full_child.__file__)
COUNT = 300
#: The task whose start injects the fault: the run is well under way, far from done.
FAULT_AT = 100


def result_of(number: int) -> dict[str, Any]:
    # Every tenth result is too large for an S3 index entry: it goes to a blob.
    return {"n": number, "square": number * number, "pad": "x" * (400 if number % 10 == 0 else 0)}


def harvest(
    fault: Callable[[], object] | None = None, *, count: int = COUNT, seconds: float = 0.002
) -> list[FunctionTask]:
    """``count`` tasks of ``seconds`` each; the start of task FAULT_AT calls ``fault`` once."""
    once = threading.Lock()

    def work(number: int) -> dict[str, Any]:
        if number == FAULT_AT and fault is not None and once.acquire(blocking=False):
            fault()
        time.sleep(seconds)
        return result_of(number)

    return [FunctionTask(f"t{n}", work, n) for n in range(count)]


def check_store(
    memory: Memory,
    report: RunReport,
    *,
    exact: bool = True,
    expected: Callable[[int], Any] = result_of,
) -> int:
    """The invariants after a fault; returns how many tasks the store holds completed.

    Every task counted completed is stored completed with its result (the
    report has counts, not ids: the store holds at least as many, all right).
    With ``exact`` it holds exactly as many: a store whose write either
    commits or fails, never both (a lost reply can make Redis and S3 hold more).
    """
    records = list(memory.iter_records())
    statuses = {record.status for record in records}
    assert statuses <= {PENDING, COMPLETED, FAILED}, statuses
    completed = {r.task_id: r.result for r in records if r.status == COMPLETED}
    for task_id, result in completed.items():
        assert result == expected(int(task_id[1:])), task_id
    if exact:
        assert len(completed) == report.completed
    else:
        assert len(completed) >= report.completed
    return len(completed)


def run_again_finishes(memory: Memory, completed_before: int, *, count: int = COUNT) -> None:
    """A second run skips what is stored completed and completes everything else."""
    report = LocalThreadedExecutor(harvest(count=count, seconds=0), memory=memory).run()
    assert report.skipped == completed_before
    assert report.completed == count - completed_before
    assert memory.count_by_status() == {PENDING: 0, COMPLETED: count, FAILED: 0}
    assert all(memory.get_task_result(f"t{n}") == result_of(n) for n in range(0, count, 7))


# -- Redis: the server killed ------------------------------------------------------------


@pytest.fixture
def durable_server() -> Iterator[RedisServer]:
    """A redis-server of its own that writes every change to its AOF before answering."""
    server = start_redis_server("--appendonly", "yes", "--appendfsync", "always")
    yield server
    server.stop()


@pytest.fixture
def forgetful_server() -> Iterator[RedisServer]:
    """A redis-server of its own that keeps nothing on disk: a restart empties it."""
    server = start_redis_server()
    yield server
    server.stop()


def kill_and_restart(server: RedisServer, after: float | None) -> Callable[[], None]:
    """A fault: SIGKILL the server, start it again on its port ``after`` seconds later."""

    def fault() -> None:
        server.kill()
        if after is not None:
            threading.Timer(after, server.restart).start()

    return fault


@pytest.mark.slow
def test_redis_killed_and_back_within_retry_for_is_waited_out_and_nothing_is_lost(
    durable_server: RedisServer,
) -> None:
    spec = f"{durable_server.url}?namespace=harvest&retry_for=10"
    memory = messor.open_memory(spec)
    report = LocalThreadedExecutor(
        harvest(kill_and_restart(durable_server, after=0.5)), memory=memory
    ).run()
    assert report.completed == COUNT
    fresh = messor.open_memory(spec)
    assert check_store(fresh, report, exact=False) == COUNT
    assert_consistent(fresh)  # type: ignore[arg-type]


@pytest.mark.slow
def test_redis_killed_for_longer_than_retry_for_stops_the_run_naming_it_without_the_password(
    durable_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    durable_server.client().acl_setuser(
        "alice", enabled=True, passwords=["+pw-SECRET"], keys=["*"], commands=["+@all"]
    )
    url = f"redis://alice:pw-SECRET@127.0.0.1:{durable_server.port}/0?namespace=h&retry_for=0.5"
    memory = messor.open_memory(url)
    # The run cannot end its claim on the namespace while Redis is down: let
    # the claim lapse by the time Redis is back, so that the run below may start.
    memory.claim_seconds = 0.5  # type: ignore[attr-defined]
    executor = LocalThreadedExecutor(
        harvest(kill_and_restart(durable_server, after=None)), memory=memory
    )
    with pytest.raises(RecordingError) as raised:
        executor.run()
    message = str(raised.value)
    assert f"Redis at redis://alice:***@127.0.0.1:{durable_server.port}/0" in message
    assert "could not be reached for 0.5 s" in message
    assert "pw-SECRET" not in message + caplog.text
    durable_server.restart()  # with its data: the ACL user is gone, the tasks are not
    fresh = messor.open_memory(f"{durable_server.url}?namespace=h")
    completed = check_store(fresh, executor.report, exact=False)
    assert completed < COUNT
    run_again_finishes(fresh, completed)


@pytest.mark.slow
def test_redis_restarted_without_its_data_stops_the_run_saying_the_store_lost_it(
    forgetful_server: RedisServer,
) -> None:
    spec = f"{forgetful_server.url}?namespace=harvest&retry_for=10"
    memory = messor.open_memory(spec)
    executor = LocalThreadedExecutor(
        harvest(kill_and_restart(forgetful_server, after=0.3)), memory=memory
    )
    with pytest.raises(RecordingError) as raised:
        executor.run()
    message = str(raised.value)
    assert f"RedisMemory('{forgetful_server.url}?namespace=harvest&retry_for=10'" in message
    assert "no longer knows task 't" in message
    assert "The store lost data" in message
    assert "results recorded before may be gone too" in message
    # No silent re-registration: the store stays as empty as the restart left it.
    fresh = messor.open_memory(spec)
    assert fresh.count_by_status() == {PENDING: 0, COMPLETED: 0, FAILED: 0}
    run_again_finishes(fresh, 0)


def test_redis_connections_dropped_again_and_again_mid_run_lose_nothing() -> None:
    proxy = TcpProxy(real_redis().port)
    namespace = uuid.uuid4().hex
    dropped: list[int] = []

    def work(number: int) -> dict[str, Any]:
        if number % 200 == 100:  # ten times in the run, whatever is on the wire
            dropped.append(proxy.drop())
        time.sleep(0.0005)
        return result_of(number)

    try:
        memory = messor.open_memory(
            f"redis://127.0.0.1:{proxy.port}/0?namespace={namespace}&retry_for=10"
        )
        tasks = [FunctionTask(f"t{n}", work, n) for n in range(2000)]
        report = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8).run()
    finally:
        proxy.close()
    assert len(dropped) == 10
    assert sum(dropped) > 0
    assert report.completed == 2000
    fresh = messor.open_memory(f"{real_redis().url}?namespace={namespace}")
    assert check_store(fresh, report, exact=False) == 2000
    assert_consistent(fresh)  # type: ignore[arg-type]
    fresh.clear()


# -- S3: errors and timeouts -------------------------------------------------------------


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore retries at once (it waits up to 20 s after a SlowDown): the tests stay fast."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


ERRORS = [(500, "InternalError"), (503, "SlowDown"), (503, "ServiceUnavailable")]


def answer_errors(client: Any, chance: Callable[[str], bool]) -> list[str]:
    """Answer each request for which ``chance(operation)`` is true with a 500 or 503 instead.

    The request never reaches S3. Returns the operations answered so.
    """
    answered: list[str] = []
    rng = random.Random(7)

    def answer(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        if not chance(operation):
            return None
        answered.append(operation)
        status, code = rng.choice(ERRORS)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, status, HTTPHeaders(), _Raw(body))

    client.meta.events.register_first("before-send.s3", answer)
    return answered


def s3_spec(bucket: str, endpoint: str) -> str:
    # Every call lists the log first: listings fail at random too.
    return f"s3://{bucket}/harvest?endpoint_url={endpoint}&batch_delay=0&refresh_interval=0"


def test_s3_errors_at_random_on_every_kind_of_request_are_retried_and_nothing_is_lost(
    endpoint: str, bucket: str, no_backoff: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "COMPACT_AFTER", 8)  # compactions mid-run, under fire too
    memory = messor.open_memory(s3_spec(bucket, endpoint))  # the plugin's own client and retries
    rng = random.Random(1)
    answered = answer_errors(memory.store.client, lambda _: rng.random() < 0.25)  # type: ignore[attr-defined]
    report = LocalThreadedExecutor(harvest(), memory=memory).run()
    assert report.completed == COUNT
    assert memory.count_by_status()[COMPLETED] == COUNT
    assert {r.task_id: r.result for r in memory.iter_records()}["t10"] == result_of(10)
    assert {"PutObject", "GetObject", "ListObjectsV2"} <= set(answered)
    fresh = messor.open_memory(s3_spec(bucket, endpoint))
    assert check_store(fresh, report, exact=False) == COUNT


def test_s3_slowing_down_for_good_stops_the_run_naming_bucket_and_prefix(
    endpoint: str, bucket: str, no_backoff: None
) -> None:
    memory = messor.open_memory(s3_spec(bucket, endpoint))
    failing = threading.Event()
    answer_errors(memory.store.client, lambda op: failing.is_set() and op == "PutObject")  # type: ignore[attr-defined]
    executor = LocalThreadedExecutor(harvest(failing.set), memory=memory)
    with pytest.raises(RecordingError, match=f"s3://{bucket}/harvest") as raised:
        executor.run()
    assert isinstance(raised.value.__cause__, MemoryUnavailableError)
    fresh = messor.open_memory(s3_spec(bucket, endpoint))
    completed = check_store(fresh, executor.report, exact=False)
    assert completed < COUNT
    assert executor.status_summary()[COMPLETED] == completed
    run_again_finishes(fresh, completed)


@pytest.fixture
def stalling(endpoint: str) -> Iterator[tuple[TcpProxy, Any]]:
    """A proxy in front of the S3 server, and a client through it that gives up a read in 0.3 s.

    An attempt at a PUT that stalls takes 1.3 s (botocore first waits a second
    for "100 Continue"); four attempts outlast a stall of a second.
    """
    proxy = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    config = Config(
        read_timeout=0.3, connect_timeout=0.3, retries={"mode": "standard", "max_attempts": 3}
    )
    client = boto3.client(
        "s3", region_name=REGION, endpoint_url=f"http://127.0.0.1:{proxy.port}", config=config
    )
    yield proxy, client
    proxy.close()


@pytest.mark.slow
def test_s3_stalling_for_a_moment_mid_run_is_retried_and_nothing_is_lost(
    endpoint: str, bucket: str, stalling: tuple[TcpProxy, Any], no_backoff: None
) -> None:
    proxy, client = stalling

    def stall() -> None:
        proxy.blackhole()
        threading.Timer(1.0, proxy.blackhole, args=(False,)).start()

    memory = messor.open_memory(f"s3://{bucket}/harvest", client=client, batch_delay=0)
    report = LocalThreadedExecutor(harvest(stall), memory=memory).run()
    assert report.completed == COUNT
    fresh = messor.open_memory(s3_spec(bucket, endpoint))
    assert check_store(fresh, report, exact=False) == COUNT


@pytest.mark.slow
def test_s3_stalling_for_good_ends_in_a_clear_error_not_a_hang(
    endpoint: str, bucket: str, stalling: tuple[TcpProxy, Any], no_backoff: None
) -> None:
    proxy, client = stalling
    memory = messor.open_memory(f"s3://{bucket}/harvest", client=client, batch_delay=0)
    executor = LocalThreadedExecutor(harvest(proxy.blackhole), memory=memory)
    started = time.monotonic()
    with pytest.raises(RecordingError, match=f"S3 at s3://{bucket}/harvest could not be used"):
        executor.run()
    assert time.monotonic() - started < 10
    fresh = messor.open_memory(s3_spec(bucket, endpoint))
    completed = check_store(fresh, executor.report, exact=False)
    run_again_finishes(fresh, completed)


# -- SQLite: locked, full, read-only -----------------------------------------------------


@contextmanager
def write_lock_held(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the file's write lock (BEGIN EXCLUSIVE) for ``seconds``.

    Held once the block starts; killed, if still running, when it ends.
    """
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
        ), str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        result: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return result
    finally:
        conn.close()


@pytest.mark.slow
def test_sqlite_locked_by_another_process_for_too_long_stops_the_run_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT", 0.3)
    path = tmp_path / "harvest.db"
    with ExitStack() as stack:
        executor = LocalThreadedExecutor(
            harvest(lambda: stack.enter_context(write_lock_held(path, 1.5))),
            memory=SQLiteMemory(path),
        )
        with pytest.raises(RecordingError) as raised:
            executor.run()
    message = str(raised.value)
    assert f"The SQLite file {path} is locked: another process" in message
    assert "for more than 0.3 s" in message
    assert integrity(path) == "ok"
    fresh = SQLiteMemory(path)
    completed = check_store(fresh, executor.report)
    assert completed < COUNT
    assert executor.status_summary()[COMPLETED] == completed
    run_again_finishes(fresh, completed)


@pytest.mark.slow
def test_sqlite_opened_while_another_process_writes_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "harvest.db"
    SQLiteMemory(path).store_tasks([("t", {})])
    with write_lock_held(path, 0.5):
        started = time.monotonic()
        memory = SQLiteMemory(path)  # it used to fail at once: "cannot be used"
        assert time.monotonic() - started > 0.2
    assert memory.get_pending_tasks() == ["t"]


@pytest.mark.slow
def test_sqlite_locked_for_too_long_when_opened_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "harvest.db"
    SQLiteMemory(path).close()
    with write_lock_held(path, 5), pytest.raises(MemoryUnavailableError) as raised:
        SQLiteMemory(path)
    assert f"The SQLite file {path} is locked: another process" in str(raised.value)


def run_out_of_room(path: Path, count: int, size_limit: int | None) -> dict[str, Any]:
    """Run the child harvest; its JSON line."""
    command = [sys.executable, str(CHILD), str(path), str(count)]
    if size_limit is not None:
        command.append(str(size_limit))
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def check_after_disk_full(path: Path, outcome: dict[str, Any], count: int) -> None:
    """The file is sound, holds exactly what the run counted, and a run with room finishes."""
    assert integrity(path) == "ok"
    fresh = SQLiteMemory(path)
    report = RunReport(completed=outcome["completed"], failed=outcome["failed"])
    completed = check_store(fresh, report, expected=disk_full_child.result_of)
    assert 0 < completed < count
    done = LocalThreadedExecutor(disk_full_child.tasks(count, 0), memory=fresh).run()
    assert (done.skipped, done.completed) == (completed, count - completed)
    assert all(fresh.get_task_result(f"t{n}") == disk_full_child.result_of(n) for n in range(count))


@pytest.mark.slow
def test_sqlite_file_that_hits_a_size_limit_stops_the_run_intact(tmp_path: Path) -> None:
    path = tmp_path / "harvest.db"
    # A list is registered whole before it runs: 1,000 tasks leave room to record some.
    outcome = run_out_of_room(path, 1000, size_limit=400_000)
    assert outcome["error"] is not None
    assert f"SQLite could not write the file {path}" in outcome["error"]
    assert "file-size limit" in outcome["error"]
    check_after_disk_full(path, outcome, 1000)


def can_mount_tmpfs() -> bool:
    probe = ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "t", "/mnt"]
    return (
        shutil.which("unshare") is not None
        and subprocess.run(probe, capture_output=True).returncode == 0
    )


@pytest.mark.slow
@pytest.mark.skipif(not can_mount_tmpfs(), reason="mounting a tmpfs needs root (CAP_SYS_ADMIN)")
def test_sqlite_on_a_full_disk_stops_the_run_intact(tmp_path: Path) -> None:
    # A 256 KB tmpfs in a mount namespace of the child's own: gone when it ends,
    # so the database is copied out (a closed WAL database: the file and its -wal).
    disk, copy = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    copy.mkdir()
    script = (
        f'mount -t tmpfs -o size=256k tmpfs "{disk}" && '
        f'"{sys.executable}" "{CHILD}" "{disk}/harvest.db" 1000; status=$?; '
        f'cp "{disk}"/harvest.db "{disk}"/harvest.db-wal "{copy}"/; exit $status'
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["error"] is not None
    assert f"The disk holding the SQLite file {disk}/harvest.db is full" in outcome["error"]
    check_after_disk_full(copy / "harvest.db", outcome, 1000)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` (a file or a directory) unwritable, even for root, while the block runs.

    Root ignores file modes, so as root the file is made immutable (chattr +i);
    otherwise a mode without write bits does.
    """
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", path]).returncode:
        reason = f"chattr +i does not work on {path}'s file system"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", path], check=True)


def record_some(path: Path) -> None:
    """A file with 10 tasks, 4 of them completed."""
    memory = SQLiteMemory(path)
    memory.store_tasks([(f"t{n}", {}) for n in range(10)])
    memory.update_task_statuses([(f"t{n}", COMPLETED, result_of(n), None) for n in range(4)])
    memory.close()


@pytest.mark.parametrize("what", ["file", "directory"])
def test_sqlite_read_only_is_refused_before_any_task_runs_naming_the_file(
    tmp_path: Path, what: str
) -> None:
    path = tmp_path / "data" / "harvest.db"
    record_some(path)
    ran: list[int] = []
    tasks = [FunctionTask(f"t{n}", ran.append, n) for n in range(10)]
    with read_only(path if what == "file" else path.parent):
        with pytest.raises(PermissionError):
            (path if what == "file" else path.parent / "probe").open("a")
        with pytest.raises(ConfigurationError) as raised:
            LocalThreadedExecutor(tasks, memory=f"sqlite:///{path}").run()
    assert ran == []
    message = str(raised.value)
    assert f"The SQLite file {path} cannot be written" in message
    assert "read-only" in message
    fresh = SQLiteMemory(path)
    assert fresh.count_by_status() == {PENDING: 6, COMPLETED: 4, FAILED: 0}
    run_again_finishes(fresh, 4, count=10)
