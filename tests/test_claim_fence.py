"""Redis: a run that lost its claim stops, and its memory's writes are fenced by the claim.

Once another run holds the namespace (or nobody does: the claim lapsed), every
write of the run that lost it fails with ``ClaimLostError`` and changes
nothing, in the same script that would have written. Writes made outside a
run (``messor retry`` from another terminal) hold no claim and are not fenced.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest

import messor
from messor import ClaimLostError, ConfigurationError, FunctionTask, LocalThreadedExecutor
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate
from messor.memories.claims import RunOwner
from messor_redis import RedisMemory
from messor_redis import memory as redis_memory_module
from tests.redis_server import real_redis

#: What a second run writes into the claim when it takes over.
NEWCOMER = RunOwner(pid=4242, host="another-host")


Opener = Callable[..., RedisMemory]


@pytest.fixture(params=["fake", "real"])
def new_memory(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens memories on one namespace of one store (fakeredis, or the real redis-server)."""
    namespace = uuid.uuid4().hex
    fake_server = fakeredis.FakeServer()
    opened: list[RedisMemory] = []

    def open_one(**options: Any) -> RedisMemory:
        if request.param == "fake":
            client = fakeredis.FakeRedis(server=fake_server, decode_responses=True)
            memory = RedisMemory(client, namespace=namespace, **options)
        else:
            spec = f"{real_redis().url}?namespace={namespace}"
            memory = messor.open_memory(spec, **options)  # type: ignore[assignment]
        opened.append(memory)
        return memory

    yield open_one
    opened[0].client.delete(opened[0]._key("run"))
    opened[0].clear()
    for memory in opened:
        memory.close()


@pytest.fixture
def memory(new_memory: Opener) -> RedisMemory:
    return new_memory()


def take_over(memory: RedisMemory) -> None:
    """What a second run does once this one's claim lapsed: its own claim in the key."""
    memory.client.set(memory._key("run"), NEWCOMER.to_json())


def state(memory: RedisMemory) -> dict[str, Any]:
    """Everything the namespace holds but the claim."""
    client: Any = memory.client
    keys = sorted(k for k in client.keys(memory._prefix + "*") if k != memory._key("run"))
    dump = {}
    for key in keys:
        kind = client.type(key)
        dump[key] = client.hgetall(key) if kind == "hash" else sorted(client.smembers(key))
    return dump


def prepared(memory: RedisMemory) -> None:
    memory.store_tasks([("done", {}), ("bad", {}), ("todo", {})])
    memory.record_outcomes(
        [EncodedUpdate("done", COMPLETED, '"A"', None, 1), EncodedUpdate("bad", FAILED, None, "E")]
    )


WRITES: dict[str, Callable[[RedisMemory], object]] = {
    "store_tasks": lambda m: m.store_tasks([("new", {})]),
    "update_task_statuses": lambda m: m.update_task_statuses([("done", COMPLETED, "B", None)]),
    "record_outcomes": lambda m: m.record_outcomes([EncodedUpdate("todo", COMPLETED, '"B"', None)]),
    "clear_tasks": lambda m: m.clear_tasks(["done"]),
    "clear": lambda m: m.clear(),
    "reset_tasks": lambda m: m.reset_tasks(["done", "bad"], only_from={FAILED, COMPLETED}),
}


@pytest.mark.parametrize("write", WRITES)
def test_every_write_of_a_run_whose_claim_was_taken_fails_and_changes_nothing(
    memory: RedisMemory, write: str
) -> None:
    prepared(memory)
    release = memory.claim_run(RunOwner())
    try:
        take_over(memory)
        before = state(memory)
        with pytest.raises(ClaimLostError, match=r"lost its claim .* process 4242 on another-host"):
            WRITES[write](memory)
        assert state(memory) == before
    finally:
        release()
    # Releasing a lost claim leaves the newcomer's in place.
    assert RunOwner.from_json(memory.client.get(memory._key("run"))) == NEWCOMER


def test_a_write_after_the_claim_lapsed_is_refused_even_if_nobody_took_it(
    memory: RedisMemory,
) -> None:
    # Another run may have come and gone meanwhile: its results must stay.
    prepared(memory)
    release = memory.claim_run(RunOwner())
    try:
        memory.client.delete(memory._key("run"))
        with pytest.raises(ClaimLostError):
            memory.record_outcomes([EncodedUpdate("done", COMPLETED, '"late"', None)])
        assert memory.get_task_result("done") == "A"
    finally:
        release()


def test_a_batch_split_over_several_calls_is_fenced_whole(
    memory: RedisMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory.store_tasks([(f"t{n}", {}) for n in range(10)])
    monkeypatch.setattr(redis_memory_module, "ROWS_PER_CALL", 3)  # one MULTI of four calls
    release = memory.claim_run(RunOwner())
    try:
        take_over(memory)
        with pytest.raises(ClaimLostError):
            memory.record_outcomes(
                [EncodedUpdate(f"t{n}", COMPLETED, "1", None) for n in range(10)]
            )
    finally:
        release()
    assert memory.count_by_status() == {PENDING: 10, COMPLETED: 0, FAILED: 0}


def test_writes_from_outside_the_run_are_not_fenced(
    memory: RedisMemory, new_memory: Opener
) -> None:
    # A write from another terminal (`messor retry`, say) while a run holds the namespace.
    prepared(memory)
    release = memory.claim_run(RunOwner())
    try:
        new_memory().update_task_statuses([("bad", PENDING, None, None)])
        memory.update_task_statuses([("bad", FAILED, None, "again")])  # the run still holds it
    finally:
        release()
    take_over(memory)  # once its run ended, this memory writes without a claim too
    memory.update_task_statuses([("todo", COMPLETED, "by hand", None)])
    assert memory.get_task_result("todo") == "by hand"


def test_a_harvest_whose_claim_is_taken_stops_with_claim_lost_error_and_records_nothing_more(
    new_memory: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="messor")
    memory = new_memory(claim_seconds=1.0)
    started, finish = threading.Event(), threading.Event()
    ran: list[str] = []

    def first() -> str:
        started.set()
        finish.wait(30)
        return "late"

    tasks = [FunctionTask("first", first)]
    tasks += [FunctionTask(f"t{n}", ran.append, f"t{n}") for n in range(20)]
    failures: list[BaseException] = []

    def harvest() -> None:
        try:
            # One thread, and (with a timeout) attempts handed out only when it
            # is free: every task after the first would start after the takeover.
            LocalThreadedExecutor(tasks, memory=memory, max_concurrency=1, timeout=60).run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=harvest)
    thread.start()
    try:
        assert started.wait(30)
        take_over(memory)
        deadline = time.monotonic() + 30
        while "No new tasks start: error: messor.errors.ClaimLostError" not in caplog.text:
            assert time.monotonic() < deadline, "the run did not notice its claim was taken"
            time.sleep(0.01)
    finally:
        finish.set()
        thread.join(30)
    assert len(failures) == 1
    assert isinstance(failures[0], ClaimLostError)
    assert re.search(r"process 4242 on another-host, started .* holds it now", str(failures[0]))
    assert ran == []
    assert memory.count_by_status() == {PENDING: 21, COMPLETED: 0, FAILED: 0}


@pytest.mark.parametrize("where", ["url", "keyword"])
def test_the_claim_lapse_comes_from_the_url_or_a_keyword(where: str) -> None:
    url = f"{real_redis().url}?namespace={uuid.uuid4().hex}"
    if where == "url":
        memory = messor.open_memory(f"{url}&claim_seconds=2.5")
    else:
        memory = messor.open_memory(url, claim_seconds=2.5)
    assert isinstance(memory, RedisMemory)
    release = memory.claim_run(RunOwner())
    assert 2000 < memory.client.pttl(memory._key("run")) <= 2500
    release()
    memory.close()


@pytest.mark.parametrize("bad", ["soon", "0", "-1", "inf"])
def test_a_claim_lapse_that_is_no_usable_time_is_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="claim_seconds must be a number of seconds"):
        messor.open_memory(f"{real_redis().url}?claim_seconds={bad}")
