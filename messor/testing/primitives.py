"""The primitives a memory implements (insert, update, lookup, scan, delete) and the updates
built on them: ``record_outcomes`` (the executor's write path) and ``reset_tasks``
(``messor retry``).

A memory written against the seed gets the primitives from the base class, on
its own methods: these tests hold for it too.
"""

from __future__ import annotations

import threading

import pytest

from messor.memories.base import (
    COMPLETED,
    FAILED,
    PENDING,
    EncodedUpdate,
    Memory,
    TaskRecord,
    UpdateRule,
    decode_result,
)
from messor.testing.common import ContractPart

__all__ = ["PrimitivesContract"]


def _keeps_no_attempts(memory: Memory) -> bool:
    """Whether ``memory`` records through the seed's ``update_task_statuses``, which has no
    place for attempts: it implements neither ``update`` nor ``record_outcomes``."""
    kind = type(memory)
    return kind.update is Memory.update and kind.record_outcomes is Memory.record_outcomes


class PrimitivesContract(ContractPart):
    """The five primitives one by one, the rules of ``update``, and the updates built on it."""

    # -- insert, lookup, scan, delete ------------------------------------------------------

    def test_insert_registers_pending_tasks_and_leaves_known_ones_as_they_are(
        self, memory: Memory
    ) -> None:
        memory.insert([("a", '{"v":1}'), ("b", "{}"), ("a", '{"v":2}')])
        memory.update([EncodedUpdate("b", COMPLETED, '"done"', None)])
        memory.insert([("b", '{"v":3}'), ("c", "[]")])
        rows = {row.task_id: row for row in memory.scan(data=True)}
        assert {i: (r.status, decode_result(r.data_json)) for i, r in rows.items()} == {
            "a": (PENDING, {"v": 1}),
            "b": (COMPLETED, {}),
            "c": (PENDING, []),
        }
        assert decode_result(rows["b"].result_json) == "done"

    def test_lookup_gives_the_known_tasks_among_the_ids_with_their_state(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("a", {}), ("b", {}), ("c", {})])
        memory.record_outcomes(
            [
                EncodedUpdate("a", COMPLETED, '{"x":[1]}', None),
                EncodedUpdate("b", FAILED, None, "E: b"),
            ]
        )
        rows = memory.lookup(["b", "ghost", "a", "c"])
        assert sorted(rows) == ["a", "b", "c"]
        assert all(row.task_id == task_id for task_id, row in rows.items())
        assert (rows["a"].status, decode_result(rows["a"].result_json)) == (COMPLETED, {"x": [1]})
        assert (rows["b"].status, rows["b"].result_json, rows["b"].error) == (FAILED, None, "E: b")
        assert (rows["c"].status, rows["c"].result_json, rows["c"].error) == (PENDING, None, None)
        statuses = memory.lookup(["a", "ghost"], results=False)
        assert {i: row.status for i, row in statuses.items()} == {"a": COMPLETED}
        assert memory.lookup([]) == {}

    def test_scan_yields_every_task_once_in_a_stable_order(self, memory: Memory) -> None:
        ids = [f"t{i}" for i in range(1500)]
        failed = set(ids[::5])
        memory.store_tasks([(i, {"i": i}) for i in ids])
        memory.record_outcomes([EncodedUpdate(i, FAILED, None, f"E {i}") for i in ids[::5]])
        order = [row.task_id for row in memory.scan()]
        assert sorted(order) == sorted(ids)
        assert [row.task_id for row in memory.scan()] == order
        rows = list(memory.scan(FAILED))
        assert [row.task_id for row in rows] == [i for i in order if i in failed]
        assert all(row.error == f"E {row.task_id}" for row in rows)
        data = {
            row.task_id: decode_result(row.data_json) for row in memory.scan(PENDING, data=True)
        }
        assert data == {i: {"i": i} for i in ids if i not in failed}

    def test_scan_holds_no_lock_between_the_rows_it_yields(self, memory: Memory) -> None:
        # An export pauses between rows as long as its reader likes; runs record meanwhile.
        ids = [f"t{i:04}" for i in range(1500)]
        memory.store_tasks([(i, {}) for i in ids])
        rows = memory.scan()
        next(rows)
        change = [EncodedUpdate(ids[-1], COMPLETED, "1", None)]
        writer = threading.Thread(target=memory.record_outcomes, args=(change,))
        writer.start()
        writer.join(timeout=60)
        waited = writer.is_alive()
        rest = list(rows)  # frees a writer stuck behind the paused scan
        writer.join()
        assert not waited, "a write waited for a scan paused between two rows"
        assert len(rest) == len(ids) - 1
        assert memory.get_task_status(ids[-1]) == COMPLETED

    def test_delete_forgets_the_given_tasks_or_every_task(self, memory: Memory) -> None:
        memory.store_tasks([("a", {}), ("b", {}), ("c", {})])
        memory.delete(["a", "ghost"])
        assert sorted(memory.lookup(["a", "b", "c"])) == ["b", "c"]
        memory.delete([])
        assert len(list(memory.scan())) == 2
        memory.delete(None)
        assert list(memory.scan()) == []

    # -- update and its rules ----------------------------------------------------------------

    def test_update_applies_changes_in_order_and_returns_the_ids_it_changed(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("a", {"url": "u"}), ("b", {})])
        changed = memory.update(
            [
                EncodedUpdate("a", FAILED, None, "E"),
                EncodedUpdate("b", COMPLETED, "2", None),
                EncodedUpdate("a", COMPLETED, '"fixed"', None),
            ]
        )
        assert changed == ["a", "b", "a"]
        [a] = [r for r in memory.iter_records() if r.task_id == "a"]
        assert (a.status, a.result, a.error) == (COMPLETED, "fixed", None)
        assert memory.dump_all()["task_definitions"]["a"] == {"url": "u"}  # never the data

    def test_update_keeping_completed_tasks_skips_every_change_but_a_completion_of_one(
        self, memory: Memory
    ) -> None:
        memory.store_tasks([("done", {}), ("todo", {}), ("late", {})])
        memory.update([EncodedUpdate("done", COMPLETED, '"first"', None)])
        changed = memory.update(
            [
                EncodedUpdate("done", FAILED, None, "a failure of another run"),
                EncodedUpdate("done", PENDING, None, None),
                EncodedUpdate("late", COMPLETED, '"late"', None),
                EncodedUpdate("late", FAILED, None, "after its completion in this call"),
                EncodedUpdate("todo", FAILED, None, "E"),
                EncodedUpdate("done", COMPLETED, '"second"', None),
            ],
            UpdateRule(keep_completed=True),
        )
        assert changed == ["late", "todo", "done"]
        records = {r.task_id: (r.status, r.result, r.error) for r in memory.iter_records()}
        assert records == {
            "done": (COMPLETED, "second", None),
            "late": (COMPLETED, "late", None),
            "todo": (FAILED, None, "E"),
        }

    def test_update_only_from_some_statuses_skips_tasks_in_others(self, memory: Memory) -> None:
        memory.store_tasks([("p", {}), ("f", {}), ("c", {})])
        memory.update(
            [EncodedUpdate("f", FAILED, None, "E"), EncodedUpdate("c", COMPLETED, "1", None)]
        )
        changes = [EncodedUpdate(i, PENDING, None, None) for i in ("c", "f", "p")]
        # The second change of f is judged on the pending status the first one left.
        changes.append(EncodedUpdate("f", COMPLETED, "2", None))
        assert memory.update(changes, UpdateRule(only_from=frozenset({FAILED}))) == ["f"]
        assert memory.get_statuses(["p", "f", "c"]) == {"p": PENDING, "f": PENDING, "c": COMPLETED}
        assert memory.get_task_result("c") == 1

    @pytest.mark.parametrize(
        "rule",
        [
            UpdateRule(),
            UpdateRule(keep_completed=True),
            UpdateRule(only_from=frozenset({PENDING})),
        ],
        ids=repr,
    )
    def test_update_of_an_unknown_id_raises_keyerror_and_applies_nothing(
        self, memory: Memory, rule: UpdateRule
    ) -> None:
        memory.store_tasks([("a", {})])
        changes = [EncodedUpdate("a", FAILED, None, "E"), EncodedUpdate("ghost", FAILED, None, "E")]
        with pytest.raises(KeyError, match="ghost"):
            memory.update(changes, rule)
        assert memory.get_task_status("a") == PENDING

    def test_update_told_to_ignore_unknown_ids_skips_them(self, memory: Memory) -> None:
        memory.store_tasks([("a", {})])
        changes = [EncodedUpdate("ghost", FAILED, None, "E"), EncodedUpdate("a", FAILED, None, "E")]
        assert memory.update(changes, UpdateRule(missing="ignore")) == ["a"]
        assert memory.lookup(["ghost"]) == {}
        assert memory.get_failed_tasks() == [("a", "E")]

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

    def test_recorded_attempts_come_back_with_the_record(self, memory: Memory) -> None:
        if _keeps_no_attempts(memory):
            pytest.skip(f"{type(memory).__name__} records through the seed's methods: no attempts")
        memory.store_tasks([("a", {}), ("b", {})])
        memory.record_outcomes(
            [EncodedUpdate("a", FAILED, None, "E", 3), EncodedUpdate("b", COMPLETED, "1", None, 1)]
        )
        assert {r.task_id: r.attempts for r in memory.iter_records()} == {"a": 3, "b": 1}

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
