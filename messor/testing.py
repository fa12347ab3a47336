"""The contract every Messor memory passes, for backend authors to run against theirs.

Subclass :class:`MemoryContract` in a test module and give it one fixture,
``memory``, that yields an empty memory::

    import pytest
    from messor.testing import MemoryContract

    class TestMyMemory(MemoryContract):
        @pytest.fixture
        def memory(self, tmp_path):
            m = MyMemory(tmp_path / "store")
            yield m
            m.close()

Order is not part of the contract: listings are compared as sets.

Every test of the class then runs against that memory: the seed's methods,
the defaults the core relies on, JSON round trips, odd task ids, many threads
at once, and harvests run by the executor. Needs pytest.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from messor.errors import RunInProgressError
from messor.executors.threads import LocalThreadedExecutor
from messor.memories.base import COMPLETED, FAILED, PENDING, EncodedUpdate, Memory, TaskRecord
from messor.memories.claims import RunOwner, release_nothing
from messor.tasks import FunctionTask

__all__ = ["JSON_VALUES", "ODD_TASK_IDS", "MemoryContract"]

#: Results that must come back exactly (type included: False is not 0).
JSON_VALUES: list[Any] = [
    0,
    1,
    -17,
    2**63 + 1,
    0.5,
    -1e-300,
    "",
    "text",
    "日本語 ✓ 🎉 \u00e9\u0301",
    "line\nbreak\ttab \x00 nul",
    "\ud800 lone surrogate",
    True,
    False,
    None,
    [],
    {},
    [1, "two", None, False, [3.0]],
    {"nested": {"list": [0, "", False, None]}, "ünï": "cödé"},
    {"big": "x" * 100_000},
]

#: Task ids that must be stored and found exactly: any str that is valid Unicode is an id.
ODD_TASK_IDS: list[str] = [
    "",
    "\x00",
    "nul\x00inside",
    "".join(map(chr, [*range(1, 32), *range(127, 160)])),  # every other control character
    "\u2028\u2029\ufeff\u200b",
    "null",
    "messor:{default}:status",
    "x" * 10_000,
    "https://example.com/a?b=c&d=e#f",
    "path/with/slashes/",
    "/leading/slash",
    "..",
    "../../etc/passwd",
    "quote ' double \" backtick `",
    "'; DROP TABLE messor_tasks; --",
    "glob * ? [abc] % _",
    "ünïcödé 日本語 🎉",
    "spaces  and\ttabs",
    "x" * 300,
    " ",
    "a\\b",
    "{json}",
]


def _short_repr(value: object) -> str:
    """A test's name for a parameter: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} chars)"


def _square(number: int) -> dict[str, int]:
    return {"n": number, "square": number * number}


def _fail(message: str) -> None:
    raise ValueError(message)


class MemoryContract:
    """Tests every Messor memory passes. Subclass it and provide a ``memory`` fixture."""

    @pytest.fixture
    def memory(self) -> Memory:
        raise NotImplementedError("provide a `memory` fixture that yields an empty memory")

    # -- store_tasks ---------------------------------------------------------------

    def test_a_new_memory_is_empty(self, memory: Memory) -> None:
        assert memory.get_pending_tasks() == []
        assert memory.get_completed_tasks() == []
        assert memory.get_failed_tasks() == []
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 0, FAILED: 0}

    def test_stored_tasks_are_pending(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {"url": "https://b"})])
        assert sorted(memory.get_pending_tasks()) == ["a", "b"]
        assert memory.get_task_status("a") == PENDING
        assert memory.dump_all()["task_definitions"] == {"a": {}, "b": {"url": "https://b"}}

    def test_store_tasks_never_overwrites_a_known_task(self, memory: Memory) -> None:
        memory.store_tasks([("a", {"v": 1})])
        memory.update_task_statuses([("a", COMPLETED, {"r": 1}, None)])
        memory.store_tasks([("a", {"v": 2}), ("b", {})])
        assert memory.get_task_status("a") == COMPLETED
        assert memory.get_task_result("a") == {"r": 1}
        assert memory.dump_all()["task_definitions"]["a"] == {"v": 1}
        assert memory.get_task_status("b") == PENDING

    def test_store_tasks_refuses_data_that_is_not_json_and_stores_nothing(
        self, memory: Memory
    ) -> None:
        with pytest.raises(TypeError, match="bad-task"):
            memory.store_tasks([("good-task", {}), ("bad-task", {"when": object()})])
        assert memory.get_pending_tasks() == []

    def test_store_tasks_refuses_ids_that_are_not_str(self, memory: Memory) -> None:
        with pytest.raises(TypeError, match="str"):
            memory.store_tasks([(42, {})])  # type: ignore[list-item]

    # -- update_task_statuses ---------------------------------------------------------

    def test_update_moves_tasks_between_statuses(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {}), ("c", {})])
        memory.update_task_statuses(
            [("a", COMPLETED, "result-a", None), ("b", FAILED, None, "ValueError: boom")]
        )
        assert memory.get_pending_tasks() == ["c"]
        assert memory.get_completed_tasks() == ["a"]
        assert memory.get_failed_tasks() == [("b", "ValueError: boom")]
        assert memory.get_task_result("a") == "result-a"
        assert memory.count_by_status() == {PENDING: 1, COMPLETED: 1, FAILED: 1}

    def test_update_of_an_unknown_id_raises_keyerror_and_changes_nothing(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("a", {})])
        with pytest.raises(KeyError, match="ghost"):
            memory.update_task_statuses([("a", COMPLETED, 1, None), ("ghost", COMPLETED, 2, None)])
        assert memory.get_task_status("a") == PENDING
        assert memory.get_task_result("a") is None

    def test_update_refuses_a_result_that_is_not_json_and_changes_nothing(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("a", {}), ("b", {})])
        with pytest.raises(TypeError, match="'b'"):
            memory.update_task_statuses([("a", COMPLETED, 1, None), ("b", COMPLETED, {1, 2}, None)])
        assert sorted(memory.get_pending_tasks()) == ["a", "b"]

    def test_a_later_success_replaces_the_error(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        memory.update_task_statuses([("a", FAILED, None, "TimeoutError: slow")])
        memory.update_task_statuses([("a", COMPLETED, "ok", None)])
        assert memory.get_failed_tasks() == []
        assert memory.get_task_result("a") == "ok"
        assert "a" not in memory.dump_all()["task_errors"]

    def test_rows_of_one_call_apply_in_order(self, memory: Memory) -> None:
        memory.store_tasks([("a", {"first": True}), ("a", {"first": False})])
        memory.update_task_statuses(
            [("a", FAILED, None, "boom"), ("a", COMPLETED, "fixed", None), ("a", "leased", 1, None)]
        )
        memory.update_task_statuses([("a", COMPLETED, "done", None)])
        assert memory.dump_all()["task_definitions"] == {"a": {"first": True}}
        assert memory.get_completed_tasks() == ["a"]
        assert memory.get_failed_tasks() == []
        assert memory.get_pending_tasks() == []
        assert memory.count_by_status()[COMPLETED] == 1
        assert memory.get_task_result("a") == "done"

    def test_failed_then_pending_again(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        memory.update_task_statuses([("a", FAILED, None, "boom")])
        memory.update_task_statuses([("a", PENDING, None, None)])
        assert memory.get_pending_tasks() == ["a"]
        assert memory.get_failed_tasks() == []

    # -- reading -------------------------------------------------------------------------

    def test_unknown_task_status_raises_keyerror_naming_it(self, memory: Memory) -> None:
        with pytest.raises(KeyError, match="Task with ID 'nope' not found"):
            memory.get_task_status("nope")

    def test_unknown_task_result_raises_keyerror(self, memory: Memory) -> None:
        with pytest.raises(KeyError, match="nope"):
            memory.get_task_result("nope")

    def test_a_pending_task_has_no_result(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        assert memory.get_task_result("a") is None

    @pytest.mark.parametrize("value", JSON_VALUES, ids=_short_repr)
    def test_results_round_trip_exactly(self, memory: Memory, value: Any) -> None:
        memory.store_tasks([("t", {"input": value})])
        memory.update_task_statuses([("t", COMPLETED, value, None)])
        got = memory.get_task_result("t")
        assert got == value
        assert type(got) is type(value)
        assert memory.dump_all()["task_definitions"]["t"] == {"input": value}

    def test_nan_is_refused_rather_than_stored_inexactly(self, memory: Memory) -> None:
        memory.store_tasks([("t", {})])
        with pytest.raises(TypeError, match="'t'"):
            memory.update_task_statuses([("t", COMPLETED, float("nan"), None)])

    @pytest.mark.parametrize("task_id", ODD_TASK_IDS, ids=_short_repr)
    def test_odd_task_ids_are_stored_and_found_exactly(self, memory: Memory, task_id: str) -> None:
        memory.store_tasks([(task_id, {}), ("plain", {})])
        memory.update_task_statuses([(task_id, COMPLETED, task_id, None)])
        assert memory.get_task_status(task_id) == COMPLETED
        assert memory.get_task_result(task_id) == task_id
        assert memory.get_completed_tasks() == [task_id]
        assert memory.get_statuses([task_id, "plain"]) == {task_id: COMPLETED, "plain": PENDING}
        memory.clear_tasks([task_id])
        assert memory.get_pending_tasks() == ["plain"]

    def test_dump_all_has_the_seed_shape(self, memory: Memory) -> None:
        memory.store_tasks([("a", {"x": 1}), ("b", {}), ("c", {})])
        memory.update_task_statuses([("a", COMPLETED, [1], None), ("b", FAILED, None, "boom")])
        assert memory.dump_all() == {
            "task_definitions": {"a": {"x": 1}, "b": {}, "c": {}},
            "task_statuses": {"a": COMPLETED, "b": FAILED, "c": PENDING},
            "task_results": {"a": [1]},
            "task_errors": {"b": "boom"},
        }

    def test_get_statuses_answers_for_known_ids_only(self, memory: Memory) -> None:
        ids = [f"task-{i}" for i in range(1200)]
        memory.store_tasks([(i, {}) for i in ids])
        memory.update_task_statuses([(i, COMPLETED, None, None) for i in ids[::3]])
        statuses = memory.get_statuses([*ids, "unknown"])
        assert len(statuses) == 1200
        assert {i for i, s in statuses.items() if s == COMPLETED} == set(ids[::3])
        assert memory.get_statuses([]) == {}

    def test_iter_records_yields_every_task_with_its_outcome(self, memory: Memory) -> None:
        ids = [f"task-{i:04}" for i in range(2500)]
        memory.store_tasks([(i, {}) for i in ids])
        memory.update_task_statuses([(i, COMPLETED, {"i": i}, None) for i in ids[:2000]])
        memory.update_task_statuses([(ids[2001], FAILED, None, "boom")])
        # When each state was recorded is the memory's own business here.
        records = [r._replace(updated_at=None) for r in memory.iter_records()]
        assert sorted(r.task_id for r in records) == ids
        assert TaskRecord(ids[5], COMPLETED, {"i": ids[5]}, None) in records
        failed = [r._replace(updated_at=None) for r in memory.iter_records(FAILED)]
        assert failed == [TaskRecord(ids[2001], FAILED, None, "boom")]
        assert len(list(memory.iter_records(PENDING))) == 499

    def test_times_of_changes_when_the_memory_keeps_them(self, memory: Memory) -> None:
        before = time.time()
        memory.store_tasks([("old", {}), ("a", {}), ("b", {})])
        memory.record_outcomes([EncodedUpdate("old", COMPLETED, "1", None)])
        if memory.count_since(before) is None:
            # A memory that keeps no times says so, and gives none.
            assert {r.updated_at for r in memory.iter_records()} == {None}
            assert memory.earliest_since(before) is None
            return
        time.sleep(0.01)
        middle = time.time()
        memory.record_outcomes(
            [EncodedUpdate("a", COMPLETED, "2", None), EncodedUpdate("b", FAILED, None, "e")]
        )
        after = time.time()
        assert memory.count_since(middle) == {COMPLETED: 1, FAILED: 1}
        assert memory.count_since(before) == {COMPLETED: 2, FAILED: 1}
        assert sum(memory.count_since(after + 1).values()) == 0  # type: ignore[union-attr]
        times = {r.task_id: r.updated_at for r in memory.iter_records()}
        assert before <= times["old"] <= middle <= times["a"] <= after  # type: ignore[operator]
        assert memory.earliest_since(middle) == {COMPLETED: times["a"], FAILED: times["b"]}
        assert memory.earliest_since(after + 1) == {}

    # -- clearing ------------------------------------------------------------------------

    def test_clear_forgets_everything(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {})])
        memory.update_task_statuses([("a", COMPLETED, 1, None)])
        memory.clear()
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 0, FAILED: 0}
        with pytest.raises(KeyError):
            memory.get_task_status("a")

    def test_clear_tasks_forgets_only_those(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {}), ("c", {})])
        memory.clear_tasks(["a", "c", "never-stored"])
        assert memory.get_pending_tasks() == ["b"]

    # -- many threads -------------------------------------------------------------------

    def test_many_threads_at_once_lose_nothing(self, memory: Memory) -> None:
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                ids = [f"w{n}-{i}" for i in range(30)]
                memory.store_tasks([(i, {"n": n}) for i in ids])
                for i in ids:
                    memory.update_task_statuses([(i, COMPLETED, {"id": i}, None)])
                    memory.get_task_status(i)
                memory.count_by_status()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert memory.count_by_status()[COMPLETED] == 16 * 30
        assert memory.get_task_result("w7-21") == {"id": "w7-21"}

    def test_64_threads_of_mixed_operations_keep_every_record_consistent(
        self, memory: Memory
    ) -> None:
        # Every thread registers its own tasks and also races the others on
        # shared ones: successes, failures and reads all at once.
        shared = [f"shared-{i}" for i in range(8)]
        memory.store_tasks([(i, {}) for i in shared])
        errors: list[BaseException] = []
        start = threading.Barrier(64, timeout=60)

        def worker(n: int) -> None:
            try:
                own = [f"t{n}-{i}" for i in range(4)]
                start.wait()
                memory.store_tasks([(i, {"n": n}) for i in [*own, *shared]])
                memory.record_outcomes(
                    [EncodedUpdate(own[0], COMPLETED, f'{{"by":{n}}}', None, 1)]
                    + [EncodedUpdate(own[1], FAILED, None, f"E{n}", 2)]
                    + [
                        EncodedUpdate(i, COMPLETED, f'{{"by":{n}}}', None, 1)
                        if n % 2
                        else EncodedUpdate(i, FAILED, None, f"late {n}", 1)
                        for i in shared
                    ]
                )
                memory.update_task_statuses([(own[2], COMPLETED, [n], None)])
                memory.get_statuses([*own, *shared])
                memory.count_by_status()
                for _ in memory.iter_records(FAILED):
                    pass
                assert memory.get_task_result(own[0]) == {"by": n}
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        records = {r.task_id: r for r in memory.iter_records()}
        assert len(records) == 64 * 4 + len(shared)
        # Odd threads completed every shared task; no failure replaced that.
        assert {records[i].status for i in shared} == {COMPLETED}
        assert all(records[i].result["by"] % 2 == 1 for i in shared)
        counts = memory.count_by_status()
        assert counts == {PENDING: 64, COMPLETED: 64 * 2 + len(shared), FAILED: 64}
        assert memory.get_statuses(["t5-1", "t5-3"]) == {"t5-1": FAILED, "t5-3": PENDING}
        assert memory.get_task_result("t9-2") == [9]

    # -- reset_tasks: what `messor retry` calls ------------------------------------------

    def test_reset_tasks_makes_only_tasks_of_the_given_statuses_pending(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("done", {}), ("bad", {}), ("todo", {}), ("worse", {})])
        memory.record_outcomes(
            [
                EncodedUpdate("done", COMPLETED, '"kept"', None, 1),
                EncodedUpdate("bad", FAILED, None, "E: bad", 3),
                EncodedUpdate("worse", FAILED, None, "E: worse", 2),
            ]
        )
        reset = memory.reset_tasks(["worse", "done", "ghost", "bad", "todo"], only_from={FAILED})
        assert reset == ["worse", "bad"]  # in the given order; the unknown id ignored
        assert memory.get_failed_tasks() == []
        assert sorted(memory.get_pending_tasks()) == ["bad", "todo", "worse"]
        records = {r.task_id: r._replace(updated_at=None) for r in memory.iter_records()}
        assert records["bad"] == TaskRecord("bad", PENDING, None, None, 0)
        assert (records["done"].status, records["done"].result) == (COMPLETED, "kept")
        assert memory.reset_tasks(["ghost"], only_from={FAILED, PENDING, COMPLETED}) == []

    def test_reset_tasks_from_completed_drops_the_result(self, memory: Memory) -> None:
        memory.store_tasks([("done", {"url": "u"})])
        memory.update_task_statuses([("done", COMPLETED, {"r": 1}, None)])
        assert memory.reset_tasks(["done"], only_from={COMPLETED, FAILED}) == ["done"]
        assert memory.get_task_result("done") is None
        dump = memory.dump_all()
        assert dump["task_statuses"] == {"done": PENDING}
        assert (dump["task_results"], dump["task_definitions"]) == ({}, {"done": {"url": "u"}})

    def test_reset_tasks_checks_the_status_when_it_resets_not_when_the_caller_looked(
        self, memory: Memory
    ) -> None:
        # `messor retry --failed` lists the failed tasks, then resets them; a
        # run completes one in between. Its result must survive.
        memory.store_tasks([("a", {}), ("b", {})])
        memory.update_task_statuses([("a", FAILED, None, "E"), ("b", FAILED, None, "E")])
        looked_up = [task_id for task_id, _ in memory.get_failed_tasks()]
        memory.record_outcomes([EncodedUpdate("a", COMPLETED, '"late success"', None, 2)])
        assert memory.reset_tasks(looked_up, only_from={FAILED}) == ["b"]
        assert memory.get_task_status("a") == COMPLETED
        assert memory.get_task_result("a") == "late success"

    def test_reset_tasks_racing_a_harvest_never_undoes_a_completion(self, memory: Memory) -> None:
        # A harvest records completions one by one while resets of every task
        # not completed run back to back, as `messor retry ID...` from another
        # terminal would. Each completion is recorded just as a reset starts,
        # the moment a reset that looks up and then writes gets wrong.
        ids = [f"race-{i}" for i in range(200)]
        memory.store_tasks([(i, {}) for i in ids])
        memory.update_task_statuses([(i, FAILED, None, "E") for i in ids])
        reset_started = threading.Semaphore(0)
        harvest_done = threading.Event()
        errors: list[BaseException] = []

        def harvest() -> None:
            try:
                for i in ids:
                    if not reset_started.acquire(timeout=60):
                        raise TimeoutError("no reset started for 60 s")
                    memory.record_outcomes([EncodedUpdate(i, COMPLETED, f'"{i}"', None, 1)])
            except BaseException as exc:
                errors.append(exc)
            finally:
                harvest_done.set()

        thread = threading.Thread(target=harvest)
        thread.start()
        try:
            while not harvest_done.is_set():
                reset_started.release()
                memory.reset_tasks(ids, only_from={PENDING, FAILED})
        finally:
            reset_started.release(len(ids))  # the harvest never waits for a reset that failed
            thread.join()
        assert errors == []
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: len(ids), FAILED: 0}
        assert all(memory.get_task_result(i) == i for i in ids[::7])

    # -- keeping runs apart ---------------------------------------------------------------

    def test_a_claimed_memory_refuses_a_second_claim_naming_the_first(self, memory: Memory) -> None:
        first = RunOwner()
        release = memory.claim_run(first)
        if release is release_nothing:
            return  # this memory does not keep runs apart (documented)
        try:
            with pytest.raises(RunInProgressError, match=f"process {first.pid} on"):
                memory.claim_run(RunOwner())
        finally:
            release()
        release_again = memory.claim_run(RunOwner())  # free once released
        release_again()
        release_again()  # a second release is harmless

    # -- harvests on this memory ------------------------------------------------------------

    def test_a_harvest_records_every_result(self, memory: Memory) -> None:
        tasks = [FunctionTask(f"sq-{n}", _square, n) for n in range(50)]
        report = LocalThreadedExecutor(tasks, memory=memory, max_concurrency=8).run()
        assert report.completed == 50
        assert memory.count_by_status() == {PENDING: 0, COMPLETED: 50, FAILED: 0}
        assert memory.get_task_result("sq-7") == {"n": 7, "square": 49}

    def test_a_harvest_records_failures_and_resumes(self, memory: Memory) -> None:
        tasks = [FunctionTask(f"sq-{n}", _square, n) for n in range(10)]
        tasks.append(FunctionTask("broken", _fail, "no such page"))
        LocalThreadedExecutor(tasks, memory=memory, retry=0).run()
        assert memory.get_failed_tasks() == [("broken", "ValueError: no such page")]
        tasks[-1] = FunctionTask("broken", _square, 99)
        report = LocalThreadedExecutor(tasks, memory=memory).run()
        assert (report.completed, report.skipped) == (1, 10)
        assert memory.get_task_result("broken") == {"n": 99, "square": 9801}
        assert memory.get_failed_tasks() == []

    # -- record_outcomes: the executor's write path --------------------------------------

    def test_record_outcomes_stores_results_given_as_json_text(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {})])
        memory.record_outcomes(
            [
                EncodedUpdate("a", COMPLETED, '{"x":[1,false,null]}', None),
                EncodedUpdate("b", FAILED, None, "TimeoutError: slow"),
            ]
        )
        assert memory.get_task_result("a") == {"x": [1, False, None]}
        assert memory.get_failed_tasks() == [("b", "TimeoutError: slow")]

    def test_a_recorded_failure_never_replaces_a_completed_result(self, memory: Memory) -> None:
        # Another run on the same store may fail a task this run completed.
        memory.store_tasks([("a", {}), ("b", {})])
        memory.record_outcomes([EncodedUpdate("a", COMPLETED, '"first"', None)])
        memory.record_outcomes(
            [
                EncodedUpdate("a", FAILED, None, "late failure"),
                EncodedUpdate("b", FAILED, None, "x"),
            ]
        )
        assert memory.get_task_status("a") == COMPLETED
        assert memory.get_task_result("a") == "first"
        assert memory.get_failed_tasks() == [("b", "x")]

    def test_record_outcomes_of_an_unknown_id_raises_keyerror_and_records_nothing(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("a", {})])
        with pytest.raises(KeyError, match="ghost"):
            memory.record_outcomes(
                [
                    EncodedUpdate("a", COMPLETED, "1", None),
                    EncodedUpdate("ghost", FAILED, None, "e"),
                ]
            )
        assert memory.get_task_status("a") == PENDING
