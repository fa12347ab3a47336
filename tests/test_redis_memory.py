"""What is specific to the Redis memory: isolation, cheap commands, atomicity, faults, secrets."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import fakeredis
import pytest
import redis

import messor
from messor import (
    ConfigurationError,
    FunctionTask,
    LocalThreadedExecutor,
    MemoryUnavailableError,
    RecordingError,
    TaskDataError,
)
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate, UpdateRule
from messor_redis import RedisMemory
from messor_redis import memory as redis_memory
from tests.redis_server import RedisServer, free_port, real_redis, start_redis_server
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def server() -> RedisServer:
    return real_redis()


@pytest.fixture
def namespace() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def fault_server() -> Iterator[RedisServer]:
    """A redis-server of its own, for tests that reconfigure or cut it."""
    server = start_redis_server()
    yield server
    server.stop()


@pytest.fixture
def proxy(fault_server: RedisServer) -> Iterator[TcpProxy]:
    proxy = TcpProxy(fault_server.port)
    yield proxy
    proxy.close()


def open_real(server: RedisServer, namespace: str, **options: Any) -> RedisMemory:
    memory = messor.open_memory(f"{server.url}?namespace={namespace}", **options)
    assert isinstance(memory, RedisMemory)
    return memory


def fake_memory(**options: Any) -> tuple[RedisMemory, fakeredis.FakeServer]:
    fake_server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=fake_server, decode_responses=True)
    return RedisMemory(client, namespace="fake", **options), fake_server


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats: Any = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()}


def assert_consistent(memory: RedisMemory) -> None:
    """Every task is in exactly the status set its status says, and in no other."""
    client: Any = memory.client
    statuses: dict[str, str] = client.hgetall(memory._key("status"))
    members: dict[str, set[str]] = {
        status: client.smembers(memory._key("ids:" + status))
        for status in client.smembers(memory._key("statuses"))
    }
    for task_id, status in statuses.items():
        assert [s for s, ids in members.items() if task_id in ids] == [status], task_id
    assert sum(len(ids) for ids in members.values()) == len(statuses)


# -- choosing and isolating ----------------------------------------------------------


def test_open_memory_accepts_redis_urls_through_the_plugin(
    server: RedisServer, namespace: str
) -> None:
    memory = open_real(server, namespace)
    assert memory.namespace == namespace
    memory.store_tasks([("t", {})])
    assert memory.get_pending_tasks() == ["t"]
    memory.clear()


def test_harvests_in_different_namespaces_never_see_each_other(server: RedisServer) -> None:
    first, second = open_real(server, "first-" + uuid.uuid4().hex), open_real(server, "second")
    second.clear()
    first.store_tasks([("shared-id", {"who": "first"})])
    second.store_tasks([("shared-id", {"who": "second"}), ("only-second", {})])
    first.update_task_statuses([("shared-id", COMPLETED, "from first", None)])
    assert second.get_task_status("shared-id") == PENDING
    assert second.dump_all()["task_definitions"]["shared-id"] == {"who": "second"}
    assert first.count_by_status() == {PENDING: 0, COMPLETED: 1, FAILED: 0}
    first.clear()
    second.clear()


def test_clear_removes_only_its_own_namespace_and_no_other_key(
    server: RedisServer, namespace: str
) -> None:
    client = server.client()
    client.set("someone-elses-key", "keep me")
    mine, neighbour = open_real(server, namespace), open_real(server, namespace + "-neighbour")
    mine.store_tasks([(f"t{i}", {}) for i in range(10)])
    mine.update_task_statuses([("t1", FAILED, None, "boom"), ("t2", COMPLETED, 2, None)])
    neighbour.store_tasks([("n", {})])
    mine.clear()
    assert not list(client.scan_iter(match=f"messor:{{{namespace}}}:*"))
    assert neighbour.get_pending_tasks() == ["n"]
    assert client.get("someone-elses-key") == "keep me"
    neighbour.clear()


def test_the_namespace_comes_from_the_url_or_an_option_not_both(
    server: RedisServer, namespace: str
) -> None:
    assert messor.open_memory(server.url, namespace=namespace).namespace == namespace  # type: ignore[attr-defined]
    assert messor.open_memory(server.url).namespace == "default"  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="not both"):
        messor.open_memory(f"{server.url}?namespace=a", namespace="b")


@pytest.mark.parametrize("bad", ["", "with{brace}"])
def test_a_namespace_that_cannot_be_a_key_prefix_is_refused(bad: str) -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    with pytest.raises(ConfigurationError, match="namespace"):
        RedisMemory(client, namespace=bad)


def test_other_query_options_go_to_redis_py(server: RedisServer, namespace: str) -> None:
    memory = messor.open_memory(f"{server.url}?namespace={namespace}&socket_timeout=3")
    assert isinstance(memory, RedisMemory)
    assert memory.client.connection_pool.connection_kwargs["socket_timeout"] == 3.0


def test_a_unix_socket_url_works(server: RedisServer, namespace: str) -> None:
    memory = messor.open_memory(f"unix://{server.socket_path}?db=0&namespace={namespace}")
    memory.store_tasks([("t", {})])
    assert open_real(server, namespace).get_pending_tasks() == ["t"]
    memory.clear()


# -- using Redis well -------------------------------------------------------------------


def test_listing_and_counting_never_scan_the_database(server: RedisServer, namespace: str) -> None:
    memory = open_real(server, namespace)
    ids = [f"t{i}" for i in range(3000)]
    memory.store_tasks([(i, {}) for i in ids])
    memory.update_task_statuses([(i, FAILED, None, "e") for i in ids[:500]])
    client = server.client()
    client.config_resetstat()
    memory.count_by_status()
    memory.get_pending_tasks()
    memory.get_failed_tasks()
    memory.get_statuses(ids)
    used = set(command_calls(client)) - {"config|resetstat", "info"}
    # Commands a script makes count too: a listing pages through the namespace's status hash.
    assert used <= {"smembers", "scard", "hmget", "hscan", "evalsha", "multi", "exec"}, used
    memory.clear()


def test_a_batch_of_outcomes_is_one_script_call(server: RedisServer, namespace: str) -> None:
    memory = open_real(server, namespace)
    ids = [f"t{i}" for i in range(1000)]
    memory.store_tasks([(i, {}) for i in ids])
    client = server.client()
    client.config_resetstat()
    memory.record_outcomes([EncodedUpdate(i, COMPLETED, '"ok"', None) for i in ids])
    calls = command_calls(client)
    assert calls.get("evalsha", 0) + calls.get("eval", 0) == 1, calls
    memory.clear()


class CountingConnection(redis.Connection):
    """Counts requests sent to the server: one per command, one per pipeline."""

    requests = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.requests += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def test_a_harvest_costs_a_few_requests_per_thousand_tasks(
    server: RedisServer, namespace: str
) -> None:
    memory = open_real(server, namespace, connection_class=CountingConnection)
    CountingConnection.requests = 0
    tasks = [FunctionTask(f"t{i}", lambda: None) for i in range(5000)]
    LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8).run()
    assert CountingConnection.requests < 5000 / 10, CountingConnection.requests
    assert memory.count_by_status()[COMPLETED] == 5000
    memory.clear()


def test_status_sets_stay_consistent_under_many_concurrent_writers(
    server: RedisServer, namespace: str
) -> None:
    memories = [open_real(server, namespace) for _ in range(4)]
    ids = [f"t{i}" for i in range(200)]
    memories[0].store_tasks([(i, {}) for i in ids])
    errors: list[BaseException] = []

    def hammer(memory: RedisMemory, seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(100):
                chosen = rng.sample(ids, 20)
                status = rng.choice([PENDING, COMPLETED, FAILED, "leased"])
                result = '"r"' if status == COMPLETED else None
                memory.record_outcomes([EncodedUpdate(i, status, result, None) for i in chosen])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(memories[n % 4], n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_consistent(memories[0])
    assert sum(memories[0].count_by_status().values()) == 200
    memories[0].clear()


# -- reset_tasks: what `messor retry` calls ---------------------------------------------


@pytest.fixture(params=["fake", "real"])
def two_clients(request: pytest.FixtureRequest) -> Iterator[tuple[RedisMemory, RedisMemory]]:
    """Two memories on one namespace: a harvest's, and another terminal's."""
    if request.param == "fake":
        memory, fake_server = fake_memory()
        client = fakeredis.FakeRedis(server=fake_server, decode_responses=True)
        other = RedisMemory(client, namespace=memory.namespace)
    else:
        namespace = uuid.uuid4().hex
        memory, other = open_real(real_redis(), namespace), open_real(real_redis(), namespace)
    yield memory, other
    memory.clear()
    memory.close()
    other.close()


def test_reset_tasks_resets_only_the_given_statuses_and_keeps_every_index_consistent(
    two_clients: tuple[RedisMemory, RedisMemory],
) -> None:
    memory, _ = two_clients
    memory.store_tasks([(i, {"url": i}) for i in ("done", "bad", "todo", "held", "worse", "wait")])
    memory.record_outcomes(
        [
            EncodedUpdate("done", COMPLETED, '"kept"', None, 1),
            EncodedUpdate("bad", FAILED, None, "E: bad", 3),
            EncodedUpdate("held", "leased", None, None, 1),
            EncodedUpdate("worse", FAILED, None, "E: worse", 2),
            EncodedUpdate("wait", PENDING, None, "E: retry not done", 2),
        ]
    )
    reset = memory.reset_tasks(
        ["wait", "done", "ghost", "bad", "held", "bad"], only_from={FAILED, PENDING}
    )
    assert reset == ["wait", "bad"]  # in the given order, each once; the unknown id ignored
    assert_consistent(memory)
    assert memory.count_by_status() == {PENDING: 3, COMPLETED: 1, FAILED: 1, "leased": 1}
    records = {r.task_id: r for r in memory.iter_records()}
    for task_id in reset:
        assert records[task_id] == (task_id, PENDING, None, None, 0, None)
    assert records["done"][:3] == ("done", COMPLETED, "kept")
    assert records["worse"][:4] == ("worse", FAILED, None, "E: worse")
    assert memory.dump_all()["task_definitions"]["bad"] == {"url": "bad"}
    assert memory.reset_tasks(["done", "held"], only_from={COMPLETED}) == ["done"]
    assert memory.get_task_result("done") is None
    assert memory.reset_tasks(["ghost"], only_from={COMPLETED, FAILED, PENDING}) == []
    assert memory.reset_tasks(["worse"], only_from=set()) == []
    assert_consistent(memory)


def test_reset_tasks_over_several_script_calls_applies_in_one_transaction(
    two_clients: tuple[RedisMemory, RedisMemory], monkeypatch: pytest.MonkeyPatch
) -> None:
    memory, _ = two_clients
    ids = [f"t{n}" for n in range(10)]
    memory.store_tasks([(i, {}) for i in ids])
    memory.update_task_statuses([(i, FAILED, None, "E") for i in ids])
    monkeypatch.setattr(redis_memory, "ROWS_PER_CALL", 3)
    assert memory.reset_tasks(reversed(ids), only_from={FAILED}) == ids[::-1]
    assert memory.count_by_status() == {PENDING: 10, COMPLETED: 0, FAILED: 0}
    assert_consistent(memory)


def test_reset_tasks_racing_a_harvest_never_undoes_a_completion(
    two_clients: tuple[RedisMemory, RedisMemory],
) -> None:
    # A harvest reruns failed tasks while `messor retry --failed` in another
    # terminal looks the failed ones up and resets them, again and again:
    # whatever completes between its look-up and its reset keeps its result.
    memory, terminal = two_clients
    ids = [f"t{n}" for n in range(300)]
    failing = [FunctionTask(i, int, "not a number") for i in ids]
    LocalThreadedExecutor(failing, memory=memory, retry=0, progress=False).run()
    assert memory.count_by_status()[FAILED] == 300
    errors: list[BaseException] = []

    def harvest() -> None:
        try:
            tasks = [FunctionTask(i, time.sleep, 0.001) for i in ids]
            LocalThreadedExecutor(tasks, memory=memory, max_concurrency=4, progress=False).run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=harvest)
    thread.start()
    resets = 0
    while thread.is_alive():
        looked_up = [task_id for task_id, _ in terminal.get_failed_tasks()]
        resets += len(terminal.reset_tasks(looked_up, only_from={FAILED}))
    thread.join()
    assert errors == []
    assert resets > 0
    assert memory.count_by_status() == {PENDING: 0, COMPLETED: 300, FAILED: 0}
    assert_consistent(memory)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (EncodedUpdate("a", FAILED, None, "late failure"), UpdateRule(keep_completed=True)),
        (EncodedUpdate("a", PENDING, None, None), UpdateRule(only_from=frozenset({FAILED}))),
    ],
    ids=["keep_completed", "only_from"],
)
def test_an_update_never_overwrites_a_completion_another_process_records_meanwhile(
    two_clients: tuple[RedisMemory, RedisMemory],
    monkeypatch: pytest.MonkeyPatch,
    change: EncodedUpdate,
    rule: UpdateRule,
) -> None:
    # The update's rules judge each task in the same step that writes it: no
    # look-up the other process could slip its completion in after.
    memory, other = two_clients
    memory.store_tasks([("a", {})])
    memory.update_task_statuses([("a", FAILED, None, "E")])
    completions: list[EncodedUpdate] = []

    def complete_once() -> None:
        if not completions:
            completions.append(EncodedUpdate("a", COMPLETED, '"A"', None))
            other.record_outcomes(completions)

    look_up = memory.get_statuses

    def completed_right_after_a_look_up(task_ids: Iterable[str]) -> dict[str, str]:
        found = look_up(task_ids)
        complete_once()
        return found

    monkeypatch.setattr(memory, "get_statuses", completed_right_after_a_look_up)
    memory.update([change], rule)
    complete_once()  # after the update, if it looked nothing up
    assert (memory.get_task_status("a"), memory.get_task_result("a")) == (COMPLETED, "A")
    assert_consistent(memory)


# -- limits -----------------------------------------------------------------------------


def test_a_result_larger_than_the_server_takes_fails_that_task_and_the_run_goes_on(
    fault_server: RedisServer,
) -> None:
    admin = fault_server.client()
    admin.config_set("proto-max-bulk-len", 1024 * 1024)
    try:
        memory = messor.open_memory(fault_server.url)
        assert memory.max_result_bytes == 1024 * 1024
        tasks = [
            FunctionTask(f"t{n}", lambda n=n: "x" * (2**21 if n == 2 else 10)) for n in range(6)
        ]
        report = LocalThreadedExecutor(tasks, memory=memory).run()
        [(task_id, error)] = memory.get_failed_tasks()
        assert task_id == "t2"
        assert error is not None
        assert f"more than {memory!r} stores in one value (1048576 bytes)" in error
        assert (report.completed, report.failed) == (5, 1)
        memory.clear()
    finally:
        admin.config_set("proto-max-bulk-len", 512 * 1024 * 1024)


def test_a_batch_split_by_size_still_changes_nothing_when_an_id_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_memory, "CALL_BYTES", 100)
    memory, _ = fake_memory()
    memory.store_tasks([(f"t{i}", {}) for i in range(10)])
    rows = [EncodedUpdate(f"t{i}", COMPLETED, '"' + "x" * 60 + '"', None) for i in range(10)]
    with pytest.raises(KeyError, match="ghost"):
        memory.record_outcomes([*rows, EncodedUpdate("ghost", FAILED, None, "e")])
    assert memory.count_by_status()[COMPLETED] == 0
    memory.record_outcomes(rows)
    assert memory.count_by_status()[COMPLETED] == 10


def test_too_large_data_is_refused_naming_the_task() -> None:
    memory, _ = fake_memory(max_result_bytes=100)
    with pytest.raises(TaskDataError, match="'big'"):
        memory.store_tasks([("big", {"blob": "x" * 200})])


# -- faults -----------------------------------------------------------------------------


def test_a_refused_connection_at_start_names_host_and_port_but_not_the_password() -> None:
    port = free_port()
    with pytest.raises(MemoryUnavailableError) as raised:
        messor.open_memory(f"redis://:hunter2@127.0.0.1:{port}/0")
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert isinstance(raised.value, ConnectionError)


@pytest.fixture
def alice(server: RedisServer) -> Iterator[str]:
    """A Redis ACL user with a password, for the tests about secrets."""
    client = server.client()
    client.acl_setuser(
        "alice", enabled=True, passwords=["+pw-SECRET"], keys=["*"], commands=["+@all"]
    )
    yield "pw-SECRET"
    client.acl_deluser("alice")


def test_the_password_never_reaches_repr_str_or_logs(
    server: RedisServer, namespace: str, alice: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://alice:{alice}@127.0.0.1:{server.port}/0?namespace={namespace}"
    memory = messor.open_memory(url)
    tasks = [FunctionTask("ok", lambda: 1), FunctionTask("bad", lambda: 1 / 0)]
    LocalThreadedExecutor(tasks, memory=memory, retry=1).run()
    assert memory.get_task_status("ok") == COMPLETED
    assert alice not in repr(memory)
    assert alice not in str(memory)
    assert alice not in caplog.text
    assert "Harvest started on RedisMemory('redis://alice:***@" in caplog.text
    memory.clear()


def test_wrong_credentials_are_reported_without_the_password(
    server: RedisServer, alice: str
) -> None:
    with pytest.raises(MemoryUnavailableError, match="credentials") as raised:
        messor.open_memory(f"redis://alice:WRONG-SECRET@127.0.0.1:{server.port}/0")
    assert "WRONG-SECRET" not in str(raised.value)


def test_a_connection_lost_briefly_is_retried_and_the_run_completes() -> None:
    memory, fake_server = fake_memory(retry_for=10)

    def outage() -> None:
        fake_server.connected = False
        threading.Timer(0.3, lambda: setattr(fake_server, "connected", True)).start()

    tasks = [FunctionTask(f"t{n}", lambda: "ok") for n in range(200)]
    tasks.insert(50, FunctionTask("outage", outage))
    report = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=4).run()
    assert report.completed == 201
    assert memory.count_by_status()[COMPLETED] == 201


def test_a_connection_lost_for_too_long_stops_the_run_with_everything_recorded_intact() -> None:
    memory, fake_server = fake_memory(retry_for=0.3)
    cut = threading.Event()

    def work(n: int) -> int:
        if n == 100:
            fake_server.connected = False
            cut.set()
        return n * n

    tasks = [FunctionTask(f"t{n}", work, n) for n in range(400)]
    executor = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=4)
    with pytest.raises(RecordingError) as raised:
        executor.run()
    assert isinstance(raised.value.__cause__, MemoryUnavailableError)
    assert "could not be reached for 0.3 s" in str(raised.value)
    fake_server.connected = True
    completed = memory.get_completed_tasks()
    assert executor.report.completed == len(completed)
    assert all(memory.get_task_result(t) == int(t[1:]) ** 2 for t in completed)
    assert_consistent(memory)


# -- faults on a real server, through a proxy ------------------------------------------


def test_a_network_that_silently_drops_packets_ends_in_a_clear_error_not_a_hang(
    proxy: TcpProxy,
) -> None:
    url = f"redis://127.0.0.1:{proxy.port}/0?socket_timeout=0.5&retry_for=1"
    memory = messor.open_memory(url)
    memory.store_tasks([("t", {})])
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(MemoryUnavailableError, match="could not be reached for 1 s"):
        memory.record_outcomes([EncodedUpdate("t", COMPLETED, "1", None)])
    assert time.monotonic() - started < 5


def test_a_batch_cut_off_mid_request_changes_nothing(
    proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch too big for one request goes out as one MULTI of several calls.
    monkeypatch.setattr(redis_memory, "CALL_BYTES", 20_000)
    namespace = uuid.uuid4().hex
    memory = messor.open_memory(
        f"redis://127.0.0.1:{proxy.port}/0?namespace={namespace}&retry_for=0"
    )
    ids = [f"t{i}" for i in range(2000)]
    memory.store_tasks([(i, {}) for i in [*ids, "warm-up"]])
    memory.record_outcomes([EncodedUpdate("warm-up", COMPLETED, "1", None)])  # loads the script
    proxy.cut_after(150_000)  # past a few of the calls, before the end of the request
    with pytest.raises(MemoryUnavailableError):
        memory.record_outcomes(
            [EncodedUpdate(i, COMPLETED, '"' + "x" * 50 + '"', None) for i in ids]
        )
    proxy.cut_after(None)
    direct = messor.open_memory(f"{proxy_target(proxy)}?namespace={namespace}")
    assert direct.count_by_status() == {PENDING: 2000, COMPLETED: 1, FAILED: 0}


def proxy_target(proxy: TcpProxy) -> str:
    return f"redis://127.0.0.1:{proxy.target_port}/0"


def test_a_failover_to_read_only_is_waited_out(fault_server: RedisServer) -> None:
    namespace = uuid.uuid4().hex
    memory = messor.open_memory(f"{fault_server.url}?namespace={namespace}&retry_for=10")
    memory.store_tasks([("t", {})])
    admin = fault_server.client()
    admin.replicaof("127.0.0.1", "1")  # a replica of nobody: read-only
    try:
        threading.Timer(0.5, admin.replicaof, args=("NO", "ONE")).start()
        memory.record_outcomes([EncodedUpdate("t", COMPLETED, '"after the failover"', None)])
    finally:
        time.sleep(0.6)
        admin.replicaof("NO", "ONE")
    assert memory.get_task_result("t") == "after the failover"


def test_the_client_object_does_not_show_the_password_either(
    server: RedisServer, alice: str
) -> None:
    memory = messor.open_memory(f"redis://alice:{alice}@127.0.0.1:{server.port}/0")
    client = memory.client  # type: ignore[attr-defined]
    assert alice not in repr(client)
    assert alice not in str(client)
    assert alice not in repr(client.connection_pool)


# -- options ------------------------------------------------------------------------------


def test_by_bare_name_the_host_and_port_options_are_used(
    server: RedisServer, namespace: str
) -> None:
    memory = messor.open_memory("redis", host="127.0.0.1", port=server.port, namespace=namespace)
    memory.store_tasks([("t", {})])
    assert open_real(server, namespace).get_pending_tasks() == ["t"]
    memory.clear()


def test_a_percent_encoded_namespace_key_is_read_and_not_passed_on(server: RedisServer) -> None:
    memory = messor.open_memory(f"{server.url}?%6Eamespace=encoded")
    assert memory.namespace == "encoded"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("namespace=a&namespace=b", "given 2 times"),
        ("namespce=typo", "redis-py does not take"),
        ("retry_for=nan", "retry_for"),
        ("retry_for=soon", "retry_for"),
        ("namespace=%7Bbraces%7D", "namespace"),
    ],
)
def test_bad_options_are_configuration_errors(
    server: RedisServer, query: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        messor.open_memory(f"{server.url}?{query}")
